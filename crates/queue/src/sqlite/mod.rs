//! The embedded backend: every queue in one SQLite file (WAL), shared by the processes of one host.

mod sql;
mod writer;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use tokio::sync::Notify;
use tokio::time::Instant;

use self::sql::{QueueSettings, Settle, StoredMessage};
use self::writer::Writer;
use crate::message::TokenKind;
use crate::{
    Backend, DEAD_LETTER_SUFFIX, Error, LockToken, Message, PeekedMessage, Queue, QueueOptions,
    ReceivedMessage, Result, SqliteConfig, check_sizes, next_issuer_id,
};

const BACKEND: &str = "sqlite";

/// Shared by the queues opened from one client.
#[derive(Debug)]
struct Shared {
    writer: Writer,
    config: SqliteConfig,
    /// Woken when this process makes a message available; other processes' sends and lock expiries
    /// are found by polling every `config.poll_interval`.
    available: Notify,
}

#[derive(Debug)]
pub(crate) struct SqliteBackend {
    shared: Arc<Shared>,
}

impl SqliteBackend {
    pub(crate) async fn open(config: SqliteConfig) -> Result<Self> {
        let path = config.path.clone();
        let synchronous = config.synchronous;
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::backend(BACKEND, "create directory", e))?;
            }
            let conn = Connection::open(&path).map_err(|e| Error::backend(BACKEND, "open", e))?;
            sql::configure(&conn, synchronous).map_err(|e| Error::backend(BACKEND, "configure", e))?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::backend(BACKEND, "open", e))??;
        tracing::debug!(path = %config.path.display(), "sqlite queue store opened");
        let writer = Writer::start(conn, "queue-sqlite".to_owned())?;
        Ok(Self {
            shared: Arc::new(Shared {
                writer,
                config,
                available: Notify::new(),
            }),
        })
    }
}

#[async_trait::async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn queue(&self, name: &str) -> Result<Arc<dyn Queue>> {
        let owned = name.to_owned();
        let settings = self
            .shared
            .writer
            .call_single(move |conn, _| sql::queue_settings(conn, &owned))
            .await?;
        let settings = settings.ok_or_else(|| Error::QueueNotFound {
            queue: name.to_owned(),
        })?;
        Ok(Arc::new(SqliteQueue {
            shared: Arc::clone(&self.shared),
            name: Arc::from(name),
            settings,
            issuer: next_issuer_id(),
        }))
    }

    async fn create_queue(&self, name: &str, options: &QueueOptions) -> Result<()> {
        let (name, options) = (name.to_owned(), *options);
        self.shared
            .writer
            .call_single(move |conn, _| sql::create_queue(conn, &name, &options))
            .await
    }

    async fn close(&self) {}
}

#[derive(Debug)]
struct SqliteQueue {
    shared: Arc<Shared>,
    name: Arc<str>,
    settings: QueueSettings,
    issuer: u64,
}

impl SqliteQueue {
    fn token(&self, token: &LockToken) -> Result<(i64, u32)> {
        match token.kind {
            TokenKind::Sqlite { seq, delivery } if token.issuer == self.issuer => Ok((seq, delivery)),
            _ => Err(Error::ForeignLockToken {
                queue: self.name.to_string(),
            }),
        }
    }

    async fn settle(&self, token: &LockToken, action: Settle) -> Result<i64> {
        let token = self.token(token)?;
        let single = matches!(action, Settle::Complete);
        let (queue, settings) = (Arc::clone(&self.name), self.settings);
        let wakes = matches!(action, Settle::Abandon);
        let work = move |conn: &Connection, now| sql::settle(conn, &queue, settings, token, &action, now);
        let outcome = if single {
            self.shared.writer.call_single(work).await?
        } else {
            self.shared.writer.call(work).await?
        };
        if wakes {
            self.shared.available.notify_waiters();
        }
        outcome.ok_or(Error::LockLost)
    }

    fn received(&self, stored: StoredMessage) -> ReceivedMessage {
        ReceivedMessage {
            enqueued_time: Some(sql::to_system_time(stored.enqueued_at)),
            sequence_number: Some(stored.seq),
            delivery_count: stored.delivery_count,
            redelivered: stored.delivery_count > 1,
            locked_until: Some(sql::to_system_time(stored.available_at)),
            lock_token: LockToken {
                issuer: self.issuer,
                kind: TokenKind::Sqlite {
                    seq: stored.seq,
                    delivery: stored.delivery_count,
                },
            },
            message: stored.message,
        }
    }
}

