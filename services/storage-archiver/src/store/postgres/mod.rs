//! The shared backend: PostgreSQL, one database (or schema) for every replica, through a pool.

mod columns;
mod options;
mod query;
mod sql;
mod text;

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use self::columns::Columns;
use self::options::Options;
use super::{
    BlobCounts, BlobInfo, BlobStatus, Cursor, DeviceSummary, Error, IndexRecord, MESSAGE_ID_LIMIT,
    QueryFilter, Result, Stats, Store, StoreFuture, StoredRecord, millis, to_i64, validate,
};

const BACKEND: &str = "postgres";

/// Connections in the pool unless the URL says `pool_size=n`.
const DEFAULT_POOL_SIZE: usize = 16;

/// The error mapper for `operation`: PostgreSQL's own message when it has one.
fn pg_error(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| {
        let cause = match e.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        Error::backend(BACKEND, operation, cause)
    }
}

/// `sql` prepared once per connection.
async fn prepared(client: &impl GenericClient, sql: &str) -> Result<Statement> {
    client.prepare_cached(sql).await.map_err(pg_error("prepare"))
}

/// Runs `sql` on `client`; its rows.
async fn rows(
    client: &impl GenericClient,
    operation: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let statement = prepared(client, sql).await?;
    client
        .query(&statement, params)
        .await
        .map_err(pg_error(operation))
}

/// Runs `sql` on `client`; how many rows it changed.
async fn execute(
    client: &impl GenericClient,
    operation: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let statement = prepared(client, sql).await?;
    client
        .execute(&statement, params)
        .await
        .map_err(pg_error(operation))
}

