//! The router: which endpoints get a message, dedup, the fallback, orphans, sources beyond
//! telemetry, enrichments per endpoint, and the `hub route test` report.

use hub::routing::{BuildOptions, Decision, EndpointId, Routing, RoutingConfig};
use iothub_protocol::{Message, MessageSource};
use proptest::prelude::*;
use serde_json::{Value, json};

const TELEMETRY: MessageSource = MessageSource::Telemetry;
const LIFECYCLE: MessageSource = MessageSource::DeviceLifecycleEvents;
const CONNECTION: MessageSource = MessageSource::DeviceConnectionStateEvents;

fn routing(config: Value) -> Routing {
    RoutingConfig::from_json(&config.to_string())
        .unwrap()
        .build(&BuildOptions::new("ContosoTestHub"))
        .unwrap()
}

fn route(name: &str, source: &str, condition: Option<&str>, endpoint: &str) -> Value {
    let mut route = json!({"name": name, "source": source, "endpointNames": [endpoint], "isEnabled": true});
    if let Some(condition) = condition {
        route["condition"] = json!(condition);
    }
    route
}

fn endpoints() -> Value {
    json!({
        "serviceBusQueues": [{"name": "CriticalQueue", "connectionString": "sqlite://q.db"},
                             {"name": "OtherQueue", "connectionString": "amqp://localhost"}],
        "storageContainers": [{"name": "StorageContainer", "connectionString": "file:///tmp/b",
                               "containerName": "c", "encoding": "json", "batchFrequencyInSeconds": 60,
                               "maxChunkSizeInBytes": 10485760}]
    })
}

fn fallback(enabled: bool) -> Value {
    json!({"name": "$fallback", "source": "DeviceMessages", "condition": "true",
           "endpointNames": ["events"], "isEnabled": enabled})
}

/// The tutorial: critical → queue, storage → blobs, the rest → events through the fallback.
fn tutorial() -> Routing {
    routing(json!({
        "endpoints": endpoints(),
        "routes": [
            route("CriticalRoute", "DeviceMessages", Some("level=\"critical\""), "CriticalQueue"),
            route("StorageRoute", "DeviceMessages", Some("level=\"storage\""), "StorageContainer"),
        ],
        "fallbackRoute": fallback(true)
    }))
}

fn json_message(body: &str) -> Message {
    let mut message = Message::new(body.as_bytes().to_vec());
    message.system.content_type = Some("application/json".to_owned());
    message.system.content_encoding = Some("utf-8".to_owned());
    message
}

fn level(level: &str) -> Message {
    json_message("{\"temperature\": 21}").with_app_property("level", Some(level))
}

fn event(source: MessageSource, op_type: &str) -> Message {
    let mut message = json_message("{\"sequenceNumber\": \"0001\"}")
        .with_app_property("deviceId", Some("turbine-7"))
        .with_app_property("opType", Some(op_type));
    message.system.message_source = source;
    message
}

/// What a decision says, by name: (targets, matched routes, fallback fired, orphaned).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    targets: Vec<String>,
    matched: Vec<String>,
    fallback: bool,
    orphaned: bool,
}

fn decide(routing: &Routing, message: &Message, twin: Option<&Value>) -> Outcome {
    let mut decision = Decision::new();
    routing.route_message(message, twin, &mut decision);
    summarize(routing, &decision)
}

fn summarize(routing: &Routing, decision: &Decision) -> Outcome {
    Outcome {
        targets: decision
            .targets()
            .iter()
            .map(|&t| routing.endpoint(t).name().to_owned())
            .collect(),
        matched: decision
            .matched_routes()
            .iter()
            .map(|&r| routing.route_info(r).name().to_owned())
            .collect(),
        fallback: decision.fallback_fired(),
        orphaned: decision.orphaned(),
    }
}

#[track_caller]
fn check(
    routing: &Routing,
    message: &Message,
    targets: &[&str],
    matched: &[&str],
    fallback: bool,
    orphaned: bool,
) {
    assert_eq!(
        decide(routing, message, None),
        Outcome {
            targets: targets.iter().map(|s| (*s).to_owned()).collect(),
            matched: matched.iter().map(|s| (*s).to_owned()).collect(),
            fallback,
            orphaned,
        }
    );
}

