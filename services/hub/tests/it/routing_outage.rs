//! Endpoint outages on real peers. While one endpoint is down, its health turns `unhealthy` with the
//! last error, its backlog grows, the other endpoints and `events` keep receiving, and devices keep
//! getting PUBACKs; when it returns, its backlog drains and nothing acknowledged is lost.
//!
//! RabbitMQ is made unreachable with a TCP proxy between the hub and the broker, cut by the test:
//! unreachable for this hub only, since stopping the shared broker would break every other test
//! using it. Azurite is the test's own instance, stopped and restarted on the same port and data.
//!
//! Backpressure: with `max_backlog` small and an endpoint down, a device routed there gets no more
//! PUBACKs once the backlog is full, while a device routed elsewhere is acknowledged as usual.

use std::collections::BTreeSet;

use rumqttc::{AsyncClient, Event, Incoming, QoS};
use serde_json::Value;

use crate::support::backends::{QueueEndpoint, RABBITMQ, StorageEndpoint, TcpProxy};
use crate::support::mqtt::{Link, MqttDevice, Outcome};
use crate::support::routing::{
    HealthProbe, Level, QUEUE_ENDPOINT, STORAGE_ENDPOINT, Sent, blob_records, tutorial_routing, write_routing,
};
use crate::support::{Device, TestHub, within};

const HUB: &str = "testhub";

/// A device sending tutorial messages one at a time, each acknowledged, remembering what it sent.
struct Sender {
    device: Device,
    mqtt: MqttDevice,
    sent: Vec<Sent>,
}

impl Sender {
    async fn connect(hub: &TestHub, id: &str) -> Sender {
        let device = hub.create_device(id).await;
        let mqtt = hub.connect(&device, Link::Tcp).await;
        Sender {
            device,
            mqtt,
            sent: Vec::new(),
        }
    }

    /// Publishes one message per level; each must be acknowledged. Returns them.
    async fn send(&mut self, levels: &[Level]) -> Vec<Sent> {
        let mut batch = Vec::new();
        for &level in levels {
            let message = Sent::new(&self.device.id, level, self.sent.len() as u64);
            let outcome = self
                .mqtt
                .publish(
                    &message.topic(&self.device.id),
                    QoS::AtLeastOnce,
                    message.body.clone(),
                )
                .await;
            assert_eq!(outcome, Outcome::Acked, "{} during an outage", message.id);
            self.sent.push(message.clone());
            batch.push(message);
        }
        batch
    }

    fn ids(&self, level: Level) -> BTreeSet<String> {
        self.sent
            .iter()
            .filter(|s| s.level == level)
            .map(|s| s.id.clone())
            .collect()
    }
}

fn last(batch: &[Sent], level: Level) -> String {
    batch.iter().rev().find(|s| s.level == level).unwrap().id.clone()
}

/// Waits until `endpoint` is `unhealthy` with a last error, and checks its backlog is `backlog`.
async fn down(health: &HealthProbe, endpoint: &str, backlog: u64) -> Value {
    let state = health
        .wait(endpoint, "unhealthy with an error", |h| {
            h["healthStatus"] == "unhealthy" && h["lastKnownError"].as_str().is_some_and(|e| !e.is_empty())
        })
        .await;
    assert_eq!(state["backlog"], backlog, "{state:#}");
    state
}

/// Waits until `endpoint` has delivered its backlog; it reads as recovered.
async fn back(health: &HealthProbe, endpoint: &str) {
    let state = health.drained(endpoint).await;
    let status = state["healthStatus"].as_str().unwrap_or("");
    assert!(
        ["healthy", "degraded"].contains(&status),
        "after recovery: {state:#}"
    );
}

