//! Routing end to end: the tutorial's routing file (`level="critical"` → queue endpoint
//! `CriticalQueue`, `level="storage"` → storage endpoint `StorageContainer`, fallback on → `events`),
//! the device messages the tests send, what IoT Hub delivers for each of them to a Service Bus
//! queue and in a blob record (spec `iothub-wire.md` §5–§6), and endpoint health.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use iothub_protocol::Timestamp;
use iothub_protocol::mqtt::encode_property_bag;
use serde_json::{Value, json};

use super::backends::{CONTAINER, FILE_NAME_FORMAT, QueueEndpoint};
use super::{Device, TestHub, within};

/// The auth method IoT Hub stamps on a device authenticated with a SAS token (DOC-ENRICH).
pub(crate) const SAS_AUTH: &str =
    r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#;
/// The queue endpoint's name.
pub(crate) const QUEUE_ENDPOINT: &str = "CriticalQueue";
/// The storage endpoint's name.
pub(crate) const STORAGE_ENDPOINT: &str = "StorageContainer";
/// The twin enrichment: with no twin, IoT Hub stamps the literal text.
pub(crate) const TWIN_LOCATION: &str = "$twin.tags.location";

/// The tutorial's routing, with its endpoints on `queue` and on the blob store at
/// `storage_connection`; JSON blobs every `batch_secs` seconds (below 60 needs `allow_short_batches`).
/// Enrichments: `myIotHub` (`$iothubname`) on both custom endpoints, `region` on the queue only,
/// `deviceLocation` (a twin path) on storage only.
pub(crate) fn tutorial_routing(queue: &QueueEndpoint, storage_connection: &str, batch_secs: u64) -> Value {
    json!({
        "endpoints": {
            "serviceBusQueues": [{
                "name": QUEUE_ENDPOINT,
                "connectionString": queue.connection_string,
                "entityPath": queue.queue,
            }],
            "storageContainers": [{
                "name": STORAGE_ENDPOINT,
                "connectionString": storage_connection,
                "containerName": CONTAINER,
                "fileNameFormat": FILE_NAME_FORMAT,
                "batchFrequencyInSeconds": batch_secs,
                "maxChunkSizeInBytes": 10_485_760,
                "encoding": "JSON",
            }],
        },
        "routes": [
            {"name": "CriticalRoute", "source": "DeviceMessages", "condition": "level=\"critical\"",
             "endpointNames": [QUEUE_ENDPOINT], "isEnabled": true},
            {"name": "StorageRoute", "source": "DeviceMessages", "condition": "level=\"storage\"",
             "endpointNames": [STORAGE_ENDPOINT], "isEnabled": true},
        ],
        "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true",
                          "endpointNames": ["events"], "isEnabled": true},
        "enrichments": [
            {"key": "myIotHub", "value": "$iothubname", "endpointNames": [QUEUE_ENDPOINT, STORAGE_ENDPOINT]},
            {"key": "region", "value": "westus", "endpointNames": [QUEUE_ENDPOINT]},
            {"key": "deviceLocation", "value": TWIN_LOCATION, "endpointNames": [STORAGE_ENDPOINT]},
        ],
    })
}

/// Writes `routing` as `<dir>/routing.json`.
pub(crate) fn write_routing(dir: &Path, routing: &Value) -> PathBuf {
    let path = dir.join("routing.json");
    std::fs::write(&path, serde_json::to_vec_pretty(routing).unwrap()).unwrap();
    path
}

/// What a test message says about itself in its `level` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Level {
    /// `level=critical`: the queue endpoint.
    Critical,
    /// `level=storage`: the storage endpoint.
    Storage,
    /// `level=info`: no route; the fallback takes it to `events`.
    Info,
    /// No `level` at all (the conditions are undefined): the fallback again.
    Unlabelled,
}

impl Level {
    fn label(self) -> Option<&'static str> {
        match self {
            Level::Critical => Some("critical"),
            Level::Storage => Some("storage"),
            Level::Info => Some("info"),
            Level::Unlabelled => None,
        }
    }
}

/// A device message as the test sends it over MQTT.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    /// Its message id (`$.mid`), unique in the test.
    pub(crate) id: String,
    /// Where it should go.
    pub(crate) level: Level,
    /// `$.cid`.
    pub(crate) correlation_id: String,
    /// `$.ct`: `application/json`, or `text/plain` for every fourth storage message (its record
    /// body is then base64).
    pub(crate) content_type: &'static str,
    /// The payload.
    pub(crate) body: Vec<u8>,
    /// Application properties, in order.
    pub(crate) app: Vec<(String, String)>,
}

