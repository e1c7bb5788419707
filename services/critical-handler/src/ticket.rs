//! A message taken off the critical queue → a [`Ticket`], the CRM-neutral record every template
//! renders from, or a [`Rejection`] saying why the message should be dead-lettered.
//!
//! Everything a device controls is treated as hostile: the body is decoded strictly and bounded,
//! the subject is one line of bounded length, and the idempotency key is always safe to put in an
//! HTTP header, a Standard Webhooks `webhook-id`, a Zendesk `Idempotency-Key` or a PagerDuty
//! `dedup_key`.
//!
//! ## The idempotency key
//! [`Ticket::key`] is the message id, so that redeliveries of a message make the same request.
//! A message id is used as it is only when it is 1-255 printable ASCII characters other than `.`
//! (Standard Webhooks forbids `.` in ids; HTTP header values must be visible ASCII). Any other
//! message id is replaced by `sha256-` and the first 32 hex digits of its SHA-256. A message without
//! an id (or with an empty one) gets `sha256-` and 32 hex digits of a hash over a length-prefixed
//! encoding of its device id, correlation id, content type, sorted application properties and body:
//! stable across redeliveries, but two identical messages without ids share a ticket.
//!
//! ## The body
//! - `application/json` or `<type>/<subtype>+json` (parameters ignored, case-insensitive): the body
//!   must decode (`utf-8` or no encoding, `utf-16`/`utf-16le`, `utf-32`/`utf-32le`, the latter two
//!   little-endian as .NET and IoT Hub write them; a leading byte order mark is skipped) and parse
//!   as JSON, or the message is rejected as undecodable (the error gives serde's line and column).
//! - No content type: JSON when it decodes and parses, else text when it decodes, else base64.
//! - Any other content type: text when it decodes, else base64.
//!
//! A JSON text longer than `max_body_bytes` is kept as a string of its first `max_body_bytes`
//! bytes (cut at a character boundary) with format `text`; text is cut the same way; base64 encodes
//! at most `max_body_bytes` raw bytes. `body_truncated` says when that happened.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Application property in which IoT Hub puts the sending device's id.
pub const DEVICE_ID_PROPERTY: &str = "iothub-connection-device-id";
/// Application property in which IoT Hub puts the sending module's id.
pub const MODULE_ID_PROPERTY: &str = "iothub-connection-module-id";
/// The device's own application property that says how bad it is (`critical`, ...).
pub const LEVEL_PROPERTY: &str = "level";
/// Longest idempotency key, in bytes (Stripe's and PagerDuty's limit).
pub const MAX_KEY_LEN: usize = 255;
/// Longest subject, in characters (Jira's summary takes 255).
pub const MAX_SUBJECT_CHARS: usize = 250;
/// Prefix of a key made by hashing.
pub const HASHED_KEY_PREFIX: &str = "sha256-";

/// How messages become tickets.
#[derive(Debug, Clone)]
pub struct TicketSettings {
    /// Body bytes kept in a ticket; the rest is cut off. Default 16 KiB.
    pub max_body_bytes: usize,
    /// Messages larger than this ([`queue::Message::size`]) are rejected. Default 256 KiB.
    pub max_message_bytes: usize,
    /// Severity of a message whose `level` is absent or not one of the four. Default `critical`.
    pub default_severity: Severity,
}

impl Default for TicketSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            max_message_bytes: 256 * 1024,
            default_severity: Severity::Critical,
        }
    }
}

/// How bad an alert is: PagerDuty's four severities, which the other presets map from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `critical`.
    Critical,
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `info`.
    Info,
}

impl Severity {
    /// The severity a `level` property names, case-insensitively and ignoring surrounding spaces.
    pub fn from_level(level: &str) -> Option<Self> {
        let level = level.trim();
        [Self::Critical, Self::Error, Self::Warning, Self::Info]
            .into_iter()
            .find(|severity| severity.as_str().eq_ignore_ascii_case(level))
    }

    /// The lowercase name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// What [`Ticket::body`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// A JSON value: the message body parsed.
    Json,
    /// A string: the body decoded as text (or a JSON body too long to keep whole).
    Text,
    /// A string: the body's bytes in standard base64.
    Base64,
}

impl BodyFormat {
    /// The lowercase name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Base64 => "base64",
        }
    }
}

/// One alert, ready to render into a CRM request. Serialised as the `ticket` template variable.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ticket {
    /// Idempotency key: the message id, or a hash (see the module docs). 1-255 printable ASCII
    /// characters, never `.`: safe as a header value and a Standard Webhooks `webhook-id`.
    pub key: String,
    /// One line, e.g. `Critical alert from turbine-7`; at most [`MAX_SUBJECT_CHARS`] characters.
    pub subject: String,
    /// From the `level` property, else the configured default.
    pub severity: Severity,
    /// The `level` property as received.
    pub level: Option<String>,
    /// `iothub-connection-device-id`.
    pub device_id: Option<String>,
    /// `iothub-connection-module-id`.
    pub module_id: Option<String>,
    /// When the queue accepted the message: RFC 3339 UTC with milliseconds.
    pub enqueued_time: Option<String>,
    /// The message id as received.
    pub message_id: Option<String>,
    /// The correlation id as received.
    pub correlation_id: Option<String>,
    /// The content type as received.
    pub content_type: Option<String>,
    /// The content encoding as received.
    pub content_encoding: Option<String>,
    /// All application properties as received.
    pub properties: BTreeMap<String, String>,
    /// The body: a JSON value, or a string (see [`Ticket::body_format`]).
    pub body: serde_json::Value,
    /// What `body` holds.
    pub body_format: BodyFormat,
    /// True when `body` was cut to `max_body_bytes`.
    pub body_truncated: bool,
    /// Deliveries so far, this one included.
    pub delivery_count: u32,
}

