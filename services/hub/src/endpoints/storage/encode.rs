//! A batch of messages as one blob's bytes, in the endpoint's encoding.
//!
//! - **JSON**: one record per line, each ending in `\n`, written by
//!   [`iothub_protocol::storage_record::write_record`] (`EnqueuedTimeUtc`, `Properties`,
//!   `SystemProperties` under their Storage names, `Body` inline when the content type is
//!   `application/json` and the encoding `utf-8`, else base64). An empty batch is an empty blob.
//! - **Avro** / **AvroDeflate**: an Avro object container file with IoT Hub's schema
//!   ([`AVRO_SCHEMA`]), written by `apache-avro`; `AvroDeflate` compresses its blocks with the
//!   `deflate` codec. The same four fields, except that `Body` holds the body's bytes as they are
//!   (`null` when the body is empty, as the JSON record writes `null`), and a property without a
//!   value is written as `""` because an Avro `map<string>` cannot hold a null. Duplicate property
//!   names keep the first one's place and the last one's value, as the JSON records do.
//!   An empty batch is a container with a header and no data block: a valid Avro file with no
//!   records. The header holds IoT Hub's schema text verbatim and `avro.codec` (`null` or
//!   `deflate`), in that order.
//!
//! Encoding is deterministic: the Avro sync marker is derived from the batch's content instead of
//! drawn at random, so encoding the same batch twice gives the same bytes. That lets the sink
//! recognise a blob it already wrote (a retry after a lost reply, a restart) rather than write a
//! copy under a new name.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use iothub_protocol::Message;
use iothub_protocol::storage_record::{StorageRecordError, write_record};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// IoT Hub's Avro schema for blob records: a wire format shared with the blobs' readers.
pub use iothub_protocol::storage_record::AVRO_SCHEMA;

static SCHEMA: LazyLock<Result<Schema, String>> =
    LazyLock::new(|| Schema::parse_str(AVRO_SCHEMA).map_err(|error| error.to_string()));

/// IoT Hub's Avro schema, parsed.
pub fn avro_schema() -> Result<&'static Schema, EncodeError> {
    SCHEMA.as_ref().map_err(|error| EncodeError::Avro(error.clone()))
}

/// A storage endpoint's `encoding` (ARM enum `Avro`, `AvroDeflate`, `JSON`; read
/// case-insensitively). IoT Hub's default is Avro.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Avro object container, no compression.
    #[default]
    Avro,
    /// Avro object container, deflate-compressed blocks.
    AvroDeflate,
    /// JSON, one record per line.
    Json,
}

impl Encoding {
    /// The ARM spelling: `Avro`, `AvroDeflate`, `JSON`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Avro => "Avro",
            Encoding::AvroDeflate => "AvroDeflate",
            Encoding::Json => "JSON",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoding is not one of `Avro`, `AvroDeflate`, `JSON`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encoding `{0}` (expected Avro, AvroDeflate or JSON)")]
pub struct UnknownEncoding(pub String);

impl FromStr for Encoding {
    type Err = UnknownEncoding;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Encoding::Avro, Encoding::AvroDeflate, Encoding::Json]
            .into_iter()
            .find(|encoding| encoding.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownEncoding(text.chars().take(64).collect()))
    }
}

impl Serialize for Encoding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a batch could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Message `index` (0-based in the batch) has no enqueued time: it was not stamped by the hub.
    #[error("message {index} of the batch has no enqueued time")]
    NotEnqueued {
        /// Its position in the batch.
        index: usize,
    },
    /// The Avro library refused a record (not expected with the fixed schema).
    #[error("avro: {0}")]
    Avro(String),
}

/// The blob for `messages` in `encoding`.
pub fn encode_blob(messages: &[Message], encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::Json => encode_json(messages),
        Encoding::Avro => encode_avro(messages, Codec::Null),
        Encoding::AvroDeflate => encode_avro(messages, Codec::Deflate(DeflateSettings::default())),
    }
}

/// A rough size of `message`'s record in `encoding`, for batching by `maxChunkSizeInBytes`: the
/// body (4/3 of it when it may be base64), the property names and values, and a fixed overhead for
/// field names, quoting and the stamped system properties. Not exact; never far below the truth
/// for JSON, above it for Avro.
pub fn estimated_record_size(message: &Message, encoding: Encoding) -> usize {
    const OVERHEAD: usize = 192;
    let body = match encoding {
        Encoding::Json => message.body.len().div_ceil(3) * 4,
        Encoding::Avro | Encoding::AvroDeflate => message.body.len(),
    };
    let properties: usize = message
        .endpoint_app_properties()
        .map(|(name, value)| name.len() + value.map_or(0, str::len) + 6)
        .sum();
    let system: usize = message
        .storage_system_properties()
        .iter()
        .map(|(name, value)| name.len() + value.len() + 6)
        .sum();
    OVERHEAD + body + properties + system
}

fn encode_json(messages: &[Message]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.body.len() * 2 + 256).sum());
    for (index, message) in messages.iter().enumerate() {
        write_record(message, &mut out).map_err(|error| match error {
            StorageRecordError::NotEnqueued => EncodeError::NotEnqueued { index },
            other => EncodeError::Avro(other.to_string()),
        })?;
    }
    Ok(out)
}

