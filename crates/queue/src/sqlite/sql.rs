//! The SQLite schema and every statement the backend runs, each on an open transaction.
//!
//! One table holds every queue's messages; a message's `seq` (never reused) gives FIFO order and,
//! with the delivery count that locked it, makes its lock token. A message is available when
//! `available_at <= now`; locking sets `available_at` to the lock's end, so an expired lock simply
//! makes the message available again. Dead-lettering moves the row to `<queue>/$deadletterqueue`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::message::{DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, MAX_DELIVERY_COUNT_EXCEEDED, Message};
use crate::{DEAD_LETTER_SUFFIX, QueueOptions};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    name               TEXT PRIMARY KEY,
    lock_duration_ms   INTEGER NOT NULL,
    max_delivery_count INTEGER NOT NULL,
    created_at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL,
    available_at     INTEGER NOT NULL,
    delivery_count   INTEGER NOT NULL DEFAULT 0,
    enqueued_at      INTEGER NOT NULL,
    message_id       TEXT,
    correlation_id   TEXT,
    content_type     TEXT,
    content_encoding TEXT,
    properties       TEXT,
    body             BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_fifo ON messages (queue, seq, available_at);
";

/// Milliseconds since the Unix epoch: the clock every process sharing the file agrees on.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn to_system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Settings of one queue as stored in `queues`.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueSettings {
    pub(super) lock_ms: i64,
    /// `None` on a dead-letter queue: its messages are never dead-lettered again.
    pub(super) max_delivery_count: Option<u32>,
}

/// A message row as read for receive or peek.
#[derive(Debug)]
pub(super) struct StoredMessage {
    pub(super) seq: i64,
    pub(super) delivery_count: u32,
    pub(super) available_at: i64,
    pub(super) enqueued_at: i64,
    pub(super) message: Message,
}

const SELECT_COLUMNS: &str = "seq, delivery_count, available_at, enqueued_at, message_id, correlation_id, \
                              content_type, content_encoding, properties, body";

fn read_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let properties: Option<String> = row.get(8)?;
    let application_properties = match properties {
        // Written by this module from a BTreeMap: a row that does not parse is reported, not hidden.
        Some(json) => serde_json::from_str::<BTreeMap<String, String>>(&json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, Box::new(e))
        })?,
        None => BTreeMap::new(),
    };
    Ok(StoredMessage {
        seq: row.get(0)?,
        delivery_count: row.get(1)?,
        available_at: row.get(2)?,
        enqueued_at: row.get(3)?,
        message: Message {
            message_id: row.get(4)?,
            correlation_id: row.get(5)?,
            content_type: row.get(6)?,
            content_encoding: row.get(7)?,
            application_properties,
            body: row.get(9)?,
        },
    })
}

fn properties_json(properties: &BTreeMap<String, String>) -> rusqlite::Result<Option<String>> {
    if properties.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(properties)
        .map(Some)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

pub(super) fn configure(conn: &Connection, synchronous: crate::Synchronous) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        crate::Synchronous::Full => "FULL",
        crate::Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Savepoint journals (one per multi-statement job in a group commit) stay in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.execute_batch(SCHEMA)
}

pub(super) fn create_queue(tx: &Connection, name: &str, options: &QueueOptions) -> rusqlite::Result<()> {
    let lock_ms = i64::try_from(options.lock_duration.as_millis()).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO queues (name, lock_duration_ms, max_delivery_count, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO NOTHING",
        params![name, lock_ms, options.max_delivery_count.max(1), now_ms()],
    )?;
    Ok(())
}

/// The settings of `name` (a dead-letter queue inherits its queue's lock duration).
pub(super) fn queue_settings(tx: &Connection, name: &str) -> rusqlite::Result<Option<QueueSettings>> {
    let (base, dead_letter) = match name.strip_suffix(DEAD_LETTER_SUFFIX) {
        Some(base) => (base, true),
        None => (name, false),
    };
    tx.prepare_cached("SELECT lock_duration_ms, max_delivery_count FROM queues WHERE name = ?1")?
        .query_row([base], |row| {
            Ok(QueueSettings {
                lock_ms: row.get(0)?,
                max_delivery_count: if dead_letter { None } else { Some(row.get(1)?) },
            })
        })
        .optional()
}

pub(super) fn insert(tx: &Connection, queue: &str, messages: &[Message], now: i64) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO messages (queue, available_at, enqueued_at, message_id, correlation_id, content_type,
                               content_encoding, properties, body)
         VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for m in messages {
        insert.execute(params![
            queue,
            now,
            m.message_id,
            m.correlation_id,
            m.content_type,
            m.content_encoding,
            properties_json(&m.application_properties)?,
            m.body,
        ])?;
    }
    Ok(())
}

