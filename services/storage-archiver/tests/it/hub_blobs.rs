//! Blobs written by the hub's own storage endpoint writer, to Azurite (npm, a private instance per
//! test, `scripts/services/azurite`), in JSON and AvroDeflate: the archiver indexes every record once
//! and answers a condition query over them.

use std::path::PathBuf;
use std::process::Command;

use hub::endpoints::storage::{DEFAULT_FILE_NAME_FORMAT, Encoding, StorageSink, StorageSinkConfig};
use iothub_protocol::Timestamp;
use secrecy::SecretString;

use crate::support::{Running, Setup, all_pages, encode, message};

/// A private Azurite blob service, stopped when dropped.
struct Azurite {
    port: u16,
    pid: u32,
    _dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/azurite")
}

impl Azurite {
    fn start() -> Azurite {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(script())
            .args(["start", "--owner", &std::process::id().to_string(), "--location"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "azurite: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap()
                .to_owned()
        };
        Azurite {
            port: value("AZURITE_BLOB_PORT").parse().unwrap(),
            pid: value("AZURITE_PID").parse().unwrap(),
            _dir: dir,
        }
    }

    fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1",
            blob_store::DEV_ACCOUNT_KEY,
            self.port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.pid.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_the_hub_writes_to_azurite_are_indexed() {
    let azurite = Azurite::start();
    let messages: Vec<_> = (0..120)
        .map(|n| {
            let level = if n % 3 == 0 { Some("storage") } else { None };
            message(
                "turbine-7",
                n,
                level,
                20.0 + (n % 20) as f64,
                1_795_651_200_000 + n as i64 * 1000,
            )
        })
        .collect();
    for (encoding, range, minute) in [(Encoding::Json, 0..60, 0), (Encoding::AvroDeflate, 60..120, 1)] {
        let config = StorageSinkConfig::new(
            &azurite.connection_string(),
            "archive",
            "testhub",
            DEFAULT_FILE_NAME_FORMAT,
            encoding,
        )
        .unwrap();
        let sink = StorageSink::new(config).unwrap();
        let opened = Timestamp::from_unix_millis(1_795_651_200_000 + minute * 60_000).unwrap();
        let written = sink.write_blob(&messages[range], opened).await.unwrap();
        assert_eq!(written.records, 60);
    }

    let mut setup = Setup::new(false);
    setup.config.container.connection_string = SecretString::from(azurite.connection_string());
    let running = Running::start(setup.config.clone());
    running.wait_for_records(120).await;
    let all = all_pages(&running, "", 50).await;
    assert_eq!(all.len(), 120);
    let storage = all_pages(
        &running,
        &format!(
            "&where={}",
            encode(r#"level = "storage" AND $body.windSpeed >= 30"#)
        ),
        50,
    )
    .await;
    let expected = messages
        .iter()
        .filter(|m| {
            m.app_properties
                .iter()
                .any(|(k, v)| k == "level" && v.as_deref() == Some("storage"))
        })
        .filter(|m| {
            let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
            body["windSpeed"].as_f64().unwrap() >= 30.0
        })
        .count();
    assert_eq!(storage.len(), expected);
    assert!(expected > 0);
    let (_, blobs) = running.get("/v1/blobs?status=indexed").await;
    let names: Vec<&str> = blobs["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["testhub/0/2026/11/26/00/00", "testhub/0/2026/11/26/00/01"],
        "the hub's names"
    );
    running.stop().await;
}
