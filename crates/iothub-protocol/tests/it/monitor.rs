//! `az iot hub monitor-events` output (spec §7; the CLI's `common_parser.py`).

use iothub_protocol::Message;
use iothub_protocol::monitor::{MonitorOptions, StreamPosition, render_event, start_banner, to_pretty_json};

use crate::message::stamped;

#[track_caller]
fn check(message: &Message, position: Option<&StreamPosition>, options: &MonitorOptions, expected: &str) {
    let rendered = to_pretty_json(&render_event(message, position, options));
    assert_eq!(rendered, expected.trim_start_matches('\n').trim_end());
}

#[test]
fn renders_the_event_without_properties() {
    check(
        &stamped(),
        None,
        &MonitorOptions::default(),
        r#"
{
    "event": {
        "origin": "d1",
        "module": "",
        "interface": "",
        "component": "",
        "payload": {
            "deviceId": "d1",
            "windSpeed": 12.5
        }
    }
}"#,
    );
}

#[test]
fn renders_every_part_in_the_cli_order() {
    let mut message = stamped();
    message.system.creation_time = Some("2021-04-21T11:30:16Z".into());
    message.system.dt_dataschema = Some("dtmi:com:example:Thermostat;1".into());
    message.system.dt_subject = Some("thermostat1".into());
    let position = StreamPosition {
        sequence_number: 7,
        offset: "4096".into(),
    };
    check(
        &message,
        Some(&position),
        &MonitorOptions::from_props(["ALL"]).unwrap(),
        r#"
{
    "event": {
        "origin": "d1",
        "module": "",
        "interface": "dtmi:com:example:Thermostat;1",
        "component": "thermostat1",
        "properties": {
            "system": {
                "content_encoding": "utf-8",
                "content_type": "application/json",
                "correlation_id": "correlation_1",
                "message_id": "message_1"
            },
            "application": {
                "level": "critical",
                "flag": null,
                "iothub-creation-time-utc": "2021-04-21T11:30:16Z"
            }
        },
        "annotations": {
            "iothub-connection-device-id": "d1",
            "iothub-connection-auth-method": "{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\",\"acceptingIpFilterRule\":null}",
            "iothub-connection-auth-generation-id": "636930642531278483",
            "iothub-enqueuedtime": 1557468392722,
            "iothub-message-source": "Telemetry",
            "dt-dataschema": "dtmi:com:example:Thermostat;1",
            "dt-subject": "thermostat1",
            "x-opt-sequence-number": 7,
            "x-opt-offset": "4096",
            "x-opt-enqueued-time": 1557468392722
        },
        "payload": {
            "deviceId": "d1",
            "windSpeed": 12.5
        }
    }
}"#,
    );
}

/// `properties` appears whenever any set is asked for; `system` only when it has something.
#[test]
fn properties_follow_the_cli_rules() {
    let message = Message::new(b"plain text".to_vec()).with_app_property("k", Some("v"));
    check(
        &message,
        None,
        &MonitorOptions::from_props(["anno"]).unwrap(),
        r#"
{
    "event": {
        "origin": "",
        "module": "",
        "interface": "",
        "component": "",
        "properties": {},
        "annotations": {
            "iothub-message-source": "Telemetry"
        },
        "payload": "plain text"
    }
}"#,
    );
    check(
        &message,
        None,
        &MonitorOptions::from_props(["sys", "app"]).unwrap(),
        r#"
{
    "event": {
        "origin": "",
        "module": "",
        "interface": "",
        "component": "",
        "properties": {
            "application": {
                "k": "v"
            }
        },
        "payload": "plain text"
    }
}"#,
    );
    assert_eq!(
        MonitorOptions::from_props(["sys", "bogus"])
            .unwrap_err()
            .to_string(),
        "unknown property set `bogus`: use sys, app, anno or all"
    );
}

#[track_caller]
fn check_payload(
    body: &[u8],
    content_type: Option<&str>,
    encoding: Option<&str>,
    override_type: Option<&str>,
    expected: &str,
) {
    let mut message = Message::new(body.to_vec());
    message.system.content_type = content_type.map(Into::into);
    message.system.content_encoding = encoding.map(Into::into);
    let options = MonitorOptions {
        content_type: override_type.map(Into::into),
        ..MonitorOptions::default()
    };
    let event = render_event(&message, None, &options);
    assert_eq!(event["event"]["payload"].to_string(), expected);
}

#[test]
fn decodes_payloads_per_content_type_and_encoding() {
    let json = Some("application/json");
    check_payload(br#"{"a":1}"#, json, Some("utf-8"), None, r#"{"a":1}"#);
    check_payload(
        br#"{"a":1}"#,
        Some("Application/JSON; charset=utf-8"),
        None,
        None,
        r#"{"a":1}"#,
    );
    check_payload(br#"{"a":1}"#, None, None, None, r#""{\"a\":1}""#);
    check_payload(br#"{"a":1}"#, Some("text/plain"), None, json, r#"{"a":1}"#);
    check_payload(b"not json", json, None, None, r#""not json""#);
    check_payload(b"", json, None, None, r#""""#);
    check_payload(b"\xFF\xFEh\0i\0", None, Some("utf-16"), None, r#""hi""#);
    check_payload(b"\0h\0i", None, Some("UTF-16BE"), None, r#""hi""#);
    check_payload(b"h\0\0\0", None, Some("utf-32"), None, r#""h""#);
    check_payload(b"h\0\0", None, Some("utf-32"), None, "\"h\\u0000\\u0000\"");
    check_payload(b"ok\xFF", None, None, None, "\"ok\u{FFFD}\"");
}

#[test]
fn prints_the_cli_banner() {
    assert_eq!(
        start_banner(None),
        "Starting event monitor, use ctrl-c to stop..."
    );
    assert_eq!(
        start_banner(Some("device1")),
        "Starting event monitor, filtering on device: device1, use ctrl-c to stop..."
    );
}
