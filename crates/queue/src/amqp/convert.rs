//! Our [`Message`] ↔ AMQP 1.0 messages: properties, application properties, a data body; and the
//! broker's header and annotations on the way in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Header, Message as AmqpMessage, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Value};
use fe2o3_amqp_types::messaging::MessageAnnotations;
use fe2o3_amqp_types::messaging::annotations::OwnedKey;

use crate::message::Message;

/// Builds the AMQP message for `m`, with the body as one data section.
pub(crate) fn to_amqp(m: &Message) -> AmqpMessage<Data> {
    let properties = Properties {
        message_id: m.message_id.clone().map(MessageId::String),
        correlation_id: m.correlation_id.clone().map(MessageId::String),
        content_type: m.content_type.clone().map(Symbol::from),
        content_encoding: m.content_encoding.clone().map(Symbol::from),
        ..Properties::default()
    };
    let application_properties = (!m.application_properties.is_empty()).then(|| {
        let mut map = OrderedMap::new();
        for (k, v) in &m.application_properties {
            map.insert(k.clone(), SimpleValue::String(v.clone()));
        }
        ApplicationProperties(map)
    });
    AmqpMessage {
        header: Some(Header {
            durable: true,
            ..Header::default()
        }),
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties,
        body: Data(Binary::from(m.body.clone())),
        footer: None,
    }
}

/// What the broker told us about a delivery, besides the message itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryFacts {
    /// AMQP `header.delivery-count`: earlier failed deliveries.
    pub(crate) failed_deliveries: u32,
    /// `header.first-acquirer = false`: someone had it before.
    pub(crate) reacquired: bool,
}

/// Reads our message back out of an AMQP delivery of any body shape.
pub(crate) fn from_amqp(m: &AmqpMessage<Body<Value>>) -> (Message, DeliveryFacts) {
    let properties = m.properties.as_ref();
    let text = |id: Option<&MessageId>| id.map(message_id_text);
    let message = Message {
        body: body_bytes(&m.body),
        message_id: text(properties.and_then(|p| p.message_id.as_ref())),
        correlation_id: text(properties.and_then(|p| p.correlation_id.as_ref())),
        content_type: properties
            .and_then(|p| p.content_type.as_ref())
            .map(|s| s.as_str().to_owned()),
        content_encoding: properties
            .and_then(|p| p.content_encoding.as_ref())
            .map(|s| s.as_str().to_owned()),
        application_properties: m
            .application_properties
            .as_ref()
            .map(|props| props.0.iter().map(|(k, v)| (k.clone(), simple_text(v))).collect())
            .unwrap_or_default(),
    };
    let facts = m
        .header
        .as_ref()
        .map(|h| DeliveryFacts {
            failed_deliveries: h.delivery_count,
            reacquired: !h.first_acquirer,
        })
        .unwrap_or_default();
    (message, facts)
}

fn body_bytes(body: &Body<Value>) -> Vec<u8> {
    match body {
        Body::Data(sections) => sections.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(value) => match &value.0 {
            Value::Binary(b) => b.to_vec(),
            Value::String(s) => s.clone().into_bytes(),
            // Another client sent a structured value: keep it, AMQP-encoded, rather than drop it.
            other => serde_amqp::to_vec(other).unwrap_or_default(),
        },
        Body::Sequence(sequences) => {
            serde_amqp::to_vec(&sequences.iter().map(|s| &s.0).collect::<Vec<_>>()).unwrap_or_default()
        }
        Body::Empty => Vec::new(),
    }
}

fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from_bytes(u.clone().into_inner()).to_string(),
        MessageId::Binary(b) => b.iter().map(|byte| format!("{byte:02x}")).collect(),
    }
}

/// The text form of a non-string application property.
fn simple_text(value: &SimpleValue) -> String {
    match value {
        SimpleValue::String(s) => s.clone(),
        SimpleValue::Symbol(s) => s.as_str().to_owned(),
        SimpleValue::Bool(b) => b.to_string(),
        SimpleValue::Ubyte(n) => n.to_string(),
        SimpleValue::Ushort(n) => n.to_string(),
        SimpleValue::Uint(n) => n.to_string(),
        SimpleValue::Ulong(n) => n.to_string(),
        SimpleValue::Byte(n) => n.to_string(),
        SimpleValue::Short(n) => n.to_string(),
        SimpleValue::Int(n) => n.to_string(),
        SimpleValue::Long(n) => n.to_string(),
        SimpleValue::Float(n) => n.to_string(),
        SimpleValue::Double(n) => n.to_string(),
        SimpleValue::Timestamp(t) => t.milliseconds().to_string(),
        SimpleValue::Uuid(u) => uuid::Uuid::from_bytes(u.clone().into_inner()).to_string(),
        SimpleValue::Null => String::new(),
        other => format!("{other:?}"),
    }
}

/// A timestamp annotation (`x-opt-enqueued-time`, `x-opt-locked-until`).
pub(crate) fn annotation_time(annotations: Option<&MessageAnnotations>, key: &str) -> Option<SystemTime> {
    match annotation(annotations, key)? {
        Value::Timestamp(t) => Some(timestamp_to_system_time(t)),
        _ => None,
    }
}

/// An integer annotation (`x-opt-sequence-number`).
pub(crate) fn annotation_long(annotations: Option<&MessageAnnotations>, key: &str) -> Option<i64> {
    match annotation(annotations, key)? {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        Value::Ulong(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

fn annotation<'a>(annotations: Option<&'a MessageAnnotations>, key: &str) -> Option<&'a Value> {
    annotations?.0.get(&OwnedKey::Symbol(Symbol::from(key)))
}

pub(crate) fn timestamp_to_system_time(t: &Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(t.milliseconds()).unwrap_or(0))
}

pub(crate) fn system_time_to_timestamp(t: SystemTime) -> Timestamp {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_milliseconds(ms)
}
