//! The test hub: the real `hub::serve::run` on random loopback ports in a temporary data directory,
//! stopped when dropped, with typed clients for everything a test touches: the registry API, SAS
//! tokens, MQTT devices over TCP and TLS ([`mqtt`]), HTTPS telemetry, and the `events` stream
//! ([`events`]). [`process`] runs the `hub` binary instead, for tests that kill it. Routing tests
//! add real endpoint backends ([`backends`]) and the tutorial's routing ([`routing`]).
//!
//! Logs stay silent unless `TEST_LOG` is set.

pub(crate) mod backends;
pub(crate) mod events;
pub(crate) mod mqtt;
pub(crate) mod process;
pub(crate) mod routing;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hub::config::{HubConfig, PolicyConfig, Right};
use hub::serve::Listeners;
use iothub_protocol::sas::{ResourceUri, SasToken, SharedAccessKey, expiry_after};
use reqwest::{Method, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use secrecy::SecretString;
use serde_json::{Value, json};
use service_kit::Shutdown;

/// The host name devices and services use: the hub's only name in the test configuration.
pub(crate) const HOST: &str = "localhost";
/// The policy with every right (IoT Hub's `iothubowner`).
pub(crate) const OWNER: &str = "iothubowner";
/// A policy that may only read the registry.
pub(crate) const READER: &str = "registryRead";
/// How long a test waits for something that must happen before calling it a hang. It bounds a
/// wait; it does not measure speed.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test if it hangs.
#[track_caller]
pub(crate) fn within<F: Future>(what: &str, future: F) -> impl Future<Output = F::Output> {
    let caller = std::panic::Location::caller();
    let what = what.to_owned();
    async move {
        match tokio::time::timeout(HANG, future).await {
            Ok(output) => output,
            Err(_) => panic!("{caller}: still waiting after {HANG:?} for {what}"),
        }
    }
}

/// A fresh random key, as the hub generates them.
pub(crate) fn random_key() -> SharedAccessKey {
    let bytes: [u8; 32] = rand::random();
    SharedAccessKey::from_bytes(&bytes).unwrap()
}

/// `se` of a token valid for an hour.
pub(crate) fn valid_expiry() -> u64 {
    expiry_after(SystemTime::now(), Duration::from_secs(3600))
}

/// `se` of a token that expired an hour ago (well past the hub's five minutes of clock skew).
pub(crate) fn expired_expiry() -> u64 {
    valid_expiry() - 2 * 3600
}

/// A device token: `sr` names `device_id`, signed with `key`.
pub(crate) fn device_token(device_id: &str, key: &SharedAccessKey, expiry: u64) -> String {
    SasToken::generate(&ResourceUri::device(HOST, device_id), key, None, expiry).expose_secret()
}

/// A service token of `policy`, signed with `key`.
pub(crate) fn service_token(policy: &str, key: &SharedAccessKey, expiry: u64) -> String {
    SasToken::generate(&ResourceUri::hub(HOST), key, Some(policy), expiry).expose_secret()
}

/// A device in the hub's registry, as the registry API created it.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    /// Its id.
    pub(crate) id: String,
    /// Primary key.
    pub(crate) primary_key: SharedAccessKey,
    /// Secondary key.
    pub(crate) secondary_key: SharedAccessKey,
    /// The etag after creation.
    pub(crate) etag: String,
    /// The registry's `generationId` (stamped on its messages as the auth generation id).
    pub(crate) generation_id: String,
}

impl Device {
    /// A valid token signed with the primary key.
    pub(crate) fn token(&self) -> String {
        device_token(&self.id, &self.primary_key, valid_expiry())
    }

    /// `devices/{id}/messages/events/` followed by `bag`.
    pub(crate) fn topic(&self, bag: &str) -> String {
        format!("devices/{}/messages/events/{bag}", self.id)
    }
}

/// An answer of the hub's HTTP API.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Status.
    pub(crate) status: StatusCode,
    /// `ETag`, quotes removed.
    pub(crate) etag: Option<String>,
    /// The JSON body (`Null` when empty).
    pub(crate) body: Value,
}

/// The real hub, running in this process on its own runtime thread.
#[derive(Debug)]
pub(crate) struct TestHub {
    /// MQTT over plain TCP.
    pub(crate) mqtt_tcp: SocketAddr,
    /// MQTT over TLS.
    pub(crate) mqtt_tls: SocketAddr,
    /// The HTTP API over TLS.
    pub(crate) https: SocketAddr,
    /// The HTTP API in plain text.
    pub(crate) http: SocketAddr,
    /// `/live`, `/ready`, `/metrics`.
    pub(crate) admin: SocketAddr,
    /// The development CA the hub generated, PEM.
    pub(crate) ca_pem: String,
    /// Key of the `iothubowner` policy.
    pub(crate) owner_key: SharedAccessKey,
    /// Key of the `registryRead` policy.
    pub(crate) reader_key: SharedAccessKey,
    client: reqwest::Client,
    shutdown: Shutdown,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

fn loopback() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

fn init_test_log() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let config = service_kit::telemetry::TelemetryConfig {
                log_level: "info,hub=debug".to_owned(),
                ..Default::default()
            };
            // Kept for the whole test run.
            std::mem::forget(service_kit::telemetry::init(&config, "hub-tests").unwrap());
        }
    });
}

/// A rustls client configuration trusting only `ca_pem`, with the ring provider the hub uses.
pub(crate) fn tls_client_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An HTTP client for a hub's plain-text API (no CA to trust).
pub(crate) fn plain_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_client_config(""))
        .build()
        .unwrap()
}

