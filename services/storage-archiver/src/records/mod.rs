//! Reading the records of one blob that IoT Hub's Storage endpoint wrote, as a stream: a blob may be
//! hundreds of megabytes, and memory stays bounded by [`Limits`] whatever its size.
//!
//! # Formats (spec `iothub-wire.md` §6)
//!
//! Both formats carry the same four fields per message: `EnqueuedTimeUtc` (IoT Hub's text,
//! `2019-05-10T06:06:32.7220000Z`), `Properties` (application properties and enrichments),
//! `SystemProperties` (keyed by their Storage names: `connectionDeviceId`, `connectionModuleId`,
//! `messageId`, `correlationId`, `contentType`, `contentEncoding`, `enqueuedTime`, `userId`,
//! `connectionDeviceGenerationId`, `connectionAuthMethod`, ...) and `Body`.
//!
//! - **JSON** (endpoint encoding `JSON`): one JSON object per line. `Body` is the body inlined as
//!   JSON when the content type is `application/json` and the encoding `utf-8`, otherwise base64.
//!   Lines end in `\n` or `\r\n`; blank lines are skipped. Each line is read by
//!   [`StorageRecord::parse`](iothub_protocol::storage_record::StorageRecord::parse), the same
//!   parser the rest of the project uses, with a bounded length ([`Limits::max_record_bytes`]).
//! - **Avro** / **AvroDeflate**: an Avro object container file — the magic `Obj\x01`, a header
//!   holding the writer's schema (IoT Hub's `Microsoft.Azure.Devices.Message` record: the four
//!   fields as `string`, `map<string>`, `map<string>`, `["null","bytes"]`) and codec (`null` or
//!   `deflate`), then data blocks of `count, size, bytes, sync marker`. This module frames the
//!   blocks itself, reading asynchronously one block at a time (at most
//!   [`Limits::max_block_bytes`]), and decodes each block's records with `apache-avro` against the
//!   schema the file declares. Map order is kept as written.
//!
//! The format is recognised from the content: a blob starting with `Obj\x01` is Avro; one whose
//! first non-blank character is `{` is JSON lines; anything else is refused
//! ([`RecordError::UnknownFormat`]). The caller's hint ([`BlobFormat::from_name`]) only names the
//! format of an empty blob.
//!
//! # Positions and errors
//!
//! A record's [`position`](Record::position) is its 0-based index in the blob: the count of
//! non-blank lines before it in JSON lines, of records in earlier blocks (and earlier in its block)
//! in Avro. A record that cannot be read keeps its position, so positions are the same however
//! often the blob is read — the index keys its rows by blob name and position.
//!
//! Errors name where they happened (line, record position, Avro block). Some leave the reader
//! usable ([`RecordError::is_fatal`] is `false`): a bad JSON line, an overlong line (skipped), an
//! Avro block that does not decode (its remaining records skipped). After a fatal error — IO, a
//! truncated blob, a corrupt Avro header or block framing, an unknown format — the reader is done.

mod avro;
mod json_lines;
#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::ops::ControlFlow;

use iothub_protocol::Message;
use iothub_protocol::storage_record::{StorageRecord, body_is_inline_json};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader, Chain};

use self::avro::AvroBlocks;
use self::json_lines::JsonLines;

/// One record of a blob, as indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The 0-based index of the record in its blob.
    pub position: u64,
    /// `EnqueuedTimeUtc` (at IoT Hub's 100 ns resolution); the system property `enqueuedTime` when
    /// the record has no `EnqueuedTimeUtc`; `None` when it has neither.
    pub enqueued_time: Option<OffsetDateTime>,
    /// The message: application properties (in the blob's order), system properties and body bytes.
    pub message: Message,
    /// The body as JSON when the message says it is JSON (content type `application/json`,
    /// encoding `utf-8`, case-insensitive) and it parses; `None` otherwise, which is not an error.
    pub body_json: Option<serde_json::Value>,
}

