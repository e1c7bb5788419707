//! Connection strings → backend configuration. Three shapes:
//!
//! - `sqlite://<path>[?synchronous=full|normal&max_message_size=<bytes>&poll_interval=<duration>]`
//!   (`sqlite:///abs/path.db` or `sqlite://relative/path.db`)
//! - `Endpoint=sb://<namespace>/;SharedAccessKeyName=<rule>;SharedAccessKey=<key>[;EntityPath=<queue>]
//!   [;UseDevelopmentEmulator=true]` (Azure Service Bus; keys are case-insensitive, as in Azure SDKs;
//!   `SharedAccessSignature=<token>` may replace the key name + key)
//! - `amqp[s]://<user>:<password>@<host>[:<port>][/<vhost>][?profile=rabbitmq|generic&credit=<n>
//!   &max_message_size=<bytes>]` (any AMQP 1.0 broker; RabbitMQ is the default profile)
//!
//! Durations are `<n>ms`, `<n>s`, `<n>m`, `<n>h` or a plain number of seconds. A bad part is reported
//! by its key, never by its value (values may be secrets).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Service Bus Standard's message size limit, used as every backend's default.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// Which backend a connection string selects, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionConfig {
    /// Embedded SQLite file.
    Sqlite(SqliteConfig),
    /// Azure Service Bus (or its emulator).
    ServiceBus(ServiceBusConfig),
    /// A generic AMQP 1.0 broker.
    Amqp(AmqpConfig),
}

/// SQLite durability setting per commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync the WAL at every commit: survives power loss.
    Full,
    /// fsync at checkpoints only: survives a process crash (`kill -9`), not power loss.
    Normal,
}

/// Settings of the SQLite backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file; created if missing.
    pub path: PathBuf,
    /// Durability per commit (default `full`).
    pub synchronous: Synchronous,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// How often an idle receiver looks for messages sent by other processes or whose lock expired.
    pub poll_interval: Duration,
}

/// How the Service Bus client authenticates through CBS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceBusAuth {
    /// A shared access policy: tokens are made and renewed from it.
    Key {
        /// `SharedAccessKeyName`.
        key_name: String,
        /// `SharedAccessKey`.
        key: Secret,
    },
    /// A ready-made token (`SharedAccessSignature=`), used as is until it expires.
    Token(Secret),
}

/// Settings of the Service Bus backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusConfig {
    /// Namespace host, e.g. `contoso.servicebus.windows.net`.
    pub host: String,
    /// Port (default 5671 with TLS, 5672 for the emulator).
    pub port: u16,
    /// Credentials.
    pub auth: ServiceBusAuth,
    /// `EntityPath`: the queue this string was issued for, if any.
    pub entity_path: Option<String>,
    /// `UseDevelopmentEmulator=true`: plain AMQP, no TLS.
    pub emulator: bool,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Lifetime of the SAS tokens put on `$cbs`; each is put again after four fifths of it.
    pub token_lifetime: Duration,
    /// Link credit (prefetch) of each receiver; keep it small against the lock duration.
    pub credit: u32,
}

/// Broker dialect of the generic AMQP backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmqpProfile {
    /// RabbitMQ 3.x `rabbitmq_amqp1_0`: `/amq/queue/<name>` addresses, `released` to abandon,
    /// dead-lettering through the queue's dead-letter exchange to `<name>.dlq`.
    RabbitMq,
    /// Plain AMQP 1.0: the queue name is the address, `modified` to abandon.
    Generic,
}

/// Settings of the generic AMQP 1.0 backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// `amqps`.
    pub tls: bool,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// SASL PLAIN user (ANONYMOUS when empty).
    pub user: String,
    /// SASL PLAIN password.
    pub password: Secret,
    /// Virtual host (RabbitMQ), sent as `vhost:<name>` in the open frame's hostname.
    pub vhost: String,
    /// Broker dialect.
    pub profile: AmqpProfile,
    /// Link credit (prefetch) of each receiver.
    pub credit: u32,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
}

impl ConnectionConfig {
    /// Parses a connection string.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Some(rest) = strip_scheme(text, "sqlite://") {
            return parse_sqlite(rest).map(Self::Sqlite);
        }
        if strip_scheme(text, "amqp://").is_some() || strip_scheme(text, "amqps://").is_some() {
            return parse_amqp(text).map(Self::Amqp);
        }
        if text.contains('=') && text.contains(';') || text.to_ascii_lowercase().starts_with("endpoint=") {
            return parse_service_bus(text).map(Self::ServiceBus);
        }
        Err(Error::connection_string(
            "scheme",
            "expected sqlite://<path>, amqp[s]://user:pass@host:port or Endpoint=sb://...;SharedAccessKeyName=...",
        ))
    }
}

/// `text` after `scheme`, which matches in any case (URL schemes are case-insensitive).
fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let head = text.get(..scheme.len())?;
    if head.eq_ignore_ascii_case(scheme) {
        text.get(scheme.len()..)
    } else {
        None
    }
}

fn parse_sqlite(rest: &str) -> Result<SqliteConfig> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(Error::connection_string("path", "empty database path"));
    }
    let mut config = SqliteConfig {
        path: PathBuf::from(path),
        synchronous: Synchronous::Full,
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        poll_interval: Duration::from_millis(100),
    };
    for (key, value) in query_pairs(query)? {
        match key.as_str() {
            "synchronous" => {
                config.synchronous = match value.to_ascii_lowercase().as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    _ => return Err(Error::connection_string(key, "expected `full` or `normal`")),
                }
            }
            "max_message_size" => config.max_message_size = parse_size(&key, &value)?,
            "poll_interval" => config.poll_interval = parse_duration(&key, &value)?,
            _ => return Err(unknown_key(key, "synchronous, max_message_size, poll_interval")),
        }
    }
    Ok(config)
}

