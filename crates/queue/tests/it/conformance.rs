//! The conformance suite: the same cases against every backend. A backend module instantiates it
//! with `conformance_tests!(harness)`; cases skip checks on what the backend does not keep (`Caps`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use queue::{Error, MAX_DELIVERY_COUNT_EXCEEDED, Message, QueueOptions};

use crate::support::{Harness, drain_ids, id_set, receive_n};

/// Long enough for anything that should arrive; receive returns as soon as it does.
pub(crate) const ARRIVES: Duration = Duration::from_secs(15);
/// How long to wait for something that should not arrive.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

fn options() -> QueueOptions {
    QueueOptions {
        lock_duration: Duration::from_secs(30),
        max_delivery_count: 10,
    }
}

fn telemetry(n: usize) -> Message {
    Message::new(format!("{{\"deviceId\":\"d-{n}\",\"windSpeed\":{n}}}").into_bytes())
        .with_message_id(format!("m-{n}"))
        .with_correlation_id(format!("c-{n}"))
        .with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_property("level", "critical")
        .with_property("n", n.to_string())
}

pub(crate) async fn send_receive_complete(h: &impl Harness) {
    let f = h.fixture(options()).await;
    for n in 0..3 {
        f.queue.send(telemetry(n)).await.unwrap();
    }
    let got = receive_n(&*f.queue, 3, ARRIVES).await;
    assert_eq!(got.len(), 3);
    for (n, m) in got.iter().enumerate() {
        assert_eq!(m.message, telemetry(n), "FIFO and content of message {n}");
        assert_eq!(m.delivery_count, 1);
        assert!(!m.redelivered);
        if h.caps().lock_expiry {
            assert!(m.locked_until.is_some());
            assert!(m.enqueued_time.is_some());
        }
    }
    for m in &got {
        f.queue.complete(&m.lock_token).await.unwrap();
    }
    assert!(
        f.queue.receive(10, QUIET).await.unwrap().is_empty(),
        "completed messages stay gone"
    );
    if h.caps().counts {
        assert_eq!(f.queue.len().await.unwrap(), 0);
    }
}

pub(crate) async fn complete_many_settles_each(h: &impl Harness) {
    let f = h.fixture(options()).await;
    f.queue.send_batch((0..5).map(telemetry).collect()).await.unwrap();
    let got = receive_n(&*f.queue, 5, ARRIVES).await;
    assert_eq!(got.len(), 5);
    assert!(f.queue.complete_many(&[]).await.is_empty());
    // The last one is given back first: the others are completed in one call.
    f.queue.abandon(&got[4].lock_token).await.unwrap();
    let tokens: Vec<_> = got[..4].iter().map(|m| m.lock_token.clone()).collect();
    let results = f.queue.complete_many(&tokens).await;
    assert_eq!(results.len(), 4);
    for result in results {
        result.unwrap();
    }
    let left = receive_n(&*f.queue, 5, QUIET).await;
    assert_eq!(left.len(), 1, "only the abandoned message comes back");
    assert_eq!(left[0].message, telemetry(4));
    f.queue.complete(&left[0].lock_token).await.unwrap();
    if h.caps().counts {
        assert_eq!(f.queue.len().await.unwrap(), 0);
    }
}

pub(crate) async fn abandon_redelivers(h: &impl Harness) {
    let f = h.fixture(options()).await;
    f.queue.send(telemetry(1)).await.unwrap();
    let first = receive_n(&*f.queue, 1, ARRIVES).await.pop().unwrap();
    f.queue.abandon(&first.lock_token).await.unwrap();
    let again = receive_n(&*f.queue, 1, ARRIVES)
        .await
        .pop()
        .expect("abandoned message comes back");
    assert_eq!(again.message, telemetry(1));
    assert!(again.redelivered);
    if h.caps().delivery_count {
        assert_eq!(again.delivery_count, 2);
    }
    f.queue.complete(&again.lock_token).await.unwrap();
}