impl Record {
    /// The record for a parsed storage record.
    fn new(position: u64, record: StorageRecord) -> Self {
        let message = record.to_message();
        let enqueued_time = record
            .enqueued_time_utc
            .or(message.system.enqueued_time)
            .and_then(|time| OffsetDateTime::from_unix_timestamp_nanos(time.unix_nanos()).ok());
        let body_json = body_json(&message);
        Record {
            position,
            enqueued_time,
            message,
            body_json,
        }
    }
}

/// The body as JSON, when its content type and encoding say JSON and it parses. A JSON-lines body
/// that was inline arrives here as its compact JSON text, so this covers inline, base64 and Avro
/// bodies alike.
fn body_json(message: &Message) -> Option<serde_json::Value> {
    let system = &message.system;
    if message.body.is_empty()
        || !body_is_inline_json(system.content_type.as_deref(), system.content_encoding.as_deref())
    {
        return None;
    }
    let text = message
        .body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&message.body);
    serde_json::from_slice(text).ok()
}

/// A blob's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobFormat {
    /// One JSON record per line (endpoint encoding `JSON`).
    JsonLines,
    /// An Avro object container file (endpoint encoding `Avro` or `AvroDeflate`).
    Avro,
}

impl BlobFormat {
    /// The format a blob name suggests by its extension (`.avro`; `.json`, `.jsonl`, `.ndjson`),
    /// case-insensitively. IoT Hub's default names (`{iothub}/{partition}/{YYYY}/.../{mm}`) have
    /// none, so this is only a hint: the content decides.
    pub fn from_name(name: &str) -> Option<Self> {
        let (_, extension) = name.rsplit_once('.')?;
        if extension.contains('/') {
            return None;
        }
        match extension.to_ascii_lowercase().as_str() {
            "avro" => Some(BlobFormat::Avro),
            "json" | "jsonl" | "ndjson" => Some(BlobFormat::JsonLines),
            _ => None,
        }
    }
}

/// Bounds on what one read may buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest JSON line accepted (without its line ending). A message is at most 256 KB, which
    /// base64 and enrichments grow; the default, 4 MiB + 64 KiB, leaves ample room.
    pub max_record_bytes: usize,
    /// The largest Avro data block accepted, compressed and decompressed. IoT Hub and `apache-avro`
    /// write blocks of tens of kilobytes; a block holds at least one whole record.
    pub max_block_bytes: usize,
}

impl Limits {
    /// The default [`Limits::max_record_bytes`].
    pub const DEFAULT_MAX_RECORD_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;
    /// The default [`Limits::max_block_bytes`].
    pub const DEFAULT_MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
            max_block_bytes: Self::DEFAULT_MAX_BLOCK_BYTES,
        }
    }
}

/// Why records could not be read. Each names where in the blob it happened.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading the blob failed (storage, network, file system). Fatal.
    #[error("reading the blob failed: {0}")]
    Io(#[from] std::io::Error),
    /// The blob is neither an Avro object container nor JSON lines. Fatal.
    #[error(
        "the blob is neither an Avro object container file (which starts with `Obj\\x01`) nor JSON \
         lines (whose first character is `{{`): it starts with {start}"
    )]
    UnknownFormat {
        /// The first bytes, escaped.
        start: String,
    },
    /// A JSON line is not a storage record. The reader goes on with the next line.
    #[error("line {line} (record {position}): {message}")]
    Json {
        /// The 1-based line number (blank lines counted).
        line: u64,
        /// The position the record would have had.
        position: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A JSON line is longer than [`Limits::max_record_bytes`]. The reader skips it and goes on.
    #[error("line {line} (record {position}) is longer than the limit of {limit} bytes")]
    RecordTooLarge {
        /// The 1-based line number.
        line: u64,
        /// The position the record would have had.
        position: u64,
        /// The limit.
        limit: usize,
    },
    /// An Avro block is larger than [`Limits::max_block_bytes`]. The reader skips it and goes on.
    #[error(
        "Avro block {block} (records {position}..{end}) holds {size} bytes, more than the limit of \
         {limit}",
        end = position.saturating_add(*count)
    )]
    BlockTooLarge {
        /// The 0-based block number.
        block: u64,
        /// The position of its first record.
        position: u64,
        /// How many records it holds.
        count: u64,
        /// Its size (compressed, or decompressed when that is what went over).
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// An Avro record could not be decoded, or its content is invalid (say, `EnqueuedTimeUtc` is
    /// not a timestamp). When decoding failed, the rest of its block is skipped; the reader goes on
    /// with the next block.
    #[error("Avro block {block}, record {position}: {message}")]
    AvroRecord {
        /// The 0-based block number.
        block: u64,
        /// The record's position.
        position: u64,
        /// What is wrong.
        message: String,
    },
    /// The Avro container is corrupt: its header, or the framing of a block. Fatal.
    #[error("corrupt Avro file: {0}")]
    Avro(String),
    /// The blob ends in the middle of something: the Avro header, an Avro block, or a JSON line.
    /// The records before the cut were delivered. Fatal.
    #[error("the blob is truncated: {0}")]
    Truncated(String),
}

