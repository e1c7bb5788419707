//! The web console's own calls: the bundled page (no secrets in it, a strict CSP), the overview's
//! counters moving with traffic, the route tester (true, false, undefined, a compile error with its
//! position, the endpoints the loaded routing would choose), and who may call them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::backends::{QueueEndpoint, StorageEndpoint};
use crate::support::routing::{QUEUE_ENDPOINT, tutorial_routing, write_routing};
use crate::support::{TestHub, device_token, valid_expiry};

async fn tutorial_hub(dir: &std::path::Path) -> TestHub {
    let queue = QueueEndpoint::sqlite(dir).await;
    let routing = write_routing(
        dir,
        &tutorial_routing(&queue, &StorageEndpoint::local().connection_string(), 1),
    );
    TestHub::start_with(|config| {
        config.routing.file = Some(routing);
        config.routing.allow_short_batches = true;
    })
}

fn url(hub: &TestHub, path: &str) -> String {
    hub.http_url(path)
}

async fn get(hub: &TestHub, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = hub.client().get(url(hub, path));
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn test_route(hub: &TestHub, body: &Value) -> (StatusCode, Value) {
    let response = hub
        .client()
        .post(url(hub, "/console/api/test-route"))
        .header("authorization", hub.owner_token())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn send(hub: &TestHub, device: &crate::support::Device, level: &str) {
    let token = device_token(&device.id, &device.primary_key, valid_expiry());
    let status = hub
        .client()
        .post(url(hub, &format!("/devices/{}/messages/events", device.id)))
        .header("authorization", token)
        .header("iothub-app-level", level)
        .body(r#"{"temp": 21}"#)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_bundled_and_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let hub = tutorial_hub(dir.path()).await;
    for (path, kind) in [
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let response = hub.client().get(url(&hub, path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let text = response.text().await.unwrap();
        assert!(
            !text.contains(hub.owner_key.expose_secret()),
            "{path} holds the policy key"
        );
    }
    // The login form's prefill needs no token and gives nothing away.
    let (status, info) = get(&hub, "/console/api/info", None).await;
    assert_eq!(status, StatusCode::OK);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info, json!({"hubName": "testhub", "hostName": "localhost"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_routes_and_endpoints_as_traffic_flows() {
    let dir = tempfile::tempdir().unwrap();
    let hub = tutorial_hub(dir.path()).await;
    let device = hub.create_device("turbine-7").await;
    for level in ["critical", "critical", "storage", "info"] {
        send(&hub, &device, level).await;
    }
    let (status, text) = get(&hub, "/console/api/overview", Some(&hub.owner_token())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let overview: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(overview["devices"], json!({"total": 1, "connected": 0}));
    assert_eq!(overview["messages"]["received"], 4);
    let route = |name: &str| {
        overview["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(route("CriticalRoute")["matched"], 2, "{overview:#}");
    assert_eq!(route("CriticalRoute")["endpointNames"], json!([QUEUE_ENDPOINT]));
    assert_eq!(route("StorageRoute")["matched"], 1, "{overview:#}");
    assert_eq!(overview["fallback"]["matched"], 1, "{overview:#}");
    let events = overview["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "events")
        .cloned()
        .unwrap();
    assert_eq!(events["delivered"], 1, "{overview:#}");
    // Connection strings never appear: the overview is for watching, not for secrets.
    assert!(!text.contains("sqlite://") && !text.contains("file://"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_tester_answers_like_test_route_and_says_where_a_message_goes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = tutorial_hub(dir.path()).await;
    let message = json!({
        "body": "{\"temp\": 30}",
        "appProperties": {"level": "critical"},
        "systemProperties": {"contentType": "application/json", "contentEncoding": "utf-8"}
    });
    let (status, answer) =
        test_route(&hub, &json!({"condition": "$body.temp > 25", "message": message})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["result"], "true");
    assert_eq!(answer["endpoints"], json!([QUEUE_ENDPOINT]));

    let (_, answer) = test_route(
        &hub,
        &json!({"condition": "nosuchproperty = 'x'", "message": message}),
    )
    .await;
    assert_eq!(answer["result"], "undefined");

    let (_, answer) = test_route(
        &hub,
        &json!({"condition": "level = 'storage'", "message": message}),
    )
    .await;
    assert_eq!(answer["result"], "false");

    let (_, answer) = test_route(&hub, &json!({"condition": "level = = 'x'", "message": message})).await;
    assert_eq!(answer["result"], "error", "{answer:#}");
    let error = &answer["compilationErrors"][0];
    assert_eq!(error["severity"], "error");
    assert_eq!(error["location"]["start"]["line"], 1);
    assert!(
        error["location"]["start"]["column"].as_u64().unwrap() >= 7,
        "{error:#}"
    );

    // No message: an empty one (no properties, no body) goes to the fallback.
    let (_, answer) = test_route(&hub, &json!({"condition": "true"})).await;
    assert_eq!(answer["endpoints"], json!(["events"]));

    // Bad input: clear 400s.
    for (body, code) in [
        ("not json", "invalid_json"),
        (r#"{"condition": "true", "extra": 1}"#, "invalid_json"),
        (
            r#"{"condition": "true", "routingSource": "Nope"}"#,
            "invalid_routing_source",
        ),
        (
            r#"{"condition": "true", "message": {"appProperties": {"a": "1", "A": "2"}}}"#,
            "invalid_message",
        ),
    ] {
        let response = hub
            .client()
            .post(url(&hub, "/console/api/test-route"))
            .header("authorization", hub.owner_token())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], code, "{body}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_calls_need_a_service_token() {
    let dir = tempfile::tempdir().unwrap();
    let hub = tutorial_hub(dir.path()).await;
    let (status, _) = get(&hub, "/console/api/overview", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let device = hub.create_device("dev1").await;
    let device_token = device_token(&device.id, &device.primary_key, valid_expiry());
    let (status, _) = get(&hub, "/console/api/overview", Some(&device_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = hub
        .client()
        .post(url(&hub, "/console/api/test-route"))
        .body(r#"{"condition": "true"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
