//! The admin server: `/live`, `/ready` (200 once the store and listeners are up) and `/metrics`
//! with the hub's named metrics.

use reqwest::StatusCode;
use rumqttc::QoS;

use crate::support::TestHub;
use crate::support::mqtt::{Link, MqttDevice, Outcome};

#[tokio::test]
async fn live_ready_and_metrics_answer() {
    let hub = TestHub::start();
    let (status, _) = hub.admin("/live").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = hub.admin("/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true, "{body}");

    let device = hub.create_device("dev1").await;
    let mut connection = hub.connect(&device, Link::Tcp).await;
    assert_eq!(
        connection
            .publish(&device.topic(""), QoS::AtLeastOnce, "12345")
            .await,
        Outcome::Acked
    );
    let refused = MqttDevice::connect(hub.mqtt_options(
        Link::Tcp,
        "ghost",
        "SharedAccessSignature sr=x&sig=eA%3D%3D&se=1",
    ))
    .await;
    assert!(refused.is_err());

    // (sample, value) after one connection, one 5-byte message and one refused login.
    let samples = [
        ("hub_connections{transport=\"mqtt_tcp\"}", 1.0),
        ("hub_connects_total{outcome=\"ok\"}", 1.0),
        ("hub_connects_total{outcome=\"unknown_host\"}", 1.0),
        (
            "hub_messages_received_total{transport=\"mqtt_tcp\",qos=\"1\"}",
            1.0,
        ),
        ("hub_message_received_bytes_total", 5.0),
        ("hub_ack_latency_seconds_count", 1.0),
    ];
    for (sample, value) in samples {
        assert_eq!(hub.metric(sample).await, value, "{sample}");
    }
    let (_, text) = hub.admin("/metrics").await;
    assert!(
        text.contains("hub_ack_latency_seconds_bucket{le="),
        "a latency histogram:\n{text}"
    );
    assert!(!text.contains("dev1"), "no device id in a label:\n{text}");
}