impl RecordError {
    /// Whether the reader is done after this error. When `false`, [`RecordReader::next`] goes on
    /// with the records after the bad one.
    pub fn is_fatal(&self) -> bool {
        match self {
            RecordError::Io(_)
            | RecordError::UnknownFormat { .. }
            | RecordError::Avro(_)
            | RecordError::Truncated(_) => true,
            RecordError::Json { .. }
            | RecordError::RecordTooLarge { .. }
            | RecordError::BlockTooLarge { .. }
            | RecordError::AvroRecord { .. } => false,
        }
    }
}

/// The blob's bytes, with the few sniffed at the start put back in front.
type Source<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

/// How many bytes the reader buffers from the blob.
const READ_BUFFER: usize = 64 * 1024;

/// The Avro object container magic.
const AVRO_MAGIC: &[u8; 4] = b"Obj\x01";

/// Reads a blob's records one at a time, in order, buffering at most one line or one Avro block.
///
/// ```no_run
/// # async fn example(file: tokio::fs::File) -> Result<(), storage_archiver::records::RecordError> {
/// use storage_archiver::records::{Limits, RecordReader};
///
/// let mut records = RecordReader::open(file, None, Limits::default()).await?;
/// while let Some(record) = records.next().await? {
///     let _position = record.position; // index the record...
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RecordReader<R> {
    format: BlobFormat,
    state: State<R>,
}

#[derive(Debug)]
enum State<R> {
    Json(JsonLines<Source<R>>),
    Avro(Box<AvroBlocks<Source<R>>>),
    Done,
}

impl<R: AsyncRead + Unpin> RecordReader<R> {
    /// Starts reading a blob: recognises its format from its first bytes (see the module docs;
    /// `format_hint` only names the format of an empty blob) and, for Avro, reads the header.
    pub async fn open(
        mut reader: R,
        format_hint: Option<BlobFormat>,
        limits: Limits,
    ) -> Result<Self, RecordError> {
        let (head, sniffed) = sniff(&mut reader).await?;
        let source = BufReader::with_capacity(READ_BUFFER, Cursor::new(head).chain(reader));
        let (format, state) = match sniffed {
            Sniffed::Empty => (format_hint.unwrap_or(BlobFormat::JsonLines), State::Done),
            Sniffed::JsonLines => (BlobFormat::JsonLines, State::Json(JsonLines::new(source, limits))),
            Sniffed::Avro => (
                BlobFormat::Avro,
                State::Avro(Box::new(AvroBlocks::open(source, limits).await?)),
            ),
        };
        Ok(RecordReader { format, state })
    }

    /// The blob's format.
    pub fn format(&self) -> BlobFormat {
        self.format
    }

