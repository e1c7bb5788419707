//! N critical messages → exactly N tickets, each signed, keyed by its message id, carrying the
//! message's fields in the preset's shape.

use std::collections::BTreeSet;
use std::time::Duration;

use critical_handler::template::Preset;
use queue::QueueOptions;
use secrecy::SecretString;

use crate::crm::Crm;
use crate::support::{Kind, Running, TestQueue, config, init_tracing};

async fn n_messages_become_n_signed_tickets(kind: Kind) {
    init_tracing();
    let queue = TestQueue::new(kind, QueueOptions::default()).await;
    let crm = Crm::start();
    let ids = queue.send_critical("alarm", 200).await;
    let handler = Running::start(config(&queue, &crm));
    crm.wait_for_tickets(ids.len(), Duration::from_secs(60)).await;

    let tickets = crm.tickets();
    assert_eq!(
        tickets.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect()
    );
    let seen = crm.seen();
    for request in &seen {
        assert!(
            request.signature_ok,
            "every request is signed correctly: {:?}",
            request.headers
        );
        let key = request.key.as_deref().unwrap();
        assert_eq!(
            request.headers["webhook-id"], key,
            "webhook-id is the idempotency key"
        );
        assert_eq!(request.headers["content-type"], "application/json");
        let traceparent = &request.headers["traceparent"];
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
                && !traceparent.contains("00f067aa0ba902b7"),
            "the request continues the message's trace with a span of its own: {traceparent}"
        );
    }
    let created = seen.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, ids.len(), "one creation per message");

    // The generic preset: a Standard Webhooks payload around the ticket.
    let ticket = &tickets["alarm-7"];
    let data = &ticket["data"];
    assert_eq!(data["device_id"], "turbine-7");
    assert_eq!(data["message_id"], "alarm-7");
    assert_eq!(data["correlation_id"], "correlation-alarm-7");
    assert_eq!(data["severity"], "critical");
    assert_eq!(data["level"], "critical");
    assert_eq!(data["body"]["windSpeed"], 7);
    assert_eq!(data["properties"]["level"], "critical");
    assert!(
        ticket["type"].is_string() && ticket["timestamp"].is_string(),
        "{ticket}"
    );

    crate::support::eventually(Duration::from_secs(10), "every message completed", || async {
        handler.metric("critical_handler_tickets_created_total").await == ids.len() as f64
    })
    .await;
    handler.stop().await;
    let left = queue.queue.receive(10, Duration::from_millis(500)).await.unwrap();
    assert!(left.is_empty(), "every message was completed: {left:?}");
    assert!(queue.dead_lettered(Duration::from_millis(300)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_messages_become_n_signed_tickets_sqlite() {
    n_messages_become_n_signed_tickets(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_messages_become_n_signed_tickets_rabbitmq() {
    n_messages_become_n_signed_tickets(Kind::RabbitMq).await;
}

/// One message through a preset; the CRM's copy of the request body.
async fn through(preset: Preset, vars: &[(&str, &str)]) -> serde_json::Value {
    let queue = TestQueue::new(Kind::Sqlite, QueueOptions::default()).await;
    let crm = Crm::start();
    queue.send_critical("preset", 1).await;
    let mut config = config(&queue, &crm);
    config.webhook.preset = preset;
    config.webhook.vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretString::from(*v)))
        .collect();
    let handler = Running::start(config);
    crm.wait_for_tickets(1, Duration::from_secs(20)).await;
    handler.stop().await;
    let seen = crm.seen();
    assert!(seen[0].signature_ok);
    seen[0].body.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_preset_carries_the_expected_fields() {
    init_tracing();
    let zendesk = through(Preset::Zendesk, &[]).await;
    let ticket = &zendesk["ticket"];
    assert!(
        ticket["subject"].as_str().unwrap().contains("turbine-7"),
        "{zendesk}"
    );
    assert_eq!(ticket["priority"], "urgent");
    assert_eq!(ticket["external_id"], "preset-0");
    assert!(
        ticket["comment"]["body"].as_str().unwrap().contains("preset-0"),
        "{zendesk}"
    );

    let servicenow = through(Preset::ServiceNow, &[]).await;
    assert!(
        servicenow["short_description"]
            .as_str()
            .unwrap()
            .contains("turbine-7")
    );
    assert_eq!(servicenow["correlation_id"], "preset-0");
    assert_eq!(servicenow["urgency"], "1");

    let pagerduty = through(
        Preset::PagerDuty,
        &[("routing_key", "R0UT1NGKEY0123456789abcdefABCDEF")],
    )
    .await;
    assert_eq!(pagerduty["routing_key"], "R0UT1NGKEY0123456789abcdefABCDEF");
    assert_eq!(pagerduty["event_action"], "trigger");
    assert_eq!(
        pagerduty["dedup_key"], "preset-0",
        "PagerDuty dedups by the message id"
    );
    assert_eq!(pagerduty["payload"]["severity"], "critical");
    assert_eq!(pagerduty["payload"]["source"], "turbine-7");

    let jira = through(Preset::Jira, &[("project_key", "OPS")]).await;
    assert_eq!(jira["fields"]["project"]["key"], "OPS");
    assert!(jira["fields"]["summary"].as_str().unwrap().contains("turbine-7"));
    assert_eq!(jira["fields"]["description"]["type"], "doc");
}

/// `tracestate` comes from the device as it sent it: a value that cannot be an HTTP header is left
/// out of the request instead of failing the call (which would retry it into the dead-letter queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_state_that_cannot_be_a_header_is_left_out() {
    init_tracing();
    let queue = TestQueue::new(Kind::Sqlite, QueueOptions::default()).await;
    let crm = Crm::start();
    let good = crate::support::critical_message("good-state", "turbine-7", "{}")
        .with_property("tracestate", "vendor=1");
    let bad = crate::support::critical_message("bad-state", "turbine-7", "{}")
        .with_property("tracestate", "vendor=1\r\nx-injected: yes");
    queue.queue.send_batch(vec![good, bad]).await.unwrap();
    let handler = Running::start(config(&queue, &crm));
    crm.wait_for_tickets(2, Duration::from_secs(20)).await;
    handler.stop().await;
    let seen = crm.seen();
    let state = |key: &str| {
        let request = seen.iter().find(|s| s.key.as_deref() == Some(key)).unwrap();
        assert!(request.signature_ok);
        assert!(!request.headers.contains_key("x-injected"));
        request.headers.get("tracestate").cloned()
    };
    assert_eq!(state("good-state").as_deref(), Some("vendor=1"));
    assert_eq!(state("bad-state"), None);
    assert_eq!(queue.queue.len().await.unwrap(), 0, "both completed");
}