/// Why a message cannot become a ticket; it should be dead-lettered with [`Rejection::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The message is larger than `max_message_bytes`.
    #[error("message is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Body, ids and properties, in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body does not decode or parse as its content type and encoding say it should.
    #[error("message body cannot be decoded: {0}")]
    Undecodable(String),
}

impl Rejection {
    /// The dead-letter reason: `MessageTooLarge` or `UndecodableMessage`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "MessageTooLarge",
            Self::Undecodable(_) => "UndecodableMessage",
        }
    }
}

impl Ticket {
    /// Builds the ticket for a received message, or says why it must be dead-lettered.
    pub fn from_message(
        received: &queue::ReceivedMessage,
        settings: &TicketSettings,
    ) -> Result<Ticket, Rejection> {
        Self::build(
            &received.message,
            received.enqueued_time,
            received.delivery_count,
            settings,
        )
    }

    fn build(
        message: &queue::Message,
        enqueued_time: Option<SystemTime>,
        delivery_count: u32,
        settings: &TicketSettings,
    ) -> Result<Ticket, Rejection> {
        let size = message.size();
        if size > settings.max_message_bytes {
            return Err(Rejection::TooLarge {
                size,
                limit: settings.max_message_bytes,
            });
        }
        let body = decode_body(message, settings.max_body_bytes)?;
        let property = |name: &str| message.application_properties.get(name).cloned();
        let level = property(LEVEL_PROPERTY);
        let device_id = property(DEVICE_ID_PROPERTY);
        Ok(Ticket {
            key: idempotency_key(message),
            subject: subject(level.as_deref(), device_id.as_deref()),
            severity: level
                .as_deref()
                .and_then(Severity::from_level)
                .unwrap_or(settings.default_severity),
            level,
            device_id,
            module_id: property(MODULE_ID_PROPERTY),
            enqueued_time: enqueued_time.and_then(rfc3339_millis),
            message_id: message.message_id.clone(),
            correlation_id: message.correlation_id.clone(),
            content_type: message.content_type.clone(),
            content_encoding: message.content_encoding.clone(),
            properties: message.application_properties.clone(),
            body: body.value,
            body_format: body.format,
            body_truncated: body.truncated,
            delivery_count,
        })
    }
}

/// `2026-11-26T19:45:33.123Z`; `None` outside the years 0000-9999.
pub fn rfc3339_millis(time: SystemTime) -> Option<String> {
    let text = iothub_protocol::Timestamp::from_system_time(time).ok()?;
    // IoT Hub's text has seven fractional digits: keep three.
    Some(format!("{}Z", text.as_str().get(..23)?))
}

fn idempotency_key(message: &queue::Message) -> String {
    match message.message_id.as_deref() {
        Some(id) if is_plain_key(id) => id.to_owned(),
        Some(id) if !id.is_empty() => {
            let mut hash = KeyHash::new("message-id");
            hash.field(id.as_bytes());
            hash.finish()
        }
        _ => {
            let mut hash = KeyHash::new("content");
            let properties = &message.application_properties;
            hash.optional(properties.get(DEVICE_ID_PROPERTY).map(String::as_str));
            hash.optional(message.correlation_id.as_deref());
            hash.optional(message.content_type.as_deref());
            hash.count(properties.len());
            for (name, value) in properties {
                hash.field(name.as_bytes());
                hash.field(value.as_bytes());
            }
            hash.field(&message.body);
            hash.finish()
        }
    }
}

fn is_plain_key(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_KEY_LEN && id.bytes().all(|b| b.is_ascii_graphic() && b != b'.')
}

/// SHA-256 over length-prefixed fields, with a label so the two kinds of hashed key never collide.
struct KeyHash(Sha256);

impl KeyHash {
    fn new(label: &str) -> Self {
        let mut hash = Self(Sha256::new());
        hash.field(b"iot-routing ticket key v1");
        hash.field(label.as_bytes());
        hash
    }

    fn count(&mut self, n: usize) {
        self.0.update(u64::try_from(n).unwrap_or(u64::MAX).to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.0.update(bytes);
    }

    fn optional(&mut self, value: Option<&str>) {
        match value {
            None => self.0.update([0]),
            Some(value) => {
                self.0.update([1]);
                self.field(value.as_bytes());
            }
        }
    }

    fn finish(self) -> String {
        let digest = self.0.finalize();
        let mut key = String::from(HASHED_KEY_PREFIX);
        for byte in &digest[..16] {
            key.push_str(&format!("{byte:02x}"));
        }
        key
    }
}

fn subject(level: Option<&str>, device_id: Option<&str>) -> String {
    let what = match level.map(str::trim).filter(|level| !level.is_empty()) {
        Some(level) => format!("{} alert", capitalise(level)),
        None => "Alert".to_owned(),
    };
    let from = device_id.filter(|id| !id.is_empty()).unwrap_or("unknown device");
    one_line(&format!("{what} from {from}"), MAX_SUBJECT_CHARS)
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect()
    })
}