pub(crate) async fn lock_expiry_redelivers(h: &impl Harness) {
    if !h.caps().lock_expiry {
        return;
    }
    let f = h
        .fixture(QueueOptions {
            lock_duration: Duration::from_millis(500),
            ..options()
        })
        .await;
    f.queue.send(telemetry(1)).await.unwrap();
    let first = receive_n(&*f.queue, 1, ARRIVES).await.pop().unwrap();
    let again = receive_n(&*f.queue, 1, ARRIVES)
        .await
        .pop()
        .expect("message comes back when its lock expires");
    assert_eq!(again.message.message_id, first.message.message_id);
    assert!(again.redelivered);
    let stale = f.queue.complete(&first.lock_token).await;
    assert!(
        matches!(stale, Err(Error::LockLost)),
        "the expired lock cannot complete: {stale:?}"
    );
    f.queue.complete(&again.lock_token).await.unwrap();
}

pub(crate) async fn max_deliveries_dead_letter(h: &impl Harness) {
    let f = h
        .fixture(QueueOptions {
            max_delivery_count: 3,
            ..options()
        })
        .await;
    f.queue.send(telemetry(7)).await.unwrap();
    let mut deliveries = 0;
    while let Some(m) = f.queue.receive(1, Duration::from_secs(3)).await.unwrap().pop() {
        deliveries += 1;
        assert!(deliveries <= 3, "delivered more than the maximum");
        f.queue.abandon(&m.lock_token).await.unwrap();
    }
    assert_eq!(deliveries, 3);
    let dead = receive_n(&*f.dead_letters, 1, ARRIVES)
        .await
        .pop()
        .expect("dead-lettered after 3 deliveries");
    assert_eq!(dead.message.message_id.as_deref(), Some("m-7"));
    assert_eq!(dead.message.body, telemetry(7).body);
    if h.caps().dead_letter_reason {
        assert_eq!(
            dead.message.dead_letter_reason(),
            Some(MAX_DELIVERY_COUNT_EXCEEDED)
        );
    }
    f.dead_letters.complete(&dead.lock_token).await.unwrap();
}

pub(crate) async fn dead_letter_with_reason(h: &impl Harness) {
    let f = h.fixture(options()).await;
    f.queue.send(telemetry(2)).await.unwrap();
    let m = receive_n(&*f.queue, 1, ARRIVES).await.pop().unwrap();
    f.queue
        .dead_letter(&m.lock_token, "BadTelemetry", "windSpeed is not a number")
        .await
        .unwrap();
    if h.caps().counts {
        assert_eq!(f.queue.dead_letter_len().await.unwrap(), 1);
        assert_eq!(f.queue.len().await.unwrap(), 0);
    }
    let dead = receive_n(&*f.dead_letters, 1, ARRIVES)
        .await
        .pop()
        .expect("message is in the dead-letter queue");
    assert_eq!(dead.message.message_id.as_deref(), Some("m-2"));
    if h.caps().dead_letter_reason {
        assert_eq!(dead.message.dead_letter_reason(), Some("BadTelemetry"));
        assert_eq!(
            dead.message.dead_letter_description(),
            Some("windSpeed is not a number")
        );
    }
    f.dead_letters.complete(&dead.lock_token).await.unwrap();
    assert!(f.queue.receive(1, QUIET).await.unwrap().is_empty());
}

pub(crate) async fn renew_extends_lock(h: &impl Harness) {
    if !h.caps().lock_expiry {
        return;
    }
    let f = h
        .fixture(QueueOptions {
            lock_duration: Duration::from_secs(5),
            ..options()
        })
        .await;
    f.queue.send(telemetry(3)).await.unwrap();
    let m = receive_n(&*f.queue, 1, ARRIVES).await.pop().unwrap();
    let before = m.locked_until.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = f.queue.renew_lock(&m.lock_token).await.unwrap();
    assert!(after > before, "renewal moves locked-until forward");
    f.queue.complete(&m.lock_token).await.unwrap();
}

pub(crate) async fn batch_send(h: &impl Harness) {
    let f = h.fixture(options()).await;
    f.queue
        .send_batch((0..100).map(telemetry).collect())
        .await
        .unwrap();
    let got = receive_n(&*f.queue, 100, ARRIVES).await;
    let ids: Vec<_> = got
        .iter()
        .map(|m| m.message.message_id.clone().unwrap())
        .collect();
    let expected: Vec<_> = (0..100).map(|n| format!("m-{n}")).collect();
    assert_eq!(ids, expected, "a batch arrives whole and in order");
    for m in &got {
        f.queue.complete(&m.lock_token).await.unwrap();
    }
}

