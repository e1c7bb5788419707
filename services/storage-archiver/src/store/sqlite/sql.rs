//! The SQLite schema and every statement the backend runs. Statements that write run on the writer
//! thread's open transaction; the others on a reader connection. Values are always bound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::store::{BlobCounts, BlobInfo, BlobStatus, Stats, to_i64};

/// Prepared statements kept per connection: every fixed statement and each filter combination.
const STATEMENT_CACHE: usize = 64;

/// Version of the schema, kept in `PRAGMA user_version`. 1 keyed records by blob name and position
/// (the name repeated in every row and index entry); 2 keys them by an integer (see
/// [`super::records`]).
const SCHEMA_VERSION: i64 = 2;

/// The writer's page cache: the record indexes of a large index stay in memory while it grows.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// `blobs` has one row per blob version; `cursors` one per listed container prefix. The records
/// and their blob ids are in [`super::records`].
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
";

/// WAL, `synchronous=FULL` (a committed receipt or claim survives a power cut; group commit keeps
/// the fsyncs few), a busy timeout for other processes sharing the file, and the schema.
pub(super) fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrate(conn)
}

/// Creates the schema, or brings an older one up to [`SCHEMA_VERSION`], in one transaction.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the index has schema version {version}, newer than this archiver's {SCHEMA_VERSION}: \
                 upgrade the archiver or index into a new file"
            )),
        ));
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        conn.execute_batch(SCHEMA)?;
        if version == 1 {
            super::records::migrate_from_v1(conn)?;
        } else {
            super::records::create(conn)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
    })();
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(error) => {
            // The transaction's own error is the one to report.
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
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

pub(super) fn unsigned(value: i64) -> u64 {
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
pub(super) struct Args(pub(super) Vec<Value>);

impl Args {
    pub(super) fn push(&mut self, value: impl Into<Value>) -> String {
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
