//! One IoT Hub Avro record, decoded through serde by field name into ordered pairs.

use std::fmt;

use iothub_protocol::Timestamp;
use iothub_protocol::storage_record::StorageRecord;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One IoT Hub Avro record, decoded by field name so that a schema with extra, missing or
/// reordered fields still reads.
#[derive(Debug, Default)]
pub(super) struct AvroMessage {
    enqueued_time_utc: Option<String>,
    properties: Vec<(String, Option<String>)>,
    system_properties: Vec<(String, Option<String>)>,
    body: Vec<u8>,
}

impl AvroMessage {
    /// The same record as a JSON line would give; an `EnqueuedTimeUtc` that is not a timestamp is
    /// refused, as the JSON parser refuses it.
    pub(super) fn into_storage_record(self) -> Result<StorageRecord, String> {
        let enqueued_time_utc = self
            .enqueued_time_utc
            .map(|text| Timestamp::parse(&text))
            .transpose()
            .map_err(|error| format!("EnqueuedTimeUtc is invalid: {error}"))?;
        let system_properties = self
            .system_properties
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .collect();
        Ok(StorageRecord {
            enqueued_time_utc,
            properties: self.properties,
            system_properties,
            body: self.body,
        })
    }
}

impl<'de> Deserialize<'de> for AvroMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = AvroMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IoT Hub message record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AvroMessage, A::Error> {
        let mut message = AvroMessage::default();
        while let Some(FieldName(field)) = map.next_key()? {
            match field.as_str() {
                "EnqueuedTimeUtc" => message.enqueued_time_utc = map.next_value::<Text>()?.0,
                "Properties" => message.properties = map.next_value::<Pairs>()?.0,
                "SystemProperties" => message.system_properties = map.next_value::<Pairs>()?.0,
                "Body" => message.body = map.next_value::<Body>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

/// A record field's name (`apache-avro` hands them out as identifiers).
struct FieldName(String);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(FieldNameVisitor)
    }
}

struct FieldNameVisitor;

impl Visitor<'_> for FieldNameVisitor {
    type Value = FieldName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<FieldName, E> {
        Ok(FieldName(name.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, name: String) -> Result<FieldName, E> {
        Ok(FieldName(name))
    }
}

/// A string, or null; scalars become text.
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
        Ok(Text(Some(text.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text, E> {
        Ok(Text(Some(text)))
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Text, E> {
        Ok(Text(Some(String::from_utf8_lossy(bytes).into_owned())))
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Text, E> {
        Ok(Text(Some(value.to_string())))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Text, E> {
        Ok(Text(Some(value.to_string())))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Text, E> {
        Ok(Text(Some(value.to_string())))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Text, E> {
        Ok(Text(Some(value.to_string())))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Text, D::Error> {
        Text::deserialize(deserializer)
    }
}

/// A `map<string>` as ordered pairs; null is empty.
struct Pairs(Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PairsVisitor)
    }
}

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Pairs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings or null")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
        // The size hint comes from the data; it only sizes the first allocation, within reason.
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((name, value)) = map.next_entry::<String, Text>()? {
            pairs.push((name, value.0));
        }
        Ok(Pairs(pairs))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Pairs, E> {
        Ok(Pairs(Vec::new()))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Pairs, E> {
        Ok(Pairs(Vec::new()))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Pairs, D::Error> {
        Pairs::deserialize(deserializer)
    }
}

/// `null | bytes` (a string is taken as its UTF-8 bytes); null is an empty body.
struct Body(Vec<u8>);

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes or null")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Body, E> {
        Ok(Body(bytes.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Body, E> {
        Ok(Body(bytes))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Body, E> {
        Ok(Body(text.as_bytes().to_vec()))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Body, E> {
        Ok(Body(text.into_bytes()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(Body(bytes))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Body, E> {
        Ok(Body(Vec::new()))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Body, E> {
        Ok(Body(Vec::new()))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Body, D::Error> {
        Body::deserialize(deserializer)
    }
}
