//! The sink against Azurite (npm `azurite`), one instance per test on a random port, started and
//! stopped with `scripts/services/azurite`, so stopping it mid-test affects no other test.

use hub::endpoints::storage::{Encoding, SinkErrorKind, StorageSink, StorageSinkConfig, encode_blob};

use super::{SECRET_KEY, read_avro, telemetry_batch, time};
use hub::endpoints::storage::connection::DEV_ACCOUNT_KEY;

use crate::support::backends::Azurite;

const FORMAT: &str = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}";

/// A sink configuration for `container` in `azurite`.
fn config(azurite: &Azurite, container: &str, encoding: Encoding) -> StorageSinkConfig {
    StorageSinkConfig::new(
        &azurite.connection_string(),
        container,
        "ContosoTestHub",
        FORMAT,
        encoding,
    )
    .unwrap()
}

#[tokio::test]
async fn azurite_sink_writes_lists_and_never_overwrites() {
    let azurite = Azurite::start();
    let sink = StorageSink::connect(config(&azurite, "storagecontainer", Encoding::Json))
        .await
        .unwrap();
    sink.probe().await.unwrap();
    // Connecting again finds the container there.
    StorageSink::connect(config(&azurite, "storagecontainer", Encoding::Json))
        .await
        .unwrap();

    let opened = time("2018-10-30T10:56:13.0000000Z");
    let first = telemetry_batch(3, "first");
    let written = sink.write_blob(&first, opened).await.unwrap();
    assert_eq!(
        (written.name.as_str(), written.records, written.already_existed),
        ("ContosoTestHub/0/2018/10/30/10/56", 3, false)
    );
    let second = sink
        .write_blob(&telemetry_batch(2, "second"), opened)
        .await
        .unwrap();
    assert_eq!(second.name, "ContosoTestHub/0/2018/10/30/10/56_1");
    let again = sink.write_blob(&first, opened).await.unwrap();
    assert_eq!(
        (again.name.as_str(), again.already_existed),
        ("ContosoTestHub/0/2018/10/30/10/56", true)
    );

    let blobs = sink.list_blobs().await.unwrap();
    let names: Vec<&str> = blobs.iter().map(|blob| blob.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ContosoTestHub/0/2018/10/30/10/56",
            "ContosoTestHub/0/2018/10/30/10/56_1"
        ]
    );
    assert_eq!(blobs[0].bytes, written.bytes as u64);
    assert_eq!(
        sink.read_blob(&written.name).await.unwrap(),
        encode_blob(&first, Encoding::Json).unwrap()
    );

    // Avro into a second container, created on connect.
    let avro = StorageSink::connect(config(&azurite, "avrocontainer", Encoding::Avro))
        .await
        .unwrap();
    let written = avro
        .write_blob(&telemetry_batch(4, "avro"), opened)
        .await
        .unwrap();
    let (codec, records) = read_avro(&avro.read_blob(&written.name).await.unwrap());
    assert_eq!((codec, records.len()), (Some("null".to_owned()), 4));
    assert_eq!(
        sink.list_blobs().await.unwrap().len(),
        2,
        "containers are separate"
    );
}

#[tokio::test]
async fn azurite_container_missing_at_write_time_is_created() {
    let azurite = Azurite::start();
    // `new` does no IO: the container does not exist yet.
    let sink = StorageSink::new(config(&azurite, "latecontainer", Encoding::Json)).unwrap();
    assert_eq!(sink.probe().await.unwrap_err().kind(), SinkErrorKind::NotFound);
    let written = sink
        .write_blob(&telemetry_batch(1, "d1"), time("2018-10-30T10:56:00Z"))
        .await
        .unwrap();
    assert_eq!(written.name, "ContosoTestHub/0/2018/10/30/10/56");
    sink.probe().await.unwrap();
}

#[tokio::test]
async fn stopping_azurite_makes_the_sink_unreachable_until_it_returns() {
    let mut azurite = Azurite::start();
    let sink = StorageSink::connect(config(&azurite, "storagecontainer", Encoding::Json))
        .await
        .unwrap();
    let before = sink
        .write_blob(&telemetry_batch(2, "before"), time("2018-10-30T10:56:00Z"))
        .await
        .unwrap();

    azurite.stop();
    let probe = sink.probe().await.unwrap_err();
    assert_eq!(probe.kind(), SinkErrorKind::Unreachable, "{probe}");
    let write = sink
        .write_blob(&telemetry_batch(2, "during"), time("2018-10-30T10:57:00Z"))
        .await
        .unwrap_err();
    assert_eq!(write.kind(), SinkErrorKind::Unreachable, "{write}");
    assert!(write.kind().is_transient());
    assert!(!write.to_string().contains(DEV_ACCOUNT_KEY), "{write}");

    azurite.restart();
    sink.probe().await.unwrap();
    // The backlog drains: the batch that failed is written now, under its own (unchanged) name.
    let during = sink
        .write_blob(&telemetry_batch(2, "during"), time("2018-10-30T10:57:00Z"))
        .await
        .unwrap();
    assert_eq!(
        (during.name.as_str(), during.already_existed),
        ("ContosoTestHub/0/2018/10/30/10/57", false)
    );
    let names: Vec<String> = sink
        .list_blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|blob| blob.name)
        .collect();
    assert_eq!(names, [before.name, during.name]);
}

#[tokio::test]
async fn the_wrong_account_key_is_unauthorized_and_never_printed() {
    let azurite = Azurite::start();
    let connection_string = azurite.connection_string_with_key(SECRET_KEY);
    let config = StorageSinkConfig::new(
        &connection_string,
        "storagecontainer",
        "ContosoTestHub",
        FORMAT,
        Encoding::Json,
    )
    .unwrap();
    let error = StorageSink::connect(config.clone()).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Unauthorized, "{error}");
    assert!(!error.kind().is_transient());
    assert!(!error.to_string().contains(SECRET_KEY), "{error}");

    let sink = StorageSink::new(config).unwrap();
    for error in [
        sink.probe().await.unwrap_err(),
        sink.write_blob(&telemetry_batch(1, "d1"), time("2018-10-30T10:56:00Z"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error.kind(), SinkErrorKind::Unauthorized, "{error}");
        assert!(!error.to_string().contains(SECRET_KEY), "{error}");
        assert!(!format!("{error:?}").contains(SECRET_KEY), "{error:?}");
    }
}
