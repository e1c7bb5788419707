//! The conformance suite on the embedded SQLite backend, plus what only it promises: several
//! processes' handles on one file, dead-lettered message properties.

use std::time::Duration;

use queue::{QueueClient, QueueOptions};

use crate::conformance::conformance_tests;
use crate::support::{Caps, Fixture, Harness, unique_name};

pub(crate) struct Sqlite;

impl Harness for Sqlite {
    fn caps(&self) -> Caps {
        Caps {
            lock_expiry: true,
            delivery_count: true,
            dead_letter_reason: true,
            counts: true,
            refuses_unknown_queues: true,
        }
    }

    async fn fixture(&self, options: QueueOptions) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let connection = format!(
            "sqlite://{}?poll_interval=20ms",
            dir.path().join("queues.db").display()
        );
        let client = QueueClient::connect(&connection).await.unwrap();
        let name = unique_name("critical");
        client.create_queue(&name, &options).await.unwrap();
        let queue = client.queue(&name).await.unwrap();
        let dead_letters = client.queue(&queue::dead_letter_queue_name(&name)).await.unwrap();
        Fixture {
            client,
            connection,
            queue,
            dead_letters,
            name,
            _guard: Box::new(dir),
        }
    }
}

conformance_tests!(Sqlite);

#[tokio::test]
async fn two_clients_on_one_file_share_the_queue() {
    let f = Sqlite.fixture(QueueOptions::default()).await;
    let other = QueueClient::connect(&f.connection).await.unwrap();
    let q = other.queue(&f.name).await.unwrap();
    q.send(queue::Message::new(b"hello".to_vec()).with_message_id("x"))
        .await
        .unwrap();
    let got = f.queue.receive(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got[0].message.body, b"hello");
    assert_eq!(f.queue.len().await.unwrap(), 1, "a locked message still counts");
    let peeked = q.peek(10).await.unwrap();
    assert_eq!(peeked.len(), 1);
    assert!(
        peeked[0].locked_until.is_some(),
        "peek shows the lock without taking it"
    );
    f.queue.complete(&got[0].lock_token).await.unwrap();
    assert_eq!(q.len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_token_from_another_queue_handle_is_refused() {
    let f = Sqlite.fixture(QueueOptions::default()).await;
    f.queue.send(queue::Message::new(b"a".to_vec())).await.unwrap();
    let got = f.queue.receive(1, Duration::from_secs(10)).await.unwrap();
    let result = f.dead_letters.complete(&got[0].lock_token).await;
    assert!(
        matches!(result, Err(queue::Error::ForeignLockToken { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn sending_to_a_dead_letter_queue_is_refused() {
    let f = Sqlite.fixture(QueueOptions::default()).await;
    let result = f.dead_letters.send(queue::Message::new(b"a".to_vec())).await;
    assert!(matches!(result, Err(queue::Error::Rejected { .. })), "{result:?}");
}
