//! The sidecar: configured only by environment variables, `/ready` once a device is connected,
//! `/metrics` counting, and a clean stop on SIGTERM after flushing what is in flight.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestHub;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: &str) -> Option<(u16, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(url).await.ok()?;
    Some((response.status().as_u16(), response.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_from_the_environment_stops_cleanly_on_sigterm() {
    let hub = TestHub::start();
    let admin = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_device-sim"))
        .arg("run")
        .env(
            "DEVICE_SIM_SERVICE_CONNECTION_STRING",
            hub.service_connection_string(),
        )
        .env("DEVICE_SIM_DEVICES", "3")
        .env("DEVICE_SIM_INTERVAL_MS", "20")
        .env("DEVICE_SIM_CONNECT_HOST", "localhost")
        .env("DEVICE_SIM_MQTT_PORT", hub.mqtt_tls.port().to_string())
        .env("DEVICE_SIM_HTTPS_PORT", hub.https.port().to_string())
        .env("DEVICE_SIM_CA_FILE", &hub.ca_file)
        .env("DEVICE_SIM_ADMIN", &admin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some((200, body)) = get(&format!("http://{admin}/ready")).await {
            assert!(body.contains("devices"), "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sidecar became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, metrics) = get(&format!("http://{admin}/metrics")).await.unwrap();
    assert!(metrics.contains("device_sim_devices_connected 3"), "{metrics}");
    assert!(
        metrics.contains("device_sim_messages_acknowledged_total"),
        "{metrics}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the sidecar stops after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "everything sent was acknowledged: {summary}"
    );
    let counts: Vec<u64> = ["sent ", "acked "]
        .iter()
        .map(|key| {
            let at = summary.find(key).unwrap() + key.len();
            summary[at..].split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(
        counts[0] > 0 && counts[0] == counts[1],
        "flushed before stopping: {summary}"
    );
    assert_eq!(hub.events().len() as u64, counts[1]);
}
