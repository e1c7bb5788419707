//! The CRM's answers and what becomes of the message: retried and completed, retried no sooner than
//! `Retry-After`, timed out and retried, dead-lettered with a reason.

use std::time::Duration;

use queue::QueueOptions;

use crate::crm::{Answer, Crm};
use crate::support::{Kind, Running, TestQueue, config, critical_message, eventually, init_tracing};

async fn unavailable_then_ok_completes_after_retries(kind: Kind) {
    init_tracing();
    let queue = TestQueue::new(kind, QueueOptions::default()).await;
    let crm = Crm::start();
    crm.script([Answer::Status(503, vec![]), Answer::Status(503, vec![])]);
    queue.send_critical("flaky", 1).await;
    let handler = Running::start(config(&queue, &crm));
    crm.wait_for_tickets(1, Duration::from_secs(20)).await;
    let statuses: Vec<u16> = crm.seen().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 201]);
    assert_eq!(
        crm.tickets()["flaky-0"]["data"]["delivery_count"],
        1,
        "retried while holding the lock"
    );
    eventually(Duration::from_secs(5), "completed", || async {
        handler.metric("critical_handler_tickets_created_total").await == 1.0
    })
    .await;
    assert_eq!(handler.metric("critical_handler_retries_total").await, 2.0);
    handler.stop().await;
    assert!(
        queue
            .queue
            .receive(1, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(queue.dead_lettered(Duration::from_millis(300)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_then_ok_completes_after_retries_sqlite() {
    unavailable_then_ok_completes_after_retries(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_then_ok_completes_after_retries_rabbitmq() {
    unavailable_then_ok_completes_after_retries(Kind::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_is_retried_no_sooner_than_retry_after() {
    init_tracing();
    let queue = TestQueue::new(Kind::Sqlite, QueueOptions::default()).await;
    let crm = Crm::start();
    crm.script([Answer::Status(429, vec![("retry-after", "2".to_owned())])]);
    queue.send_critical("throttled", 1).await;
    let handler = Running::start(config(&queue, &crm));
    crm.wait_for_tickets(1, Duration::from_secs(20)).await;
    let seen = crm.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_secs(2),
        "retried after {waited:?}, Retry-After said 2 s"
    );
    handler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_hangs_past_the_timeout_is_retried() {
    init_tracing();
    let queue = TestQueue::new(Kind::Sqlite, QueueOptions::default()).await;
    let crm = Crm::start();
    crm.script([Answer::Hang(Duration::from_secs(4))]);
    queue.send_critical("slow", 1).await;
    let mut config = config(&queue, &crm);
    config.webhook.timeout_secs = 1;
    let handler = Running::start(config);
    crm.wait_for_tickets(1, Duration::from_secs(20)).await;
    eventually(Duration::from_secs(5), "a timed-out call counted", || async {
        handler.metrics().await.lines().any(|l| {
            l.starts_with("critical_handler_webhook_request_duration_seconds_count{result=\"timeout\"} 1")
        })
    })
    .await;
    assert_eq!(handler.metric("critical_handler_retries_total").await, 1.0);
    handler.stop().await;
    assert_eq!(crm.tickets().len(), 1);
    assert!(
        queue
            .queue
            .receive(1, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_bad_request_is_dead_lettered_at_once(kind: Kind) {
    init_tracing();
    let queue = TestQueue::new(kind, QueueOptions::default()).await;
    let crm = Crm::start();
    crm.script([Answer::Status(400, vec![])]);
    queue.send_critical("refused", 1).await;
    let handler = Running::start(config(&queue, &crm));
    let started = std::time::Instant::now();
    let dead = loop {
        let dead = queue.dead_lettered(Duration::from_millis(500)).await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dead-lettered in time"
        );
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.message_id.as_deref(), Some("refused-0"));
    if kind == Kind::Sqlite {
        // RabbitMQ drops the reason on its dead-letter exchange.
        assert_eq!(dead[0].message.dead_letter_reason(), Some("WebhookRejected"));
        let description = dead[0].message.dead_letter_description().unwrap();
        assert!(description.contains("400"), "{description}");
    }
    assert_eq!(crm.seen().len(), 1, "no retry of a request the CRM refused");
    assert!(
        handler
            .metrics()
            .await
            .contains("critical_handler_dead_lettered_total{reason=\"WebhookRejected\"} 1")
    );
    handler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_is_dead_lettered_at_once_sqlite() {
    a_bad_request_is_dead_lettered_at_once(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_is_dead_lettered_at_once_rabbitmq() {
    a_bad_request_is_dead_lettered_at_once(Kind::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_oversized_messages_are_dead_lettered_without_a_call() {
    init_tracing();
    let queue = TestQueue::new(Kind::Sqlite, QueueOptions::default()).await;
    let crm = Crm::start();
    queue
        .queue
        .send(critical_message("garbled", "turbine-7", "{\"windSpeed\": 3"))
        .await
        .unwrap();
    let mut invalid_utf8 = critical_message("binary", "turbine-7", "");
    invalid_utf8.body = vec![0xff, 0xfe, b'{', 0xc3];
    queue.queue.send(invalid_utf8).await.unwrap();
    let huge = format!("{{\"blob\":\"{}\"}}", "x".repeat(4000));
    queue
        .queue
        .send(critical_message("huge", "turbine-7", &huge))
        .await
        .unwrap();
    let mut config = config(&queue, &crm);
    config.ticket.max_body_bytes = 512;
    config.ticket.max_message_bytes = 2048;
    let handler = Running::start(config);
    let mut dead = Vec::new();
    let started = std::time::Instant::now();
    while dead.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dead-lettered in time: {dead:?}"
        );
        dead.extend(queue.dead_lettered(Duration::from_millis(500)).await);
    }
    let reason = |id: &str| {
        dead.iter()
            .find(|d| d.message.message_id.as_deref() == Some(id))
            .and_then(|d| d.message.dead_letter_reason().map(str::to_owned))
    };
    assert_eq!(reason("garbled").as_deref(), Some("UndecodableMessage"));
    assert_eq!(reason("binary").as_deref(), Some("UndecodableMessage"));
    assert_eq!(reason("huge").as_deref(), Some("MessageTooLarge"));
    assert!(crm.seen().is_empty(), "nothing was sent for them");
    handler.stop().await;
}