pub(crate) async fn concurrent_receivers_get_each_message_once(h: &impl Harness) {
    const MESSAGES: usize = 300;
    const RECEIVERS: usize = 6;
    let f = h.fixture(options()).await;
    f.queue
        .send_batch((0..MESSAGES).map(telemetry).collect())
        .await
        .unwrap();
    // Receivers stop once every message is completed (or after a generous bound), not after an idle
    // spell: a broker may hold a message for a busy receiver's link meanwhile.
    let completed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let give_up = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for _ in 0..RECEIVERS {
        let queue = f.client.queue(&f.name).await.unwrap();
        let completed = Arc::clone(&completed);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while completed.load(std::sync::atomic::Ordering::SeqCst) < MESSAGES
                && tokio::time::Instant::now() < give_up
            {
                for m in queue.receive(8, Duration::from_millis(500)).await.unwrap() {
                    ids.push(m.message.message_id.clone().unwrap());
                    queue.complete(&m.lock_token).await.unwrap();
                    completed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for id in &all {
        *counts.entry(id.clone()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered and completed twice: {twice:?}");
    assert_eq!(counts.len(), MESSAGES, "every message delivered");
}

pub(crate) async fn killed_receiver_messages_come_back(h: &impl Harness) {
    let f = h
        .fixture(QueueOptions {
            lock_duration: Duration::from_millis(500),
            ..options()
        })
        .await;
    f.queue.send_batch((0..5).map(telemetry).collect()).await.unwrap();
    {
        // A second client takes the messages and dies without settling them.
        let doomed = queue::QueueClient::connect(&f.connection).await.unwrap();
        let q = doomed.queue(&f.name).await.unwrap();
        let held = receive_n(&*q, 5, ARRIVES).await;
        assert_eq!(held.len(), 5);
        doomed.close().await;
        drop(q);
    }
    let back = drain_ids(&*f.queue, Duration::from_secs(5)).await;
    let expected: Vec<_> = (0..5).map(|n| format!("m-{n}")).collect();
    assert_eq!(
        id_set(&back),
        id_set(&expected),
        "locked messages of a dead receiver come back"
    );
}

pub(crate) async fn unknown_queue_is_a_clear_error(h: &impl Harness) {
    if !h.caps().refuses_unknown_queues {
        return;
    }
    let f = h.fixture(options()).await;
    let missing = crate::support::unique_name("missing");
    match f.client.queue(&missing).await {
        Err(Error::QueueNotFound { queue }) => assert_eq!(queue, missing),
        other => panic!("expected QueueNotFound, got {other:?}"),
    }
}

pub(crate) async fn oversized_message_is_refused(h: &impl Harness) {
    let f = h.fixture(options()).await;
    let big = Message::new(vec![b'x'; 300 * 1024]);
    let batch = vec![telemetry(1), big];
    match f.queue.send_batch(batch).await {
        Err(Error::MessageTooLarge { size, limit }) => {
            assert_eq!(size, 300 * 1024);
            assert_eq!(limit, queue::DEFAULT_MAX_MESSAGE_SIZE);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert!(
        f.queue.receive(1, QUIET).await.unwrap().is_empty(),
        "nothing of the refused batch was sent"
    );
}

/// Instantiates every case as a test for one backend's harness.
macro_rules! conformance_tests {
    ($harness:expr) => {
        conformance_tests!(@cases $harness;
            send_receive_complete, complete_many_settles_each, abandon_redelivers, lock_expiry_redelivers, max_deliveries_dead_letter,
            dead_letter_with_reason, renew_extends_lock, batch_send,
            concurrent_receivers_get_each_message_once, killed_receiver_messages_come_back,
            unknown_queue_is_a_clear_error, oversized_message_is_refused);
    };
    (@cases $harness:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::support::init_tracing();
                crate::conformance::$case(&$harness).await;
            }
        )*
    };
}
pub(crate) use conformance_tests;
