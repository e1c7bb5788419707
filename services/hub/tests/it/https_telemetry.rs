//! Device-to-cloud over HTTPS: `POST /devices/{id}/messages/events` with `iothub-*` headers lands
//! with the same properties as the equivalent MQTT message; bad tokens get 401; the size limit holds.

use iothub_protocol::Message;
use iothub_protocol::SystemProperty as P;
use reqwest::StatusCode;
use rumqttc::QoS;

use crate::support::mqtt::{Link, Outcome};
use crate::support::{Device, TestHub, device_token, expired_expiry, random_key, valid_expiry};

/// Sends `body` as `device_id` over HTTPS with `headers` and this `Authorization`.
async fn send(
    hub: &TestHub,
    device_id: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> StatusCode {
    let mut request = hub
        .client()
        .post(hub.https_url(&format!("/devices/{device_id}/messages/events")))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.unwrap().status()
}

/// A stored message without what differs between two sends: the message id and enqueued time.
/// Application properties are sorted: HTTP headers reach the hub in no particular order.
fn comparable(message: &Message) -> Message {
    let mut message = message.clone();
    message.system.message_id = None;
    message.system.enqueued_time = None;
    message.app_properties.sort();
    message
}

#[tokio::test]
async fn https_telemetry_lands_with_the_same_properties_as_mqtt() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let headers = [
        ("iothub-messageid", "m-https"),
        ("iothub-correlationid", "corr-1"),
        ("iothub-contenttype", "application/json"),
        ("iothub-contentencoding", "utf-8"),
        ("iothub-app-level", "critical"),
        ("iothub-app-unit", "C"),
        ("content-type", "application/octet-stream"),
    ];
    let body = br#"{"temperature":21.5}"#.to_vec();
    assert_eq!(
        send(&hub, "dev1", Some(&device.token()), &headers, body.clone()).await,
        StatusCode::NO_CONTENT
    );
    // The same message over MQTT.
    let mut connection = hub.connect(&device, Link::Tls).await;
    let topic =
        device.topic("$.mid=m-mqtt&$.cid=corr-1&$.ct=application%2Fjson&$.ce=utf-8&level=critical&unit=C");
    assert_eq!(
        connection.publish(&topic, QoS::AtLeastOnce, body.clone()).await,
        Outcome::Acked
    );

    let events = hub.events(&device.id, 2).await;
    let (https, mqtt) = (&events[0].message, &events[1].message);
    assert_eq!(https.system.get(P::MessageId), Some("m-https"));
    assert_eq!(mqtt.system.get(P::MessageId), Some("m-mqtt"));
    assert_eq!(https.system.get(P::CorrelationId), Some("corr-1"));
    assert_eq!(https.system.get(P::ContentType), Some("application/json"));
    assert_eq!(https.system.get(P::ContentEncoding), Some("utf-8"));
    assert_eq!(https.system.get(P::ConnectionDeviceId), Some("dev1"));
    assert_eq!(https.app_property("level"), Some(Some("critical")));
    assert_eq!(https.app_property("unit"), Some(Some("C")));
    assert_eq!(https.body, body);
    assert_eq!(
        comparable(https),
        comparable(mqtt),
        "HTTPS and MQTT store the same message"
    );
}

#[tokio::test]
async fn https_telemetry_refuses_bad_tokens() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let other = hub.create_device("dev2").await;
    let off = hub.create_device("off").await;
    assert_eq!(hub.set_status("off", "disabled").await.status, StatusCode::OK);
    // (case, device in the path, Authorization)
    let cases: [(&str, &str, Option<String>); 6] = [
        ("no Authorization", "dev1", None),
        (
            "wrong key",
            "dev1",
            Some(device_token("dev1", &random_key(), valid_expiry())),
        ),
        (
            "expired token",
            "dev1",
            Some(device_token("dev1", &device.primary_key, expired_expiry())),
        ),
        ("other device's token", "dev1", Some(other.token())),
        (
            "unknown device",
            "ghost",
            Some(device_token("ghost", &random_key(), valid_expiry())),
        ),
        ("disabled device", "off", Some(off.token())),
    ];
    for (case, id, authorization) in &cases {
        let status = send(
            &hub,
            id,
            authorization.as_deref(),
            &[("iothub-messageid", "refused")],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
    }
    // Nothing was stored: the first event of dev1 is the one sent now.
    let marker = [("iothub-messageid", "marker")];
    assert_eq!(
        send(&hub, "dev1", Some(&device.token()), &marker, b"m".to_vec()).await,
        StatusCode::NO_CONTENT
    );
    let first = hub.events(&device.id, 1).await;
    assert_eq!(first[0].message.system.message_id.as_deref(), Some("marker"));
}

#[tokio::test]
async fn https_telemetry_holds_the_size_limit() {
    let hub = TestHub::start();
    let device: Device = hub.create_device("dev1").await;
    let limit = iothub_protocol::MAX_MESSAGE_SIZE;
    type Headers = &'static [(&'static str, &'static str)];
    // (body bytes, header properties, expected status)
    let cases: [(usize, Headers, StatusCode); 4] = [
        (limit, &[], StatusCode::NO_CONTENT),
        (limit + 1, &[], StatusCode::PAYLOAD_TOO_LARGE),
        (limit - 2, &[("iothub-app-k", "v")], StatusCode::NO_CONTENT),
        (
            limit - 2,
            &[("iothub-app-k", "vv")],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (size, headers, expected) in cases {
        let status = send(&hub, "dev1", Some(&device.token()), headers, vec![b'x'; size]).await;
        assert_eq!(status, expected, "{size} body bytes with {headers:?}");
    }
}
