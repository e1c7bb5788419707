//! The outbox: messages the hub has acknowledged but not yet delivered to a custom endpoint, in the
//! same database (and the same transaction) as the events stream. A dispatcher reads its endpoint's
//! rows in order and settles them once delivered; a storage endpoint first records which rows go into
//! which blob, so a crash between writing the blob and settling its rows never duplicates a record.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags, Transaction, params};
use tokio::sync::{Notify, watch};

use super::store::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_endpoint ON outbox (endpoint, id);
CREATE TABLE IF NOT EXISTS pending_blobs (
    endpoint TEXT NOT NULL,
    name TEXT NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    PRIMARY KEY (endpoint, name)
);
";

/// One undelivered message of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Its id; increasing in acceptance order.
    pub id: u64,
    /// When the hub accepted it, Unix milliseconds.
    pub enqueued_ms: i64,
    /// The serialised message, enrichments included.
    pub payload: Vec<u8>,
}

/// A blob a storage endpoint decided to write: its name and the rows it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBlob {
    /// The blob's name.
    pub name: String,
    /// First outbox id in it.
    pub first_id: u64,
    /// Last outbox id in it.
    pub last_id: u64,
    /// When the batch was opened, Unix milliseconds (its name's time).
    pub opened_ms: i64,
}

/// Live counters of one endpoint's outbox, shared by the journal (which fills it) and the
/// dispatcher (which drains it).
#[derive(Debug)]
pub struct OutboxSignal {
    /// Newest outbox id committed for the endpoint; dispatchers wait on changes.
    pub newest: watch::Sender<u64>,
    /// Messages waiting for delivery.
    pub backlog: AtomicU64,
    /// Notified whenever the backlog shrinks (for ingest waiting under backpressure).
    pub drained: Notify,
}

impl OutboxSignal {
    fn new(newest: u64, backlog: u64) -> Self {
        OutboxSignal {
            newest: watch::channel(newest).0,
            backlog: AtomicU64::new(backlog),
            drained: Notify::new(),
        }
    }

    /// Messages waiting.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }
}

/// Every endpoint's signal, by endpoint name.
#[derive(Debug, Default)]
pub struct Outboxes {
    by_endpoint: Mutex<HashMap<Arc<str>, Arc<OutboxSignal>>>,
}

impl Outboxes {
    /// The signal of `endpoint`, created on first use.
    pub fn signal(&self, endpoint: &str) -> Arc<OutboxSignal> {
        let mut map = self.by_endpoint.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signal) = map.get(endpoint) {
            return Arc::clone(signal);
        }
        let signal = Arc::new(OutboxSignal::new(0, 0));
        map.insert(Arc::from(endpoint), Arc::clone(&signal));
        signal
    }

    /// Backlog by endpoint, for metrics and health.
    pub fn backlogs(&self) -> Vec<(Arc<str>, u64)> {
        let map = self.by_endpoint.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .map(|(name, s)| (Arc::clone(name), s.backlog()))
            .collect()
    }

    pub(crate) fn load(conn: &Connection) -> Result<Outboxes, StoreError> {
        let mut stmt = conn.prepare("SELECT endpoint, COUNT(*), MAX(id) FROM outbox GROUP BY endpoint")?;
        let rows: Vec<(String, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let map = rows
            .into_iter()
            .map(|(name, count, max)| {
                let signal =
                    OutboxSignal::new(u64::try_from(max).unwrap_or(0), u64::try_from(count).unwrap_or(0));
                (Arc::from(name.as_str()), Arc::new(signal))
            })
            .collect();
        Ok(Outboxes {
            by_endpoint: Mutex::new(map),
        })
    }
}

/// Inserts one outbox row; returns its id.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    endpoint: &str,
    enqueued_ms: i64,
    payload: &[u8],
) -> Result<u64, StoreError> {
    tx.prepare_cached("INSERT INTO outbox (endpoint, enqueued_ms, payload) VALUES (?1, ?2, ?3)")?
        .execute(params![endpoint, enqueued_ms, payload])?;
    Ok(u64::try_from(tx.last_insert_rowid()).unwrap_or(0))
}

/// Deletes the endpoint's rows up to `up_to` (and the pending blob `blob`, if given); returns how
/// many rows went.
pub(crate) fn settle(
    tx: &Transaction<'_>,
    endpoint: &str,
    up_to: u64,
    blob: Option<&str>,
) -> Result<u64, StoreError> {
    let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
    let deleted = tx
        .prepare_cached("DELETE FROM outbox WHERE endpoint = ?1 AND id <= ?2")?
        .execute(params![endpoint, up_to])?;
    if let Some(name) = blob {
        tx.prepare_cached("DELETE FROM pending_blobs WHERE endpoint = ?1 AND name = ?2")?
            .execute(params![endpoint, name])?;
    }
    Ok(deleted as u64)
}

/// Records that `blob` will hold the endpoint's rows `first..=last`.
pub(crate) fn pend_blob(tx: &Transaction<'_>, endpoint: &str, blob: &PendingBlob) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO pending_blobs (endpoint, name, first_id, last_id, opened_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        endpoint,
        blob.name,
        i64::try_from(blob.first_id).unwrap_or(i64::MAX),
        i64::try_from(blob.last_id).unwrap_or(i64::MAX),
        blob.opened_ms
    ])?;
    Ok(())
}

/// Read access to the outbox, on its own connection.
#[derive(Debug)]
pub struct OutboxReader {
    conn: Connection,
}

impl OutboxReader {
    /// Opens the journal database read-only.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(OutboxReader { conn })
    }

    /// Up to `limit` rows of `endpoint` after id `after`, oldest first.
    pub fn read(&self, endpoint: &str, after: u64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, enqueued_ms, payload FROM outbox WHERE endpoint = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![endpoint, after, limit], |r| {
                Ok(OutboxRow {
                    id: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    enqueued_ms: r.get(1)?,
                    payload: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The rows `first..=last` of `endpoint` (a pending blob's content).
    pub fn read_range(&self, endpoint: &str, first: u64, last: u64) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, enqueued_ms, payload FROM outbox WHERE endpoint = ?1 AND id BETWEEN ?2 AND ?3 ORDER BY id",
        )?;
        let (first, last) = (
            i64::try_from(first).unwrap_or(i64::MAX),
            i64::try_from(last).unwrap_or(i64::MAX),
        );
        let rows = stmt
            .query_map(params![endpoint, first, last], |r| {
                Ok(OutboxRow {
                    id: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    enqueued_ms: r.get(1)?,
                    payload: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Blobs `endpoint` decided to write but has not settled (after a crash, they are written again
    /// under the same names, which cannot be overwritten).
    pub fn pending_blobs(&self, endpoint: &str) -> Result<Vec<PendingBlob>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, first_id, last_id, opened_ms FROM pending_blobs WHERE endpoint = ?1 ORDER BY first_id",
        )?;
        let rows = stmt
            .query_map(params![endpoint], |r| {
                Ok(PendingBlob {
                    name: r.get(0)?,
                    first_id: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    last_id: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    opened_ms: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
