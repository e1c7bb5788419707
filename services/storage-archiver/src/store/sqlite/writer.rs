//! The one thread that writes the index file (the queue crate's pattern). Callers queue jobs; the
//! thread runs every job waiting at that moment in one `BEGIN IMMEDIATE` transaction (group commit),
//! each in its own savepoint so a failing job fails alone (a job alone in its transaction needs
//! none), commits once, then answers. An answer therefore means "committed", and each job is atomic
//! by itself.

use std::thread;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{BACKEND, sql};
use crate::store::{Error, Result};

/// Most jobs folded into one transaction; bounds the latency a burst adds to the first job.
const MAX_JOBS_PER_COMMIT: usize = 256;

trait Job: Send {
    /// Runs the job's statements; false = they failed and its savepoint must be rolled back.
    fn run(&mut self, conn: &Connection, now: i64) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: std::result::Result<(), String>);
}

struct TypedJob<T, F> {
    operation: &'static str,
    work: Option<F>,
    outcome: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection, now: i64) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = work(conn, now);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, commit: std::result::Result<(), String>) {
        let answer = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(Error::backend(BACKEND, self.operation, e)),
            (_, Err(e)) => Err(Error::backend(BACKEND, self.operation, e)),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(Error::backend(BACKEND, self.operation, "the job did not run")),
        };
        // The caller may have stopped waiting (its future was dropped): nothing to tell then.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer thread; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Writer {
    /// Starts the thread on an open, configured connection.
    pub(super) fn start(conn: Connection) -> Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        thread::Builder::new()
            .name("archiver-index".to_owned())
            .spawn(move || run(conn, rx))
            .map_err(|e| Error::backend(BACKEND, "start the writer thread", e))?;
        Ok(Self { jobs })
    }

    /// Runs `work` (all or nothing) in the next group commit and returns its result once committed.
    /// `work` gets the connection and the batch's clock (milliseconds since the Unix epoch).
    pub(super) async fn call<T, F>(&self, operation: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob {
            operation,
            work: Some(work),
            outcome: None,
            reply,
        });
        self.jobs.send(job).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&mut conn, &mut batch);
        if let Err(error) = &commit {
            tracing::warn!(%error, jobs = batch.len(), "sqlite index transaction failed");
        }
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
    tracing::debug!("sqlite index writer stopped");
}

fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    let now = sql::now_ms();
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    if let [job] = batch {
        // Alone in its transaction, a job needs no savepoint (whose journal copies every page the
        // job changes): a failure rolls the whole transaction back.
        return if job.run(&tx, now) {
            tx.commit().map_err(|e| e.to_string())
        } else {
            tx.rollback().map_err(|e| e.to_string())
        };
    }
    for job in batch.iter_mut() {
        let savepoint = tx.savepoint().map_err(|e| e.to_string())?;
        if job.run(&savepoint, now) {
            savepoint.commit().map_err(|e| e.to_string())?;
        }
        // else: dropping the savepoint rolls back that job's statements alone.
    }
    tx.commit().map_err(|e| e.to_string())
}
