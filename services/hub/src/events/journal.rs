//! The single writer of the hub's journal (`events.db`): the built-in events stream and the outbox
//! of every custom endpoint. Appends from every connection and settlements from every dispatcher
//! meet in one channel; a dedicated thread commits them in batches (group commit) and only then
//! answers each caller, so a device is acknowledged only after its message is on disk for every
//! endpoint it is routed to. A full channel slows the callers down (backpressure) instead of
//! buffering without bound.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use super::outbox::{self, Outboxes, PendingBlob};
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
    /// Commands waiting to be committed; beyond this, callers wait.
    pub queue_capacity: usize,
    /// Most commands per transaction.
    pub max_batch: usize,
    /// WAL frames (pages) beyond which the writer finishes a checkpoint itself, so that SQLite
    /// can start the WAL over (see `Writer::restart_wal`). The hub uses 4096 (16 MiB).
    pub wal_restart_frames: i64,
}

/// Why a write did not become durable. The caller must not acknowledge the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The store failed (for example the disk is full).
    #[error("the journal could not write: {0}")]
    Store(String),
    /// The hub is shutting down.
    #[error("the journal is closed")]
    Closed,
}

/// Where one copy of a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The built-in `events` stream.
    Events,
    /// The outbox of a custom endpoint.
    Endpoint(Arc<str>),
}

/// One copy of an accepted message: where, and its serialised form (with that endpoint's enrichments).
#[derive(Debug, Clone)]
pub struct Copy {
    /// Where it goes.
    pub destination: Destination,
    /// The serialised message.
    pub payload: Vec<u8>,
}

enum Command {
    Append {
        enqueued_ms: i64,
        device_id: String,
        copies: Vec<Copy>,
        done: oneshot::Sender<Result<(), AppendError>>,
    },
    Settle {
        endpoint: Arc<str>,
        up_to: u64,
        blob: Option<String>,
        done: oneshot::Sender<Result<(), AppendError>>,
    },
    PendBlob {
        endpoint: Arc<str>,
        blob: PendingBlob,
        done: oneshot::Sender<Result<(), AppendError>>,
    },
}

/// Handle for writing; cheap to clone. The writer thread stops when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: mpsc::Sender<Command>,
    last: watch::Receiver<u64>,
    outboxes: Arc<Outboxes>,
    path: PathBuf,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Append { .. } => "Append",
            Command::Settle { .. } => "Settle",
            Command::PendBlob { .. } => "PendBlob",
        })
    }
}

impl Journal {
    /// Opens (or creates) the store and starts its writer thread.
    pub fn start(config: JournalConfig) -> Result<(Journal, JoinHandle<()>), StoreError> {
        let conn = store::open_writer(&config.path, config.sync)?;
        let initial = super::EventsReader::open(&config.path)?.last_position()?;
        let stored = store::stored_bytes(&conn)?;
        let outboxes = Arc::new(Outboxes::load(&conn)?);
        let checkpointer = store::open_writer(&config.path, config.sync)?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (last_tx, last) = watch::channel(initial);
        let path = config.path.clone();
        let writer_outboxes = Arc::clone(&outboxes);
        let thread = std::thread::Builder::new()
            .name("journal".to_owned())
            .spawn(move || {
                let done = Arc::new(AtomicBool::new(false));
                let wal_large = Arc::new(AtomicBool::new(false));
                let checkpoints = spawn_checkpointer(
                    checkpointer,
                    Arc::clone(&done),
                    Arc::clone(&wal_large),
                    config.wal_restart_frames,
                );
                Writer {
                    conn,
                    last: last_tx,
                    outboxes: writer_outboxes,
                    stored,
                    wal_large,
                }
                .run(rx, &config);
                done.store(true, Ordering::Relaxed);
                if let Ok(handle) = checkpoints {
                    let _ = handle.join();
                }
            })?;
        Ok((
            Journal {
                tx,
                last,
                outboxes,
                path,
            },
            thread,
        ))
    }

    async fn submit(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<(), AppendError>>,
    ) -> Result<(), AppendError> {
        self.tx.send(command).await.map_err(|_| AppendError::Closed)?;
        answer.await.unwrap_or(Err(AppendError::Closed))
    }

    /// Makes every copy of one accepted message durable, in one transaction.
    pub async fn append(
        &self,
        enqueued_ms: i64,
        device_id: &str,
        copies: Vec<Copy>,
    ) -> Result<(), AppendError> {
        let (done, answer) = oneshot::channel();
        let command = Command::Append {
            enqueued_ms,
            device_id: device_id.to_owned(),
            copies,
            done,
        };
        self.submit(command, answer).await
    }

    /// Removes `endpoint`'s outbox rows up to `up_to` once delivered (and, for a storage endpoint,
    /// the pending blob that held them).
    pub async fn settle(
        &self,
        endpoint: Arc<str>,
        up_to: u64,
        blob: Option<String>,
    ) -> Result<(), AppendError> {
        let (done, answer) = oneshot::channel();
        self.submit(
            Command::Settle {
                endpoint,
                up_to,
                blob,
                done,
            },
            answer,
        )
        .await
    }

    /// Records, before writing it, which rows a blob will hold.
    pub async fn pend_blob(&self, endpoint: Arc<str>, blob: PendingBlob) -> Result<(), AppendError> {
        let (done, answer) = oneshot::channel();
        self.submit(Command::PendBlob { endpoint, blob, done }, answer)
            .await
    }

    /// Watches the position of the newest committed event (events readers wait on it).
    pub fn last_position(&self) -> watch::Receiver<u64> {
        self.last.clone()
    }

