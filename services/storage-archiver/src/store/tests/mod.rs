//! Every store test runs against both backends: a fresh SQLite file, and a fresh PostgreSQL schema
//! (`archiver_<random>`, dropped afterwards) in the database `ARCHIVER_TEST_POSTGRES` names
//! (default `postgres://postgres@127.0.0.1:5432/test`).

mod blobs;
mod records;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::json;

use super::{Error, IndexRecord, Store, open};

/// Defines `sqlite::<test>` and `postgres::<test>` for each `async fn <test>(Arc<dyn Store>)` named.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    $crate::store::tests::with_sqlite(super::$test).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    $crate::store::tests::with_postgres(super::$test).await;
                }
            )+
        }
    };
}
use on_both_backends;

/// Runs `test` on a store in a new SQLite file.
pub(super) async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/index.db").display());
    let store = open(&url).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    test(store).await;
}

fn postgres_url() -> String {
    std::env::var("ARCHIVER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs `test` on a store in a new PostgreSQL schema, dropped afterwards (also when it fails).
pub(super) async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let base = postgres_url();
    let schema = format!("archiver_{:016x}", fastrand::u64(..));
    let separator = if base.contains('?') { '&' } else { '?' };
    let store = open(&format!("{base}{separator}schema={schema}")).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    let outcome = AssertUnwindSafe(test(store)).catch_unwind().await;
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    drop(client);
    let _ = connection.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A record of `device` at `enqueued_ms`, message id `<blob>#<position>`.
pub(super) fn record(blob: &str, position: u64, enqueued_ms: i64, device: &str) -> IndexRecord {
    IndexRecord {
        blob: blob.to_owned(),
        position,
        enqueued_ms,
        device_id: Some(device.to_owned()),
        module_id: None,
        message_id: Some(format!("{blob}#{position}")),
        correlation_id: None,
        content_type: Some("application/json".to_owned()),
        content_encoding: Some("utf-8".to_owned()),
        properties: json!({"level": "storage"}),
        system: json!({"iothub-connection-device-id": device}),
        body: Some(json!({"deviceId": device, "windSpeed": 12.5})),
        body_raw: None,
    }
}

/// Strings that would change a statement if it were formatted into SQL.
pub(super) const INJECTIONS: [&str; 4] = [
    "' OR 1=1 --",
    "\"; DROP TABLE records; --",
    "x'); DELETE FROM blobs; --",
    "$1 $$ ? ?1 %s {}",
];

#[tokio::test]
async fn urls_that_are_not_indexes_are_refused() {
    for url in [
        "mysql://root@localhost/db",
        "sqlite://",
        "index.db",
        "postgres://u@127.0.0.1:1/db?schema=bad-name",
        "postgres://u@127.0.0.1:1/db?schema=1abc",
        "postgres://u@127.0.0.1:1/db?schema=a;DROP%20TABLE%20x",
        "postgres://u@127.0.0.1:1/db?pool_size=0",
        "postgres://u@127.0.0.1:1/db?no_such_option=1",
    ] {
        let error = open(url).await.unwrap_err();
        assert!(matches!(error, Error::InvalidUrl { .. }), "{url}: {error}");
    }
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_backend_error_without_the_password() {
    let error = open("postgres://user:s3cret@127.0.0.1:1/db?connect_timeout=2")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Backend { .. }), "{error}");
    assert!(!error.to_string().contains("s3cret"), "{error}");
}
