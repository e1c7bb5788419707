//! The registry client against the real local hub, run in this process on loopback ports; also
//! home of [`TestHub`], which the HTTPS telemetry tests use too.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hub::config::{HubConfig, PolicyConfig, Right};
use iothub_protocol::Message;
use iothub_protocol::connection_string::ServiceConnectionString;
use iothub_protocol::sas::SharedAccessKey;
use secrecy::SecretString;
use service_kit::Shutdown;
use url::Url;

use super::*;

/// The hub's only host name: what connection strings and tokens name.
pub(crate) const HOST: &str = "localhost";
/// The policy with every right.
const OWNER: &str = "iothubowner";
/// A policy that may only read the registry.
const READER: &str = "registryRead";
/// How long a test waits before calling something a hang.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// A fresh random 32-byte key, as the hub generates them.
pub(crate) fn random_key() -> SharedAccessKey {
    let bytes: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    SharedAccessKey::from_bytes(&bytes).unwrap()
}

/// A unique device id for one test.
pub(crate) fn device_id(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

fn loopback() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// The real hub (`hub::serve::run`) on its own runtime thread, with its plain HTTP and HTTPS API
/// listeners on random loopback ports and a temporary data directory; stopped when dropped.
#[derive(Debug)]
pub(crate) struct TestHub {
    /// Plain HTTP API.
    pub(crate) http: SocketAddr,
    /// HTTPS API (the development CA's certificate names `localhost`).
    pub(crate) https: SocketAddr,
    /// The development CA, PEM.
    pub(crate) ca_file: PathBuf,
    owner_key: SharedAccessKey,
    reader_key: SharedAccessKey,
    shutdown: Shutdown,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestHub {
    /// Starts a hub.
    pub(crate) fn start() -> TestHub {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let owner_key = random_key();
        let reader_key = random_key();
        let policy = |name: &str, key: &SharedAccessKey, rights: Vec<Right>| PolicyConfig {
            name: name.to_owned(),
            primary_key: Some(SecretString::from(key.expose_secret().to_owned())),
            secondary_key: Some(SecretString::from(random_key().expose_secret().to_owned())),
            rights,
        };
        let config = HubConfig {
            hub_name: "testhub".to_owned(),
            host_names: vec![HOST.to_owned()],
            data_dir: dir.path().join("data"),
            policies: vec![
                policy(
                    OWNER,
                    &owner_key,
                    vec![
                        Right::RegistryRead,
                        Right::RegistryWrite,
                        Right::ServiceConnect,
                        Right::DeviceConnect,
                    ],
                ),
                policy(READER, &reader_key, vec![Right::RegistryRead]),
            ],
            grace_period_secs: 1,
            ..HubConfig::default()
        };
        config.validate().unwrap();
        let listeners = hub::serve::Listeners {
            mqtt_tls: None,
            mqtt_tcp: None,
            https: Some(loopback()),
            http: Some(loopback()),
            admin: None,
        };
        let addr = |l: &Option<TcpListener>| l.as_ref().unwrap().local_addr().unwrap();
        let (http, https) = (addr(&listeners.http), addr(&listeners.https));
        // Generated now so the tests can trust it; `run` finds and reuses it.
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let ca_file = hub::tls::server_identity(&config).unwrap().ca_file.unwrap();
        let shutdown = Shutdown::new();
        let hub_shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("test-hub".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                runtime.block_on(hub::serve::run(config, listeners, hub_shutdown))
            })
            .unwrap();
        TestHub {
            http,
            https,
            ca_file,
            owner_key,
            reader_key,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub(crate) fn http_endpoint(&self) -> Url {
        Url::parse(&format!("http://{}", self.http)).unwrap()
    }

    /// `https://localhost:{port}`.
    pub(crate) fn https_endpoint(&self) -> Url {
        Url::parse(&format!("https://{HOST}:{}", self.https.port())).unwrap()
    }

    /// The `iothubowner` connection string.
    pub(crate) fn owner(&self) -> ServiceConnectionString {
        ServiceConnectionString::new(HOST, OWNER, self.owner_key.clone()).unwrap()
    }

    /// The `registryRead` connection string.
    fn reader(&self) -> ServiceConnectionString {
        ServiceConnectionString::new(HOST, READER, self.reader_key.clone()).unwrap()
    }

    /// A registry client over the plain HTTP listener, as the owner.
    pub(crate) fn registry(&self) -> Registry {
        Registry::new(self.owner(), Some(self.http_endpoint()), None).unwrap()
    }

    /// The first `count` messages of `device` in the built-in `events` stream, read as server-sent
    /// events from `GET /events?from=earliest&device=…` (each `data` is the stored message JSON).
    pub(crate) async fn events(&self, device: &str, count: usize) -> Vec<Message> {
        let client = crate::https::client(None).unwrap();
        let token = self.owner().sas_token(valid_expiry()).expose_secret();
        let url = format!(
            "http://{}/events?from=earliest&device={device}&api-version={REGISTRY_API_VERSION}",
            self.http
        );
        let read = async {
            let mut response = client
                .get(url)
                .header("authorization", token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "GET /events");
            let mut buffer = String::new();
            let mut messages = Vec::new();
            while messages.len() < count {
                let chunk = response.chunk().await.unwrap().expect("the events stream ended");
                buffer.push_str(std::str::from_utf8(&chunk).unwrap());
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    for line in event.lines() {
                        if let Some(data) = line.strip_prefix("data:") {
                            messages.push(serde_json::from_str(data.trim_start()).unwrap());
                        }
                    }
                }
            }
            messages
        };
        tokio::time::timeout(HANG, read)
            .await
            .unwrap_or_else(|_| panic!("still waiting for {count} events of {device} after {HANG:?}"))
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) if !std::thread::panicking() => {
                    panic!("the hub stopped on an error: {error:#}")
                }
                Err(_) if !std::thread::panicking() => panic!("the hub panicked"),
                _ => {}
            }
        }
    }
}

