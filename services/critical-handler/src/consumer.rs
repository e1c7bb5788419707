//! The receive loop and the life of one message.
//!
//! The loop receives only when a slot is free (`concurrency` + `prefetch` messages held at most) and
//! only while the circuit is closed; when it is open and nothing is held, it takes one message to
//! carry the probe. Each message then runs in its own task: its lock is renewed from the moment it
//! arrives; it becomes a ticket, waits for one of `concurrency` calling slots, and is posted, retried
//! with backoff while the lock is held, and settled:
//! complete (2xx, 409), dead-letter (undecodable, too large, rejected by the CRM), or abandon
//! (retries spent, `Retry-After` too long, renewal budget spent, shutdown).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use queue::{Queue, ReceivedMessage};
use service_kit::telemetry::TraceContext;
use service_kit::{ReadinessCheck, Shutdown};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::circuit::{Circuit, CircuitState};
use crate::completer::Completer;
use crate::config::RetrySettings;
use crate::lock::{Keeper, LockEnd};
use crate::metrics::{CallLabel, HandlerMetrics};
use crate::retry::next_delay;
use crate::template::Renderer;
use crate::ticket::{Ticket, TicketSettings};
use crate::webhook::{CallResult, Webhook};

/// Longest dead-letter description kept (Service Bus allows 4096 characters).
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// Everything a message's task needs, shared.
#[derive(Debug)]
pub struct Context {
    /// The queue consumed.
    pub queue: Arc<dyn Queue>,
    /// The CRM.
    pub webhook: Webhook,
    /// Ticket → request body.
    pub renderer: Renderer,
    /// The breaker on the webhook.
    pub circuit: Arc<Circuit>,
    /// Metrics.
    pub metrics: HandlerMetrics,
    /// Ticket bounds.
    pub ticket_settings: TicketSettings,
    /// Retries per delivery.
    pub retry: RetrySettings,
    /// Longest lock renewal per message.
    pub max_lock_renewal: Duration,
    /// Keeps the locks of held messages.
    pub locks: Keeper,
    /// Completes handled messages in batches.
    pub completer: Completer,
    /// Calling slots (`concurrency`).
    pub calling: Arc<Semaphore>,
    /// Fires when the service stops taking work.
    pub stop: Shutdown,
}

/// How the receive loop runs.
#[derive(Debug, Clone, Copy)]
pub struct LoopSettings {
    /// Messages held at most (handling + prefetched).
    pub held_limit: usize,
    /// Free slots the loop waits for before it receives (at least 1; half the prefetch, so
    /// that handlers always have prefetched messages while the loop waits).
    pub receive_batch: usize,
    /// Longest wait of one receive call.
    pub receive_wait: Duration,
    /// Time given to held messages after `stop` fires.
    pub grace: Duration,
}

/// What becomes of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Complete {
        duplicate: bool,
    },
    Abandon(&'static str),
    DeadLetter {
        reason: &'static str,
        description: String,
    },
    LockLost,
}

/// Receives and handles messages until `ctx.stop` fires, then lets held messages finish (or abandon)
/// within the grace period.
pub async fn run(ctx: Arc<Context>, settings: LoopSettings, readiness: ReadinessCheck) {
    let slots = Arc::new(Semaphore::new(settings.held_limit));
    let mut tasks = JoinSet::new();
    let mut failures = 0u32;
    while !ctx.stop.is_triggered() {
        while tasks.try_join_next().is_some() {}
        let max = match ctx.circuit.state() {
            CircuitState::Closed => settings.held_limit,
            // Nothing held can carry the probe: take one message for it.
            _ if tasks.is_empty() => 1,
            _ => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    () = ctx.stop.wait() => {}
                }
                continue;
            }
        };
        let first = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = ctx.stop.wait() => break,
        };
        let mut permits = vec![first];
        // While enough is held, wait for a few slots rather than receive for each one that frees:
        // a receive costs the queue about as much for one message as for many.
        let batch = settings.receive_batch.min(max);
        while permits.len() < batch {
            tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                },
                () = ctx.stop.wait() => break,
            }
        }
        if ctx.stop.is_triggered() {
            break;
        }
        while permits.len() < max {
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        // Not cancelled on stop: messages a cancelled receive had locked would wait out their locks.
        match ctx.queue.receive(permits.len(), settings.receive_wait).await {
            Ok(messages) => {
                readiness.ready();
                failures = 0;
                for (message, permit) in messages.into_iter().zip(permits) {
                    tasks.spawn(handle(Arc::clone(&ctx), message, permit));
                }
            }
            Err(e) => {
                ctx.metrics.queue_error("receive");
                readiness.not_ready(format!("receive failed: {e}"));
                failures = failures.saturating_add(1);
                let delay = Duration::from_millis(250u64 << failures.min(7));
                tracing::warn!(error = %e, retry_in = ?delay, "receive failed");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = ctx.stop.wait() => {}
                }
            }
        }
    }
    let deadline = Instant::now() + settings.grace;
    drain(tasks, settings.grace).await;
    // The grace period covers the flush too; a batch takes milliseconds, so it gets a second even
    // when the handling used up the period.
    let flush_until = deadline.max(Instant::now() + Duration::from_secs(1));
    if tokio::time::timeout_at(flush_until, ctx.completer.finish())
        .await
        .is_err()
    {
        tracing::warn!("completions not confirmed in time: those messages will come again");
    }
}

