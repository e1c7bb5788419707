//! Events rendered the way `az iot hub monitor-events` prints them (the CLI's `common_parser.py`).
//!
//! ```text
//! {"event": {"origin": <device id>, "module": <module id or "">, "interface": <dt-dataschema or "">,
//!            "component": <dt-subject or "">,
//!            "properties": {"system": {...}, "application": {...}},   only with --props
//!            "annotations": {...},                                     only with anno/all
//!            "payload": <JSON when the content type says so, else text>}}
//! ```
//!
//! * `properties` is present (maybe `{}`) whenever any of `sys`, `app`, `anno`, `all` is asked for;
//!   `system` only when non-empty, `application` always when asked for.
//! * `system` has the AMQP properties that are set, under Python attribute names in alphabetical
//!   order (the CLI walks `dir(properties)`): `content_encoding`, `content_type`, `correlation_id`,
//!   `message_id`, `user_id`.
//! * `annotations` are the Event Hubs message annotations: the `iothub-*` stamps, `dt-*`, and the
//!   stream position (`x-opt-sequence-number`, `x-opt-offset`, `x-opt-enqueued-time`) when given.
//!   Times are epoch milliseconds.
//! * `payload` is the body decoded per the content encoding (`utf-16`, `utf-32`, else UTF-8; bytes
//!   that do not decode are replaced with U+FFFD), parsed as JSON when the content type — the
//!   `--content-type` override, else the message's — contains `application/json`; if parsing fails
//!   it stays a string. (The CLI also strips literal `\r\n` escape sequences before parsing; this
//!   does not, as that changes the payload's strings.)

use serde_json::{Map, Value};

use crate::message::{Message, SystemProperty};

/// Which parts of an event to show, like the CLI's `--props` and `--content-type`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorOptions {
    /// `sys`: AMQP system properties.
    pub system: bool,
    /// `app`: application properties.
    pub application: bool,
    /// `anno`: message annotations.
    pub annotations: bool,
    /// `--content-type`: overrides the message's content type for payload parsing.
    pub content_type: Option<String>,
}

/// A `--props` value other than `sys`, `app`, `anno`, `all`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown property set `{0}`: use sys, app, anno or all")]
pub struct UnknownPropertySet(pub String);

impl MonitorOptions {
    /// Options from `--props` values (`sys`, `app`, `anno`, `all`, case-insensitive).
    pub fn from_props<'a>(props: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownPropertySet> {
        let mut options = MonitorOptions::default();
        for prop in props {
            match prop.to_ascii_lowercase().as_str() {
                "sys" => options.system = true,
                "app" => options.application = true,
                "anno" => options.annotations = true,
                "all" => {
                    options.system = true;
                    options.application = true;
                    options.annotations = true;
                }
                _ => return Err(UnknownPropertySet(prop.to_owned())),
            }
        }
        Ok(options)
    }

    fn any(&self) -> bool {
        self.system || self.application || self.annotations
    }
}

/// Where an event sits in the events stream (Event Hubs' `x-opt-*` annotations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// `x-opt-sequence-number`.
    pub sequence_number: i64,
    /// `x-opt-offset` (a string in Event Hubs).
    pub offset: String,
}

/// The CLI's first line: `Starting event monitor,[ filtering on device: X,] use ctrl-c to stop...`.
pub fn start_banner(device_id: Option<&str>) -> String {
    match device_id {
        Some(device) => {
            format!("Starting event monitor, filtering on device: {device}, use ctrl-c to stop...")
        }
        None => "Starting event monitor, use ctrl-c to stop...".to_owned(),
    }
}

/// Renders one event as `monitor-events` does. Print it with [`to_pretty_json`].
pub fn render_event(message: &Message, position: Option<&StreamPosition>, options: &MonitorOptions) -> Value {
    let text = |value: Option<&str>| Value::String(value.unwrap_or_default().to_owned());
    let system = &message.system;
    let mut event = Map::new();
    event.insert("origin".into(), text(system.connection_device_id.as_deref()));
    event.insert("module".into(), text(system.connection_module_id.as_deref()));
    event.insert("interface".into(), text(system.dt_dataschema.as_deref()));
    event.insert("component".into(), text(system.dt_subject.as_deref()));
    if options.any() {
        let mut properties = Map::new();
        let system_properties = amqp_properties(message);
        if options.system && !system_properties.is_empty() {
            properties.insert("system".into(), Value::Object(system_properties));
        }
        if options.application {
            properties.insert("application".into(), Value::Object(application(message)));
        }
        event.insert("properties".into(), Value::Object(properties));
    }
    if options.annotations {
        event.insert(
            "annotations".into(),
            Value::Object(annotations(message, position)),
        );
    }
    let content_type = options.content_type.as_deref().or(system.content_type.as_deref());
    event.insert("payload".into(), payload(message, content_type));
    let mut root = Map::new();
    root.insert("event".into(), Value::Object(event));
    Value::Object(root)
}

