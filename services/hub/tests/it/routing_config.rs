//! The routing configuration: an ARM export loads unchanged, and every invalid case gives its one
//! line (all at once). Backends and secrets: `routing_backends.rs`.

use std::path::{Path, PathBuf};

use hub::routing::{
    BuildOptions, EndpointId, EndpointKind, LoadError, QueueBackend, Routing, RoutingConfig, StorageBackend,
    StorageEncoding,
};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/routing")
        .join(name)
}

/// Local backends for the tutorial's two endpoints.
pub(crate) fn local() -> BuildOptions {
    BuildOptions::new("ContosoTestHub")
        .with_override("CriticalQueue", "sqlite:///tmp/hub/queues.db")
        .with_override("StorageContainer", "file:///tmp/hub/blobs")
}

/// A minimal valid configuration to break one thing at a time.
pub(crate) fn base() -> Value {
    json!({
        "endpoints": {
            "serviceBusQueues": [{
                "name": "CriticalQueue",
                "connectionString": "sqlite://queues.db",
                "entityPath": "critical"
            }],
            "storageContainers": [{
                "name": "StorageContainer",
                "connectionString": "file:///tmp/blobs",
                "containerName": "results",
                "encoding": "JSON",
                "batchFrequencyInSeconds": 60,
                "maxChunkSizeInBytes": 10485760
            }]
        },
        "routes": [
            {"name": "CriticalRoute", "source": "DeviceMessages", "condition": "level = \"critical\"",
             "endpointNames": ["CriticalQueue"], "isEnabled": true},
            {"name": "StorageRoute", "source": "DeviceMessages", "condition": "level = \"storage\"",
             "endpointNames": ["StorageContainer"], "isEnabled": true}
        ],
        "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true",
                          "endpointNames": ["events"], "isEnabled": true},
        "enrichments": []
    })
}

pub(crate) fn build(config: &Value, options: &BuildOptions) -> Result<Routing, Vec<String>> {
    let config = RoutingConfig::from_json(&config.to_string()).unwrap();
    config.build(options).map_err(|errors| errors.lines())
}

/// Applies `edit` to the base configuration and expects exactly `expected` problems, in order.
#[track_caller]
fn check(edit: impl FnOnce(&mut Value), options: &BuildOptions, expected: &[&str]) {
    let mut config = base();
    edit(&mut config);
    match build(&config, options) {
        Ok(_) => assert!(expected.is_empty(), "expected {expected:#?}, but it built"),
        Err(lines) => assert_eq!(lines, expected),
    }
}

#[test]
fn the_arm_export_loads_unchanged_with_local_overrides() {
    let config = RoutingConfig::from_path(&fixture("arm-export.json")).unwrap();
    let routing = config.build(&local()).unwrap();
    let names: Vec<&str> = routing.endpoints().iter().map(|e| e.name()).collect();
    assert_eq!(names, ["events", "CriticalQueue", "StorageContainer"]);
    let queue = routing.endpoint(EndpointId::EVENTS);
    assert_eq!(queue.kind(), EndpointKind::Events);
    let queue = &routing.endpoints()[1];
    assert_eq!(queue.kind(), EndpointKind::Queue(QueueBackend::Sqlite));
    assert_eq!(queue.queue_name(), Some("contososbqueue"));
    assert!(queue.overridden());
    assert_eq!(
        queue.connection_string().unwrap().expose_secret(),
        "sqlite:///tmp/hub/queues.db"
    );
    let storage = &routing.endpoints()[2];
    assert_eq!(
        storage.kind(),
        EndpointKind::Storage(StorageBackend::LocalDirectory)
    );
    let settings = storage.storage().unwrap();
    assert_eq!(settings.container_name, "contosoresults");
    assert_eq!(settings.encoding, StorageEncoding::Json);
    assert_eq!(settings.batch_frequency.as_secs(), 100);
    assert_eq!(settings.max_chunk_size_bytes, 104_857_600);
    assert_eq!(
        settings.file_name_format,
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}"
    );
    let routes: Vec<(&str, Option<&str>, &str)> = routing
        .routes()
        .iter()
        .map(|r| (r.name(), r.condition(), routing.endpoint(r.endpoint()).name()))
        .collect();
    assert_eq!(
        routes,
        [
            ("CriticalRoute", Some("level=\"critical\""), "CriticalQueue"),
            ("StorageRoute", Some("level=\"storage\""), "StorageContainer"),
        ]
    );
    let fallback = routing.fallback().unwrap();
    assert!(fallback.enabled());
    assert_eq!(
        (fallback.name(), fallback.endpoint()),
        ("$fallback", EndpointId::EVENTS)
    );
}