/// `se` of a token valid for an hour.
pub(crate) fn valid_expiry() -> u64 {
    iothub_protocol::sas::expiry_after(SystemTime::now(), Duration::from_secs(3600))
}

/// An address nothing listens on.
pub(crate) fn closed_endpoint() -> Url {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()
}

#[tokio::test]
async fn ensure_device_creates_a_device_then_returns_the_same_key() {
    let hub = TestHub::start();
    let registry = hub.registry();
    let id = device_id("sim");
    let created = registry.ensure_device(&id).await.unwrap();
    let again = registry.ensure_device(&id).await.unwrap();
    assert_eq!(created, again);
    // Another client (another token) sees the same device.
    let other = Registry::new(hub.owner(), Some(hub.http_endpoint()), None).unwrap();
    assert_eq!(other.ensure_device(&id).await.unwrap(), created);
    // Different devices get different keys.
    assert_ne!(registry.ensure_device(&device_id("sim")).await.unwrap(), created);
}

/// Two processes registering one id at once: the hub answers the loser 409, and it reads the key.
#[tokio::test]
async fn concurrent_ensure_device_calls_agree_on_one_key() {
    let hub = TestHub::start();
    let registry = hub.registry();
    let id = device_id("race");
    let (a, b, c, d) = tokio::join!(
        registry.ensure_device(&id),
        registry.ensure_device(&id),
        registry.ensure_device(&id),
        registry.ensure_device(&id),
    );
    let a = a.unwrap();
    for key in [b, c, d] {
        assert_eq!(key.unwrap(), a);
    }
}

#[tokio::test]
async fn ensure_device_works_over_tls_with_the_development_ca() {
    let hub = TestHub::start();
    let registry = Registry::new(hub.owner(), Some(hub.https_endpoint()), Some(&hub.ca_file)).unwrap();
    let id = device_id("tls");
    let key = registry.ensure_device(&id).await.unwrap();
    assert_eq!(hub.registry().ensure_device(&id).await.unwrap(), key);
}

