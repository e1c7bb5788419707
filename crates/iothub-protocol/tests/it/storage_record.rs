//! Blob endpoint JSON records (spec §6): the documented records read back; written records match.

use iothub_protocol::Message;
use iothub_protocol::storage_record::{
    StorageRecord, body_is_inline_json, parse_records, to_value, write_record,
};
use iothub_protocol::timestamp::Timestamp;

use crate::message::stamped;

const AUTH: &str =
    r#"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\",\"acceptingIpFilterRule\":null}"#;

/// The DOC-ENRICH record (base64 body; the body is issue #51723's), and the DOC-IOTC one (inline
/// JSON body), with their elisions filled in.
fn documented_blob() -> String {
    let enrich = format!(
        r#"{{"EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{{"level":"storage","my IoT Hub":"contosotesthubmsgen3276"}},"SystemProperties":{{"connectionDeviceId":"Contoso-Test-Device","connectionAuthMethod":"{AUTH}","connectionDeviceGenerationId":"636930642531278483","enqueuedTime":"2019-05-10T06:06:32.7220000Z"}},"Body":"eyBUZW1wZXJhdHVyZTogNDA5NX0="}}"#
    );
    let iotc = format!(
        r#"{{"EnqueuedTimeUtc":"2019-09-26T17:46:09.8870000Z","Properties":{{}},"SystemProperties":{{"connectionDeviceId":"device1","connectionAuthMethod":"{AUTH}","connectionDeviceGenerationId":"637051167384630591","contentType":"application/json","contentEncoding":"utf-8","enqueuedTime":"2019-09-26T17:46:09.8870000Z"}},"Body":{{"temp":49.91,"humid":49.61,"pm25":25.87}}}}"#
    );
    format!("{enrich}\r\n\r\n{iotc}\n")
}