/// `json.dumps(value, indent=4)`: four-space indentation, non-ASCII characters left as they are.
pub fn to_pretty_json(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    match serde::Serialize::serialize(value, &mut serializer) {
        Ok(()) => String::from_utf8(out).unwrap_or_else(|_| value.to_string()),
        Err(_) => value.to_string(),
    }
}

fn amqp_properties(message: &Message) -> Map<String, Value> {
    let system = &message.system;
    let fields = [
        ("content_encoding", &system.content_encoding),
        ("content_type", &system.content_type),
        ("correlation_id", &system.correlation_id),
        ("message_id", &system.message_id),
        ("user_id", &system.user_id),
    ];
    fields
        .into_iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref().filter(|value| !value.is_empty())?;
            Some((name.to_owned(), Value::String(value.to_owned())))
        })
        .collect()
}

fn application(message: &Message) -> Map<String, Value> {
    message
        .endpoint_app_properties()
        .map(|(name, value)| {
            (
                name.to_owned(),
                value.map_or(Value::Null, |v| Value::String(v.to_owned())),
            )
        })
        .collect()
}

fn annotations(message: &Message, position: Option<&StreamPosition>) -> Map<String, Value> {
    use SystemProperty as P;
    let system = &message.system;
    let mut annotations = Map::new();
    let mut text = |property: SystemProperty| {
        if let (Some(name), Some(value)) = (property.event_hubs_name(), system.get(property)) {
            annotations.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    };
    text(P::ConnectionDeviceId);
    text(P::ConnectionModuleId);
    text(P::ConnectionAuthMethod);
    text(P::ConnectionDeviceGenerationId);
    let enqueued = system.enqueued_time.map(|time| Value::from(time.unix_millis()));
    if let Some(millis) = &enqueued {
        annotations.insert("iothub-enqueuedtime".into(), millis.clone());
    }
    annotations.insert(
        "iothub-message-source".into(),
        Value::String(system.message_source.as_str().to_owned()),
    );
    for property in [P::DtDataSchema, P::DtSubject] {
        if let (Some(name), Some(value)) = (property.event_hubs_name(), system.get(property)) {
            annotations.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    if let Some(position) = position {
        annotations.insert(
            "x-opt-sequence-number".into(),
            Value::from(position.sequence_number),
        );
        annotations.insert("x-opt-offset".into(), Value::String(position.offset.clone()));
        if let Some(millis) = enqueued {
            annotations.insert("x-opt-enqueued-time".into(), millis);
        }
    }
    annotations
}

fn payload(message: &Message, content_type: Option<&str>) -> Value {
    let text = decode_text(&message.body, message.system.content_encoding.as_deref());
    let is_json = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("application/json"));
    if is_json && let Ok(value) = serde_json::from_str::<Value>(&text) {
        return value;
    }
    Value::String(text)
}

/// The body as text, per its declared encoding.
fn decode_text(body: &[u8], encoding: Option<&str>) -> String {
    let encoding = encoding.unwrap_or_default().to_ascii_lowercase();
    let decoded = if encoding.contains("utf-16") {
        decode_utf16(body, encoding.contains("be"))
    } else if encoding.contains("utf-32") {
        decode_utf32(body, encoding.contains("be"))
    } else {
        None
    };
    decoded.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// UTF-16, honouring a byte-order mark; little-endian by default, as .NET and Python on x86 do.
fn decode_utf16(body: &[u8], big_endian: bool) -> Option<String> {
    let (body, big_endian) = match body {
        [0xFF, 0xFE, rest @ ..] => (rest, false),
        [0xFE, 0xFF, rest @ ..] => (rest, true),
        _ => (body, big_endian),
    };
    if body.len() % 2 != 0 {
        return None;
    }
    let units = body.chunks_exact(2).map(|pair| {
        let pair = [pair[0], pair[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    char::decode_utf16(units).collect::<Result<String, _>>().ok()
}

/// UTF-32, honouring a byte-order mark; little-endian by default.
fn decode_utf32(body: &[u8], big_endian: bool) -> Option<String> {
    let (body, big_endian) = match body {
        [0xFF, 0xFE, 0, 0, rest @ ..] => (rest, false),
        [0, 0, 0xFE, 0xFF, rest @ ..] => (rest, true),
        _ => (body, big_endian),
    };
    if body.len() % 4 != 0 {
        return None;
    }
    body.chunks_exact(4)
        .map(|quad| {
            let quad = [quad[0], quad[1], quad[2], quad[3]];
            let code = if big_endian {
                u32::from_be_bytes(quad)
            } else {
                u32::from_le_bytes(quad)
            };
            char::from_u32(code)
        })
        .collect()
}