#[test]
fn the_arm_export_without_overrides_names_each_masked_key() {
    let config = RoutingConfig::from_path(&fixture("arm-export.json")).unwrap();
    let errors = config.build(&BuildOptions::new("ContosoTestHub")).unwrap_err();
    assert_eq!(
        errors.lines(),
        [
            "endpoints.serviceBusQueues[0] \"CriticalQueue\": connectionString has a masked key (\"****\", as \
             ARM exports it); give this endpoint a local connection string override",
            "endpoints.storageContainers[0] \"StorageContainer\": connectionString has a masked key (\"****\", \
             as ARM exports it); give this endpoint a local connection string override",
        ]
    );
}

#[test]
fn the_yaml_export_is_the_same_routing() {
    let json = RoutingConfig::from_path(&fixture("arm-export.json")).unwrap();
    let yaml = RoutingConfig::from_path(&fixture("arm-export.yaml")).unwrap();
    let listing =
        |config: RoutingConfig| serde_json::to_value(config.build(&local()).unwrap().list()).unwrap();
    assert_eq!(listing(json), listing(yaml));
}

#[test]
fn every_arm_field_is_accepted() {
    // Every field of ARM 2023-06-30's routing types, as ARM JSON spells them (`cosmosDBSqlContainers`).
    let identity = json!({"userAssignedIdentity": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/hub"});
    let config = json!({
        "endpoints": {
            "serviceBusQueues": [{
                "id": "q1", "name": "Q", "connectionString": null,
                "endpointUri": "sb://ns.servicebus.windows.net", "entityPath": "q",
                "authenticationType": "identityBased", "identity": identity,
                "subscriptionId": "s", "resourceGroup": "g"
            }],
            "serviceBusTopics": [], "eventHubs": [], "cosmosDBSqlContainers": [],
            "storageContainers": [{
                "id": "s1", "name": "S", "connectionString": null,
                "endpointUri": "https://acct.blob.core.windows.net/", "authenticationType": "IdentityBased",
                "identity": {"userAssignedIdentity": null}, "subscriptionId": "s", "resourceGroup": "g",
                "containerName": "c", "fileNameFormat": "{iothub}-{partition}-{YYYY}{MM}{DD}{HH}{mm}.avro",
                "batchFrequencyInSeconds": 720, "maxChunkSizeInBytes": 524288000, "encoding": "AvroDeflate"
            }]
        },
        "routes": [{"name": "r", "source": "DeviceLifecycleEvents", "endpointNames": ["Q"], "isEnabled": false}],
        "fallbackRoute": {"source": "DeviceMessages", "endpointNames": ["S"], "isEnabled": false},
        "enrichments": [{"key": "site", "value": "$twin.tags.site", "endpointNames": ["Q", "S", "events"]}]
    });
    let options = BuildOptions::new("hub")
        .with_override("Q", "amqp://guest:guest@localhost:5672")
        .with_override("S", "UseDevelopmentStorage=true");
    let routing = build(&config, &options).unwrap();
    assert_eq!(
        routing.endpoints()[1].kind(),
        EndpointKind::Queue(QueueBackend::Amqp)
    );
    assert_eq!(routing.endpoints()[1].queue_name(), Some("q"));
    assert_eq!(
        routing.endpoints()[2].kind(),
        EndpointKind::Storage(StorageBackend::AzureBlob)
    );
    assert_eq!(
        routing.endpoints()[2].storage().unwrap().encoding,
        StorageEncoding::AvroDeflate
    );
    assert_eq!(routing.fallback().unwrap().name(), "$fallback");

    // Identity-based endpoints without an override cannot run locally.
    assert_eq!(
        build(&config, &BuildOptions::new("hub")).unwrap_err(),
        [
            "endpoints.serviceBusQueues[0] \"Q\": authenticationType identityBased needs an Azure managed \
             identity, which the local hub does not have; give this endpoint a local connection string override",
            "endpoints.storageContainers[0] \"S\": authenticationType identityBased needs an Azure managed \
             identity, which the local hub does not have; give this endpoint a local connection string override",
        ]
    );
}

#[test]
fn nulls_and_omissions_take_the_defaults() {
    let config = json!({
        "endpoints": {
            "serviceBusQueues": null, "serviceBusTopics": null, "eventHubs": null,
            "cosmosDbSqlContainers": null,
            "storageContainers": [{"name": "S", "connectionString": "file://blobs", "containerName": "c",
                                   "fileNameFormat": null, "batchFrequencyInSeconds": null,
                                   "maxChunkSizeInBytes": null, "encoding": null}]
        },
        "routes": null,
        "enrichments": null
    });
    let routing = build(&config, &BuildOptions::new("hub")).unwrap();
    let settings = routing.endpoints()[1].storage().unwrap();
    assert_eq!(settings.file_name_format, hub::routing::DEFAULT_FILE_NAME_FORMAT);
    assert_eq!(settings.batch_frequency.as_secs(), 300);
    assert_eq!(settings.max_chunk_size_bytes, 314_572_800);
    assert_eq!(settings.encoding, StorageEncoding::Avro);
    assert!(routing.fallback().is_none());
    assert!(routing.has_no_routes());

    let empty = RoutingConfig::from_json("{}")
        .unwrap()
        .build(&BuildOptions::new("hub"))
        .unwrap();
    assert_eq!(empty.endpoints().len(), 1);
}

#[test]
fn parse_errors_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 5] = [
        (
            "unknown.json",
            "{\n  \"routes\": [],\n  \"extra\": 1\n}",
            "unknown field `extra`, expected one of `endpoints`, `routes`, `fallbackRoute`, `enrichments` at line 3 column 9",
        ),
        (
            "route.json",
            "{\"routes\": [{\"name\": \"r\", \"source\": \"DeviceMessages\", \"endpointNames\": [\"events\"]}]}",
            "missing field `isEnabled` at line 1 column 82",
        ),
        (
            "broken.json",
            "{\"routes\": [",
            "EOF while parsing a list at line 1 column 12",
        ),
        (
            "unknown.yaml",
            "routes: []\nendpoints:\n  serviceBusQueues:\n  - name: q\n    connectionStrin: x\n",
            "endpoints.serviceBusQueues[0]: unknown field `connectionStrin`",
        ),
        ("tabs.yml", "routes:\n\t- a", "line 2 column 1"),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let error = RoutingConfig::from_path(&path).unwrap_err().to_string();
        assert!(error.contains(expected), "{name}: {error}");
        assert!(error.starts_with(&path.display().to_string()), "{name}: {error}");
    }
    let error = RoutingConfig::from_path(&dir.path().join("routing.toml")).unwrap_err();
    assert!(matches!(error, LoadError::Extension { .. }), "{error}");
    let error = RoutingConfig::from_path(&dir.path().join("missing.json")).unwrap_err();
    assert!(matches!(error, LoadError::Read { .. }), "{error}");
}

