//! The index: which blobs exist and how far each got (receipts, claims shared by replicas), and the
//! records read from them, queryable by device, enqueued time and message id.
//!
//! One trait, [`Store`], two backends chosen by URL ([`open`]):
//! - `sqlite://path/to/index.db`: one file (WAL), for one host (another process, such as the reindex
//!   command, shares it through SQLite's locks). Writes go through one thread that group-commits
//!   (`synchronous=FULL`: an answered write survives a power cut); reads use a small pool of
//!   connections on blocking threads.
//! - `postgres://user@host:port/db`: shared by every replica. Claims use `FOR UPDATE SKIP LOCKED`;
//!   lease times come from the database clock, so replicas' clocks need not agree.
//!
//! Semantics both backends share (and the tests in `tests/` check on both):
//! - A blob *version* is `(name, etag)`. [`Store::upsert_blob`] records a version once, as
//!   [`BlobStatus::Pending`]; seeing it again changes nothing.
//! - [`Store::claim`] hands one blob to one worker for a lease; a worker renews, finishes or fails
//!   it. A lapsed lease makes the blob claimable again (the worker died). A blob whose lease lapses
//!   on its last allowed attempt is marked [`BlobStatus::Failed`] (it probably crashes its worker).
//! - A record is keyed by `(blob, position)`: inserting it again does nothing, so a blob indexed
//!   twice (a retry, a lapsed lease, a reindex) never duplicates a row.
//! - Records are read in `(enqueued_ms, blob, position)` order (PostgreSQL breaks ties between
//!   blobs by an internal blob id rather than by name); a [`Cursor`] names the last row read.
//! - Every value reaches SQL as a bound parameter; user input is never formatted into a statement.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;
mod types;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use self::types::{
    BlobCounts, BlobInfo, BlobStatus, Cursor, DeviceSummary, IndexRecord, QueryFilter, Stats, StoredRecord,
};

/// Longest device id the index accepts, in bytes (IoT Hub allows 128 characters). PostgreSQL
/// cannot index longer keys; the limit holds on both backends so they accept the same records.
pub const MAX_DEVICE_ID_BYTES: usize = 1024;

/// The highest record position the index accepts (2³² − 1): the SQLite backend keys a row by its
/// blob's id and its position in one integer. A blob with more records would be hundreds of
/// gigabytes; IoT Hub writes blobs of at most 500 MB.
pub const MAX_POSITION: u64 = u32::MAX as u64;

/// Most rows [`Store::by_message_id`] returns (a message id is normally unique; devices choose it).
pub const MESSAGE_ID_LIMIT: u32 = 1000;

/// What went wrong in the index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The index URL is not one this module opens. Never echoes the URL (it may hold a password).
    #[error("invalid index URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// A record the index cannot store; retrying does not help (the blob's fault).
    #[error("record {position} of blob {blob:?} cannot be indexed: {reason}")]
    InvalidRecord {
        /// The record's blob.
        blob: String,
        /// The record's position in the blob.
        position: u64,
        /// Why not.
        reason: String,
    },
    /// The worker no longer holds the blob: its lease lapsed and another worker took it, or the
    /// blob was reset. Its records are kept (inserting is idempotent); the other worker finishes.
    #[error("the claim on blob {name:?} (etag {etag:?}) was lost")]
    ClaimLost {
        /// Blob name.
        name: String,
        /// Blob version.
        etag: String,
    },
    /// The database failed or could not be reached, or a stored row does not decode.
    #[error("{backend}: {operation} failed: {cause}")]
    Backend {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The database's description.
        cause: String,
    },
    /// The store was shut down.
    #[error("the index store is closed")]
    Closed,
}

impl Error {
    fn backend(backend: &'static str, operation: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Backend {
            backend,
            operation,
            cause: cause.to_string(),
        }
    }
}