async fn drain(mut tasks: JoinSet<()>, grace: Duration) {
    let held = tasks.len();
    if held > 0 {
        tracing::info!(held, ?grace, "stopping: finishing held messages");
    }
    let finished = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "grace period over: their locks will expire and the queue will deliver them again"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// One message, from arrival to settlement.
async fn handle(ctx: Arc<Context>, received: ReceivedMessage, slot: OwnedSemaphorePermit) {
    ctx.metrics.received.inc();
    ctx.metrics.in_flight.inc();
    let span = message_span(&received);
    let deadline = Instant::now() + ctx.max_lock_renewal;
    let mut held = ctx
        .locks
        .hold(received.lock_token.clone(), received.locked_until, deadline);
    let outcome = tokio::select! {
        outcome = process(&ctx, &received, &span).instrument(span.clone()) => outcome,
        end = held.ended() => match end {
            LockEnd::Lost => Outcome::LockLost,
            LockEnd::BudgetSpent => Outcome::Abandon("lock_renewal_budget_spent"),
        },
    };
    // Settling takes a commit; the next message may be received meanwhile. The lock is no longer
    // renewed (a renewal racing the settlement would only report a lost lock).
    drop(held);
    drop(slot);
    settle(&ctx, received, outcome).instrument(span).await;
    ctx.metrics.in_flight.dec();
}

fn message_span(received: &ReceivedMessage) -> tracing::Span {
    let message = &received.message;
    let span = tracing::info_span!(
        "critical message",
        otel.kind = "consumer",
        message_id = message.message_id.as_deref().unwrap_or(""),
        device_id = message
            .application_properties
            .get("iothub-connection-device-id")
            .map_or("", String::as_str),
        delivery_count = received.delivery_count,
    );
    incoming_trace(&message.application_properties).set_as_parent_of(&span);
    span
}

async fn process(ctx: &Context, received: &ReceivedMessage, span: &tracing::Span) -> Outcome {
    let ticket = match Ticket::from_message(received, &ctx.ticket_settings) {
        Ok(ticket) => ticket,
        Err(rejection) => {
            return Outcome::DeadLetter {
                reason: rejection.reason(),
                description: rejection.to_string(),
            };
        }
    };
    let payload = match ctx.renderer.render(&ticket, SystemTime::now()) {
        Ok(payload) => payload,
        Err(e) => {
            return Outcome::DeadLetter {
                reason: "TemplateError",
                description: e.to_string(),
            };
        }
    };
    let _calling = tokio::select! {
        permit = ctx.calling.acquire() => match permit {
            Ok(permit) => permit,
            Err(_) => return Outcome::Abandon("shutdown"),
        },
        () = ctx.stop.wait() => return Outcome::Abandon("shutdown"),
    };
    let trace = outgoing_trace(span, &received.message.application_properties);
    let mut failed_calls = 0u32;
    loop {
        let admission = tokio::select! {
            admission = ctx.circuit.admit() => admission,
            () = ctx.stop.wait() => return Outcome::Abandon("shutdown"),
        };
        let started = Instant::now();
        let result = ctx.webhook.call(&ticket.key, payload.clone(), &trace).await;
        ctx.metrics
            .webhook_latency
            .get_or_create(&CallLabel {
                result: result.label(),
            })
            .observe(started.elapsed().as_secs_f64());
        let probe = admission.is_probe();
        admission.record(result.endpoint_healthy());
        let (retry_after, detail) = match result {
            CallResult::Created => return Outcome::Complete { duplicate: false },
            CallResult::Duplicate => return Outcome::Complete { duplicate: true },
            CallResult::Rejected { status, detail } => {
                return Outcome::DeadLetter {
                    reason: "WebhookRejected",
                    description: format!("the webhook answered HTTP {status}: {detail}"),
                };
            }
            CallResult::Failed {
                retry_after, detail, ..
            } => (retry_after, detail),
        };
        // A failed probe is the endpoint's failure, already shown by the open circuit: it does not
        // spend this message's attempts.
        if !probe {
            failed_calls += 1;
        }
        tracing::warn!(attempt = failed_calls, %detail, "webhook call failed");
        if failed_calls >= ctx.retry.attempts {
            return Outcome::Abandon("retries_exhausted");
        }
        if retry_after.is_some_and(|d| d > Duration::from_secs(ctx.retry.max_retry_after_secs)) {
            return Outcome::Abandon("retry_after_too_long");
        }
        ctx.metrics.retries.inc();
        let delay = next_delay(&ctx.retry, failed_calls.max(1), retry_after);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ctx.stop.wait() => return Outcome::Abandon("shutdown"),
        }
    }
}

