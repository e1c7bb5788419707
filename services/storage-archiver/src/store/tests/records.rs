//! Inserting records (idempotent) and reading them back: filters, pagination, summaries, odd input.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{INJECTIONS, on_both_backends, record};
use crate::store::{Cursor, Error, IndexRecord, MAX_DEVICE_ID_BYTES, QueryFilter, Store, StoredRecord};

on_both_backends!(
    inserting_twice_stores_once,
    records_read_back_as_written,
    a_batch_with_a_bad_record_stores_nothing,
    device_and_time_queries_page_stably,
    by_message_id_finds_every_copy,
    devices_are_summarised,
    stats_count_everything,
    injection_shaped_input_is_just_data,
    long_unicode_blob_names,
    nul_characters_do_not_break_a_batch,
);

/// Every page of `filter`, `page` rows at a time.
async fn pages(store: &Arc<dyn Store>, filter: &QueryFilter, page: u32) -> Vec<StoredRecord> {
    let mut all = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let rows = store.query(filter, page, after.as_ref()).await.unwrap();
        assert!(rows.len() <= page as usize);
        after = rows.last().map(StoredRecord::cursor);
        let done = rows.len() < page as usize;
        all.extend(rows);
        if done {
            return all;
        }
    }
}

fn keys(rows: &[StoredRecord]) -> Vec<(String, u64)> {
    rows.iter().map(|r| (r.blob.clone(), r.position)).collect()
}

async fn inserting_twice_stores_once(store: Arc<dyn Store>) {
    let batch: Vec<IndexRecord> = (0..5).map(|p| record("b1", p, 1_000 + p as i64, "d1")).collect();
    assert_eq!(store.insert_records(&batch).await.unwrap(), 5);
    assert_eq!(
        store.insert_records(&batch).await.unwrap(),
        0,
        "the same batch again"
    );
    let overlapping: Vec<IndexRecord> = (3..8).map(|p| record("b1", p, 1_000 + p as i64, "d1")).collect();
    assert_eq!(store.insert_records(&overlapping).await.unwrap(), 3);
    let repeated = [record("b2", 0, 5, "d1"), record("b2", 0, 5, "d1")];
    assert_eq!(
        store.insert_records(&repeated).await.unwrap(),
        1,
        "a duplicate inside one batch"
    );
    assert_eq!(store.insert_records(&[]).await.unwrap(), 0);
    assert_eq!(store.stats().await.unwrap().records, 9);
    let all = store.query(&QueryFilter::default(), 100, None).await.unwrap();
    assert_eq!(all.len(), 9);
}

async fn records_read_back_as_written(store: Arc<dyn Store>) {
    let json = IndexRecord {
        module_id: Some("edge".to_owned()),
        correlation_id: Some("corr-1".to_owned()),
        properties: json!({"level": "critical", "flag": null, "ünï": "çødé ☃"}),
        system: json!({"message-id": "m1", "iothub-enqueuedtime": "2026-11-26T00:00:00Z", "n": 42}),
        body: Some(json!({"windSpeed": 1.5, "nested": {"list": [1, "two", null, true]}})),
        ..record("hub/0/00.json", 0, 1_795_651_200_000, "turbine-1")
    };
    let raw = IndexRecord {
        content_type: Some("application/octet-stream".to_owned()),
        content_encoding: None,
        body: None,
        body_raw: Some(vec![0, 159, 146, 150, 255]),
        properties: json!({}),
        ..record("hub/0/00.json", 1, 1_795_651_200_001, "turbine-1")
    };
    let bare = IndexRecord {
        device_id: None,
        message_id: None,
        content_type: None,
        content_encoding: None,
        body: None,
        body_raw: None,
        properties: json!({}),
        system: json!({}),
        ..record("hub/0/00.json", 2, -5, "x")
    };
    let written = vec![json, raw, bare];
    store.insert_records(&written).await.unwrap();
    let mut read = store.query(&QueryFilter::default(), 10, None).await.unwrap();
    read.sort_by_key(|r| r.position);
    assert_eq!(read, written);
    assert_eq!(
        store.stats().await.unwrap().newest_enqueued_ms,
        Some(1_795_651_200_001)
    );
}

