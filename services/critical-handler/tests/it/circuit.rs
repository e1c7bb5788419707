//! The CRM down for a while: the circuit opens, receiving pauses, delivery counts stop climbing and
//! nothing is dead-lettered; when it comes back every message becomes one ticket.

use std::time::Duration;

use queue::QueueOptions;

use crate::crm::{Answer, Crm};
use crate::support::{Kind, Running, TestQueue, config, eventually, init_tracing};

/// The highest delivery count among the queue's messages (locked ones included).
async fn max_delivery_count(queue: &TestQueue) -> u32 {
    let peeked = queue.queue.peek(1000).await.unwrap();
    peeked.iter().map(|p| p.delivery_count).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_opens_the_circuit_and_spends_no_deliveries() {
    init_tracing();
    let options = QueueOptions {
        lock_duration: Duration::from_secs(30),
        max_delivery_count: 3,
    };
    let queue = TestQueue::new(Kind::Sqlite, options).await;
    let crm = Crm::start();
    crm.outage(Answer::Status(503, vec![]));
    let ids = queue.send_critical("outage", 30).await;
    let mut config = config(&queue, &crm);
    config.concurrency = 4;
    config.prefetch = Some(4);
    config.retry.attempts = 3;
    config.retry.base_delay_ms = 200;
    config.circuit.failure_threshold = 3;
    config.circuit.open_secs = 1;
    config.circuit.max_open_secs = 2;
    let handler = Running::start(config);

    eventually(Duration::from_secs(10), "the circuit opens", || async {
        handler.metric("critical_handler_circuit_state").await == 2.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests_then = crm.seen().len();
    let count_then = max_delivery_count(&queue).await;
    let received_then = handler.metric("critical_handler_messages_received_total").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let probes = crm.seen().len() - requests_then;
    assert!(probes <= 5, "only probes while open: {probes} calls in 5 s");
    assert_eq!(
        max_delivery_count(&queue).await,
        count_then,
        "delivery counts stopped climbing"
    );
    assert!(count_then <= 2, "{count_then}");
    let received = handler.metric("critical_handler_messages_received_total").await;
    assert_eq!(
        received, received_then,
        "receiving paused while the circuit was open"
    );
    assert!(
        received <= 8.0,
        "no more than concurrency + prefetch held: {received}"
    );
    assert_eq!(queue.queue.dead_letter_len().await.unwrap(), 0);

    crm.recover();
    crm.wait_for_tickets(ids.len(), Duration::from_secs(60)).await;
    eventually(Duration::from_secs(10), "the circuit closes", || async {
        handler.metric("critical_handler_circuit_state").await == 0.0
    })
    .await;
    eventually(Duration::from_secs(10), "every message completed", || async {
        queue.queue.len().await.unwrap() == 0
    })
    .await;
    handler.stop().await;
    assert_eq!(crm.tickets().len(), ids.len());
    assert_eq!(
        queue.queue.dead_letter_len().await.unwrap(),
        0,
        "nothing was dead-lettered"
    );
}
