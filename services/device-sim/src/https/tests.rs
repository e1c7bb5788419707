//! HTTPS telemetry against the real local hub (see [`TestHub`]), plus the status and header
//! mapping on their own.

use std::time::{Duration, SystemTime};

use iothub_protocol::connection_string::{DeviceConnectionString, DeviceCredential};
use iothub_protocol::sas::SharedAccessKey;

use super::*;
use crate::registry::tests::{HOST, TestHub, closed_endpoint, device_id, random_key};

const TIMEOUT: Duration = Duration::from_secs(10);

fn connection_string(id: &str, key: SharedAccessKey) -> DeviceConnectionString {
    DeviceConnectionString::new(HOST, id, DeviceCredential::SharedAccessKey(key)).unwrap()
}

/// A device registered in `hub`, sending over the plain HTTP listener.
async fn registered_device(hub: &TestHub, prefix: &str) -> HttpsDevice {
    let id = device_id(prefix);
    let key = hub.registry().ensure_device(&id).await.unwrap();
    HttpsDevice::new(
        &connection_string(&id, key),
        Some(&hub.http_endpoint()),
        None,
        TIMEOUT,
    )
    .unwrap()
}

fn tutorial_message(id: &str) -> SimMessage {
    SimMessage {
        body: br#"{"deviceId":"sim","windSpeed":12.5}"#.to_vec(),
        message_id: Some(id.to_owned()),
        correlation_id: Some("corr-7".to_owned()),
        content_type: Some("application/json".to_owned()),
        content_encoding: Some("utf-8".to_owned()),
        properties: vec![
            ("level".to_owned(), "critical".to_owned()),
            ("unit".to_owned(), "m/s".to_owned()),
        ],
    }
}

