//! The storage (blob) endpoint writer: blob names, JSON and Avro encodings, and the sink against a
//! local directory (here), Azurite ([`azurite`]) and a writer killed with SIGKILL mid-write
//! ([`kill`]). Connection strings and settings: [`connection`].

mod azurite;
mod connection;
mod kill;

use std::collections::HashMap;

use apache_avro::types::Value as AvroValue;
use hub::endpoints::storage::naming::with_suffix;
use hub::endpoints::storage::{
    AVRO_SCHEMA, Encoding, FileNameFormat, SinkErrorKind, StorageConnection, StorageSink, StorageSinkConfig,
    encode_blob,
};
use iothub_protocol::{Message, SystemProperty, Timestamp};

/// A well-formed key that is not the one any test account uses.
pub(crate) const SECRET_KEY: &str = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtcHJpbnRlZA==";

/// The auth method IoT Hub stamps on SAS-authenticated devices (DOC-ENRICH).
const SAS_AUTH: &str = r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#;

pub(crate) fn time(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A message as the hub hands it to an endpoint: stamped with device, auth, generation and time.
pub(crate) fn stamped(body: &[u8], device: &str, generation: &str, enqueued: &str) -> Message {
    let mut message = Message::new(body.to_vec());
    let system = &mut message.system;
    system.set(SystemProperty::ConnectionDeviceId, Some(device.to_owned()));
    system.set(SystemProperty::ConnectionAuthMethod, Some(SAS_AUTH.to_owned()));
    system.set(
        SystemProperty::ConnectionDeviceGenerationId,
        Some(generation.to_owned()),
    );
    system.enqueued_time = Some(time(enqueued));
    message
}

fn with_content(mut message: Message, content_type: &str, content_encoding: &str) -> Message {
    message
        .system
        .set(SystemProperty::ContentType, Some(content_type.to_owned()));
    message
        .system
        .set(SystemProperty::ContentEncoding, Some(content_encoding.to_owned()));
    message
}

/// A small JSON telemetry batch like the tutorial's: `n` messages, `level=storage`.
pub(crate) fn telemetry_batch(n: usize, tag: &str) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let body = format!(r#"{{"deviceId":"{tag}","windSpeed":{i}.5}}"#);
            with_content(
                stamped(
                    body.as_bytes(),
                    tag,
                    "636930642531278483",
                    "2019-05-10T06:06:32.7220000Z",
                ),
                "application/json",
                "utf-8",
            )
            .with_app_property("level", Some("storage"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Names

#[track_caller]
fn check_name(format: &str, at: &str, expect: &str) {
    let parsed = FileNameFormat::parse(format).unwrap_or_else(|e| panic!("{format}: {e}"));
    assert_eq!(
        parsed.render("ContosoTestHub", "0", time(at)),
        expect,
        "format {format}"
    );
}

#[test]
fn blob_names_follow_file_name_format() {
    let at = "2018-10-30T10:56:13.1234567Z";
    check_name(
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        at,
        "ContosoTestHub/0/2018/10/30/10/56",
    );
    assert_eq!(
        FileNameFormat::default(),
        FileNameFormat::parse("{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}").unwrap()
    );
    // Tokens in any order, literal text anywhere, an extension, tokens repeated.
    check_name(
        "{YYYY}/{MM}/{DD}/{HH}/{mm}/{partition}/{iothub}",
        at,
        "2018/10/30/10/56/0/ContosoTestHub",
    );
    check_name(
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}.json",
        at,
        "ContosoTestHub/0/2018/10/30/10/56.json",
    );
    check_name(
        "archive/{iothub}-{partition}/{YYYY}-{MM}-{DD}T{HH}{mm}.avro",
        at,
        "archive/ContosoTestHub-0/2018-10-30T1056.avro",
    );
    check_name(
        "{mm}{HH}{DD}{MM}{YYYY}{partition}{iothub}",
        at,
        "5610301020180ContosoTestHub",
    );
    check_name(
        "{iothub}/{YYYY}/{partition}/{MM}{DD}{HH}{mm}/{YYYY}",
        at,
        "ContosoTestHub/2018/0/10301056/2018",
    );
    // Midnight on New Year's Eve, UTC: the fields are zero-padded.
    check_name(
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        "2024-01-01T00:05:59.9999999Z",
        "ContosoTestHub/0/2024/01/01/00/05",
    );
    // An offset is converted to UTC first.
    check_name(
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        "2018-10-30T23:56:00+02:00",
        "ContosoTestHub/0/2018/10/30/21/56",
    );
}

#[track_caller]
fn check_format_error(format: &str, expect: &str) {
    match FileNameFormat::parse(format) {
        Ok(_) => panic!("{format} was accepted"),
        Err(error) => assert_eq!(error.to_string(), expect, "format {format}"),
    }
}

#[test]
fn bad_file_name_formats_are_refused_with_the_reason() {
    let all = "all of {iothub} {partition} {YYYY} {MM} {DD} {HH} {mm} are required";
    check_format_error(
        "{iothub}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        &format!(
            "fileNameFormat `{{iothub}}/{{YYYY}}/{{MM}}/{{DD}}/{{HH}}/{{mm}}` is missing {{partition}}: {all}"
        ),
    );
    check_format_error(
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}",
        &format!(
            "fileNameFormat `{{iothub}}/{{partition}}/{{YYYY}}/{{MM}}/{{DD}}` is missing {{HH}} {{mm}}: {all}"
        ),
    );
    check_format_error(
        "",
        &format!(
            "fileNameFormat `` is missing {{iothub}} {{partition}} {{YYYY}} {{MM}} {{DD}} {{HH}} {{mm}}: {all}"
        ),
    );
    check_format_error(
        "{iothub}/{partition}/{yyyy}/{MM}/{DD}/{HH}/{mm}",
        "fileNameFormat has an unknown token `{yyyy}` at column 22 (tokens are {iothub} {partition} {YYYY} {MM} {DD} {HH} {mm})",
    );
    check_format_error(
        "{iothub}/{partition",
        "fileNameFormat has a `{` without a closing `}` at column 10",
    );
    check_format_error(
        "{iothub}}/{partition}",
        "fileNameFormat has a `}` without an opening `{` at column 9",
    );
    check_format_error(
        "/{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        "fileNameFormat `/{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}` makes invalid blob names: a path segment is empty (leading, trailing or doubled `/`)",
    );
    check_format_error(
        "{iothub}//{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        "fileNameFormat `{iothub}//{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}` makes invalid blob names: a path segment is empty (leading, trailing or doubled `/`)",
    );
    check_format_error(
        "{iothub}/../{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        "fileNameFormat `{iothub}/../{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}` makes invalid blob names: `.` and `..` are not allowed as path segments",
    );
    check_format_error(
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}#1",
        "fileNameFormat `{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}#1` makes invalid blob names: `#` is not allowed (local uploads are staged as `name#N`)",
    );
}

