//! A message whose handling outlives its lock keeps the lock (renewed) and is handled once.

use std::time::Duration;

use queue::QueueOptions;

use crate::crm::Crm;
use crate::support::{Kind, Running, TestQueue, config, eventually, init_tracing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_the_lock_keeps_the_lock_and_runs_once() {
    init_tracing();
    let options = QueueOptions {
        lock_duration: Duration::from_secs(2),
        max_delivery_count: 10,
    };
    let queue = TestQueue::new(Kind::Sqlite, options).await;
    let crm = Crm::start();
    crm.set_delay(Duration::from_secs(5));
    queue.send_critical("long", 1).await;
    let mut config = config(&queue, &crm);
    config.webhook.timeout_secs = 10;
    let handler = Running::start(config);
    crm.wait_for_tickets(1, Duration::from_secs(20)).await;
    eventually(Duration::from_secs(5), "completed", || async {
        handler.metric("critical_handler_tickets_created_total").await == 1.0
    })
    .await;
    assert_eq!(crm.seen().len(), 1, "handled once: the lock never lapsed");
    assert!(handler.metric("critical_handler_lock_renewals_total").await >= 2.0);
    assert_eq!(handler.metric("critical_handler_locks_lost_total").await, 0.0);
    assert_eq!(
        handler.metric("critical_handler_messages_received_total").await,
        1.0
    );
    handler.stop().await;
    assert_eq!(queue.queue.len().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_renewal_budget_the_message_is_given_back() {
    init_tracing();
    let options = QueueOptions {
        lock_duration: Duration::from_secs(1),
        max_delivery_count: 10,
    };
    let queue = TestQueue::new(Kind::Sqlite, options).await;
    let crm = Crm::start();
    crm.set_delay(Duration::from_secs(8));
    queue.send_critical("endless", 1).await;
    let mut config = config(&queue, &crm);
    config.webhook.timeout_secs = 30;
    config.max_lock_renewal_secs = 2;
    let handler = Running::start(config);
    eventually(
        Duration::from_secs(10),
        "abandoned when the budget is spent",
        || async {
            handler
                .metrics()
                .await
                .contains("critical_handler_abandoned_total{reason=\"lock_renewal_budget_spent\"}")
        },
    )
    .await;
    handler.stop().await;
}