async fn a_batch_with_a_bad_record_stores_nothing(store: Arc<dyn Store>) {
    let too_long = IndexRecord {
        device_id: Some("d".repeat(MAX_DEVICE_ID_BYTES + 1)),
        ..record("b", 1, 1, "d")
    };
    let error = store
        .insert_records(&[record("b", 0, 1, "d"), too_long])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidRecord { position: 1, .. }),
        "{error}"
    );
    let out_of_range = record("b", u64::MAX, 1, "d");
    let error = store.insert_records(&[out_of_range]).await.unwrap_err();
    assert!(matches!(&error, Error::InvalidRecord { .. }), "{error}");
    assert_eq!(store.stats().await.unwrap().records, 0);
    let longest = IndexRecord {
        device_id: Some("é".repeat(MAX_DEVICE_ID_BYTES / 2)),
        ..record("b", 0, 1, "d")
    };
    assert_eq!(
        store.insert_records(&[longest]).await.unwrap(),
        1,
        "exactly at the limit"
    );
}

async fn device_and_time_queries_page_stably(store: Arc<dyn Store>) {
    // Three blobs of twelve records; four records share each timestamp, across blobs too.
    let mut all = Vec::new();
    for blob in ["hub/2/b", "hub/0/a", "hub/1/c"] {
        let batch: Vec<IndexRecord> = (0..12u64)
            .map(|p| {
                record(
                    blob,
                    p,
                    10_000 + (p / 4) as i64 * 10,
                    ["d1", "d2"][(p % 2) as usize],
                )
            })
            .collect();
        store.insert_records(&batch).await.unwrap();
        all.extend(batch);
    }
    let filter = QueryFilter {
        device_id: Some("d1".to_owned()),
        from_ms: Some(10_000),
        to_ms: Some(10_020),
        ..QueryFilter::default()
    };
    let expected: BTreeSet<(String, u64)> = all
        .iter()
        .filter(|r| r.device_id.as_deref() == Some("d1") && (10_000..10_020).contains(&r.enqueued_ms))
        .map(|r| (r.blob.clone(), r.position))
        .collect();
    assert_eq!(expected.len(), 12);
    let whole = store.query(&filter, 1000, None).await.unwrap();
    assert!(
        whole.windows(2).all(|w| w[0].enqueued_ms <= w[1].enqueued_ms),
        "enqueued order"
    );
    assert_eq!(keys(&whole).into_iter().collect::<BTreeSet<_>>(), expected);
    for page in [1, 2, 5, 12, 13] {
        assert_eq!(
            keys(&pages(&store, &filter, page).await),
            keys(&whole),
            "pages of {page}"
        );
    }
    // The bounds: `from` inclusive, `to` exclusive.
    let edge = |from_ms, to_ms| QueryFilter {
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
        ..QueryFilter::default()
    };
    assert_eq!(
        store.query(&edge(10_010, 10_020), 100, None).await.unwrap().len(),
        12
    );
    assert_eq!(
        store.query(&edge(10_011, 10_020), 100, None).await.unwrap().len(),
        0
    );
    let from_only = QueryFilter {
        from_ms: Some(10_020),
        ..QueryFilter::default()
    };
    assert_eq!(pages(&store, &from_only, 5).await.len(), 12);
    let everything = pages(&store, &QueryFilter::default(), 7).await;
    assert_eq!(everything.len(), 36);
    assert_eq!(
        keys(&everything).into_iter().collect::<BTreeSet<_>>().len(),
        36,
        "no row twice"
    );
    // A cursor past the last row, and one at a blob never indexed.
    let last = everything.last().unwrap().cursor();
    assert!(
        store
            .query(&QueryFilter::default(), 10, Some(&last))
            .await
            .unwrap()
            .is_empty()
    );
    let unknown = Cursor {
        blob: "no/such/blob".to_owned(),
        ..last
    };
    assert!(
        store
            .query(&QueryFilter::default(), 10, Some(&unknown))
            .await
            .unwrap()
            .is_empty()
    );
    let huge = Cursor {
        enqueued_ms: 0,
        blob: String::new(),
        position: u64::MAX,
    };
    assert_eq!(
        store
            .query(&QueryFilter::default(), 100, Some(&huge))
            .await
            .unwrap()
            .len(),
        36
    );
}

