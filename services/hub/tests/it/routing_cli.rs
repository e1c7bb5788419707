//! `hub route test --config <routing> --message <file>` and `hub route list --config <routing>`, run
//! as the binary: which routes matched, which endpoints would receive the message with which
//! enrichments, the fallback decision; the listing with every connection string redacted.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// Secrets in the routing file: none may ever be printed.
const QUEUE_KEY: &str = "c2VjcmV0LXF1ZXVlLWtleQ==";
const AMQP_PASSWORD: &str = "s3cret-pass";
const STORAGE_KEY: &str = "c2VjcmV0LXN0b3JhZ2Uta2V5";

/// The tutorial's routing with real-looking keys, a second route to the queue reading the body, a
/// disabled route, a route of another source, and enrichments per endpoint.
fn routing() -> Value {
    json!({
        "endpoints": {
            "serviceBusQueues": [
                {"name": "CriticalQueue", "connectionString": format!(
                    "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=iothubroutes;SharedAccessKey={QUEUE_KEY};EntityPath=critical")},
                {"name": "AuditQueue", "connectionString": format!("amqp://routes:{AMQP_PASSWORD}@rabbit.local:5672"),
                 "entityPath": "audit"},
            ],
            "storageContainers": [
                {"name": "StorageContainer", "connectionString": format!(
                    "DefaultEndpointsProtocol=https;AccountName=contosostorage;AccountKey={STORAGE_KEY};EndpointSuffix=core.windows.net"),
                 "containerName": "results", "encoding": "JSON", "batchFrequencyInSeconds": 60},
            ],
        },
        "routes": [
            {"name": "CriticalRoute", "source": "DeviceMessages", "condition": "level=\"critical\"",
             "endpointNames": ["CriticalQueue"], "isEnabled": true},
            {"name": "StorageRoute", "source": "DeviceMessages", "condition": "level=\"storage\"",
             "endpointNames": ["StorageContainer"], "isEnabled": true},
            {"name": "HotRoute", "source": "DeviceMessages", "condition": "$body.windSpeed > 40",
             "endpointNames": ["CriticalQueue"], "isEnabled": true},
            {"name": "AuditRoute", "source": "DeviceMessages", "condition": "level=\"critical\"",
             "endpointNames": ["AuditQueue"], "isEnabled": false},
            {"name": "Lifecycle", "source": "DeviceLifecycleEvents", "endpointNames": ["AuditQueue"],
             "isEnabled": true},
        ],
        "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true",
                          "endpointNames": ["events"], "isEnabled": true},
        "enrichments": [
            {"key": "myIotHub", "value": "$iothubname", "endpointNames": ["CriticalQueue", "StorageContainer"]},
            {"key": "region", "value": "westus", "endpointNames": ["CriticalQueue"]},
            {"key": "deviceLocation", "value": "$twin.tags.location", "endpointNames": ["StorageContainer"]},
        ],
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn hub(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(args)
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    for secret in [QUEUE_KEY, AMQP_PASSWORD, STORAGE_KEY] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret was printed: {}{}",
            run.stdout,
            run.stderr
        );
    }
    run
}

fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A RoutingMessage with this `level` (none when `None`), JSON body `body`, and content type.
fn message(level: Option<&str>, body: &str, content_type: &str) -> Value {
    let mut app = serde_json::Map::new();
    if let Some(level) = level {
        app.insert("level".into(), json!(level));
    }
    json!({
        "body": body,
        "appProperties": app,
        "systemProperties": {"contentType": content_type, "contentEncoding": "utf-8", "connectionDeviceId": "turbine-7"},
    })
}

/// What a report decided: each route's result (or why it was skipped), each endpoint with the
/// routes that sent it there and its enrichments, whether the fallback fired, orphaned.
fn decision(report: &Value) -> Value {
    let routes: serde_json::Map<String, Value> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let outcome = if r["result"].is_null() {
                &r["skipped"]
            } else {
                &r["result"]
            };
            (r["name"].as_str().unwrap().to_owned(), outcome.clone())
        })
        .collect();
    let endpoints: Vec<Value> = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let stamps: serde_json::Map<String, Value> = e["enrichments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (s["key"].as_str().unwrap().to_owned(), s["value"].clone()))
                .collect();
            json!({"name": e["name"], "via": e["via"], "enrichments": stamps})
        })
        .collect();
    json!({
        "routes": routes,
        "endpoints": endpoints,
        "fallbackFired": report["fallback"]["fired"],
        "orphaned": report["orphaned"],
    })
}

