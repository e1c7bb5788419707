//! The single writer of the events stream. Appends from every connection meet in one channel; a
//! dedicated thread commits them in batches (group commit) and only then answers each caller, so a
//! device is acknowledged only after its message is on disk. A full channel slows the callers down
//! (backpressure) instead of buffering without bound.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use super::store::{self, StoreError};
use crate::config::SyncMode;

/// Settings of the journal.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The database file.
    pub path: PathBuf,
    /// fsync policy.
    pub sync: SyncMode,
    /// Events older than this are deleted.
    pub retention: Duration,
    /// At most this many bytes of events are kept.
    pub max_bytes: u64,
    /// Appends waiting to be committed; beyond this, callers wait.
    pub queue_capacity: usize,
    /// Most events per transaction.
    pub max_batch: usize,
}

/// Why an append did not become durable. The caller must not acknowledge the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The store failed (for example the disk is full).
    #[error("the events store could not write: {0}")]
    Store(String),
    /// The hub is shutting down.
    #[error("the events store is closed")]
    Closed,
}

struct Append {
    enqueued_ms: i64,
    device_id: String,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<u64, AppendError>>,
}

/// Handle for appending; cheap to clone. The writer thread stops when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: mpsc::Sender<Append>,
    last: watch::Receiver<u64>,
    path: PathBuf,
}

impl Journal {
    /// Opens (or creates) the store and starts its writer thread.
    pub fn start(config: JournalConfig) -> Result<(Journal, JoinHandle<()>), StoreError> {
        let conn = store::open_writer(&config.path, config.sync)?;
        let initial = super::EventsReader::open(&config.path)?.last_position()?;
        let stored = store::stored_bytes(&conn)?;
        let checkpointer = store::open_writer(&config.path, config.sync)?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (last_tx, last) = watch::channel(initial);
        let path = config.path.clone();
        let thread = std::thread::Builder::new()
            .name("events-journal".to_owned())
            .spawn(move || {
                let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let checkpoints = spawn_checkpointer(checkpointer, std::sync::Arc::clone(&done));
                write_loop(conn, rx, last_tx, &config, stored);
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                if let Ok(handle) = checkpoints {
                    let _ = handle.join();
                }
            })?;
        Ok((Journal { tx, last, path }, thread))
    }

    /// Appends one message; resolves with its position once it is committed.
    pub async fn append(
        &self,
        enqueued_ms: i64,
        device_id: &str,
        payload: Vec<u8>,
    ) -> Result<u64, AppendError> {
        let (done, answer) = oneshot::channel();
        let append = Append {
            enqueued_ms,
            device_id: device_id.to_owned(),
            payload,
            done,
        };
        self.tx.send(append).await.map_err(|_| AppendError::Closed)?;
        answer.await.unwrap_or(Err(AppendError::Closed))
    }

    /// Watches the position of the newest committed event (readers wait on it).
    pub fn last_position(&self) -> watch::Receiver<u64> {
        self.last.clone()
    }

    /// The database file, for readers.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checkpoints the WAL every 200 ms from its own connection, so commits never wait for one.
fn spawn_checkpointer(
    conn: rusqlite::Connection,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("events-checkpoint".to_owned())
        .spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if let Err(error) = store::checkpoint(&conn) {
                    tracing::warn!(%error, "events checkpoint failed");
                }
            }
            let _ = store::checkpoint(&conn);
        })
}

fn write_loop(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<Append>,
    last: watch::Sender<u64>,
    config: &JournalConfig,
    mut stored: u64,
) {
    const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);
    let mut next_maintenance = Instant::now();
    let mut batch: Vec<Append> = Vec::with_capacity(config.max_batch);
    // blocking_recv returns None once every Journal handle is gone and the queue is drained.
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < config.max_batch {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        stored += commit(&mut conn, &mut batch, &last);
        if Instant::now() >= next_maintenance {
            let cutoff = now_ms() - i64::try_from(config.retention.as_millis()).unwrap_or(i64::MAX);
            match store::apply_retention(&mut conn, cutoff, config.max_bytes, &mut stored) {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "events retention"),
                Err(error) => tracing::warn!(%error, "events retention failed"),
            }
            next_maintenance = Instant::now() + MAINTENANCE_EVERY;
        }
    }
    tracing::debug!("events journal closed");
}

/// Commits `batch` and answers its senders; returns the bytes stored.
fn commit(conn: &mut rusqlite::Connection, batch: &mut Vec<Append>, last: &watch::Sender<u64>) -> u64 {
    let bytes: u64 = batch.iter().map(|a| a.payload.len() as u64).sum();
    let rows: Vec<(i64, &str, &[u8])> = batch
        .iter()
        .map(|a| (a.enqueued_ms, a.device_id.as_str(), a.payload.as_slice()))
        .collect();
    match store::insert_batch(conn, &rows) {
        Ok(seqs) => {
            if let Some(&newest) = seqs.last() {
                last.send_replace(newest);
            }
            for (append, seq) in batch.drain(..).zip(seqs) {
                let _ = append.done.send(Ok(seq));
            }
            bytes
        }
        Err(error) => {
            tracing::error!(%error, count = batch.len(), "events batch not written; senders are told");
            let error = AppendError::Store(error.to_string());
            for append in batch.drain(..) {
                let _ = append.done.send(Err(error.clone()));
            }
            0
        }
    }
}