async fn by_message_id_finds_every_copy(store: Arc<dyn Store>) {
    let copy = |blob: &str, position, enqueued_ms| IndexRecord {
        message_id: Some("msg-1".to_owned()),
        ..record(blob, position, enqueued_ms, "d1")
    };
    store
        .insert_records(&[
            copy("b1", 3, 2_000),
            record("b1", 4, 2_000, "d1"),
            copy("b2", 0, 1_000),
        ])
        .await
        .unwrap();
    let found = store.by_message_id("msg-1").await.unwrap();
    assert_eq!(keys(&found), [("b2".to_owned(), 0), ("b1".to_owned(), 3)]);
    assert_eq!(
        keys(&store.by_message_id("b1#4").await.unwrap()),
        [("b1".to_owned(), 4)]
    );
    assert!(store.by_message_id("msg-2").await.unwrap().is_empty());
    assert!(store.by_message_id("").await.unwrap().is_empty());
    let filter = QueryFilter {
        message_id: Some("msg-1".to_owned()),
        from_ms: Some(1_500),
        ..QueryFilter::default()
    };
    assert_eq!(
        keys(&store.query(&filter, 10, None).await.unwrap()),
        [("b1".to_owned(), 3)]
    );
}

async fn devices_are_summarised(store: Arc<dyn Store>) {
    let mut batch: Vec<IndexRecord> = (0..9u64)
        .map(|p| {
            record(
                "b",
                p,
                100 * p as i64,
                ["turbine-1", "turbine-7", "turbine-9"][(p % 3) as usize],
            )
        })
        .collect();
    batch.push(IndexRecord {
        device_id: None,
        ..record("b", 9, 5, "x")
    });
    store.insert_records(&batch).await.unwrap();
    let devices = store.devices(10, None).await.unwrap();
    let summary: Vec<(&str, u64, i64, i64)> = devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.count, d.first_ms, d.last_ms))
        .collect();
    assert_eq!(
        summary,
        [
            ("turbine-1", 3, 0, 600),
            ("turbine-7", 3, 100, 700),
            ("turbine-9", 3, 200, 800)
        ]
    );
    let first = store.devices(2, None).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = store.devices(2, Some(&first[1].device_id)).await.unwrap();
    assert_eq!(
        rest.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(),
        ["turbine-9"]
    );
    assert!(store.devices(10, Some("turbine-9")).await.unwrap().is_empty());
}

async fn stats_count_everything(store: Arc<dyn Store>) {
    let empty = store.stats().await.unwrap();
    assert_eq!(
        (empty.records, empty.newest_enqueued_ms, empty.blobs.pending),
        (0, None, 0)
    );
    store.ping().await.unwrap();
    for n in 0..4 {
        store.upsert_blob(&format!("b{n}"), "e", 1).await.unwrap();
    }
    let indexing = store
        .claim("w", Duration::from_secs(60), 3)
        .await
        .unwrap()
        .unwrap();
    let indexed = store
        .claim("w", Duration::from_secs(60), 3)
        .await
        .unwrap()
        .unwrap();
    store.finish(&indexed.name, &indexed.etag, "w", 2).await.unwrap();
    let failed = store
        .claim("w", Duration::from_secs(60), 3)
        .await
        .unwrap()
        .unwrap();
    store
        .fail(&failed.name, &failed.etag, "w", "bad", true)
        .await
        .unwrap();
    store
        .insert_records(&[
            record(&indexing.name, 0, 7_000, "d"),
            record(&indexed.name, 0, 9_000, "d"),
        ])
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.records, stats.newest_enqueued_ms), (2, Some(9_000)));
    let b = stats.blobs;
    assert_eq!((b.pending, b.indexing, b.indexed, b.failed), (1, 1, 1, 1));
    let wire = serde_json::to_value(stats).unwrap();
    assert_eq!(wire["blobs"]["pending"], 1);
    assert_eq!(wire["newestEnqueuedMs"], 9_000);
}

