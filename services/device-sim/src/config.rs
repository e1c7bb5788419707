//! `device-sim run` configuration: defaults → `--config` file (YAML or JSON) → `DEVICE_SIM_...`
//! environment (`__` between nested keys; how the sidecar is configured) → command-line flags.
//! Every field's `///` line is its user documentation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use iothub_protocol::connection_string::{ConnectionString, DeviceConnectionString, ServiceConnectionString};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use service_kit::config::ConfigError;
use service_kit::telemetry::TelemetryConfig;

/// How devices talk to the hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// MQTT 3.1.1 over TLS (port 8883), as the device SDKs do by default.
    #[default]
    Mqtt,
    /// MQTT 3.1.1 over secure WebSockets at `/$iothub/websocket` (port 443).
    MqttWs,
    /// HTTPS telemetry (`POST /devices/{id}/messages/events`, port 443).
    Https,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// One device's connection string (`HostName=...;DeviceId=...;SharedAccessKey=...`).
    #[serde(serialize_with = "service_kit::config::redacted")]
    pub connection_string: SecretString,
    /// A file with one device connection string per line (blank lines and `#` comments skipped).
    pub connection_strings_file: Option<PathBuf>,
    /// A service connection string with registry rights: `devices` devices named by `id_pattern`
    /// are created (or reused) through the registry API.
    #[serde(serialize_with = "service_kit::config::redacted")]
    pub service_connection_string: SecretString,
    /// Devices to simulate with a service connection string.
    pub devices: u64,
    /// Device ids: `{n}` is the device's number (from `first_index`), `{n:04}` zero-pads it.
    pub id_pattern: String,
    /// The number of the first device.
    pub first_index: u64,
    /// `mqtt`, `mqtt-ws` or `https`.
    pub transport: Transport,
    /// Where to connect instead of the connection string's host (or its GatewayHostName), e.g. a
    /// local hub's address; TLS still verifies the certificate for this name.
    pub connect_host: Option<String>,
    /// MQTT over TLS port.
    pub mqtt_port: u16,
    /// HTTPS and MQTT-over-WebSockets port (also the registry API's).
    pub https_port: u16,
    /// PEM file of the CA to trust instead of the public roots (the local hub's: `hub cert`).
    pub ca_file: Option<PathBuf>,
    /// Plain TCP / HTTP instead of TLS, to a loopback hub only (its `mqtt_tcp` and `http` listeners).
    pub plaintext: bool,
    /// Milliseconds between a device's messages; default 1000, or `devices / rate` when `rate` is set.
    pub interval_ms: Option<u64>,
    /// Random variation of each interval, as a fraction of it (0.1 = ±10 %).
    pub jitter: f64,
    /// Cap on messages per second for the whole fleet.
    pub rate: Option<f64>,
    /// Stop after this many seconds (none: run until stopped or `messages` is reached).
    pub duration_secs: Option<u64>,
    /// Stop each device after this many messages.
    pub messages: Option<u64>,
    /// A scenario template file (see README); default: the tutorial's wind-speed device.
    pub scenario: Option<PathBuf>,
    /// Seed of every random choice, for reproducible runs; default: random.
    pub seed: Option<u64>,
    /// MQTT QoS of telemetry: 1 (acknowledged, the SDKs' default) or 0.
    pub qos: u8,
    /// Unacknowledged QoS 1 messages per device before it waits.
    pub max_in_flight: u16,
    /// SAS token lifetime in seconds; a new token is made on every connect once less than a fifth
    /// of this is left.
    pub token_ttl_secs: u64,
    /// Seconds to wait for connections and requests.
    pub timeout_secs: u64,
    /// Admin server (`/live`, `/ready`, `/metrics`); `null` turns it off.
    pub admin: Option<SocketAddr>,
    /// Write the closing summary as JSON to this file.
    pub report: Option<PathBuf>,
    /// Seconds allowed on stop to wait for acknowledgements of messages in flight.
    pub grace_period_secs: u64,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            connection_string: SecretString::from(""),
            connection_strings_file: None,
            service_connection_string: SecretString::from(""),
            devices: 1,
            id_pattern: "sim-{n:04}".to_owned(),
            first_index: 1,
            transport: Transport::Mqtt,
            connect_host: None,
            mqtt_port: 8883,
            https_port: 443,
            ca_file: None,
            plaintext: false,
            interval_ms: None,
            jitter: 0.0,
            rate: None,
            duration_secs: None,
            messages: None,
            scenario: None,
            seed: None,
            qos: 1,
            max_in_flight: 16,
            token_ttl_secs: 3600,
            timeout_secs: 30,
            admin: None,
            report: None,
            grace_period_secs: 10,
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// Where the devices come from, once the configuration is checked.
#[derive(Debug, Clone)]
pub enum Fleet {
    /// Connection strings given directly.
    Devices(Vec<DeviceConnectionString>),
    /// Devices to create through the registry.
    Registered {
        /// The service connection string.
        service: Box<ServiceConnectionString>,
        /// Their ids.
        ids: Vec<String>,
    },
}