/// One `route test` case: the message, an optional twin, and the decision expected.
struct Case {
    what: &'static str,
    message: Value,
    twin: Option<Value>,
    expected: Value,
}

#[test]
fn route_test_reports_routes_endpoints_enrichments_and_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "routing.json", &routing());
    let skipped = json!({"AuditRoute": "disabled", "Lifecycle": "otherSource"});
    let routes = |critical: &str, storage: &str, hot: &str| {
        let mut routes = json!({"CriticalRoute": critical, "StorageRoute": storage, "HotRoute": hot});
        routes
            .as_object_mut()
            .unwrap()
            .extend(skipped.as_object().unwrap().clone());
        routes
    };
    let cases = [
        Case {
            what: "critical and hot: the queue once, via both routes, with its enrichments",
            message: message(Some("critical"), r#"{"windSpeed": 42.5}"#, "application/json"),
            twin: None,
            expected: json!({
                "routes": routes("true", "false", "true"),
                "endpoints": [{"name": "CriticalQueue", "via": ["CriticalRoute", "HotRoute"],
                               "enrichments": {"myIotHub": "ContosoTestHub", "region": "westus"}}],
                "fallbackFired": false, "orphaned": false,
            }),
        },
        Case {
            what: "storage without a twin: the twin enrichment stamps its own text",
            message: message(Some("storage"), r#"{"windSpeed": 12}"#, "application/json"),
            twin: None,
            expected: json!({
                "routes": routes("false", "true", "false"),
                "endpoints": [{"name": "StorageContainer", "via": ["StorageRoute"],
                               "enrichments": {"myIotHub": "ContosoTestHub", "deviceLocation": "$twin.tags.location"}}],
                "fallbackFired": false, "orphaned": false,
            }),
        },
        Case {
            what: "storage with a twin, a text body: $body is undefined, the twin value is stamped",
            message: message(Some("storage"), "wind 12 m/s", "text/plain"),
            twin: Some(json!({"tags": {"location": "Seattle"}})),
            expected: json!({
                "routes": routes("false", "true", "undefined"),
                "endpoints": [{"name": "StorageContainer", "via": ["StorageRoute"],
                               "enrichments": {"myIotHub": "ContosoTestHub", "deviceLocation": "Seattle"}}],
                "fallbackFired": false, "orphaned": false,
            }),
        },
        Case {
            what: "info: no route matches, the fallback takes it to events, unenriched",
            message: message(Some("info"), r#"{"windSpeed": 3}"#, "application/json"),
            twin: None,
            expected: json!({
                "routes": routes("false", "false", "false"),
                "endpoints": [{"name": "events", "via": ["$fallback"], "enrichments": {}}],
                "fallbackFired": true, "orphaned": false,
            }),
        },
        Case {
            what: "no level: undefined is no match, so the fallback fires",
            message: message(None, "not json", "text/plain"),
            twin: None,
            expected: json!({
                "routes": routes("undefined", "undefined", "undefined"),
                "endpoints": [{"name": "events", "via": ["$fallback"], "enrichments": {}}],
                "fallbackFired": true, "orphaned": false,
            }),
        },
    ];
    for case in cases {
        let message = write(dir.path(), "message.json", &case.message);
        let mut args = vec![
            "route",
            "test",
            "--config",
            path(&config),
            "--message",
            path(&message),
            "--hub-name",
            "ContosoTestHub",
        ];
        let twin = case.twin.map(|twin| write(dir.path(), "twin.json", &twin));
        if let Some(twin) = &twin {
            args.extend(["--twin", path(twin)]);
        }
        let run = hub(&args);
        assert_eq!(run.code, 0, "{}: {}", case.what, run.stderr);
        let report: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(decision(&report), case.expected, "{}", case.what);
        assert_eq!(report["source"], "DeviceMessages");
    }

    // Why $body was undefined is part of the report.
    let message = write(
        dir.path(),
        "message.json",
        &message(Some("storage"), "wind", "text/plain"),
    );
    let run = hub(&[
        "route",
        "test",
        "--config",
        path(&config),
        "--message",
        path(&message),
    ]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["bodyError"], "Content type 'text/plain' is not supported.");
}

#[test]
fn route_list_shows_the_routing_with_connection_strings_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "routing.json", &routing());
    let run = hub(&[
        "route",
        "list",
        "--config",
        path(&config),
        "--hub-name",
        "ContosoTestHub",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listing: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listing["hubName"], "ContosoTestHub");
    let endpoints: Vec<Value> = listing["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json!([
                e["name"],
                e["type"],
                e["backend"],
                e["connectionString"],
                e["queueName"],
                e["enrichments"]
            ])
        })
        .collect();
    assert_eq!(
        endpoints,
        [
            json!(["events", "events", "builtIn", null, null, []]),
            json!([
                "CriticalQueue",
                "serviceBusQueue",
                "serviceBus",
                "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=iothubroutes;SharedAccessKey=****;EntityPath=critical",
                "critical",
                ["myIotHub", "region"]
            ]),
            json!([
                "AuditQueue",
                "serviceBusQueue",
                "amqp",
                "amqp://routes:****@rabbit.local:5672",
                "audit",
                []
            ]),
            json!([
                "StorageContainer",
                "storageContainer",
                "azureBlob",
                "DefaultEndpointsProtocol=https;AccountName=contosostorage;AccountKey=****;EndpointSuffix=core.windows.net",
                null,
                ["myIotHub", "deviceLocation"]
            ]),
        ]
    );
    let routes: Vec<Value> = listing["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["name"], r["source"], r["endpoint"], r["enabled"]]))
        .collect();
    assert_eq!(
        routes,
        [
            json!(["CriticalRoute", "DeviceMessages", "CriticalQueue", true]),
            json!(["StorageRoute", "DeviceMessages", "StorageContainer", true]),
            json!(["HotRoute", "DeviceMessages", "CriticalQueue", true]),
            json!(["AuditRoute", "DeviceMessages", "AuditQueue", false]),
            json!(["Lifecycle", "DeviceLifecycleEvents", "AuditQueue", true]),
        ]
    );
    assert_eq!(
        listing["fallback"],
        json!({"name": "$fallback", "condition": "true", "endpoint": "events", "enabled": true})
    );
    assert_eq!(
        listing["enrichments"][2],
        json!({"key": "deviceLocation", "value": "$twin.tags.location", "endpointNames": ["StorageContainer"]})
    );

    // An ARM export lists as exported: its keys were masked already, and no override is needed to look.
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/routing/arm-export.json");
    let run = hub(&["route", "list", "--config", path(&fixture)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listing: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        listing["endpoints"][1]["connectionString"],
        "Endpoint=sb://contososbnamespace.servicebus.windows.net/;SharedAccessKeyName=iothubroutes_ContosoTestHub;SharedAccessKey=****;EntityPath=contososbqueue"
    );
}

#[test]
fn route_tools_refuse_an_invalid_routing_file_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = routing();
    bad["routes"][0]["name"] = json!("critical route");
    bad["routes"][2]["condition"] = json!("$body.windSpeed >");
    let config = write(dir.path(), "routing.json", &bad);
    let message = write(
        dir.path(),
        "message.json",
        &message(Some("critical"), "{}", "application/json"),
    );
    let expected = [
        r#"hub route: routes[0] "critical route": name must be 1 to 64 letters, digits, '-', '.' or '_'"#,
        r#"hub route: routes[2] "HotRoute": condition 1:18: Syntax error: expected an expression, found the end of the condition"#,
    ];
    for args in [
        vec![
            "route",
            "test",
            "--config",
            path(&config),
            "--message",
            path(&message),
        ],
        vec!["route", "list", "--config", path(&config)],
    ] {
        let run = hub(&args);
        assert_eq!(
            (
                run.code,
                run.stdout.as_str(),
                run.stderr.lines().collect::<Vec<_>>()
            ),
            (64, "", expected.to_vec()),
            "{args:?}"
        );
    }
}