/// Locks up to `max` available messages in FIFO order. Messages that have used up their deliveries
/// are moved to the dead-letter queue on the way, as Service Bus does.
pub(super) fn lock(
    tx: &Connection,
    queue: &str,
    settings: QueueSettings,
    max: usize,
    now: i64,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut locked = Vec::new();
    let until = now.saturating_add(settings.lock_ms);
    let mut select = tx.prepare_cached(&format!(
        "SELECT {SELECT_COLUMNS} FROM messages WHERE queue = ?1 AND available_at <= ?2 ORDER BY seq LIMIT ?3"
    ))?;
    // The rows selected are the first available ones in `seq` order, so within this transaction
    // the available rows of the queue between the first and the last selected are exactly those:
    // one statement locks them all.
    let mut update = tx.prepare_cached(
        "UPDATE messages SET available_at = ?5, delivery_count = delivery_count + 1
         WHERE queue = ?1 AND seq BETWEEN ?2 AND ?3 AND available_at <= ?4",
    )?;
    while locked.len() < max {
        let limit = i64::try_from(max - locked.len()).unwrap_or(i64::MAX);
        let rows = select
            .query_map(params![queue, now, limit], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (Some(first), Some(last)) = (rows.first().map(|r| r.seq), rows.last().map(|r| r.seq)) else {
            break;
        };
        for mut row in rows {
            match settings.max_delivery_count {
                // Moved out of the queue before the update, which therefore leaves it alone.
                Some(limit) if row.delivery_count >= limit => {
                    let description =
                        format!("Message could not be consumed after {limit} delivery attempts.");
                    move_to_dead_letter(tx, queue, row.seq, MAX_DELIVERY_COUNT_EXCEEDED, &description, now)?;
                }
                _ => {
                    row.delivery_count += 1;
                    row.available_at = until;
                    locked.push(row);
                }
            }
        }
        update.execute(params![queue, first, last, now, until])?;
    }
    Ok(locked)
}

/// What to do with a locked message.
#[derive(Debug)]
pub(super) enum Settle {
    Complete,
    Abandon,
    DeadLetter { reason: String, description: String },
    Renew,
}

/// Settles the message locked by delivery `delivery` of row `seq`. `Ok(None)` = the lock is gone.
/// Returns the lock's end (meaningful for renew).
pub(super) fn settle(
    tx: &Connection,
    queue: &str,
    settings: QueueSettings,
    (seq, delivery): (i64, u32),
    action: &Settle,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    if let Settle::Complete = action {
        return Ok(complete(tx, queue, (seq, delivery), now)?.then_some(now));
    }
    let held: Option<i64> = tx
        .prepare_cached(
            "SELECT available_at FROM messages
             WHERE seq = ?1 AND queue = ?2 AND delivery_count = ?3 AND available_at > ?4",
        )?
        .query_row(params![seq, queue, delivery, now], |row| row.get(0))
        .optional()?;
    let Some(until) = held else { return Ok(None) };
    match action {
        Settle::Complete => {
            tx.prepare_cached("DELETE FROM messages WHERE seq = ?1")?
                .execute([seq])?;
            Ok(Some(until))
        }
        Settle::Abandon => {
            match settings.max_delivery_count {
                Some(limit) if delivery >= limit => {
                    let description =
                        format!("Message could not be consumed after {limit} delivery attempts.");
                    move_to_dead_letter(tx, queue, seq, MAX_DELIVERY_COUNT_EXCEEDED, &description, now)?;
                }
                _ => {
                    tx.prepare_cached("UPDATE messages SET available_at = ?2 WHERE seq = ?1")?
                        .execute(params![seq, now])?;
                }
            }
            Ok(Some(now))
        }
        Settle::DeadLetter { reason, description } => {
            move_to_dead_letter(tx, queue, seq, reason, description, now)?;
            Ok(Some(now))
        }
        Settle::Renew => {
            let until = now.saturating_add(settings.lock_ms);
            tx.prepare_cached("UPDATE messages SET available_at = ?2 WHERE seq = ?1")?
                .execute(params![seq, until])?;
            Ok(Some(until))
        }
    }
}

const DELETE_LOCKED: &str =
    "DELETE FROM messages WHERE seq = ?1 AND queue = ?2 AND delivery_count = ?3 AND available_at > ?4";

/// Deletes the message locked by delivery `delivery` of row `seq`: the hot path, one statement
/// and no read first. False = the lock is gone.
pub(super) fn complete(
    tx: &Connection,
    queue: &str,
    (seq, delivery): (i64, u32),
    now: i64,
) -> rusqlite::Result<bool> {
    Ok(tx
        .prepare_cached(DELETE_LOCKED)?
        .execute(params![seq, queue, delivery, now])?
        == 1)
}

/// [`complete`] for each key, with one prepared statement.
pub(super) fn complete_many(
    tx: &Connection,
    queue: &str,
    keys: &[(i64, u32)],
    now: i64,
) -> rusqlite::Result<Vec<bool>> {
    let mut delete = tx.prepare_cached(DELETE_LOCKED)?;
    keys.iter()
        .map(|(seq, delivery)| Ok(delete.execute(params![seq, queue, delivery, now])? == 1))
        .collect()
}

fn move_to_dead_letter(
    tx: &Connection,
    queue: &str,
    seq: i64,
    reason: &str,
    description: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let properties: Option<String> = tx
        .prepare_cached("SELECT properties FROM messages WHERE seq = ?1")?
        .query_row([seq], |row| row.get(0))?;
    let mut map: BTreeMap<String, String> = match properties {
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
        }
        None => BTreeMap::new(),
    };
    map.insert(DEAD_LETTER_REASON.to_owned(), reason.to_owned());
    map.insert(DEAD_LETTER_DESCRIPTION.to_owned(), description.to_owned());
    tx.prepare_cached("UPDATE messages SET queue = ?2, available_at = ?3, properties = ?4 WHERE seq = ?1")?
        .execute(params![
            seq,
            format!("{queue}{DEAD_LETTER_SUFFIX}"),
            now,
            properties_json(&map)?
        ])?;
    Ok(())
}

pub(super) fn peek(tx: &Connection, queue: &str, max: usize) -> rusqlite::Result<Vec<StoredMessage>> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    tx.prepare_cached(&format!(
        "SELECT {SELECT_COLUMNS} FROM messages WHERE queue = ?1 ORDER BY seq LIMIT ?2"
    ))?
    .query_map(params![queue, limit], read_row)?
    .collect()
}

pub(super) fn count(tx: &Connection, queue: &str) -> rusqlite::Result<u64> {
    let count: i64 = tx
        .prepare_cached("SELECT count(*) FROM messages WHERE queue = ?1")?
        .query_row([queue], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}