#[test]
fn the_base_configuration_is_valid() {
    check(|_| {}, &BuildOptions::new("hub"), &[]);
}

#[test]
fn each_invalid_route_gives_one_line() {
    type Edit = fn(&mut Value);
    let cases: &[(Edit, &str)] = &[
        (
            |c| c["routes"][1]["name"] = json!("to storage"),
            "routes[1] \"to storage\": name must be 1 to 64 letters, digits, '-', '.' or '_'",
        ),
        (
            |c| c["routes"][1]["name"] = json!("x".repeat(65)),
            "name must be 1 to 64 letters, digits, '-', '.' or '_'",
        ),
        (
            |c| c["routes"][1]["name"] = json!("CriticalRoute"),
            "routes[1] \"CriticalRoute\": name is already used by routes[0]",
        ),
        (
            |c| c["routes"][1]["endpointNames"] = json!(["StorageContainer", "events"]),
            "routes[1] \"StorageRoute\": endpointNames must name exactly one endpoint, not 2",
        ),
        (
            |c| c["routes"][1]["endpointNames"] = json!([]),
            "routes[1] \"StorageRoute\": endpointNames must name exactly one endpoint, not 0",
        ),
        (
            |c| c["routes"][1]["endpointNames"] = json!(["Foo"]),
            "routes[1] \"StorageRoute\": endpoint \"Foo\" does not exist",
        ),
        (
            |c| c["routes"][1]["source"] = json!("Telemetry"),
            "routes[1] \"StorageRoute\": source \"Telemetry\" is not one of DeviceMessages, TwinChangeEvents, \
             DeviceLifecycleEvents, DeviceJobLifecycleEvents, DigitalTwinChangeEvents, \
             DeviceConnectionStateEvents, MqttBrokerMessages",
        ),
        (
            |c| c["routes"][1]["condition"] = json!("level = 'storage"),
            "routes[1] \"StorageRoute\": condition 1:9: Syntax error: unterminated string (hint: close the \
             string with the quote it opens with)",
        ),
        (
            |c| c["routes"][1]["condition"] = json!("level = 1"),
            "routes[1] \"StorageRoute\": condition 1:7: Invalid operands to binary operator '=': have \
             'string' and 'number', expected 'string' and 'string' (hint: properties are strings: compare with \
             a string ('3') or convert with as_number(...))",
        ),
    ];
    for (edit, expected) in cases {
        let mut config = base();
        edit(&mut config);
        let lines = build(&config, &BuildOptions::new("hub")).unwrap_err();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].ends_with(expected),
            "{:?}\n  does not end with\n{expected:?}",
            lines[0]
        );
    }
}

