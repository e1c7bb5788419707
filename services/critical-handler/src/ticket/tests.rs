//! Tests of `ticket`.
use super::*;
use queue::Message;
use std::time::{Duration, UNIX_EPOCH};

const JSON: &str = "application/json";

fn message(body: impl Into<Vec<u8>>) -> Message {
    Message::new(body)
        .with_message_id("m-1")
        .with_property(DEVICE_ID_PROPERTY, "turbine-7")
        .with_property(LEVEL_PROPERTY, "critical")
}

fn build(message: &Message) -> Result<Ticket, Rejection> {
    Ticket::build(message, None, 1, &TicketSettings::default())
}

fn build_with_limit(message: &Message, max_body_bytes: usize) -> Ticket {
    let settings = TicketSettings {
        max_body_bytes,
        ..TicketSettings::default()
    };
    Ticket::build(message, None, 1, &settings).unwrap()
}

#[track_caller]
fn check_body(message: Message, format: BodyFormat, body: serde_json::Value) {
    let ticket = build(&message).unwrap();
    assert_eq!((ticket.body_format, ticket.body), (format, body));
    assert!(!ticket.body_truncated);
}

#[track_caller]
fn check_rejected(message: Message, expected: &str) {
    match build(&message) {
        Err(rejection @ Rejection::Undecodable(_)) => {
            assert_eq!(rejection.reason(), "UndecodableMessage");
            assert_eq!(rejection.to_string(), expected);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn maps_a_typical_message() {
    let message = message(br#"{"deviceId":"turbine-7","windSpeed":31.5}"#.to_vec())
        .with_correlation_id("c-9")
        .with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_property(MODULE_ID_PROPERTY, "vibration");
    let enqueued = UNIX_EPOCH + Duration::from_millis(1_795_722_333_123);
    let ticket = Ticket::build(&message, Some(enqueued), 3, &TicketSettings::default()).unwrap();
    assert_eq!(ticket.key, "m-1");
    assert_eq!(ticket.subject, "Critical alert from turbine-7");
    assert_eq!(ticket.severity, Severity::Critical);
    assert_eq!(ticket.level.as_deref(), Some("critical"));
    assert_eq!(ticket.device_id.as_deref(), Some("turbine-7"));
    assert_eq!(ticket.module_id.as_deref(), Some("vibration"));
    assert_eq!(ticket.enqueued_time.as_deref(), Some("2026-11-26T19:45:33.123Z"));
    assert_eq!(ticket.correlation_id.as_deref(), Some("c-9"));
    assert_eq!(ticket.properties.len(), 3);
    assert_eq!(
        ticket.body,
        serde_json::json!({"deviceId": "turbine-7", "windSpeed": 31.5})
    );
    assert_eq!(
        (ticket.body_format, ticket.body_truncated),
        (BodyFormat::Json, false)
    );
    assert_eq!(ticket.delivery_count, 3);
    let serialised = serde_json::to_value(&ticket).unwrap();
    assert_eq!(serialised["severity"], "critical");
    assert_eq!(serialised["body_format"], "json");
}

#[tokio::test]
async fn builds_from_a_message_received_off_a_real_queue() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let client = queue::QueueClient::connect(&url).await.unwrap();
    client
        .create_queue("critical", &queue::QueueOptions::default())
        .await
        .unwrap();
    let critical = client.queue("critical").await.unwrap();
    critical.send(message(b"{}".to_vec())).await.unwrap();
    let received = critical.receive(1, Duration::from_secs(5)).await.unwrap();
    let ticket = Ticket::from_message(&received[0], &TicketSettings::default()).unwrap();
    assert_eq!((ticket.key.as_str(), ticket.delivery_count), ("m-1", 1));
    assert_eq!(ticket.body_format, BodyFormat::Json);
}

#[test]
fn severity_comes_from_the_level_property() {
    let settings = TicketSettings {
        default_severity: Severity::Warning,
        ..TicketSettings::default()
    };
    let cases = [
        (Some("critical"), Severity::Critical),
        (Some("ERROR"), Severity::Error),
        (Some(" Warning "), Severity::Warning),
        (Some("info"), Severity::Info),
        (Some("storage"), Severity::Warning),
        (Some(""), Severity::Warning),
        (None, Severity::Warning),
    ];
    for (level, expected) in cases {
        let mut message = Message::new(b"x".to_vec());
        if let Some(level) = level {
            message = message.with_property(LEVEL_PROPERTY, level);
        }
        let ticket = Ticket::build(&message, None, 1, &settings).unwrap();
        assert_eq!(ticket.severity, expected, "{level:?}");
    }
}

#[test]
fn subjects_are_one_bounded_line() {
    let cases = [
        (
            Some("critical"),
            Some("turbine-7"),
            "Critical alert from turbine-7",
        ),
        (Some("STORAGE"), Some("t"), "Storage alert from t"),
        (None, Some("t"), "Alert from t"),
        (Some("critical"), None, "Critical alert from unknown device"),
        (None, None, "Alert from unknown device"),
        (
            Some("critical"),
            Some("a\nb\"c\u{7}"),
            "Critical alert from a b\"c ",
        ),
        (Some("ünïcödé"), Some("風車"), "Ünïcödé alert from 風車"),
    ];
    for (level, device, expected) in cases {
        assert_eq!(subject(level, device), expected);
    }
    let long = subject(Some("critical"), Some(&"x".repeat(100_000)));
    assert_eq!(long.chars().count(), MAX_SUBJECT_CHARS);
    assert!(long.ends_with("x…"));
}

#[test]
fn the_key_is_the_message_id_when_it_is_safe() {
    let key = |id: &str| build(&message(b"x".to_vec()).with_message_id(id)).unwrap().key;
    assert_eq!(key("m-1"), "m-1");
    assert_eq!(key("6f1c2b-AZ_~:/"), "6f1c2b-AZ_~:/");
    assert_eq!(key(&"k".repeat(255)), "k".repeat(255));
    for unsafe_id in ["a.b", "a b", "a\nb", "ünï", &"k".repeat(256)] {
        let hashed = key(unsafe_id);
        assert!(hashed.starts_with(HASHED_KEY_PREFIX), "{unsafe_id:?}");
        assert_eq!(hashed.len(), HASHED_KEY_PREFIX.len() + 32);
        assert!(!hashed.contains('.'));
        assert_eq!(hashed, key(unsafe_id), "stable");
    }
    assert_ne!(key("a.b"), key("a.c"));
}

#[test]
fn without_a_message_id_the_key_hashes_the_content() {
    let without_id = |body: &[u8]| {
        let mut message = message(body.to_vec()).with_correlation_id("c");
        message.message_id = None;
        message
    };
    let first = Ticket::build(&without_id(b"x"), None, 1, &TicketSettings::default()).unwrap();
    let redelivered =
        Ticket::build(&without_id(b"x"), Some(UNIX_EPOCH), 5, &TicketSettings::default()).unwrap();
    assert!(first.key.starts_with(HASHED_KEY_PREFIX));
    assert_eq!(first.key.len(), HASHED_KEY_PREFIX.len() + 32);
    assert_eq!(first.key, redelivered.key);
    assert_ne!(first.key, build(&without_id(b"y")).unwrap().key);
    let other_property = without_id(b"x").with_property("zone", "north");
    assert_ne!(first.key, build(&other_property).unwrap().key);
    let mut empty_id = without_id(b"x");
    empty_id.message_id = Some(String::new());
    assert_eq!(build(&empty_id).unwrap().key, first.key);
    // Length prefixes keep field boundaries: moving a byte between fields changes the key.
    let a = without_id(b"x").with_property("ab", "c");
    let b = without_id(b"x").with_property("a", "bc");
    assert_ne!(build(&a).unwrap().key, build(&b).unwrap().key);
}

#[test]
fn oversized_messages_are_rejected() {
    let huge = message(b"{}".to_vec()).with_property("padding", "p".repeat(256 * 1024));
    let rejection = build(&huge).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::TooLarge {
            size: huge.size(),
            limit: 256 * 1024
        }
    );
    assert_eq!(rejection.reason(), "MessageTooLarge");
    // A large but allowed property is kept whole, and the subject stays bounded.
    let large = message(b"{}".to_vec()).with_property(DEVICE_ID_PROPERTY, "d".repeat(200_000));
    let ticket = build(&large).unwrap();
    assert_eq!(ticket.device_id.map(|d| d.len()), Some(200_000));
    assert_eq!(ticket.subject.chars().count(), MAX_SUBJECT_CHARS);
}

#[test]
fn json_content_types_must_parse() {
    for content_type in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/cloudevents+json",
    ] {
        let message = message(br#"[1,"two"]"#.to_vec()).with_content_type(content_type);
        check_body(message, BodyFormat::Json, serde_json::json!([1, "two"]));
    }
    check_rejected(
        message(b"{\"a\":\n  1,,}".to_vec()).with_content_type(JSON),
        "message body cannot be decoded: body is not valid JSON: key must be a string at line 2 column 5",
    );
    check_rejected(
        message(b"{\"a\":\"\xff\"}".to_vec()).with_content_type(JSON),
        "message body cannot be decoded: body is not valid UTF-8",
    );
    check_rejected(
        message(b"{}".to_vec())
            .with_content_type(JSON)
            .with_content_encoding("gzip"),
        "message body cannot be decoded: content encoding \"gzip\" is not supported for a JSON body",
    );
    check_rejected(
        message(b"{\0}".to_vec())
            .with_content_type(JSON)
            .with_content_encoding("utf-16"),
        "message body cannot be decoded: body is not valid UTF-16LE",
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        build(&message(deep).with_content_type(JSON)),
        Err(Rejection::Undecodable(_))
    ));
}

#[test]
fn utf16_utf32_and_byte_order_marks_decode() {
    let utf16: Vec<u8> = "\u{feff}{\"t\":\"é\"}"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let utf32: Vec<u8> = "{\"t\":\"é\"}"
        .chars()
        .flat_map(|c| u32::from(c).to_le_bytes())
        .collect();
    let expected = serde_json::json!({"t": "é"});
    for (body, encoding) in [
        (utf16.clone(), "utf-16"),
        (utf16, "UTF-16LE"),
        (utf32.clone(), "utf-32"),
        (utf32, "utf-32le"),
    ] {
        let message = message(body)
            .with_content_type(JSON)
            .with_content_encoding(encoding);
        check_body(message, BodyFormat::Json, expected.clone());
    }
    let bom = message(b"\xef\xbb\xbf{\"t\":1}".to_vec()).with_content_type(JSON);
    check_body(bom, BodyFormat::Json, serde_json::json!({"t": 1}));
}

#[test]
fn without_a_content_type_the_body_is_sniffed() {
    check_body(
        message(br#"{"a":1}"#.to_vec()),
        BodyFormat::Json,
        serde_json::json!({"a": 1}),
    );
    check_body(
        message(b"pump failed".to_vec()),
        BodyFormat::Text,
        "pump failed".into(),
    );
    check_body(
        message(b"\xff\x00\x01".to_vec()),
        BodyFormat::Base64,
        "/wAB".into(),
    );
    let gzip = message(br#"{"a":1}"#.to_vec()).with_content_encoding("gzip");
    check_body(gzip, BodyFormat::Base64, "eyJhIjoxfQ==".into());
}

#[test]
fn other_content_types_are_text_or_base64() {
    let plain = message(br#"{"a":1}"#.to_vec()).with_content_type("text/plain");
    check_body(plain, BodyFormat::Text, r#"{"a":1}"#.into());
    let binary = message(b"\xff\xfe".to_vec()).with_content_type("application/octet-stream");
    check_body(binary, BodyFormat::Base64, "//4=".into());
}

#[test]
fn long_bodies_are_cut_at_a_character_boundary() {
    // 9 bytes of JSON text: `["aé b"]` with a two-byte é at bytes 3-4.
    let json = message("[\"aé b\"]".as_bytes().to_vec()).with_content_type(JSON);
    let ticket = build_with_limit(&json, 4);
    assert_eq!(ticket.body, serde_json::json!("[\"a"));
    assert_eq!(
        (ticket.body_format, ticket.body_truncated),
        (BodyFormat::Text, true)
    );
    let ticket = build_with_limit(&json, 10);
    assert_eq!(
        (ticket.body_format, ticket.body_truncated),
        (BodyFormat::Json, false)
    );

    let text = message("héllo".as_bytes().to_vec()).with_content_type("text/plain");
    let ticket = build_with_limit(&text, 3);
    assert_eq!((ticket.body, ticket.body_truncated), ("hé".into(), true));

    let binary = message(vec![0xff; 10]);
    let ticket = build_with_limit(&binary, 3);
    assert_eq!((ticket.body, ticket.body_truncated), ("////".into(), true));
    assert_eq!(ticket.body_format, BodyFormat::Base64);
}

#[test]
fn times_format_as_rfc3339_with_milliseconds() {
    assert_eq!(
        rfc3339_millis(UNIX_EPOCH).as_deref(),
        Some("1970-01-01T00:00:00.000Z")
    );
    let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
    assert_eq!(rfc3339_millis(far), None);
}
