//! Device-to-cloud over HTTPS (spec §4).

use iothub_protocol::https::{apply_header, message_headers, telemetry_path};
use iothub_protocol::{API_VERSION, Message};

#[test]
fn headers_become_properties_and_back() {
    let mut message = Message::new(b"{}".to_vec());
    let headers = [
        ("Authorization", "SharedAccessSignature sr=...", false),
        ("iothub-messageid", "m1", true),
        ("IoTHub-CorrelationId", "c1", true),
        ("iothub-contenttype", "application/json", true),
        ("iothub-contentencoding", "utf-8", true),
        ("iothub-app-level", "critical", true),
        ("IOTHUB-APP-Unit", "°C", true),
        ("iothub-app-", "empty name", false),
        ("iothub-to", "/devices/d/messages/events", false),
        ("Content-Type", "application/octet-stream", false),
    ];
    for (name, value, consumed) in headers {
        assert_eq!(apply_header(&mut message, name, value), consumed, "{name}");
    }
    let system = &message.system;
    assert_eq!(
        [
            &system.message_id,
            &system.correlation_id,
            &system.content_type,
            &system.content_encoding
        ]
        .map(|v| v.as_deref()),
        [Some("m1"), Some("c1"), Some("application/json"), Some("utf-8")]
    );
    assert_eq!(message.app_property("level"), Some(Some("critical")));
    assert_eq!(message.app_property("unit"), Some(Some("°C")));

    let sent: Vec<(String, String)> = message_headers(&message);
    let sent: Vec<(&str, &str)> = sent.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        sent,
        [
            ("iothub-messageid", "m1"),
            ("iothub-correlationid", "c1"),
            ("iothub-contenttype", "application/json"),
            ("iothub-contentencoding", "utf-8"),
            ("iothub-app-level", "critical"),
            ("iothub-app-Unit", "°C"),
        ]
    );
}

#[test]
fn builds_the_request_path() {
    assert_eq!(
        telemetry_path("device1", API_VERSION),
        "/devices/device1/messages/events?api-version=2021-04-12"
    );
    assert_eq!(
        telemetry_path("a b/c", "2016-11-14"),
        "/devices/a%20b%2Fc/messages/events?api-version=2016-11-14"
    );
}