#[test]
fn each_invalid_endpoint_gives_one_line() {
    let hub = BuildOptions::new("hub");
    let queue = "endpoints.serviceBusQueues[0] \"CriticalQueue\"";
    let storage = "endpoints.storageContainers[0] \"StorageContainer\"";
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, String)> = vec![
        (
            |c| c["endpoints"]["serviceBusQueues"][0]["connectionString"] = json!("file:///x"),
            format!(
                "{queue}: connectionString is for a storage endpoint; a queue endpoint needs \
                 Endpoint=sb://...;EntityPath=..., sqlite://<file> or amqp[s]://<host>"
            ),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["connectionString"] = json!("amqp://h"),
            format!(
                "{storage}: connectionString is for a queue endpoint; a storage endpoint needs \
                 DefaultEndpointsProtocol=...;AccountName=...;AccountKey=..., UseDevelopmentStorage=true, \
                 BlobEndpoint=... or file://<directory>"
            ),
        ),
        (
            |c| c["endpoints"]["serviceBusQueues"][0]["connectionString"] = json!("redis://h"),
            format!(
                "{queue}: connectionString is not one the hub knows; expected Endpoint=sb://...;EntityPath=..., \
                 sqlite://<file> or amqp[s]://<host>"
            ),
        ),
        (
            |c| c["endpoints"]["serviceBusQueues"][0]["connectionString"] = json!(null),
            format!("{queue}: no connectionString; give one, or give this endpoint a local connection string override"),
        ),
        (
            |c| {
                c["endpoints"]["serviceBusQueues"][0]["connectionString"] =
                    json!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a2V5");
                c["endpoints"]["serviceBusQueues"][0]["entityPath"] = json!(null);
            },
            format!(
                "{queue}: no queue name: the Service Bus connection string has no EntityPath and the endpoint \
                 no entityPath"
            ),
        ),
        (
            |c| c["endpoints"]["serviceBusQueues"][0]["authenticationType"] = json!("sas"),
            format!("{queue}: authenticationType \"sas\" is not keyBased or identityBased"),
        ),
        (
            |c| c["endpoints"]["serviceBusQueues"][0]["name"] = json!("events"),
            // The route naming CriticalQueue loses its endpoint too.
            "endpoints.serviceBusQueues[0] \"events\": name is reserved (events, fileNotifications and \
             $default name built-in endpoints)"
                .to_owned(),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["name"] = json!("CriticalQueue"),
            "endpoints.storageContainers[0] \"CriticalQueue\": name is already used by \
             endpoints.serviceBusQueues[0] \"CriticalQueue\""
                .to_owned(),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["containerName"] = json!(""),
            format!("{storage}: containerName is required"),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["batchFrequencyInSeconds"] = json!(59),
            format!(
                "{storage}: batchFrequencyInSeconds must be 60 to 720, not 59 (the development override \
                 allow_short_batches permits shorter batches)"
            ),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["batchFrequencyInSeconds"] = json!(721),
            format!(
                "{storage}: batchFrequencyInSeconds must be 60 to 720, not 721 (the development override \
                 allow_short_batches permits shorter batches)"
            ),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["maxChunkSizeInBytes"] = json!(10485759),
            format!(
                "{storage}: maxChunkSizeInBytes must be 10485760 to 524288000, not 10485759 (the development \
                 override allow_short_batches permits shorter batches)"
            ),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["maxChunkSizeInBytes"] = json!(524288001),
            format!(
                "{storage}: maxChunkSizeInBytes must be 10485760 to 524288000, not 524288001 (the development \
                 override allow_short_batches permits shorter batches)"
            ),
        ),
        (
            |c| c["endpoints"]["storageContainers"][0]["encoding"] = json!("xml"),
            format!("{storage}: encoding \"xml\" is not one of avro, avroDeflate, json"),
        ),
        (
            |c| {
                c["endpoints"]["storageContainers"][0]["fileNameFormat"] =
                    json!("{iothub}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{YYYY}{ext}")
            },
            format!(
                "{storage}: fileNameFormat \"{{iothub}}/{{YYYY}}/{{MM}}/{{DD}}/{{HH}}/{{mm}}/{{YYYY}}{{ext}}\" \
                 lacks {{partition}}, has {{YYYY}} 2 times, has unknown token {{ext}}; it needs each of \
                 {{iothub}} {{partition}} {{YYYY}} {{MM}} {{DD}} {{HH}} {{mm}} exactly once"
            ),
        ),
        (
            |c| {
                c["endpoints"]["eventHubs"] = json!([{"name": "Hubs", "connectionString": "Endpoint=sb://x/"}])
            },
            "endpoints.eventHubs[0] \"Hubs\": Event Hubs endpoints are not supported by the local hub; use \
             serviceBusQueues or storageContainers"
                .to_owned(),
        ),
        (
            |c| c["endpoints"]["serviceBusTopics"] = json!([{"name": "T"}]),
            "endpoints.serviceBusTopics[0] \"T\": Service Bus topic endpoints are not supported by the local \
             hub; use serviceBusQueues or storageContainers"
                .to_owned(),
        ),
        (
            |c| {
                c["endpoints"]["cosmosDbSqlContainers"] =
                    json!([{"name": "C", "endpointUri": "https://c", "databaseName": "d", "containerName": "c",
                            "primaryKey": "****"}])
            },
            "endpoints.cosmosDbSqlContainers[0] \"C\": Cosmos DB endpoints are not supported by the local hub; \
             use serviceBusQueues or storageContainers"
                .to_owned(),
        ),
    ];
    for (edit, expected) in cases {
        let mut config = base();
        edit(&mut config);
        let lines = build(&config, &hub).unwrap_err();
        assert_eq!(lines.first(), Some(&expected), "{lines:#?}");
    }
}

