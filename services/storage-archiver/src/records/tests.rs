//! Blobs written here with the project's JSON record writer and `apache-avro`'s writer, read back.

use std::io;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use iothub_protocol::storage_record::{AVRO_SCHEMA, write_record};
use iothub_protocol::{Message, Timestamp};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncRead, ReadBuf};

use super::*;

const AUTH_METHOD: &str = r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#;

fn enqueued(index: usize) -> Timestamp {
    Timestamp::parse(&format!("2019-05-10T06:06:{:02}.7220000Z", index % 60)).unwrap()
}

/// A message with every field a blob record carries set.
fn full_message(index: usize) -> Message {
    let mut message = Message::new(format!(r#"{{"deviceId":"dev-{index}","windSpeed":12.5}}"#));
    message.app_properties = vec![
        ("level".to_owned(), Some("storage".to_owned())),
        ("zone".to_owned(), Some(format!("north-{index}"))),
        ("a-last".to_owned(), Some("z".to_owned())),
    ];
    let system = &mut message.system;
    system.message_id = Some(format!("mid-{index}"));
    system.correlation_id = Some(format!("cid-{index}"));
    system.user_id = Some("user-1".to_owned());
    system.content_type = Some("application/json".to_owned());
    system.content_encoding = Some("utf-8".to_owned());
    system.connection_device_id = Some(format!("dev-{index}"));
    system.connection_module_id = Some("mod-1".to_owned());
    system.connection_auth_method = Some(AUTH_METHOD.to_owned());
    system.connection_device_generation_id = Some("636930642531278483".to_owned());
    system.enqueued_time = Some(enqueued(index));
    system.creation_time = Some("2019-05-10T06:06:30.0000000Z".to_owned());
    system.dt_subject = Some("thermostat1".to_owned());
    message
}

/// A message whose body is not JSON (and says so).
fn binary_message(index: usize) -> Message {
    let mut message = Message::new(vec![0, 159, 146, 150, index as u8]);
    message.system.content_type = Some("application/octet-stream".to_owned());
    message.system.connection_device_id = Some("dev-bin".to_owned());
    message.system.enqueued_time = Some(enqueued(index));
    message
}

fn sample_messages() -> Vec<Message> {
    vec![
        full_message(0),
        binary_message(1),
        full_message(2),
        binary_message(3),
        full_message(4),
    ]
}

fn json_blob(messages: &[Message]) -> Vec<u8> {
    let mut blob = Vec::new();
    for message in messages {
        write_record(message, &mut blob).unwrap();
    }
    blob
}

/// An Avro record as IoT Hub writes it; maps keep their order.
struct AvroTestRecord {
    enqueued_time_utc: String,
    properties: Vec<(String, String)>,
    system_properties: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl From<&Message> for AvroTestRecord {
    fn from(message: &Message) -> Self {
        AvroTestRecord {
            enqueued_time_utc: message.system.enqueued_time.unwrap().as_str().to_owned(),
            properties: message
                .endpoint_app_properties()
                .map(|(name, value)| (name.to_owned(), value.unwrap_or("").to_owned()))
                .collect(),
            system_properties: message
                .storage_system_properties()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            body: (!message.body.is_empty()).then(|| message.body.clone()),
        }
    }
}

struct OrderedMap<'a>(&'a [(String, String)]);

impl Serialize for OrderedMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

struct AvroBytes<'a>(&'a [u8]);

impl Serialize for AvroBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for AvroTestRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut record = serializer.serialize_struct("Message", 4)?;
        record.serialize_field("EnqueuedTimeUtc", &self.enqueued_time_utc)?;
        record.serialize_field("Properties", &OrderedMap(&self.properties))?;
        record.serialize_field("SystemProperties", &OrderedMap(&self.system_properties))?;
        record.serialize_field("Body", &self.body.as_deref().map(AvroBytes))?;
        record.end()
    }
}

