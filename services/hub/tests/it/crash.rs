//! Kill -9 during a QoS 1 publishing run: after a restart on the same data directory, every
//! message the hub acknowledged (PUBACK) is in the `events` stream. Runs the `hub` binary.

use std::collections::{BTreeSet, HashMap};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};

use crate::support::events::{message_id, read_events};
use crate::support::mqtt::{MqttDevice, Outcome};
use crate::support::process::{HubProcess, write_config};
use crate::support::{HOST, OWNER, plain_http_client, random_key, service_token, valid_expiry, within};

/// Acknowledged messages before the kill.
const ACKED_BEFORE_KILL: usize = 500;

fn options(hub: &HubProcess, password: &str) -> MqttOptions {
    let mut options = MqttOptions::new("dev1", "127.0.0.1", hub.mqtt_tcp.port());
    options.set_credentials(
        format!("{HOST}/dev1/?api-version={}", iothub_protocol::API_VERSION),
        password,
    );
    options.set_inflight(32);
    options
}

fn topic(n: u64) -> String {
    format!("devices/dev1/messages/events/$.mid=msg-{n}")
}

/// Publishes QoS 1 messages without pause until the hub is killed after `ACKED_BEFORE_KILL`
/// acknowledgements; returns the numbers of the acknowledged messages and how many were sent.
async fn publish_until_killed(hub: &mut HubProcess, password: &str) -> (BTreeSet<u64>, u64) {
    let (client, mut events) = AsyncClient::new(options(hub, password), 64);
    let publisher = tokio::spawn(async move {
        for n in 0.. {
            if client
                .publish(topic(n), QoS::AtLeastOnce, false, format!("{{\"n\":{n}}}"))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    // Requests are written in order, so the k-th outgoing PUBLISH carries message k; its packet
    // id maps the PUBACK back to it.
    let (mut sent, mut in_flight, mut acked) = (0u64, HashMap::new(), BTreeSet::new());
    let mut killed = false;
    loop {
        match within("the publishing run", events.poll()).await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                in_flight.insert(pkid, sent);
                sent += 1;
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                let n = in_flight.remove(&ack.pkid).unwrap();
                acked.insert(n);
                if acked.len() == ACKED_BEFORE_KILL {
                    hub.kill();
                    killed = true;
                }
            }
            Ok(_) => {}
            Err(error) => {
                assert!(killed, "the run broke before the kill ({error}):\n{}", hub.log());
                break;
            }
        }
    }
    publisher.abort();
    (acked, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let owner_key = random_key();
    let config = write_config(dir.path(), &owner_key);
    let owner = service_token(OWNER, &owner_key, valid_expiry());
    let http = plain_http_client();

    let mut hub = HubProcess::start(&config, &dir.path().join("first.log")).await;
    let device = hub.create_device("dev1", &owner).await;

    let (acked, sent) = publish_until_killed(&mut hub, &device.token()).await;
    assert!(
        sent > acked.len() as u64,
        "the kill interrupted nothing: {sent} sent, all acknowledged"
    );

    let hub = HubProcess::start(&config, &dir.path().join("second.log")).await;
    let (mut connection, _) = MqttDevice::connect(options(&hub, &device.token())).await.unwrap();
    let marker = connection
        .publish("devices/dev1/messages/events/$.mid=marker", QoS::AtLeastOnce, "m")
        .await;
    assert_eq!(marker, Outcome::Acked);
    let base = format!("http://{}", hub.http);
    let events = read_events(&http, &base, &owner, "dev1", |e| message_id(e) == "marker").await;
    let stored: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| message_id(e).strip_prefix("msg-")?.parse().ok())
        .collect();
    let lost: Vec<&u64> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?} ({} acknowledged, {} stored)",
        acked.len(),
        stored.len()
    );
    assert!(
        stored.len() <= sent as usize,
        "stored messages that were never sent"
    );
}