#[test]
fn a_route_to_an_unsupported_endpoint_is_reported_once() {
    check(
        |c| {
            c["endpoints"]["eventHubs"] = json!([{"name": "Hubs"}]);
            c["routes"][0]["endpointNames"] = json!(["Hubs"]);
        },
        &BuildOptions::new("hub"),
        &[
            "endpoints.eventHubs[0] \"Hubs\": Event Hubs endpoints are not supported by the local hub; use \
           serviceBusQueues or storageContainers",
        ],
    );
}

#[test]
fn each_invalid_fallback_or_enrichment_gives_one_line() {
    let hub = BuildOptions::new("hub");
    type Edit = fn(&mut Value);
    let cases: &[(Edit, &str)] = &[
        (
            |c| c["fallbackRoute"]["source"] = json!("DeviceLifecycleEvents"),
            "fallbackRoute: source must be DeviceMessages (only telemetry falls back), not \"DeviceLifecycleEvents\"",
        ),
        (
            |c| c["fallbackRoute"]["endpointNames"] = json!(["events", "CriticalQueue"]),
            "fallbackRoute: endpointNames must name exactly one endpoint, not 2",
        ),
        (
            |c| c["fallbackRoute"]["endpointNames"] = json!(["nowhere"]),
            "fallbackRoute: endpoint \"nowhere\" does not exist",
        ),
        (
            |c| c["fallbackRoute"]["condition"] = json!("true AND"),
            "fallbackRoute: condition 1:9: Syntax error: expected an expression, found the end of the condition",
        ),
        (
            |c| c["enrichments"] = json!([{"key": "my key", "value": "v", "endpointNames": ["events"]}]),
            "enrichments[0] \"my key\": key must be one or more letters, digits, '-', '_' or '.'",
        ),
        (
            |c| c["enrichments"] = json!([{"key": "k", "value": "", "endpointNames": ["events"]}]),
            "enrichments[0] \"k\": value must not be empty",
        ),
        (
            |c| c["enrichments"] = json!([{"key": "k", "value": "$twin.tags", "endpointNames": ["events"]}]),
            "enrichments[0] \"k\": value \"$twin.tags\" is not supported: a value starting with '$' must be \
             $iothubname, $twin.tags.<path>, $twin.properties.desired.<path> or $twin.properties.reported.<path>",
        ),
        (
            |c| c["enrichments"] = json!([{"key": "k", "value": "$deviceid", "endpointNames": ["events"]}]),
            "enrichments[0] \"k\": value \"$deviceid\" is not supported: a value starting with '$' must be \
             $iothubname, $twin.tags.<path>, $twin.properties.desired.<path> or $twin.properties.reported.<path>",
        ),
        (
            |c| {
                c["enrichments"] =
                    json!([{"key": "k", "value": "$twin.properties.x.y", "endpointNames": ["events"]}])
            },
            "enrichments[0] \"k\": value \"$twin.properties.x.y\" is not supported: a value starting with '$' \
             must be $iothubname, $twin.tags.<path>, $twin.properties.desired.<path> or \
             $twin.properties.reported.<path>",
        ),
        (
            |c| c["enrichments"] = json!([{"key": "k", "value": "v", "endpointNames": []}]),
            "enrichments[0] \"k\": endpointNames must name at least one endpoint",
        ),
        (
            |c| c["enrichments"] = json!([{"key": "k", "value": "v", "endpointNames": ["events", "Nope"]}]),
            "enrichments[0] \"k\": endpoint \"Nope\" does not exist",
        ),
        (
            |c| {
                c["enrichments"] = json!([{"key": "k", "value": "v", "endpointNames": ["events"]},
                                          {"key": "k", "value": "w", "endpointNames": ["CriticalQueue"]}])
            },
            "enrichments[1] \"k\": key is already used by enrichments[0]",
        ),
    ];
    for (edit, expected) in cases {
        check(edit, &hub, &[expected]);
    }
}

