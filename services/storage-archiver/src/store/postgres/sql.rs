//! The PostgreSQL schema and the fixed statements; the statements built at run time (filters) are
//! in `query.rs`.
//!
//! PostgreSQL cannot put a key longer than about 2,700 bytes in a B-tree, and a blob name may be
//! 1,024 characters of any Unicode (4 KiB). So names live once in `blob_names`, unique through a
//! hash-index exclusion constraint (exact: hash matches are rechecked), and the other tables refer
//! to them by id. Blob listings are ordered through an index on the names' first 400 characters.
//! Records are ordered `(enqueued_ms, blob_id, position)`. Times are the database's clock, which
//! every replica shares.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{BACKEND, pg_error};
use crate::store::{BlobInfo, BlobStatus, Error, IndexRecord, Result, StoredRecord};

/// Serialises migrations of concurrently starting replicas (`pg_advisory_xact_lock` key).
pub(super) const MIGRATION_LOCK: i64 = 0x6172_6368_6976_6572; // "archiver"

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS cursors (
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    CONSTRAINT cursors_key_unique EXCLUDE USING hash (key WITH =)
);
CREATE TABLE IF NOT EXISTS blob_names (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    CONSTRAINT blob_names_name_unique EXCLUDE USING hash (name WITH =)
);
CREATE INDEX IF NOT EXISTS blob_names_order ON blob_names (left(name, 400));
CREATE TABLE IF NOT EXISTS blobs (
    name_id        BIGINT  NOT NULL,
    etag           TEXT    NOT NULL,
    seq            BIGINT  GENERATED ALWAYS AS IDENTITY,
    size           BIGINT  NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'indexing', 'indexed', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    records        BIGINT  NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    lease_until_ms BIGINT,
    updated_ms     BIGINT  NOT NULL,
    PRIMARY KEY (name_id, etag)
);
CREATE INDEX IF NOT EXISTS blobs_status ON blobs (status, updated_ms, seq);
CREATE TABLE IF NOT EXISTS records (
    blob_id          BIGINT NOT NULL,
    position         BIGINT NOT NULL,
    enqueued_ms      BIGINT NOT NULL,
    device_id        TEXT COLLATE "C",
    module_id        TEXT,
    message_id       TEXT,
    correlation_id   TEXT,
    content_type     TEXT,
    content_encoding TEXT,
    properties       JSONB  NOT NULL,
    system           JSONB  NOT NULL,
    body             JSONB,
    body_raw         BYTEA,
    PRIMARY KEY (blob_id, position)
);
CREATE INDEX IF NOT EXISTS records_device ON records (device_id, enqueued_ms, blob_id, position);
CREATE INDEX IF NOT EXISTS records_time ON records (enqueued_ms, blob_id, position);
CREATE INDEX IF NOT EXISTS records_message ON records USING hash (message_id);
CREATE INDEX IF NOT EXISTS records_properties ON records USING gin (properties jsonb_path_ops);
"#;

/// Milliseconds since the Unix epoch at the start of the current transaction, database clock.
macro_rules! now_ms {
    () => {
        "(extract(epoch from now()) * 1000)::bigint"
    };
}

pub(super) const NOW: &str = concat!("SELECT ", now_ms!());

pub(super) const GET_CURSOR: &str = "SELECT value FROM cursors WHERE key = $1";
pub(super) const UPDATE_CURSOR: &str = "UPDATE cursors SET value = $2 WHERE key = $1";
pub(super) const INSERT_CURSOR: &str =
    "INSERT INTO cursors (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// The id of name `$1`, adding the name if new. Answers nothing when another transaction added it
/// concurrently (this statement's snapshot predates it): run it again then.
const NAME_ID: &str = "
WITH found AS (SELECT id FROM blob_names WHERE name = $1),
     made AS (INSERT INTO blob_names (name) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM found)
              ON CONFLICT DO NOTHING RETURNING id)
SELECT id FROM found UNION ALL SELECT id FROM made";

pub(super) const UPSERT_BLOB: &str = concat!(
    "INSERT INTO blobs (name_id, etag, size, status, updated_ms) VALUES ($1, $2, $3, 'pending', ",
    now_ms!(),
    ") ON CONFLICT (name_id, etag) DO NOTHING"
);

/// A lease that lapsed on the last allowed attempt: the blob probably kills its worker.
pub(super) const CLAIM_GIVE_UP: &str = "
UPDATE blobs SET status = 'failed', lease_until_ms = NULL, updated_ms = $1,
    error = 'the lease lapsed on attempt ' || attempts || ' (did the blob crash its worker?)'
WHERE (name_id, etag) IN (
    SELECT name_id, etag FROM blobs WHERE status = 'indexing' AND lease_until_ms <= $1 AND attempts >= $2
    FOR UPDATE SKIP LOCKED)";
pub(super) const CLAIM_PICK_LAPSED: &str = "
SELECT name_id, etag FROM blobs WHERE status = 'indexing' AND lease_until_ms <= $1 AND attempts < $2
ORDER BY lease_until_ms LIMIT 1 FOR UPDATE SKIP LOCKED";
pub(super) const CLAIM_PICK_PENDING: &str = "
SELECT name_id, etag FROM blobs WHERE status = 'pending' AND attempts < $1
ORDER BY updated_ms, seq LIMIT 1 FOR UPDATE SKIP LOCKED";

