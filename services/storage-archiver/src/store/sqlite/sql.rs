//! The SQLite schema and every statement the backend runs. Statements that write run on the writer
//! thread's open transaction; the others on a reader connection. Values are always bound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::store::{
    BlobCounts, BlobInfo, BlobStatus, Cursor, DeviceSummary, IndexRecord, MESSAGE_ID_LIMIT, QueryFilter,
    Stats, StoredRecord, to_i64,
};

/// Prepared statements kept per connection: every fixed statement and each filter combination.
const STATEMENT_CACHE: usize = 64;

/// Version of [`SCHEMA`], kept in `PRAGMA user_version` for later migrations.
const SCHEMA_VERSION: i64 = 1;

/// `blobs` has one row per blob version; `records` one per message record, keyed by blob name and
/// position (the idempotency key); `cursors` one per listed container prefix. The record indexes
/// end in `(blob, position)` so that a cursor page is an index range, never a sort.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cursors (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    name           TEXT    NOT NULL,
    etag           TEXT    NOT NULL,
    size           INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'indexing', 'indexed', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    records        INTEGER NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    lease_until_ms INTEGER,
    updated_ms     INTEGER NOT NULL,
    PRIMARY KEY (name, etag)
);
CREATE INDEX IF NOT EXISTS blobs_status ON blobs (status, updated_ms);
CREATE TABLE IF NOT EXISTS records (
    blob             TEXT    NOT NULL,
    position         INTEGER NOT NULL,
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
    body_raw         BLOB,
    PRIMARY KEY (blob, position)
);
CREATE INDEX IF NOT EXISTS records_device ON records (device_id, enqueued_ms, blob, position);
CREATE INDEX IF NOT EXISTS records_time ON records (enqueued_ms, blob, position);
CREATE INDEX IF NOT EXISTS records_message ON records (message_id);
";

/// WAL, `synchronous=FULL` (a committed receipt or claim survives a power cut; group commit keeps
/// the fsyncs few), a busy timeout for other processes sharing the file, and the schema.
pub(super) fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

/// A connection that only reads (WAL readers never block the writer).
pub(super) fn configure_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "query_only", true)
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn cursor(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM cursors WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
}

pub(super) fn set_cursor(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO cursors (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([key, value])?;
    Ok(())
}

pub(super) fn upsert_blob(
    conn: &Connection,
    name: &str,
    etag: &str,
    size: u64,
    now: i64,
) -> rusqlite::Result<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO blobs (name, etag, size, status, updated_ms) VALUES (?1, ?2, ?3, 'pending', ?4)
             ON CONFLICT (name, etag) DO NOTHING",
        )?
        .execute(params![name, etag, to_i64(size), now])?;
    Ok(inserted == 1)
}

const BLOB_COLUMNS: &str =
    "name, etag, size, status, attempts, error, records, claimed_by, lease_until_ms, updated_ms";

fn read_blob(row: &Row<'_>) -> rusqlite::Result<BlobInfo> {
    let status: String = row.get(3)?;
    let status = BlobStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(3, Type::Text, format!("status {status:?}").into())
    })?;
    Ok(BlobInfo {
        name: row.get(0)?,
        etag: row.get(1)?,
        size: unsigned(row.get(2)?),
        status,
        attempts: u32::try_from(row.get::<_, i64>(4)?).unwrap_or(u32::MAX),
        error: row.get(5)?,
        records: unsigned(row.get(6)?),
        claimed_by: row.get(7)?,
        lease_until_ms: row.get(8)?,
        updated_ms: row.get(9)?,
    })
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// See [`crate::store::Store::claim`]. Runs in the writer's transaction, so no other claim interleaves.
pub(super) fn claim(
    conn: &Connection,
    worker: &str,
    lease_ms: i64,
    max_attempts: u32,
    now: i64,
) -> rusqlite::Result<Option<BlobInfo>> {
    // A lease that lapsed on the last allowed attempt: the blob probably kills its worker.
    conn.prepare_cached(
        "UPDATE blobs SET status = 'failed', lease_until_ms = NULL, updated_ms = ?1,
             error = 'the lease lapsed on attempt ' || attempts || ' (did the blob crash its worker?)'
         WHERE status = 'indexing' AND lease_until_ms <= ?1 AND attempts >= ?2",
    )?
    .execute(params![now, max_attempts])?;
    let lapsed = conn
        .prepare_cached(
            "SELECT name, etag FROM blobs WHERE status = 'indexing' AND lease_until_ms <= ?1 AND attempts < ?2
             ORDER BY lease_until_ms LIMIT 1",
        )?
        .query_row(params![now, max_attempts], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
        .optional()?;
    let picked = match lapsed {
        Some(found) => Some(found),
        None => conn
            .prepare_cached(
                "SELECT name, etag FROM blobs WHERE status = 'pending' AND attempts < ?1
                 ORDER BY updated_ms, rowid LIMIT 1",
            )?
            .query_row(params![max_attempts], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .optional()?,
    };
    let Some((name, etag)) = picked else {
        return Ok(None);
    };
    conn.prepare_cached(&format!(
        "UPDATE blobs SET status = 'indexing', claimed_by = ?3, lease_until_ms = ?4, attempts = attempts + 1,
             updated_ms = ?5
         WHERE name = ?1 AND etag = ?2 RETURNING {BLOB_COLUMNS}"
    ))?
    .query_row(
        params![name, etag, worker, now.saturating_add(lease_ms), now],
        read_blob,
    )
    .map(Some)
}

pub(super) fn renew(
    conn: &Connection,
    name: &str,
    etag: &str,
    worker: &str,
    lease_ms: i64,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE blobs SET lease_until_ms = ?4, updated_ms = ?5
             WHERE name = ?1 AND etag = ?2 AND status = 'indexing' AND claimed_by = ?3",
        )?
        .execute(params![name, etag, worker, now.saturating_add(lease_ms), now])?;
    Ok(changed == 1)
}

/// A blob version as held by a worker.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) name: String,
    pub(super) etag: String,
    pub(super) worker: String,
}

