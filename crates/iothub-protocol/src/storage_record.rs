//! The Storage (blob) endpoint's JSON records: one JSON object per line.
//!
//! ```text
//! {"EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{"level":"storage"},
//!  "SystemProperties":{"connectionDeviceId":"d1","connectionAuthMethod":"{…}",
//!    "connectionDeviceGenerationId":"6369…","contentType":"application/json",
//!    "contentEncoding":"utf-8","enqueuedTime":"2019-05-10T06:06:32.7220000Z"},
//!  "Body":{"temp":49.91}}
//! ```
//!
//! `Body` is the body inlined as JSON when the content type is `application/json` and the content
//! encoding `utf-8` (both case-insensitive, DOC-EP), otherwise base64. Inline bodies are re-written
//! compactly (one line per record), so their bytes may differ from the device's; a body that claims
//! JSON but does not parse is written as base64. An empty body is written as `null`.
//!
//! Reading is tolerant: `\n` or `\r\n`, blank lines skipped, missing fields empty, non-string
//! property values turned into text. A string `Body` is taken as inline JSON when the record's own
//! content type and encoding say so, and as base64 otherwise.
//!
//! Avro and AvroDeflate blobs hold the same four fields under IoT Hub's schema, [`AVRO_SCHEMA`]
//! (an Avro object container file whose header carries that text verbatim).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::message::{CREATION_TIME_PROPERTY, Message, SystemProperty};
use crate::timestamp::{Timestamp, TimestampError};

/// IoT Hub's Avro schema for blob records (spec §6, from a blob pasted in azure-docs #11269): the
/// writer puts this text verbatim in the header of `Avro` / `AvroDeflate` blobs, and readers decode
/// records with it. `Body` is the body's bytes (`null` when empty); a property without a value is
/// written as `""`, as an Avro `map<string>` cannot hold a null.
pub const AVRO_SCHEMA: &str = r#"{"type":"record","name":"Message","namespace":"Microsoft.Azure.Devices","fields":[{"name":"EnqueuedTimeUtc","type":"string"},{"name":"Properties","type":{"type":"map","values":"string"}},{"name":"SystemProperties","type":{"type":"map","values":"string"}},{"name":"Body","type":["null","bytes"]}]}"#;

/// Why a record could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StorageRecordError {
    /// Writing needs the hub's `enqueuedTime` stamp.
    #[error("the message has no enqueued time")]
    NotEnqueued,
    /// The line is not a JSON object.
    #[error("the storage record is not a JSON object: {0}")]
    NotJson(String),
    /// `EnqueuedTimeUtc` is not a timestamp.
    #[error("the storage record's EnqueuedTimeUtc is invalid: {0}")]
    EnqueuedTime(TimestampError),
    /// A field has the wrong JSON type.
    #[error("the storage record's `{0}` has the wrong type")]
    WrongType(&'static str),
    /// `Body` is a string that is not base64.
    #[error("the storage record's Body is not base64")]
    BodyNotBase64,
}

/// A record read back from a blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageRecord {
    /// `EnqueuedTimeUtc`, when present.
    pub enqueued_time_utc: Option<Timestamp>,
    /// `Properties`: application properties (enrichments included), in order.
    pub properties: Vec<(String, Option<String>)>,
    /// `SystemProperties`, by Storage name, in order.
    pub system_properties: Vec<(String, String)>,
    /// `Body`, as bytes.
    pub body: Vec<u8>,
}

/// Whether a body with these properties is inlined as JSON.
pub fn body_is_inline_json(content_type: Option<&str>, content_encoding: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"))
        && content_encoding.is_some_and(|ce| ce.trim().eq_ignore_ascii_case("utf-8"))
}

/// Appends `message`'s record and a `\n` to `out`.
pub fn write_record(message: &Message, out: &mut Vec<u8>) -> Result<(), StorageRecordError> {
    let record = to_value(message)?;
    // Writing a `Value` into a `Vec` cannot fail; the error maps to a harmless variant.
    serde_json::to_writer(&mut *out, &record).map_err(|e| StorageRecordError::NotJson(e.to_string()))?;
    out.push(b'\n');
    Ok(())
}