fn parse_amqp(text: &str) -> Result<AmqpConfig> {
    let url = url::Url::parse(text).map_err(|e| Error::connection_string("url", e.to_string()))?;
    let tls = url.scheme() == "amqps";
    let host = url.host_str().filter(|h| !h.is_empty());
    let host = host
        .ok_or_else(|| Error::connection_string("host", "missing"))?
        .to_owned();
    let decode = |s: &str, key: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| Error::connection_string(key, "not valid UTF-8 after percent-decoding"))
    };
    let vhost = match url.path().trim_start_matches('/') {
        "" => "/".to_owned(),
        other => decode(other, "vhost")?,
    };
    let mut config = AmqpConfig {
        tls,
        host,
        port: url.port().unwrap_or(if tls { 5671 } else { 5672 }),
        user: decode(url.username(), "user")?,
        password: Secret::new(decode(url.password().unwrap_or(""), "password")?),
        vhost,
        profile: AmqpProfile::RabbitMq,
        credit: 100,
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
    };
    for (key, value) in query_pairs(url.query().unwrap_or(""))? {
        match key.as_str() {
            "profile" => {
                config.profile = match value.to_ascii_lowercase().as_str() {
                    "rabbitmq" => AmqpProfile::RabbitMq,
                    "generic" => AmqpProfile::Generic,
                    _ => return Err(Error::connection_string(key, "expected `rabbitmq` or `generic`")),
                }
            }
            "credit" => {
                config.credit = value
                    .parse()
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| Error::connection_string(key, "expected a positive integer"))?
            }
            "max_message_size" => config.max_message_size = parse_size(&key, &value)?,
            _ => return Err(unknown_key(key, "profile, credit, max_message_size")),
        }
    }
    Ok(config)
}

fn parse_service_bus(text: &str) -> Result<ServiceBusConfig> {
    let mut endpoint = None;
    let mut key_name = None;
    let mut key = None;
    let mut signature = None;
    let mut entity_path = None;
    let mut emulator = false;
    for (index, part) in text.split(';').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, value)) = part.split_once('=') else {
            return Err(Error::connection_string(
                format!("segment {}", index + 1),
                "expected Key=Value",
            ));
        };
        let value = value.trim().to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "endpoint" => endpoint = Some(value),
            "sharedaccesskeyname" => key_name = Some(value),
            "sharedaccesskey" => key = Some(Secret::new(value)),
            "sharedaccesssignature" => signature = Some(Secret::new(value)),
            "entitypath" => entity_path = Some(value).filter(|v| !v.is_empty()),
            "usedevelopmentemulator" => {
                emulator = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::connection_string(
                            "UseDevelopmentEmulator",
                            "expected true or false",
                        ));
                    }
                }
            }
            _ => {
                return Err(unknown_key(
                    name.trim().to_owned(),
                    "Endpoint, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, EntityPath, UseDevelopmentEmulator",
                ));
            }
        }
    }
    let endpoint = endpoint.ok_or_else(|| Error::connection_string("Endpoint", "missing"))?;
    let (host, port) = parse_endpoint(&endpoint)?;
    let auth = match (key_name, key, signature) {
        (_, _, Some(token)) => ServiceBusAuth::Token(token),
        (Some(key_name), Some(key), None) if !key_name.is_empty() && !key.expose().is_empty() => {
            ServiceBusAuth::Key { key_name, key }
        }
        (None, _, None) => return Err(Error::connection_string("SharedAccessKeyName", "missing")),
        (Some(name), _, None) if name.is_empty() => {
            return Err(Error::connection_string("SharedAccessKeyName", "empty"));
        }
        (Some(_), None, None) => return Err(Error::connection_string("SharedAccessKey", "missing")),
        (Some(_), Some(_), None) => return Err(Error::connection_string("SharedAccessKey", "empty")),
    };
    Ok(ServiceBusConfig {
        host,
        port: port.unwrap_or(if emulator { 5672 } else { 5671 }),
        auth,
        entity_path,
        emulator,
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        token_lifetime: Duration::from_secs(3600),
        credit: 20,
    })
}

fn parse_endpoint(endpoint: &str) -> Result<(String, Option<u16>)> {
    let bad = |reason: &str| Error::connection_string("Endpoint", reason);
    let url =
        url::Url::parse(endpoint).map_err(|_| bad("expected sb://<namespace>.servicebus.windows.net/"))?;
    if url.scheme() != "sb" && url.scheme() != "amqps" && url.scheme() != "amqp" {
        return Err(bad("expected the sb:// scheme"));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("missing host"))?;
    Ok((host.to_owned(), url.port()))
}

fn query_pairs(query: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        if value.is_empty() {
            return Err(Error::connection_string(key, "missing value"));
        }
        pairs.push((key.to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

fn unknown_key(key: String, known: &str) -> Error {
    Error::ConnectionString {
        key,
        reason: format!("unknown key (known: {known})"),
    }
}

fn parse_size(key: &str, value: &str) -> Result<usize> {
    value
        .parse::<usize>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::connection_string(key, "expected a positive number of bytes"))
}

/// Parses `500ms`, `30s`, `5m`, `1h` or a plain number of seconds.
pub(crate) fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let bad = || Error::connection_string(key, "expected a duration such as 500ms, 30s, 5m or 1h");
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        Err(bad())
    } else {
        Ok(duration)
    }
}