async fn injection_shaped_input_is_just_data(store: Arc<dyn Store>) {
    let normal: Vec<IndexRecord> = (0..10).map(|p| record("hub/0/a.json", p, 1_000, "d1")).collect();
    store.insert_records(&normal).await.unwrap();
    store.upsert_blob("hub/0/a.json", "e", 1).await.unwrap();
    for injection in INJECTIONS {
        let by_device = QueryFilter {
            device_id: Some(injection.to_owned()),
            ..QueryFilter::default()
        };
        assert!(
            store.query(&by_device, 100, None).await.unwrap().is_empty(),
            "{injection}"
        );
        let by_id = QueryFilter {
            message_id: Some(injection.to_owned()),
            ..QueryFilter::default()
        };
        assert!(
            store.query(&by_id, 100, None).await.unwrap().is_empty(),
            "{injection}"
        );
        assert!(
            store.by_message_id(injection).await.unwrap().is_empty(),
            "{injection}"
        );
        let cursor = Cursor {
            enqueued_ms: 1_000,
            blob: injection.to_owned(),
            position: 0,
        };
        let after = store.query(&by_device, 100, Some(&cursor)).await.unwrap();
        assert!(after.is_empty(), "{injection}");
        store.devices(10, Some(injection)).await.unwrap();
        assert!(
            !store
                .renew("hub/0/a.json", injection, injection, Duration::from_secs(1))
                .await
                .unwrap()
        );
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.records, stats.blobs.pending), (10, 1), "nothing touched");
    // Stored as ids, they come back exactly.
    let odd: Vec<IndexRecord> = INJECTIONS
        .iter()
        .enumerate()
        .map(|(p, text)| IndexRecord {
            message_id: Some((*text).to_owned()),
            ..record(text, p as u64, 2_000, text)
        })
        .collect();
    assert_eq!(store.insert_records(&odd).await.unwrap(), 4);
    for text in INJECTIONS {
        let found = store.by_message_id(text).await.unwrap();
        assert_eq!(found.len(), 1, "{text}");
        assert_eq!(
            (found[0].blob.as_str(), found[0].device_id.as_deref()),
            (text, Some(text))
        );
    }
    assert_eq!(store.stats().await.unwrap().records, 14);
}

async fn long_unicode_blob_names(store: Arc<dyn Store>) {
    // 1,024 characters, most of them 4 bytes in UTF-8 and none repeating in a way that compresses.
    let name = |last: char| -> String {
        let mut name: String = (0..1023u32)
            .map(|i| char::from_u32(0x1_0000 + i * 37 % 0xF000).unwrap_or('x'))
            .collect();
        name.push(last);
        name
    };
    let (a, b) = (name('a'), name('b'));
    assert_eq!(a.chars().count(), 1024);
    assert!(a.len() > 4000);
    for blob in [&a, &b] {
        assert!(store.upsert_blob(blob, "0x8DC", 1).await.unwrap());
        assert!(!store.upsert_blob(blob, "0x8DC", 1).await.unwrap());
    }
    let first = store
        .claim("w", Duration::from_secs(60), 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.name, a);
    assert!(
        store
            .renew(&a, "0x8DC", "w", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let batch: Vec<IndexRecord> = [&a, &b]
        .into_iter()
        .flat_map(|blob| (0..3).map(|p| record(blob, p, 5_000, "d1")))
        .collect();
    assert_eq!(store.insert_records(&batch).await.unwrap(), 6);
    assert_eq!(store.insert_records(&batch).await.unwrap(), 0);
    let paged = pages(&store, &QueryFilter::default(), 1).await;
    assert_eq!(paged.len(), 6);
    assert_eq!(
        keys(&paged).into_iter().collect::<BTreeSet<_>>(),
        keys(&batch).into_iter().collect()
    );
    store.finish(&a, "0x8DC", "w", 3).await.unwrap();
    let listed = store.blobs(None, 10, Some(&a)).await.unwrap();
    assert_eq!(listed.iter().map(|l| &l.name).collect::<Vec<_>>(), [&b]);
    assert!(store.reset(&a).await.unwrap());
    assert_eq!(store.by_message_id(&format!("{b}#2")).await.unwrap()[0].blob, b);
}

async fn nul_characters_do_not_break_a_batch(store: Arc<dyn Store>) {
    let odd = IndexRecord {
        message_id: Some("m\0".to_owned()),
        correlation_id: Some("c\0".to_owned()),
        properties: json!({"level\0": "a\0b"}),
        body: Some(json!({"text": "x\0y", "list": ["\0"]})),
        ..record("b", 0, 1, "dev\0ice")
    };
    assert_eq!(
        store
            .insert_records(&[odd, record("b", 1, 1, "d")])
            .await
            .unwrap(),
        2
    );
    let by_device = QueryFilter {
        device_id: Some("dev\0ice".to_owned()),
        ..QueryFilter::default()
    };
    let found = store.query(&by_device, 10, None).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(store.by_message_id("m\0").await.unwrap().len(), 1);
    // SQLite keeps U+0000; PostgreSQL cannot and stores U+FFFD.
    let text = found[0].body.as_ref().unwrap()["text"].as_str().unwrap();
    assert!(text == "x\0y" || text == "x\u{FFFD}y", "{text:?}");
    store.upsert_blob("n\0l", "e\0", 1).await.unwrap();
    let claimed = store
        .claim("w\0", Duration::from_secs(60), 3)
        .await
        .unwrap()
        .unwrap();
    store
        .fail(&claimed.name, &claimed.etag, "w\0", "bad byte \0 here", true)
        .await
        .unwrap();
}