#[test]
fn collision_suffixes_go_before_the_extension() {
    let cases = [
        ("hub/0/2018/10/30/10/56", 0, "hub/0/2018/10/30/10/56"),
        ("hub/0/2018/10/30/10/56", 1, "hub/0/2018/10/30/10/56_1"),
        ("hub/0/2018/10/30/10/56", 12, "hub/0/2018/10/30/10/56_12"),
        ("hub/0/2018/10/30/10/56.json", 1, "hub/0/2018/10/30/10/56_1.json"),
        (
            "hub/0/2018/10/30/10/56.tar.gz",
            2,
            "hub/0/2018/10/30/10/56.tar_2.gz",
        ),
        ("my.hub/0/2018/10/30/10/56", 1, "my.hub/0/2018/10/30/10/56_1"),
        ("hub/0/10/56/data.avro", 3, "hub/0/10/56/data_3.avro"),
        ("hub/0/10/56/.hidden", 1, "hub/0/10/56/.hidden_1"),
        ("5610301020180hub", 1, "5610301020180hub_1"),
    ];
    for (name, n, expect) in cases {
        assert_eq!(with_suffix(name, n), expect, "{name} suffix {n}");
    }
}

// ---------------------------------------------------------------------------------------------
// JSON records

#[track_caller]
fn check_json(messages: &[Message], expect: &str) {
    let blob = encode_blob(messages, Encoding::Json).unwrap();
    assert_eq!(String::from_utf8(blob).unwrap(), expect);
}

