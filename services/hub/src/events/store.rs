//! SQLite storage of the events stream: schema, batched inserts, reads by position, retention.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use crate::config::SyncMode;

/// A storage failure (disk full, corrupt file, ...).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("events store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread could not start.
    #[error("events store: {0}")]
    Io(#[from] std::io::Error),
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Position in the stream; strictly increasing, never reused.
    pub seq: u64,
    /// When the hub accepted the message, Unix milliseconds.
    pub enqueued_ms: i64,
    /// The device that sent it.
    pub device_id: String,
    /// The serialised message.
    pub payload: Vec<u8>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_ms INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (enqueued_ms);
";

/// Bytes a WAL that starts over is truncated to.
pub(crate) const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Opens the database for writing, creating it and its schema.
pub(crate) fn open_writer(path: &Path, sync: SyncMode) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if sync == SyncMode::Full { "FULL" } else { "NORMAL" },
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Checkpoints run on their own thread (see `checkpoint`), never inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a burst, give the disk back: a WAL that starts over is cut to this size.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(super::outbox::SCHEMA)?;
    Ok(conn)
}

/// The WAL after a checkpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalState {
    /// Frames in the WAL (-1 when another checkpoint was running).
    pub(crate) frames: i64,
    /// Frames copied into the database so far.
    pub(crate) copied: i64,
}

/// Copies committed WAL frames into the database without blocking the writer (PASSIVE).
pub(crate) fn checkpoint(conn: &Connection) -> Result<WalState, StoreError> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(WalState {
            frames: row.get(1)?,
            copied: row.get(2)?,
        })
    })?)
}

/// Bytes of events stored, for size-based retention (read once at start, then kept up to date).
pub(crate) fn stored_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let total: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM events", [], |r| r.get(0))?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// Inserts one event in `tx`; returns its position.
pub(crate) fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    enqueued_ms: i64,
    device_id: &str,
    payload: &[u8],
) -> Result<u64, StoreError> {
    tx.prepare_cached("INSERT INTO events (enqueued_ms, device_id, size, payload) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![enqueued_ms, device_id, payload.len() as i64, payload])?;
    Ok(u64::try_from(tx.last_insert_rowid()).unwrap_or(0))
}

/// Deletes events older than `cutoff_ms`, then the oldest until at most `max_bytes` remain.
/// `stored` is the running total of stored bytes; it is lowered by what is deleted. Returns how many
/// events were deleted. Only the deleted rows are visited.
pub(crate) fn apply_retention(
    conn: &mut Connection,
    cutoff_ms: i64,
    max_bytes: u64,
    stored: &mut u64,
) -> Result<u64, StoreError> {
    let tx = conn.transaction()?;
    let (count, bytes): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE enqueued_ms < ?1",
        params![cutoff_ms],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut deleted = u64::try_from(count).unwrap_or(0);
    if deleted > 0 {
        tx.execute("DELETE FROM events WHERE enqueued_ms < ?1", params![cutoff_ms])?;
        *stored = stored.saturating_sub(u64::try_from(bytes).unwrap_or(0));
    }
    while *stored > max_bytes {
        // The oldest 1000 events, enough of them to get under the limit.
        let rows: Vec<(i64, i64)> = {
            let mut stmt = tx.prepare_cached("SELECT seq, size FROM events ORDER BY seq LIMIT 1000")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let Some(&(first, _)) = rows.first() else { break };
        let mut last = first;
        for (seq, size) in &rows {
            last = *seq;
            *stored = stored.saturating_sub(u64::try_from(*size).unwrap_or(0));
            deleted += 1;
            if *stored <= max_bytes {
                break;
            }
        }
        tx.execute("DELETE FROM events WHERE seq <= ?1", params![last])?;
    }
    tx.commit()?;
    Ok(deleted)
}

/// Read access to the stream, on its own connection (WAL lets it read while the writer writes).
#[derive(Debug)]
pub struct EventsReader {
    conn: Connection,
}

impl EventsReader {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(EventsReader { conn })
    }

    /// Up to `limit` events after position `after`, optionally of one device, in order.
    pub fn read_after(
        &self,
        after: u64,
        limit: usize,
        device: Option<&str>,
    ) -> Result<Vec<EventRow>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let map = |r: &rusqlite::Row<'_>| {
            Ok(EventRow {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                enqueued_ms: r.get(1)?,
                device_id: r.get(2)?,
                payload: r.get(3)?,
            })
        };
        let rows = match device {
            Some(device) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT seq, enqueued_ms, device_id, payload FROM events \
                     WHERE seq > ?1 AND device_id = ?2 ORDER BY seq LIMIT ?3",
                )?;
                stmt.query_map(params![after, device, limit], map)?
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT seq, enqueued_ms, device_id, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                stmt.query_map(params![after, limit], map)?
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    /// The position of the first event enqueued at or after `ms` (minus one), for "start at a time".
    pub fn position_before_time(&self, ms: i64) -> Result<u64, StoreError> {
        let seq: Option<i64> = self.conn.query_row(
            "SELECT MIN(seq) FROM events WHERE enqueued_ms >= ?1",
            params![ms],
            |r| r.get(0),
        )?;
        Ok(seq.map_or_else(
            || self.last_position().unwrap_or(0),
            |s| u64::try_from(s - 1).unwrap_or(0),
        ))
    }

    /// The position of the newest event ever appended (0 before the first); retention does not lower it.
    pub fn last_position(&self) -> Result<u64, StoreError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'events'", [], |r| {
                r.get(0)
            })
            .or_else(|e| {
                if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                    Ok(None)
                } else {
                    Err(e)
                }
            })?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }
}