    /// Every endpoint's outbox signal.
    pub fn outboxes(&self) -> &Arc<Outboxes> {
        &self.outboxes
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

/// Checkpoints the WAL every 200 ms from its own connection, so commits never wait for the copying;
/// raises `wal_large` when the WAL holds more than `restart_frames`.
fn spawn_checkpointer(
    conn: rusqlite::Connection,
    done: Arc<AtomicBool>,
    wal_large: Arc<AtomicBool>,
    restart_frames: i64,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("journal-checkpoint".to_owned())
        .spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                match store::checkpoint(&conn) {
                    Ok(wal) if wal.frames > restart_frames => wal_large.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "journal checkpoint failed"),
                }
            }
            let _ = store::checkpoint(&conn);
        })
}

/// What one transaction changed, applied to the shared signals only after it committed.
#[derive(Default)]
struct Effects {
    newest_event: Option<u64>,
    added: Vec<(Arc<str>, u64)>,
    settled: Vec<(Arc<str>, u64)>,
    event_bytes: u64,
}

struct Writer {
    conn: rusqlite::Connection,
    last: watch::Sender<u64>,
    outboxes: Arc<Outboxes>,
    stored: u64,
    /// Set by the checkpointer when the WAL is over `JournalConfig::wal_restart_frames`.
    wal_large: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>, config: &JournalConfig) {
        const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);
        let mut next_maintenance = Instant::now();
        let mut batch: Vec<Command> = Vec::with_capacity(config.max_batch);
        // blocking_recv returns None once every Journal handle is gone and the queue is drained.
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < config.max_batch {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
            if self.wal_large.swap(false, Ordering::Relaxed) {
                self.restart_wal();
            }
            if Instant::now() >= next_maintenance {
                self.maintain(config);
                next_maintenance = Instant::now() + MAINTENANCE_EVERY;
            }
        }
        tracing::debug!("journal closed");
    }

    /// Lets SQLite start the WAL over. It does so only when a transaction begins with every frame
    /// copied into the database, and under a steady stream of commits the checkpointer never finds
    /// that moment: the WAL grew by gigabytes, and every commit extended the file. A checkpoint run
    /// here, between two transactions, copies the few frames the checkpointer has not, so the next
    /// transaction writes from the start of the WAL again.
    fn restart_wal(&self) {
        match store::checkpoint(&self.conn) {
            Ok(wal) => tracing::debug!(
                frames = wal.frames,
                copied = wal.copied,
                "journal WAL checkpointed by the writer"
            ),
            Err(error) => tracing::warn!(%error, "journal checkpoint failed"),
        }
    }

    fn maintain(&mut self, config: &JournalConfig) {
        let cutoff = now_ms() - i64::try_from(config.retention.as_millis()).unwrap_or(i64::MAX);
        match store::apply_retention(&mut self.conn, cutoff, config.max_bytes, &mut self.stored) {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "events retention"),
            Err(error) => tracing::warn!(%error, "events retention failed"),
        }
    }

    /// Commits `batch` in one transaction and answers every sender.
    fn commit(&mut self, batch: &mut Vec<Command>) {
        match self.write(batch) {
            Ok(effects) => {
                self.apply(effects);
                for command in batch.drain(..) {
                    let (Command::Append { done, .. }
                    | Command::Settle { done, .. }
                    | Command::PendBlob { done, .. }) = command;
                    let _ = done.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, count = batch.len(), "journal batch not written; senders are told");
                let error = AppendError::Store(error.to_string());
                for command in batch.drain(..) {
                    let (Command::Append { done, .. }
                    | Command::Settle { done, .. }
                    | Command::PendBlob { done, .. }) = command;
                    let _ = done.send(Err(error.clone()));
                }
            }
        }
    }

    fn write(&mut self, batch: &[Command]) -> Result<Effects, StoreError> {
        let tx = self.conn.transaction()?;
        let mut effects = Effects::default();
        for command in batch {
            match command {
                Command::Append {
                    enqueued_ms,
                    device_id,
                    copies,
                    ..
                } => {
                    for copy in copies {
                        match &copy.destination {
                            Destination::Events => {
                                let seq = store::insert_event(&tx, *enqueued_ms, device_id, &copy.payload)?;
                                effects.newest_event = Some(seq);
                                effects.event_bytes += copy.payload.len() as u64;
                            }
                            Destination::Endpoint(endpoint) => {
                                let id = outbox::insert(&tx, endpoint, *enqueued_ms, &copy.payload)?;
                                effects.added.push((Arc::clone(endpoint), id));
                            }
                        }
                    }
                }
                Command::Settle {
                    endpoint,
                    up_to,
                    blob,
                    ..
                } => {
                    let deleted = outbox::settle(&tx, endpoint, *up_to, blob.as_deref())?;
                    effects.settled.push((Arc::clone(endpoint), deleted));
                }
                Command::PendBlob { endpoint, blob, .. } => outbox::pend_blob(&tx, endpoint, blob)?,
            }
        }
        tx.commit()?;
        Ok(effects)
    }

    fn apply(&mut self, effects: Effects) {
        if let Some(newest) = effects.newest_event {
            self.last.send_replace(newest);
        }
        self.stored += effects.event_bytes;
        for (endpoint, id) in effects.added {
            let signal = self.outboxes.signal(&endpoint);
            signal.backlog.fetch_add(1, Ordering::Relaxed);
            signal.newest.send_replace(id);
        }
        for (endpoint, deleted) in effects.settled {
            let signal = self.outboxes.signal(&endpoint);
            let _ = signal
                .backlog
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(deleted))
                });
            signal.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
