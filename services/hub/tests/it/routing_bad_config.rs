//! Bad routing configuration, on the `hub` binary. At start: each invalid case makes `hub serve`
//! exit 64 with one line per problem naming the route or endpoint (and where it is), all problems
//! at once. On reload (the routing file edited, or SIGHUP): a bad file keeps the routing in force
//! and the log says why; a good one takes effect without dropping the device's connection.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::QoS;
use serde_json::{Value, json};

use crate::support::backends::QueueEndpoint;
use crate::support::events::read_events;
use crate::support::mqtt::{MqttDevice, Outcome};
use crate::support::process::{HubProcess, write_config_with};
use crate::support::routing::tutorial_routing;
use crate::support::{HANG, OWNER, plain_http_client, random_key, service_token, valid_expiry, within};

/// `hub serve -c config`: its exit code and standard error. A hub that starts (the case was valid
/// after all) is killed and fails the test.
fn serve(config: &Path) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["serve", "-c"])
        .arg(config)
        .env_remove("HUB_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("hub serve started with a bad routing file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The tutorial's routing on local backends with IoT Hub's own storage settings (a 60 s batch).
fn valid_routing(dir: &Path) -> Value {
    let queue = QueueEndpoint::sqlite_missing(dir);
    let mut routing = tutorial_routing(&queue, &format!("file://{}", dir.join("blobs").display()), 60);
    routing["enrichments"] = json!([]);
    routing
}

type Edit = fn(&mut Value);

/// One invalid case: what to break, hub settings to add under `routing:`, and the lines `hub serve`
/// must print (each after `hub: routing: `); `{file}` stands for the routing file's path, `{typo}`
/// for `line L column C` of the misspelt key in it.
struct Case {
    what: &'static str,
    edit: Edit,
    settings: &'static str,
    lines: &'static [&'static str],
}

fn queue_endpoint(c: &mut Value) -> &mut Value {
    &mut c["endpoints"]["serviceBusQueues"][0]
}

fn storage_endpoint(c: &mut Value) -> &mut Value {
    &mut c["endpoints"]["storageContainers"][0]
}

