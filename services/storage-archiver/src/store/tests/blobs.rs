//! Receipts, listing cursors, claims, leases, attempts, failure and reindexing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{INJECTIONS, on_both_backends, record};
use crate::store::{BlobInfo, BlobStatus, Error, Store};

const LONG: Duration = Duration::from_secs(60);

on_both_backends!(
    receipts,
    listing_cursors,
    two_workers_never_share_a_blob,
    four_workers_claim_fifty_blobs_once_each,
    a_lapsed_lease_is_taken_over,
    attempts_are_bounded,
    a_final_failure_is_listed,
    reset_reindexes_the_newest_version,
    blob_listing_pages,
);

async fn all_blobs(store: &Arc<dyn Store>) -> Vec<BlobInfo> {
    store.blobs(None, 1000, None).await.unwrap()
}

async fn receipts(store: Arc<dyn Store>) {
    assert!(
        store.upsert_blob("hub/0/a.json", "e1", 10).await.unwrap(),
        "a new version"
    );
    assert!(
        !store.upsert_blob("hub/0/a.json", "e1", 10).await.unwrap(),
        "seen before"
    );
    assert!(
        store.upsert_blob("hub/0/a.json", "e2", 25).await.unwrap(),
        "new etag, new version"
    );
    let blobs = all_blobs(&store).await;
    let versions: Vec<(&str, u64, BlobStatus, u32)> = blobs
        .iter()
        .map(|b| (b.etag.as_str(), b.size, b.status, b.attempts))
        .collect();
    assert_eq!(
        versions,
        [
            ("e1", 10, BlobStatus::Pending, 0),
            ("e2", 25, BlobStatus::Pending, 0)
        ]
    );
    assert!(
        blobs
            .iter()
            .all(|b| b.name == "hub/0/a.json" && b.error.is_none() && b.claimed_by.is_none())
    );
    // An indexed version stays indexed when listed again.
    let claimed = store.claim("w", LONG, 3).await.unwrap().unwrap();
    store.finish(&claimed.name, &claimed.etag, "w", 4).await.unwrap();
    assert!(!store.upsert_blob(&claimed.name, &claimed.etag, 10).await.unwrap());
    assert_eq!(store.stats().await.unwrap().blobs.indexed, 1);
}

async fn listing_cursors(store: Arc<dyn Store>) {
    assert_eq!(store.cursor("container/hub|0").await.unwrap(), None);
    store
        .set_cursor("container/hub|0", "hub/0/2026/01")
        .await
        .unwrap();
    store
        .set_cursor("container/hub|0", "hub/0/2026/02")
        .await
        .unwrap();
    store
        .set_cursor("container/hub|1", "hub/1/2026/01")
        .await
        .unwrap();
    assert_eq!(
        store.cursor("container/hub|0").await.unwrap().as_deref(),
        Some("hub/0/2026/02")
    );
    assert_eq!(
        store.cursor("container/hub|1").await.unwrap().as_deref(),
        Some("hub/1/2026/01")
    );
    // Keys and values as long as blob names get.
    let long: String = (0..1024).map(|i| char::from_u32(0x1F300 + i).unwrap()).collect();
    store.set_cursor(&long, &long).await.unwrap();
    assert_eq!(store.cursor(&long).await.unwrap(), Some(long.clone()));
    for injection in INJECTIONS {
        assert_eq!(store.cursor(injection).await.unwrap(), None);
    }
}

async fn two_workers_never_share_a_blob(store: Arc<dyn Store>) {
    for round in 0..8 {
        store.upsert_blob(&format!("blob-{round}"), "e", 1).await.unwrap();
        let claims = [("a", Arc::clone(&store)), ("b", Arc::clone(&store))]
            .map(|(worker, store)| tokio::spawn(async move { store.claim(worker, LONG, 5).await.unwrap() }));
        let mut got = Vec::new();
        for claim in claims {
            got.extend(claim.await.unwrap());
        }
        assert_eq!(got.len(), 1, "round {round}: {got:?}");
        assert_eq!(got[0].name, format!("blob-{round}"));
        let worker = got[0].claimed_by.clone().unwrap();
        store.finish(&got[0].name, "e", &worker, 0).await.unwrap();
    }
}

