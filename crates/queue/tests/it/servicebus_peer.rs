//! The Service Bus backend against the in-process peer (`fake_servicebus`): the conformance suite,
//! then the Service Bus-only frames one by one.

use std::time::Duration;

use queue::{ConnectionConfig, Error, Message, QueueClient, QueueOptions};

use crate::conformance::{ARRIVES, conformance_tests};
use crate::fake_servicebus::FakeServiceBus;
use crate::support::{Caps, Fixture, Harness, receive_n, unique_name};

pub(crate) struct PeerServiceBus;

impl Harness for PeerServiceBus {
    fn caps(&self) -> Caps {
        Caps {
            lock_expiry: true,
            delivery_count: true,
            dead_letter_reason: true,
            counts: false,
            refuses_unknown_queues: false,
        }
    }

    async fn fixture(&self, options: QueueOptions) -> Fixture {
        let name = unique_name("critical");
        let bus = FakeServiceBus::start(&[&name], options.lock_duration, options.max_delivery_count).await;
        let connection = bus.connection_string(&name);
        let client = QueueClient::connect(&connection).await.unwrap();
        assert_eq!(client.entity_path(), Some(name.as_str()));
        let queue = client.queue(&name).await.unwrap();
        let dead_letters = client.queue(&queue::dead_letter_queue_name(&name)).await.unwrap();
        Fixture {
            client,
            connection,
            queue,
            dead_letters,
            name,
            _guard: Box::new(bus),
        }
    }
}

conformance_tests!(PeerServiceBus);

async fn bus_and_client(lifetime: Option<Duration>) -> (FakeServiceBus, QueueClient, String) {
    let name = unique_name("critical");
    let bus = FakeServiceBus::start(&[&name], Duration::from_secs(30), 10).await;
    let mut config = ConnectionConfig::parse(&bus.connection_string(&name)).unwrap();
    if let (ConnectionConfig::ServiceBus(sb), Some(lifetime)) = (&mut config, lifetime) {
        sb.token_lifetime = lifetime;
    }
    (bus, QueueClient::from_config(config).await.unwrap(), name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbs_token_is_put_and_verified_before_links_attach() {
    let (bus, client, name) = bus_and_client(None).await;
    let q = client.queue(&name).await.unwrap();
    q.send(Message::new(b"x".to_vec())).await.unwrap();
    let audience = format!("sb://127.0.0.1/{name}");
    bus.seen(|seen| {
        assert!(
            seen.puts
                .iter()
                .any(|(a, t, ok)| *a == audience && t == "servicebus.windows.net:sastoken" && *ok)
        );
        let put = seen
            .events
            .iter()
            .position(|e| *e == format!("put-token {audience}"))
            .unwrap();
        let attach = seen
            .events
            .iter()
            .position(|e| *e == format!("attach {name}"))
            .unwrap();
        assert!(put < attach, "CBS before attach: {:?}", seen.events);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbs_token_is_renewed_before_it_expires() {
    let (bus, client, name) = bus_and_client(Some(Duration::from_millis(500))).await;
    let _q = client.queue(&name).await.unwrap();
    let audience = format!("sb://127.0.0.1/{name}");
    let mut puts = 0;
    for _ in 0..200 {
        puts = bus.seen(|s| s.puts.iter().filter(|(a, _, ok)| *a == audience && *ok).count());
        if puts >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(puts >= 3, "token put again before expiry, {puts} puts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_unauthorized() {
    let name = unique_name("critical");
    let bus = FakeServiceBus::start(&[&name], Duration::from_secs(30), 10).await;
    let connection = bus
        .connection_string(&name)
        .replace("SharedAccessKey=SAS_KEY_VALUE+/=", "SharedAccessKey=wrong");
    let client = QueueClient::connect(&connection).await.unwrap();
    let result = client.queue(&name).await;
    assert!(matches!(result, Err(Error::Unauthorized { .. })), "{result:?}");
    assert!(
        !format!("{result:?}").contains("wrong"),
        "the key never shows in errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_lock_token_and_annotations() {
    let (_bus, client, name) = bus_and_client(None).await;
    let q = client.queue(&name).await.unwrap();
    q.send(Message::new(b"x".to_vec()).with_message_id("m"))
        .await
        .unwrap();
    let m = receive_n(&*q, 1, ARRIVES).await.pop().unwrap();
    assert!(
        m.lock_token.lock_uuid().is_some(),
        "lock token from x-opt-lock-token"
    );
    assert!(m.locked_until.is_some(), "x-opt-locked-until");
    assert!(m.enqueued_time.is_some(), "x-opt-enqueued-time");
    assert!(m.sequence_number.is_some(), "x-opt-sequence-number");
    assert_eq!(
        m.lock_token.to_string(),
        m.lock_token.lock_uuid().unwrap().to_string()
    );
    q.complete(&m.lock_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_modified_and_rejected_with_dead_letter_reason() {
    let (bus, client, name) = bus_and_client(None).await;
    let q = client.queue(&name).await.unwrap();
    q.send(Message::new(b"x".to_vec())).await.unwrap();
    let m = receive_n(&*q, 1, ARRIVES).await.pop().unwrap();
    q.abandon(&m.lock_token).await.unwrap();
    let m = receive_n(&*q, 1, ARRIVES).await.pop().unwrap();
    assert_eq!(m.delivery_count, 2, "header.delivery-count + 1");
    let renewed = q.renew_lock(&m.lock_token).await.unwrap();
    assert!(renewed >= m.locked_until.unwrap());
    q.dead_letter(&m.lock_token, "BadTelemetry", "no windSpeed")
        .await
        .unwrap();
    let dlq = client.queue(&queue::dead_letter_queue_name(&name)).await.unwrap();
    let dead = receive_n(&*dlq, 1, ARRIVES).await.pop().unwrap();
    dlq.complete(&dead.lock_token).await.unwrap();
    bus.seen(|seen| {
        assert_eq!(seen.outcomes[0], "modified failed=true here=false");
        assert!(
            seen.outcomes[1].starts_with("rejected")
                && seen.outcomes[1].contains("com.microsoft:dead-letter")
        );
        assert!(seen.outcomes[1].contains("BadTelemetry"), "{}", seen.outcomes[1]);
        assert_eq!(seen.renewed, vec![m.lock_token.lock_uuid().unwrap()]);
    });
}
