//! Bad input at the API: unusable queue names, queues that cannot be created on brokers, and what
//! the errors say.

use queue::{Error, Message, QueueClient, QueueOptions};

async fn sqlite() -> (tempfile::TempDir, QueueClient) {
    let dir = tempfile::tempdir().unwrap();
    let client = QueueClient::connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
        .await
        .unwrap();
    (dir, client)
}

#[tokio::test]
async fn queue_names_are_checked() {
    let (_dir, client) = sqlite().await;
    for name in [
        "",
        "a b",
        "x/y",
        "$deadletterqueue",
        "/$deadletterqueue",
        &"n".repeat(261),
    ] {
        let result = client.queue(name).await;
        assert!(
            matches!(result, Err(Error::InvalidQueueName { .. })),
            "{name:?}: {result:?}"
        );
    }
    let result = client
        .create_queue("q/$deadletterqueue", &QueueOptions::default())
        .await;
    assert!(
        matches!(result, Err(Error::InvalidQueueName { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn errors_read_well() {
    let (_dir, client) = sqlite().await;
    let missing = client.queue("critical").await.unwrap_err();
    assert_eq!(missing.to_string(), "queue \"critical\" does not exist");
    client
        .create_queue("critical", &QueueOptions::default())
        .await
        .unwrap();
    let q = client.queue("critical").await.unwrap();
    let too_big = q.send(Message::new(vec![0; 262_145])).await.unwrap_err();
    assert_eq!(
        too_big.to_string(),
        "message of 262145 bytes exceeds the limit of 262144 bytes"
    );
    let bad_key = QueueClient::connect("sqlite://q.db?speed=fast")
        .await
        .unwrap_err();
    assert!(
        bad_key
            .to_string()
            .starts_with("invalid connection string: `speed`: unknown key"),
        "{bad_key}"
    );
}

#[tokio::test]
async fn a_custom_size_limit_applies() {
    let dir = tempfile::tempdir().unwrap();
    let client = QueueClient::connect(&format!(
        "sqlite://{}?max_message_size=1000",
        dir.path().join("q.db").display()
    ))
    .await
    .unwrap();
    client.create_queue("q", &QueueOptions::default()).await.unwrap();
    let q = client.queue("q").await.unwrap();
    q.send(Message::new(vec![0; 1000])).await.unwrap();
    let result = q
        .send(Message::new(vec![0; 990]).with_property("key", "0123456789"))
        .await;
    assert!(
        matches!(
            result,
            Err(Error::MessageTooLarge {
                size: 1003,
                limit: 1000
            })
        ),
        "{result:?}"
    );
}