/// Result of index operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The future every [`Store`] method returns (boxed, so the trait can be used as `dyn Store`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The index, as every part of the archiver uses it. Cheap to share: `Arc<dyn Store>`.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The last name listed under `key` (one per container and prefix group), if any.
    fn cursor<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>>;

    /// Stores the listing cursor for `key`.
    fn set_cursor<'a>(&'a self, key: &'a str, value: &'a str) -> StoreFuture<'a, ()>;

    /// Records a blob version: a new `(name, etag)` becomes [`BlobStatus::Pending`] (`true`); a known
    /// one changes nothing (`false`), so each version is indexed once. Older versions of the name
    /// are left as they are.
    fn upsert_blob<'a>(&'a self, name: &'a str, etag: &'a str, size: u64) -> StoreFuture<'a, bool>;

    /// Claims one blob for `worker` until now + `lease`: the longest-expired lapsed lease first,
    /// else the pending blob waiting longest. The claim counts an attempt; blobs that have had
    /// `max_attempts` are not claimed (a lapsed one is marked failed). `None`: nothing to do.
    /// Two callers never get the same blob while its lease runs. Worker ids must be unique per
    /// process (the store tells claims apart by worker id).
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        lease: Duration,
        max_attempts: u32,
    ) -> StoreFuture<'a, Option<BlobInfo>>;

    /// Extends `worker`'s claim to now + `lease`; `false` if the claim was lost (another worker
    /// took the blob over, or it was reset). Renewing a lapsed lease nobody took over succeeds.
    fn renew<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Inserts records, all or none; a record whose `(blob, position)` is already stored is
    /// skipped. Returns how many rows were new. An answer means committed.
    fn insert_records<'a>(&'a self, records: &'a [IndexRecord]) -> StoreFuture<'a, u64>;

    /// Marks `worker`'s blob [`BlobStatus::Indexed`] with its record count.
    /// [`Error::ClaimLost`] if the worker no longer holds it.
    fn finish<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        records: u64,
    ) -> StoreFuture<'a, ()>;

    /// Gives `worker`'s blob back: [`BlobStatus::Pending`] to retry (the attempt stays counted), or
    /// [`BlobStatus::Failed`] when `final_`; `error` is kept either way.
    /// [`Error::ClaimLost`] if the worker no longer holds it.
    fn fail<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        error: &'a str,
        final_: bool,
    ) -> StoreFuture<'a, ()>;

    /// Reindexes a blob: its newest version, if failed or indexed, becomes pending with no
    /// attempts and no error. Its records stay (inserting them again is idempotent). `false` if
    /// there is no such blob or its newest version is pending or being indexed.
    fn reset<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool>;

    /// Blob versions, by name then etag, optionally only those in `status`, names after `after`.
    fn blobs<'a>(
        &'a self,
        status: Option<BlobStatus>,
        limit: u32,
        after: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<BlobInfo>>;

    /// Records matching `filter`, in `(enqueued_ms, blob, position)` order, after `after`.
    fn query<'a>(
        &'a self,
        filter: &'a QueryFilter,
        limit: u32,
        after: Option<&'a Cursor>,
    ) -> StoreFuture<'a, Vec<StoredRecord>>;

    /// Records whose message id is `id`, in enqueued order (at most [`MESSAGE_ID_LIMIT`]).
    fn by_message_id<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<StoredRecord>>;

    /// One row per device id (records without one are not counted), by device id, after `after`.
    fn devices<'a>(&'a self, limit: u32, after: Option<&'a str>) -> StoreFuture<'a, Vec<DeviceSummary>>;

    /// Totals: records, blob versions by status, newest enqueued time.
    fn stats(&self) -> StoreFuture<'_, Stats>;

    /// Succeeds when the database answers (readiness).
    fn ping(&self) -> StoreFuture<'_, ()>;
}

/// Opens (creating and migrating if needed) the index at `url`:
/// - `sqlite://path/to/index.db` (relative to the working directory; `sqlite:///abs/path` for an
///   absolute path); parent directories are created.
/// - `postgres://user[:password]@host[:port]/db[?...]` (also `postgresql://`), with tokio-postgres'
///   URL options plus `schema=name` (created if missing, used as the search path; letters, digits
///   and `_`) and `pool_size=n` (default 16). Plain TCP only: no TLS yet.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(sqlite::SqliteStore::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PgStore::open(url).await?));
    }
    Err(Error::InvalidUrl {
        reason: "expected sqlite://path or postgres://user@host/db".to_owned(),
    })
}

/// Checks what both backends require of a batch before any of it is written.
fn validate(records: &[IndexRecord]) -> Result<()> {
    for record in records {
        let invalid = |reason: &str| Error::InvalidRecord {
            blob: record.blob.clone(),
            position: record.position,
            reason: reason.to_owned(),
        };
        if record.position > MAX_POSITION {
            return Err(invalid(
                "position out of range (more than 2^32 records in one blob)",
            ));
        }
        if record
            .device_id
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DEVICE_ID_BYTES)
        {
            return Err(invalid("device id longer than 1024 bytes"));
        }
    }
    Ok(())
}

/// `Duration` as whole milliseconds, saturating.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// An unsigned count or size as an SQL integer, saturating.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
