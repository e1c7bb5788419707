//! The one thread that owns a process's SQLite connection. Callers queue jobs; the thread runs every
//! job waiting at that moment in one `BEGIN IMMEDIATE` transaction (group commit), each inside its own
//! savepoint so a failing job fails alone (a job alone in its transaction needs none), commits once,
//! then answers. An answer therefore means "committed": a send that returned survives `kill -9`.

use std::thread;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::sql;
use crate::error::{Error, Result};

/// Most jobs folded into one transaction; bounds the latency a burst adds to the first job.
const MAX_JOBS_PER_COMMIT: usize = 512;

trait Job: Send {
    /// False for jobs of one statement, which is atomic by itself: no savepoint needed.
    fn needs_savepoint(&self) -> bool;
    /// Runs the job's statements; false = they failed and the job's savepoint must be rolled back.
    fn run(&mut self, conn: &Connection, now: i64) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: std::result::Result<(), String>);
}

struct TypedJob<T, F> {
    savepoint: bool,
    work: Option<F>,
    outcome: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send,
{
    fn needs_savepoint(&self) -> bool {
        self.savepoint
    }

    fn run(&mut self, conn: &Connection, now: i64) -> bool {
        match self.work.take() {
            Some(work) => {
                let outcome = work(conn, now);
                let ok = outcome.is_ok();
                self.outcome = Some(outcome);
                ok
            }
            None => false,
        }
    }

    fn finish(self: Box<Self>, commit: std::result::Result<(), String>) {
        let answer = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(Error::backend("sqlite", "statement", e)),
            (_, Err(e)) => Err(Error::backend("sqlite", "commit", e)),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(Error::backend("sqlite", "statement", "job did not run")),
        };
        // The caller may have given up waiting (its future was dropped): nothing to tell then.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer thread.
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
    pub(super) fn start(conn: Connection, name: String) -> Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        thread::Builder::new()
            .name(name)
            .spawn(move || run(conn, rx))
            .map_err(|e| Error::backend("sqlite", "start writer thread", e))?;
        Ok(Self { jobs })
    }

    /// Runs `work` (several statements, all or nothing) in the next group commit and returns its
    /// result once committed.
    pub(super) async fn call<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(true, work).await
    }

    /// Like [`Writer::call`] for work that runs at most one writing statement.
    pub(super) async fn call_single<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(false, work).await
    }

    async fn submit<T, F>(&self, savepoint: bool, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob {
            savepoint,
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
            tracing::warn!(%error, jobs = batch.len(), "sqlite queue transaction failed");
        }
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
    tracing::debug!("sqlite queue writer stopped");
}

fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    let now = sql::now_ms();
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    if let [job] = batch {
        // Alone in its transaction, a job needs no savepoint: a failure rolls the whole
        // transaction back.
        return if job.run(&tx, now) {
            tx.commit().map_err(|e| e.to_string())
        } else {
            tx.rollback().map_err(|e| e.to_string())
        };
    }
    for job in batch.iter_mut() {
        if !job.needs_savepoint() {
            job.run(&tx, now);
            continue;
        }
        let savepoint = tx.savepoint().map_err(|e| e.to_string())?;
        if job.run(&savepoint, now) {
            savepoint.commit().map_err(|e| e.to_string())?;
        }
        // else: dropping the savepoint rolls back that job's statements alone.
    }
    tx.commit().map_err(|e| e.to_string())
}
