//! The routing configuration's backends and secrets: connection strings pick the backend, secrets
//! never print (errors, listings, serialised configs), and tools can evaluate an export whose
//! connection strings are masked.

use hub::routing::{
    BuildOptions, EndpointKind, QueueBackend, Routing, RoutingConfig, StorageBackend, redact,
};
use serde_json::{Value, json};

use crate::routing_config::{base, build, fixture};

#[test]
fn connection_strings_pick_the_backend() {
    let queue = |cs: &str| {
        let mut config = base();
        config["endpoints"]["serviceBusQueues"][0]["connectionString"] = json!(cs);
        config["endpoints"]["serviceBusQueues"][0]["entityPath"] = json!(null);
        let routing = build(&config, &BuildOptions::new("hub")).unwrap();
        let endpoint = &routing.endpoints()[1];
        (endpoint.kind(), endpoint.queue_name().map(str::to_owned))
    };
    let sb = |q: &str| (EndpointKind::Queue(QueueBackend::ServiceBus), Some(q.to_owned()));
    let cases = [
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a2V5;EntityPath=crit",
            sb("crit"),
        ),
        (
            "endpoint=SB://localhost;sharedaccesskeyname=k;sharedaccesskey=a2V5;entitypath=q;UseDevelopmentEmulator=true",
            sb("q"),
        ),
        (
            "sqlite://data/queues.db",
            (
                EndpointKind::Queue(QueueBackend::Sqlite),
                Some("CriticalQueue".to_owned()),
            ),
        ),
        (
            "amqp://guest:guest@127.0.0.1:5672",
            (
                EndpointKind::Queue(QueueBackend::Amqp),
                Some("CriticalQueue".to_owned()),
            ),
        ),
        (
            "AMQPS://user:pw@broker:5671/vhost",
            (
                EndpointKind::Queue(QueueBackend::Amqp),
                Some("CriticalQueue".to_owned()),
            ),
        ),
    ];
    for (cs, expected) in cases {
        assert_eq!(queue(cs), expected, "{cs}");
    }

    let storage = |cs: &str| {
        let mut config = base();
        config["endpoints"]["storageContainers"][0]["connectionString"] = json!(cs);
        build(&config, &BuildOptions::new("hub")).unwrap().endpoints()[2].kind()
    };
    let blob = EndpointKind::Storage(StorageBackend::AzureBlob);
    for cs in [
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        "UseDevelopmentStorage=true",
        "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1",
    ] {
        assert_eq!(storage(cs), blob, "{cs}");
    }
    // A SAS storage string is Azure Blob too, but the writer needs an account key: refused at load.
    let mut config = base();
    config["endpoints"]["storageContainers"][0]["connectionString"] =
        json!("BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=2020&sig=abc");
    assert_eq!(
        build(&config, &BuildOptions::new("hub")).err(),
        Some(vec![
            "endpoints.storageContainers[0] \"StorageContainer\": connectionString: the storage connection \
             string's `SharedAccessSignature` is invalid: SAS connection strings are not supported here; use \
             AccountName and AccountKey"
                .to_owned()
        ])
    );
    assert_eq!(
        storage("file:///var/hub/blobs"),
        EndpointKind::Storage(StorageBackend::LocalDirectory)
    );

    // The entity in the connection string wins over the endpoint's entityPath.
    let mut config = base();
    config["endpoints"]["serviceBusQueues"][0]["connectionString"] =
        json!("Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=a2V5;EntityPath=fromstring");
    let routing = build(&config, &BuildOptions::new("hub")).unwrap();
    assert_eq!(routing.endpoints()[1].queue_name(), Some("fromstring"));
}

#[test]
fn secrets_are_redacted() {
    let cases = [
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=c2VjcmV0;EntityPath=q",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=****;EntityPath=q",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=****;EndpointSuffix=core.windows.net",
        ),
        (
            "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2020&sig=c2VjcmV0",
            "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=****",
        ),
        (
            "amqp://guest:secret@localhost:5672",
            "amqp://guest:****@localhost:5672",
        ),
        (
            "amqps://user:p%40ss@broker:5671/vh?profile=rabbitmq&password=x",
            "amqps://user:****@broker:5671/vh?profile=rabbitmq&password=****",
        ),
        (
            "sqlite://data/queues.db?synchronous=full",
            "sqlite://data/queues.db?synchronous=full",
        ),
        ("file:///var/hub/blobs", "file:///var/hub/blobs"),
        ("UseDevelopmentStorage=true", "UseDevelopmentStorage=true"),
    ];
    for (input, expected) in cases {
        assert_eq!(redact(input), expected);
    }
}