fn encode_avro(messages: &[Message], codec: Codec) -> Result<Vec<u8>, EncodeError> {
    let schema = avro_schema()?;
    let avro = |error: apache_avro::Error| EncodeError::Avro(error.to_string());
    let marker = sync_marker(messages);
    let capacity = messages.iter().map(|m| m.body.len() + 256).sum::<usize>() + 1024;
    let out = container_header(codec, marker)?;
    // The header is ours (see `container_header`); the writer adds the data blocks.
    let mut writer = Writer::builder()
        .schema(schema)
        .writer(Vec::with_capacity(capacity))
        .codec(codec)
        .marker(marker)
        .has_header(true)
        .human_readable(false)
        .build()
        .map_err(avro)?;
    for (index, message) in messages.iter().enumerate() {
        let record = AvroRecord::new(message).ok_or(EncodeError::NotEnqueued { index })?;
        writer.append_ser(&record).map_err(avro)?;
    }
    let blocks = writer.into_inner().map_err(avro)?;
    let mut out = out;
    out.extend_from_slice(&blocks);
    Ok(out)
}

/// The Avro spec's schema of an object container file header.
const HEADER_SCHEMA: &str = r#"{"type":"record","name":"org.apache.avro.file.Header","fields":[{"name":"magic","type":{"type":"fixed","name":"Magic","size":4}},{"name":"meta","type":{"type":"map","values":"bytes"}},{"name":"sync","type":{"type":"fixed","name":"Sync","size":16}}]}"#;

static HEADER: LazyLock<Result<Schema, String>> =
    LazyLock::new(|| Schema::parse_str(HEADER_SCHEMA).map_err(|error| error.to_string()));

/// The container header, encoded by `apache-avro` from the spec's header schema. `apache-avro`'s
/// own `Writer` keeps the metadata in a `HashMap` and so writes it in a random order; this one is
/// fixed: `avro.schema` (IoT Hub's text, verbatim), then `avro.codec` (`null` or `deflate`, as IoT
/// Hub writes it).
fn container_header(codec: Codec, marker: [u8; 16]) -> Result<Vec<u8>, EncodeError> {
    #[derive(Serialize)]
    struct Header<'a> {
        magic: Bytes<'a>,
        meta: BytesMap<'a>,
        sync: Bytes<'a>,
    }
    let schema = HEADER
        .as_ref()
        .map_err(|error| EncodeError::Avro(error.clone()))?;
    let codec_name: &str = match codec {
        Codec::Deflate(_) => "deflate",
        _ => "null",
    };
    let header = Header {
        magic: Bytes(b"Obj\x01"),
        meta: BytesMap(&[
            ("avro.schema", AVRO_SCHEMA.as_bytes()),
            ("avro.codec", codec_name.as_bytes()),
        ]),
        sync: Bytes(&marker),
    };
    let writer = GenericDatumWriter::builder(schema)
        .build()
        .map_err(|error| EncodeError::Avro(error.to_string()))?;
    writer
        .write_ser_to_vec(&header)
        .map_err(|error| EncodeError::Avro(error.to_string()))
}

/// Ordered `name → bytes` pairs, serialized as an Avro `map<bytes>`.
struct BytesMap<'a>(&'a [(&'a str, &'a [u8])]);

impl Serialize for BytesMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &Bytes(value))?;
        }
        map.end()
    }
}

/// The container's 16-byte sync marker: the start of a SHA-256 over the batch, so that the same
/// batch always encodes to the same bytes. It only has to be unlikely to occur inside the data, so
/// it covers each body's length and first [`MARKER_BODY_PREFIX`] bytes rather than all of it
/// (hashing hundreds of megabytes per batch would cost more than the encoding).
const MARKER_BODY_PREFIX: usize = 256;

fn sync_marker(messages: &[Message]) -> [u8; 16] {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    for message in messages {
        field(
            message
                .system
                .enqueued_time
                .as_ref()
                .map_or("", |t| t.as_str())
                .as_bytes(),
        );
        for (name, value) in message.endpoint_app_properties() {
            field(name.as_bytes());
            field(value.unwrap_or("").as_bytes());
        }
        for (name, value) in message.storage_system_properties() {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        let prefix = &message.body[..message.body.len().min(MARKER_BODY_PREFIX)];
        field(&(message.body.len() as u64).to_le_bytes());
        field(prefix);
    }
    let digest = hash.finalize();
    let mut marker = [0u8; 16];
    marker.copy_from_slice(&digest[..16]);
    marker
}

/// One Avro record, serialized straight into the writer (maps keep their order).
#[derive(Serialize)]
struct AvroRecord<'a> {
    #[serde(rename = "EnqueuedTimeUtc")]
    enqueued_time_utc: &'a str,
    #[serde(rename = "Properties")]
    properties: StringMap<'a>,
    #[serde(rename = "SystemProperties")]
    system_properties: StringMap<'a>,
    #[serde(rename = "Body")]
    body: Option<Bytes<'a>>,
}

impl<'a> AvroRecord<'a> {
    /// `None` when the message has no enqueued time.
    fn new(message: &'a Message) -> Option<Self> {
        let enqueued = message.system.enqueued_time.as_ref()?;
        let properties = message
            .endpoint_app_properties()
            .map(|(name, value)| (name, value.unwrap_or("")));
        Some(AvroRecord {
            enqueued_time_utc: enqueued.as_str(),
            properties: StringMap::new(properties),
            system_properties: StringMap::new(message.storage_system_properties()),
            body: (!message.body.is_empty()).then_some(Bytes(&message.body)),
        })
    }
}

/// Ordered `name → value` pairs, duplicates merged as a JSON object merges them.
struct StringMap<'a>(Vec<(&'a str, &'a str)>);

impl<'a> StringMap<'a> {
    fn new(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut merged: Vec<(&'a str, &'a str)> = Vec::new();
        for (name, value) in pairs {
            match merged.iter_mut().find(|(existing, _)| *existing == name) {
                Some(slot) => slot.1 = value,
                None => merged.push((name, value)),
            }
        }
        StringMap(merged)
    }
}

impl Serialize for StringMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Bytes serialized as Avro `bytes` (serde would otherwise make a sequence of integers).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}