impl SimConfig {
    /// Checks every setting at once and says where the devices come from. Reads the connection
    /// strings file; never connects.
    pub fn fleet(&self) -> Result<Fleet, ConfigError> {
        let mut problems = Vec::new();
        if !(0.0..1.0).contains(&self.jitter) {
            problems.push("jitter: must be at least 0 and below 1".to_owned());
        }
        if self.rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
            problems.push("rate: must be a positive number of messages per second".to_owned());
        }
        if self.interval_ms == Some(0) {
            problems.push("interval_ms: must be at least 1".to_owned());
        }
        if self.qos > 1 {
            problems.push("qos: IoT Hub takes 0 or 1".to_owned());
        }
        if self.max_in_flight == 0 {
            problems.push("max_in_flight: must be at least 1".to_owned());
        }
        if self.token_ttl_secs < 60 {
            problems.push("token_ttl_secs: must be at least 60".to_owned());
        }
        if self.timeout_secs == 0 {
            problems.push("timeout_secs: must be at least 1".to_owned());
        }
        if self.plaintext && self.transport == Transport::MqttWs {
            problems.push("plaintext: MQTT over WebSockets is TLS only".to_owned());
        }
        let fleet = self.fleet_source(&mut problems);
        if problems.is_empty()
            && let Some(fleet) = fleet
        {
            return Ok(fleet);
        }
        Err(ConfigError::new(problems.join("; ")))
    }

    fn fleet_source(&self, problems: &mut Vec<String>) -> Option<Fleet> {
        let single = self.connection_string.expose_secret().trim();
        let service = self.service_connection_string.expose_secret().trim();
        let given = [
            !single.is_empty(),
            self.connection_strings_file.is_some(),
            !service.is_empty(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            problems.push(
                "give exactly one of connection_string, connection_strings_file and service_connection_string"
                    .to_owned(),
            );
            return None;
        }
        if !single.is_empty() {
            return match parse_device(single) {
                Ok(device) => Some(Fleet::Devices(vec![device])),
                Err(e) => {
                    problems.push(format!("connection_string: {e}"));
                    None
                }
            };
        }
        if let Some(path) = &self.connection_strings_file {
            return match device_file(path) {
                Ok(devices) => Some(Fleet::Devices(devices)),
                Err(e) => {
                    problems.push(format!("connection_strings_file: {e}"));
                    None
                }
            };
        }
        let service = match service.parse::<ConnectionString>() {
            Ok(ConnectionString::Service(service)) => service,
            Ok(_) => {
                problems.push(
                    "service_connection_string: this is not a service (policy) connection string".to_owned(),
                );
                return None;
            }
            Err(e) => {
                problems.push(format!("service_connection_string: {e}"));
                return None;
            }
        };
        if self.devices == 0 || self.devices > 100_000 {
            problems.push("devices: must be 1..=100000".to_owned());
            return None;
        }
        let ids: Result<Vec<String>, String> = (self.first_index..self.first_index + self.devices)
            .map(|n| device_id(&self.id_pattern, n))
            .collect();
        match ids {
            Ok(ids) => Some(Fleet::Registered {
                service: Box::new(service),
                ids,
            }),
            Err(e) => {
                problems.push(format!("id_pattern: {e}"));
                None
            }
        }
    }

    /// The interval between one device's messages.
    pub fn interval(&self, devices: usize) -> Duration {
        match (self.interval_ms, self.rate) {
            (Some(ms), _) => Duration::from_millis(ms),
            (None, Some(rate)) => Duration::from_secs_f64(devices.max(1) as f64 / rate),
            (None, None) => Duration::from_secs(1),
        }
    }
}

