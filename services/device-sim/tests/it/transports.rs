//! MQTT over WebSockets and HTTPS, as a device SDK would use them, and a device whose key is wrong.

use device_sim::config::Transport;
use iothub_protocol::connection_string::{DeviceConnectionString, DeviceCredential};
use secrecy::SecretString;

use crate::support::{TestHub, random_key, simulate};

async fn fifty_over(transport: Transport) {
    let hub = TestHub::start();
    let mut config = hub.sim_config(2);
    config.transport = transport;
    config.messages = Some(25);
    config.interval_ms = Some(5);
    let report = simulate(config).await;
    assert_eq!((report.sent, report.acked), (50, 50), "{report:?}");
    let events = hub.events();
    assert_eq!(events.len(), 50);
    assert!(events.iter().all(|(_, m)| {
        m.system
            .message_id
            .as_deref()
            .is_some_and(|id| id.starts_with("message_"))
    }));
    assert!(
        events
            .iter()
            .any(|(_, m)| m.system.content_type.as_deref() == Some("application/json"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websockets() {
    fifty_over(Transport::MqttWs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_telemetry() {
    fifty_over(Transport::Https).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_device_stops_with_a_clear_error() {
    let hub = TestHub::start();
    let device = DeviceConnectionString::new(
        "localhost",
        "nobody",
        DeviceCredential::SharedAccessKey(random_key()),
    )
    .unwrap();
    let mut config = hub.sim_config(1);
    config.service_connection_string = SecretString::from("");
    config.connection_string = SecretString::from(device.expose_secret());
    config.duration_secs = Some(60);
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(std::time::Duration::from_secs(20), simulate(config))
        .await
        .expect("a refused device stops instead of retrying forever");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let reason = &report.device_errors["nobody"];
    assert!(reason.contains("refused the credentials"), "{reason}");
    assert_eq!(report.acked, 0);
}
