//! MQTT sessions: one connection per device (a new one closes the old), subscriptions to the
//! documented device topics granted at QoS ≤ 1 and others refused, and CleanSession=0 sessions
//! kept across reconnects (CONNACK session-present), as the Azure SDKs rely on.

use reqwest::Method;
use rumqttc::{QoS, SubscribeReasonCode};

use crate::support::TestHub;
use crate::support::mqtt::{Link, MqttDevice, Outcome};

#[tokio::test]
async fn a_second_connection_of_a_device_closes_the_first() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    for (first, second) in [
        (Link::Tcp, Link::Tls),
        (Link::Tls, Link::Tcp),
        (Link::Tcp, Link::Tcp),
    ] {
        let case = format!("{first:?} then {second:?}");
        let mut old = hub.connect(&device, first).await;
        assert_eq!(
            old.publish(&device.topic(""), QoS::AtLeastOnce, "old").await,
            Outcome::Acked,
            "{case}"
        );
        let mut new = hub.connect(&device, second).await;
        old.closed_by_hub().await;
        assert_eq!(
            new.publish(&device.topic(""), QoS::AtLeastOnce, "new").await,
            Outcome::Acked,
            "{case}"
        );
        // The replaced connection's end does not mark the device disconnected.
        let shown = hub
            .registry(Method::GET, "/devices/dev1", Some(&hub.owner_token()), None, None)
            .await;
        assert_eq!(shown.body["connectionState"], "Connected", "{case}");
        new.disconnect().await;
    }
}

/// Filters a device asks for, and what the SUBACK must say.
const SUBSCRIPTIONS: &[(&str, QoS, SubscribeReasonCode)] = {
    use QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};
    use SubscribeReasonCode::{Failure, Success};
    &[
        ("devices/dev1/messages/devicebound/#", Q1, Success(Q1)),
        ("$iothub/twin/res/#", Q2, Success(Q1)),
        ("$iothub/twin/PATCH/properties/desired/#", Q0, Success(Q0)),
        ("$iothub/methods/POST/#", Q2, Success(Q1)),
        ("devices/dev2/messages/devicebound/#", Q1, Failure),
        ("devices/+/messages/devicebound/#", Q1, Failure),
        ("devices/dev1/messages/events/#", Q1, Failure),
        ("devices/dev1/modules/m1/inputs/#", Q1, Failure),
        ("$iothub/twin/#", Q1, Failure),
        ("#", Q0, Failure),
    ]
};

#[tokio::test]
async fn documented_topics_are_granted_at_qos_1_at_most_and_others_refused() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    hub.create_device("dev2").await;
    for link in [Link::Tcp, Link::Tls] {
        let mut connection = hub.connect(&device, link).await;
        // One filter per SUBSCRIBE, then all of them in one.
        for (filter, qos, expected) in SUBSCRIPTIONS {
            assert_eq!(
                connection.subscribe(&[(filter, *qos)]).await,
                [*expected],
                "{filter} at {qos:?} over {link:?}"
            );
        }
        let all: Vec<(&str, QoS)> = SUBSCRIPTIONS
            .iter()
            .map(|(filter, qos, _)| (*filter, *qos))
            .collect();
        let expected: Vec<SubscribeReasonCode> = SUBSCRIPTIONS.iter().map(|(_, _, code)| *code).collect();
        assert_eq!(
            connection.subscribe(&all).await,
            expected,
            "one SUBSCRIBE over {link:?}"
        );
        // A refused filter does not end the connection.
        assert_eq!(
            connection
                .publish(&device.topic(""), QoS::AtLeastOnce, "still here")
                .await,
            Outcome::Acked
        );
        connection.disconnect().await;
    }
}

#[tokio::test]
async fn clean_session_0_is_kept_across_reconnects() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let connect = |link, clean| {
        let mut options = hub.mqtt_options(link, "dev1", &device.token());
        options.set_clean_session(clean);
        async move {
            match MqttDevice::connect(options).await {
                Ok(connected) => connected,
                Err(code) => panic!("refused: {code:?}"),
            }
        }
    };
    // (step, link, CleanSession, subscribe to C2D before leaving, expected session-present)
    let steps = [
        ("first persistent connect", Link::Tcp, false, true, false),
        ("reconnect keeps the session", Link::Tls, false, false, true),
        ("and again, without subscribing", Link::Tcp, false, false, true),
        ("a clean session has none", Link::Tls, true, false, false),
        (
            "the clean session removed the kept one",
            Link::Tcp,
            false,
            false,
            false,
        ),
        (
            "a persistent session without subscriptions is kept",
            Link::Tcp,
            false,
            false,
            true,
        ),
    ];
    for (step, link, clean, subscribe, present) in steps {
        let (mut connection, session_present) = connect(link, clean).await;
        assert_eq!(session_present, present, "{step}");
        if subscribe {
            let granted = connection
                .subscribe(&[("devices/dev1/messages/devicebound/#", QoS::AtLeastOnce)])
                .await;
            assert_eq!(
                granted,
                [SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                "{step}"
            );
        }
        connection.disconnect().await;
    }
}