#[test]
fn json_records_are_byte_exact_for_the_spec_examples() {
    // DOC-IOTC: application/json + utf-8 → Body inline.
    let iotc = with_content(
        stamped(
            br#"{"temp":49.91,"humid":49.61,"pm25":25.87}"#,
            "<deviceid>",
            "637051167384630591",
            "2019-09-26T17:46:09.8870000Z",
        ),
        "application/json",
        "utf-8",
    );
    check_json(
        &[iotc],
        concat!(
            r#"{"EnqueuedTimeUtc":"2019-09-26T17:46:09.8870000Z","Properties":{},"SystemProperties":{"connectionDeviceId":"<deviceid>","#,
            r#""connectionAuthMethod":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\",\"acceptingIpFilterRule\":null}","#,
            r#""connectionDeviceGenerationId":"637051167384630591","contentType":"application/json","contentEncoding":"utf-8","#,
            r#""enqueuedTime":"2019-09-26T17:46:09.8870000Z"},"Body":{"temp":49.91,"humid":49.61,"pm25":25.87}}"#,
            "\n"
        ),
    );

    // DOC-ENRICH: no content type → Body base64; the route's property, then the enrichments the
    // dispatcher stamped (static value, `$iothubname`, `$twin…` kept literally when there is no twin).
    let enriched = stamped(
        br#"{"deviceId":"Contoso-Test-Device","windSpeed":11.5}"#,
        "Contoso-Test-Device",
        "636930642531278483",
        "2019-05-10T06:06:32.7220000Z",
    )
    .with_app_property("level", Some("storage"))
    .with_app_property("my IoT Hub", Some("contosotesthubmsgen3276"))
    .with_app_property("DeviceLocation", Some("$twin.tags.location"))
    .with_app_property("customerID", Some("6ce345b8-1e4a-411e-9398-d34587459a3a"));
    check_json(
        &[enriched],
        concat!(
            r#"{"EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{"level":"storage","my IoT Hub":"contosotesthubmsgen3276","#,
            r#""DeviceLocation":"$twin.tags.location","customerID":"6ce345b8-1e4a-411e-9398-d34587459a3a"},"#,
            r#""SystemProperties":{"connectionDeviceId":"Contoso-Test-Device","#,
            r#""connectionAuthMethod":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\",\"acceptingIpFilterRule\":null}","#,
            r#""connectionDeviceGenerationId":"636930642531278483","enqueuedTime":"2019-05-10T06:06:32.7220000Z"},"#,
            r#""Body":"eyJkZXZpY2VJZCI6IkNvbnRvc28tVGVzdC1EZXZpY2UiLCJ3aW5kU3BlZWQiOjExLjV9"}"#,
            "\n"
        ),
    );
}

#[test]
fn json_body_rule_content_type_and_encoding() {
    let base = |ct: Option<&str>, ce: Option<&str>, body: &[u8]| {
        let mut message = stamped(body, "d1", "1", "2019-05-10T06:06:32.7220000Z");
        message
            .system
            .set(SystemProperty::ContentType, ct.map(str::to_owned));
        message
            .system
            .set(SystemProperty::ContentEncoding, ce.map(str::to_owned));
        message
    };
    let body_of = |message: Message| {
        let blob = encode_blob(&[message], Encoding::Json).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&blob).unwrap();
        line["Body"].to_string()
    };
    let json = br#"{"a":1}"#;
    // Case-insensitive, both required.
    assert_eq!(
        body_of(base(Some("Application/JSON"), Some("UTF-8"), json)),
        r#"{"a":1}"#
    );
    assert_eq!(
        body_of(base(Some("application/json"), None, json)),
        r#""eyJhIjoxfQ==""#
    );
    assert_eq!(body_of(base(None, Some("utf-8"), json)), r#""eyJhIjoxfQ==""#);
    assert_eq!(
        body_of(base(Some("text/plain"), Some("utf-8"), json)),
        r#""eyJhIjoxfQ==""#
    );
    // azure-docs #51723: a body that claims JSON but is not → base64.
    assert_eq!(
        body_of(base(
            Some("application/json"),
            Some("utf-8"),
            b"{ Temperature: 4095}"
        )),
        r#""eyBUZW1wZXJhdHVyZTogNDA5NX0=""#
    );
    // Empty body → null.
    assert_eq!(body_of(base(None, None, b"")), "null");
}