    /// The next record, or `None` at the end of the blob (or after a fatal error). After an error
    /// that is not [fatal](RecordError::is_fatal), calling again goes on with the next record.
    pub async fn next(&mut self) -> Result<Option<Record>, RecordError> {
        let result = match &mut self.state {
            State::Json(lines) => lines.next().await,
            State::Avro(blocks) => blocks.next().await,
            State::Done => return Ok(None),
        };
        match &result {
            Ok(None) => self.state = State::Done,
            Err(error) if error.is_fatal() => self.state = State::Done,
            _ => {}
        }
        result
    }

    /// The capacity of the buffers the reader holds (read buffer, line or block), for tests of
    /// bounded memory.
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        match &self.state {
            State::Json(lines) => READ_BUFFER + lines.buffered_capacity(),
            State::Avro(blocks) => READ_BUFFER + blocks.buffered_capacity(),
            State::Done => 0,
        }
    }
}

/// Reads every record of a blob in order, calling `on_record` with each until it returns
/// [`ControlFlow::Break`]. Returns how many records `on_record` was given. Stops at the first
/// error, fatal or not; use [`RecordReader`] to read past bad records.
pub async fn read_records<R: AsyncRead + Unpin>(
    reader: R,
    format_hint: Option<BlobFormat>,
    limits: Limits,
    mut on_record: impl FnMut(Record) -> ControlFlow<()>,
) -> Result<u64, RecordError> {
    let mut records = RecordReader::open(reader, format_hint, limits).await?;
    let mut count = 0;
    while let Some(record) = records.next().await? {
        count += 1;
        if on_record(record).is_break() {
            break;
        }
    }
    Ok(count)
}

/// What the first bytes of a blob say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    /// No bytes, or only whitespace.
    Empty,
    JsonLines,
    Avro,
}

/// Reads the first few bytes of the blob (at least four unless it is shorter, more while they are
/// all whitespace) and says what format they begin.
async fn sniff<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(Vec<u8>, Sniffed), RecordError> {
    const ENOUGH: usize = AVRO_MAGIC.len();
    const MAX: usize = 4096;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if head.len() >= ENOUGH {
            if head.starts_with(AVRO_MAGIC) {
                return Ok((head, Sniffed::Avro));
            }
            match first_visible(&head) {
                Some(b'{') => return Ok((head, Sniffed::JsonLines)),
                Some(_) => return Err(unknown_format(&head)),
                // Only whitespace so far: JSON lines with leading blank lines, or more to come.
                None if head.len() >= MAX => return Ok((head, Sniffed::JsonLines)),
                None => {}
            }
        }
        let read = reader.read(&mut chunk).await?;
        if read == 0 {
            return sniffed_at_end(head);
        }
        head.extend_from_slice(&chunk[..read]);
    }
}

/// The verdict on a blob that ended within the sniffed bytes.
fn sniffed_at_end(head: Vec<u8>) -> Result<(Vec<u8>, Sniffed), RecordError> {
    if head.starts_with(AVRO_MAGIC) {
        return Ok((head, Sniffed::Avro));
    }
    match first_visible(&head) {
        None => Ok((head, Sniffed::Empty)),
        Some(b'{') => Ok((head, Sniffed::JsonLines)),
        Some(_) if AVRO_MAGIC.starts_with(&head) => Err(RecordError::Truncated(format!(
            "it ends after {} bytes, inside the Avro magic `Obj\\x01`",
            head.len()
        ))),
        Some(_) => Err(unknown_format(&head)),
    }
}

/// The first byte that is not whitespace or a UTF-8 byte order mark.
fn first_visible(head: &[u8]) -> Option<u8> {
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    text.iter().copied().find(|byte| !byte.is_ascii_whitespace())
}

fn unknown_format(head: &[u8]) -> RecordError {
    RecordError::UnknownFormat {
        start: escape_start(head),
    }
}

/// The first bytes of `bytes` as escaped text, in backquotes: `` `\x89PNG\r\n` ``.
fn escape_start(bytes: &[u8]) -> String {
    const SHOWN: usize = 16;
    let shown: String = bytes[..bytes.len().min(SHOWN)].escape_ascii().to_string();
    let more = if bytes.len() > SHOWN { "..." } else { "" };
    format!("`{shown}`{more}")
}
