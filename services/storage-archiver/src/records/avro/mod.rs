//! Avro object container files, read one data block at a time.
//!
//! The container (Avro spec, "Object Container Files"): the magic `Obj\x01`; a header map of
//! `bytes` with `avro.schema` (JSON) and `avro.codec` (`null` when absent); a 16-byte sync marker;
//! then blocks, each a record count, a byte size, that many bytes (compressed by the codec) and
//! the sync marker again. This module reads that framing asynchronously with its own bounds and
//! hands each block to `apache-avro` to decompress and decode. Decoding goes through serde into
//! ordered pairs, so map entries keep the order they were written in (`apache-avro`'s `Value::Map`
//! is a `HashMap`).
//!
//! A file can end cleanly only where a block would start; the end anywhere else is a truncation.
//! (A file cut exactly between two blocks looks complete: the format has no trailer.)

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::str::FromStr;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::{Codec, Schema};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

mod message;

use self::message::AvroMessage;
use super::{AVRO_MAGIC, Limits, Record, RecordError};

/// The sync marker's length.
const MARKER_LEN: usize = 16;

/// The most header entries accepted (a real header has two).
const MAX_HEADER_ENTRIES: u64 = 1024;

/// Reads the records of an Avro container, block by block.
pub(super) struct AvroBlocks<S> {
    source: S,
    schema: Schema,
    codec: Codec,
    marker: [u8; MARKER_LEN],
    limits: Limits,
    /// The number of the next block (0-based).
    block: u64,
    /// The position of the next block's first record.
    position: u64,
    /// The current block's records (and errors) not yet returned.
    pending: VecDeque<Result<Record, RecordError>>,
}

