//! The conformance suite on RabbitMQ's AMQP 1.0 plugin (127.0.0.1:5672, guest/guest), with queues
//! declared per test by `scripts/services/rabbitmq declare` and deleted afterwards; plus what only a
//! real broker shows: sends to a missing queue, and a connection the broker drops.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use queue::{Error, Message, QueueClient, QueueOptions};

use crate::conformance::{ARRIVES, conformance_tests};
use crate::support::{Caps, CutProxy, Fixture, Harness, receive_n, unique_name};

pub(crate) const CONNECTION: &str = "amqp://guest:guest@127.0.0.1:5672";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/rabbitmq")
}

/// Deletes the broker queue (and its .dlq) when the test ends.
pub(crate) struct BrokerQueue(pub(crate) String);

impl BrokerQueue {
    pub(crate) fn declare(name: &str, max_deliveries: u32) -> Self {
        let status = Command::new(script())
            .args(["declare", name, &max_deliveries.to_string()])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "declaring {name} failed; is RabbitMQ up (scripts/services/rabbitmq)?"
        );
        Self(name.to_owned())
    }
}

impl Drop for BrokerQueue {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["delete", &self.0]).status();
    }
}

pub(crate) struct RabbitMq;

impl Harness for RabbitMq {
    fn caps(&self) -> Caps {
        Caps {
            lock_expiry: false,
            delivery_count: false,
            dead_letter_reason: false,
            counts: false,
            refuses_unknown_queues: true,
        }
    }

    async fn fixture(&self, options: QueueOptions) -> Fixture {
        let name = unique_name("it");
        let guard = BrokerQueue::declare(&name, options.max_delivery_count);
        let client = QueueClient::connect(CONNECTION).await.unwrap();
        let queue = client.queue(&name).await.unwrap();
        let dead_letters = client.queue(&queue::dead_letter_queue_name(&name)).await.unwrap();
        Fixture {
            client,
            connection: CONNECTION.to_owned(),
            queue,
            dead_letters,
            name,
            _guard: Box::new(guard),
        }
    }
}

conformance_tests!(RabbitMq);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_operations_say_so() {
    let f = RabbitMq.fixture(QueueOptions::default()).await;
    assert!(matches!(
        f.queue.len().await,
        Err(Error::Unsupported { operation: "len", .. })
    ));
    assert!(matches!(
        f.queue.peek(1).await,
        Err(Error::Unsupported {
            operation: "peek",
            ..
        })
    ));
    let created = f.client.create_queue("x", &QueueOptions::default()).await;
    assert!(matches!(created, Err(Error::Unsupported { .. })), "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_is_unauthorized() {
    let result = QueueClient::connect("amqp://guest:wrong@127.0.0.1:5672").await;
    assert!(matches!(result, Err(Error::Unauthorized { .. })), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_connection_drops() {
    let name = unique_name("it");
    let _guard = BrokerQueue::declare(&name, 10);
    let proxy = CutProxy::start("127.0.0.1:5672").await;
    let client = QueueClient::connect(&format!("amqp://guest:guest@127.0.0.1:{}", proxy.port))
        .await
        .unwrap();
    let queue = client.queue(&name).await.unwrap();
    queue
        .send(Message::new(b"before".to_vec()).with_message_id("before"))
        .await
        .unwrap();
    let first = receive_n(&*queue, 1, ARRIVES).await.pop().unwrap();

    proxy.cut_all();

    // ... the message comes back, and sending and receiving work again on a new connection.
    let mut sent = false;
    for _ in 0..50 {
        if queue
            .send(Message::new(b"after".to_vec()).with_message_id("after"))
            .await
            .is_ok()
        {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "send recovers after reconnecting");
    let mut ids = Vec::new();
    for _ in 0..50 {
        match queue.receive(2, Duration::from_secs(2)).await {
            Ok(batch) => {
                for m in batch {
                    ids.push(m.message.message_id.clone().unwrap());
                    queue.complete(&m.lock_token).await.unwrap();
                }
            }
            Err(error) => tracing::debug!(%error, "receive during recovery"),
        }
        if ids.len() >= 2 {
            break;
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["after", "before"]);
    // The first lock went with its connection.
    let stale = queue.complete(&first.lock_token).await;
    assert!(matches!(stale, Err(Error::LockLost)), "{stale:?}");
}
