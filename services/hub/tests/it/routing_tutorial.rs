//! The routing tutorial end to end, on real backends: a device publishes over MQTT (QoS 1, TLS)
//! with message ids, correlation ids, content type and encoding and application properties; every
//! `level="critical"` message lands in the queue endpoint with the properties IoT Hub puts on Service
//! Bus messages, every `level="storage"` message in a blob record of the right name and shape, and
//! everything else in `events` (and nowhere else). Backends, one table row each: the embedded SQLite
//! queue with a local directory, and RabbitMQ (AMQP 1.0, a random queue) with a private Azurite.
//!
//! Also: the ARM export fixture runs unchanged once `endpoint_overrides` point its endpoints at
//! local backends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rumqttc::QoS;
use secrecy::SecretString;
use serde_json::Value;

use crate::support::backends::{QueueEndpoint, StorageEndpoint};
use crate::support::mqtt::{Link, MqttDevice, Outcome};
use crate::support::routing::{
    Level, QUEUE_ENDPOINT, STORAGE_ENDPOINT, Sent, blob_records, minute_path, split_blob_name,
    tutorial_routing, without_times, write_routing,
};
use crate::support::{Device, TestHub};

/// The test hub's name: `$iothubname`, and the first segment of blob names.
const HUB: &str = "testhub";

/// Where the tutorial's two custom endpoints live.
#[derive(Debug, Clone, Copy)]
enum Backends {
    /// The embedded SQLite queue and a local directory: nothing to install.
    Local,
    /// RabbitMQ's AMQP 1.0 plugin and Azurite: the brokers a developer runs.
    Brokers,
}

impl Backends {
    async fn start(self, dir: &Path) -> (QueueEndpoint, StorageEndpoint) {
        match self {
            Backends::Local => (QueueEndpoint::sqlite(dir).await, StorageEndpoint::local()),
            Backends::Brokers => (QueueEndpoint::rabbitmq(), StorageEndpoint::azurite()),
        }
    }
}

/// What the device sends in one wave, in order.
const WAVE: [Level; 8] = [
    Level::Critical,
    Level::Storage,
    Level::Info,
    Level::Storage,
    Level::Unlabelled,
    Level::Critical,
    Level::Storage,
    Level::Storage,
];
/// Waves, each written to storage before the next starts: at least three blobs.
const WAVES: usize = 3;

async fn publish(mqtt: &mut MqttDevice, device: &Device, message: &Sent) {
    let outcome = mqtt
        .publish(&message.topic(&device.id), QoS::AtLeastOnce, message.body.clone())
        .await;
    assert_eq!(outcome, Outcome::Acked, "{}", message.id);
}