#[test]
fn reads_the_documented_records() {
    let blob = documented_blob();
    let records: Vec<(usize, StorageRecord)> = parse_records(&blob)
        .map(|(line, record)| (line, record.unwrap()))
        .collect();
    assert_eq!(records.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [1, 3]);

    let enrich = &records[0].1;
    assert_eq!(
        enrich.enqueued_time_utc,
        Some(Timestamp::parse("2019-05-10T06:06:32.722Z").unwrap())
    );
    assert_eq!(enrich.body, b"{ Temperature: 4095}");
    assert_eq!(
        enrich.properties,
        [
            ("level".to_owned(), Some("storage".to_owned())),
            (
                "my IoT Hub".to_owned(),
                Some("contosotesthubmsgen3276".to_owned())
            )
        ]
    );
    let message = enrich.to_message();
    assert_eq!(
        message.system.connection_device_id.as_deref(),
        Some("Contoso-Test-Device")
    );
    assert_eq!(message.system.enqueued_time, enrich.enqueued_time_utc);
    assert_eq!(message.app_property("level"), Some(Some("storage")));

    let iotc = &records[1].1;
    assert_eq!(iotc.body, br#"{"temp":49.91,"humid":49.61,"pm25":25.87}"#);
    assert_eq!(
        iotc.system_properties[3],
        ("contentType".to_owned(), "application/json".to_owned())
    );
    // Written back from its message, the record is the documented line, byte for byte.
    let mut out = Vec::new();
    write_record(&iotc.to_message(), &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        blob.lines().nth(2).unwrap().to_owned() + "\n"
    );
}

#[track_caller]
fn check_body(body: &[u8], content_type: Option<&str>, encoding: Option<&str>, expected: &str) {
    let mut message = stamped();
    message.body = body.to_vec();
    message.system.content_type = content_type.map(Into::into);
    message.system.content_encoding = encoding.map(Into::into);
    let record = to_value(&message).unwrap();
    assert_eq!(record["Body"].to_string(), expected);
    // And it reads back to the same bytes, or to the compact JSON that was written.
    let parsed = StorageRecord::parse(&record.to_string()).unwrap();
    let inline = record["Body"].is_object() || record["Body"].is_array() || record["Body"].is_number();
    let expected_body = if inline {
        expected.as_bytes().to_vec()
    } else {
        body.to_vec()
    };
    assert_eq!(parsed.body, expected_body);
}

#[test]
fn inlines_json_bodies_only_for_json_and_utf8() {
    check_body(
        br#"{"a": 1}"#,
        Some("application/json"),
        Some("utf-8"),
        r#"{"a":1}"#,
    );
    check_body(
        b"{\"a\":\n 1}",
        Some("Application/JSON"),
        Some("UTF-8"),
        r#"{"a":1}"#,
    );
    check_body(
        b"\xEF\xBB\xBF[1,2]",
        Some("application/json"),
        Some("utf-8"),
        "[1,2]",
    );
    check_body(br#"{"a":1}"#, Some("application/json"), None, r#""eyJhIjoxfQ==""#);
    check_body(br#"{"a":1}"#, None, Some("utf-8"), r#""eyJhIjoxfQ==""#);
    check_body(
        br#"{"a":1}"#,
        Some("application/json; charset=utf-8"),
        Some("utf-8"),
        r#""eyJhIjoxfQ==""#,
    );
    check_body(
        b"not json",
        Some("text/plain"),
        Some("utf-8"),
        r#""bm90IGpzb24=""#,
    );
    check_body(b"", Some("text/plain"), None, "null");
    assert!(body_is_inline_json(Some(" application/json "), Some("utf-8")));
    assert!(!body_is_inline_json(Some("application/json"), Some("utf-16")));
}

#[test]
fn writes_records_in_iot_hub_key_order() {
    let mut message = stamped();
    message.system.creation_time = Some("2021-04-21T11:30:16Z".into());
    let mut out = Vec::new();
    write_record(&message, &mut out).unwrap();
    write_record(&message, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = format!(
        r#"{{"EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{{"level":"critical","flag":null,"iothub-creation-time-utc":"2021-04-21T11:30:16Z"}},"SystemProperties":{{"messageId":"message_1","correlationId":"correlation_1","connectionDeviceId":"d1","connectionAuthMethod":"{AUTH}","connectionDeviceGenerationId":"636930642531278483","contentType":"application/json","contentEncoding":"utf-8","enqueuedTime":"2019-05-10T06:06:32.7220000Z"}},"Body":{{"deviceId":"d1","windSpeed":12.5}}}}"#
    );
    assert_eq!(text, format!("{line}\n{line}\n"));
    let back: Vec<Message> = parse_records(&text)
        .map(|(_, record)| record.unwrap().to_message())
        .collect();
    assert_eq!(back, [message.clone(), message]);
}

#[track_caller]
fn check_error(line: &str, expected: &str) {
    assert_eq!(
        StorageRecord::parse(line).unwrap_err().to_string(),
        expected,
        "{line}"
    );
}

#[test]
fn reads_tolerantly_and_reports_what_is_wrong() {
    let minimal = StorageRecord::parse("  {}  ").unwrap();
    assert_eq!(minimal, StorageRecord::default());
    let loose = StorageRecord::parse(
        r#"{"Properties":{"n":1,"b":true,"z":null},"SystemProperties":{"x":null},"Body":null}"#,
    )
    .unwrap();
    assert_eq!(
        loose.properties,
        [
            ("n".to_owned(), Some("1".to_owned())),
            ("b".to_owned(), Some("true".to_owned())),
            ("z".to_owned(), None)
        ]
    );
    assert!(loose.system_properties.is_empty());
    check_error("[1]", "the storage record is not a JSON object: not an object");
    check_error(
        "{",
        "the storage record is not a JSON object: EOF while parsing an object at line 1 column 1",
    );
    check_error(
        r#"{"EnqueuedTimeUtc":5}"#,
        "the storage record's `EnqueuedTimeUtc` has the wrong type",
    );
    check_error(
        r#"{"EnqueuedTimeUtc":"soon"}"#,
        "the storage record's EnqueuedTimeUtc is invalid: `soon` is not a timestamp like 2019-05-10T06:06:32.7220000Z",
    );
    check_error(
        r#"{"Properties":[]}"#,
        "the storage record's `Properties` has the wrong type",
    );
    check_error(r#"{"Body":"%%%"}"#, "the storage record's Body is not base64");
    assert_eq!(
        to_value(&Message::new(Vec::new())).unwrap_err().to_string(),
        "the message has no enqueued time"
    );
}
