//! The admin server over real HTTP: liveness, readiness that follows its checks, metrics, shutdown.

use std::net::TcpListener;
use std::time::Duration;

use service_kit::metrics::Counter;
use service_kit::{Metrics, Readiness, Shutdown, admin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_ready_metrics_and_shutdown() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let readiness = Readiness::default();
    let queue = readiness.check("queue");
    let metrics = Metrics::new("test-service");
    let received = Counter::<u64>::default();
    metrics.register(|r| r.register("messages_received", "Messages received", received.clone()));
    received.inc_by(3);
    let shutdown = Shutdown::new();
    let server = admin::serve(listener, readiness, metrics, &shutdown, Duration::from_secs(1)).unwrap();
    let running = tokio::spawn(server);
    let client = reqwest::Client::new();

    let live = client.get(format!("{base}/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body["checks"][0],
        serde_json::json!({"name": "queue", "ready": false, "detail": "starting"})
    );

    queue.ready();
    assert_eq!(
        client.get(format!("{base}/ready")).send().await.unwrap().status(),
        200
    );
    queue.not_ready("connection refused");
    let body: serde_json::Value = client
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["checks"][0]["detail"], "connection refused");

    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("test_service_messages_received_total 3"), "{text}");

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(client.get(format!("{base}/live")).send().await.is_err());
}
