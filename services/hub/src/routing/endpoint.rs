//! Endpoints at run time: which backend a connection string selects, the storage settings, and
//! connection strings with their secrets masked for display. Connection strings are only
//! classified here; the endpoint writers parse them fully.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

/// Index of an endpoint in [`Routing::endpoints`](crate::routing::Routing::endpoints); `events` is 0,
/// then the queue endpoints, then the storage endpoints, each in configuration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId(pub(crate) usize);

impl EndpointId {
    /// The built-in `events` endpoint.
    pub const EVENTS: EndpointId = EndpointId(0);

    /// Position in [`Routing::endpoints`](crate::routing::Routing::endpoints).
    pub fn index(self) -> usize {
        self.0
    }
}

/// What an endpoint is and which backend serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// The built-in `events` endpoint (the hub's own events stream).
    Events,
    /// A `serviceBusQueues` endpoint.
    Queue(QueueBackend),
    /// A `storageContainers` endpoint.
    Storage(StorageBackend),
}

impl EndpointKind {
    /// `events`, `serviceBusQueue` or `storageContainer`.
    pub fn type_name(self) -> &'static str {
        match self {
            EndpointKind::Events => "events",
            EndpointKind::Queue(_) => "serviceBusQueue",
            EndpointKind::Storage(_) => "storageContainer",
        }
    }

    /// `builtIn`, `serviceBus`, `sqlite`, `amqp`, `azureBlob` or `localDirectory`.
    pub fn backend_name(self) -> &'static str {
        match self {
            EndpointKind::Events => "builtIn",
            EndpointKind::Queue(QueueBackend::ServiceBus) => "serviceBus",
            EndpointKind::Queue(QueueBackend::Sqlite) => "sqlite",
            EndpointKind::Queue(QueueBackend::Amqp) => "amqp",
            EndpointKind::Storage(StorageBackend::AzureBlob) => "azureBlob",
            EndpointKind::Storage(StorageBackend::LocalDirectory) => "localDirectory",
        }
    }
}

/// The backend of a queue endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueBackend {
    /// `Endpoint=sb://...`: Azure Service Bus (or its emulator).
    ServiceBus,
    /// `sqlite://...`: the embedded queue.
    Sqlite,
    /// `amqp://...` / `amqps://...`: an AMQP 1.0 broker (RabbitMQ).
    Amqp,
}

/// The backend of a storage endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageBackend {
    /// An Azure storage connection string, `UseDevelopmentStorage=true` (Azurite) or `BlobEndpoint=...`.
    AzureBlob,
    /// `file://<dir>`: a local directory.
    LocalDirectory,
}

/// How a storage endpoint encodes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StorageEncoding {
    /// Avro, no codec (IoT Hub's default).
    Avro,
    /// Avro with the deflate codec.
    AvroDeflate,
    /// JSON, one record per line.
    Json,
}

impl StorageEncoding {
    /// Parses ARM's value, in any case: `Avro`, `avroDeflate`, `JSON`, ...
    pub fn parse(text: &str) -> Option<StorageEncoding> {
        match text.to_ascii_lowercase().as_str() {
            "avro" => Some(StorageEncoding::Avro),
            "avrodeflate" => Some(StorageEncoding::AvroDeflate),
            "json" => Some(StorageEncoding::Json),
            _ => None,
        }
    }
}

/// The settings of a storage endpoint, checked against IoT Hub's ranges (or the development ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// The container (for `file://`, a subdirectory of the directory).
    pub container_name: String,
    /// The blob name format; contains each of [`FILE_NAME_TOKENS`] exactly once.
    pub file_name_format: String,
    /// Write a blob at least this often.
    pub batch_frequency: Duration,
    /// Write a blob when it reaches this many bytes.
    pub max_chunk_size_bytes: u64,
    /// Record encoding.
    pub encoding: StorageEncoding,
}

/// The tokens every `fileNameFormat` contains exactly once.
pub const FILE_NAME_TOKENS: [&str; 7] = [
    "{iothub}",
    "{partition}",
    "{YYYY}",
    "{MM}",
    "{DD}",
    "{HH}",
    "{mm}",
];

/// IoT Hub's default `fileNameFormat`.
pub const DEFAULT_FILE_NAME_FORMAT: &str = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}";

/// A custom endpoint or `events`, ready for its writer.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub(crate) name: String,
    pub(crate) kind: EndpointKind,
    pub(crate) connection_string: Option<SecretString>,
    pub(crate) overridden: bool,
    pub(crate) queue_name: Option<String>,
    pub(crate) storage: Option<StorageSettings>,
    /// Indexes into `Routing::enrichments` of the enrichments for this endpoint, in order.
    pub(crate) enrichments: Vec<usize>,
}

impl Endpoint {
    /// The built-in `events` endpoint.
    pub(crate) fn events() -> Endpoint {
        Endpoint {
            name: "events".to_owned(),
            kind: EndpointKind::Events,
            connection_string: None,
            overridden: false,
            queue_name: None,
            storage: None,
            enrichments: Vec::new(),
        }
    }

