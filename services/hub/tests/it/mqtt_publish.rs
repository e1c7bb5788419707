//! MQTT PUBLISH over TCP and TLS: property bags in the `$.` and `%24.` forms land as the right
//! system and application properties (read back through `/events`); QoS 2, another device's topic
//! and unknown topics close the connection; the 256 KB limit is exact.

use iothub_protocol::SystemProperty as P;
use iothub_protocol::{MAX_MESSAGE_SIZE, Message};
use rumqttc::QoS;

use crate::support::events::{Event, message_id};
use crate::support::mqtt::{Link, Outcome};
use crate::support::{Device, TestHub};

const LINKS: [Link; 2] = [Link::Tcp, Link::Tls];

/// What the hub stamps on every message; a device cannot set these.
const STAMPED: [P; 5] = [
    P::ConnectionDeviceId,
    P::ConnectionModuleId,
    P::ConnectionAuthMethod,
    P::ConnectionDeviceGenerationId,
    P::EnqueuedTime,
];

/// A message as a device publishes it, and what the hub must store.
struct Bag {
    /// The topic; `{id}` is the device id.
    topic: &'static str,
    qos: QoS,
    retain: bool,
    /// System properties the device set (the stamped ones are checked separately).
    system: &'static [(P, &'static str)],
    /// Application properties, in order; `None` is a key without `=`.
    app: &'static [(&'static str, Option<&'static str>)],
}

const BAGS: &[Bag] = &[
    Bag {
        topic: "devices/{id}/messages/events/$.mid=m1&$.cid=c1&$.ct=application%2Fjson&$.ce=utf-8&level=critical",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[
            (P::MessageId, "m1"),
            (P::CorrelationId, "c1"),
            (P::ContentType, "application/json"),
            (P::ContentEncoding, "utf-8"),
        ],
        app: &[("level", Some("critical"))],
    },
    // What the Python SDK sends (spec §2, computed from its encoder).
    Bag {
        topic: "devices/{id}/messages/events/%24.mid=msg-1&%24.cid=corr%201&%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=true&unit=%C2%B0C%2Fs",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[
            (P::MessageId, "msg-1"),
            (P::CorrelationId, "corr 1"),
            (P::ContentType, "application/json"),
            (P::ContentEncoding, "utf-8"),
        ],
        app: &[("temperatureAlert", Some("true")), ("unit", Some("°C/s"))],
    },
    // The C SDK's `%24.` keys, and the rarer system keys.
    Bag {
        topic: "devices/{id}/messages/events/%24.mid=m3&%24.uid=user-1&%24.ctime=2021-04-21T11%3A30%3A16Z&%24.exp=2030-01-01T00:00:00Z",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[
            (P::MessageId, "m3"),
            (P::UserId, "user-1"),
            (P::CreationTime, "2021-04-21T11:30:16Z"),
            (P::AbsoluteExpiryTime, "2030-01-01T00:00:00Z"),
        ],
        app: &[],
    },
    // A raw `/` ends the bag (edgeHub's tokenizer; the C SDK sends raw values by default).
    Bag {
        topic: "devices/{id}/messages/events/%24.mid=m3b&%24.ct=application/json&after=dropped",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[(P::MessageId, "m3b"), (P::ContentType, "application")],
        app: &[],
    },
    // Percent-decoding only (MQTT forbids a literal `+` in a topic name, so `%2B` is how a plus
    // arrives); a key without `=` is a null; `=` alone is an empty string.
    Bag {
        topic: "devices/{id}/messages/events/$.mid=m4&a%2Bb=c%2Bd&flag&empty=&sp%20ace=x%26y",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[(P::MessageId, "m4")],
        app: &[
            ("a+b", Some("c+d")),
            ("flag", None),
            ("empty", Some("")),
            ("sp ace", Some("x&y")),
        ],
    },
    // A device cannot spoof the stamped identity: `$.cdid` stays an application property.
    Bag {
        topic: "devices/{id}/messages/events/$.mid=m5&$.cdid=spoofed",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[(P::MessageId, "m5")],
        app: &[("$.cdid", Some("spoofed"))],
    },
    Bag {
        topic: "devices/{id}/messages/events/",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[],
        app: &[],
    },
    Bag {
        topic: "devices/{id}/messages/events",
        qos: QoS::AtLeastOnce,
        retain: false,
        system: &[],
        app: &[],
    },
    // QoS 0 is stored too; RETAIN becomes `mqtt-retain`.
    Bag {
        topic: "devices/{id}/messages/events/$.mid=m8",
        qos: QoS::AtMostOnce,
        retain: false,
        system: &[(P::MessageId, "m8")],
        app: &[],
    },
    Bag {
        topic: "devices/{id}/messages/events/$.mid=m9",
        qos: QoS::AtLeastOnce,
        retain: true,
        system: &[(P::MessageId, "m9")],
        app: &[("mqtt-retain", Some("true"))],
    },
];