#[tokio::test]
async fn a_wrong_service_key_is_unauthorized() {
    let hub = TestHub::start();
    let wrong = ServiceConnectionString::new(HOST, OWNER, random_key()).unwrap();
    let registry = Registry::new(wrong, Some(hub.http_endpoint()), None).unwrap();
    let error = registry.ensure_device(&device_id("x")).await.unwrap_err();
    assert!(matches!(error, RegistryError::Unauthorized(_)), "{error:?}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn a_read_only_policy_cannot_create_devices() {
    let hub = TestHub::start();
    let reader = Registry::new(hub.reader(), Some(hub.http_endpoint()), None).unwrap();
    let id = device_id("ro");
    let error = reader.ensure_device(&id).await.unwrap_err();
    assert!(matches!(error, RegistryError::Unauthorized(_)), "{error:?}");
    // It may read a device that exists.
    let key = hub.registry().ensure_device(&id).await.unwrap();
    assert_eq!(reader.ensure_device(&id).await.unwrap(), key);
}

#[tokio::test]
async fn an_invalid_device_id_is_the_hubs_400() {
    let hub = TestHub::start();
    let error = hub
        .registry()
        .ensure_device("has space/and slash")
        .await
        .unwrap_err();
    match &error {
        RegistryError::Http { status: 400, message } => {
            assert!(message.contains("invalid_device"), "{message}")
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    let empty = hub.registry().ensure_device("").await.unwrap_err();
    assert!(matches!(empty, RegistryError::Invalid(_)), "{empty:?}");
}

#[tokio::test]
async fn an_unreachable_registry_is_a_transient_transport_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let service = ServiceConnectionString::new(HOST, OWNER, random_key()).unwrap();
    let registry = Registry::new(service, Some(closed_endpoint()), None).unwrap();
    let error = registry.ensure_device("d1").await.unwrap_err();
    assert!(matches!(error, RegistryError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
}

#[test]
fn endpoints_default_to_https_on_the_host_name_and_keep_a_path_prefix() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let service = ServiceConnectionString::new("myhub.azure-devices.net", OWNER, random_key()).unwrap();
    let registry = Registry::new(service.clone(), None, None).unwrap();
    assert_eq!(registry.host_name(), "myhub.azure-devices.net");
    assert_eq!(
        registry.device_url("dev 1/ä").unwrap().as_str(),
        "https://myhub.azure-devices.net/devices/dev%201%2F%C3%A4?api-version=2021-04-12"
    );
    let prefixed = Registry::new(
        service.clone(),
        Some(Url::parse("http://127.0.0.1:8080/hub/").unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(
        prefixed.device_url("d1").unwrap().as_str(),
        "http://127.0.0.1:8080/hub/devices/d1?api-version=2021-04-12"
    );
    let not_http = Registry::new(service, Some(Url::parse("mqtts://localhost:8883").unwrap()), None);
    assert!(matches!(not_http, Err(RegistryError::Invalid(_))), "{not_http:?}");
}

#[test]
fn device_json_gives_the_primary_key_of_sas_devices_only() {
    let key = random_key();
    let sas = format!(
        r#"{{"deviceId":"d1","status":"enabled","authentication":{{"type":"sas","symmetricKey":{{"primaryKey":"{}","secondaryKey":null}}}}}}"#,
        key.expose_secret()
    );
    assert_eq!(parse_device(&sas).unwrap().primary_key("d1").unwrap(), key);
    let x509 =
        r#"{"deviceId":"d1","authentication":{"type":"selfSigned","symmetricKey":{"primaryKey":null}}}"#;
    assert!(matches!(
        parse_device(x509).unwrap().primary_key("d1"),
        Err(RegistryError::Invalid(_))
    ));
    let no_key = r#"{"deviceId":"d1","authentication":{"type":"sas","symmetricKey":{"primaryKey":null}}}"#;
    assert!(matches!(
        parse_device(no_key).unwrap().primary_key("d1"),
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(parse_device("not json"), Err(RegistryError::Invalid(_))));
}

#[test]
fn failures_read_both_hubs_error_shapes() {
    let iot_hub =
        r#"{"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized","ExceptionMessage":"Tracking ID:1"}"#;
    match failure(StatusCode::UNAUTHORIZED, iot_hub) {
        RegistryError::Unauthorized(message) => {
            assert_eq!(
                message,
                "HTTP 401: ErrorCode:IotHubUnauthorizedAccess;Unauthorized"
            );
        }
        other => panic!("{other:?}"),
    }
    let local = r#"{"code":"invalid_device","message":"bad id"}"#;
    match failure(StatusCode::BAD_REQUEST, local) {
        RegistryError::Http { status, message } => {
            assert_eq!((status, message.as_str()), (400, "invalid_device: bad id"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        failure(StatusCode::FORBIDDEN, ""),
        RegistryError::Unauthorized(_)
    ));
    let throttled = failure(StatusCode::TOO_MANY_REQUESTS, "");
    assert!(throttled.is_transient(), "{throttled:?}");
    assert!(failure(StatusCode::BAD_GATEWAY, "<html>").is_transient());
    assert!(!failure(StatusCode::BAD_REQUEST, "").is_transient());
}
