//! Opt-in: the conformance cases a real namespace can run, when `SERVICEBUS_CONNECTION_STRING` names
//! one (with `EntityPath=<queue>`; the queue must exist, should be empty and have MaxDeliveryCount 3+).
//! Without the variable these tests return at once.

use std::time::Duration;

use queue::{Message, QueueClient};

use crate::support::{receive_n, unique_name};

const ENV: &str = "SERVICEBUS_CONNECTION_STRING";

async fn client() -> Option<(QueueClient, String)> {
    let connection = std::env::var(ENV).ok().filter(|s| !s.is_empty())?;
    let client = QueueClient::connect(&connection).await.unwrap();
    let entity = client
        .entity_path()
        .expect("EntityPath in SERVICEBUS_CONNECTION_STRING")
        .to_owned();
    Some((client, entity))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_send_receive_abandon_renew_dead_letter_complete() {
    let Some((client, entity)) = client().await else {
        return;
    };
    let q = client.queue(&entity).await.unwrap();
    let id = unique_name("live");
    q.send(
        Message::new(b"{\"windSpeed\":1}".to_vec())
            .with_message_id(&id)
            .with_property("level", "critical"),
    )
    .await
    .unwrap();
    let wait = Duration::from_secs(30);
    let find = |batch: Vec<queue::ReceivedMessage>| {
        batch
            .into_iter()
            .find(|m| m.message.message_id.as_deref() == Some(&id))
    };
    let m = find(receive_n(&*q, 100, wait).await).expect("sent message arrives");
    assert!(m.lock_token.lock_uuid().is_some() && m.locked_until.is_some() && m.sequence_number.is_some());
    q.abandon(&m.lock_token).await.unwrap();
    let m = find(receive_n(&*q, 100, wait).await).expect("abandoned message comes back");
    assert_eq!(m.delivery_count, 2);
    let renewed = q.renew_lock(&m.lock_token).await.unwrap();
    assert!(renewed >= m.locked_until.unwrap());
    q.dead_letter(&m.lock_token, "LiveTest", "opt-in test")
        .await
        .unwrap();
    let dlq = client
        .queue(&queue::dead_letter_queue_name(&entity))
        .await
        .unwrap();
    let dead = find(receive_n(&*dlq, 100, wait).await).expect("dead-lettered message");
    assert_eq!(dead.message.dead_letter_reason(), Some("LiveTest"));
    dlq.complete(&dead.lock_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_unknown_queue_is_not_found() {
    let Some((client, _)) = client().await else { return };
    let result = client.queue(&unique_name("missing")).await;
    assert!(
        matches!(result, Err(queue::Error::QueueNotFound { .. })),
        "{result:?}"
    );
}
