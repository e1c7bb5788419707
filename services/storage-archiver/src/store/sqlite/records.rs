//! The records table and the statements on it.
//!
//! A record's identity is its blob name and position. Rows are keyed by one integer instead,
//! `key = blob id << 32 | position`, where the blob id comes from `blob_ids` (one row per blob
//! name): the name is stored once, not in every row and in every index entry, and the secondary
//! indexes end in the integer key SQLite appends to them anyway. Listings are ordered by
//! `(enqueued_ms, key)`: ties between blobs are broken by blob id (the order blobs were first
//! indexed), as in the PostgreSQL backend.
//!
//! The JSON columns are made into text by the caller ([`Row::new`]), so the writer thread only binds.

use rusqlite::types::Type;
use rusqlite::{Connection, Row as SqlRow, params, params_from_iter};

use super::sql::{Args, unsigned};
use crate::store::{
    Cursor, DeviceSummary, IndexRecord, MAX_POSITION, MESSAGE_ID_LIMIT, QueryFilter, StoredRecord, to_i64,
};

/// The tables and indexes of schema version 2.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS blob_ids (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS records (
    key              INTEGER PRIMARY KEY,
    enqueued_ms      INTEGER NOT NULL,
    device_id        TEXT,
    module_id        TEXT,
    message_id       TEXT,
    correlation_id   TEXT,
    content_type     TEXT,
    content_encoding TEXT,
    properties       TEXT    NOT NULL,
    system           TEXT    NOT NULL,
    body             TEXT,
    body_raw         BLOB
);
CREATE INDEX IF NOT EXISTS records_device ON records (device_id, enqueued_ms);
CREATE INDEX IF NOT EXISTS records_time ON records (enqueued_ms);
CREATE INDEX IF NOT EXISTS records_message ON records (message_id);
";

/// Creates the records tables (schema version 2) if they are missing.
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLES)
}

/// Moves the records of a schema-1 index (keyed by blob name and position) into the tables of
/// version 2, inside the caller's transaction. Blob ids follow the names' order.
pub(super) fn migrate_from_v1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE records RENAME TO records_v1;
         DROP INDEX IF EXISTS records_device;
         DROP INDEX IF EXISTS records_time;
         DROP INDEX IF EXISTS records_message;",
    )?;
    conn.execute_batch(TABLES)?;
    conn.execute_batch(
        "INSERT INTO blob_ids (name) SELECT DISTINCT blob FROM records_v1 ORDER BY blob;
         INSERT INTO records (key, enqueued_ms, device_id, module_id, message_id, correlation_id,
                              content_type, content_encoding, properties, system, body, body_raw)
             SELECT (b.id << 32) | r.position, r.enqueued_ms, r.device_id, r.module_id, r.message_id,
                    r.correlation_id, r.content_type, r.content_encoding, r.properties, r.system, r.body,
                    r.body_raw
             FROM records_v1 r JOIN blob_ids b ON b.name = r.blob
             WHERE r.position BETWEEN 0 AND 4294967295;
         DROP TABLE records_v1;",
    )
}

/// A record ready for the writer: its JSON columns already text.
#[derive(Debug)]
pub(super) struct Row {
    blob: String,
    position: i64,
    enqueued_ms: i64,
    device_id: Option<String>,
    module_id: Option<String>,
    message_id: Option<String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    properties: String,
    system: String,
    body: Option<String>,
    body_raw: Option<Vec<u8>>,
}

impl Row {
    /// The row for a record the store validated (its position at most [`MAX_POSITION`]).
    pub(super) fn new(record: &IndexRecord) -> serde_json::Result<Self> {
        Ok(Row {
            blob: record.blob.clone(),
            position: to_i64(record.position.min(MAX_POSITION)),
            enqueued_ms: record.enqueued_ms,
            device_id: record.device_id.clone(),
            module_id: record.module_id.clone(),
            message_id: record.message_id.clone(),
            correlation_id: record.correlation_id.clone(),
            content_type: record.content_type.clone(),
            content_encoding: record.content_encoding.clone(),
            properties: serde_json::to_string(&record.properties)?,
            system: serde_json::to_string(&record.system)?,
            body: record.body.as_ref().map(serde_json::to_string).transpose()?,
            body_raw: record.body_raw.clone(),
        })
    }
}

