//! `hub serve` configuration: defaults → `--config` file (YAML or JSON) → `HUB_...` environment →
//! flags. Every field's `///` line is its user documentation.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use service_kit::config::ConfigError;
use service_kit::telemetry::TelemetryConfig;

/// The whole hub configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// The hub's name (IoT Hub's resource name); stamped as `userId` on non-telemetry events.
    pub hub_name: String,
    /// Host names devices and services use to reach the hub. The first is the `HostName` printed in
    /// connection strings; SAS tokens and MQTT usernames may name any of them.
    pub host_names: Vec<String>,
    /// Directory for the registry, the events stream, policy keys and generated certificates.
    pub data_dir: PathBuf,
    /// Network listeners.
    pub listeners: Listeners,
    /// TLS certificate; when absent a development CA and server certificate are generated in
    /// `<data_dir>/tls` on first start (`hub cert` prints where the CA is).
    pub tls: TlsConfig,
    /// Shared access policies for the service API (registry, events stream).
    pub policies: Vec<PolicyConfig>,
    /// The built-in `events` endpoint.
    pub events: EventsConfig,
    /// Message routing to custom endpoints.
    pub routing: RoutingSettings,
    /// Limits that protect the hub from any one client.
    pub limits: Limits,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Seconds allowed to drain on SIGTERM (keep below the pod's terminationGracePeriodSeconds).
    pub grace_period_secs: u64,
}

/// Addresses to listen on; `null` turns a listener off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listeners {
    /// MQTT 3.1.1 over TLS (devices; IoT Hub uses 8883).
    pub mqtt_tls: Option<SocketAddr>,
    /// MQTT over plain TCP, for local tools; must be a loopback address unless `allow_insecure` is set.
    pub mqtt_tcp: Option<SocketAddr>,
    /// HTTPS: device telemetry, the registry and events APIs, and MQTT over WebSockets at
    /// `/$iothub/websocket` (IoT Hub uses 443).
    pub https: Option<SocketAddr>,
    /// The same HTTP API in plain text, for local tools; loopback only unless `allow_insecure` is set.
    pub http: Option<SocketAddr>,
    /// Admin server: `/live`, `/ready`, `/metrics`.
    pub admin: Option<SocketAddr>,
    /// Allow the plain-text listeners on non-loopback addresses (only on a trusted network).
    pub allow_insecure: bool,
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain for the server; with `key_file`, replaces the generated one.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// What a shared access policy may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Right {
    /// Read the device registry.
    RegistryRead,
    /// Create, change and delete devices.
    RegistryWrite,
    /// Read the events stream.
    ServiceConnect,
    /// Connect as any device with this policy's key.
    DeviceConnect,
}

/// A shared access policy, as IoT Hub's `iothubowner`, `service`, `registryRead`...
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy name (`skn` in tokens).
    pub name: String,
    /// Base64 key; generated and kept in `<data_dir>/policies.json` when absent.
    #[serde(default, serialize_with = "never_serialize")]
    pub primary_key: Option<SecretString>,
    /// Second base64 key, for rotation; generated when absent.
    #[serde(default, serialize_with = "never_serialize")]
    pub secondary_key: Option<SecretString>,
    /// What the policy may do.
    pub rights: Vec<Right>,
}

/// Defaults are serialised to seed the configuration layers; a secret never leaves that way.
fn never_serialize<S: serde::Serializer>(_: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

/// The built-in `events` stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Keep events at most this many seconds (IoT Hub keeps 1 to 7 days).
    pub retention_secs: u64,
    /// Keep at most this many bytes of events; the oldest go first.
    pub max_bytes: u64,
    /// `full` fsyncs every commit (survives power loss); `normal` survives a crash of the hub only.
    pub sync: SyncMode,
}

/// Where the routing comes from and how delivery behaves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSettings {
    /// A routing file in IoT Hub's `properties.routing` shape (JSON or YAML, as `az iot hub show
    /// --query properties.routing` prints it). None: every telemetry message goes to `events`.
    pub file: Option<PathBuf>,
    /// Local connection strings by endpoint name (case-insensitive), replacing the file's: how an
    /// export from Azure runs here (`sqlite://...`, `amqp://...`, `file://...`, `UseDevelopmentStorage=true`).
    #[serde(serialize_with = "never_serialize_map")]
    pub endpoint_overrides: std::collections::BTreeMap<String, SecretString>,
    /// Allow storage batches shorter and smaller than IoT Hub's minimums (60 s, 10 MB), for development.
    pub allow_short_batches: bool,
    /// Undelivered messages one endpoint may hold before devices sending to it are slowed down.
    pub max_backlog: u64,
    /// Seconds of continuous delivery failure after which an endpoint shows as `dead` (it keeps retrying).
    pub dead_after_secs: u64,
    /// Seconds between checks of the routing file for changes (0: reload on SIGHUP only).
    pub watch_interval_secs: u64,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            file: None,
            endpoint_overrides: std::collections::BTreeMap::new(),
            allow_short_batches: false,
            max_backlog: 100_000,
            dead_after_secs: 3600,
            watch_interval_secs: 2,
        }
    }
}