/// Waits until the `/metrics` sample `name{labels}` reads `value`.
async fn metric(hub: &TestHub, sample: &str, value: f64) {
    within(&format!("{sample} {value} in /metrics"), async {
        while hub.metric(sample).await != value {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
}

async fn event_ids(hub: &TestHub, device: &str, marker: &str) -> BTreeSet<String> {
    hub.events_until_marker(device, marker)
        .await
        .into_iter()
        .filter_map(|e| e.message.system.message_id)
        .collect()
}

async fn blob_ids(storage: &StorageEndpoint) -> Vec<String> {
    let mut ids = Vec::new();
    for blob in storage.blobs(HUB).await {
        for record in blob_records(&blob.name, &blob.bytes) {
            ids.push(
                record["SystemProperties"]["messageId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_then_azurite_down_others_flow_and_the_backlog_drains() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = TcpProxy::start(RABBITMQ).await;
    let queue = QueueEndpoint::rabbitmq_via(&proxy);
    let mut storage = StorageEndpoint::azurite();
    let routing = tutorial_routing(&queue, &storage.connection_string(), 1);
    let routing = write_routing(dir.path(), &routing);
    let hub = TestHub::start_with(|config| {
        config.routing.file = Some(routing);
        config.routing.allow_short_batches = true;
    });
    let health = hub.health();
    let mut device = Sender::connect(&hub, "turbine-7").await;
    let id = device.device.id.clone();

    device.send(&[Level::Critical, Level::Storage, Level::Info]).await;
    for endpoint in [QUEUE_ENDPOINT, STORAGE_ENDPOINT] {
        back(&health, endpoint).await;
    }

    // RabbitMQ unreachable: the queue endpoint falls behind; storage and `events` do not.
    proxy.cut();
    let during = device
        .send(&[
            Level::Critical,
            Level::Storage,
            Level::Critical,
            Level::Info,
            Level::Critical,
            Level::Storage,
            Level::Critical,
            Level::Info,
        ])
        .await;
    let state = down(&health, QUEUE_ENDPOINT, 4).await;
    metric(
        &hub,
        r#"hub_endpoint_health{endpoint="CriticalQueue",status="unhealthy"}"#,
        1.0,
    )
    .await;
    health.drained(STORAGE_ENDPOINT).await;
    let stored = blob_ids(&storage).await;
    assert_eq!(
        stored.iter().cloned().collect::<BTreeSet<_>>(),
        device.ids(Level::Storage),
        "storage kept flowing"
    );
    let events = event_ids(&hub, &id, &last(&during, Level::Info)).await;
    assert_eq!(events, device.ids(Level::Info), "events kept flowing");
    let still = health.of(QUEUE_ENDPOINT).await;
    assert_eq!(
        (&still["healthStatus"], &still["backlog"]),
        (&state["healthStatus"], &state["backlog"]),
        "the queue endpoint is still down: {still:#}"
    );
    proxy.restore();
    back(&health, QUEUE_ENDPOINT).await;
    metric(&hub, r#"hub_endpoint_backlog{endpoint="CriticalQueue"}"#, 0.0).await;
    metric(
        &hub,
        r#"hub_endpoint_health{endpoint="CriticalQueue",status="unhealthy"}"#,
        0.0,
    )
    .await;

    // Azurite stopped: the storage endpoint falls behind; the queue and `events` do not.
    storage.azurite_mut().stop();
    let during = device
        .send(&[
            Level::Storage,
            Level::Critical,
            Level::Storage,
            Level::Info,
            Level::Storage,
            Level::Critical,
            Level::Storage,
            Level::Info,
        ])
        .await;
    let state = down(&health, STORAGE_ENDPOINT, 4).await;
    // Every critical message so far, the ones sent while RabbitMQ was unreachable included, at
    // least once (a batch cut off before the broker's answer may come twice), and nothing else.
    let received: BTreeSet<String> = queue
        .receive_until_marker(&last(&during, Level::Critical))
        .await
        .into_iter()
        .filter_map(|r| r.message.message_id)
        .collect();
    assert_eq!(received, device.ids(Level::Critical), "the queue kept flowing");
    let events = event_ids(&hub, &id, &last(&during, Level::Info)).await;
    assert_eq!(events, device.ids(Level::Info), "events kept flowing");
    let still = health.of(STORAGE_ENDPOINT).await;
    assert_eq!(
        (&still["healthStatus"], &still["backlog"]),
        (&state["healthStatus"], &state["backlog"]),
        "the storage endpoint is still down: {still:#}"
    );
    storage.azurite_mut().restart();
    back(&health, STORAGE_ENDPOINT).await;

    // Every storage message, each in exactly one record.
    let mut stored = blob_ids(&storage).await;
    stored.sort();
    let expected: Vec<String> = device.ids(Level::Storage).into_iter().collect();
    assert_eq!(
        stored, expected,
        "the storage backlog drained, nothing lost or doubled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_withholds_pubacks_only_from_devices_routed_there() {
    const MAX_BACKLOG: u64 = 3;
    const SENT: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    // The queue does not exist yet: the endpoint is down until the test creates it.
    let queue = QueueEndpoint::sqlite_missing(dir.path());
    let storage = StorageEndpoint::local();
    let routing = tutorial_routing(&queue, &storage.connection_string(), 1);
    let routing = write_routing(dir.path(), &routing);
    let hub = TestHub::start_with(|config| {
        config.routing.file = Some(routing);
        config.routing.allow_short_batches = true;
        config.routing.max_backlog = MAX_BACKLOG;
        // One message at a time per connection: exactly MAX_BACKLOG + 1 pass before the bound.
        config.limits.max_inflight_per_connection = 1;
    });
    let health = hub.health();

    // Device A sends critical messages without waiting; its PUBACKs are counted as they come.
    let a = hub.create_device("routed-to-queue").await;
    let (client, mut events) = AsyncClient::new(hub.mqtt_options(Link::Tcp, &a.id, &a.token()), 64);
    let (acks, mut acked) = tokio::sync::watch::channel(0u64);
    let a_loop = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => acks.send_modify(|n| *n += 1),
                Ok(_) => {}
                Err(error) => panic!("device A lost its connection: {error}"),
            }
        }
    });
    let a_sent: Vec<Sent> = (0..SENT).map(|n| Sent::new(&a.id, Level::Critical, n)).collect();
    for message in &a_sent {
        client
            .publish(
                message.topic(&a.id),
                QoS::AtLeastOnce,
                false,
                message.body.clone(),
            )
            .await
            .unwrap();
    }
    within(
        "device A's first PUBACKs",
        acked.wait_for(|n| *n == MAX_BACKLOG + 1),
    )
    .await
    .unwrap();
    down(&health, QUEUE_ENDPOINT, MAX_BACKLOG + 1).await;

    // Device B, routed to `events`, is acknowledged message after message meanwhile...
    let mut b = Sender::connect(&hub, "routed-to-events").await;
    let b_sent = b.send(&[Level::Info; 5]).await;
    let events = event_ids(&hub, &b.device.id, &last(&b_sent, Level::Info)).await;
    assert_eq!(events, b.ids(Level::Info));
    // ... while A's remaining messages wait: no PUBACK since the backlog filled.
    assert_eq!(*acked.borrow(), MAX_BACKLOG + 1, "PUBACKs past a full backlog");
    assert_eq!(health.of(QUEUE_ENDPOINT).await["backlog"], MAX_BACKLOG + 1);

    // The endpoint comes back: the backlog drains, A gets every PUBACK, the queue every message.
    queue.create().await;
    within("device A's remaining PUBACKs", acked.wait_for(|n| *n == SENT))
        .await
        .unwrap();
    back(&health, QUEUE_ENDPOINT).await;
    let received: Vec<String> = queue
        .receive_until_marker(&a_sent.last().unwrap().id)
        .await
        .into_iter()
        .filter_map(|r| r.message.message_id)
        .collect();
    let expected: Vec<String> = a_sent.iter().map(|s| s.id.clone()).collect();
    assert_eq!(received, expected);
    a_loop.abort();
}