async fn four_workers_claim_fifty_blobs_once_each(store: Arc<dyn Store>) {
    let names: BTreeSet<String> = (0..50).map(|n| format!("hub/{n:02}.json")).collect();
    for name in &names {
        store.upsert_blob(name, "e", 1).await.unwrap();
    }
    let workers = (0..4).map(|w| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut mine = Vec::new();
            while let Some(blob) = store.claim(&worker, LONG, 3).await.unwrap() {
                assert_eq!((blob.status, blob.attempts), (BlobStatus::Indexing, 1));
                assert_eq!(blob.claimed_by.as_deref(), Some(worker.as_str()));
                store.finish(&blob.name, &blob.etag, &worker, 1).await.unwrap();
                mine.push(blob.name);
            }
            mine
        })
    });
    let mut claimed = Vec::new();
    for worker in workers.collect::<Vec<_>>() {
        claimed.extend(worker.await.unwrap());
    }
    assert_eq!(claimed.len(), 50, "each blob claimed exactly once");
    assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), names);
    assert_eq!(store.stats().await.unwrap().blobs.indexed, 50);
}

async fn a_lapsed_lease_is_taken_over(store: Arc<dyn Store>) {
    store.upsert_blob("b", "e", 1).await.unwrap();
    let first = store
        .claim("a", Duration::from_millis(1500), 5)
        .await
        .unwrap()
        .unwrap();
    assert!(
        first
            .lease_until_ms
            .is_some_and(|until| until >= first.updated_ms + 1500)
    );
    assert!(
        store.claim("b", LONG, 5).await.unwrap().is_none(),
        "the lease runs"
    );
    assert!(
        store
            .renew("b", "e", "a", Duration::from_millis(1500))
            .await
            .unwrap(),
        "the holder renews"
    );
    assert!(
        !store.renew("b", "e", "b", LONG).await.unwrap(),
        "another worker cannot"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = store.claim("b", LONG, 5).await.unwrap().unwrap();
    assert_eq!((second.name.as_str(), second.attempts), ("b", 2));
    assert_eq!(second.claimed_by.as_deref(), Some("b"));
    assert!(
        !store.renew("b", "e", "a", LONG).await.unwrap(),
        "the first worker lost it"
    );
    let lost = store.finish("b", "e", "a", 9).await.unwrap_err();
    assert!(matches!(lost, Error::ClaimLost { .. }), "{lost}");
    let lost = store.fail("b", "e", "a", "late", true).await.unwrap_err();
    assert!(matches!(lost, Error::ClaimLost { .. }), "{lost}");
    assert!(store.renew("b", "e", "b", LONG).await.unwrap());
    store.finish("b", "e", "b", 3).await.unwrap();
    let done = &all_blobs(&store).await[0];
    assert_eq!(
        (done.status, done.records, done.claimed_by.as_deref()),
        (BlobStatus::Indexed, 3, Some("b"))
    );
    assert_eq!(done.lease_until_ms, None);
    assert!(
        !store.renew("b", "e", "b", LONG).await.unwrap(),
        "nothing to renew once finished"
    );
}

async fn attempts_are_bounded(store: Arc<dyn Store>) {
    store.upsert_blob("flaky", "e", 1).await.unwrap();
    for attempt in 1..=2 {
        let blob = store.claim("w", LONG, 2).await.unwrap().unwrap();
        assert_eq!(blob.attempts, attempt);
        store
            .fail("flaky", "e", "w", &format!("boom {attempt}"), false)
            .await
            .unwrap();
    }
    assert!(
        store.claim("w", LONG, 2).await.unwrap().is_none(),
        "out of attempts"
    );
    let flaky = &all_blobs(&store).await[0];
    assert_eq!((flaky.status, flaky.attempts), (BlobStatus::Pending, 2));
    assert_eq!(flaky.error.as_deref(), Some("boom 2"));
    assert_eq!(
        store.claim("w", LONG, 3).await.unwrap().unwrap().attempts,
        3,
        "a higher limit allows more"
    );
    store.finish("flaky", "e", "w", 0).await.unwrap();

    // A lease that lapses on the last attempt (the worker died on it) fails the blob.
    store.upsert_blob("poison", "e", 1).await.unwrap();
    store
        .claim("w", Duration::from_millis(1), 1)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(store.claim("w2", LONG, 1).await.unwrap().is_none());
    let failed = store.blobs(Some(BlobStatus::Failed), 10, None).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].name.as_str(), failed[0].attempts), ("poison", 1));
    assert!(
        failed[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("lease lapsed")),
        "{failed:?}"
    );
}

