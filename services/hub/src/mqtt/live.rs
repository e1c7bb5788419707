//! Live MQTT connections by client id: one connection per device, a new one closes the old, and
//! the registry can close a device's connection (disabled or deleted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// Why a connection was closed from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// The same device connected again.
    Replaced,
    /// The device was disabled or deleted.
    Revoked,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    token: CancellationToken,
    reason: Arc<Mutex<Option<Eviction>>>,
}

/// The table of live connections.
#[derive(Debug, Default)]
pub struct LiveConnections {
    next_id: AtomicU64,
    by_client: Mutex<HashMap<String, Entry>>,
}

/// Held by a connection while it lives; removes it from the table when dropped.
#[derive(Debug)]
pub struct Registration {
    table: Arc<LiveConnections>,
    client_id: String,
    id: u64,
    /// Fires when something outside closes this connection.
    pub evicted: CancellationToken,
    reason: Arc<Mutex<Option<Eviction>>>,
}

impl Registration {
    /// Why the connection was closed from outside, once `evicted` has fired.
    pub fn eviction(&self) -> Option<Eviction> {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LiveConnections {
    /// Registers a connection for `client_id`, closing the one it replaces.
    pub fn register(self: &Arc<Self>, client_id: &str) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        let previous = self.lock().insert(
            client_id.to_owned(),
            Entry {
                id,
                token: token.clone(),
                reason: Arc::clone(&reason),
            },
        );
        if let Some(previous) = previous {
            *previous.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(Eviction::Replaced);
            previous.token.cancel();
        }
        Registration {
            table: Arc::clone(self),
            client_id: client_id.to_owned(),
            id,
            evicted: token,
            reason,
        }
    }

    /// Closes every connection of `device_id` (its own and its modules').
    pub fn revoke_device(&self, device_id: &str) {
        let module_prefix = format!("{device_id}/");
        for (client, entry) in self.lock().iter() {
            if client == device_id || client.starts_with(&module_prefix) {
                *entry.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(Eviction::Revoked);
                entry.token.cancel();
            }
        }
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        if table.get(&self.client_id).is_some_and(|e| e.id == self.id) {
            table.remove(&self.client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_replaces_the_old_one() {
        let live = Arc::new(LiveConnections::default());
        let first = live.register("dev1");
        let second = live.register("dev1");
        assert!(first.evicted.is_cancelled());
        assert_eq!(first.eviction(), Some(Eviction::Replaced));
        assert!(!second.evicted.is_cancelled());
        drop(first);
        assert_eq!(
            live.len(),
            1,
            "dropping the replaced connection keeps the new one"
        );
        let module = live.register("dev1/mod1");
        live.revoke_device("dev1");
        assert!(second.evicted.is_cancelled() && module.evicted.is_cancelled());
        assert_eq!(module.eviction(), Some(Eviction::Revoked));
    }
}