/// Columns of a [`BlobInfo`], from `blobs b JOIN blob_names n`.
macro_rules! blob_columns {
    () => {
        "n.name, b.etag, b.size, b.status, b.attempts, b.error, b.records, b.claimed_by, b.lease_until_ms, \
         b.updated_ms"
    };
}
pub(super) use blob_columns;

pub(super) const CLAIM_TAKE: &str = concat!(
    "UPDATE blobs b SET status = 'indexing', claimed_by = $3, lease_until_ms = $4, attempts = b.attempts + 1,
         updated_ms = $5
     FROM blob_names n WHERE n.id = b.name_id AND b.name_id = $1 AND b.etag = $2 RETURNING ",
    blob_columns!()
);

pub(super) const RENEW: &str = concat!(
    "UPDATE blobs SET lease_until_ms = ",
    now_ms!(),
    " + $4, updated_ms = ",
    now_ms!(),
    " WHERE name_id = (SELECT id FROM blob_names WHERE name = $1) AND etag = $2 AND status = 'indexing'
         AND claimed_by = $3"
);

pub(super) const RELEASE: &str = concat!(
    "UPDATE blobs SET status = $4, records = COALESCE($5, records), error = $6, lease_until_ms = NULL,
         updated_ms = ",
    now_ms!(),
    " WHERE name_id = (SELECT id FROM blob_names WHERE name = $1) AND etag = $2 AND status = 'indexing'
         AND claimed_by = $3"
);

pub(super) const RESET: &str = concat!(
    "WITH newest AS (SELECT b.name_id, b.etag FROM blobs b JOIN blob_names n ON n.id = b.name_id
                     WHERE n.name = $1 ORDER BY b.seq DESC LIMIT 1)
     UPDATE blobs b SET status = 'pending', attempts = 0, error = NULL, claimed_by = NULL,
         lease_until_ms = NULL, updated_ms = ",
    now_ms!(),
    " FROM newest WHERE b.name_id = newest.name_id AND b.etag = newest.etag
         AND b.status IN ('failed', 'indexed')"
);

pub(super) const INSERT_RECORDS: &str = "
INSERT INTO records (blob_id, position, enqueued_ms, device_id, module_id, message_id, correlation_id,
                     content_type, content_encoding, properties, system, body, body_raw)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::jsonb[], $13::bytea[])
ON CONFLICT DO NOTHING";

pub(super) const STATS_RECORDS: &str = "SELECT count(*), max(enqueued_ms) FROM records";
pub(super) const STATS_BLOBS: &str = "SELECT status, count(*) FROM blobs GROUP BY status";

/// Columns of a [`StoredRecord`], from `records r JOIN blob_names n`.
macro_rules! record_columns {
    () => {
        "n.name, r.position, r.enqueued_ms, r.device_id, r.module_id, r.message_id, r.correlation_id, \
         r.content_type, r.content_encoding, r.properties, r.system, r.body, r.body_raw"
    };
}
pub(super) use record_columns;

/// The id of blob name `name`, added if new.
pub(super) async fn name_id(client: &impl GenericClient, name: &str) -> Result<i64> {
    let statement = client
        .prepare_cached(NAME_ID)
        .await
        .map_err(pg_error("prepare"))?;
    // Twice at most: the second run's snapshot sees the row a concurrent transaction committed.
    for _ in 0..3 {
        if let Some(row) = client
            .query_opt(&statement, &[&name])
            .await
            .map_err(pg_error("record a blob name"))?
        {
            return row.try_get(0).map_err(pg_error("record a blob name"));
        }
    }
    Err(Error::backend(
        BACKEND,
        "record a blob name",
        "the name vanished while being added",
    ))
}

pub(super) fn read_blob(row: &Row) -> Result<BlobInfo> {
    let status: String = row.try_get(3).map_err(pg_error("decode a blob"))?;
    let status = BlobStatus::parse(&status)
        .ok_or_else(|| Error::backend(BACKEND, "decode a blob", format!("unknown status {status:?}")))?;
    read_blob_fields(row, status).map_err(pg_error("decode a blob"))
}

fn read_blob_fields(row: &Row, status: BlobStatus) -> Result<BlobInfo, tokio_postgres::Error> {
    Ok(BlobInfo {
        name: row.try_get(0)?,
        etag: row.try_get(1)?,
        size: unsigned(row.try_get(2)?),
        status,
        attempts: u32::try_from(row.try_get::<_, i32>(4)?).unwrap_or(0),
        error: row.try_get(5)?,
        records: unsigned(row.try_get(6)?),
        claimed_by: row.try_get(7)?,
        lease_until_ms: row.try_get(8)?,
        updated_ms: row.try_get(9)?,
    })
}

pub(super) fn read_record(row: &Row) -> Result<StoredRecord> {
    read_record_inner(row).map_err(pg_error("decode a record"))
}

fn read_record_inner(row: &Row) -> Result<StoredRecord, tokio_postgres::Error> {
    Ok(IndexRecord {
        blob: row.try_get(0)?,
        position: unsigned(row.try_get(1)?),
        enqueued_ms: row.try_get(2)?,
        device_id: row.try_get(3)?,
        module_id: row.try_get(4)?,
        message_id: row.try_get(5)?,
        correlation_id: row.try_get(6)?,
        content_type: row.try_get(7)?,
        content_encoding: row.try_get(8)?,
        properties: row.try_get(9)?,
        system: row.try_get(10)?,
        body: row.try_get(11)?,
        body_raw: row.try_get(12)?,
    })
}

pub(super) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