#[async_trait::async_trait]
impl Queue for SqliteQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: Vec<Message>) -> Result<()> {
        if self.name.ends_with(DEAD_LETTER_SUFFIX) {
            return Err(Error::Rejected {
                backend: BACKEND,
                operation: "send",
                reason: "messages cannot be sent to a dead-letter queue".to_owned(),
            });
        }
        check_sizes(&messages, self.shared.config.max_message_size)?;
        if messages.is_empty() {
            return Ok(());
        }
        let queue = Arc::clone(&self.name);
        self.shared
            .writer
            .call(move |conn, now| sql::insert(conn, &queue, &messages, now))
            .await?;
        self.shared.available.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a send committed in between still wakes us.
            let notified = self.shared.available.notified();
            let (queue, settings) = (Arc::clone(&self.name), self.settings);
            let locked = self
                .shared
                .writer
                .call(move |conn, now| sql::lock(conn, &queue, settings, max, now))
                .await?;
            if !locked.is_empty() {
                return Ok(locked.into_iter().map(|m| self.received(m)).collect());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let nap = (deadline - now).min(self.shared.config.poll_interval);
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn complete(&self, token: &LockToken) -> Result<()> {
        self.settle(token, Settle::Complete).await.map(drop)
    }

    async fn complete_many(&self, tokens: &[LockToken]) -> Vec<Result<()>> {
        let keys: Vec<Result<(i64, u32)>> = tokens.iter().map(|token| self.token(token)).collect();
        let ours: Vec<(i64, u32)> = keys.iter().filter_map(|key| key.as_ref().ok().copied()).collect();
        let completed = if ours.is_empty() {
            Ok(Vec::new())
        } else {
            let queue = Arc::clone(&self.name);
            self.shared
                .writer
                .call(move |conn, now| sql::complete_many(conn, &queue, &ours, now))
                .await
        };
        match completed {
            Ok(completed) => {
                let mut completed = completed.into_iter();
                keys.into_iter()
                    .map(|key| {
                        key.and_then(|_| match completed.next() {
                            Some(true) => Ok(()),
                            _ => Err(Error::LockLost),
                        })
                    })
                    .collect()
            }
            // One transaction: every token of ours shares its failure.
            Err(e) => {
                let text = e.to_string();
                keys.into_iter()
                    .map(|key| key.and_then(|_| Err(Error::backend(BACKEND, "complete", text.clone()))))
                    .collect()
            }
        }
    }

    async fn abandon(&self, token: &LockToken) -> Result<()> {
        self.settle(token, Settle::Abandon).await.map(drop)
    }

    async fn dead_letter(&self, token: &LockToken, reason: &str, description: &str) -> Result<()> {
        if self.name.ends_with(DEAD_LETTER_SUFFIX) {
            return Err(Error::Rejected {
                backend: BACKEND,
                operation: "dead-letter",
                reason: "a message in a dead-letter queue cannot be dead-lettered again".to_owned(),
            });
        }
        let action = Settle::DeadLetter {
            reason: reason.to_owned(),
            description: description.to_owned(),
        };
        self.settle(token, action).await.map(drop)
    }

    async fn renew_lock(&self, token: &LockToken) -> Result<SystemTime> {
        self.settle(token, Settle::Renew).await.map(sql::to_system_time)
    }

    async fn peek(&self, max: usize) -> Result<Vec<PeekedMessage>> {
        let queue = Arc::clone(&self.name);
        let rows = self
            .shared
            .writer
            .call_single(move |conn, _| sql::peek(conn, &queue, max))
            .await?;
        let now = sql::now_ms();
        Ok(rows
            .into_iter()
            .map(|row| PeekedMessage {
                enqueued_time: Some(sql::to_system_time(row.enqueued_at)),
                sequence_number: Some(row.seq),
                delivery_count: row.delivery_count,
                locked_until: (row.available_at > now).then(|| sql::to_system_time(row.available_at)),
                message: row.message,
            })
            .collect())
    }

    async fn len(&self) -> Result<u64> {
        let queue = Arc::clone(&self.name);
        self.shared
            .writer
            .call_single(move |conn, _| sql::count(conn, &queue))
            .await
    }

    async fn dead_letter_len(&self) -> Result<u64> {
        let base = self.name.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(&self.name);
        let queue = crate::dead_letter_queue_name(base);
        self.shared
            .writer
            .call_single(move |conn, _| sql::count(conn, &queue))
            .await
    }
}