fn never_serialize_map<S: serde::Serializer>(
    _: &std::collections::BTreeMap<String, SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_map(Some(0)).and_then(serde::ser::SerializeMap::end)
}

/// SQLite durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync on every commit.
    Full,
    /// fsync at checkpoints only.
    Normal,
}

/// Per-client and global limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest device message (body and properties), as IoT Hub counts it: 262144.
    pub max_message_bytes: usize,
    /// Most MQTT connections at once; more are refused at accept.
    pub max_connections: usize,
    /// QoS 1 messages a connection may have waiting for their PUBACK; beyond this the hub stops
    /// reading from that connection (backpressure).
    pub max_inflight_per_connection: usize,
    /// Seconds a new connection has to complete TLS and send CONNECT.
    pub connect_timeout_secs: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            hub_name: "localhub".to_owned(),
            host_names: vec!["localhost".to_owned()],
            data_dir: PathBuf::from("data"),
            listeners: Listeners::default(),
            tls: TlsConfig::default(),
            policies: vec![PolicyConfig {
                name: "iothubowner".to_owned(),
                primary_key: None,
                secondary_key: None,
                rights: vec![
                    Right::RegistryRead,
                    Right::RegistryWrite,
                    Right::ServiceConnect,
                    Right::DeviceConnect,
                ],
            }],
            events: EventsConfig::default(),
            routing: RoutingSettings::default(),
            limits: Limits::default(),
            telemetry: TelemetryConfig::default(),
            grace_period_secs: 20,
        }
    }
}

impl Default for Listeners {
    fn default() -> Self {
        let addr = |s: &str| s.parse().ok();
        Listeners {
            mqtt_tls: addr("0.0.0.0:8883"),
            mqtt_tcp: None,
            https: addr("0.0.0.0:443"),
            http: None,
            admin: addr("0.0.0.0:8080"),
            allow_insecure: false,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_secs: 24 * 3600,
            max_bytes: 1 << 30,
            sync: SyncMode::Full,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 256 * 1024,
            max_connections: 10_000,
            max_inflight_per_connection: 64,
            connect_timeout_secs: 10,
        }
    }
}

impl HubConfig {
    /// Checks what serde cannot: every problem named by its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.host_names.is_empty() {
            problems.push("host_names: at least one host name is needed".to_owned());
        }
        if self.hub_name.is_empty() {
            problems.push("hub_name: must not be empty".to_owned());
        }
        let l = &self.listeners;
        for (key, addr) in [("listeners.mqtt_tcp", l.mqtt_tcp), ("listeners.http", l.http)] {
            if let Some(addr) = addr
                && !addr.ip().is_loopback()
                && !l.allow_insecure
            {
                problems.push(format!(
                    "{key}: {addr} is not a loopback address; plain text is refused there unless \
                     listeners.allow_insecure is true"
                ));
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            problems.push("tls: cert_file and key_file go together".to_owned());
        }
        if self.policies.is_empty() {
            problems.push("policies: at least one policy is needed".to_owned());
        }
        for (i, p) in self.policies.iter().enumerate() {
            if p.name.is_empty()
                || p.name
                    .contains(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
            {
                problems.push(format!(
                    "policies[{i}].name: {:?} must be letters, digits, '-' or '_'",
                    p.name
                ));
            }
            if self.policies[..i].iter().any(|q| q.name == p.name) {
                problems.push(format!("policies[{i}].name: {:?} is defined twice", p.name));
            }
        }
        if self.limits.max_message_bytes == 0 || self.limits.max_inflight_per_connection == 0 {
            problems.push(
                "limits: max_message_bytes and max_inflight_per_connection must be positive".to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(problems.join("; ")))
        }
    }

    /// The host name printed in connection strings.
    pub fn primary_host(&self) -> &str {
        self.host_names.first().map_or("localhost", String::as_str)
    }
}