#[track_caller]
fn check_stored(bag: &Bag, event: &Event, device: &Device, link: Link) {
    let message = &event.message;
    let case = format!("{} over {link:?}", bag.topic);
    let system: Vec<(P, &str)> = message
        .system
        .iter()
        .filter(|(p, _)| !STAMPED.contains(p))
        .collect();
    assert_eq!(system, bag.system.to_vec(), "{case}: system properties");
    let app: Vec<(&str, Option<&str>)> = message
        .app_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(app, bag.app.to_vec(), "{case}: application properties");
    assert_eq!(
        message.system.get(P::ConnectionDeviceId),
        Some(device.id.as_str()),
        "{case}"
    );
    assert_eq!(message.system.get(P::ConnectionModuleId), None, "{case}");
    let auth: serde_json::Value =
        serde_json::from_str(message.system.get(P::ConnectionAuthMethod).unwrap()).unwrap();
    assert_eq!(auth["type"], "sas", "{case}");
    assert_eq!(auth["scope"], "device", "{case}");
    assert!(
        message.system.get(P::ConnectionDeviceGenerationId).is_some(),
        "{case}"
    );
    assert!(
        message
            .system
            .get(P::EnqueuedTime)
            .is_some_and(|t| t.ends_with('Z')),
        "{case}"
    );
    assert_eq!(message.body, bag.topic.as_bytes(), "{case}: body");
}

#[tokio::test]
async fn property_bags_land_as_system_and_application_properties() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    for link in LINKS {
        let mut connection = hub.connect(&device, link).await;
        for bag in BAGS {
            let topic = bag.topic.replace("{id}", &device.id);
            let outcome = connection
                .publish_with(&topic, bag.qos, bag.retain, bag.topic)
                .await;
            let expected = if bag.qos == QoS::AtMostOnce {
                Outcome::Sent
            } else {
                Outcome::Acked
            };
            assert_eq!(outcome, expected, "{} over {link:?}", bag.topic);
        }
        connection.disconnect().await;
    }
    let events = hub.events(&device.id, 2 * BAGS.len()).await;
    assert!(
        events.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase"
    );
    let expected = LINKS
        .iter()
        .flat_map(|link| BAGS.iter().map(move |bag| (bag, *link)));
    for (event, (bag, link)) in events.iter().zip(expected) {
        check_stored(bag, event, &device, link);
    }
}

#[tokio::test]
async fn qos2_foreign_and_unknown_topics_close_the_connection() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let other = hub.create_device("dev2").await;
    // (case, topic, QoS, reason counted in hub_protocol_errors_total)
    let cases = [
        (
            "QoS 2",
            "devices/dev1/messages/events/$.mid=bad",
            QoS::ExactlyOnce,
            "qos2_publish",
        ),
        (
            "another device's topic",
            "devices/dev2/messages/events/$.mid=bad",
            QoS::AtLeastOnce,
            "foreign_topic",
        ),
        (
            "another device's topic, QoS 0",
            "devices/dev2/messages/events/",
            QoS::AtMostOnce,
            "foreign_topic",
        ),
        (
            "a module's topic",
            "devices/dev1/modules/m1/messages/events/",
            QoS::AtLeastOnce,
            "foreign_topic",
        ),
        (
            "unknown topic",
            "sensors/dev1/temperature",
            QoS::AtLeastOnce,
            "unknown_topic",
        ),
        (
            "cloud-to-device topic",
            "devices/dev1/messages/devicebound/",
            QoS::AtLeastOnce,
            "unknown_topic",
        ),
    ];
    for link in LINKS {
        for (case, topic, qos, reason) in cases {
            let counter = format!("hub_protocol_errors_total{{outcome=\"{reason}\"}}");
            let before = hub.metric(&counter).await;
            let mut connection = hub.connect(&device, link).await;
            let outcome = connection.publish(topic, qos, "refused").await;
            if qos == QoS::AtMostOnce {
                // Nothing to wait for after a QoS 0 publish: the close is what follows.
                assert_eq!(outcome, Outcome::Sent, "{case} over {link:?}");
                connection.closed_by_hub().await;
            } else {
                assert_eq!(outcome, Outcome::Closed, "{case} over {link:?}");
            }
            assert_eq!(
                hub.metric(&counter).await,
                before + 1.0,
                "{case} over {link:?}: closed for another reason"
            );
        }
    }
    // Nothing of it was stored, for either device: each stream holds only its marker.
    for device in [&device, &other] {
        let mut connection = hub.connect(device, Link::Tcp).await;
        let outcome = connection
            .publish(&device.topic("$.mid=marker"), QoS::AtLeastOnce, "marker")
            .await;
        assert_eq!(outcome, Outcome::Acked);
        let events = hub.events_until_marker(&device.id, "marker").await;
        let ids: Vec<&str> = events.iter().map(message_id).collect();
        assert_eq!(ids, ["marker"], "{} stream", device.id);
    }
}