#[test]
fn limits_are_iot_hubs() {
    let hub = BuildOptions::new("hub");
    check(
        |c| {
            c["routes"] = Value::Array(
                (0..101)
                    .map(|i| json!({"name": format!("r{i}"), "source": "DeviceMessages", "endpointNames": ["events"], "isEnabled": true}))
                    .collect(),
            );
        },
        &hub,
        &["routes: 101 routes; IoT Hub allows at most 100"],
    );
    check(
        |c| {
            c["endpoints"]["serviceBusQueues"] = Value::Array(
                (0..10)
                    .map(|i| json!({"name": format!("q{i}"), "connectionString": "sqlite://q.db"}))
                    .collect(),
            );
            c["routes"][0]["endpointNames"] = json!(["q0"]);
        },
        &hub,
        &["endpoints: 11 custom endpoints; IoT Hub allows at most 10"],
    );
    check(
        |c| {
            c["enrichments"] = Value::Array(
                (0..11)
                    .map(|i| json!({"key": format!("k{i}"), "value": "v", "endpointNames": ["events"]}))
                    .collect(),
            );
        },
        &hub,
        &["enrichments: 11 enrichments; IoT Hub allows at most 10"],
    );
    // Exactly at the limits is fine.
    check(
        |c| {
            c["routes"] = Value::Array(
                (0..100)
                    .map(|i| json!({"name": format!("r{i}"), "source": "DeviceMessages", "endpointNames": ["events"], "isEnabled": true}))
                    .collect(),
            );
        },
        &hub,
        &[],
    );
}

