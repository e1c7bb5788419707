//! What only the SQLite backend has: its file's schema versions.

use rusqlite::Connection;

use crate::store::tests::record;
use crate::store::{QueryFilter, open};

/// Schema version 1, as the first releases created it: records keyed by blob name and position.
const SCHEMA_V1: &str = "
CREATE TABLE cursors (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blobs (
    name TEXT NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'indexing', 'indexed', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, records INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT, lease_until_ms INTEGER, updated_ms INTEGER NOT NULL,
    PRIMARY KEY (name, etag)
);
CREATE INDEX blobs_status ON blobs (status, updated_ms);
CREATE TABLE records (
    blob TEXT NOT NULL, position INTEGER NOT NULL, enqueued_ms INTEGER NOT NULL,
    device_id TEXT, module_id TEXT, message_id TEXT, correlation_id TEXT, content_type TEXT,
    content_encoding TEXT, properties TEXT NOT NULL, system TEXT NOT NULL, body TEXT, body_raw BLOB,
    PRIMARY KEY (blob, position)
);
CREATE INDEX records_device ON records (device_id, enqueued_ms, blob, position);
CREATE INDEX records_time ON records (enqueued_ms, blob, position);
CREATE INDEX records_message ON records (message_id);
INSERT INTO blobs (name, etag, size, status, records, updated_ms) VALUES ('b/1', 'e1', 10, 'indexed', 2, 0);
INSERT INTO records VALUES
    ('b/1', 0, 1000, 'd1', NULL, 'm0', NULL, 'application/json', 'utf-8', '{\"level\":\"storage\"}', '{}', '{\"n\":0}', NULL),
    ('b/1', 1, 2000, 'd1', NULL, 'm1', NULL, NULL, NULL, '{}', '{}', NULL, X'00ff'),
    ('a/2', 7, 1500, 'd2', NULL, 'm7', NULL, NULL, NULL, '{}', '{}', NULL, NULL);
PRAGMA user_version = 1;
";

#[tokio::test]
async fn a_version_1_index_is_migrated_with_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    Connection::open(&path).unwrap().execute_batch(SCHEMA_V1).unwrap();

    let store = open(&format!("sqlite://{}", path.display())).await.unwrap();
    let all = store.query(&QueryFilter::default(), 10, None).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|r| (r.blob.as_str(), r.position, r.enqueued_ms))
        .collect();
    assert_eq!(seen, [("b/1", 0, 1000), ("a/2", 7, 1500), ("b/1", 1, 2000)]);
    assert_eq!(all[0].body, Some(serde_json::json!({"n": 0})));
    assert_eq!(all[2].body_raw.as_deref(), Some(&[0, 255][..]));
    assert_eq!(store.by_message_id("m7").await.unwrap().len(), 1);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.records, stats.blobs.indexed), (3, 1));
    // Their identities carried over: indexing them again adds nothing; a new position is new.
    assert_eq!(
        store
            .insert_records(&[record("b/1", 1, 2000, "d1")])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .insert_records(&[record("b/1", 2, 3000, "d1")])
            .await
            .unwrap(),
        1
    );
    drop(store);

    let version: i64 = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
    // Opening again changes nothing.
    let store = open(&format!("sqlite://{}", path.display())).await.unwrap();
    assert_eq!(store.stats().await.unwrap().records, 4);
}

#[tokio::test]
async fn an_index_from_a_newer_archiver_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = open(&format!("sqlite://{}", path.display())).await.unwrap_err();
    assert!(error.to_string().contains("newer than this archiver"), "{error}");
}