const CASES: &[Case] = &[
    Case {
        what: "a bad route name",
        edit: |c| c["routes"][1]["name"] = json!("to storage"),
        settings: "",
        lines: &[r#"routes[1] "to storage": name must be 1 to 64 letters, digits, '-', '.' or '_'"#],
    },
    Case {
        what: "a duplicate route name",
        edit: |c| c["routes"][1]["name"] = json!("CriticalRoute"),
        settings: "",
        lines: &[r#"routes[1] "CriticalRoute": name is already used by routes[0]"#],
    },
    Case {
        what: "an unknown endpoint",
        edit: |c| c["routes"][1]["endpointNames"] = json!(["Archive"]),
        settings: "",
        lines: &[r#"routes[1] "StorageRoute": endpoint "Archive" does not exist"#],
    },
    Case {
        what: "a condition that does not compile",
        edit: |c| c["routes"][0]["condition"] = json!("level = \"critical\"\n  AND $body.windSpeed >"),
        settings: "",
        lines: &[
            r#"routes[0] "CriticalRoute": condition 2:24: Syntax error: expected an expression, found the end of the condition"#,
        ],
    },
    Case {
        what: "an unsupported source",
        edit: |c| c["routes"][1]["source"] = json!("Telemetry"),
        settings: "",
        lines: &[
            r#"routes[1] "StorageRoute": source "Telemetry" is not one of DeviceMessages, TwinChangeEvents, DeviceLifecycleEvents, DeviceJobLifecycleEvents, DigitalTwinChangeEvents, DeviceConnectionStateEvents, MqttBrokerMessages"#,
        ],
    },
    Case {
        what: "101 routes",
        edit: |c| {
            let route = c["routes"][0].clone();
            c["routes"] = (0..101)
                .map(|i| {
                    let mut route = route.clone();
                    route["name"] = json!(format!("route-{i}"));
                    route
                })
                .collect();
        },
        settings: "",
        lines: &["routes: 101 routes; IoT Hub allows at most 100"],
    },
    Case {
        what: "a 1-second storage batch without the development flag",
        edit: |c| storage_endpoint(c)["batchFrequencyInSeconds"] = json!(1),
        settings: "",
        lines: &[
            r#"endpoints.storageContainers[0] "StorageContainer": batchFrequencyInSeconds must be 60 to 720, not 1 (the development override allow_short_batches permits shorter batches)"#,
        ],
    },
    Case {
        what: "a queue endpoint with a storage connection string",
        edit: |c| {
            queue_endpoint(c)["connectionString"] =
                json!("DefaultEndpointsProtocol=https;AccountName=contosostorage;AccountKey=a2V5")
        },
        settings: "",
        lines: &[
            r#"endpoints.serviceBusQueues[0] "CriticalQueue": connectionString is for a storage endpoint; a queue endpoint needs Endpoint=sb://...;EntityPath=..., sqlite://<file> or amqp[s]://<host>"#,
        ],
    },
    Case {
        what: "a masked key without an override",
        edit: |c| {
            queue_endpoint(c)["connectionString"] = json!(
                "Endpoint=sb://contososbnamespace.servicebus.windows.net/;SharedAccessKeyName=iothubroutes;SharedAccessKey=****;EntityPath=contososbqueue"
            )
        },
        settings: "",
        lines: &[
            r#"endpoints.serviceBusQueues[0] "CriticalQueue": connectionString has a masked key ("****", as ARM exports it); give this endpoint a local connection string override"#,
        ],
    },
    Case {
        what: "an override with a masked key",
        edit: |_| {},
        settings: "  endpoint_overrides:\n    CriticalQueue: 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=****;EntityPath=q'\n",
        lines: &[
            r#"endpoints.serviceBusQueues[0] "CriticalQueue": the override's connection string has a masked key ("****", as ARM exports it); give this endpoint a local connection string override"#,
        ],
    },
    Case {
        what: "an override for no endpoint",
        edit: |_| {},
        settings: "  endpoint_overrides:\n    Archive: sqlite:///tmp/archive.db\n",
        lines: &[
            r#"endpoint overrides "Archive": no serviceBusQueues or storageContainers endpoint has this name"#,
        ],
    },
    Case {
        what: "an AMQP connection string that does not parse",
        edit: |c| queue_endpoint(c)["connectionString"] = json!("amqp://guest:guest@127.0.0.1:notaport"),
        settings: "",
        lines: &[
            r#"endpoints.serviceBusQueues[0] "CriticalQueue": connectionString: invalid connection string: `url`: invalid port number"#,
        ],
    },
    Case {
        what: "a storage connection string that does not parse",
        edit: |c| {
            storage_endpoint(c)["connectionString"] =
                json!("DefaultEndpointsProtocol=https;AccountName=contosostorage;AccountKey=@@not-base64@@")
        },
        settings: "",
        lines: &[
            r#"endpoints.storageContainers[0] "StorageContainer": connectionString: the storage connection string's `AccountKey` is invalid: not base64"#,
        ],
    },
    Case {
        what: "an unknown field (a typo)",
        edit: |c| {
            let route = c["routes"][1].as_object_mut().unwrap();
            route.remove("isEnabled");
            route.insert("isEnabeld".to_owned(), json!(true));
        },
        settings: "",
        lines: &[
            "{file}: unknown field `isEnabeld`, expected one of `name`, `source`, `condition`, `endpointNames`, `isEnabled` at {typo}",
        ],
    },
    Case {
        what: "a connection string that does not parse, with another problem: both at once",
        edit: |c| {
            c["routes"][0]["name"] = json!("critical route");
            queue_endpoint(c)["connectionString"] = json!("amqp://guest:guest@127.0.0.1:notaport");
        },
        settings: "",
        lines: &[
            r#"endpoints.serviceBusQueues[0] "CriticalQueue": connectionString: invalid connection string: `url`: invalid port number"#,
            r#"routes[0] "critical route": name must be 1 to 64 letters, digits, '-', '.' or '_'"#,
        ],
    },
    Case {
        what: "several problems: all of them, in order",
        edit: |c| {
            c["routes"][0]["name"] = json!("critical route");
            c["routes"][1]["endpointNames"] = json!(["Archive"]);
            storage_endpoint(c)["batchFrequencyInSeconds"] = json!(1);
            queue_endpoint(c)["connectionString"] = json!("file:///tmp/queues");
        },
        settings: "",
        lines: &[
            r#"endpoints.serviceBusQueues[0] "CriticalQueue": connectionString is for a storage endpoint; a queue endpoint needs Endpoint=sb://...;EntityPath=..., sqlite://<file> or amqp[s]://<host>"#,
            r#"endpoints.storageContainers[0] "StorageContainer": batchFrequencyInSeconds must be 60 to 720, not 1 (the development override allow_short_batches permits shorter batches)"#,
            r#"routes[0] "critical route": name must be 1 to 64 letters, digits, '-', '.' or '_'"#,
            r#"routes[1] "StorageRoute": endpoint "Archive" does not exist"#,
        ],
    },
];

/// `line L column C` of the end of the key `"isEnabeld"` in `text`, where serde reports it.
fn typo_position(text: &str) -> String {
    text.lines()
        .enumerate()
        .find_map(|(i, line)| {
            let column = line.find("\"isEnabeld\"")?;
            Some(format!(
                "line {} column {}",
                i + 1,
                column + "\"isEnabeld\"".len()
            ))
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn each_bad_routing_stops_hub_serve_with_exit_64_and_one_line_per_problem() {
    let owner_key = random_key();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let mut routing = valid_routing(dir.path());
        (case.edit)(&mut routing);
        let file = dir.path().join("routing.json");
        let text = serde_json::to_string_pretty(&routing).unwrap();
        std::fs::write(&file, &text).unwrap();
        let settings = format!("routing:\n  file: {}\n{}", file.display(), case.settings);
        let config = write_config_with(dir.path(), &owner_key, &settings);
        let (code, stderr) = serve(&config);
        let expected: Vec<String> = case
            .lines
            .iter()
            .map(|line| {
                let line = line
                    .replace("{file}", &file.display().to_string())
                    .replace("{typo}", &typo_position(&text));
                format!("hub: routing: {line}")
            })
            .collect();
        assert_eq!(
            (code, stderr.lines().collect::<Vec<_>>()),
            (64, expected.iter().map(String::as_str).collect()),
            "{}",
            case.what
        );
    }
    // The control: the routing all the cases break starts a hub.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routing.json");
    std::fs::write(&file, valid_routing(dir.path()).to_string()).unwrap();
    let settings = format!("routing:\n  file: {}\n", file.display());
    let config = write_config_with(dir.path(), &owner_key, &settings);
    let hub = HubProcess::start(&config, &dir.path().join("hub.log")).await;
    drop(hub);
}

/// What makes a running hub read its routing file again.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// The file changed (polled every second).
    FileChange,
    /// SIGHUP (the file is not polled).
    Hangup,
}

impl Trigger {
    fn settings(self) -> &'static str {
        match self {
            Trigger::FileChange => "  watch_interval_secs: 1\n",
            Trigger::Hangup => "  watch_interval_secs: 0\n",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Trigger::FileChange => "file changed",
            Trigger::Hangup => "SIGHUP",
        }
    }
}

const RELOADED: &str = "routing reloaded";
const NOT_RELOADED: &str = "routing not reloaded; the previous routing stays";

/// Replaces the routing file in one step (a rename), so the hub never reads half a file; has the
/// hub reload it by `trigger`; waits for `lines` new log lines saying how it went and returns them.
async fn reload(
    hub: &HubProcess,
    trigger: Trigger,
    file: &Path,
    routing: &Value,
    lines: usize,
) -> Vec<Value> {
    let outcome = |line: &Value| line["message"] == RELOADED || line["message"] == NOT_RELOADED;
    let before = hub.log_lines().into_iter().filter(outcome).count();
    let staged = file.with_extension("json.new");
    std::fs::write(&staged, serde_json::to_string_pretty(routing).unwrap()).unwrap();
    std::fs::rename(&staged, file).unwrap();
    if let Trigger::Hangup = trigger {
        hub.hangup();
    }
    let new = within("the hub to reload its routing", async {
        loop {
            let found: Vec<Value> = hub.log_lines().into_iter().filter(outcome).skip(before).collect();
            if found.len() >= lines {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(new.len(), lines, "{new:#?}");
    for line in &new {
        assert_eq!(line["reason"], trigger.reason(), "{line}");
    }
    new
}

async fn publish(mqtt: &mut MqttDevice, id: &str, level: &str) {
    let topic = format!("devices/dev1/messages/events/$.mid={id}&level={level}");
    let outcome = mqtt.publish(&topic, QoS::AtLeastOnce, "{}").await;
    assert_eq!(
        outcome,
        Outcome::Acked,
        "{id}: the connection must survive reloads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_on_file_change_keeps_a_bad_routing_out_and_takes_a_good_one() {
    reload_keeps_or_replaces_the_routing(Trigger::FileChange).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_on_sighup_keeps_a_bad_routing_out_and_takes_a_good_one() {
    reload_keeps_or_replaces_the_routing(Trigger::Hangup).await;
}

async fn reload_keeps_or_replaces_the_routing(trigger: Trigger) {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueEndpoint::sqlite(dir.path()).await;
    let blobs = dir.path().join("blobs");
    let first = tutorial_routing(&queue, &format!("file://{}", blobs.display()), 1);
    let file = dir.path().join("routing.json");
    std::fs::write(&file, serde_json::to_string_pretty(&first).unwrap()).unwrap();
    let owner_key = random_key();
    let settings = format!(
        "routing:\n  file: {}\n  allow_short_batches: true\n{}",
        file.display(),
        trigger.settings()
    );
    let config = write_config_with(dir.path(), &owner_key, &settings);
    let owner = service_token(OWNER, &owner_key, valid_expiry());
    let hub = HubProcess::start(&config, &dir.path().join("hub.log")).await;
    let device = hub.create_device("dev1", &owner).await;
    let (mut mqtt, _) = MqttDevice::connect(hub.mqtt_options(&device)).await.unwrap();

    publish(&mut mqtt, "m0", "critical").await;
    queue.receive_until_marker("m0").await;

    // A bad file: every problem logged, the old routing stays.
    let mut bad = first.clone();
    bad["routes"][0]["condition"] = json!("level = 'critical");
    bad["routes"][1]["endpointNames"] = json!(["Archive"]);
    let logged = reload(&hub, trigger, &file, &bad, 2).await;
    let problems: Vec<&str> = logged
        .iter()
        .map(|l| l["problem"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        problems,
        [
            r#"routes[0] "CriticalRoute": condition 1:9: Syntax error: unterminated string (hint: close the string with the quote it opens with)"#,
            r#"routes[1] "StorageRoute": endpoint "Archive" does not exist"#,
        ]
    );
    assert!(logged.iter().all(|l| l["message"] == NOT_RELOADED));
    publish(&mut mqtt, "m1", "critical").await;
    queue.receive_until_marker("m1").await;

    // A good file: `urgent` goes to the queue now, `critical` falls back to `events`.
    let mut good = first.clone();
    good["routes"][0]["condition"] = json!("level = \"urgent\"");
    let logged = reload(&hub, trigger, &file, &good, 1).await;
    assert_eq!(logged[0]["message"], RELOADED);
    publish(&mut mqtt, "m2", "urgent").await;
    publish(&mut mqtt, "m3", "critical").await;
    let in_queue = queue.receive_until_marker("m2").await;
    assert_eq!(in_queue.len(), 1);
    let base = hub.base_url();
    let events = read_events(&plain_http_client(), &base, &owner, "dev1", |e| {
        e.message.system.message_id.as_deref() == Some("m3")
    })
    .await;
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.message.system.message_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        ["m3"],
        "before the reload, critical messages went to the queue only"
    );

    // One connection all along.
    let log = hub.log_lines();
    let count = |message: &str| log.iter().filter(|l| l["message"] == message).count();
    assert_eq!((count("device connected"), count("device disconnected")), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_to_a_hub_without_a_routing_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let owner_key = random_key();
    let config = write_config_with(dir.path(), &owner_key, "");
    let owner = service_token(OWNER, &owner_key, valid_expiry());
    let hub = HubProcess::start(&config, &dir.path().join("hub.log")).await;
    let device = hub.create_device("dev1", &owner).await;
    let (mut mqtt, _) = MqttDevice::connect(hub.mqtt_options(&device)).await.unwrap();
    publish(&mut mqtt, "m0", "critical").await;

    hub.hangup();
    let noted = within("the hub to note the SIGHUP", async {
        loop {
            if let Some(line) = hub.log_lines().into_iter().find(|l| l["reason"] == "SIGHUP") {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(noted["message"], "no routing file to reload", "{noted}");
    // Still running, the same connection still acknowledged.
    publish(&mut mqtt, "m1", "critical").await;
}