async fn settle(ctx: &Context, received: ReceivedMessage, outcome: Outcome) {
    let token = &received.lock_token;
    let (operation, result) = match outcome {
        Outcome::Complete { duplicate } => {
            if duplicate {
                ctx.metrics.duplicates.inc();
            } else {
                ctx.metrics.tickets_created.inc();
            }
            tracing::debug!(duplicate, "ticket created");
            // Nothing waits for it: the completer completes it with others.
            ctx.completer
                .complete(received.lock_token, received.message.message_id);
            return;
        }
        Outcome::Abandon(reason) => {
            ctx.metrics.abandon(reason);
            tracing::info!(reason, "message given back to the queue");
            ("abandon", ctx.queue.abandon(token).await)
        }
        Outcome::DeadLetter {
            reason,
            mut description,
        } => {
            ctx.metrics.dead_letter(reason);
            if let Some((cut, _)) = description.char_indices().nth(MAX_DESCRIPTION_CHARS) {
                description.truncate(cut);
            }
            tracing::warn!(reason, %description, "message dead-lettered");
            (
                "dead_letter",
                ctx.queue.dead_letter(token, reason, &description).await,
            )
        }
        Outcome::LockLost => {
            ctx.metrics.locks_lost.inc();
            return;
        }
    };
    match result {
        Ok(()) => {}
        Err(queue::Error::LockLost) => {
            // Delivered again later; the idempotency key keeps the ticket single.
            ctx.metrics.locks_lost.inc();
            tracing::warn!(
                operation,
                "lock lost before settling: the message will come again"
            );
        }
        Err(e) => {
            ctx.metrics.queue_error(operation);
            tracing::warn!(operation, error = %e, "settling failed: the message will come again");
        }
    }
}

/// The trace context a message carries in its `traceparent`/`tracestate` application properties.
fn incoming_trace(properties: &BTreeMap<String, String>) -> TraceContext {
    TraceContext {
        traceparent: properties.get("traceparent").cloned(),
        tracestate: properties.get("tracestate").cloned(),
    }
}

/// The context for the webhook request: this handler's span when traces are exported; otherwise a
/// child of the message's own trace, so the CRM still sees the device's trace id.
fn outgoing_trace(span: &tracing::Span, properties: &BTreeMap<String, String>) -> TraceContext {
    let ours = TraceContext::of(span);
    if ours.traceparent.is_some() {
        return ours;
    }
    let incoming = incoming_trace(properties);
    TraceContext {
        traceparent: incoming.traceparent.as_deref().and_then(child_traceparent),
        tracestate: incoming.tracestate,
    }
}

/// `00-<trace id>-<new span id>-<flags>` for a valid W3C `traceparent`; `None` otherwise.
pub fn child_traceparent(parent: &str) -> Option<String> {
    let mut parts = parent.trim().split('-');
    let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(span_id, 16)
        && hex(flags, 2);
    if !valid {
        return None;
    }
    let span = fastrand::u64(1..);
    Some(format!("00-{trace_id}-{span:016x}-{flags}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let child = child_traceparent(parent).unwrap();
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(child.ends_with("-01"));
        assert_ne!(child, parent);
        assert_eq!(child.len(), parent.len());
    }

    #[test]
    fn invalid_parents_are_dropped() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(child_traceparent(bad), None, "{bad:?}");
        }
    }
}
