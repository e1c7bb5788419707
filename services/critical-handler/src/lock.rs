//! Keeping a message's lock while it is held: renewed when half of what is left of it has passed,
//! for at most `max_lock_renewal` from the moment the message arrived.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use queue::{LockToken, Queue};
use tokio::time::Instant;

use crate::metrics::HandlerMetrics;

/// Why holding a lock ended (the handling itself never ends this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEnd {
    /// The queue no longer holds the lock for us: the message will be delivered again.
    Lost,
    /// The renewal budget is spent: give the message back.
    BudgetSpent,
}

/// Renews the lock on `token` until it is lost or `deadline` passes; never returns otherwise. A lock
/// without expiry (`locked_until` = `None`, e.g. RabbitMQ) needs no renewal and is kept until the
/// deadline.
pub async fn keep(
    queue: Arc<dyn Queue>,
    token: LockToken,
    locked_until: Option<SystemTime>,
    deadline: Instant,
    metrics: HandlerMetrics,
) -> LockEnd {
    let Some(mut until) = locked_until else {
        tokio::time::sleep_until(deadline).await;
        return LockEnd::BudgetSpent;
    };
    loop {
        let left = until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        let renew_at = Instant::now() + left / 2;
        if renew_at >= deadline {
            tokio::time::sleep_until(deadline).await;
            return LockEnd::BudgetSpent;
        }
        tokio::time::sleep_until(renew_at).await;
        match queue.renew_lock(&token).await {
            Ok(next) => {
                metrics.lock_renewals.inc();
                until = next;
            }
            Err(queue::Error::LockLost) => {
                tracing::warn!("message lock lost: it will be delivered again");
                return LockEnd::Lost;
            }
            Err(e) => {
                // The next attempt comes at half of what is left; past the lock's end it is lost.
                tracing::warn!(error = %e, "lock renewal failed; trying again");
                metrics.queue_error("renew");
                if SystemTime::now() >= until {
                    return LockEnd::Lost;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