/// Ends a claim: `indexed` with a record count, `pending` or `failed` with an error.
/// False if the worker no longer holds the blob.
pub(super) fn release(
    conn: &Connection,
    held: &Held,
    status: BlobStatus,
    records: Option<u64>,
    error: Option<&str>,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE blobs SET status = ?4, records = COALESCE(?5, records), error = ?6, lease_until_ms = NULL,
                 updated_ms = ?7
             WHERE name = ?1 AND etag = ?2 AND status = 'indexing' AND claimed_by = ?3",
        )?
        .execute(params![
            held.name,
            held.etag,
            held.worker,
            status.as_str(),
            records.map(to_i64),
            error,
            now
        ])?;
    Ok(changed == 1)
}

pub(super) fn reset(conn: &Connection, name: &str, now: i64) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE blobs SET status = 'pending', attempts = 0, error = NULL, claimed_by = NULL,
                 lease_until_ms = NULL, updated_ms = ?2
             WHERE rowid = (SELECT MAX(rowid) FROM blobs WHERE name = ?1) AND status IN ('failed', 'indexed')",
        )?
        .execute(params![name, now])?;
    Ok(changed == 1)
}

/// Bound values of a statement built at run time; `push` answers the placeholder to write.
#[derive(Debug, Default)]
struct Args(Vec<Value>);

impl Args {
    fn push(&mut self, value: impl Into<Value>) -> String {
        self.0.push(value.into());
        format!("?{}", self.0.len())
    }
}

pub(super) fn blobs(
    conn: &Connection,
    status: Option<BlobStatus>,
    limit: u32,
    after: Option<&str>,
) -> rusqlite::Result<Vec<BlobInfo>> {
    let mut args = Args::default();
    let mut sql = format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE 1 = 1");
    if let Some(status) = status {
        sql += &format!(" AND status = {}", args.push(status.as_str().to_owned()));
    }
    if let Some(after) = after {
        sql += &format!(" AND name > {}", args.push(after.to_owned()));
    }
    sql += &format!(" ORDER BY name, etag LIMIT {}", args.push(i64::from(limit)));
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(args.0), read_blob)?;
    rows.collect()
}

pub(super) fn insert_records(conn: &Connection, records: &[IndexRecord]) -> rusqlite::Result<u64> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO records (blob, position, enqueued_ms, device_id, module_id, message_id, correlation_id,
                              content_type, content_encoding, properties, system, body, body_raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (blob, position) DO NOTHING",
    )?;
    let mut inserted = 0;
    for r in records {
        let body = r.body.as_ref().map(json_text).transpose()?;
        inserted += insert.execute(params![
            r.blob,
            to_i64(r.position),
            r.enqueued_ms,
            r.device_id,
            r.module_id,
            r.message_id,
            r.correlation_id,
            r.content_type,
            r.content_encoding,
            json_text(&r.properties)?,
            json_text(&r.system)?,
            body,
            r.body_raw,
        ])? as u64;
    }
    Ok(inserted)
}

fn json_text(value: &serde_json::Value) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

const RECORD_COLUMNS: &str = "blob, position, enqueued_ms, device_id, module_id, message_id, correlation_id, \
                              content_type, content_encoding, properties, system, body, body_raw";

fn read_record(row: &Row<'_>) -> rusqlite::Result<StoredRecord> {
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

fn read_json(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<serde_json::Value>> {
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
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM records WHERE 1 = 1");
    if let Some(device) = &filter.device_id {
        sql += &format!(" AND device_id = {}", args.push(device.clone()));
    }
    if let Some(id) = &filter.message_id {
        sql += &format!(" AND message_id = {}", args.push(id.clone()));
    }
    if let Some(from) = filter.from_ms {
        sql += &format!(" AND enqueued_ms >= {}", args.push(from));
    }
    if let Some(to) = filter.to_ms {
        sql += &format!(" AND enqueued_ms < {}", args.push(to));
    }
    if let Some(cursor) = after {
        let time = args.push(cursor.enqueued_ms);
        let blob = args.push(cursor.blob.clone());
        let position = args.push(to_i64(cursor.position));
        // The plain time bound lets SQLite start the index range there.
        sql += &format!(
            " AND enqueued_ms >= {time} AND (enqueued_ms, blob, position) > ({time}, {blob}, {position})"
        );
    }
    sql += &format!(
        " ORDER BY enqueued_ms, blob, position LIMIT {}",
        args.push(i64::from(limit))
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(args.0), read_record)?;
    rows.collect()
}

pub(super) fn by_message_id(conn: &Connection, id: &str) -> rusqlite::Result<Vec<StoredRecord>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE message_id = ?1
         ORDER BY enqueued_ms, blob, position LIMIT ?2"
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

pub(super) fn stats(conn: &Connection) -> rusqlite::Result<Stats> {
    let (records, newest_enqueued_ms) = conn
        .prepare_cached("SELECT COUNT(*), MAX(enqueued_ms) FROM records")?
        .query_row([], |row| Ok((unsigned(row.get(0)?), row.get(1)?)))?;
    let mut blobs = BlobCounts::default();
    let mut statement = conn.prepare_cached("SELECT status, COUNT(*) FROM blobs GROUP BY status")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        if let Some(status) = BlobStatus::parse(&status) {
            blobs.add(status, unsigned(row.get(1)?));
        }
    }
    Ok(Stats {
        records,
        blobs,
        newest_enqueued_ms,
    })
}