async fn a_final_failure_is_listed(store: Arc<dyn Store>) {
    store.upsert_blob("bad.avro", "e", 1).await.unwrap();
    store.upsert_blob("good.json", "e", 1).await.unwrap();
    let blob = store.claim("w", LONG, 3).await.unwrap().unwrap();
    assert_eq!(blob.name, "bad.avro", "the pending blob waiting longest first");
    store
        .fail("bad.avro", "e", "w", "not an Avro file", true)
        .await
        .unwrap();
    let failed = store.blobs(Some(BlobStatus::Failed), 10, None).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error.as_deref(), Some("not an Avro file"));
    assert_eq!((failed[0].attempts, failed[0].lease_until_ms), (1, None));
    assert_eq!(
        store.claim("w", LONG, 3).await.unwrap().unwrap().name,
        "good.json"
    );
    assert!(
        store.claim("w", LONG, 3).await.unwrap().is_none(),
        "a failed blob is not claimed"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.blobs.failed, stats.blobs.indexing, stats.blobs.pending),
        (1, 1, 0)
    );
}

async fn reset_reindexes_the_newest_version(store: Arc<dyn Store>) {
    assert!(!store.reset("nothing").await.unwrap());
    store.upsert_blob("b", "e1", 1).await.unwrap();
    assert!(!store.reset("b").await.unwrap(), "a pending blob needs no reset");
    store.claim("w", LONG, 3).await.unwrap().unwrap();
    assert!(!store.reset("b").await.unwrap(), "nor one being indexed");
    store
        .insert_records(&[record("b", 0, 1_000, "d1")])
        .await
        .unwrap();
    store.finish("b", "e1", "w", 1).await.unwrap();
    assert!(store.reset("b").await.unwrap());
    let again = store.claim("w2", LONG, 1).await.unwrap().unwrap();
    assert_eq!(
        (again.etag.as_str(), again.attempts, again.error),
        ("e1", 1, None)
    );
    assert_eq!(
        store
            .insert_records(&[record("b", 0, 1_000, "d1")])
            .await
            .unwrap(),
        0,
        "records were kept"
    );
    store.fail("b", "e1", "w2", "broken", true).await.unwrap();
    assert!(store.reset("b").await.unwrap(), "a failed blob too");
    let reset = &all_blobs(&store).await[0];
    assert_eq!(
        (reset.status, reset.attempts, reset.error.as_deref()),
        (BlobStatus::Pending, 0, None)
    );
    let claimed = store.claim("w", LONG, 3).await.unwrap().unwrap();
    store.finish(&claimed.name, &claimed.etag, "w", 1).await.unwrap();
    // Of two versions, only the newest is indexed again.
    store.upsert_blob("b", "e2", 2).await.unwrap();
    let claimed = store.claim("w", LONG, 3).await.unwrap().unwrap();
    store.finish(&claimed.name, &claimed.etag, "w", 2).await.unwrap();
    assert!(store.reset("b").await.unwrap());
    let statuses: Vec<(String, BlobStatus)> = all_blobs(&store)
        .await
        .into_iter()
        .map(|b| (b.etag, b.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("e1".to_owned(), BlobStatus::Indexed),
            ("e2".to_owned(), BlobStatus::Pending)
        ]
    );
    for injection in INJECTIONS {
        assert!(!store.reset(injection).await.unwrap());
    }
    assert_eq!(store.stats().await.unwrap().records, 1);
}

async fn blob_listing_pages(store: Arc<dyn Store>) {
    for n in 0..7 {
        store.upsert_blob(&format!("hub/{n}.json"), "e", n).await.unwrap();
    }
    for _ in 0..3 {
        let blob = store.claim("w", LONG, 3).await.unwrap().unwrap();
        store.finish(&blob.name, &blob.etag, "w", 1).await.unwrap();
    }
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.blobs(None, 3, after.as_deref()).await.unwrap();
        after = page.last().map(|b| b.name.clone());
        let done = page.len() < 3;
        paged.extend(page.into_iter().map(|b| b.name));
        if done {
            break;
        }
    }
    let expected: Vec<String> = (0..7).map(|n| format!("hub/{n}.json")).collect();
    assert_eq!(paged, expected);
    let indexed = store.blobs(Some(BlobStatus::Indexed), 2, None).await.unwrap();
    assert_eq!(indexed.len(), 2);
    assert!(indexed.iter().all(|b| b.status == BlobStatus::Indexed));
    let rest = store
        .blobs(Some(BlobStatus::Indexed), 10, Some(&indexed[1].name))
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        store
            .blobs(Some(BlobStatus::Pending), 10, None)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(store.blobs(None, 0, None).await.unwrap().is_empty());
    for injection in INJECTIONS {
        // Every name sorts after these, or none does: either way the listing is of real blobs.
        for blob in store.blobs(None, 10, Some(injection)).await.unwrap() {
            assert!(blob.name.as_str() > injection);
        }
    }
}
