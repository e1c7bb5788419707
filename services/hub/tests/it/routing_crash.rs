//! Kill -9 of a hub routing to the embedded queue and a blob directory (1-second JSON batches)
//! during a QoS 1 run. The `hub` binary is killed twice: the moment the storage endpoint starts
//! writing its first blob (a staging file or the blob itself appears), and mid-run after a restart.
//! After a last restart on the same data directory and the outboxes drained (health backlog 0):
//! every acknowledged critical message is in the queue at least once, every acknowledged storage
//! message is in exactly one blob record (a batch interrupted between recording and settling is
//! written again under its recorded name, never as a second copy), and every blob is whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, Outgoing, QoS};
use serde_json::Value;

use crate::support::backends::{CONTAINER, QueueEndpoint, files_under, is_staging, local_blobs};
use crate::support::process::{HubProcess, write_config_with};
use crate::support::routing::{
    HealthProbe, QUEUE_ENDPOINT, STORAGE_ENDPOINT, blob_records, tutorial_routing, write_routing,
};
use crate::support::{Device, OWNER, plain_http_client, random_key, service_token, valid_expiry, within};

/// Acknowledgements after the restart before the second kill.
const ACKED_BEFORE_SECOND_KILL: usize = 300;
/// Most messages one run sends (the first run stops sending, not watching, at this).
const MAX_PER_RUN: u64 = 20_000;

/// Even messages are critical, odd ones storage.
fn is_critical(n: u64) -> bool {
    n.is_multiple_of(2)
}

fn topic(device: &str, n: u64) -> String {
    let level = if is_critical(n) { "critical" } else { "storage" };
    format!("devices/{device}/messages/events/$.mid=msg-{n}&$.ct=application%2Fjson&$.ce=utf-8&level={level}")
}

fn number(id: &str) -> u64 {
    id.strip_prefix("msg-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected message id {id}"))
}

/// When to kill the hub.
#[derive(Debug, Clone, Copy)]
enum KillWhen<'a> {
    /// The moment any file appears in this container directory.
    BlobStarted(&'a Path),
    /// After this many acknowledgements in the run.
    Acked(usize),
}