impl Sent {
    /// Message `n` of `level` from `device`.
    pub(crate) fn new(device: &str, level: Level, n: u64) -> Sent {
        let label = level.label().unwrap_or("none");
        let text = level == Level::Storage && n % 4 == 3;
        let (content_type, body) = if text {
            ("text/plain", format!("wind {n}.5 m/s from {device}").into_bytes())
        } else {
            let body = json!({"deviceId": device, "windSpeed": n as f64 + 0.5, "note": "vent élevé"});
            ("application/json", body.to_string().into_bytes())
        };
        let mut app = Vec::new();
        if let Some(label) = level.label() {
            app.push(("level".to_owned(), label.to_owned()));
        }
        app.push(("sensor".to_owned(), "anemometer 2".to_owned()));
        app.push(("seq".to_owned(), n.to_string()));
        Sent {
            id: format!("{device}-{label}-{n}"),
            level,
            correlation_id: format!("corr-{n}"),
            content_type,
            body,
            app,
        }
    }

    /// The MQTT topic: message id, correlation id, content type and encoding, then the
    /// application properties, percent-encoded as the device SDKs do.
    pub(crate) fn topic(&self, device: &str) -> String {
        let mut pairs: Vec<(&str, Option<&str>)> = vec![
            ("$.mid", Some(&self.id)),
            ("$.cid", Some(&self.correlation_id)),
            ("$.ct", Some(self.content_type)),
            ("$.ce", Some("utf-8")),
        ];
        pairs.extend(self.app.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))));
        format!("devices/{device}/messages/events/{}", encode_property_bag(pairs))
    }

    /// The Service Bus message IoT Hub puts in the queue endpoint for this message: body unchanged;
    /// message id, correlation id, content type and encoding as broker properties; the connection
    /// stamps, the device's properties and the queue's enrichments as application properties.
    pub(crate) fn in_queue(&self, device: &Device, hub_name: &str) -> queue::Message {
        let mut application: BTreeMap<String, String> = self.app.iter().cloned().collect();
        application.insert("iothub-connection-device-id".into(), device.id.clone());
        application.insert("iothub-connection-auth-method".into(), SAS_AUTH.into());
        application.insert(
            "iothub-connection-auth-generation-id".into(),
            device.generation_id.clone(),
        );
        application.insert("myIotHub".into(), hub_name.into());
        application.insert("region".into(), "westus".into());
        let mut message = queue::Message::new(self.body.clone());
        message.message_id = Some(self.id.clone());
        message.correlation_id = Some(self.correlation_id.clone());
        message.content_type = Some(self.content_type.to_owned());
        message.content_encoding = Some("utf-8".to_owned());
        message.application_properties = application;
        message
    }

    /// The blob record IoT Hub writes for this message, but for the two enqueued times (checked
    /// separately): `Properties` with the storage enrichments, `SystemProperties` by their Storage
    /// names, `Body` inline JSON for `application/json` + `utf-8`, else base64.
    pub(crate) fn in_blob(&self, device: &Device, hub_name: &str) -> Value {
        let mut properties: serde_json::Map<String, Value> =
            self.app.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        properties.insert("myIotHub".into(), json!(hub_name));
        properties.insert("deviceLocation".into(), json!(TWIN_LOCATION));
        let body = if self.content_type == "application/json" {
            serde_json::from_slice(&self.body).unwrap()
        } else {
            json!(base64::engine::general_purpose::STANDARD.encode(&self.body))
        };
        json!({
            "Properties": properties,
            "SystemProperties": {
                "messageId": self.id,
                "correlationId": self.correlation_id,
                "connectionDeviceId": device.id,
                "connectionAuthMethod": SAS_AUTH,
                "connectionDeviceGenerationId": device.generation_id,
                "contentType": self.content_type,
                "contentEncoding": "utf-8",
            },
            "Body": body,
        })
    }
}

/// The records of a JSON blob, each checked to be whole: the blob ends with a newline, every line
/// is one JSON object with exactly IoT Hub's four fields, `EnqueuedTimeUtc` first, and
/// `SystemProperties.enqueuedTime` the same 7-digit UTC time. Panics naming the blob otherwise.
pub(crate) fn blob_records(name: &str, bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("blob {name} is not UTF-8: {e}"));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "blob {name} does not end with a newline (half-written?)"
    );
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("blob {name} line {}: not JSON ({e}): {line}", i + 1));
            assert!(
                line.starts_with(r#"{"EnqueuedTimeUtc":""#),
                "blob {name} line {}: {line}",
                i + 1
            );
            let keys: Vec<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                ["Body", "EnqueuedTimeUtc", "Properties", "SystemProperties"],
                "blob {name} line {}",
                i + 1
            );
            let enqueued = record["EnqueuedTimeUtc"].as_str().unwrap();
            assert_eq!(
                Some(enqueued),
                record["SystemProperties"]["enqueuedTime"].as_str(),
                "blob {name} line {}",
                i + 1
            );
            let fraction = enqueued.rsplit_once('.').map(|(_, f)| f);
            assert!(
                Timestamp::parse(enqueued).is_ok()
                    && fraction.is_some_and(|f| f.len() == 8 && f.ends_with('Z')),
                "blob {name}: EnqueuedTimeUtc {enqueued} is not IoT Hub's 7-digit UTC time"
            );
            record
        })
        .collect()
}

