//! Completing handled messages, many lock tokens per queue call.
//!
//! Completing is a message's last step and nothing waits for it: its slots are already free and
//! its ticket exists. One task ([`Completer`]) takes every token handed to it and completes them
//! with one [`Queue::complete_many`] call (on SQLite: one writer job, one transaction) per batch,
//! one batch at a time. A batch gathers tokens for [`GATHER`] after its first one, or until it
//! holds [`MAX_BATCH`]. In the tickets bench this moved the handler from 0.46× to 0.51× of the
//! raw HTTP rate at 16 in flight, and gathering for 5 ms from 0.54× to 0.59× (fewer, larger
//! SQLite transactions). A message whose completion is lost (the process dies first)
//! comes again when its lock expires, and its idempotency key keeps the ticket single.

use std::sync::Arc;
use std::time::Duration;

use queue::{LockToken, Queue};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::HandlerMetrics;

/// Most tokens completed in one call.
const MAX_BATCH: usize = 256;
/// How long a batch gathers tokens after its first one (unless it fills up first).
const GATHER: Duration = Duration::from_millis(5);

/// One message to complete.
#[derive(Debug)]
struct Completion {
    token: LockToken,
    /// For the log line if completing fails.
    message_id: Option<String>,
}

#[derive(Debug)]
enum Command {
    Complete(Completion),
    /// Complete everything sent before, answer, stop.
    Finish(oneshot::Sender<()>),
}

/// Handle to the completing task.
#[derive(Debug, Clone)]
pub struct Completer {
    commands: mpsc::UnboundedSender<Command>,
}

impl Completer {
    /// Starts the completing task on the current runtime.
    pub fn start(queue: Arc<dyn Queue>, metrics: HandlerMetrics) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(queue, metrics, rx));
        Self { commands }
    }

    /// Hands over a message whose ticket exists; returns at once.
    pub fn complete(&self, token: LockToken, message_id: Option<String>) {
        let completion = Completion { token, message_id };
        if let Err(mpsc::error::SendError(Command::Complete(lost))) =
            self.commands.send(Command::Complete(completion))
        {
            tracing::warn!(
                message_id = lost.message_id.as_deref().unwrap_or(""),
                "completion after the completer finished: the message will come again"
            );
        }
    }

    /// Completes everything handed over so far, then stops the task. Later completions are not made
    /// (their messages come again).
    pub async fn finish(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Finish(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

async fn run(queue: Arc<dyn Queue>, metrics: HandlerMetrics, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut commands = Vec::with_capacity(MAX_BATCH);
    let mut batch = Batch::default();
    let mut finished = None;
    while finished.is_none() && rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
        let finishing = commands.iter().any(|c| matches!(c, Command::Finish(_)));
        if commands.len() < MAX_BATCH && !finishing {
            // Let the batch grow for a moment: fewer, larger transactions.
            tokio::time::sleep(GATHER).await;
            while commands.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
        }
        for command in commands.drain(..) {
            match command {
                Command::Complete(completion) if finished.is_none() => {
                    batch.tokens.push(completion.token);
                    batch.message_ids.push(completion.message_id);
                }
                Command::Complete(completion) => {
                    tracing::warn!(
                        message_id = completion.message_id.as_deref().unwrap_or(""),
                        "completion after the completer finished: the message will come again"
                    );
                }
                Command::Finish(reply) => finished = Some(reply),
            }
        }
        if !batch.tokens.is_empty() {
            batch.complete(&*queue, &metrics).await;
        }
    }
    if let Some(reply) = finished {
        let _ = reply.send(());
    }
}

/// The tokens of one call, and their messages' ids in the same order.
#[derive(Debug, Default)]
struct Batch {
    tokens: Vec<LockToken>,
    message_ids: Vec<Option<String>>,
}

impl Batch {
    async fn complete(&mut self, queue: &dyn Queue, metrics: &HandlerMetrics) {
        let results = queue.complete_many(&self.tokens).await;
        self.tokens.clear();
        for (message_id, result) in self.message_ids.drain(..).zip(results) {
            let message_id = message_id.as_deref().unwrap_or("");
            match result {
                Ok(()) => {}
                Err(queue::Error::LockLost) => {
                    // Delivered again later; the idempotency key keeps the ticket single.
                    metrics.locks_lost.inc();
                    tracing::warn!(
                        message_id,
                        operation = "complete",
                        "lock lost before settling: the message will come again"
                    );
                }
                Err(e) => {
                    metrics.queue_error("complete");
                    tracing::warn!(
                        message_id,
                        operation = "complete",
                        error = %e,
                        "settling failed: the message will come again"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use queue::{Message, QueueClient, QueueOptions};

    use super::*;

    async fn queue_with(n: usize) -> (tempfile::TempDir, Arc<dyn Queue>, Vec<queue::ReceivedMessage>) {
        let dir = tempfile::tempdir().unwrap();
        let client = QueueClient::connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
            .await
            .unwrap();
        client.create_queue("q", &QueueOptions::default()).await.unwrap();
        let queue = client.queue("q").await.unwrap();
        let messages = (0..n)
            .map(|i| Message::new(b"x".to_vec()).with_message_id(format!("m-{i}")))
            .collect();
        queue.send_batch(messages).await.unwrap();
        let received = queue.receive(n, Duration::from_secs(1)).await.unwrap();
        assert_eq!(received.len(), n);
        (dir, queue, received)
    }

    #[tokio::test]
    async fn finish_completes_everything_handed_over_and_counts_lost_locks() {
        let (_dir, queue, received) = queue_with(50).await;
        let metrics = HandlerMetrics::register(&service_kit::Metrics::new("test"));
        let completer = Completer::start(Arc::clone(&queue), metrics.clone());
        // One of them is completed behind the completer's back: its token is stale by then.
        queue.complete(&received[7].lock_token).await.unwrap();
        for message in received {
            completer.complete(message.lock_token, message.message.message_id);
        }
        completer.finish().await;
        assert_eq!(queue.len().await.unwrap(), 0, "every message completed");
        assert_eq!(metrics.locks_lost.get(), 1, "the stale token is a lost lock");
        assert_eq!(
            metrics
                .queue_errors
                .get_or_create(&crate::metrics::ReasonLabel { reason: "complete" })
                .get(),
            0
        );
    }

    #[tokio::test]
    async fn completions_after_finish_are_not_made() {
        let (_dir, queue, mut received) = queue_with(1).await;
        let metrics = HandlerMetrics::register(&service_kit::Metrics::new("test"));
        let completer = Completer::start(Arc::clone(&queue), metrics);
        completer.finish().await;
        let message = received.pop().unwrap();
        completer.complete(message.lock_token, message.message.message_id);
        // A second finish returns at once: the task is gone.
        completer.finish().await;
        assert_eq!(queue.len().await.unwrap(), 1, "left for redelivery");
    }
}
