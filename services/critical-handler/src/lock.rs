//! Keeping the locks of held messages: each is renewed when half of what is left of it has passed,
//! for at most `max_lock_renewal` from the moment the message arrived.
//!
//! One task keeps every lock ([`Keeper`]): it holds the next due time of each message in one
//! ordered map and sleeps until the earliest. A timer per message cost a fifth of the handler's
//! throughput at 64 in flight (each was polled again whenever its message's task woke up, and
//! registered and cancelled in the runtime's timer wheel).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use queue::{LockToken, Queue};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics::HandlerMetrics;

/// The pause before trying a failed renewal again.
const RENEW_RETRY: Duration = Duration::from_millis(200);

/// Why holding a lock ended (the handling itself never ends this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEnd {
    /// The queue no longer holds the lock for us: the message will be delivered again.
    Lost,
    /// The renewal budget is spent: give the message back.
    BudgetSpent,
}

enum Command {
    Hold {
        id: u64,
        token: LockToken,
        locked_until: Option<SystemTime>,
        deadline: Instant,
        end: oneshot::Sender<LockEnd>,
    },
    Release(u64),
    Renewed {
        id: u64,
        result: Result<SystemTime, queue::Error>,
    },
}

/// Handle to the task that keeps every held message's lock; the task ends when the last handle
/// (and every [`Held`]) is dropped.
#[derive(Debug, Clone)]
pub struct Keeper {
    commands: mpsc::UnboundedSender<Command>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

/// One message's lock, kept until this is dropped.
#[derive(Debug)]
pub struct Held {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    end: oneshot::Receiver<LockEnd>,
}

impl Held {
    /// Resolves when the lock is lost or the renewal budget is spent; never otherwise.
    pub async fn ended(&mut self) -> LockEnd {
        match (&mut self.end).await {
            Ok(end) => end,
            // The keeper is gone (the runtime is shutting down): nothing keeps the lock any more.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Release(self.id));
    }
}

impl Keeper {
    /// Starts the keeping task on the current runtime.
    pub fn start(queue: Arc<dyn Queue>, metrics: HandlerMetrics) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(queue, metrics, commands.downgrade(), rx));
        Self {
            commands,
            next_id: Arc::default(),
        }
    }

    /// Keeps the lock on `token` until it is lost, `deadline` passes, or the returned [`Held`] is
    /// dropped. A lock without expiry (`locked_until` = `None`, e.g. RabbitMQ) needs no renewal
    /// and is kept until the deadline.
    pub fn hold(&self, token: LockToken, locked_until: Option<SystemTime>, deadline: Instant) -> Held {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (end, ended) = oneshot::channel();
        let _ = self.commands.send(Command::Hold {
            id,
            token,
            locked_until,
            deadline,
            end,
        });
        Held {
            id,
            commands: self.commands.clone(),
            end: ended,
        }
    }
}

struct Entry {
    token: LockToken,
    until: Option<SystemTime>,
    deadline: Instant,
    due: Instant,
    /// A renewal call is out; its answer reschedules the entry.
    renewing: bool,
    end: oneshot::Sender<LockEnd>,
}

impl Entry {
    /// When to act next: renew at half of what is left of the lock, unless the deadline comes first.
    fn schedule(&mut self, now: Instant) {
        self.due = match self.until {
            None => self.deadline,
            Some(until) => {
                let left = until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                (now + left / 2).min(self.deadline)
            }
        };
    }
}