#[test]
fn json_blob_is_one_record_per_line_and_empty_when_there_is_nothing() {
    let blob = encode_blob(&telemetry_batch(3, "d1"), Encoding::Json).unwrap();
    let text = String::from_utf8(blob).unwrap();
    assert_eq!(text.matches('\n').count(), 3);
    assert!(text.ends_with('\n'));
    let records: Vec<_> = iothub_protocol::storage_record::parse_records(&text).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[2].1.as_ref().unwrap().body,
        br#"{"deviceId":"d1","windSpeed":2.5}"#
    );

    assert_eq!(encode_blob(&[], Encoding::Json).unwrap(), b"");
}

#[test]
fn a_message_the_hub_did_not_stamp_is_refused() {
    let mut batch = telemetry_batch(2, "d1");
    batch[1].system.enqueued_time = None;
    for encoding in [Encoding::Json, Encoding::Avro, Encoding::AvroDeflate] {
        let error = encode_blob(&batch, encoding).unwrap_err();
        assert_eq!(
            error.to_string(),
            "message 1 of the batch has no enqueued time",
            "{encoding}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Avro

/// Reads an Avro blob back: (codec metadata, records as name → value).
fn read_avro(blob: &[u8]) -> (Option<String>, Vec<HashMap<String, AvroValue>>) {
    let reader = apache_avro::Reader::new(blob).unwrap();
    let expected = apache_avro::Schema::parse_str(AVRO_SCHEMA).unwrap();
    assert_eq!(reader.writer_schema().canonical_form(), expected.canonical_form());
    let codec = avro_codec(blob);
    let records = reader
        .map(|value| match value.unwrap() {
            AvroValue::Record(fields) => fields.into_iter().collect(),
            other => panic!("not a record: {other:?}"),
        })
        .collect();
    (codec, records)
}

/// The container header's `avro.codec`, read with the Avro spec's own header schema.
fn avro_codec(blob: &[u8]) -> Option<String> {
    let header = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"org.apache.avro.file.Header","fields":[
            {"name":"magic","type":{"type":"fixed","name":"Magic","size":4}},
            {"name":"meta","type":{"type":"map","values":"bytes"}},
            {"name":"sync","type":{"type":"fixed","name":"Sync","size":16}}]}"#,
    )
    .unwrap();
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&header)
        .build()
        .unwrap();
    let AvroValue::Record(fields) = reader.read_value(&mut &blob[..]).unwrap() else {
        panic!("no header");
    };
    let AvroValue::Map(meta) = &fields[1].1 else {
        panic!("no metadata")
    };
    assert!(meta.contains_key("avro.schema"));
    meta.get("avro.codec").map(|value| match value {
        AvroValue::Bytes(bytes) => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("codec {other:?}"),
    })
}

