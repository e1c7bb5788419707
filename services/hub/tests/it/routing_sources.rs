//! Route sources beyond telemetry: routes of `DeviceConnectionStateEvents` and
//! `DeviceLifecycleEvents` to a queue endpoint. Creating a device and deleting it through the
//! registry API, connecting and disconnecting it over MQTT, put IoT Hub's documented events in the
//! queue (`opType`, `hubName`, `deviceId`, `operationTimestamp`, `iothub-message-schema`; JSON
//! bodies), their properties and bodies usable in conditions; the fallback route, telemetry only,
//! never takes them.

use iothub_protocol::MessageSource;
use reqwest::Method;
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::support::TestHub;
use crate::support::backends::QueueEndpoint;
use crate::support::mqtt::{Link, Outcome};
use crate::support::routing::write_routing;

const HUB: &str = "testhub";
const DEVICE: &str = "sensor-1";

fn routing(queue: &QueueEndpoint) -> Value {
    json!({
        "endpoints": {
            "serviceBusQueues": [{
                "name": "DeviceEvents",
                "connectionString": queue.connection_string,
                "entityPath": queue.queue,
            }],
        },
        "routes": [
            // Conditions on an event's application property and on its JSON body.
            {"name": "ConnectionStates", "source": "DeviceConnectionStateEvents",
             "condition": format!("deviceId = '{DEVICE}'"), "endpointNames": ["DeviceEvents"], "isEnabled": true},
            {"name": "Lifecycle", "source": "DeviceLifecycleEvents",
             "condition": format!("$body.deviceId = '{DEVICE}'"), "endpointNames": ["DeviceEvents"], "isEnabled": true},
        ],
        "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true",
                          "endpointNames": ["events"], "isEnabled": true},
    })
}

/// `message` is the event `op_type` of `schema` about [`DEVICE`], as IoT Hub documents it.
#[track_caller]
fn check_event(message: &queue::Message, op_type: &str, schema: &str) -> Value {
    let properties = &message.application_properties;
    let property = |name: &str| properties.get(name).map(String::as_str);
    assert_eq!(
        (
            property("opType"),
            property("hubName"),
            property("deviceId"),
            property("iothub-message-schema"),
            property("iothub-connection-device-id"),
        ),
        (Some(op_type), Some(HUB), Some(DEVICE), Some(schema), Some(DEVICE)),
        "{message:?}"
    );
    let timestamp = property("operationTimestamp").unwrap_or("");
    assert!(
        iothub_protocol::Timestamp::parse(timestamp).is_ok(),
        "operationTimestamp {timestamp:?}"
    );
    assert_eq!(
        (
            message.content_type.as_deref(),
            message.content_encoding.as_deref()
        ),
        (Some("application/json"), Some("utf-8"))
    );
    assert!(message.correlation_id.is_some(), "{message:?}");
    serde_json::from_slice(&message.body).unwrap()
}

fn is_hex_sequence(body: &Value) -> bool {
    body["sequenceNumber"]
        .as_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_state_and_lifecycle_events_reach_their_queue_and_never_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueEndpoint::sqlite(dir.path()).await;
    let file = write_routing(dir.path(), &routing(&queue));
    let hub = TestHub::start_with(|config| config.routing.file = Some(file));

    let device = hub.create_device(DEVICE).await;
    let mut mqtt = hub.connect(&device, Link::Tcp).await;
    let topic = device.topic("$.mid=telemetry-1&level=info");
    assert_eq!(
        mqtt.publish(&topic, QoS::AtLeastOnce, "{\"windSpeed\":3}").await,
        Outcome::Acked
    );
    mqtt.disconnect().await;
    let opened = queue
        .receive_until(|m| {
            m.message.application_properties.get("opType").map(String::as_str) == Some("deviceDisconnected")
        })
        .await;
    let answer = hub
        .registry(
            Method::DELETE,
            &format!("/devices/{DEVICE}"),
            Some(&hub.owner_token()),
            Some("*"),
            None,
        )
        .await;
    assert!(answer.status.is_success(), "{answer:?}");
    let closed = queue
        .receive_until(|m| {
            m.message.application_properties.get("opType").map(String::as_str) == Some("deleteDeviceIdentity")
        })
        .await;

    let events: Vec<&queue::Message> = opened.iter().chain(&closed).map(|r| &r.message).collect();
    let op_types: Vec<&str> = events
        .iter()
        .map(|m| m.application_properties["opType"].as_str())
        .collect();
    assert_eq!(
        op_types,
        [
            "createDeviceIdentity",
            "deviceConnected",
            "deviceDisconnected",
            "deleteDeviceIdentity"
        ]
    );
    let lifecycle = "deviceLifecycleNotification";
    let connection = "deviceConnectionStateNotification";
    let created = check_event(events[0], "createDeviceIdentity", lifecycle);
    assert_eq!(
        (&created["deviceId"], &created["status"]),
        (&json!(DEVICE), &json!("enabled")),
        "a twin: {created:#}"
    );
    assert!(created["properties"]["desired"].is_object(), "{created:#}");
    assert!(is_hex_sequence(&check_event(
        events[1],
        "deviceConnected",
        connection
    )));
    assert!(is_hex_sequence(&check_event(
        events[2],
        "deviceDisconnected",
        connection
    )));
    let deleted = check_event(events[3], "deleteDeviceIdentity", lifecycle);
    assert_eq!(deleted["deviceId"], DEVICE, "{deleted:#}");
    assert!(
        events[1].application_properties["operationTimestamp"]
            <= events[2].application_properties["operationTimestamp"]
    );

    // `events` holds the device's telemetry, but none of its connection or lifecycle events:
    // everything up to a later marker was committed before it.
    let marker_device = hub.create_device("marker").await;
    let mut marker = hub.connect(&marker_device, Link::Tcp).await;
    let topic = marker_device.topic("$.mid=marker");
    assert_eq!(
        marker.publish(&topic, QoS::AtLeastOnce, "{}").await,
        Outcome::Acked
    );
    let stream = hub.all_events_until_marker("marker").await;
    let not_telemetry: Vec<_> = stream
        .iter()
        .filter(|e| e.message.system.message_source != MessageSource::Telemetry)
        .map(|e| &e.message)
        .collect();
    assert!(not_telemetry.is_empty(), "the fallback took {not_telemetry:#?}");
    let ids: Vec<&str> = stream
        .iter()
        .filter_map(|e| e.message.system.message_id.as_deref())
        .collect();
    assert_eq!(ids, ["telemetry-1", "marker"]);

    // Nothing else reached the queue: the marker device's own lifecycle and connection events
    // fail the routes' conditions.
    let client = queue::QueueClient::connect(&queue.connection_string)
        .await
        .unwrap();
    let rest = client.queue(&queue.queue).await.unwrap();
    assert_eq!(rest.len().await.unwrap(), 0);
}
