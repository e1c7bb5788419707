//! Test plumbing: blobs in IoT Hub's exact JSON-lines and Avro shapes (written with the same code the
//! hub's storage endpoint uses), a container in a temporary directory, an index in SQLite or in a
//! private PostgreSQL schema, and the archiver run in this process with its API on a random port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apache_avro::types::Value as AvroValue;
use iothub_protocol::{Message, Timestamp};
use secrecy::SecretString;
use serde_json::Value;
use service_kit::Shutdown;
use storage_archiver::config::ArchiverConfig;
use storage_archiver::serve::{self, Listeners};

/// The local PostgreSQL (trust auth).
pub(crate) const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh index URL: a SQLite file in `dir`, or a private schema in the local PostgreSQL.
pub(crate) fn index_url(postgres: bool, dir: &Path) -> String {
    if postgres {
        format!("{POSTGRES}?schema=archiver_{:016x}", fastrand::u64(..))
    } else {
        format!("sqlite://{}", dir.join("index.db").display())
    }
}

/// One telemetry message as the hub stamps it: device, ids, level, wind speed, enqueued at `ms`.
pub(crate) fn message(device: &str, n: u64, level: Option<&str>, wind: f64, ms: i64) -> Message {
    let mut message =
        Message::new(format!("{{\"deviceId\":\"{device}\",\"windSpeed\":{wind}}}").into_bytes());
    message.system.message_id = Some(format!("{device}-{n}"));
    message.system.correlation_id = Some(format!("correlation-{n}"));
    message.system.content_type = Some("application/json".to_owned());
    message.system.content_encoding = Some("utf-8".to_owned());
    message.system.connection_device_id = Some(device.to_owned());
    message.system.enqueued_time = Some(Timestamp::from_unix_millis(ms).unwrap());
    if let Some(level) = level {
        message
            .app_properties
            .push(("level".to_owned(), Some(level.to_owned())));
    }
    message
}

/// Writes a JSON-lines blob `name` under `container`.
pub(crate) fn write_json_blob(container: &Path, name: &str, messages: &[Message]) {
    let mut out = Vec::new();
    for m in messages {
        iothub_protocol::storage_record::write_record(m, &mut out).unwrap();
    }
    write_file(&container.join(name), &out);
}

/// Writes an Avro blob (`deflate`: AvroDeflate) with IoT Hub's schema.
pub(crate) fn write_avro_blob(container: &Path, name: &str, messages: &[Message], deflate: bool) {
    let schema = apache_avro::Schema::parse_str(iothub_protocol::storage_record::AVRO_SCHEMA).unwrap();
    let codec = if deflate {
        apache_avro::Codec::Deflate(apache_avro::DeflateSettings::default())
    } else {
        apache_avro::Codec::Null
    };
    let mut writer = apache_avro::Writer::with_codec(&schema, Vec::new(), codec).unwrap();
    for m in messages {
        let record = iothub_protocol::storage_record::to_value(m).unwrap();
        let strings = |v: &Value| {
            AvroValue::Map(
                v.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            AvroValue::String(v.as_str().unwrap_or_default().to_owned()),
                        )
                    })
                    .collect(),
            )
        };
        let value = AvroValue::Record(vec![
            (
                "EnqueuedTimeUtc".to_owned(),
                AvroValue::String(record["EnqueuedTimeUtc"].as_str().unwrap().to_owned()),
            ),
            ("Properties".to_owned(), strings(&record["Properties"])),
            (
                "SystemProperties".to_owned(),
                strings(&record["SystemProperties"]),
            ),
            (
                "Body".to_owned(),
                AvroValue::Union(1, Box::new(AvroValue::Bytes(m.body.clone()))),
            ),
        ]);
        writer.append_value(value).unwrap();
    }
    write_file(&container.join(name), &writer.into_inner().unwrap());
}

/// Writes `bytes` to `path` whole (via a temporary name, as the hub makes a blob appear).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let staging = path.with_extension("staging#1");
    std::fs::write(&staging, bytes).unwrap();
    std::fs::rename(staging, path).unwrap();
}

/// A container directory and an archiver configuration for it; its PostgreSQL schema, if any, is
/// dropped with it.
pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    pub(crate) container: PathBuf,
    pub(crate) config: ArchiverConfig,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let index = secrecy::ExposeSecret::expose_secret(&self.config.index).to_owned();
        if let Some((_, schema)) = index.split_once("?schema=") {
            let _ = std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c"])
                .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Setup {
    pub(crate) fn new(postgres: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let container = root.join("archive");
        std::fs::create_dir_all(&container).unwrap();
        let config = ArchiverConfig {
            index: SecretString::from(index_url(postgres, dir.path())),
            poll_interval_ms: 100,
            lease_secs: 5,
            max_attempts: 2,
            api: Some("127.0.0.1:0".parse().unwrap()),
            admin: Some("127.0.0.1:0".parse().unwrap()),
            grace_period_secs: 2,
            container: storage_archiver::config::ContainerSettings {
                connection_string: SecretString::from(format!("file://{}", root.display())),
                name: "archive".to_owned(),
                ..Default::default()
            },
            ..ArchiverConfig::default()
        };
        Setup {
            _dir: dir,
            container,
            config,
        }
    }
}

/// The archiver in this process.
pub(crate) struct Running {
    pub(crate) api: SocketAddr,
    pub(crate) admin: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
}

impl Running {
    pub(crate) fn start(config: ArchiverConfig) -> Running {
        let listeners = Listeners::bind(&config).unwrap();
        let api = listeners.api.as_ref().unwrap().local_addr().unwrap();
        let admin = listeners.admin.as_ref().unwrap().local_addr().unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve::run(config, listeners, shutdown.clone()));
        Running {
            api,
            admin,
            shutdown,
            task,
        }
    }

    /// GET `path` on the API: status and JSON body.
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        get(&format!("http://{}{path}", self.api)).await
    }

    /// Waits until the index holds `records` records and no blob is pending.
    pub(crate) async fn wait_for_records(&self, records: u64) {
        let started = Instant::now();
        loop {
            let (status, stats) = self.get("/v1/stats").await;
            if status == 200
                && stats["records"] == records
                && stats["blobs"]["pending"].as_u64().unwrap_or(0) == 0
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waiting for {records} records: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within the grace period")
            .unwrap()
            .unwrap();
    }
}

/// GET `url`: status and JSON body (`Null` when not JSON).
pub(crate) async fn get(url: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Every message of a query, following `nextCursor` with pages of `limit`.
pub(crate) async fn all_pages(running: &Running, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/messages?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = running.get(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        out.extend(page["messages"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