fn parse_device(text: &str) -> Result<DeviceConnectionString, String> {
    match text.parse::<ConnectionString>() {
        Ok(ConnectionString::Device(device)) => Ok(device),
        Ok(_) => Err("this is not a device connection string (it has no DeviceId)".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn device_file(path: &std::path::Path) -> Result<Vec<DeviceConnectionString>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut devices = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        devices.push(parse_device(line).map_err(|e| format!("{} line {}: {e}", path.display(), number + 1))?);
    }
    if devices.is_empty() {
        return Err(format!("{}: no connection string in the file", path.display()));
    }
    Ok(devices)
}

/// The id of device number `n`: `{n}` or `{n:0W}` in `pattern` replaced (exactly one placeholder).
pub fn device_id(pattern: &str, n: u64) -> Result<String, String> {
    let start = pattern.find("{n").ok_or("needs a {n} placeholder")?;
    let end = start + pattern[start..].find('}').ok_or("unclosed {n placeholder")?;
    let spec = &pattern[start + 2..end];
    let number = match spec {
        "" => n.to_string(),
        _ => {
            let width: usize = spec
                .strip_prefix(":0")
                .and_then(|w| w.parse().ok())
                .filter(|w| *w <= 20)
                .ok_or_else(|| format!("{{n{spec}}} is not {{n}} or {{n:0W}}"))?;
            format!("{n:0width$}")
        }
    };
    let id = format!("{}{number}{}", &pattern[..start], &pattern[end + 1..]);
    if id.contains("{n") {
        return Err("only one {n} placeholder is allowed".to_owned());
    }
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.%_*?!(),:=@$'".contains(c));
    if !valid {
        return Err(format!(
            "{id:?} is not a valid device id (up to 128 ASCII letters, digits and -.%_*?!(),:=@$')"
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_from_patterns() {
        assert_eq!(device_id("sim-{n:04}", 7).unwrap(), "sim-0007");
        assert_eq!(device_id("turbine-{n}", 12).unwrap(), "turbine-12");
        assert_eq!(device_id("{n}-x", 1).unwrap(), "1-x");
        assert!(device_id("sim", 1).is_err());
        assert!(device_id("sim-{n:4}", 1).is_err());
        assert!(
            device_id("sim {n}", 1)
                .unwrap_err()
                .contains("not a valid device id")
        );
        assert!(device_id("{n}{n}", 1).is_err());
    }

    #[test]
    fn interval_follows_rate_unless_given() {
        let mut config = SimConfig::default();
        assert_eq!(config.interval(10), Duration::from_secs(1));
        config.rate = Some(5000.0);
        assert_eq!(config.interval(1000), Duration::from_millis(200));
        config.interval_ms = Some(50);
        assert_eq!(config.interval(1000), Duration::from_millis(50));
    }

    #[test]
    fn exactly_one_device_source() {
        let config = SimConfig::default();
        assert!(config.fleet().unwrap_err().to_string().contains("exactly one"));
        let config = SimConfig {
            connection_string: SecretString::from("HostName=h;DeviceId=d;SharedAccessKey=bad key"),
            ..SimConfig::default()
        };
        assert!(
            config
                .fleet()
                .unwrap_err()
                .to_string()
                .contains("connection_string")
        );
    }
}