impl<S> fmt::Debug for AvroBlocks<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvroBlocks")
            .field("codec", &self.codec)
            .field("block", &self.block)
            .field("position", &self.position)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncBufRead + Unpin> AvroBlocks<S> {
    /// Reads the header: magic, schema, codec and sync marker.
    pub(super) async fn open(mut source: S, limits: Limits) -> Result<Self, RecordError> {
        let in_header = || "it ends inside the Avro header".to_owned();
        let mut magic = [0u8; AVRO_MAGIC.len()];
        source
            .read_exact(&mut magic)
            .await
            .map_err(|error| cut(error, in_header))?;
        if &magic != AVRO_MAGIC {
            return Err(RecordError::Avro(
                "the file does not start with `Obj\\x01`".to_owned(),
            ));
        }
        let metadata = read_metadata(&mut source, limits.max_record_bytes).await?;
        let schema = writer_schema(&metadata)?;
        let codec = codec(&metadata)?;
        let mut marker = [0u8; MARKER_LEN];
        source
            .read_exact(&mut marker)
            .await
            .map_err(|error| cut(error, in_header))?;
        Ok(AvroBlocks {
            source,
            schema,
            codec,
            marker,
            limits,
            block: 0,
            position: 0,
            pending: VecDeque::new(),
        })
    }

    /// The next record, reading the next block when the current one is used up.
    pub(super) async fn next(&mut self) -> Result<Option<Record>, RecordError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item.map(Some);
            }
            if !self.read_block().await? {
                return Ok(None);
            }
        }
    }

    /// Reads one block into `pending`: its records, or the error that stands for those that could
    /// not be read. `false` at the end of the file. Errors returned are fatal.
    async fn read_block(&mut self) -> Result<bool, RecordError> {
        let (block, first) = (self.block, self.position);
        let Some(count) = read_long_or_end(&mut self.source).await? else {
            return Ok(false);
        };
        let inside = || format!("it ends inside Avro block {block} (records from {first})");
        let size = read_long(&mut self.source)
            .await
            .map_err(|error| cut(error, inside))?;
        let corrupt = |what: &str, value: i64| {
            RecordError::Avro(format!(
                "block {block} (records from {first}) has a negative {what} ({value})"
            ))
        };
        let count = u64::try_from(count).map_err(|_| corrupt("record count", count))?;
        let size = u64::try_from(size).map_err(|_| corrupt("size", size))?;
        self.block += 1;
        self.position = first.saturating_add(count);

        let too_large = |size: u64| RecordError::BlockTooLarge {
            block,
            position: first,
            count,
            size,
            limit: self.limits.max_block_bytes,
        };
        let limit = u64::try_from(self.limits.max_block_bytes).unwrap_or(u64::MAX);
        if size > limit {
            let error = too_large(size);
            let skipped = tokio::io::copy(&mut (&mut self.source).take(size), &mut tokio::io::sink()).await?;
            if skipped < size {
                return Err(RecordError::Truncated(inside()));
            }
            self.check_marker(block, first).await?;
            self.pending.push_back(Err(error));
            return Ok(true);
        }
        let mut data = Vec::new();
        (&mut self.source).take(size).read_to_end(&mut data).await?;
        if (data.len() as u64) < size {
            return Err(RecordError::Truncated(inside()));
        }
        self.check_marker(block, first).await?;
        self.decode_block(block, first, count, data);
        Ok(true)
    }

    /// Reads the sync marker after a block's data and checks it is the header's.
    async fn check_marker(&mut self, block: u64, first: u64) -> Result<(), RecordError> {
        let mut marker = [0u8; MARKER_LEN];
        self.source.read_exact(&mut marker).await.map_err(|error| {
            cut(error, || {
                format!("it ends inside the sync marker of Avro block {block} (records from {first})")
            })
        })?;
        if marker != self.marker {
            return Err(RecordError::Avro(format!(
                "the sync marker after block {block} (records from {first}) is not the header's: \
                 the block's record count or size is wrong"
            )));
        }
        Ok(())
    }

    /// Decompresses and decodes one block's `count` records into `pending`. A record that does not
    /// decode ends the block: the decoder cannot find the next record's start.
    fn decode_block(&mut self, block: u64, first: u64, count: u64, mut data: Vec<u8>) {
        let skipped = |message: String| RecordError::AvroRecord {
            block,
            position: first,
            message,
        };
        if let Err(error) = self.codec.decompress(&mut data) {
            let message =
                format!("decompressing the block failed ({error}); its {count} records are skipped");
            self.pending.push_back(Err(skipped(message)));
            return;
        }
        if data.len() > self.limits.max_block_bytes {
            self.pending.push_back(Err(RecordError::BlockTooLarge {
                block,
                position: first,
                count,
                size: data.len() as u64,
                limit: self.limits.max_block_bytes,
            }));
            return;
        }
        // Every IoT Hub record takes at least four bytes; a count past the size is corrupt (and
        // would otherwise loop for a long time on a schema whose records take no bytes).
        if count > data.len() as u64 {
            let message = format!("the block claims {count} records in {} bytes", data.len());
            self.pending.push_back(Err(skipped(message)));
            return;
        }
        let reader = match GenericDatumReader::builder(&self.schema)
            .human_readable(false)
            .build()
        {
            Ok(reader) => reader,
            Err(error) => {
                self.pending
                    .push_back(Err(skipped(format!("the schema is unusable: {error}"))));
                return;
            }
        };
        let mut bytes: &[u8] = &data;
        for index in 0..count {
            let position = first + index;
            match reader.read_deser::<AvroMessage>(&mut bytes) {
                Ok(message) => {
                    let record = message
                        .into_storage_record()
                        .map(|record| Record::new(position, record))
                        .map_err(|message| RecordError::AvroRecord {
                            block,
                            position,
                            message,
                        });
                    self.pending.push_back(record);
                }
                Err(error) => {
                    let rest = count - index - 1;
                    self.pending.push_back(Err(RecordError::AvroRecord {
                        block,
                        position,
                        message: format!(
                            "the record does not decode ({error}); the block's {rest} later records are skipped"
                        ),
                    }));
                    return;
                }
            }
        }
    }

    #[cfg(test)]
    pub(super) fn buffered_capacity(&self) -> usize {
        self.pending
            .iter()
            .flatten()
            .map(|record| record.message.body.capacity())
            .sum()
    }
}

/// Maps the end of the file to [`RecordError::Truncated`], saying where.
fn cut(error: io::Error, context: impl FnOnce() -> String) -> RecordError {
    match error.kind() {
        io::ErrorKind::UnexpectedEof => RecordError::Truncated(context()),
        _ => RecordError::Io(error),
    }
}