/// The policies of every test hub, with keys the tests know.
fn policies(owner: &SharedAccessKey, reader: &SharedAccessKey) -> Vec<PolicyConfig> {
    let policy = |name: &str, key: &SharedAccessKey, rights: Vec<Right>| PolicyConfig {
        name: name.to_owned(),
        primary_key: Some(SecretString::from(key.expose_secret().to_owned())),
        secondary_key: Some(SecretString::from(random_key().expose_secret().to_owned())),
        rights,
    };
    vec![
        policy(
            OWNER,
            owner,
            vec![
                Right::RegistryRead,
                Right::RegistryWrite,
                Right::ServiceConnect,
                Right::DeviceConnect,
            ],
        ),
        policy(READER, reader, vec![Right::RegistryRead]),
    ]
}

impl TestHub {
    /// Starts a hub with the test defaults.
    pub(crate) fn start() -> TestHub {
        TestHub::start_with(|_| {})
    }

    /// Starts a hub after `tweak` has changed the test configuration.
    pub(crate) fn start_with(tweak: impl FnOnce(&mut HubConfig)) -> TestHub {
        init_test_log();
        let dir = tempfile::tempdir().unwrap();
        let owner_key = random_key();
        let reader_key = random_key();
        let mut config = HubConfig {
            hub_name: "testhub".to_owned(),
            host_names: vec![HOST.to_owned()],
            data_dir: dir.path().join("data"),
            policies: policies(&owner_key, &reader_key),
            grace_period_secs: 1,
            ..HubConfig::default()
        };
        tweak(&mut config);
        config.validate().unwrap();
        let listeners = Listeners {
            mqtt_tls: Some(loopback()),
            mqtt_tcp: Some(loopback()),
            https: Some(loopback()),
            http: Some(loopback()),
            admin: Some(loopback()),
        };
        let addr = |l: &Option<TcpListener>| l.as_ref().unwrap().local_addr().unwrap();
        let (mqtt_tls, mqtt_tcp, https, http, admin) = (
            addr(&listeners.mqtt_tls),
            addr(&listeners.mqtt_tcp),
            addr(&listeners.https),
            addr(&listeners.http),
            addr(&listeners.admin),
        );
        // Generated now so the test can trust it; `run` finds and reuses it.
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let ca_file = hub::tls::server_identity(&config).unwrap().ca_file.unwrap();
        let ca_pem = std::fs::read_to_string(ca_file).unwrap();
        let shutdown = Shutdown::new();
        let hub_shutdown = shutdown.clone();
        // Its own runtime: the hub outlives no test, and a test's runtime never blocks it.
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
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_client_config(&ca_pem))
            .resolve(HOST, https)
            .build()
            .unwrap();
        TestHub {
            mqtt_tcp,
            mqtt_tls,
            https,
            http,
            admin,
            ca_pem,
            owner_key,
            reader_key,
            client,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// A valid token of the `iothubowner` policy.
    pub(crate) fn owner_token(&self) -> String {
        service_token(OWNER, &self.owner_key, valid_expiry())
    }

    /// The HTTP client (trusts the hub's CA; `localhost` resolves to the HTTPS listener).
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `http://127.0.0.1:port{path}` with `api-version` added.
    pub(crate) fn http_url(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!(
            "http://{}{path}{separator}api-version={}",
            self.http,
            iothub_protocol::API_VERSION
        )
    }

    /// `https://localhost:port{path}` with `api-version` added.
    pub(crate) fn https_url(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!(
            "https://{HOST}:{}{path}{separator}api-version={}",
            self.https.port(),
            iothub_protocol::API_VERSION
        )
    }

    /// Sends a registry request to `path` with this `Authorization` (none when `None`).
    pub(crate) async fn registry(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        if_match: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, self.http_url(path));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = within("a registry answer", request.send()).await.unwrap();
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().trim_matches('"').to_owned());
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Answer { status, etag, body }
    }

    /// Creates device `id` through the registry API (keys generated by the hub).
    pub(crate) async fn create_device(&self, id: &str) -> Device {
        let answer = self
            .registry(
                Method::PUT,
                &format!("/devices/{id}"),
                Some(&self.owner_token()),
                None,
                Some(json!({"deviceId": id})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "creating {id}: {:?}", answer.body);
        device_from(&answer)
    }

    /// Sets a device's status (`enabled`, `disabled`) through the registry API.
    pub(crate) async fn set_status(&self, id: &str, status: &str) -> Answer {
        let body = json!({"deviceId": id, "status": status});
        self.registry(
            Method::PUT,
            &format!("/devices/{id}"),
            Some(&self.owner_token()),
            Some("*"),
            Some(body),
        )
        .await
    }

    /// The admin server's answer to `GET path`: status and body text.
    pub(crate) async fn admin(&self, path: &str) -> (StatusCode, String) {
        let response = within(
            "an admin answer",
            self.client.get(format!("http://{}{path}", self.admin)).send(),
        )
        .await
        .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// The value of the counter sample `name{labels}` in `/metrics` (0 when absent).
    pub(crate) async fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.admin("/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// The device in a registry answer.
pub(crate) fn device_from(answer: &Answer) -> Device {
    let keys = &answer.body["authentication"]["symmetricKey"];
    let key = |name: &str| SharedAccessKey::from_base64(keys[name].as_str().unwrap()).unwrap();
    Device {
        id: answer.body["deviceId"].as_str().unwrap().to_owned(),
        primary_key: key("primaryKey"),
        secondary_key: key("secondaryKey"),
        etag: answer.etag.clone().unwrap(),
        generation_id: answer.body["generationId"].as_str().unwrap().to_owned(),
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                // Don't panic while a failed test is already unwinding.
                Ok(Err(error)) if !std::thread::panicking() => {
                    panic!("the hub stopped on an error: {error:#}")
                }
                Err(_) if !std::thread::panicking() => panic!("the hub panicked"),
                _ => {}
            }
        }
    }
}
