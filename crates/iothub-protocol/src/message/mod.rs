//! The hub's message model: body, ordered application properties, typed system properties.
//!
//! # Durable format
//!
//! `Message` is `serde`-serializable for storage. Field names are short and stable; fields are only
//! ever added, never renamed, and readers ignore fields they do not know. In JSON:
//!
//! ```text
//! {"body":"<base64>",                       binary formats get raw bytes
//!  "app":[["level","critical"],["flag",null]],   omitted when empty; null = present without value
//!  "sys":{"mid":..,"cid":..,"uid":..,"ct":..,"ce":..,"to":..,"ctime":..,"exp":..,"on":..,
//!         "ifid":..,"schema":..,"dsch":..,"sub":..,"cdid":..,"cmid":..,"cam":..,"cgid":..,
//!         "enq":"2019-05-10T06:06:32.7220000Z","src":"deviceLifecycleEvents"}}
//! ```
//!
//! Every `sys` field is omitted when unset; `src` is omitted for `Telemetry`.

mod endpoints;
mod system;

use std::fmt;

use iothub_query::{MessageView, names_equal};
use serde::{Deserialize, Serialize};

pub use endpoints::ServiceBusProperties;
pub use system::{MessageSource, SystemProperties, SystemProperty};

/// IoT Hub's maximum device-to-cloud message size: 256 KB (DOC-MSG; the Python SDK's 262144).
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// Application property name under which the device's `$.ctime` reaches the endpoints.
pub const CREATION_TIME_PROPERTY: &str = "iothub-creation-time-utc";

/// A message as the hub routes it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The body bytes, as sent.
    #[serde(with = "body_bytes")]
    pub body: Vec<u8>,
    /// Application properties in the order received; `None` is present with a null value.
    #[serde(rename = "app", default, skip_serializing_if = "Vec::is_empty")]
    pub app_properties: Vec<(String, Option<String>)>,
    /// System properties.
    #[serde(rename = "sys", default)]
    pub system: SystemProperties,
}

impl Message {
    /// A telemetry message with this body and no properties.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Message {
            body: body.into(),
            ..Message::default()
        }
    }

    /// A message from a decoded MQTT property bag (see [`crate::mqtt::decode_property_bag`]):
    /// `$.mid`, `$.cid`, ... set system properties (a key without a value leaves it unset); every
    /// other key, `$.cdid`/`$.cmid` included, becomes an application property.
    pub fn from_property_bag(body: impl Into<Vec<u8>>, pairs: Vec<(String, Option<String>)>) -> Self {
        let mut message = Message::new(body);
        for (key, value) in pairs {
            match SystemProperty::from_mqtt_key(&key) {
                Some(property) => {
                    if value.is_some() {
                        message.system.set(property, value);
                    }
                }
                None => message.app_properties.push((key, value)),
            }
        }
        message
    }

    /// The pairs of this message's MQTT property bag, in the Python SDK's order: `$.on`, `$.mid`,
    /// `$.cid`, `$.uid`, `$.ct`, `$.ce`, `$.ifid`, `$.exp`, then `$.ctime`, `$.sub`, `$.schema`,
    /// `$.to`, then the application properties in their own order. Hub-stamped properties are left out.
    pub fn property_bag_pairs(&self) -> Vec<(&str, Option<&str>)> {
        use SystemProperty as P;
        const ORDER: [SystemProperty; 12] = [
            P::OutputName,
            P::MessageId,
            P::CorrelationId,
            P::UserId,
            P::ContentType,
            P::ContentEncoding,
            P::InterfaceId,
            P::AbsoluteExpiryTime,
            P::CreationTime,
            P::DtSubject,
            P::MessageSchema,
            P::To,
        ];
        let system = ORDER.into_iter().filter_map(|property| {
            let key = property.mqtt_key()?;
            self.system.get(property).map(|value| (key, Some(value)))
        });
        let app = self
            .app_properties
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_deref()));
        system.chain(app).collect()
    }

    /// Adds an application property at the end.
    pub fn with_app_property(mut self, name: impl Into<String>, value: Option<&str>) -> Self {
        self.app_properties.push((name.into(), value.map(str::to_owned)));
        self
    }

    /// The first application property named `name` (case-insensitively, like routing queries):
    /// `None` when absent, `Some(None)` when present with a null value.
    pub fn app_property(&self, name: &str) -> Option<Option<&str>> {
        self.app_properties
            .iter()
            .find(|(key, _)| names_equal(key, name))
            .map(|(_, value)| value.as_deref())
    }

    /// Sets application property `name`: replaces the value of the first one with that exact name,
    /// or adds it at the end.
    pub fn set_app_property(&mut self, name: &str, value: Option<String>) {
        match self.app_properties.iter_mut().find(|(key, _)| key == name) {
            Some((_, slot)) => *slot = value,
            None => self.app_properties.push((name.to_owned(), value)),
        }
    }

    /// The size IoT Hub counts against [`MAX_MESSAGE_SIZE`]: body bytes, plus the values of the
    /// system properties that are set, plus the names and values of the application properties
    /// (DOC-MSG "Message size"). Check it before the hub stamps its own properties to judge what
    /// the device sent; after stamping and enrichment to judge what an endpoint receives.
    pub fn size(&self) -> usize {
        let system: usize = self.system.iter().map(|(_, value)| value.len()).sum();
        let app: usize = self
            .app_properties
            .iter()
            .map(|(key, value)| key.len() + value.as_ref().map_or(0, String::len))
            .sum();
        self.body.len() + system + app
    }
}

/// The body is shown by length only: it may be large or sensitive.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("app_properties", &self.app_properties)
            .field("system", &self.system)
            .finish()
    }
}

impl MessageView for Message {
    fn app_property(&self, name: &str) -> Option<Option<&str>> {
        Message::app_property(self, name)
    }

    fn system_property(&self, name: &str) -> Option<Option<&str>> {
        let property = SystemProperty::from_query_name(name)?;
        self.system.get(property).map(Some)
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn content_type(&self) -> Option<&str> {
        self.system.content_type.as_deref()
    }

    fn content_encoding(&self) -> Option<&str> {
        self.system.content_encoding.as_deref()
    }
}

/// The body as base64 text in human-readable formats (JSON), as raw bytes in binary ones.
mod body_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD.encode(body))
        } else {
            serializer.serialize_bytes(body)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BodyVisitor)
        } else {
            deserializer.deserialize_byte_buf(BodyVisitor)
        }
    }

    struct BodyVisitor;

    impl<'de> Visitor<'de> for BodyVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the body as base64 text or bytes")
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<Vec<u8>, E> {
            STANDARD
                .decode(text)
                .map_err(|_| E::custom("the message body is not valid base64"))
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element::<u8>()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}