#[tokio::test]
async fn a_message_with_ids_properties_and_content_type_lands_in_the_hub() {
    let hub = TestHub::start();
    let device = registered_device(&hub, "https").await;
    device.send(&tutorial_message("m-1")).await.unwrap();
    let plain = SimMessage {
        body: b"raw bytes \x00\x01".to_vec(),
        ..SimMessage::default()
    };
    device.send(&plain).await.unwrap();

    let events = hub.events(device.device_id(), 2).await;
    let first = &events[0];
    assert_eq!(first.body, br#"{"deviceId":"sim","windSpeed":12.5}"#);
    assert_eq!(first.system.message_id.as_deref(), Some("m-1"));
    assert_eq!(first.system.correlation_id.as_deref(), Some("corr-7"));
    assert_eq!(first.system.content_type.as_deref(), Some("application/json"));
    assert_eq!(first.system.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(first.app_property("level"), Some(Some("critical")));
    assert_eq!(first.app_property("unit"), Some(Some("m/s")));
    assert_eq!(first.app_properties.len(), 2, "{:?}", first.app_properties);
    assert_eq!(
        first.system.connection_device_id.as_deref(),
        Some(device.device_id())
    );
    let second = &events[1];
    assert_eq!(second.body, b"raw bytes \x00\x01");
    assert_eq!(second.system.message_id, None);
    assert!(second.app_properties.is_empty());
}

#[tokio::test]
async fn a_fleet_shares_one_client_over_tls() {
    let hub = TestHub::start();
    let client = client(Some(&hub.ca_file)).unwrap();
    let registry =
        crate::registry::Registry::with_client(client.clone(), hub.owner(), Some(hub.https_endpoint()))
            .unwrap();
    let mut devices = Vec::new();
    for _ in 0..3 {
        let id = device_id("fleet");
        let key = registry.ensure_device(&id).await.unwrap();
        let cs = connection_string(&id, key);
        devices.push(
            HttpsDevice::with_client(client.clone(), &cs, Some(&hub.https_endpoint()), TIMEOUT).unwrap(),
        );
    }
    for device in &devices {
        device.send(&tutorial_message(device.device_id())).await.unwrap();
    }
    for device in &devices {
        let events = hub.events(device.device_id(), 1).await;
        assert_eq!(events[0].system.message_id.as_deref(), Some(device.device_id()));
    }
}

#[tokio::test]
async fn the_gateway_host_name_is_where_the_device_connects() {
    let hub = TestHub::start();
    let id = device_id("gw");
    let key = hub.registry().ensure_device(&id).await.unwrap();
    // HostName names the hub in tokens; GatewayHostName is the connect host (no endpoint override).
    let cs = connection_string(&id, key)
        .with_gateway_host_name(format!("{HOST}:{}", hub.https.port()))
        .unwrap();
    let device = HttpsDevice::new(&cs, None, Some(&hub.ca_file), TIMEOUT).unwrap();
    assert_eq!(device.url().host_str(), Some(HOST));
    assert_eq!(device.url().port(), Some(hub.https.port()));
    device.send(&tutorial_message("via-gateway")).await.unwrap();
    let events = hub.events(&id, 1).await;
    assert_eq!(events[0].system.message_id.as_deref(), Some("via-gateway"));
}

#[tokio::test]
async fn a_wrong_device_key_is_unauthorized() {
    let hub = TestHub::start();
    let id = device_id("wrongkey");
    hub.registry().ensure_device(&id).await.unwrap();
    let device = HttpsDevice::new(
        &connection_string(&id, random_key()),
        Some(&hub.http_endpoint()),
        None,
        TIMEOUT,
    )
    .unwrap();
    let error = device.send(&tutorial_message("m")).await.unwrap_err();
    assert!(matches!(error, SendError::Unauthorized(_)), "{error:?}");
    // So is a device the registry does not know.
    let unknown = HttpsDevice::new(
        &connection_string(&device_id("unknown"), random_key()),
        Some(&hub.http_endpoint()),
        None,
        TIMEOUT,
    )
    .unwrap();
    let error = unknown.send(&tutorial_message("m")).await.unwrap_err();
    assert!(matches!(error, SendError::Unauthorized(_)), "{error:?}");
}

#[tokio::test]
async fn an_oversize_body_is_rejected_and_the_device_goes_on() {
    let hub = TestHub::start();
    let device = registered_device(&hub, "big").await;
    for size in [256 * 1024 + 1, 300 * 1024] {
        let message = SimMessage {
            body: vec![b'x'; size],
            ..SimMessage::default()
        };
        match device.send(&message).await {
            Err(SendError::Rejected { status: 413, .. }) => {}
            other => panic!("{size} bytes: expected Rejected 413, got {other:?}"),
        }
    }
    device.send(&tutorial_message("after")).await.unwrap();
    let events = hub.events(device.device_id(), 1).await;
    assert_eq!(events[0].system.message_id.as_deref(), Some("after"));
}

#[tokio::test]
async fn an_unreachable_hub_is_transient() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let device = HttpsDevice::new(
        &connection_string("d1", random_key()),
        Some(&closed_endpoint()),
        None,
        TIMEOUT,
    )
    .unwrap();
    let error = device.send(&tutorial_message("m")).await.unwrap_err();
    assert!(matches!(error, SendError::Transient(_)), "{error:?}");
}

#[test]
fn urls_follow_the_sdks() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cs: DeviceConnectionString =
        "HostName=myhub.azure-devices.net;DeviceId=dev 1/x;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
            .parse()
            .unwrap();
    let device = HttpsDevice::new(&cs, None, None, TIMEOUT).unwrap();
    assert_eq!(
        device.url().as_str(),
        "https://myhub.azure-devices.net/devices/dev%201%2Fx/messages/events?api-version=2020-09-30"
    );
    assert_eq!(device.iothub_to, "/devices/dev%201%2Fx/messages/events");
    let local = Url::parse("http://127.0.0.1:8080").unwrap();
    let device = HttpsDevice::new(&cs, Some(&local), None, TIMEOUT).unwrap();
    assert_eq!(
        device.url().as_str(),
        "http://127.0.0.1:8080/devices/dev%201%2Fx/messages/events?api-version=2020-09-30"
    );
}

#[test]
fn x509_and_module_identities_are_refused_at_setup() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let x509: DeviceConnectionString = "HostName=h;DeviceId=d;x509=true".parse().unwrap();
    let error = HttpsDevice::new(&x509, None, None, TIMEOUT).unwrap_err();
    assert!(matches!(error, SetupError::Credential(_)), "{error:?}");
    let module = connection_string("d", random_key()).with_module_id("m").unwrap();
    let error = HttpsDevice::new(&module, None, None, TIMEOUT).unwrap_err();
    assert!(matches!(error, SetupError::Credential(_)), "{error:?}");
    let ftp = Url::parse("ftp://localhost").unwrap();
    let error =
        HttpsDevice::new(&connection_string("d", random_key()), Some(&ftp), None, TIMEOUT).unwrap_err();
    assert!(matches!(error, SetupError::Endpoint(_)), "{error:?}");
}