/// Watches `container` from a thread and SIGKILLs `pid` the moment a file shows up in it (a blob
/// is being written). Returns the flag it sets when it kills.
fn kill_on_first_blob(container: &Path, pid: u32) -> Arc<AtomicBool> {
    let killed = Arc::new(AtomicBool::new(false));
    let (container, flag) = (container.to_owned(), Arc::clone(&killed));
    std::thread::spawn(move || {
        let deadline = Instant::now() + crate::support::HANG;
        while Instant::now() < deadline {
            if !files_under(&container).is_empty() {
                // Set first: the publishing loop may see the connection drop before `kill` returns.
                flag.store(true, Ordering::SeqCst);
                let status = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(status.success(), "kill -9 {pid}");
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    killed
}

/// Publishes QoS 1 messages `first..` without pause until the hub dies as `when` says; records
/// the acknowledged ones in `acked`; returns the number after the last one sent.
async fn publish_until_killed(
    hub: &mut HubProcess,
    device: &Device,
    first: u64,
    when: KillWhen<'_>,
    acked: &mut BTreeSet<u64>,
) -> u64 {
    let mut options = hub.mqtt_options(device);
    options.set_inflight(32);
    let (client, mut events) = AsyncClient::new(options, 64);
    let id = device.id.clone();
    let publisher = tokio::spawn(async move {
        for n in first..first + MAX_PER_RUN {
            let body = format!("{{\"n\":{n},\"windSpeed\":{}.5}}", n % 40);
            if client
                .publish(topic(&id, n), QoS::AtLeastOnce, false, body)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let watcher = match when {
        KillWhen::BlobStarted(container) => Some(kill_on_first_blob(container, hub.pid())),
        KillWhen::Acked(_) => None,
    };
    // Requests are written in order, so the k-th outgoing PUBLISH carries message first + k.
    let (mut next, mut in_flight, mut acked_here) = (first, HashMap::new(), 0);
    let mut killed = false;
    loop {
        match within("the publishing run", events.poll()).await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                in_flight.insert(pkid, next);
                next += 1;
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                acked.insert(in_flight.remove(&ack.pkid).unwrap());
                acked_here += 1;
                if matches!(when, KillWhen::Acked(count) if count == acked_here) {
                    hub.kill();
                    killed = true;
                }
            }
            Ok(_) => {}
            Err(error) => {
                let by_watcher = watcher.as_ref().is_some_and(|w| w.load(Ordering::SeqCst));
                assert!(
                    killed || by_watcher,
                    "the run broke before the kill ({error}):\n{}",
                    hub.log()
                );
                break;
            }
        }
    }
    publisher.abort();
    hub.kill(); // reaps a hub the watcher killed
    if let KillWhen::Acked(_) = when {
        assert!(
            next > first + acked_here as u64,
            "the kill interrupted nothing: every message sent was acknowledged"
        );
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_reach_queue_and_blobs_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueEndpoint::sqlite(dir.path()).await;
    let blobs = dir.path().join("blobs");
    let container = blobs.join(CONTAINER);
    let routing = tutorial_routing(&queue, &format!("file://{}", blobs.display()), 1);
    let routing = write_routing(dir.path(), &routing);
    let owner_key = random_key();
    let extra = format!(
        "routing:\n  file: {}\n  allow_short_batches: true\n",
        routing.display()
    );
    let config = write_config_with(dir.path(), &owner_key, &extra);
    let owner = service_token(OWNER, &owner_key, valid_expiry());

    let mut hub = HubProcess::start(&config, &dir.path().join("first.log")).await;
    let device = hub.create_device("dev1", &owner).await;
    let mut acked = BTreeSet::new();
    let sent = publish_until_killed(
        &mut hub,
        &device,
        0,
        KillWhen::BlobStarted(&container),
        &mut acked,
    )
    .await;

    let mut hub = HubProcess::start(&config, &dir.path().join("second.log")).await;
    let when = KillWhen::Acked(ACKED_BEFORE_SECOND_KILL);
    let sent = publish_until_killed(&mut hub, &device, sent, when, &mut acked).await;

    let hub = HubProcess::start(&config, &dir.path().join("third.log")).await;
    let health = HealthProbe::new(plain_http_client(), &hub.base_url(), owner.clone());
    for endpoint in [QUEUE_ENDPOINT, STORAGE_ENDPOINT] {
        health.drained(endpoint).await;
    }

    // The queue: every acknowledged critical message at least once; nothing else.
    let mut in_queue: BTreeMap<u64, usize> = BTreeMap::new();
    for received in queue.drain_sqlite().await {
        let n = number(received.message.message_id.as_deref().unwrap_or(""));
        *in_queue.entry(n).or_default() += 1;
    }
    let strays: Vec<&u64> = in_queue
        .keys()
        .filter(|n| !is_critical(**n) || **n >= sent)
        .collect();
    assert!(strays.is_empty(), "in the queue but never sent there: {strays:?}");
    let lost: Vec<&u64> = acked
        .iter()
        .filter(|n| is_critical(**n) && !in_queue.contains_key(n))
        .collect();
    assert!(lost.is_empty(), "acknowledged critical messages lost: {lost:?}");

    // The blobs: each whole; every acknowledged storage message in exactly one record.
    let mut in_blobs: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for blob in local_blobs(&container) {
        for record in blob_records(&blob.name, &blob.bytes) {
            let id = record["SystemProperties"]["messageId"].as_str().unwrap_or("");
            in_blobs.entry(number(id)).or_default().push(blob.name.clone());
            assert_eq!(record["Properties"]["level"], Value::from("storage"));
        }
    }
    let duplicated: Vec<(&u64, &Vec<String>)> =
        in_blobs.iter().filter(|(_, names)| names.len() > 1).collect();
    assert!(duplicated.is_empty(), "records written twice: {duplicated:?}");
    let strays: Vec<&u64> = in_blobs
        .keys()
        .filter(|n| is_critical(**n) || **n >= sent)
        .collect();
    assert!(strays.is_empty(), "in a blob but never sent there: {strays:?}");
    let lost: Vec<&u64> = acked
        .iter()
        .filter(|n| !is_critical(**n) && !in_blobs.contains_key(n))
        .collect();
    assert!(lost.is_empty(), "acknowledged storage messages lost: {lost:?}");
    // A blob killed mid-write leaves only its staging file; its batch was written again, whole,
    // under the name it was recorded with.
    for (name, path) in files_under(&container) {
        if is_staging(&path) {
            let (blob, _) = name.rsplit_once('#').unwrap();
            assert!(
                container.join(blob).exists(),
                "staging file {name} but no blob {blob}"
            );
        }
    }
    assert!(
        acked.iter().any(|n| is_critical(*n)) && acked.iter().any(|n| !is_critical(*n)),
        "both endpoints had acknowledged messages"
    );
}