/// A message of `body` bytes plus `bag`, and whether the hub must take it (IoT Hub's size: body,
/// system property values, application property names and values).
struct Sized {
    body: usize,
    bag: &'static str,
    accepted: bool,
}

const SIZES: &[Sized] = &[
    Sized {
        body: MAX_MESSAGE_SIZE,
        bag: "",
        accepted: true,
    },
    Sized {
        body: MAX_MESSAGE_SIZE + 1,
        bag: "",
        accepted: false,
    },
    Sized {
        body: MAX_MESSAGE_SIZE - 5,
        bag: "k=vvvv",
        accepted: true,
    },
    Sized {
        body: MAX_MESSAGE_SIZE - 5,
        bag: "k=vvvvv",
        accepted: false,
    },
    Sized {
        body: MAX_MESSAGE_SIZE - 3,
        bag: "$.mid=abc",
        accepted: true,
    },
    Sized {
        body: MAX_MESSAGE_SIZE - 3,
        bag: "$.mid=abcd",
        accepted: false,
    },
];

#[tokio::test]
async fn the_256_kb_limit_is_exact() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let mut stored = Vec::new();
    for link in LINKS {
        for size in SIZES {
            let case = format!("{} body bytes + {:?} over {link:?}", size.body, size.bag);
            let before = hub
                .metric("hub_messages_refused_total{outcome=\"too_large\"}")
                .await;
            let mut connection = hub.connect(&device, link).await;
            let outcome = connection
                .publish(&device.topic(size.bag), QoS::AtLeastOnce, vec![b'x'; size.body])
                .await;
            if size.accepted {
                assert_eq!(outcome, Outcome::Acked, "{case}");
                stored.push((size.body, size.bag));
                connection.disconnect().await;
            } else {
                // Closed without a PUBACK, counted as too large.
                assert_eq!(outcome, Outcome::Closed, "{case}");
                let after = hub
                    .metric("hub_messages_refused_total{outcome=\"too_large\"}")
                    .await;
                assert_eq!(after, before + 1.0, "{case}");
            }
        }
    }
    let mut connection = hub.connect(&device, Link::Tcp).await;
    assert_eq!(
        connection
            .publish(&device.topic("$.mid=marker"), QoS::AtLeastOnce, "m")
            .await,
        Outcome::Acked
    );
    let events = hub.events_until_marker(&device.id, "marker").await;
    let found: Vec<(usize, String)> = events[..events.len() - 1]
        .iter()
        .map(|e| (e.message.body.len(), bag_of(&e.message)))
        .collect();
    let expected: Vec<(usize, String)> = stored
        .iter()
        .map(|(body, bag)| (*body, (*bag).to_owned()))
        .collect();
    assert_eq!(
        found, expected,
        "exactly the messages within the limit were stored"
    );
}

/// The stored properties, written back as the bag that was sent (for the size cases).
fn bag_of(message: &Message) -> String {
    let mut pairs: Vec<String> = message
        .system
        .iter()
        .filter(|(p, _)| *p == P::MessageId)
        .map(|(_, v)| format!("$.mid={v}"))
        .collect();
    pairs.extend(
        message
            .app_properties
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or(""))),
    );
    pairs.join("&")
}