#[test]
fn the_tutorial_routes_by_level() {
    let routing = tutorial();
    check(
        &routing,
        &level("critical"),
        &["CriticalQueue"],
        &["CriticalRoute"],
        false,
        false,
    );
    check(
        &routing,
        &level("storage"),
        &["StorageContainer"],
        &["StorageRoute"],
        false,
        false,
    );
    check(&routing, &level("normal"), &["events"], &[], true, false);
    check(&routing, &json_message("{}"), &["events"], &[], true, false);
    // Property names are case-insensitive, values are not.
    check(
        &routing,
        &json_message("{}").with_app_property("LEVEL", Some("critical")),
        &["CriticalQueue"],
        &["CriticalRoute"],
        false,
        false,
    );
    check(&routing, &level("Critical"), &["events"], &[], true, false);
}

#[test]
fn an_endpoint_gets_a_message_once_however_many_routes_match() {
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [
            route("ByLevel", "DeviceMessages", Some("level = 'critical'"), "CriticalQueue"),
            route("ToStorage", "DeviceMessages", None, "StorageContainer"),
            route("ByBody", "DeviceMessages", Some("$body.temperature > 20"), "CriticalQueue"),
            route("ToEvents", "DeviceMessages", Some("level = 'critical'"), "events"),
        ],
        "fallbackRoute": fallback(true)
    }));
    check(
        &routing,
        &level("critical"),
        &["CriticalQueue", "StorageContainer", "events"],
        &["ByLevel", "ToStorage", "ByBody", "ToEvents"],
        false,
        false,
    );
    check(
        &routing,
        &level("info"),
        &["StorageContainer", "CriticalQueue"],
        &["ToStorage", "ByBody"],
        false,
        false,
    );
}

#[test]
fn unmatched_telemetry_with_the_fallback_off_is_orphaned() {
    for fallback in [Some(fallback(false)), None] {
        let mut config = json!({
            "endpoints": endpoints(),
            "routes": [route("CriticalRoute", "DeviceMessages", Some("level = 'critical'"), "CriticalQueue")]
        });
        if let Some(fallback) = fallback {
            config["fallbackRoute"] = fallback;
        }
        let routing = routing(config);
        check(&routing, &level("normal"), &[], &[], false, true);
        check(
            &routing,
            &level("critical"),
            &["CriticalQueue"],
            &["CriticalRoute"],
            false,
            false,
        );
    }
}

#[test]
fn the_fallback_needs_its_own_condition_true() {
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [route("CriticalRoute", "DeviceMessages", Some("level = 'critical'"), "CriticalQueue")],
        "fallbackRoute": {"source": "DeviceMessages", "condition": "$body.keep = true",
                          "endpointNames": ["OtherQueue"], "isEnabled": true}
    }));
    check(
        &routing,
        &json_message("{\"keep\": true}"),
        &["OtherQueue"],
        &[],
        true,
        false,
    );
    check(
        &routing,
        &json_message("{\"keep\": false}"),
        &[],
        &[],
        false,
        true,
    );
    // The fallback's undefined is not true either.
    check(
        &routing,
        &Message::new(b"not json".to_vec()),
        &[],
        &[],
        false,
        true,
    );
}

#[test]
fn undefined_is_not_a_match_so_the_fallback_fires() {
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [route("Hot", "DeviceMessages", Some("$body.temperature > 30"), "CriticalQueue")],
        "fallbackRoute": fallback(true)
    }));
    // No content type: `$body` is undefined.
    let mut decision = Decision::new();
    routing.route_message(
        &Message::new(b"{\"temperature\": 40}".to_vec()),
        None,
        &mut decision,
    );
    assert_eq!(
        summarize(&routing, &decision),
        Outcome {
            targets: vec!["events".into()],
            matched: vec![],
            fallback: true,
            orphaned: false
        }
    );
    assert_eq!(
        decision.body_error().map(ToString::to_string).as_deref(),
        Some("Content encoding is not specified in system properties.")
    );
    check(
        &routing,
        &json_message("{\"temperature\": 40}"),
        &["CriticalQueue"],
        &["Hot"],
        false,
        false,
    );
    check(&routing, &json_message("[40]"), &["events"], &[], true, false);
}

