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
mod tests;