async fn run(
    queue: Arc<dyn Queue>,
    metrics: HandlerMetrics,
    commands: mpsc::WeakUnboundedSender<Command>,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let mut entries: HashMap<u64, Entry> = HashMap::new();
    let mut due: BTreeSet<(Instant, u64)> = BTreeSet::new();
    loop {
        let next = due.first().map(|(at, _)| *at);
        let command = tokio::select! {
            command = rx.recv() => match command {
                Some(command) => command,
                None => return,
            },
            () = sleep_until(next) => {
                act_on_due(&queue, &commands, &mut entries, &mut due);
                continue;
            }
        };
        match command {
            Command::Hold {
                id,
                token,
                locked_until,
                deadline,
                end,
            } => {
                let mut entry = Entry {
                    token,
                    until: locked_until,
                    deadline,
                    due: deadline,
                    renewing: false,
                    end,
                };
                entry.schedule(Instant::now());
                due.insert((entry.due, id));
                entries.insert(id, entry);
            }
            Command::Release(id) => {
                if let Some(entry) = entries.remove(&id) {
                    due.remove(&(entry.due, id));
                }
            }
            Command::Renewed { id, result } => {
                let Some(mut entry) = entries.remove(&id) else {
                    continue; // released, or its deadline passed, while the renewal was out
                };
                due.remove(&(entry.due, id));
                entry.renewing = false;
                match result {
                    Ok(next) => {
                        metrics.lock_renewals.inc();
                        entry.until = Some(next);
                        entry.schedule(Instant::now());
                    }
                    Err(queue::Error::LockLost) => {
                        tracing::warn!("message lock lost: it will be delivered again");
                        let _ = entry.end.send(LockEnd::Lost);
                        continue;
                    }
                    Err(e) => {
                        // Tried again shortly; past the lock's end it is lost.
                        tracing::warn!(error = %e, "lock renewal failed; trying again");
                        metrics.queue_error("renew");
                        if entry.until.is_some_and(|until| SystemTime::now() >= until) {
                            let _ = entry.end.send(LockEnd::Lost);
                            continue;
                        }
                        entry.due = (Instant::now() + RENEW_RETRY).min(entry.deadline);
                    }
                }
                due.insert((entry.due, id));
                entries.insert(id, entry);
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Ends the entries whose deadline passed and starts a renewal for the others that are due.
fn act_on_due(
    queue: &Arc<dyn Queue>,
    commands: &mpsc::WeakUnboundedSender<Command>,
    entries: &mut HashMap<u64, Entry>,
    due: &mut BTreeSet<(Instant, u64)>,
) {
    let now = Instant::now();
    while let Some(&(at, id)) = due.first() {
        if at > now {
            break;
        }
        due.remove(&(at, id));
        let Some(entry) = entries.get_mut(&id) else {
            continue;
        };
        if now >= entry.deadline {
            if let Some(entry) = entries.remove(&id) {
                let _ = entry.end.send(LockEnd::BudgetSpent);
            }
            continue;
        }
        if entry.renewing {
            continue;
        }
        let Some(commands) = commands.upgrade() else {
            return; // shutting down
        };
        // The deadline still applies while the renewal is out.
        entry.renewing = true;
        entry.due = entry.deadline;
        due.insert((entry.due, id));
        let (queue, token) = (Arc::clone(queue), entry.token.clone());
        tokio::spawn(async move {
            let result = queue.renew_lock(&token).await;
            let _ = commands.send(Command::Renewed { id, result });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue::{Message, QueueClient, QueueOptions};

    async fn queue_with_one(lock: Duration) -> (tempfile::TempDir, Arc<dyn Queue>, queue::ReceivedMessage) {
        let dir = tempfile::tempdir().unwrap();
        let client = QueueClient::connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
            .await
            .unwrap();
        let options = QueueOptions {
            lock_duration: lock,
            ..QueueOptions::default()
        };
        client.create_queue("q", &options).await.unwrap();
        let queue = client.queue("q").await.unwrap();
        queue.send(Message::new(b"x".to_vec())).await.unwrap();
        let mut received = queue.receive(1, Duration::from_secs(1)).await.unwrap();
        let message = received.pop().unwrap();
        (dir, queue, message)
    }

    fn keeper(queue: &Arc<dyn Queue>) -> Keeper {
        Keeper::start(
            Arc::clone(queue),
            HandlerMetrics::register(&service_kit::Metrics::new("test")),
        )
    }

    #[tokio::test]
    async fn a_held_lock_is_renewed_until_the_deadline_then_the_budget_is_spent() {
        let (_dir, queue, message) = queue_with_one(Duration::from_millis(400)).await;
        let keeper = keeper(&queue);
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut held = keeper.hold(message.lock_token.clone(), message.locked_until, deadline);
        assert_eq!(held.ended().await, LockEnd::BudgetSpent);
        assert!(Instant::now() >= deadline);
        // Renewed all along: still ours, so it can be completed.
        queue.complete(&message.lock_token).await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_settled_elsewhere_is_reported_lost() {
        let (_dir, queue, message) = queue_with_one(Duration::from_millis(400)).await;
        let keeper = keeper(&queue);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut held = keeper.hold(message.lock_token.clone(), message.locked_until, deadline);
        queue.complete(&message.lock_token).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), held.ended())
            .await
            .unwrap();
        assert_eq!(end, LockEnd::Lost);
    }

    #[tokio::test]
    async fn a_released_lock_is_no_longer_renewed() {
        let (_dir, queue, message) = queue_with_one(Duration::from_millis(300)).await;
        let keeper = keeper(&queue);
        let held = keeper.hold(
            message.lock_token.clone(),
            message.locked_until,
            Instant::now() + Duration::from_secs(30),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(held);
        // Without renewal the lock runs out and the message comes again.
        let again = queue.receive(1, Duration::from_secs(3)).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].delivery_count, 2);
    }
}
