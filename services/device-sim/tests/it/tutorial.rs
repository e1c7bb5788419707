//! The tutorial's SimulatedDevice against the local hub over MQTT/TLS: ~20 % critical, ~30 %
//! storage with a fixed seed, ids and properties exactly as the tutorial's, shown by `hub monitor`'s
//! rendering.

use iothub_protocol::monitor::{MonitorOptions, render_event, to_pretty_json};

use crate::support::{TestHub, simulate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_device_over_mqtt_tls() {
    let hub = TestHub::start();
    let mut config = hub.sim_config(1);
    config.messages = Some(1000);
    config.interval_ms = Some(1);
    config.seed = Some(7);
    let report = simulate(config).await;
    assert_eq!((report.sent, report.acked), (1000, 1000), "{report:?}");
    assert!(report.failed.values().all(|n| *n == 0), "{report:?}");
    assert!(report.device_errors.is_empty(), "{report:?}");

    let events = hub.events();
    assert_eq!(events.len(), 1000);
    let (mut critical, mut storage) = (0, 0);
    for (n, (device, message)) in events.iter().enumerate() {
        assert_eq!(device, "sim-0001");
        let system = &message.system;
        assert_eq!(
            system.message_id.as_deref(),
            Some(format!("message_{n}").as_str())
        );
        assert_eq!(
            system.correlation_id.as_deref(),
            Some(format!("correlation_{n}").as_str())
        );
        assert_eq!(system.content_type.as_deref(), Some("application/json"));
        assert_eq!(system.content_encoding.as_deref(), Some("utf-8"));
        let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(body["deviceId"], "sim-0001");
        let wind = body["windSpeed"].as_f64().unwrap();
        assert!((12.0..16.0).contains(&wind), "windSpeed {wind}");
        let level: Vec<_> = message
            .app_properties
            .iter()
            .filter(|(k, _)| k == "level")
            .collect();
        match level.first().and_then(|(_, v)| v.as_deref()) {
            Some("critical") => critical += 1,
            Some("storage") => storage += 1,
            None => {}
            other => panic!("unexpected level {other:?}"),
        }
        assert!(level.len() <= 1);
    }
    assert!(
        (170..=230).contains(&critical),
        "{critical} critical of 1000 (≈200)"
    );
    assert!((260..=340).contains(&storage), "{storage} storage of 1000 (≈300)");

    // What `hub monitor -p all` prints for one of them.
    let options = MonitorOptions::from_props(["all"]).unwrap();
    let shown = to_pretty_json(&render_event(&events[0].1, None, &options));
    assert!(shown.contains("\"origin\": \"sim-0001\""), "{shown}");
    assert!(shown.contains("\"message_id\": \"message_0\""), "{shown}");
    assert!(shown.contains("\"windSpeed\""), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_messages() {
    let hub = TestHub::start();
    for _ in 0..2 {
        let mut config = hub.sim_config(2);
        config.messages = Some(20);
        config.interval_ms = Some(1);
        config.seed = Some(99);
        assert_eq!(simulate(config).await.acked, 40);
    }
    let events = hub.events();
    let bodies = |run: usize| -> Vec<(String, Vec<u8>)> {
        let mut of_run: Vec<_> = events
            .iter()
            .skip(run * 40)
            .take(40)
            .map(|(d, m)| (d.clone(), m.body.clone()))
            .collect();
        of_run.sort();
        of_run
    };
    assert_eq!(bodies(0), bodies(1));
    let devices: std::collections::BTreeSet<_> = events.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(devices.into_iter().collect::<Vec<_>>(), ["sim-0001", "sim-0002"]);
}