/// The header's metadata: a `map<bytes>`, each key and value at most `limit` bytes.
async fn read_metadata<S: AsyncBufRead + Unpin>(
    source: &mut S,
    limit: usize,
) -> Result<HashMap<String, Vec<u8>>, RecordError> {
    let in_header = || "it ends inside the Avro header".to_owned();
    let mut metadata = HashMap::new();
    let mut entries = 0u64;
    loop {
        let count = read_long(source).await.map_err(|error| cut(error, in_header))?;
        if count == 0 {
            return Ok(metadata);
        }
        if count < 0 {
            // A negative count is followed by the block's size in bytes, which is not needed.
            read_long(source).await.map_err(|error| cut(error, in_header))?;
        }
        let count = count.unsigned_abs();
        entries = entries.saturating_add(count);
        if entries > MAX_HEADER_ENTRIES {
            return Err(RecordError::Avro(format!(
                "the header has more than {MAX_HEADER_ENTRIES} metadata entries"
            )));
        }
        for _ in 0..count {
            let key = read_bytes(source, limit).await?;
            let key = String::from_utf8(key)
                .map_err(|_| RecordError::Avro("a header metadata key is not UTF-8".to_owned()))?;
            let value = read_bytes(source, limit).await?;
            metadata.insert(key, value);
        }
    }
}

/// A header `bytes` or `string`: a length, then that many bytes.
async fn read_bytes<S: AsyncBufRead + Unpin>(source: &mut S, limit: usize) -> Result<Vec<u8>, RecordError> {
    let in_header = || "it ends inside the Avro header".to_owned();
    let length = read_long(source).await.map_err(|error| cut(error, in_header))?;
    let length = usize::try_from(length)
        .ok()
        .filter(|length| *length <= limit)
        .ok_or_else(|| {
            RecordError::Avro(format!(
                "a header metadata entry claims {length} bytes (the limit is {limit})"
            ))
        })?;
    let mut bytes = vec![0; length];
    source
        .read_exact(&mut bytes)
        .await
        .map_err(|error| cut(error, in_header))?;
    Ok(bytes)
}

/// The schema the header declares, which must be a record (IoT Hub's is
/// `Microsoft.Azure.Devices.Message`).
fn writer_schema(metadata: &HashMap<String, Vec<u8>>) -> Result<Schema, RecordError> {
    let text = metadata
        .get("avro.schema")
        .ok_or_else(|| RecordError::Avro("the header has no `avro.schema`".to_owned()))?;
    let text = std::str::from_utf8(text)
        .map_err(|_| RecordError::Avro("the header's `avro.schema` is not UTF-8".to_owned()))?;
    let schema = Schema::parse_str(text)
        .map_err(|error| RecordError::Avro(format!("the header's `avro.schema` is invalid: {error}")))?;
    match schema {
        Schema::Record(_) => Ok(schema),
        _ => Err(RecordError::Avro(
            "the header's schema is not a record, so not IoT Hub's message schema".to_owned(),
        )),
    }
}

/// The codec the header names: `null` (also when absent) or `deflate`.
fn codec(metadata: &HashMap<String, Vec<u8>>) -> Result<Codec, RecordError> {
    let Some(name) = metadata.get("avro.codec") else {
        return Ok(Codec::Null);
    };
    let name = String::from_utf8_lossy(name);
    Codec::from_str(&name).map_err(|_| {
        RecordError::Avro(format!(
            "the header's codec `{}` is not supported (IoT Hub writes `null` or `deflate`)",
            name.escape_default()
        ))
    })
}

/// An Avro `long` (zig-zag varint) at a block boundary; `None` when the file ends cleanly there.
async fn read_long_or_end<S: AsyncBufRead + Unpin>(source: &mut S) -> Result<Option<i64>, RecordError> {
    if source.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    read_long(source)
        .await
        .map(Some)
        .map_err(|error| cut(error, || "it ends inside an Avro block's record count".to_owned()))
}

/// An Avro `long`: a zig-zag varint of at most ten bytes.
async fn read_long<S: AsyncBufRead + Unpin>(source: &mut S) -> io::Result<i64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = source.read_u8().await?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let magnitude = i64::try_from(value >> 1).unwrap_or(i64::MAX);
            return Ok(if value & 1 == 0 { magnitude } else { -magnitude - 1 });
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "an Avro varint is longer than ten bytes",
    ))
}