    /// The endpoint name, as routes name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its type and backend.
    pub fn kind(&self) -> EndpointKind {
        self.kind
    }

    /// The connection string the writer connects with (the override, when one was given); `None`
    /// for `events`. Never log it: [`Endpoint::redacted_connection_string`] is for display.
    pub fn connection_string(&self) -> Option<&SecretString> {
        self.connection_string.as_ref()
    }

    /// The connection string with keys, passwords and signatures replaced by `****`.
    pub fn redacted_connection_string(&self) -> Option<String> {
        self.connection_string
            .as_ref()
            .map(|secret| redact(secret.expose_secret()))
    }

    /// Whether the connection string came from the hub's local overrides.
    pub fn overridden(&self) -> bool {
        self.overridden
    }

    /// For a queue endpoint, the queue: the connection string's `EntityPath`, else the endpoint's
    /// `entityPath`, else (local backends only) the endpoint name.
    pub fn queue_name(&self) -> Option<&str> {
        self.queue_name.as_deref()
    }

    /// For a storage endpoint, its settings.
    pub fn storage(&self) -> Option<&StorageSettings> {
        self.storage.as_ref()
    }
}

/// Picks the backend from a connection string, without parsing it further.
pub(crate) fn classify(connection_string: &str) -> Option<EndpointKind> {
    let text = connection_string.trim();
    let has_scheme = |scheme: &str| {
        text.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
    };
    if has_scheme("sqlite://") {
        return Some(EndpointKind::Queue(QueueBackend::Sqlite));
    }
    if has_scheme("amqp://") || has_scheme("amqps://") {
        return Some(EndpointKind::Queue(QueueBackend::Amqp));
    }
    if has_scheme("file://") {
        return Some(EndpointKind::Storage(StorageBackend::LocalDirectory));
    }
    let value = |key: &str| key_value(text, key);
    if value("Endpoint").is_some_and(|v| v.get(..5).is_some_and(|head| head.eq_ignore_ascii_case("sb://"))) {
        return Some(EndpointKind::Queue(QueueBackend::ServiceBus));
    }
    let development = value("UseDevelopmentStorage").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let account = value("AccountName").is_some()
        && (value("AccountKey").is_some()
            || value("SharedAccessSignature").is_some()
            || value("DefaultEndpointsProtocol").is_some());
    if development || account || value("BlobEndpoint").is_some() {
        return Some(EndpointKind::Storage(StorageBackend::AzureBlob));
    }
    None
}

/// The value of `key` (case-insensitive) in a `Key=Value;Key=Value` string.
pub(crate) fn key_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split(';').find_map(|part| {
        let (name, value) = part.split_once('=')?;
        name.trim().eq_ignore_ascii_case(key).then_some(value.trim())
    })
}

/// Whether ARM masked a secret in this connection string (it exports keys as `****`).
pub(crate) fn is_masked(connection_string: &str) -> bool {
    connection_string.contains("****")
}

/// Whether a `Key=Value` key or URL query parameter names a secret.
fn is_secret_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    name.ends_with("key")
        || name.contains("signature")
        || name.contains("password")
        || name.contains("secret")
        || name.contains("token")
        || name == "sig"
}

/// Masks keys, passwords and signatures with `****`, keeping the rest readable: `Key=Value` strings
/// by key name; URLs in their user-info password and secret-looking query parameters.
pub fn redact(connection_string: &str) -> String {
    if let Some(scheme_end) = connection_string.find("://")
        && !connection_string[..scheme_end].contains(['=', ';'])
    {
        return redact_url(connection_string, scheme_end + 3);
    }
    connection_string
        .split(';')
        .map(|part| match part.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=****"),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn redact_url(url: &str, authority_start: usize) -> String {
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..authority_start]);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":****");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_len..];
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_secret_name(name) => format!("{name}=****"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&masked.join("&"));
            if let Some(fragment) = fragment {
                out.push('#');
                out.push_str(fragment);
            }
        }
        None => out.push_str(tail),
    }
    out
}

/// Problems with a `fileNameFormat`, in one phrase, or `None` when it is valid.
pub(crate) fn check_file_name_format(format: &str) -> Option<String> {
    let mut problems = Vec::new();
    let missing: Vec<&str> = FILE_NAME_TOKENS
        .iter()
        .copied()
        .filter(|token| !format.contains(token))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("lacks {}", missing.join(" ")));
    }
    for token in FILE_NAME_TOKENS {
        let count = format.matches(token).count();
        if count > 1 {
            problems.push(format!("has {token} {count} times"));
        }
    }
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let token = after.find('}').map_or(after, |close| &after[..=close]);
        if !FILE_NAME_TOKENS.contains(&token) {
            problems.push(format!("has unknown token {token}"));
        }
        rest = &after[token.len().max(1)..];
    }
    if problems.is_empty() {
        None
    } else {
        Some(problems.join(", "))
    }
}