/// Control characters become spaces; text over `max` characters ends in `…` at `max`.
fn one_line(text: &str, max: usize) -> String {
    let clean = text.chars().map(|c| if c.is_control() { ' ' } else { c });
    if text.chars().count() <= max {
        clean.collect()
    } else {
        clean.take(max.saturating_sub(1)).chain(['…']).collect()
    }
}

struct Body {
    value: serde_json::Value,
    format: BodyFormat,
    truncated: bool,
}

fn decode_body(message: &queue::Message, limit: usize) -> Result<Body, Rejection> {
    let bytes = &message.body;
    let encoding = TextEncoding::parse(message.content_encoding.as_deref());
    let text = encoding.and_then(|encoding| encoding.decode(bytes));
    match message.content_type.as_deref() {
        Some(content_type) if is_json_media_type(content_type) => {
            let Some(encoding) = encoding else {
                return Err(Rejection::Undecodable(format!(
                    "content encoding {} is not supported for a JSON body",
                    excerpt(message.content_encoding.as_deref().unwrap_or_default())
                )));
            };
            let text =
                text.ok_or_else(|| Rejection::Undecodable(format!("body is not valid {}", encoding.name())))?;
            let value = serde_json::from_str(&text)
                .map_err(|error| Rejection::Undecodable(format!("body is not valid JSON: {error}")))?;
            Ok(json_body(text, value, limit))
        }
        None => Ok(match text {
            Some(text) => match serde_json::from_str(&text) {
                Ok(value) => json_body(text, value, limit),
                Err(_) => text_body(text, limit),
            },
            None => base64_body(bytes, limit),
        }),
        Some(_) => Ok(match text {
            Some(text) => text_body(text, limit),
            None => base64_body(bytes, limit),
        }),
    }
}

fn json_body(text: String, value: serde_json::Value, limit: usize) -> Body {
    if text.len() > limit {
        text_body(text, limit)
    } else {
        Body {
            value,
            format: BodyFormat::Json,
            truncated: false,
        }
    }
}

fn text_body(mut text: String, limit: usize) -> Body {
    let truncated = text.len() > limit;
    if truncated {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Body {
        value: serde_json::Value::String(text),
        format: BodyFormat::Text,
        truncated,
    }
}

fn base64_body(bytes: &[u8], limit: usize) -> Body {
    let kept = bytes.get(..limit).unwrap_or(bytes);
    Body {
        value: serde_json::Value::String(STANDARD.encode(kept)),
        format: BodyFormat::Base64,
        truncated: kept.len() < bytes.len(),
    }
}

/// `application/json`, `application/cloudevents+json; charset=utf-8`, ... (case-insensitive).
pub(crate) fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json" || (essence.contains('/') && essence.ends_with("+json"))
}

/// The text encodings IoT Hub allows for message bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextEncoding {
    Utf8,
    Utf16,
    Utf32,
}

impl TextEncoding {
    /// `None` for an encoding this service cannot decode (e.g. `gzip`).
    fn parse(content_encoding: Option<&str>) -> Option<Self> {
        let Some(name) = content_encoding.map(str::trim).filter(|name| !name.is_empty()) else {
            return Some(Self::Utf8);
        };
        match name.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "utf-16" | "utf-16le" => Some(Self::Utf16),
            "utf-32" | "utf-32le" => Some(Self::Utf32),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Utf16 => "UTF-16LE",
            Self::Utf32 => "UTF-32LE",
        }
    }

    /// The text, without a leading byte order mark; `None` when the bytes are not valid.
    fn decode(self, bytes: &[u8]) -> Option<String> {
        let text = match self {
            Self::Utf8 => std::str::from_utf8(bytes).ok()?.to_owned(),
            Self::Utf16 => {
                let (pairs, rest) = bytes.as_chunks::<2>();
                if !rest.is_empty() {
                    return None;
                }
                char::decode_utf16(pairs.iter().map(|pair| u16::from_le_bytes(*pair)))
                    .collect::<Result<String, _>>()
                    .ok()?
            }
            Self::Utf32 => {
                let (quads, rest) = bytes.as_chunks::<4>();
                if !rest.is_empty() {
                    return None;
                }
                quads
                    .iter()
                    .map(|quad| char::from_u32(u32::from_le_bytes(*quad)))
                    .collect::<Option<String>>()?
            }
        };
        Some(match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_owned(),
            None => text,
        })
    }
}

/// A device-supplied value for an error message: quoted, at most 64 characters.
fn excerpt(text: &str) -> String {
    format!("{:?}", one_line(text, 64))
}

#[cfg(test)]
mod tests {
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
}