#[test]
fn all_problems_are_reported_at_once_in_order() {
    let mut config = base();
    config["endpoints"]["serviceBusQueues"][0]["connectionString"] =
        json!("Endpoint=sb://x/;SharedAccessKey=****");
    config["endpoints"]["storageContainers"][0]["batchFrequencyInSeconds"] = json!(10);
    config["routes"][0]["condition"] = json!("level = 'a' AND (");
    config["routes"][1]["endpointNames"] = json!(["Foo"]);
    config["routes"][1]["source"] = json!("Bogus");
    config["fallbackRoute"]["isEnabled"] = json!(false);
    config["fallbackRoute"]["endpointNames"] = json!([]);
    config["enrichments"] = json!([{"key": "a b", "value": "$nope", "endpointNames": ["Bar"]}]);
    let options = BuildOptions::new("hub").with_override("Typo", "sqlite://q.db");
    assert_eq!(
        build(&config, &options).unwrap_err(),
        [
            "endpoints.serviceBusQueues[0] \"CriticalQueue\": connectionString has a masked key (\"****\", as ARM \
             exports it); give this endpoint a local connection string override",
            "endpoints.storageContainers[0] \"StorageContainer\": batchFrequencyInSeconds must be 60 to 720, not 10 \
             (the development override allow_short_batches permits shorter batches)",
            "routes[0] \"CriticalRoute\": condition 1:18: Syntax error: expected an expression, found the end of \
             the condition",
            "routes[1] \"StorageRoute\": source \"Bogus\" is not one of DeviceMessages, TwinChangeEvents, \
             DeviceLifecycleEvents, DeviceJobLifecycleEvents, DigitalTwinChangeEvents, DeviceConnectionStateEvents, \
             MqttBrokerMessages",
            "routes[1] \"StorageRoute\": endpoint \"Foo\" does not exist",
            "fallbackRoute: endpointNames must name exactly one endpoint, not 0",
            "enrichments[0] \"a b\": key must be one or more letters, digits, '-', '_' or '.'",
            "enrichments[0] \"a b\": value \"$nope\" is not supported: a value starting with '$' must be \
             $iothubname, $twin.tags.<path>, $twin.properties.desired.<path> or $twin.properties.reported.<path>",
            "enrichments[0] \"a b\": endpoint \"Bar\" does not exist",
            "endpoint overrides \"Typo\": no serviceBusQueues or storageContainers endpoint has this name",
        ]
    );
}

#[test]
fn short_batches_need_the_development_override() {
    let short = |c: &mut Value| {
        c["endpoints"]["storageContainers"][0]["batchFrequencyInSeconds"] = json!(1);
        c["endpoints"]["storageContainers"][0]["maxChunkSizeInBytes"] = json!(1024);
    };
    check(short, &BuildOptions::new("hub").with_short_batches(true), &[]);
    let storage = "endpoints.storageContainers[0] \"StorageContainer\"";
    check(
        short,
        &BuildOptions::new("hub"),
        &[
            &format!(
                "{storage}: batchFrequencyInSeconds must be 60 to 720, not 1 (the development override \
                 allow_short_batches permits shorter batches)"
            ),
            &format!(
                "{storage}: maxChunkSizeInBytes must be 10485760 to 524288000, not 1024 (the development \
                 override allow_short_batches permits shorter batches)"
            ),
        ],
    );
    check(
        |c| {
            c["endpoints"]["storageContainers"][0]["batchFrequencyInSeconds"] = json!(0);
            c["endpoints"]["storageContainers"][0]["maxChunkSizeInBytes"] = json!(1023);
        },
        &BuildOptions::new("hub").with_short_batches(true),
        &[
            &format!("{storage}: batchFrequencyInSeconds must be 1 to 720, not 0"),
            &format!("{storage}: maxChunkSizeInBytes must be 1024 to 524288000, not 1023"),
        ],
    );
}