#[test]
fn other_sources_are_routed_only_by_their_own_routes_never_by_the_fallback() {
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [
            route("Telemetry", "DeviceMessages", None, "StorageContainer"),
            route("Created", "DeviceLifecycleEvents", Some("opType = 'createDeviceIdentity'"), "CriticalQueue"),
            route("Connections", "DeviceConnectionStateEvents", None, "OtherQueue"),
        ],
        "fallbackRoute": fallback(true)
    }));
    check(
        &routing,
        &event(LIFECYCLE, "createDeviceIdentity"),
        &["CriticalQueue"],
        &["Created"],
        false,
        false,
    );
    // No lifecycle route matches: not delivered, and neither the fallback nor orphaned.
    check(
        &routing,
        &event(LIFECYCLE, "deleteDeviceIdentity"),
        &[],
        &[],
        false,
        false,
    );
    check(
        &routing,
        &event(CONNECTION, "deviceConnected"),
        &["OtherQueue"],
        &["Connections"],
        false,
        false,
    );
    check(
        &routing,
        &event(MessageSource::TwinChangeEvents, "updateTwin"),
        &[],
        &[],
        false,
        false,
    );
    check(
        &routing,
        &level("x"),
        &["StorageContainer"],
        &["Telemetry"],
        false,
        false,
    );
}

#[test]
fn with_no_routes_telemetry_goes_to_events() {
    for fallback_route in [None, Some(fallback(false)), Some(fallback(true))] {
        let mut config = json!({"endpoints": endpoints()});
        if let Some(fallback_route) = fallback_route {
            config["fallbackRoute"] = fallback_route;
        }
        let routing = routing(config);
        let mut decision = Decision::new();
        routing.route_message(&level("critical"), None, &mut decision);
        assert_eq!(decision.targets(), [EndpointId::EVENTS]);
        assert!(decision.default_events() && !decision.fallback_fired() && !decision.orphaned());
        routing.route_message(&event(CONNECTION, "deviceConnected"), None, &mut decision);
        assert!(decision.targets().is_empty() && !decision.default_events() && !decision.orphaned());
    }
}

#[test]
fn once_any_route_exists_events_gets_only_what_is_sent_there() {
    // A route of another source is still a route: telemetry no longer flows to events by default.
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [route("Created", "DeviceLifecycleEvents", None, "CriticalQueue")]
    }));
    check(&routing, &level("x"), &[], &[], false, true);
}

#[test]
fn disabled_routes_are_ignored() {
    let mut disabled = route(
        "CriticalRoute",
        "DeviceMessages",
        Some("level = 'critical'"),
        "CriticalQueue",
    );
    disabled["isEnabled"] = json!(false);
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [disabled, route("StorageRoute", "DeviceMessages", Some("level = 'storage'"), "StorageContainer")],
        "fallbackRoute": fallback(true)
    }));
    check(&routing, &level("critical"), &["events"], &[], true, false);
    check(
        &routing,
        &level("storage"),
        &["StorageContainer"],
        &["StorageRoute"],
        false,
        false,
    );
}

#[test]
fn no_condition_is_true_and_an_empty_one_is_undefined() {
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [
            route("Always", "DeviceMessages", None, "CriticalQueue"),
            route("Never", "DeviceMessages", Some(""), "OtherQueue"),
            route("Blank", "DeviceMessages", Some("  /* nothing */ "), "OtherQueue"),
        ],
        "fallbackRoute": fallback(true)
    }));
    check(
        &routing,
        &Message::new(Vec::new()),
        &["CriticalQueue"],
        &["Always"],
        false,
        false,
    );
    let report = serde_json::to_value(routing.describe(&Message::new(Vec::new()), TELEMETRY, None)).unwrap();
    let results: Vec<&Value> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["result"])
        .collect();
    assert_eq!(
        results,
        [&json!("true"), &json!("undefined"), &json!("undefined")]
    );
}