#[test]
fn the_listing_shows_everything_but_secrets() {
    let mut config = base();
    config["endpoints"]["serviceBusQueues"][0]["connectionString"] = json!(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=****;EntityPath=q"
    );
    config["routes"][1]["isEnabled"] = json!(false);
    config["routes"][1]["condition"] = json!(null);
    config["enrichments"] =
        json!([{"key": "hub", "value": "$iothubname", "endpointNames": ["CriticalQueue", "events"]}]);
    let options = BuildOptions::new("ContosoTestHub")
        .with_override(
            "CriticalQueue",
            "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=c2VjcmV0;UseDevelopmentEmulator=true",
        )
        .with_override("StorageContainer", "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=c2VjcmV0");
    let listing = serde_json::to_value(build(&config, &options).unwrap().list()).unwrap();
    assert!(!listing.to_string().contains("c2VjcmV0"), "{listing}");
    assert_eq!(
        listing,
        json!({
            "hubName": "ContosoTestHub",
            "routes": [
                {"name": "CriticalRoute", "source": "DeviceMessages", "condition": "level = \"critical\"",
                 "endpoint": "CriticalQueue", "enabled": true},
                {"name": "StorageRoute", "source": "DeviceMessages", "condition": null,
                 "endpoint": "StorageContainer", "enabled": false}
            ],
            "fallback": {"name": "$fallback", "condition": "true", "endpoint": "events", "enabled": true},
            "endpoints": [
                {"name": "events", "type": "events", "backend": "builtIn", "overridden": false,
                 "enrichments": ["hub"]},
                {"name": "CriticalQueue", "type": "serviceBusQueue", "backend": "serviceBus",
                 "connectionString": "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=****;UseDevelopmentEmulator=true",
                 "overridden": true, "queueName": "critical", "enrichments": ["hub"]},
                {"name": "StorageContainer", "type": "storageContainer", "backend": "azureBlob",
                 "connectionString": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=****",
                 "overridden": true, "containerName": "results",
                 "fileNameFormat": "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
                 "batchFrequencyInSeconds": 60, "maxChunkSizeInBytes": 10485760, "encoding": "json",
                 "enrichments": []}
            ],
            "enrichments": [{"key": "hub", "value": "$iothubname", "endpointNames": ["CriticalQueue", "events"]}]
        })
    );
}

#[test]
fn configs_serialise_with_secrets_masked() {
    let mut config = base();
    config["endpoints"]["serviceBusQueues"][0]["connectionString"] =
        json!("Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=c2VjcmV0;EntityPath=q");
    let parsed = RoutingConfig::from_json(&config.to_string()).unwrap();
    let text = serde_json::to_string(&parsed).unwrap();
    assert!(!text.contains("c2VjcmV0"), "{text}");
    assert!(!format!("{parsed:?}").contains("c2VjcmV0"));
    // Masked output loads again, and names the masked key.
    let reloaded = RoutingConfig::from_json(&text).unwrap();
    assert_eq!(
        reloaded.build(&BuildOptions::new("hub")).unwrap_err().lines()[0],
        "endpoints.serviceBusQueues[0] \"CriticalQueue\": connectionString has a masked key (\"****\", as ARM \
         exports it); give this endpoint a local connection string override"
    );
}

#[test]
fn tools_can_evaluate_an_export_without_usable_connection_strings() {
    let config = RoutingConfig::from_path(&fixture("arm-export.json")).unwrap();
    let options = BuildOptions::new("ContosoTestHub").without_connection_checks();
    let routing = config.build(&options).unwrap();
    let listing = serde_json::to_value(routing.list()).unwrap();
    let endpoints: Vec<(&Value, &Value, &Value)> = listing["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["name"], &e["backend"], &e["connectionString"]))
        .collect();
    assert_eq!(
        endpoints,
        [
            (&json!("events"), &json!("builtIn"), &Value::Null),
            (
                &json!("CriticalQueue"),
                &json!("serviceBus"),
                &json!(
                    "Endpoint=sb://contososbnamespace.servicebus.windows.net/;SharedAccessKeyName=iothubroutes_ContosoTestHub;SharedAccessKey=****;EntityPath=contososbqueue"
                )
            ),
            (
                &json!("StorageContainer"),
                &json!("azureBlob"),
                &json!(
                    "DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;AccountName=contosostorage;AccountKey=****"
                )
            ),
        ]
    );
    // Everything else is still checked.
    let mut bad = base();
    bad["endpoints"]["serviceBusQueues"][0]["connectionString"] = json!(null);
    bad["endpoints"]["serviceBusQueues"][0]["authenticationType"] = json!("identityBased");
    bad["routes"][0]["endpointNames"] = json!(["Nope"]);
    assert_eq!(
        build(&bad, &options).unwrap_err(),
        ["routes[0] \"CriticalRoute\": endpoint \"Nope\" does not exist"]
    );
}

#[test]
fn no_configuration_is_a_hub_without_routes() {
    let built = RoutingConfig::default().build(&BuildOptions::new("hub")).unwrap();
    let direct = Routing::without_routes("hub");
    assert_eq!(
        serde_json::to_value(built.list()).unwrap(),
        serde_json::to_value(direct.list()).unwrap()
    );
    assert!(direct.has_no_routes());
}
