//! MQTT CONNECT over TCP and TLS: which logins the hub accepts, which it refuses with CONNACK
//! "not authorized" (and for which logged reason), and disabling a device closing its connection.

use reqwest::Method;
use rumqttc::{ConnectReturnCode, QoS};

use crate::support::mqtt::{Link, MqttDevice, Outcome};
use crate::support::{HOST, TestHub, device_token, expired_expiry, random_key, valid_expiry};

const LINKS: [Link; 2] = [Link::Tcp, Link::Tls];

#[tokio::test]
async fn devices_connect_over_tcp_and_tls() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let api = iothub_protocol::API_VERSION;
    // (case, username, password)
    let logins = [
        (
            "documented username",
            format!("{HOST}/dev1/?api-version={api}"),
            device.token(),
        ),
        (
            "secondary key",
            format!("{HOST}/dev1/?api-version={api}"),
            device_token("dev1", &device.secondary_key, valid_expiry()),
        ),
        (
            "Python SDK username",
            format!(
                "{HOST}/dev1/?api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0"
            ),
            device.token(),
        ),
        (
            "2017 username without '?'",
            format!("{HOST}/dev1/api-version=2016-11-14"),
            device.token(),
        ),
    ];
    for link in LINKS {
        for (case, username, password) in &logins {
            let options = hub.mqtt_login(link, "dev1", username, password);
            let (mut connection, session_present) = match MqttDevice::connect(options).await {
                Ok(connected) => connected,
                Err(code) => panic!("{case} over {link:?}: refused with {code:?}"),
            };
            assert!(
                !session_present,
                "{case} over {link:?}: a clean session has no stored session"
            );
            let outcome = connection
                .publish(&device.topic(""), QoS::AtLeastOnce, "{}")
                .await;
            assert_eq!(outcome, Outcome::Acked, "{case} over {link:?}");
            let shown = hub
                .registry(Method::GET, "/devices/dev1", Some(&hub.owner_token()), None, None)
                .await;
            assert_eq!(shown.body["connectionState"], "Connected", "{case} over {link:?}");
            connection.disconnect().await;
        }
    }
}

#[tokio::test]
async fn bad_logins_get_connack_not_authorized() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let other = hub.create_device("dev2").await;
    let off = hub.create_device("off").await;
    assert_eq!(hub.set_status("off", "disabled").await.status, 200);
    let valid = valid_expiry();
    let foreign_hub = iothub_protocol::sas::SasToken::generate(
        &iothub_protocol::sas::ResourceUri::device("otherhub.azure-devices.net", "dev1"),
        &device.primary_key,
        None,
        valid,
    )
    .expose_secret();
    // (case, client id, password, reason the hub counts in hub_connects_total)
    let cases = [
        (
            "wrong key",
            "dev1",
            device_token("dev1", &random_key(), valid),
            "bad_signature",
        ),
        (
            "expired token",
            "dev1",
            device_token("dev1", &device.primary_key, expired_expiry()),
            "expired_token",
        ),
        (
            "other device's sr and key",
            "dev1",
            other.token(),
            "wrong_resource",
        ),
        (
            "other device's sr, own key",
            "dev1",
            device_token("dev2", &device.primary_key, valid),
            "wrong_resource",
        ),
        ("disabled device", "off", off.token(), "disabled_device"),
        (
            "unknown device",
            "ghost",
            device_token("ghost", &random_key(), valid),
            "unknown_device",
        ),
        ("another hub's sr", "dev1", foreign_hub, "unknown_host"),
        ("not a SAS token", "dev1", "hunter2".to_owned(), "malformed_token"),
    ];
    for link in LINKS {
        for (case, client_id, password, reason) in &cases {
            let counter = format!("hub_connects_total{{outcome=\"{reason}\"}}");
            let before = hub.metric(&counter).await;
            match MqttDevice::connect(hub.mqtt_options(link, client_id, password)).await {
                Err(code) => assert_eq!(code, ConnectReturnCode::NotAuthorized, "{case} over {link:?}"),
                Ok(_) => panic!("{case} over {link:?}: the hub accepted the login"),
            }
            assert_eq!(
                hub.metric(&counter).await,
                before + 1.0,
                "{case} over {link:?}: refused for another reason"
            );
        }
    }
}

#[tokio::test]
async fn a_username_naming_another_device_is_a_bad_client_id() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    hub.create_device("dev2").await;
    let username = format!("{HOST}/dev2/?api-version={}", iothub_protocol::API_VERSION);
    for link in LINKS {
        match MqttDevice::connect(hub.mqtt_login(link, "dev1", &username, &device.token())).await {
            Err(code) => assert_eq!(code, ConnectReturnCode::BadClientId, "over {link:?}"),
            Ok(_) => panic!("over {link:?}: the hub accepted a username naming another device"),
        }
    }
}

#[tokio::test]
async fn disabling_a_device_closes_its_connection_and_refuses_the_next() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    for link in LINKS {
        let mut connection = hub.connect(&device, link).await;
        assert_eq!(
            connection
                .publish(&device.topic(""), QoS::AtLeastOnce, "before")
                .await,
            Outcome::Acked
        );

        assert_eq!(hub.set_status("dev1", "disabled").await.status, 200);
        connection.closed_by_hub().await;
        match MqttDevice::connect(hub.mqtt_options(link, "dev1", &device.token())).await {
            Err(code) => assert_eq!(code, ConnectReturnCode::NotAuthorized, "over {link:?}"),
            Ok(_) => panic!("over {link:?}: a disabled device connected"),
        }

        assert_eq!(hub.set_status("dev1", "enabled").await.status, 200);
        let mut again = hub.connect(&device, link).await;
        assert_eq!(
            again.publish(&device.topic(""), QoS::AtLeastOnce, "after").await,
            Outcome::Acked
        );
        again.disconnect().await;
    }
}

#[tokio::test]
async fn deleting_a_device_closes_its_connection() {
    let hub = TestHub::start();
    let device = hub.create_device("dev1").await;
    let mut connection = hub.connect(&device, Link::Tls).await;
    let deleted = hub
        .registry(
            Method::DELETE,
            "/devices/dev1",
            Some(&hub.owner_token()),
            Some("*"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    connection.closed_by_hub().await;
    match MqttDevice::connect(hub.mqtt_options(Link::Tls, "dev1", &device.token())).await {
        Err(code) => assert_eq!(code, ConnectReturnCode::NotAuthorized),
        Ok(_) => panic!("a deleted device connected"),
    }
}
