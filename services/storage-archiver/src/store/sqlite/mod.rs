//! The embedded backend: one SQLite file (WAL). One thread writes, group-committing; reads run on
//! blocking threads over a small pool of read-only connections, so queries never wait for a commit.

mod records;
mod sql;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use self::sql::Held;
use self::writer::Writer;
use super::{
    BlobInfo, BlobStatus, Cursor, DeviceSummary, Error, IndexRecord, QueryFilter, Result, Stats, Store,
    StoreFuture, StoredRecord, millis, validate,
};

const BACKEND: &str = "sqlite";

/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 4;

/// The index in one SQLite file.
#[derive(Debug)]
pub(super) struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
}

impl SqliteStore {
    /// Opens (creating, with parent directories, and migrating) the file at `path`.
    pub(super) async fn open(path: &str) -> Result<Self> {
        if path.is_empty() {
            return Err(Error::InvalidUrl {
                reason: "sqlite:// needs a file path".to_owned(),
            });
        }
        let path = PathBuf::from(path);
        let writer_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_writer(&writer_path))
            .await
            .map_err(|e| Error::backend(BACKEND, "open", e))??;
        tracing::debug!(path = %path.display(), "sqlite index opened");
        Ok(Self {
            writer: Writer::start(conn)?,
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn read<T, F>(&self, operation: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.run(operation, work))
            .await
            .map_err(|e| Error::backend(BACKEND, operation, e))?
    }

    async fn release(
        &self,
        held: Held,
        status: BlobStatus,
        records: Option<u64>,
        error: Option<String>,
    ) -> Result<()> {
        let (name, etag) = (held.name.clone(), held.etag.clone());
        let kept = self
            .writer
            .call("release a claim", move |conn, now| {
                sql::release(conn, &held, status, records, error.as_deref(), now)
            })
            .await?;
        if kept {
            Ok(())
        } else {
            Err(Error::ClaimLost { name, etag })
        }
    }
}

fn open_writer(path: &Path) -> Result<Connection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::backend(BACKEND, "create the directory", e))?;
    }
    let conn = Connection::open(path).map_err(|e| Error::backend(BACKEND, "open", e))?;
    sql::configure_writer(&conn).map_err(|e| Error::backend(BACKEND, "migrate", e))?;
    Ok(conn)
}

/// Reader connections, opened on demand and kept while few.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Runs `work` on a reader connection (blocking: call on a blocking thread).
    fn run<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn =
                    Connection::open(&self.path).map_err(|e| Error::backend(BACKEND, "open a reader", e))?;
                sql::configure_reader(&conn).map_err(|e| Error::backend(BACKEND, "open a reader", e))?;
                conn
            }
        };
        let outcome = work(&conn).map_err(|e| Error::backend(BACKEND, operation, e));
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        outcome
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn cursor<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        let key = key.to_owned();
        Box::pin(self.read("read a cursor", move |conn| sql::cursor(conn, &key)))
    }

    fn set_cursor<'a>(&'a self, key: &'a str, value: &'a str) -> StoreFuture<'a, ()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        Box::pin(
            self.writer
                .call("set a cursor", move |conn, _| sql::set_cursor(conn, &key, &value)),
        )
    }

    fn upsert_blob<'a>(&'a self, name: &'a str, etag: &'a str, size: u64) -> StoreFuture<'a, bool> {
        let (name, etag) = (name.to_owned(), etag.to_owned());
        Box::pin(self.writer.call("record a blob", move |conn, now| {
            sql::upsert_blob(conn, &name, &etag, size, now)
        }))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        lease: Duration,
        max_attempts: u32,
    ) -> StoreFuture<'a, Option<BlobInfo>> {
        let (worker, lease_ms) = (worker.to_owned(), millis(lease));
        Box::pin(self.writer.call("claim a blob", move |conn, now| {
            sql::claim(conn, &worker, lease_ms, max_attempts, now)
        }))
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        let held = Held {
            name: name.to_owned(),
            etag: etag.to_owned(),
            worker: worker.to_owned(),
        };
        let lease_ms = millis(lease);
        Box::pin(self.writer.call("renew a claim", move |conn, now| {
            sql::renew(conn, &held.name, &held.etag, &held.worker, lease_ms, now)
        }))
    }

    fn insert_records<'a>(&'a self, records: &'a [IndexRecord]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            validate(records)?;
            if records.is_empty() {
                return Ok(0);
            }
            // Made here, on the caller's thread, so that the one writer thread only binds values.
            let rows = records
                .iter()
                .map(records::Row::new)
                .collect::<serde_json::Result<Vec<_>>>()
                .map_err(|e| Error::backend(BACKEND, "insert records", e))?;
            self.writer
                .call("insert records", move |conn, _| records::insert(conn, &rows))
                .await
        })
    }

    fn finish<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        records: u64,
    ) -> StoreFuture<'a, ()> {
        let held = Held {
            name: name.to_owned(),
            etag: etag.to_owned(),
            worker: worker.to_owned(),
        };
        Box::pin(self.release(held, BlobStatus::Indexed, Some(records), None))
    }

    fn fail<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        error: &'a str,
        final_: bool,
    ) -> StoreFuture<'a, ()> {
        let held = Held {
            name: name.to_owned(),
            etag: etag.to_owned(),
            worker: worker.to_owned(),
        };
        let status = if final_ {
            BlobStatus::Failed
        } else {
            BlobStatus::Pending
        };
        Box::pin(self.release(held, status, None, Some(error.to_owned())))
    }

    fn reset<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        let name = name.to_owned();
        Box::pin(
            self.writer
                .call("reset a blob", move |conn, now| sql::reset(conn, &name, now)),
        )
    }

    fn blobs<'a>(
        &'a self,
        status: Option<BlobStatus>,
        limit: u32,
        after: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<BlobInfo>> {
        let after = after.map(str::to_owned);
        Box::pin(self.read("list blobs", move |conn| {
            sql::blobs(conn, status, limit, after.as_deref())
        }))
    }

    fn query<'a>(
        &'a self,
        filter: &'a QueryFilter,
        limit: u32,
        after: Option<&'a Cursor>,
    ) -> StoreFuture<'a, Vec<StoredRecord>> {
        let (filter, after) = (filter.clone(), after.cloned());
        Box::pin(self.read("query records", move |conn| {
            records::query(conn, &filter, limit, after.as_ref())
        }))
    }

    fn by_message_id<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<StoredRecord>> {
        let id = id.to_owned();
        Box::pin(self.read("find a message", move |conn| records::by_message_id(conn, &id)))
    }

    fn devices<'a>(&'a self, limit: u32, after: Option<&'a str>) -> StoreFuture<'a, Vec<DeviceSummary>> {
        let after = after.map(str::to_owned);
        Box::pin(self.read("list devices", move |conn| {
            records::devices(conn, limit, after.as_deref())
        }))
    }

    fn stats(&self) -> StoreFuture<'_, Stats> {
        Box::pin(self.read("count", sql::stats))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.read("ping", |conn| conn.query_row("SELECT 1", [], |_| Ok(()))))
    }
}