fn ids<'a>(sent: impl IntoIterator<Item = &'a Sent>) -> Vec<&'a str> {
    sent.into_iter().map(|s| s.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_on_sqlite_and_a_local_directory() {
    tutorial(Backends::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_on_rabbitmq_and_azurite() {
    tutorial(Backends::Brokers).await;
}

async fn tutorial(backends: Backends) {
    let dir = tempfile::tempdir().unwrap();
    let (queue, storage) = backends.start(dir.path()).await;
    let routing = tutorial_routing(&queue, &storage.connection_string(), 1);
    let routing = write_routing(dir.path(), &routing);
    let hub = TestHub::start_with(|config| {
        config.routing.file = Some(routing);
        config.routing.allow_short_batches = true;
    });
    let health = hub.health();
    let device = hub.create_device("turbine-7").await;
    let mut mqtt = hub.connect(&device, Link::Tls).await;

    let mut sent = Vec::new();
    for _ in 0..WAVES {
        for level in WAVE {
            let message = Sent::new(&device.id, level, sent.len() as u64);
            publish(&mut mqtt, &device, &message).await;
            sent.push(message);
        }
        // This wave's blob is written before the next wave starts.
        health.drained(STORAGE_ENDPOINT).await;
    }
    // The last critical message closes the queue; the last message of all, `events`.
    for level in [Level::Critical, Level::Info] {
        let message = Sent::new(&device.id, level, sent.len() as u64);
        publish(&mut mqtt, &device, &message).await;
        sent.push(message);
    }
    let of = |levels: &[Level]| -> Vec<&Sent> { sent.iter().filter(|s| levels.contains(&s.level)).collect() };
    let (critical, stored, fallen_back) = (
        of(&[Level::Critical]),
        of(&[Level::Storage]),
        of(&[Level::Info, Level::Unlabelled]),
    );

    // The queue: every critical message, in order, once, exactly as IoT Hub sends it to Service
    // Bus; nothing sent before the last of them but them.
    let received = queue.receive_until_marker(&critical.last().unwrap().id).await;
    let received_ids: Vec<&str> = received
        .iter()
        .map(|r| r.message.message_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(received_ids, ids(critical.iter().copied()));
    for (received, sent) in received.iter().zip(&critical) {
        assert_eq!(received.message, sent.in_queue(&device, HUB), "{}", sent.id);
    }
    if matches!(backends, Backends::Local) {
        // The embedded queue stamps its own enqueued time, as Service Bus does (IoT Hub sends none).
        assert!(received.iter().all(|r| r.enqueued_time.is_some()));
    }

    // `events`: the messages no route took, unenriched, and nothing else.
    let events = hub
        .events_until_marker(&device.id, &fallen_back.last().unwrap().id)
        .await;
    let event_ids: Vec<&str> = events
        .iter()
        .map(|e| e.message.system.message_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(event_ids, ids(fallen_back.iter().copied()));
    for (event, sent) in events.iter().zip(&fallen_back) {
        let app: Vec<(String, Option<String>)> = sent
            .app
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        assert_eq!(event.message.app_properties, app, "{}", sent.id);
        assert_eq!(event.message.body, sent.body, "{}", sent.id);
        let system = &event.message.system;
        assert_eq!(
            (
                system.correlation_id.as_deref(),
                system.content_type.as_deref(),
                system.content_encoding.as_deref(),
                system.connection_device_id.as_deref(),
            ),
            (
                Some(sent.correlation_id.as_str()),
                Some(sent.content_type),
                Some("utf-8"),
                Some(device.id.as_str())
            )
        );
    }

    // Storage: every storage message in one record, in order, in blobs named for their minute.
    health.drained(STORAGE_ENDPOINT).await;
    check_blobs(&storage, &device, &stored).await;

    for endpoint in [QUEUE_ENDPOINT, STORAGE_ENDPOINT] {
        let state = health.of(endpoint).await;
        assert_eq!(
            (state["healthStatus"].as_str(), state["backlog"].as_u64()),
            (Some("healthy"), Some(0)),
            "{state:#}"
        );
    }
}

/// The blobs hold exactly `stored`'s records, in order; names are `testhub/0/YYYY/MM/DD/HH/mm` of
/// a minute no earlier than their first record, and blobs of one minute take `_1`, `_2`, ...
async fn check_blobs(storage: &StorageEndpoint, device: &Device, stored: &[&Sent]) {
    let now = minute_path(iothub_protocol::Timestamp::now().as_str());
    let mut blobs: Vec<((String, u32), Vec<Value>)> = storage
        .blobs(HUB)
        .await
        .into_iter()
        .map(|blob| {
            let name = split_blob_name(&blob.name, HUB);
            let records = blob_records(&blob.name, &blob.bytes);
            assert!(!records.is_empty(), "blob {} is empty", blob.name);
            let first = minute_path(records[0]["EnqueuedTimeUtc"].as_str().unwrap());
            assert!(
                first <= name.0 && name.0 <= now,
                "blob {}: its minute is not its batch's ({first} .. {now})",
                blob.name
            );
            (name, records)
        })
        .collect();
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        blobs.len() >= WAVES,
        "one blob per wave at least: {:?}",
        blobs.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    let mut by_minute: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for ((minute, suffix), _) in &blobs {
        by_minute.entry(minute).or_default().push(*suffix);
    }
    for (minute, suffixes) in &by_minute {
        let expected: Vec<u32> = (0..suffixes.len() as u32).collect();
        assert_eq!(suffixes, &expected, "collision suffixes of minute {minute}");
    }
    // Three or more blobs written within seconds share a minute at least once.
    assert!(
        by_minute.len() < blobs.len(),
        "no name collision among {by_minute:?}"
    );

    let records: Vec<&Value> = blobs.iter().flat_map(|(_, records)| records).collect();
    let record_ids: Vec<&str> = records
        .iter()
        .map(|r| r["SystemProperties"]["messageId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(record_ids, ids(stored.iter().copied()));
    for (record, sent) in records.iter().zip(stored) {
        assert_eq!(without_times(record), sent.in_blob(device, HUB), "{}", sent.id);
    }
}

/// The ARM export, unchanged, with both endpoints overridden to local backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm_export_routes_with_local_overrides() {
    for fixture in ["arm-export.json", "arm-export.yaml"] {
        arm_export(fixture).await;
    }
}

async fn arm_export(fixture: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/routing")
        .join(fixture);
    let dir = tempfile::tempdir().unwrap();
    let queues = format!("sqlite://{}", dir.path().join("queues.db").display());
    // The export's entityPath: the override names no queue, so the endpoint's stays.
    let client = queue::QueueClient::connect(&queues).await.unwrap();
    client
        .create_queue("contososbqueue", &queue::QueueOptions::default())
        .await
        .unwrap();
    let blobs = dir.path().join("blobs");
    let hub = TestHub::start_with(|config| {
        config.hub_name = "ContosoTestHub".to_owned();
        config.routing.file = Some(path);
        config.routing.endpoint_overrides = BTreeMap::from([
            (QUEUE_ENDPOINT.to_owned(), SecretString::from(queues.clone())),
            (
                STORAGE_ENDPOINT.to_owned(),
                SecretString::from(format!("file://{}", blobs.display())),
            ),
        ]);
    });
    let health = hub.health();
    let device = hub.create_device("Contoso-Test-Device").await;
    let mut mqtt = hub.connect(&device, Link::Tcp).await;
    let levels = [
        Level::Critical,
        Level::Storage,
        Level::Info,
        Level::Critical,
        Level::Storage,
        Level::Info,
    ];
    let mut sent = Vec::new();
    for level in levels {
        let message = Sent::new(&device.id, level, sent.len() as u64);
        publish(&mut mqtt, &device, &message).await;
        sent.push(message);
    }

    let critical: Vec<&Sent> = sent.iter().filter(|s| s.level == Level::Critical).collect();
    let received = QueueEndpoint::existing(&queues, "contososbqueue")
        .receive_until_marker(&critical.last().unwrap().id)
        .await;
    let received_ids: Vec<&str> = received
        .iter()
        .map(|r| r.message.message_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(received_ids, ids(critical.iter().copied()), "{fixture}");
    // The export has no enrichments: the device's properties and the connection stamps only.
    assert_eq!(
        received[0].message.application_properties["iothub-connection-device-id"],
        device.id
    );
    assert!(
        !received[0]
            .message
            .application_properties
            .contains_key("myIotHub")
    );

    let info: Vec<&Sent> = sent.iter().filter(|s| s.level == Level::Info).collect();
    let events = hub
        .events_until_marker(&device.id, &info.last().unwrap().id)
        .await;
    let event_ids: Vec<&str> = events
        .iter()
        .map(|e| e.message.system.message_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(event_ids, ids(info.iter().copied()), "{fixture}");

    // The storage messages wait for the export's 100-second batch in the endpoint's outbox: routed
    // there, durable, and nowhere else; the directory endpoint answered its probe.
    let storage = health
        .wait(STORAGE_ENDPOINT, "the probe", |h| h["healthStatus"] == "healthy")
        .await;
    assert_eq!(storage["backlog"], 2, "{fixture}: {storage:#}");
    let queue_health = health.drained(QUEUE_ENDPOINT).await;
    assert_eq!(queue_health["healthStatus"], "healthy", "{queue_health:#}");
}
