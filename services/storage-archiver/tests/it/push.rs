//! Push mode: a BlobCreated notification on a queue gets a blob indexed without waiting for the
//! next listing; a redelivered notification changes nothing; a message that is not a notification
//! is dead-lettered with the reason.

use std::time::Duration;

use queue::{Message, QueueClient, QueueOptions};
use secrecy::SecretString;
use storage_archiver::config::NotificationSettings;

use crate::support::{Running, Setup, message, write_json_blob};

fn blob_created(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([{
        "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/local",
        "subject": format!("/blobServices/default/containers/archive/blobs/{name}"),
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": name,
        "data": {"api": "PutBlockList", "eTag": "0x8D0000000000000", "contentLength": 1},
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": "2026-11-26T10:00:00.0000000Z"
    }]))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_indexes_a_blob_before_the_next_listing() {
    let mut setup = Setup::new(false);
    let queue_url = format!(
        "sqlite://{}",
        setup.container.with_file_name("events.db").display()
    );
    let client = QueueClient::connect(&queue_url).await.unwrap();
    client
        .create_queue("blob-events", &QueueOptions::default())
        .await
        .unwrap();
    let queue = client.queue("blob-events").await.unwrap();
    // One listing at start (an empty container), then none for an hour: only a notification can
    // bring the blob in.
    setup.config.poll_interval_ms = 3_600_000;
    setup.config.notifications = Some(NotificationSettings {
        connection_string: SecretString::from(queue_url.clone()),
        queue: "blob-events".to_owned(),
    });
    let running = Running::start(setup.config.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let name = "hub/0/2026/11/26/10/00.json";
    let messages: Vec<_> = (0..5)
        .map(|n| message("turbine-7", n, Some("storage"), 20.0, 0))
        .collect();
    write_json_blob(&setup.container, name, &messages);
    queue.send(Message::new(blob_created(name))).await.unwrap();
    running.wait_for_records(5).await;

    // The same notification again, and one that is not a notification at all.
    queue.send(Message::new(blob_created(name))).await.unwrap();
    queue.send(Message::new(b"hello".to_vec())).await.unwrap();
    let dead_letters = client.queue("blob-events/$deadletterqueue").await.unwrap();
    let started = std::time::Instant::now();
    while dead_letters.len().await.unwrap() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peeked = dead_letters.peek(1).await.unwrap();
    let reason = peeked[0]
        .message
        .application_properties
        .get("DeadLetterReason")
        .cloned();
    assert_eq!(reason.as_deref(), Some("not_blob_created_event"));
    while queue.len().await.unwrap() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "notifications not settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, stats) = running.get("/v1/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["records"], 5, "{stats}");
    running.stop().await;
}

#[test]
fn a_bad_notification_queue_is_refused_at_start() {
    let mut setup = Setup::new(false);
    setup.config.notifications = Some(NotificationSettings {
        connection_string: SecretString::from("nonsense://x"),
        queue: " ".to_owned(),
    });
    let error = setup.config.validate().unwrap_err().to_string();
    assert!(error.contains("notifications.connection_string"), "{error}");
    assert!(error.contains("notifications.queue: required"), "{error}");
}
