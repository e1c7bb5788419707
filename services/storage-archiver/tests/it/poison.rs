//! A corrupt blob, a truncated Avro file and a non-JSON body: the bad blobs are retried a bounded
//! number of times and then listed as failed with their error, never blocking the others; a
//! non-JSON body is indexed as base64; `reindex` retries a failed blob.

use crate::support::{Running, Setup, message, write_avro_blob, write_file, write_json_blob};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_blobs_fail_alone_and_can_be_retried() {
    let setup = Setup::new(false);
    let good: Vec<_> = (0..20)
        .map(|n| message("d1", n, Some("storage"), 12.0, 1_795_651_200_000 + n as i64))
        .collect();
    write_json_blob(&setup.container, "hub/0/2026/11/26/00/00.json", &good);
    write_file(
        &setup.container.join("hub/0/2026/11/26/00/01.json"),
        b"{\"EnqueuedTimeUtc\": \"2026-11-26T00:01:00Z\", \"Body\": ",
    );
    // A truncated Avro file: the first half of a valid one.
    write_avro_blob(&setup.container, "hub/0/2026/11/26/00/02.avro", &good, false);
    let full = std::fs::read(setup.container.join("hub/0/2026/11/26/00/02.avro")).unwrap();
    write_file(
        &setup.container.join("hub/0/2026/11/26/00/03.avro"),
        &full[..full.len() / 2],
    );
    // A non-JSON body (declared as text).
    let mut binary = message("d2", 1, None, 0.0, 1_795_651_300_000);
    binary.body = vec![0, 159, 146, 150];
    binary.system.content_type = Some("application/octet-stream".to_owned());
    write_json_blob(&setup.container, "hub/0/2026/11/26/00/04.json", &[binary]);

    let running = Running::start(setup.config.clone());
    let started = std::time::Instant::now();
    let failed = loop {
        let (_, blobs) = running.get("/v1/blobs?status=failed").await;
        let failed = blobs["blobs"].as_array().unwrap().clone();
        if failed.len() == 2 {
            break failed;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{blobs}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for blob in &failed {
        assert_eq!(blob["attempts"], 2, "retried up to max_attempts: {blob}");
        assert!(blob["error"].as_str().is_some_and(|e| !e.is_empty()), "{blob}");
    }
    let (_, stats) = running.get("/v1/stats").await;
    // 20 + 20 (the valid Avro file) + the truncated file's records before the cut are not kept
    // separately: its records may be indexed, but the blob is failed.
    assert!(stats["records"].as_u64().unwrap() >= 41, "{stats}");
    let (status, binary) = running.get("/v1/messages/d2-1").await;
    assert_eq!(status, 200);
    assert_eq!(binary["messages"][0]["bodyEncoding"], "base64");
    assert_eq!(binary["messages"][0]["body"], "AJ+Slg==");
    running.stop().await;

    // reindex puts a failed blob back in the queue; fixed meanwhile, it is indexed.
    write_json_blob(&setup.container, "hub/0/2026/11/26/00/01.json", &good[..5]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_storage-archiver"))
        .args(["reindex", "hub/0/2026/11/26/00/01.json"])
        .env(
            "STORAGE_ARCHIVER_INDEX",
            secrecy::ExposeSecret::expose_secret(&setup.config.index),
        )
        .env(
            "STORAGE_ARCHIVER_CONTAINER__CONNECTION_STRING",
            secrecy::ExposeSecret::expose_secret(&setup.config.container.connection_string),
        )
        .env("STORAGE_ARCHIVER_CONTAINER__NAME", "archive")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(setup);
}