#[test]
fn headers_carry_the_token_system_and_application_properties() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let device = HttpsDevice::new(&connection_string("d1", random_key()), None, None, TIMEOUT).unwrap();
    let headers = device.headers(&tutorial_message("m-1")).unwrap();
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert!(
        get("authorization")
            .unwrap()
            .starts_with("SharedAccessSignature sr=localhost%2Fdevices%2Fd1&sig=")
    );
    assert!(headers["authorization"].is_sensitive());
    assert_eq!(get("iothub-to").as_deref(), Some("/devices/d1/messages/events"));
    assert_eq!(get("accept").as_deref(), Some("application/json"));
    assert_eq!(get("content-type").as_deref(), Some("application/octet-stream"));
    assert_eq!(get("iothub-messageid").as_deref(), Some("m-1"));
    assert_eq!(get("iothub-correlationid").as_deref(), Some("corr-7"));
    assert_eq!(get("iothub-contenttype").as_deref(), Some("application/json"));
    assert_eq!(get("iothub-contentencoding").as_deref(), Some("utf-8"));
    assert_eq!(get("iothub-app-level").as_deref(), Some("critical"));
    assert_eq!(get("iothub-app-unit").as_deref(), Some("m/s"));
    // An unset system property is not sent.
    let bare = device.headers(&SimMessage::default()).unwrap();
    assert!(bare.get("iothub-messageid").is_none());
}

#[test]
fn properties_http_cannot_carry_are_refused_before_sending() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let device = HttpsDevice::new(&connection_string("d1", random_key()), None, None, TIMEOUT).unwrap();
    for (name, value) in [("unit", "°C"), ("bad name", "v"), ("", "v"), ("line", "a\nb")] {
        let message = SimMessage {
            properties: vec![(name.to_owned(), value.to_owned())],
            ..SimMessage::default()
        };
        match device.headers(&message) {
            Err(SendError::Rejected { status: 400, message }) => {
                assert!(message.starts_with("not sent"), "{message}")
            }
            other => panic!("{name:?}={value:?}: {other:?}"),
        }
    }
}

#[test]
fn statuses_map_to_what_the_sender_does_next() {
    let classify =
        |status: u16, retry: Option<Duration>| classify(StatusCode::from_u16(status).unwrap(), retry, "m");
    assert!(matches!(classify(401, None), SendError::Unauthorized(_)));
    assert!(matches!(classify(403, None), SendError::Unauthorized(_)));
    assert!(matches!(
        classify(429, Some(Duration::from_secs(5))),
        SendError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(5)
    ));
    assert!(matches!(
        classify(503, None),
        SendError::Throttled { retry_after: None }
    ));
    assert!(matches!(classify(500, None), SendError::Transient(_)));
    assert!(matches!(classify(502, None), SendError::Transient(_)));
    assert!(matches!(classify(408, None), SendError::Transient(_)));
    assert!(matches!(
        classify(400, None),
        SendError::Rejected { status: 400, .. }
    ));
    assert!(matches!(
        classify(404, None),
        SendError::Rejected { status: 404, .. }
    ));
    assert!(matches!(
        classify(413, None),
        SendError::Rejected { status: 413, .. }
    ));
}

#[test]
fn retry_after_reads_milliseconds_or_seconds() {
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after(&headers), None);
    headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    headers.insert("retry-after-ms", HeaderValue::from_static("250"));
    assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
    let mut date = HeaderMap::new();
    date.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    assert_eq!(retry_after(&date), None);
}

#[test]
fn error_messages_come_from_either_hubs_body() {
    let status = StatusCode::BAD_REQUEST;
    assert_eq!(
        error_message(status, r#"{"Message":"ErrorCode:ArgumentInvalid;bad"}"#),
        "ErrorCode:ArgumentInvalid;bad"
    );
    assert_eq!(
        error_message(status, r#"{"code":"message_too_large","message":"too big"}"#),
        "message_too_large: too big"
    );
    assert_eq!(error_message(status, "  plain text \n"), "plain text");
    assert_eq!(error_message(status, ""), "Bad Request");
    let long = "x".repeat(1000);
    assert_eq!(error_message(status, &long).chars().count(), MAX_ERROR_TEXT + 1);
}

#[test]
fn tokens_are_reused_then_renewed_five_minutes_before_expiry() {
    let token = RenewingToken::device(connection_string("d1", random_key())).unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let first = token.header_at(start).unwrap();
    assert!(first.to_str().unwrap().contains("&se=1700003600"));
    // 54 minutes later: six minutes left, the same token.
    assert_eq!(
        token.header_at(start + Duration::from_secs(54 * 60)).unwrap(),
        first
    );
    // 56 minutes later: four minutes left, a new one valid an hour from then.
    let renewed = token.header_at(start + Duration::from_secs(56 * 60)).unwrap();
    assert!(
        renewed.to_str().unwrap().contains("&se=1700006960"),
        "{renewed:?}"
    );
    assert_eq!(
        token.header_at(start + Duration::from_secs(57 * 60)).unwrap(),
        renewed
    );
    // Service tokens name the policy.
    let service =
        iothub_protocol::connection_string::ServiceConnectionString::new(HOST, "iothubowner", random_key())
            .unwrap();
    let header = RenewingToken::service(service).header().unwrap();
    assert!(header.to_str().unwrap().ends_with("&skn=iothubowner"));
    // Debug never shows the token.
    assert!(!format!("{token:?}").contains("sig="));
}