fn avro_map(value: &AvroValue) -> Vec<(String, String)> {
    let AvroValue::Map(map) = value else {
        panic!("not a map: {value:?}")
    };
    let mut pairs: Vec<(String, String)> = map
        .iter()
        .map(|(k, v)| match v {
            AvroValue::String(s) => (k.clone(), s.clone()),
            other => panic!("not a string: {other:?}"),
        })
        .collect();
    pairs.sort();
    pairs
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

#[test]
fn avro_blobs_read_back_with_iot_hubs_schema() {
    let mut flagged = stamped(
        b"\x00\x01binary\xff",
        "Contoso-Test-Device",
        "636930642531278483",
        "2019-05-10T06:06:32.7220000Z",
    )
    .with_app_property("level", Some("storage"))
    .with_app_property("flag", None);
    flagged
        .system
        .set(SystemProperty::MessageId, Some("m-1".to_owned()));
    let empty = stamped(b"", "d2", "1", "2019-05-10T06:06:33.0000000Z");
    let batch = [flagged, empty];

    for (encoding, expect_codec) in [
        (Encoding::Avro, Some("null")),
        (Encoding::AvroDeflate, Some("deflate")),
    ] {
        let blob = encode_blob(&batch, encoding).unwrap();
        assert_eq!(&blob[..4], b"Obj\x01", "{encoding}");
        let (codec, records) = read_avro(&blob);
        assert_eq!(codec.as_deref(), expect_codec, "{encoding}");
        assert_eq!(records.len(), 2);

        let first = &records[0];
        assert_eq!(
            first["EnqueuedTimeUtc"],
            AvroValue::String("2019-05-10T06:06:32.7220000Z".into())
        );
        // A property without a value is "" (an Avro map<string> has no null).
        assert_eq!(
            avro_map(&first["Properties"]),
            owned(&[("level", "storage"), ("flag", "")])
        );
        assert_eq!(
            avro_map(&first["SystemProperties"]),
            owned(&[
                ("messageId", "m-1"),
                ("connectionDeviceId", "Contoso-Test-Device"),
                ("connectionAuthMethod", SAS_AUTH),
                ("connectionDeviceGenerationId", "636930642531278483"),
                ("enqueuedTime", "2019-05-10T06:06:32.7220000Z"),
            ])
        );
        // Body: the bytes as they are, in the `bytes` branch of ["null","bytes"].
        assert_eq!(
            first["Body"],
            AvroValue::Union(1, Box::new(AvroValue::Bytes(b"\x00\x01binary\xff".to_vec())))
        );
        // An empty body is null, as in the JSON records.
        assert_eq!(records[1]["Body"], AvroValue::Union(0, Box::new(AvroValue::Null)));
    }
}

#[test]
fn avro_deflate_compresses_and_encoding_is_deterministic() {
    let batch = telemetry_batch(200, "compressible-device");
    let plain = encode_blob(&batch, Encoding::Avro).unwrap();
    let deflated = encode_blob(&batch, Encoding::AvroDeflate).unwrap();
    assert!(
        deflated.len() * 3 < plain.len(),
        "deflate {} vs {}",
        deflated.len(),
        plain.len()
    );
    assert_eq!(read_avro(&deflated).1, read_avro(&plain).1);
    // Same batch, same bytes (the sync marker comes from the content).
    assert_eq!(encode_blob(&batch, Encoding::Avro).unwrap(), plain);
    assert_eq!(encode_blob(&batch, Encoding::AvroDeflate).unwrap(), deflated);
    assert_ne!(
        encode_blob(&telemetry_batch(200, "other-device"), Encoding::Avro).unwrap(),
        plain
    );
}

#[test]
fn an_empty_avro_blob_is_a_header_with_no_records() {
    for encoding in [Encoding::Avro, Encoding::AvroDeflate] {
        let blob = encode_blob(&[], encoding).unwrap();
        assert_eq!(&blob[..4], b"Obj\x01");
        let (_, records) = read_avro(&blob);
        assert!(records.is_empty(), "{encoding}");
    }
}

#[test]
fn encodings_parse_like_arm() {
    for (text, expect) in [
        ("Avro", Encoding::Avro),
        ("avro", Encoding::Avro),
        ("AvroDeflate", Encoding::AvroDeflate),
        ("avrodeflate", Encoding::AvroDeflate),
        ("JSON", Encoding::Json),
        ("json", Encoding::Json),
    ] {
        assert_eq!(text.parse::<Encoding>().unwrap(), expect, "{text}");
    }
    assert_eq!(Encoding::default(), Encoding::Avro);
    assert_eq!(Encoding::Json.to_string(), "JSON");
    assert_eq!(
        "csv".parse::<Encoding>().unwrap_err().to_string(),
        "unknown encoding `csv` (expected Avro, AvroDeflate or JSON)"
    );
    assert_eq!(
        serde_json::from_str::<Encoding>(r#""json""#).unwrap(),
        Encoding::Json
    );
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// The local directory sink

pub(crate) fn local_sink(root: &std::path::Path, format: &str, encoding: Encoding) -> StorageSinkConfig {
    StorageSinkConfig::new(
        &format!("file://{}", root.display()),
        "storagecontainer",
        "ContosoTestHub",
        format,
        encoding,
    )
    .unwrap()
}

#[tokio::test]
async fn local_sink_writes_whole_blobs_and_never_overwrites() {
    let root = tempfile::tempdir().unwrap();
    let sink = StorageSink::connect(local_sink(
        root.path(),
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}.json",
        Encoding::Json,
    ))
    .await
    .unwrap();
    assert!(
        root.path().join("storagecontainer").is_dir(),
        "connect creates the container directory"
    );
    sink.probe().await.unwrap();

    let opened = time("2018-10-30T10:56:13.0000000Z");
    let first = telemetry_batch(3, "first");
    let written = sink.write_blob(&first, opened).await.unwrap();
    assert_eq!(written.name, "ContosoTestHub/0/2018/10/30/10/56.json");
    assert_eq!((written.records, written.already_existed), (3, false));
    let on_disk = std::fs::read(
        root.path()
            .join("storagecontainer/ContosoTestHub/0/2018/10/30/10/56.json"),
    )
    .unwrap();
    assert_eq!(on_disk, encode_blob(&first, Encoding::Json).unwrap());
    assert_eq!(written.bytes, on_disk.len());

    // A second batch opened in the same minute gets the next name; a third, the one after.
    let second = sink
        .write_blob(
            &telemetry_batch(2, "second"),
            time("2018-10-30T10:56:59.0000000Z"),
        )
        .await
        .unwrap();
    assert_eq!(second.name, "ContosoTestHub/0/2018/10/30/10/56_1.json");
    let third = sink
        .write_blob(&telemetry_batch(1, "third"), opened)
        .await
        .unwrap();
    assert_eq!(third.name, "ContosoTestHub/0/2018/10/30/10/56_2.json");

    // The first batch again (a retry whose reply was lost): recognised, not copied.
    let again = sink.write_blob(&first, opened).await.unwrap();
    assert_eq!(
        (again.name.as_str(), again.already_existed),
        ("ContosoTestHub/0/2018/10/30/10/56.json", true)
    );

    // The next minute starts a new name.
    let later = sink
        .write_blob(&telemetry_batch(1, "later"), time("2018-10-30T10:57:00.0000000Z"))
        .await
        .unwrap();
    assert_eq!(later.name, "ContosoTestHub/0/2018/10/30/10/57.json");

    let names: Vec<String> = sink
        .list_blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|blob| blob.name)
        .collect();
    assert_eq!(
        names,
        [
            "ContosoTestHub/0/2018/10/30/10/56.json",
            "ContosoTestHub/0/2018/10/30/10/56_1.json",
            "ContosoTestHub/0/2018/10/30/10/56_2.json",
            "ContosoTestHub/0/2018/10/30/10/57.json",
        ]
    );
    let second_bytes = sink.read_blob(&second.name).await.unwrap();
    let records: Vec<_> =
        iothub_protocol::storage_record::parse_records(std::str::from_utf8(&second_bytes).unwrap()).collect();
    assert_eq!(records.len(), 2);
}

// Multi-threaded: encoding goes through `block_in_place` there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sink_writes_avro_and_recreates_a_deleted_container() {
    let root = tempfile::tempdir().unwrap();
    let sink = StorageSink::connect(local_sink(
        root.path(),
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        Encoding::AvroDeflate,
    ))
    .await
    .unwrap();
    std::fs::remove_dir_all(root.path().join("storagecontainer")).unwrap();
    // The probe only looks.
    assert_eq!(sink.probe().await.unwrap_err().kind(), SinkErrorKind::NotFound);
    // A write creates what it needs.
    let written = sink
        .write_blob(&telemetry_batch(5, "d1"), time("2018-10-30T10:56:00Z"))
        .await
        .unwrap();
    assert_eq!(written.name, "ContosoTestHub/0/2018/10/30/10/56");
    let (codec, records) = read_avro(&sink.read_blob(&written.name).await.unwrap());
    assert_eq!((codec.as_deref(), records.len()), (Some("deflate"), 5));
    sink.probe().await.unwrap();
}

#[tokio::test]
async fn local_sink_refuses_a_file_where_the_container_should_be() {
    let root = tempfile::tempdir().unwrap();
    // A file where the container directory should be: not a directory.
    std::fs::write(root.path().join("storagecontainer"), b"").unwrap();
    let config = local_sink(
        root.path(),
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        Encoding::Json,
    );
    let error = StorageSink::connect(config.clone()).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Io, "{error}");
    let sink = StorageSink::new(config).unwrap();
    assert_eq!(sink.probe().await.unwrap_err().kind(), SinkErrorKind::Invalid);
}