/// `message`'s record as a JSON value (keys in IoT Hub's order).
pub fn to_value(message: &Message) -> Result<Value, StorageRecordError> {
    let enqueued = message
        .system
        .enqueued_time
        .ok_or(StorageRecordError::NotEnqueued)?;
    let properties: Map<String, Value> = message
        .endpoint_app_properties()
        .map(|(name, value)| (name.to_owned(), optional_text(value)))
        .collect();
    let system: Map<String, Value> = message
        .storage_system_properties()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())))
        .collect();
    let mut record = Map::new();
    record.insert(
        "EnqueuedTimeUtc".into(),
        Value::String(enqueued.as_str().to_owned()),
    );
    record.insert("Properties".into(), Value::Object(properties));
    record.insert("SystemProperties".into(), Value::Object(system));
    record.insert("Body".into(), body_value(message));
    Ok(Value::Object(record))
}

fn body_value(message: &Message) -> Value {
    if message.body.is_empty() {
        return Value::Null;
    }
    let system = &message.system;
    if body_is_inline_json(system.content_type.as_deref(), system.content_encoding.as_deref()) {
        let text = message
            .body
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&message.body);
        if let Ok(value) = serde_json::from_slice::<Value>(text) {
            return value;
        }
    }
    Value::String(STANDARD.encode(&message.body))
}

fn optional_text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |value| Value::String(value.to_owned()))
}

/// Reads every record of a blob: `(line number, record)` for each non-blank line, 1-based.
pub fn parse_records(
    text: &str,
) -> impl Iterator<Item = (usize, Result<StorageRecord, StorageRecordError>)> + '_ {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, StorageRecord::parse(line)))
}

impl StorageRecord {
    /// Reads one record.
    pub fn parse(line: &str) -> Result<Self, StorageRecordError> {
        let value: Value =
            serde_json::from_str(line.trim()).map_err(|e| StorageRecordError::NotJson(e.to_string()))?;
        let Value::Object(mut record) = value else {
            return Err(StorageRecordError::NotJson("not an object".to_owned()));
        };
        let enqueued_time_utc = match record.remove("EnqueuedTimeUtc") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(Timestamp::parse(&text).map_err(StorageRecordError::EnqueuedTime)?)
            }
            Some(_) => return Err(StorageRecordError::WrongType("EnqueuedTimeUtc")),
        };
        let properties = map_field(&mut record, "Properties")?;
        let system_properties: Vec<(String, String)> = map_field(&mut record, "SystemProperties")?
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .collect();
        let system = |name: &str| {
            system_properties
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let inline = body_is_inline_json(system("contentType"), system("contentEncoding"));
        let body = match record.remove("Body") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(text)) if !inline => STANDARD
                .decode(text)
                .map_err(|_| StorageRecordError::BodyNotBase64)?,
            Some(value) => value.to_string().into_bytes(),
        };
        Ok(StorageRecord {
            enqueued_time_utc,
            properties,
            system_properties,
            body,
        })
    }

    /// The record as a message: system properties by Storage name, `iothub-creation-time-utc`
    /// back to the creation time, other properties as application properties.
    pub fn to_message(&self) -> Message {
        let mut message = Message::new(self.body.clone());
        for (name, value) in &self.system_properties {
            let property = SystemProperty::ALL
                .into_iter()
                .find(|p| p.storage_name() == Some(name.as_str()));
            match property {
                Some(SystemProperty::EnqueuedTime) => {
                    message.system.enqueued_time = Timestamp::parse(value).ok().or(self.enqueued_time_utc);
                }
                Some(property) => {
                    message.system.set(property, Some(value.clone()));
                }
                None => {}
            }
        }
        if message.system.enqueued_time.is_none() {
            message.system.enqueued_time = self.enqueued_time_utc;
        }
        for (name, value) in &self.properties {
            if name == CREATION_TIME_PROPERTY && value.is_some() {
                message.system.creation_time = value.clone();
            } else {
                message.app_properties.push((name.clone(), value.clone()));
            }
        }
        message
    }
}

/// A `{name: value}` field as ordered pairs; scalars become text, `null` stays `None`.
fn map_field(
    record: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Vec<(String, Option<String>)>, StorageRecordError> {
    match record.remove(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::Null => None,
                    Value::String(text) => Some(text),
                    other => Some(other.to_string()),
                };
                (name, value)
            })
            .collect()),
        Some(_) => Err(StorageRecordError::WrongType(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_avro_schema_is_iot_hubs_message_record() {
        let schema: Value = serde_json::from_str(AVRO_SCHEMA).unwrap();
        assert_eq!(schema["type"], "record");
        assert_eq!(schema["name"], "Message");
        assert_eq!(schema["namespace"], "Microsoft.Azure.Devices");
        let fields: Vec<&str> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|field| field["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["EnqueuedTimeUtc", "Properties", "SystemProperties", "Body"]
        );
    }
}