#[test]
fn twin_conditions_read_the_twin_given() {
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [route("Floor", "DeviceMessages", Some("$twin.tags.floor = 'top'"), "CriticalQueue")],
        "fallbackRoute": fallback(true)
    }));
    let twin = json!({"tags": {"Floor": "top"}});
    assert_eq!(
        decide(&routing, &level("x"), Some(&twin)).targets,
        ["CriticalQueue"]
    );
    assert_eq!(decide(&routing, &level("x"), None).targets, ["events"]);
}

fn enriched() -> Routing {
    routing(json!({
        "endpoints": endpoints(),
        "routes": [
            route("CriticalRoute", "DeviceMessages", Some("level = 'critical'"), "CriticalQueue"),
            route("Created", "DeviceLifecycleEvents", None, "CriticalQueue"),
            route("Twins", "DigitalTwinChangeEvents", None, "CriticalQueue"),
        ],
        "fallbackRoute": fallback(true),
        "enrichments": [
            {"key": "tenant", "value": "contoso", "endpointNames": ["CriticalQueue", "events"]},
            {"key": "hub", "value": "$iothubname", "endpointNames": ["CriticalQueue"]},
            {"key": "location", "value": "$twin.tags.location", "endpointNames": ["CriticalQueue"]},
            {"key": "fw", "value": "$twin.properties.reported.firmware.version", "endpointNames": ["CriticalQueue"]},
            {"key": "level", "value": "enriched", "endpointNames": ["CriticalQueue"]}
        ]
    }))
}