fn deflate() -> Codec {
    Codec::Deflate(DeflateSettings::default())
}

/// An Avro container of `records`; a small `block_size` makes several blocks.
fn avro_records_blob(records: &[AvroTestRecord], codec: Codec, block_size: usize) -> Vec<u8> {
    let schema = Schema::parse_str(AVRO_SCHEMA).unwrap();
    let mut writer = Writer::builder()
        .schema(&schema)
        .writer(Vec::new())
        .codec(codec)
        .block_size(block_size)
        .human_readable(false)
        .build()
        .unwrap();
    for record in records {
        writer.append_ser(record).unwrap();
    }
    writer.into_inner().unwrap()
}

fn avro_blob(messages: &[Message], codec: Codec, block_size: usize) -> Vec<u8> {
    let records: Vec<AvroTestRecord> = messages.iter().map(AvroTestRecord::from).collect();
    avro_records_blob(&records, codec, block_size)
}

/// A reader that hands out at most `chunk` bytes per read, as a network stream may.
struct Chunked {
    bytes: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl Chunked {
    fn new(bytes: Vec<u8>, chunk: usize) -> Self {
        Chunked { bytes, at: 0, chunk }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let end = this
            .bytes
            .len()
            .min(this.at + this.chunk)
            .min(this.at + buf.remaining());
        buf.put_slice(&this.bytes[this.at..end]);
        this.at = end;
        Poll::Ready(Ok(()))
    }
}

/// Every item the reader gives until it is done: records and (non-fatal, then fatal) errors.
async fn read_all<R: AsyncRead + Unpin>(reader: R, limits: Limits) -> Vec<Result<Record, RecordError>> {
    let mut records = match RecordReader::open(reader, None, limits).await {
        Ok(records) => records,
        Err(error) => return vec![Err(error)],
    };
    let mut items = Vec::new();
    loop {
        match records.next().await {
            Ok(Some(record)) => items.push(Ok(record)),
            Ok(None) => return items,
            Err(error) => {
                let fatal = error.is_fatal();
                items.push(Err(error));
                if fatal {
                    assert!(
                        records.next().await.unwrap().is_none(),
                        "a fatal error ends the reader"
                    );
                    return items;
                }
            }
        }
    }
}

async fn read_ok(blob: Vec<u8>) -> (BlobFormat, Vec<Record>) {
    let mut records = RecordReader::open(Chunked::new(blob, 7), None, Limits::default())
        .await
        .unwrap();
    let mut all = Vec::new();
    while let Some(record) = records.next().await.unwrap() {
        all.push(record);
    }
    (records.format(), all)
}

#[track_caller]
fn check_round_trip(records: &[Record], messages: &[Message]) {
    assert_eq!(records.len(), messages.len());
    for (index, (record, message)) in records.iter().zip(messages).enumerate() {
        assert_eq!(record.position, index as u64);
        assert_eq!(&record.message, message, "record {index}");
        let expected =
            OffsetDateTime::parse(message.system.enqueued_time.unwrap().as_str(), &Rfc3339).unwrap();
        assert_eq!(record.enqueued_time, Some(expected));
    }
}

#[tokio::test]
async fn json_lines_map_every_field() {
    let messages = sample_messages();
    let (format, records) = read_ok(json_blob(&messages)).await;
    assert_eq!(format, BlobFormat::JsonLines);
    check_round_trip(&records, &messages);

    let first = &records[0].message;
    assert_eq!(first.system.connection_device_id.as_deref(), Some("dev-0"));
    assert_eq!(first.system.connection_module_id.as_deref(), Some("mod-1"));
    assert_eq!(first.system.message_id.as_deref(), Some("mid-0"));
    assert_eq!(first.system.correlation_id.as_deref(), Some("cid-0"));
    assert_eq!(first.system.user_id.as_deref(), Some("user-1"));
    assert_eq!(first.system.connection_auth_method.as_deref(), Some(AUTH_METHOD));
    assert_eq!(
        first.system.creation_time.as_deref(),
        Some("2019-05-10T06:06:30.0000000Z")
    );
    assert_eq!(first.app_property("level"), Some(Some("storage")));
    assert_eq!(records[1].message.body, vec![0, 159, 146, 150, 1]);
}

#[tokio::test]
async fn avro_maps_every_field_with_both_codecs() {
    let messages = sample_messages();
    for codec in [Codec::Null, deflate()] {
        // One block for all, and blocks of about one record each.
        for block_size in [16_000, 100] {
            let (format, records) = read_ok(avro_blob(&messages, codec, block_size)).await;
            assert_eq!(format, BlobFormat::Avro);
            check_round_trip(&records, &messages);
            assert_eq!(
                records[0].message.app_properties[..3],
                messages[0].app_properties[..],
                "map order is kept"
            );
        }
    }
}

#[tokio::test]
async fn body_json_for_inline_avro_and_non_json_bodies() {
    let json_body = json!({"deviceId": "dev-0", "windSpeed": 12.5});

    // JSON lines: inline JSON body.
    let (_, records) = read_ok(json_blob(&[full_message(0)])).await;
    assert_eq!(records[0].body_json, Some(json_body.clone()));

    // JSON lines: base64 bodies — binary, and JSON text without the JSON content type.
    let mut untyped_json = full_message(1);
    untyped_json.system.content_type = None;
    let blob = json_blob(&[binary_message(0), untyped_json.clone()]);
    assert!(String::from_utf8_lossy(&blob).contains(r#""Body":"AJ+SlgA=""#));
    let (_, records) = read_ok(blob).await;
    assert_eq!(records[0].body_json, None);
    assert_eq!(records[1].body_json, None);
    assert_eq!(records[1].message.body, untyped_json.body);

    // Avro: JSON bytes with the JSON content type; not-JSON bytes claiming it are not an error.
    let mut claims_json = full_message(2);
    claims_json.body = b"not json".to_vec();
    let mut upper_case = full_message(3);
    upper_case.system.content_type = Some("Application/JSON".to_owned());
    upper_case.system.content_encoding = Some("UTF-8".to_owned());
    upper_case.body = b"\xEF\xBB\xBF[1,2]".to_vec();
    let blob = avro_blob(
        &[full_message(0), claims_json, binary_message(2), upper_case],
        deflate(),
        100,
    );
    let (_, records) = read_ok(blob).await;
    assert_eq!(records[0].body_json, Some(json_body));
    assert_eq!(records[1].body_json, None);
    assert_eq!(records[1].message.body, b"not json");
    assert_eq!(records[2].body_json, None);
    assert_eq!(records[3].body_json, Some(json!([1, 2])));
}

#[tokio::test]
async fn crlf_bom_and_blank_lines() {
    let lines = json_blob(&sample_messages()[..3]);
    let lines: Vec<&[u8]> = lines
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    let mut blob = b"\xEF\xBB\xBF\r\n  \n".to_vec();
    for line in &lines {
        blob.extend_from_slice(line);
        blob.extend_from_slice(b"\r\n\r\n \t \n");
    }
    let (_, records) = read_ok(blob.clone()).await;
    check_round_trip(&records, &sample_messages()[..3]);

    // Without a line ending after the last record.
    blob.truncate(blob.len() - b"\r\n\r\n \t \n".len());
    let (_, records) = read_ok(blob).await;
    check_round_trip(&records, &sample_messages()[..3]);
}

#[tokio::test]
async fn a_corrupt_json_line_is_named_and_skipped() {
    let good = json_blob(&[full_message(0)]);
    let mut blob = good.clone();
    blob.extend_from_slice(b"\n{\"EnqueuedTimeUtc\": \"yesterday\"}\n{not json\n\xFF\xFE{}\n");
    blob.extend_from_slice(&good);
    let items = read_all(Chunked::new(blob, 5), Limits::default()).await;
    assert_eq!(items.len(), 5);
    assert_eq!(items[0].as_ref().unwrap().position, 0);
    let messages: Vec<String> = items[1..4]
        .iter()
        .map(|item| item.as_ref().unwrap_err().to_string())
        .collect();
    assert!(messages[0].starts_with("line 3 (record 1): "), "{}", messages[0]);
    assert!(messages[0].contains("EnqueuedTimeUtc"), "{}", messages[0]);
    assert!(messages[1].starts_with("line 4 (record 2): "), "{}", messages[1]);
    assert!(
        messages[2].starts_with("line 5 (record 3): the line is not UTF-8"),
        "{}",
        messages[2]
    );
    assert!(matches!(
        items[2],
        Err(RecordError::Json {
            line: 4,
            position: 2,
            ..
        })
    ));
    assert!(!items[2].as_ref().unwrap_err().is_fatal());
    let last = items[4].as_ref().unwrap();
    assert_eq!(last.position, 4);
    assert_eq!(last.message, full_message(0));
}

#[tokio::test]
async fn a_json_blob_cut_mid_line_is_truncated() {
    let mut blob = json_blob(&sample_messages());
    blob.truncate(blob.len() - 40);
    let items = read_all(Chunked::new(blob, 1000), Limits::default()).await;
    assert_eq!(items.len(), 5);
    assert!(items[..4].iter().all(Result::is_ok));
    let error = items[4].as_ref().unwrap_err();
    assert!(matches!(error, RecordError::Truncated(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "the blob is truncated: line 5 (record 4) ends before its JSON does"
    );
}

#[tokio::test]
async fn a_truncated_avro_file_gives_the_records_before_the_cut() {
    let messages: Vec<Message> = (0..20).map(full_message).collect();
    for codec in [Codec::Null, deflate()] {
        // About two records per block.
        let blob = avro_blob(&messages, codec, 800);
        let cut = blob.len() * 3 / 4;
        let items = read_all(Chunked::new(blob[..cut].to_vec(), 4096), Limits::default()).await;
        let (last, records) = items.split_last().unwrap();
        let error = last.as_ref().unwrap_err();
        assert!(matches!(error, RecordError::Truncated(_)), "{error}");
        assert!(error.to_string().contains("inside Avro block"), "{error}");
        assert!(
            records.len() >= 5 && records.len() < 20,
            "{} records",
            records.len()
        );
        for (index, record) in records.iter().enumerate() {
            let record = record.as_ref().unwrap();
            assert_eq!(record.position, index as u64);
            assert_eq!(record.message, messages[index]);
        }
    }
}

#[tokio::test]
async fn an_avro_file_cut_in_its_header_is_truncated() {
    let blob = avro_blob(&sample_messages(), Codec::Null, 100);
    for cut in [2, 4, 30, 200] {
        let items = read_all(&blob[..cut], Limits::default()).await;
        assert_eq!(items.len(), 1);
        let error = items[0].as_ref().unwrap_err();
        assert!(
            matches!(error, RecordError::Truncated(_)),
            "cut at {cut}: {error}"
        );
    }
}

#[tokio::test]
async fn a_bad_avro_sync_marker_is_fatal() {
    let messages: Vec<Message> = (0..6).map(full_message).collect();
    let mut blob = avro_blob(&messages, Codec::Null, 1);
    let last = blob.len() - 1;
    blob[last] ^= 0xFF;
    let items = read_all(&blob[..], Limits::default()).await;
    assert_eq!(items.len(), 6);
    assert!(items[..5].iter().all(Result::is_ok));
    let error = items[5].as_ref().unwrap_err();
    assert!(matches!(error, RecordError::Avro(_)), "{error}");
    assert!(
        error.to_string().contains("after block 5 (records from 5)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_bad_avro_record_is_named_and_skipped() {
    let mut records: Vec<AvroTestRecord> = (0..4).map(|index| (&full_message(index)).into()).collect();
    records[1].enqueued_time_utc = "yesterday".to_owned();
    let blob = avro_records_blob(&records, deflate(), 16_000);
    let items = read_all(&blob[..], Limits::default()).await;
    assert_eq!(items.len(), 4);
    let error = items[1].as_ref().unwrap_err();
    assert!(
        matches!(
            error,
            RecordError::AvroRecord {
                block: 0,
                position: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("EnqueuedTimeUtc"), "{error}");
    assert_eq!(items[3].as_ref().unwrap().position, 3);
}

#[tokio::test]
async fn an_oversized_avro_block_is_skipped() {
    let mut messages: Vec<Message> = (0..4).map(full_message).collect();
    messages[2].body = vec![b'x'; 50_000];
    messages[2].system.content_type = None;
    let limits = Limits {
        max_block_bytes: 10_000,
        ..Limits::default()
    };
    for codec in [Codec::Null, deflate()] {
        let blob = avro_blob(&messages, codec, 1);
        let items = read_all(&blob[..], limits).await;
        assert_eq!(items.len(), 4);
        let error = items[2].as_ref().unwrap_err();
        assert!(
            matches!(
                error,
                RecordError::BlockTooLarge {
                    block: 2,
                    position: 2,
                    count: 1,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(items[3].as_ref().unwrap().message, messages[3]);
    }
}

#[tokio::test]
async fn random_bytes_are_neither_format() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut random: Vec<u8> = (0..10_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    random[0] = 0x89;
    let items = read_all(&random[..], Limits::default()).await;
    assert_eq!(items.len(), 1);
    let error = items[0].as_ref().unwrap_err();
    assert!(matches!(error, RecordError::UnknownFormat { .. }), "{error}");
    assert!(error.is_fatal());
    let message = error.to_string();
    assert!(
        message.contains("neither an Avro object container file"),
        "{message}"
    );
    assert!(message.contains("it starts with `\\x89"), "{message}");

    // Too short to be anything.
    let items = read_all(&b"Ob"[..], Limits::default()).await;
    assert!(matches!(items[..], [Err(RecordError::Truncated(_))]));
    let items = read_all(&b"hi"[..], Limits::default()).await;
    assert!(matches!(items[..], [Err(RecordError::UnknownFormat { .. })]));
}

#[tokio::test]
async fn an_overlong_line_is_refused_and_skipped() {
    let limits = Limits {
        max_record_bytes: 100_000,
        ..Limits::default()
    };
    let good = json_blob(&[full_message(0)]);
    let mut huge = full_message(1);
    huge.body = vec![b'y'; 200_000];
    huge.system.content_type = None;
    let mut blob = good.clone();
    blob.extend_from_slice(&json_blob(&[huge]));
    blob.extend_from_slice(&good);
    // The overlong line in the middle of the blob, and at its end without a line ending.
    let mut unterminated = blob.clone();
    unterminated.extend_from_slice(&json_blob(&[full_message(2)])[..]);
    unterminated.extend_from_slice(&vec![b'z'; 150_000]);

    let items = read_all(Chunked::new(blob, 10_000), limits).await;
    assert_eq!(items.len(), 3);
    let error = items[1].as_ref().unwrap_err();
    assert!(
        matches!(
            error,
            RecordError::RecordTooLarge {
                line: 2,
                position: 1,
                limit: 100_000
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "line 2 (record 1) is longer than the limit of 100000 bytes"
    );
    assert_eq!(items[2].as_ref().unwrap().position, 2);

    let items = read_all(Chunked::new(unterminated, 10_000), limits).await;
    assert_eq!(items.len(), 5);
    assert_eq!(items[3].as_ref().unwrap().position, 3);
    assert!(matches!(
        items[4],
        Err(RecordError::RecordTooLarge {
            line: 5,
            position: 4,
            ..
        })
    ));
}

#[tokio::test]
async fn empty_blobs_have_no_records() {
    let schema = Schema::parse_str(AVRO_SCHEMA).unwrap();
    let empty_avro = {
        let mut writer = Writer::new(&schema, Vec::new()).unwrap();
        writer.flush().unwrap();
        writer.into_inner().unwrap()
    };
    for (blob, hint, format) in [
        (Vec::new(), None, BlobFormat::JsonLines),
        (Vec::new(), Some(BlobFormat::Avro), BlobFormat::Avro),
        (b" \r\n\n".to_vec(), None, BlobFormat::JsonLines),
        (empty_avro, Some(BlobFormat::JsonLines), BlobFormat::Avro),
    ] {
        let mut records = RecordReader::open(&blob[..], hint, Limits::default())
            .await
            .unwrap();
        assert_eq!(records.format(), format);
        assert!(records.next().await.unwrap().is_none());
    }
}

#[tokio::test]
async fn read_records_calls_back_in_order_and_stops_on_break() {
    let blob = avro_blob(&sample_messages(), Codec::Null, 100);
    let mut positions = Vec::new();
    let count = read_records(&blob[..], Some(BlobFormat::Avro), Limits::default(), |record| {
        positions.push(record.position);
        if positions.len() == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await
    .unwrap();
    assert_eq!(count, 2);
    assert_eq!(positions, [0, 1]);

    let count = read_records(
        &json_blob(&sample_messages())[..],
        None,
        Limits::default(),
        |_| ControlFlow::Continue(()),
    )
    .await
    .unwrap();
    assert_eq!(count, 5);
}

#[test]
fn formats_by_name() {
    for (name, format) in [
        ("hub/0/2024/01/02/03/04.avro", Some(BlobFormat::Avro)),
        ("hub/0/2024/01/02/03/04.AVRO", Some(BlobFormat::Avro)),
        ("hub/0/2024/01/02/03/04.json", Some(BlobFormat::JsonLines)),
        ("x.jsonl", Some(BlobFormat::JsonLines)),
        ("hub/0/2024/01/02/03/04", None),
        ("hub.v2/0/2024/01/02/03/04", None),
        ("notes.txt", None),
    ] {
        assert_eq!(BlobFormat::from_name(name), format, "{name}");
    }
}

#[test]
fn the_reader_and_its_future_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let future = async {
        let mut records = RecordReader::open(&b""[..], None, Limits::default()).await?;
        records.next().await
    };
    assert_send(&future);
}

/// A blob of `total` bytes repeating `line`, generated as it is read.
struct Repeated {
    line: Vec<u8>,
    total: u64,
    served: u64,
}

impl AsyncRead for Repeated {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while buf.remaining() > 0 && this.served < this.total {
            let offset = (this.served % this.line.len() as u64) as usize;
            let left = usize::try_from(this.total - this.served).unwrap_or(usize::MAX);
            let take = (this.line.len() - offset).min(buf.remaining()).min(left);
            buf.put_slice(&this.line[offset..offset + take]);
            this.served += take as u64;
        }
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_large_blob_streams_in_bounded_memory() {
    const TOTAL: u64 = 50 * 1024 * 1024;
    let line = json_blob(&[full_message(7)]);
    let lines = TOTAL / line.len() as u64;
    let blob = Repeated {
        line: line.clone(),
        total: lines * line.len() as u64,
        served: 0,
    };
    let mut records = RecordReader::open(blob, None, Limits::default()).await.unwrap();
    let mut count = 0u64;
    let mut most_buffered = 0;
    while let Some(record) = records.next().await.unwrap() {
        assert_eq!(record.position, count);
        count += 1;
        most_buffered = most_buffered.max(records.buffered_capacity());
    }
    assert_eq!(count, lines);
    assert!(
        most_buffered < 256 * 1024,
        "the reader buffered {most_buffered} bytes"
    );
}
