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

#[tokio::test]
async fn complete_many_reports_each_token_on_its_own() {
    let f = Sqlite.fixture(QueueOptions::default()).await;
    for n in 0..3 {
        f.queue.send(queue::Message::new(vec![b'0' + n])).await.unwrap();
    }
    let got = f.queue.receive(3, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 3);
    f.queue.complete(&got[1].lock_token).await.unwrap();
    let foreign = {
        // A token this queue handle did not issue: one from another handle on the same queue.
        let other = f.client.queue(&f.name).await.unwrap();
        f.queue.abandon(&got[2].lock_token).await.unwrap();
        let again = other.receive(1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(again.len(), 1);
        again[0].lock_token.clone()
    };
    // The foreign token sits between ours: each result still belongs to its own token.
    let tokens = [got[1].lock_token.clone(), foreign, got[0].lock_token.clone()];
    let results = f.queue.complete_many(&tokens).await;
    assert_eq!(results.len(), 3);
    assert!(
        matches!(results[0], Err(queue::Error::LockLost)),
        "already completed: {:?}",
        results[0]
    );
    assert!(
        matches!(results[1], Err(queue::Error::ForeignLockToken { .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert_eq!(
        f.queue.len().await.unwrap(),
        1,
        "only the foreign token's message is left"
    );
}

#[tokio::test]
async fn expired_locks_count_as_deliveries_up_to_the_dead_letter_queue() {
    let f = Sqlite
        .fixture(QueueOptions {
            lock_duration: Duration::from_millis(200),
            max_delivery_count: 2,
        })
        .await;
    for n in 0..3 {
        f.queue
            .send(queue::Message::new(vec![b'0' + n]).with_message_id(format!("m-{n}")))
            .await
            .unwrap();
    }
    // Two deliveries of all three, never settled: their locks expire.
    for delivery in 1..=2 {
        let got = f.queue.receive(3, Duration::from_secs(10)).await.unwrap();
        let ids: Vec<_> = got
            .iter()
            .map(|m| m.message.message_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["m-0", "m-1", "m-2"], "FIFO on delivery {delivery}");
        assert!(got.iter().all(|m| m.delivery_count == delivery));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The next receive finds them spent and moves them on the way.
    assert!(
        f.queue
            .receive(3, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.queue.len().await.unwrap(), 0);
    let dead = f.dead_letters.peek(10).await.unwrap();
    assert_eq!(dead.len(), 3);
    for m in dead {
        assert_eq!(m.delivery_count, 2, "the deliveries it had");
        assert_eq!(
            m.message.dead_letter_reason(),
            Some(queue::MAX_DELIVERY_COUNT_EXCEEDED)
        );
    }
}

#[tokio::test]
async fn a_receive_skips_a_locked_message_between_available_ones() {
    let f = Sqlite.fixture(QueueOptions::default()).await;
    for n in 0..5 {
        f.queue
            .send(queue::Message::new(vec![b'0' + n]).with_message_id(format!("m-{n}")))
            .await
            .unwrap();
    }
    let first = f.queue.receive(3, Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.len(), 3);
    // m-0 and m-2 are given back; m-1 stays locked between them.
    f.queue.abandon(&first[0].lock_token).await.unwrap();
    f.queue.abandon(&first[2].lock_token).await.unwrap();
    let second = f.queue.receive(10, Duration::from_secs(10)).await.unwrap();
    let ids: Vec<_> = second
        .iter()
        .map(|m| m.message.message_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["m-0", "m-2", "m-3", "m-4"]);
    let counts: Vec<_> = second.iter().map(|m| m.delivery_count).collect();
    assert_eq!(counts, [2, 2, 1, 1]);
    // m-1's lock is untouched: its first token still completes it.
    f.queue.complete(&first[1].lock_token).await.unwrap();
    for m in &second {
        f.queue.complete(&m.lock_token).await.unwrap();
    }
    assert_eq!(f.queue.len().await.unwrap(), 0);
}