/// `record` without its enqueued times, to compare with [`Sent::in_blob`].
pub(crate) fn without_times(record: &Value) -> Value {
    let mut record = record.clone();
    let object = record.as_object_mut().unwrap();
    object.remove("EnqueuedTimeUtc");
    object["SystemProperties"]
        .as_object_mut()
        .unwrap()
        .remove("enqueuedTime");
    record
}

/// `YYYY/MM/DD/HH/mm` of an IoT Hub timestamp (`2019-05-10T06:06:32.7220000Z`).
pub(crate) fn minute_path(timestamp: &str) -> String {
    let t = timestamp.as_bytes();
    let s = |range: std::ops::Range<usize>| std::str::from_utf8(&t[range]).unwrap().to_owned();
    format!("{}/{}/{}/{}/{}", s(0..4), s(5..7), s(8..10), s(11..13), s(14..16))
}

/// Splits a blob name `{hub}/0/YYYY/MM/DD/HH/mm[_N]` into its minute path and collision suffix
/// (0 for none), checking the shape.
pub(crate) fn split_blob_name(name: &str, hub_name: &str) -> (String, u32) {
    let rest = name
        .strip_prefix(&format!("{hub_name}/0/"))
        .unwrap_or_else(|| panic!("blob {name} is not under {hub_name}/0/"));
    let (minute, suffix) = match rest.split_once('_') {
        Some((minute, n)) => (
            minute,
            n.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| panic!("blob {name}: bad suffix")),
        ),
        None => (rest, 0),
    };
    let parts: Vec<&str> = minute.split('/').collect();
    let widths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert!(
        widths == [4, 2, 2, 2, 2] && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())),
        "blob {name} is not {{iothub}}/{{partition}}/{{YYYY}}/{{MM}}/{{DD}}/{{HH}}/{{mm}}[_N]"
    );
    (minute.to_owned(), suffix)
}

/// `GET /routingEndpointsHealth` of one hub.
#[derive(Debug, Clone)]
pub(crate) struct HealthProbe {
    client: reqwest::Client,
    url: String,
    authorization: String,
}

impl HealthProbe {
    /// Reads the health of the hub whose HTTP API is at `base` (`http://host:port`).
    pub(crate) fn new(client: reqwest::Client, base: &str, authorization: String) -> Self {
        HealthProbe {
            client,
            url: format!(
                "{base}/routingEndpointsHealth?api-version={}",
                iothub_protocol::API_VERSION
            ),
            authorization,
        }
    }

    /// Every custom endpoint's `EndpointHealthData` (with `backlog`).
    pub(crate) async fn all(&self) -> Vec<Value> {
        let response = within(
            "the endpoint health",
            self.client
                .get(&self.url)
                .header("authorization", &self.authorization)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {}", self.url);
        let body: Value = response.json().await.unwrap();
        body["value"].as_array().unwrap().clone()
    }

    /// One endpoint's health.
    pub(crate) async fn of(&self, endpoint: &str) -> Value {
        let all = self.all().await;
        all.iter()
            .find(|h| h["endpointId"] == endpoint)
            .unwrap_or_else(|| panic!("no health for {endpoint} in {all:#?}"))
            .clone()
    }

    /// Waits until `endpoint`'s health satisfies `ok` (failing the test after [`super::HANG`]);
    /// returns it.
    pub(crate) async fn wait(&self, endpoint: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let found = tokio::time::timeout(super::HANG, async {
            loop {
                last = self.of(endpoint).await;
                if ok(&last) {
                    return last.clone();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("{endpoint}: still waiting for {what}; last health {last:#}"))
    }

    /// Waits until `endpoint` has delivered everything routed to it so far.
    pub(crate) async fn drained(&self, endpoint: &str) -> Value {
        self.wait(endpoint, "backlog 0", |h| h["backlog"] == 0).await
    }
}

impl TestHub {
    /// The endpoint health of this hub, read with the owner policy over plain HTTP.
    pub(crate) fn health(&self) -> HealthProbe {
        HealthProbe::new(
            self.client().clone(),
            &format!("http://{}", self.http),
            self.owner_token(),
        )
    }
}
