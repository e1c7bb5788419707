//! JSON-lines and Avro blobs → every record indexed once; queries by device, time range and
//! condition return exactly the expected records; pagination is stable; a restart indexes nothing
//! twice; a blob added later is found.

use std::collections::BTreeSet;

use iothub_protocol::Message;

use crate::support::{Running, Setup, all_pages, encode, message, write_avro_blob, write_json_blob};

/// 2026-11-26T00:00:00Z.
const T0: i64 = 1_795_651_200_000;

/// The fleet's messages: 3 devices, a record every second, levels and wind speeds by formula.
fn fleet(first: u64, count: u64) -> Vec<Message> {
    (first..first + count)
        .map(|n| {
            let device = ["turbine-1", "turbine-7", "turbine-9"][(n % 3) as usize];
            let level = match n % 4 {
                0 => Some("critical"),
                1 | 2 => Some("storage"),
                _ => None,
            };
            let wind = 10.0 + (n % 40) as f64;
            message(device, n, level, wind, T0 + (n as i64) * 1000)
        })
        .collect()
}

fn expected(messages: &[Message], keep: impl Fn(&Message) -> bool) -> BTreeSet<String> {
    messages
        .iter()
        .filter(|m| keep(m))
        .map(|m| m.system.message_id.clone().unwrap())
        .collect()
}

fn ids(messages: &[serde_json::Value]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect()
}

fn level(m: &Message) -> Option<&str> {
    m.app_properties
        .iter()
        .find(|(k, _)| k == "level")
        .and_then(|(_, v)| v.as_deref())
}

fn wind(m: &Message) -> f64 {
    let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    body["windSpeed"].as_f64().unwrap()
}

async fn blobs_are_indexed_once_and_queryable(postgres: bool) {
    let setup = Setup::new(postgres);
    let all = fleet(0, 300);
    write_json_blob(&setup.container, "hub/0/2026/11/26/00/00.json", &all[0..100]);
    write_json_blob(&setup.container, "hub/0/2026/11/26/00/01.json", &all[100..150]);
    write_avro_blob(
        &setup.container,
        "hub/1/2026/11/26/00/00.avro",
        &all[150..220],
        false,
    );
    write_avro_blob(
        &setup.container,
        "hub/1/2026/11/26/00/02.avro",
        &all[220..300],
        true,
    );
    let running = Running::start(setup.config.clone());
    running.wait_for_records(300).await;

    // Every record once, paged in sevens.
    let paged = all_pages(&running, "", 7).await;
    assert_eq!(paged.len(), 300);
    assert_eq!(ids(&paged), expected(&all, |_| true));
    let times: Vec<&str> = paged
        .iter()
        .map(|m| m["enqueuedTime"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "ordered by enqueued time");

    // By device.
    let turbine7 = all_pages(&running, "&deviceId=turbine-7", 50).await;
    assert_eq!(
        ids(&turbine7),
        expected(&all, |m| m.system.connection_device_id.as_deref()
            == Some("turbine-7"))
    );

    // By time range [from, to): messages 60..120.
    let range = "&from=2026-11-26T00:01:00Z&to=2026-11-26T00:02:00Z";
    let window = all_pages(&running, range, 100).await;
    assert_eq!(window.len(), 60);

    // By condition, as a route would: storage messages from turbine-7 with windSpeed > 30.
    let condition = encode(r#"level = "storage" AND $body.windSpeed > 30"#);
    let matching = all_pages(&running, &format!("&deviceId=turbine-7&where={condition}"), 5).await;
    assert_eq!(
        ids(&matching),
        expected(&all, |m| {
            m.system.connection_device_id.as_deref() == Some("turbine-7")
                && level(m) == Some("storage")
                && wind(m) > 30.0
        })
    );
    assert!(!matching.is_empty());
    let sample = &matching[0];
    assert_eq!(sample["contentType"], "application/json");
    assert_eq!(sample["bodyEncoding"], "json");
    assert!(sample["body"]["windSpeed"].as_f64().unwrap() > 30.0);
    assert_eq!(sample["properties"]["level"], "storage");

    // By message id.
    let (status, one) = running.get("/v1/messages/turbine-7-160").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["messages"][0]["blob"], "hub/1/2026/11/26/00/00.avro");
    assert_eq!(one["messages"][0]["position"], 10);
    let (status, _) = running.get("/v1/messages/nope").await;
    assert_eq!(status, 404);

    // Devices and blobs.
    let (_, devices) = running.get("/v1/devices").await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 3, "{devices}");
    let (_, blobs) = running.get("/v1/blobs?status=indexed").await;
    assert_eq!(blobs["blobs"].as_array().unwrap().len(), 4, "{blobs}");

    // Ready, and counting.
    let (status, ready) = crate::support::get(&format!("http://{}/ready", running.admin)).await;
    assert_eq!(status, 200, "{ready}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = reqwest::get(format!("http://{}/metrics", running.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("storage_archiver_records_indexed_total 300"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storage_archiver_blobs_indexed_total 4"),
        "{metrics}"
    );

    // A blob written later is found.
    let more = fleet(300, 40);
    write_json_blob(&setup.container, "hub/0/2026/11/26/00/05.json", &more);
    running.wait_for_records(340).await;
    running.stop().await;

    // A restart on the same index indexes nothing again.
    let again = Running::start(setup.config.clone());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    again.wait_for_records(340).await;
    let (_, blobs) = again.get("/v1/blobs").await;
    assert!(
        blobs["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["attempts"] == 1),
        "each blob version indexed once: {blobs}"
    );
    again.stop().await;
    drop(setup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_indexed_once_and_queryable_sqlite() {
    blobs_are_indexed_once_and_queryable(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_indexed_once_and_queryable_postgres() {
    blobs_are_indexed_once_and_queryable(true).await;
}