/// Inserts the rows that are not there yet (by blob and position); returns how many were new.
pub(super) fn insert(conn: &Connection, rows: &[Row]) -> rusqlite::Result<u64> {
    let mut name_blob =
        conn.prepare_cached("INSERT INTO blob_ids (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?;
    let mut blob_id = conn.prepare_cached("SELECT id FROM blob_ids WHERE name = ?1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO records (key, enqueued_ms, device_id, module_id, message_id, correlation_id,
                              content_type, content_encoding, properties, system, body, body_raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (key) DO NOTHING",
    )?;
    let mut current: Option<(&str, i64)> = None;
    let mut inserted = 0;
    for r in rows {
        let id = match current {
            Some((name, id)) if name == r.blob => id,
            _ => {
                name_blob.execute([&r.blob])?;
                let id: i64 = blob_id.query_row([&r.blob], |row| row.get(0))?;
                current = Some((&r.blob, id));
                id
            }
        };
        inserted += insert.execute(params![
            (id << 32) | r.position,
            r.enqueued_ms,
            r.device_id,
            r.module_id,
            r.message_id,
            r.correlation_id,
            r.content_type,
            r.content_encoding,
            r.properties,
            r.system,
            r.body,
            r.body_raw,
        ])? as u64;
    }
    Ok(inserted)
}

const RECORD_COLUMNS: &str = "b.name, r.key & 4294967295, r.enqueued_ms, r.device_id, r.module_id, r.message_id, \
                              r.correlation_id, r.content_type, r.content_encoding, r.properties, r.system, \
                              r.body, r.body_raw";

const RECORDS_WITH_NAMES: &str = "records r JOIN blob_ids b ON b.id = r.key >> 32";

fn read_record(row: &SqlRow<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(IndexRecord {
        blob: row.get(0)?,
        position: unsigned(row.get(1)?),
        enqueued_ms: row.get(2)?,
        device_id: row.get(3)?,
        module_id: row.get(4)?,
        message_id: row.get(5)?,
        correlation_id: row.get(6)?,
        content_type: row.get(7)?,
        content_encoding: row.get(8)?,
        properties: read_json(row, 9)?.unwrap_or_default(),
        system: read_json(row, 10)?.unwrap_or_default(),
        body: read_json(row, 11)?,
        body_raw: row.get(12)?,
    })
}

fn read_json(row: &SqlRow<'_>, index: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
    })
    .transpose()
}

pub(super) fn query(
    conn: &Connection,
    filter: &QueryFilter,
    limit: u32,
    after: Option<&Cursor>,
) -> rusqlite::Result<Vec<StoredRecord>> {
    let mut args = Args::default();
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM {RECORDS_WITH_NAMES} WHERE 1 = 1");
    if let Some(device) = &filter.device_id {
        sql += &format!(" AND r.device_id = {}", args.push(device.clone()));
    }
    if let Some(id) = &filter.message_id {
        sql += &format!(" AND r.message_id = {}", args.push(id.clone()));
    }
    if let Some(from) = filter.from_ms {
        sql += &format!(" AND r.enqueued_ms >= {}", args.push(from));
    }
    if let Some(to) = filter.to_ms {
        sql += &format!(" AND r.enqueued_ms < {}", args.push(to));
    }
    if let Some(cursor) = after {
        let time = args.push(cursor.enqueued_ms);
        let blob = args.push(cursor.blob.clone());
        let position = args.push(to_i64(cursor.position.min(MAX_POSITION)));
        // The plain time bound lets SQLite start the index range there. A cursor naming a blob
        // that has no records matches nothing (as on PostgreSQL): no row follows it.
        sql += &format!(
            " AND r.enqueued_ms >= {time} AND (r.enqueued_ms, r.key) > ({time}, \
             ((SELECT id FROM blob_ids WHERE name = {blob}) << 32) | {position})"
        );
    }
    sql += &format!(
        " ORDER BY r.enqueued_ms, r.key LIMIT {}",
        args.push(i64::from(limit))
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(args.0), read_record)?;
    rows.collect()
}

pub(super) fn by_message_id(conn: &Connection, id: &str) -> rusqlite::Result<Vec<StoredRecord>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM {RECORDS_WITH_NAMES} WHERE r.message_id = ?1
         ORDER BY r.enqueued_ms, r.key LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![id, MESSAGE_ID_LIMIT], read_record)?;
    rows.collect()
}

pub(super) fn devices(
    conn: &Connection,
    limit: u32,
    after: Option<&str>,
) -> rusqlite::Result<Vec<DeviceSummary>> {
    let mut args = Args::default();
    let mut sql = "SELECT device_id, COUNT(*), MIN(enqueued_ms), MAX(enqueued_ms) FROM records
                   WHERE device_id IS NOT NULL"
        .to_owned();
    if let Some(after) = after {
        sql += &format!(" AND device_id > {}", args.push(after.to_owned()));
    }
    sql += &format!(
        " GROUP BY device_id ORDER BY device_id LIMIT {}",
        args.push(i64::from(limit))
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(args.0), |row| {
        Ok(DeviceSummary {
            device_id: row.get(0)?,
            count: unsigned(row.get(1)?),
            first_ms: row.get(2)?,
            last_ms: row.get(3)?,
        })
    })?;
    rows.collect()
}