fn stamps(
    routing: &Routing,
    endpoint: &str,
    source: MessageSource,
    twin: Option<&Value>,
) -> Vec<(String, String)> {
    let id = routing.endpoint_id(endpoint).unwrap();
    routing
        .enrichments(id, source, twin)
        .map(|s| (s.key.to_owned(), s.value.into_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn enrichments_are_stamped_per_endpoint() {
    let routing = enriched();
    let twin = json!({"tags": {"location": "Seattle"},
                      "properties": {"reported": {"Firmware": {"version": 3}}, "desired": {}}});
    assert_eq!(
        stamps(&routing, "CriticalQueue", TELEMETRY, Some(&twin)),
        pairs(&[
            ("tenant", "contoso"),
            ("hub", "ContosoTestHub"),
            ("location", "Seattle"),
            ("fw", "3"),
            ("level", "enriched"),
        ])
    );
    assert_eq!(
        stamps(&routing, "events", TELEMETRY, Some(&twin)),
        pairs(&[("tenant", "contoso")])
    );
    assert_eq!(
        stamps(&routing, "StorageContainer", TELEMETRY, Some(&twin)),
        pairs(&[])
    );
    // No twin, a missing path, or a value that is not a primitive: the literal text.
    let literal = pairs(&[
        ("tenant", "contoso"),
        ("hub", "ContosoTestHub"),
        ("location", "$twin.tags.location"),
        ("fw", "$twin.properties.reported.firmware.version"),
        ("level", "enriched"),
    ]);
    assert_eq!(stamps(&routing, "CriticalQueue", TELEMETRY, None), literal);
    let odd = json!({"tags": {"location": {"city": "Seattle"}}, "properties": {"reported": {"firmware": {"version": null}}}});
    assert_eq!(stamps(&routing, "CriticalQueue", TELEMETRY, Some(&odd)), literal);
    // Any source but digital twin change events.
    assert_eq!(stamps(&routing, "CriticalQueue", LIFECYCLE, None), literal);
    assert_eq!(
        stamps(
            &routing,
            "CriticalQueue",
            MessageSource::DigitalTwinChangeEvents,
            None
        ),
        pairs(&[])
    );
}

#[test]
fn conditions_see_the_unenriched_message_and_enrich_replaces_properties() {
    let routing = enriched();
    let mut message = level("critical");
    let mut decision = Decision::new();
    routing.route_message(&message, None, &mut decision);
    assert_eq!(
        decision.targets(),
        [routing.endpoint_id("CriticalQueue").unwrap()]
    );
    routing.enrich(decision.targets()[0], None, &mut message);
    assert_eq!(
        message.app_properties,
        [
            ("level".to_owned(), Some("enriched".to_owned())),
            ("tenant".to_owned(), Some("contoso".to_owned())),
            ("hub".to_owned(), Some("ContosoTestHub".to_owned())),
            ("location".to_owned(), Some("$twin.tags.location".to_owned())),
            (
                "fw".to_owned(),
                Some("$twin.properties.reported.firmware.version".to_owned())
            ),
        ]
    );
}

#[test]
fn a_decision_is_reused_without_leftovers() {
    let routing = tutorial();
    let mut decision = Decision::new();
    routing.route_message(&level("critical"), None, &mut decision);
    routing.route(&Message::new(b"x".to_vec()), LIFECYCLE, None, &mut decision);
    assert_eq!(decision.source(), LIFECYCLE);
    assert!(decision.targets().is_empty() && decision.matched_routes().is_empty());
    assert!(!decision.orphaned() && decision.body_error().is_none());
}

#[test]
fn route_test_reports_every_route_the_targets_and_the_fallback() {
    let mut disabled = route("Off", "DeviceMessages", None, "OtherQueue");
    disabled["isEnabled"] = json!(false);
    let routing = routing(json!({
        "endpoints": endpoints(),
        "routes": [
            route("CriticalRoute", "DeviceMessages", Some("level=\"critical\""), "CriticalQueue"),
            route("Hot", "DeviceMessages", Some("$body.temperature > 30"), "CriticalQueue"),
            route("StorageRoute", "DeviceMessages", Some("level=\"storage\""), "StorageContainer"),
            route("Created", "DeviceLifecycleEvents", None, "OtherQueue"),
            disabled,
        ],
        "fallbackRoute": fallback(true),
        "enrichments": [{"key": "site", "value": "$twin.tags.site", "endpointNames": ["CriticalQueue"]}]
    }));
    let message = json_message("{\"temperature\": 40}").with_app_property("level", Some("critical"));
    let twin = json!({"tags": {"site": "north"}});
    let report = serde_json::to_value(routing.describe(&message, TELEMETRY, Some(&twin))).unwrap();
    assert_eq!(
        report,
        json!({
            "source": "DeviceMessages",
            "routes": [
                {"name": "CriticalRoute", "source": "DeviceMessages", "condition": "level=\"critical\"",
                 "endpoint": "CriticalQueue", "result": "true"},
                {"name": "Hot", "source": "DeviceMessages", "condition": "$body.temperature > 30",
                 "endpoint": "CriticalQueue", "result": "true"},
                {"name": "StorageRoute", "source": "DeviceMessages", "condition": "level=\"storage\"",
                 "endpoint": "StorageContainer", "result": "false"},
                {"name": "Created", "source": "DeviceLifecycleEvents", "condition": null,
                 "endpoint": "OtherQueue", "result": null, "skipped": "otherSource"},
                {"name": "Off", "source": "DeviceMessages", "condition": null,
                 "endpoint": "OtherQueue", "result": null, "skipped": "disabled"}
            ],
            "fallback": {"name": "$fallback", "enabled": true, "endpoint": "events", "condition": "true",
                         "result": "true", "fired": false},
            "endpoints": [
                {"name": "CriticalQueue", "type": "serviceBusQueue", "via": ["CriticalRoute", "Hot"],
                 "enrichments": [{"key": "site", "value": "north"}]}
            ],
            "orphaned": false,
            "defaultEvents": false,
            "bodyError": null
        })
    );

    let report =
        serde_json::to_value(routing.describe(&Message::new(b"?".to_vec()), TELEMETRY, None)).unwrap();
    assert_eq!(report["routes"][1]["result"], json!("undefined"));
    assert_eq!(
        report["endpoints"],
        json!([{"name": "events", "type": "events", "via": ["$fallback"], "enrichments": []}])
    );
    assert_eq!(report["fallback"]["fired"], json!(true));
    assert_eq!(
        report["bodyError"],
        json!("Content encoding is not specified in system properties.")
    );

    let report = serde_json::to_value(routing.describe(&Message::new(Vec::new()), LIFECYCLE, None)).unwrap();
    assert_eq!(report["fallback"]["result"], Value::Null);
    assert_eq!(report["routes"][3]["result"], json!("true"));
    assert_eq!(report["endpoints"][0]["via"], json!(["Created"]));
}

fn any_message() -> impl Strategy<Value = (Message, MessageSource, Option<Value>)> {
    let text = prop_oneof![
        Just("critical".to_owned()),
        Just("storage".to_owned()),
        Just(String::new()),
        "\\PC{0,8}",
    ];
    let body = prop_oneof![
        any::<Vec<u8>>(),
        Just(b"{\"temperature\": 40, \"keep\": true}".to_vec()),
        Just(b"[1,2]".to_vec()),
        "\\PC{0,24}".prop_map(String::into_bytes),
    ];
    let optional = |values: &'static [&'static str]| {
        proptest::option::of(proptest::sample::select(values).prop_map(str::to_owned))
    };
    let source = proptest::sample::select(MessageSource::ALL.to_vec());
    let twin = proptest::option::of(prop_oneof![
        Just(json!({"tags": {"location": "x", "floor": "top"}})),
        Just(json!({"tags": 1})),
        Just(json!([1])),
    ]);
    (
        body,
        proptest::collection::vec(("\\PC{0,6}|level", proptest::option::of(text)), 0..4),
        optional(&["application/json", "text/plain", "APPLICATION/JSON"]),
        optional(&["utf-8", "utf-16", "utf-32", "latin1"]),
        source,
        twin,
    )
        .prop_map(|(body, app, content_type, content_encoding, source, twin)| {
            let mut message = Message::new(body);
            message.app_properties = app;
            message.system.content_type = content_type;
            message.system.content_encoding = content_encoding;
            message.system.message_source = source;
            (message, source, twin)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Any message is routed without a panic, and every decision keeps the rules.
    #[test]
    fn any_message_is_routed_by_the_rules((message, source, twin) in any_message()) {
        let routing = routing(json!({
            "endpoints": endpoints(),
            "routes": [
                route("CriticalRoute", "DeviceMessages", Some("level = 'critical'"), "CriticalQueue"),
                route("Hot", "DeviceMessages", Some("$body.temperature > 30 OR $twin.tags.floor = 'top'"), "CriticalQueue"),
                route("StorageRoute", "DeviceMessages", Some("upper(level) = 'STORAGE'"), "StorageContainer"),
                route("Created", "DeviceLifecycleEvents", Some("$body.sequenceNumber != ''"), "OtherQueue"),
            ],
            "fallbackRoute": {"source": "DeviceMessages", "condition": "NOT is_defined($body.keep)",
                              "endpointNames": ["events"], "isEnabled": true},
            "enrichments": [{"key": "loc", "value": "$twin.tags.location", "endpointNames": ["CriticalQueue", "events"]}]
        }));
        let mut decision = Decision::new();
        routing.route(&message, source, twin.as_ref(), &mut decision);
        let targets = decision.targets();
        for (i, target) in targets.iter().enumerate() {
            prop_assert!(!targets[..i].contains(target), "duplicate target");
            prop_assert!(routing.enrichments(*target, source, twin.as_ref()).count() <= 1);
        }
        prop_assert!(!decision.fallback_fired() || (decision.matched_routes().is_empty() && source == TELEMETRY));
        prop_assert_eq!(decision.orphaned(), targets.is_empty() && source == TELEMETRY);
        for route in decision.matched_routes() {
            prop_assert_eq!(routing.route_info(*route).source().as_str(), source.routing_source());
        }
        let report = routing.describe(&message, source, twin.as_ref());
        prop_assert_eq!(report.endpoints.len(), targets.len());
    }
}