/// The index in a PostgreSQL database.
#[derive(Debug)]
pub(super) struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects and creates the schema (and its tables) if missing.
    pub(super) async fn open(url: &str) -> Result<Self> {
        let options = Options::parse(url)?;
        let manager = Manager::from_config(
            options.config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::backend(BACKEND, "build the pool", e))?;
        let store = Self { pool };
        store.migrate(options.schema.as_deref()).await?;
        tracing::debug!(schema = options.schema.as_deref(), "postgres index opened");
        Ok(store)
    }

    async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::backend(BACKEND, "connect", e))
    }

    async fn migrate(&self, schema: Option<&str>) -> Result<()> {
        let e = || pg_error("migrate");
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(e())?;
        // Replicas starting together would otherwise race on `CREATE ... IF NOT EXISTS`.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&sql::MIGRATION_LOCK])
            .await
            .map_err(e())?;
        if let Some(schema) = schema {
            // An identifier cannot be bound; `Options::parse` allowed only [A-Za-z0-9_].
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(pg_error("create the schema"))?;
        }
        tx.batch_execute(sql::SCHEMA).await.map_err(e())?;
        tx.commit().await.map_err(e())
    }

    async fn cursor_of(&self, key: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let found = rows(&client, "read a cursor", sql::GET_CURSOR, &[&text::text(key)]).await?;
        found
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(pg_error("read a cursor"))
    }

    async fn store_cursor(&self, key: &str, value: &str) -> Result<()> {
        let client = self.client().await?;
        let (key, value) = (text::text(key), text::text(value));
        // No upsert: the key's uniqueness is an exclusion constraint (keys may be long). A retry
        // covers a concurrent first insert of the same key.
        for _ in 0..3 {
            if execute(&client, "set a cursor", sql::UPDATE_CURSOR, &[&key, &value]).await? == 1
                || execute(&client, "set a cursor", sql::INSERT_CURSOR, &[&key, &value]).await? == 1
            {
                return Ok(());
            }
        }
        Err(Error::backend(
            BACKEND,
            "set a cursor",
            "the cursor row vanished while being set",
        ))
    }

    async fn upsert(&self, name: &str, etag: &str, size: u64) -> Result<bool> {
        let client = self.client().await?;
        let id = sql::name_id(&client, &text::text(name)).await?;
        let params: [&(dyn ToSql + Sync); 3] = [&id, &text::text(etag), &to_i64(size)];
        Ok(execute(&client, "record a blob", sql::UPSERT_BLOB, &params).await? == 1)
    }

    async fn claim_one(&self, worker: &str, lease: Duration, max_attempts: u32) -> Result<Option<BlobInfo>> {
        const OP: &str = "claim a blob";
        let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error(OP))?;
        let now: i64 = match rows(&tx, OP, sql::NOW, &[]).await?.first() {
            Some(row) => row.try_get(0).map_err(pg_error(OP))?,
            None => return Err(Error::backend(BACKEND, OP, "no clock")),
        };
        execute(&tx, OP, sql::CLAIM_GIVE_UP, &[&now, &max]).await?;
        let mut picked = rows(&tx, OP, sql::CLAIM_PICK_LAPSED, &[&now, &max]).await?;
        if picked.is_empty() {
            picked = rows(&tx, OP, sql::CLAIM_PICK_PENDING, &[&max]).await?;
        }
        let claimed = match picked.first() {
            None => None,
            Some(row) => {
                let (name_id, etag): (i64, String) = (
                    row.try_get(0).map_err(pg_error(OP))?,
                    row.try_get(1).map_err(pg_error(OP))?,
                );
                let until = now.saturating_add(millis(lease));
                let params: [&(dyn ToSql + Sync); 5] = [&name_id, &etag, &text::text(worker), &until, &now];
                let taken = rows(&tx, OP, sql::CLAIM_TAKE, &params).await?;
                taken.first().map(sql::read_blob).transpose()?
            }
        };
        tx.commit().await.map_err(pg_error(OP))?;
        Ok(claimed)
    }

    async fn renew_claim(&self, name: &str, etag: &str, worker: &str, lease: Duration) -> Result<bool> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 4] = [
            &text::text(name),
            &text::text(etag),
            &text::text(worker),
            &millis(lease),
        ];
        Ok(execute(&client, "renew a claim", sql::RENEW, &params).await? == 1)
    }

    async fn release(
        &self,
        [name, etag, worker]: [&str; 3],
        status: BlobStatus,
        records: Option<u64>,
        error: Option<&str>,
    ) -> Result<()> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 6] = [
            &text::text(name),
            &text::text(etag),
            &text::text(worker),
            &status.as_str(),
            &records.map(to_i64),
            &error.map(text::text),
        ];
        if execute(&client, "release a claim", sql::RELEASE, &params).await? == 1 {
            return Ok(());
        }
        Err(Error::ClaimLost {
            name: name.to_owned(),
            etag: etag.to_owned(),
        })
    }

    async fn reset_blob(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(execute(&client, "reset a blob", sql::RESET, &[&text::text(name)]).await? > 0)
    }

    async fn insert(&self, records: &[IndexRecord]) -> Result<u64> {
        const OP: &str = "insert records";
        validate(records)?;
        if records.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error(OP))?;
        // Names in sorted order, so two transactions never wait on each other's new names.
        let mut ids = BTreeMap::new();
        for record in records {
            ids.insert(record.blob.as_str(), 0);
        }
        for (name, id) in &mut ids {
            *id = sql::name_id(&tx, &text::text(name)).await?;
        }
        let columns = Columns::of(records, &ids);
        let inserted = execute(&tx, OP, sql::INSERT_RECORDS, &columns.params()).await?;
        tx.commit().await.map_err(pg_error(OP))?;
        Ok(inserted)
    }

    async fn run_query(&self, statement: query::Statement) -> Result<Vec<StoredRecord>> {
        let client = self.client().await?;
        let found = rows(&client, "query records", &statement.sql, &statement.params()).await?;
        found.iter().map(sql::read_record).collect()
    }

    async fn list_blobs(
        &self,
        status: Option<BlobStatus>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<BlobInfo>> {
        let statement = query::blobs(status, limit, after);
        let client = self.client().await?;
        let found = rows(&client, "list blobs", &statement.sql, &statement.params()).await?;
        found.iter().map(sql::read_blob).collect()
    }

    async fn list_devices(&self, limit: u32, after: Option<&str>) -> Result<Vec<DeviceSummary>> {
        let e = || pg_error("list devices");
        let statement = query::devices(limit, after);
        let client = self.client().await?;
        let found = rows(&client, "list devices", &statement.sql, &statement.params()).await?;
        found
            .iter()
            .map(|row| {
                Ok(DeviceSummary {
                    device_id: row.try_get(0).map_err(e())?,
                    count: sql::unsigned(row.try_get(1).map_err(e())?),
                    first_ms: row.try_get(2).map_err(e())?,
                    last_ms: row.try_get(3).map_err(e())?,
                })
            })
            .collect()
    }

    async fn totals(&self) -> Result<Stats> {
        let e = || pg_error("count");
        let client = self.client().await?;
        let mut stats = Stats::default();
        if let Some(row) = rows(&client, "count", sql::STATS_RECORDS, &[]).await?.first() {
            stats.records = sql::unsigned(row.try_get(0).map_err(e())?);
            stats.newest_enqueued_ms = row.try_get(1).map_err(e())?;
        }
        let mut blobs = BlobCounts::default();
        for row in rows(&client, "count", sql::STATS_BLOBS, &[]).await? {
            let status: String = row.try_get(0).map_err(e())?;
            if let Some(status) = BlobStatus::parse(&status) {
                blobs.add(status, sql::unsigned(row.try_get(1).map_err(e())?));
            }
        }
        stats.blobs = blobs;
        Ok(stats)
    }

    async fn ping_db(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(pg_error("ping"))?;
        Ok(())
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn cursor<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(self.cursor_of(key))
    }

    fn set_cursor<'a>(&'a self, key: &'a str, value: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.store_cursor(key, value))
    }

    fn upsert_blob<'a>(&'a self, name: &'a str, etag: &'a str, size: u64) -> StoreFuture<'a, bool> {
        Box::pin(self.upsert(name, etag, size))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        lease: Duration,
        max_attempts: u32,
    ) -> StoreFuture<'a, Option<BlobInfo>> {
        Box::pin(self.claim_one(worker, lease, max_attempts))
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.renew_claim(name, etag, worker, lease))
    }

    fn insert_records<'a>(&'a self, records: &'a [IndexRecord]) -> StoreFuture<'a, u64> {
        Box::pin(self.insert(records))
    }

    fn finish<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        records: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.release([name, etag, worker], BlobStatus::Indexed, Some(records), None))
    }

    fn fail<'a>(
        &'a self,
        name: &'a str,
        etag: &'a str,
        worker: &'a str,
        error: &'a str,
        final_: bool,
    ) -> StoreFuture<'a, ()> {
        let status = if final_ {
            BlobStatus::Failed
        } else {
            BlobStatus::Pending
        };
        Box::pin(self.release([name, etag, worker], status, None, Some(error)))
    }

    fn reset<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.reset_blob(name))
    }

    fn blobs<'a>(
        &'a self,
        status: Option<BlobStatus>,
        limit: u32,
        after: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<BlobInfo>> {
        Box::pin(self.list_blobs(status, limit, after))
    }

    fn query<'a>(
        &'a self,
        filter: &'a QueryFilter,
        limit: u32,
        after: Option<&'a Cursor>,
    ) -> StoreFuture<'a, Vec<StoredRecord>> {
        Box::pin(self.run_query(query::records(filter, limit, after)))
    }

    fn by_message_id<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<StoredRecord>> {
        let filter = QueryFilter {
            message_id: Some(id.to_owned()),
            ..QueryFilter::default()
        };
        Box::pin(self.run_query(query::records(&filter, MESSAGE_ID_LIMIT, None)))
    }

    fn devices<'a>(&'a self, limit: u32, after: Option<&'a str>) -> StoreFuture<'a, Vec<DeviceSummary>> {
        Box::pin(self.list_devices(limit, after))
    }

    fn stats(&self) -> StoreFuture<'_, Stats> {
        Box::pin(self.totals())
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.ping_db())
    }
}
