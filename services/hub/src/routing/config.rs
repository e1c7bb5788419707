//! The routing configuration as Azure IoT Hub's ARM resource has it (`properties.routing`, API
//! 2023-06-30), in the shape `az iot hub show --query properties.routing` prints: JSON, or the same
//! in YAML. Every ARM field is modelled so an export loads unchanged; anything else is an error.
//! `az` prints unset fields as `null` and empty lists as `[]` or `null`: all are accepted.
//!
//! These types only parse. [`RoutingConfig::build`](crate::routing::RoutingConfig::build) checks
//! them and returns the runtime [`Routing`](crate::routing::Routing).

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::endpoint::redact;

/// Largest routing file read; a real one is a few kilobytes.
pub const MAX_ROUTING_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// `properties.routing` of an IoT Hub.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingConfig {
    /// Custom endpoints, by type. The built-in `events` endpoint always exists and is not listed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub endpoints: EndpointsConfig,
    /// Routes, evaluated on every message of their source (at most 100).
    #[serde(default, deserialize_with = "null_as_default")]
    pub routes: Vec<RouteConfig>,
    /// The route taken by telemetry that matched no route; absent means disabled (as in ARM).
    #[serde(default)]
    pub fallback_route: Option<FallbackRouteConfig>,
    /// Application properties stamped on messages delivered to chosen endpoints (at most 10).
    #[serde(default, deserialize_with = "null_as_default")]
    pub enrichments: Vec<EnrichmentConfig>,
}

/// Custom endpoints (ARM `RoutingEndpoints`); at most 10 across all types.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointsConfig {
    /// Queue endpoints: Service Bus, or locally an embedded SQLite queue or an AMQP 1.0 broker.
    #[serde(default, deserialize_with = "null_as_default")]
    pub service_bus_queues: Vec<QueueEndpointConfig>,
    /// Blob container endpoints: Azure Blob / Azurite, or locally a directory.
    #[serde(default, deserialize_with = "null_as_default")]
    pub storage_containers: Vec<StorageEndpointConfig>,
    /// Service Bus topic endpoints: not supported by the local hub; accepted only when empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub service_bus_topics: Vec<QueueEndpointConfig>,
    /// Event Hubs endpoints: not supported by the local hub; accepted only when empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub event_hubs: Vec<QueueEndpointConfig>,
    /// Cosmos DB endpoints: not supported by the local hub; accepted only when empty. `az` prints
    /// `cosmosDbSqlContainers`, ARM JSON `cosmosDBSqlContainers`, older API versions
    /// `cosmosDbSqlCollections`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        alias = "cosmosDBSqlContainers",
        alias = "cosmosDbSqlCollections"
    )]
    pub cosmos_db_sql_containers: Vec<CosmosDbEndpointConfig>,
}

/// A Service Bus queue endpoint (ARM `RoutingServiceBusQueueEndpointProperties`; topics and Event
/// Hubs have the same fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueEndpointConfig {
    /// Endpoint name: 1-64 letters, digits, `-`, `.`, `_`; unique across types; not `events`,
    /// `fileNotifications` or `$default`.
    pub name: String,
    /// Connection string; picks the backend (`Endpoint=sb://...`, `sqlite://...`, `amqp[s]://...`).
    /// ARM exports it with the key masked (`****`): give the endpoint a local override then.
    #[serde(default, serialize_with = "serialize_redacted")]
    pub connection_string: Option<SecretString>,
    /// Queue name; when absent, the connection string's `EntityPath` (or, for a local queue, the
    /// endpoint name).
    #[serde(default)]
    pub entity_path: Option<String>,
    /// `sb://` URL of the namespace, used by identity-based authentication (informational here).
    #[serde(default)]
    pub endpoint_uri: Option<String>,
    /// `keyBased` or `identityBased`; identity-based endpoints need a local override.
    #[serde(default)]
    pub authentication_type: Option<String>,
    /// Managed identity of an identity-based endpoint (informational here).
    #[serde(default)]
    pub identity: Option<ManagedIdentityConfig>,
    /// ARM id of the endpoint (informational).
    #[serde(default)]
    pub id: Option<String>,
    /// Azure subscription of the namespace (informational).
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Azure resource group of the namespace (informational).
    #[serde(default)]
    pub resource_group: Option<String>,
}

/// A storage container endpoint (ARM `RoutingStorageContainerProperties`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageEndpointConfig {
    /// Endpoint name: same rules as a queue endpoint's.
    pub name: String,
    /// Connection string; picks the backend (`DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...`,
    /// `UseDevelopmentStorage=true`, `BlobEndpoint=...`, or `file://<dir>`). ARM masks the key.
    #[serde(default, serialize_with = "serialize_redacted")]
    pub connection_string: Option<SecretString>,
    /// Blob container (or, for `file://`, subdirectory) the blobs are written to. Required.
    #[serde(default)]
    pub container_name: Option<String>,
    /// Blob names: each of `{iothub} {partition} {YYYY} {MM} {DD} {HH} {mm}` exactly once, in any
    /// order, with any literal text. Default `{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}`.
    #[serde(default)]
    pub file_name_format: Option<String>,
    /// Seconds between blob writes: 60 to 720 (1 to 720 with the development override); default 300.
    #[serde(default)]
    pub batch_frequency_in_seconds: Option<i64>,
    /// Largest blob, in bytes: 10485760 to 524288000 (1024 and up with the development override);
    /// default 314572800.
    #[serde(default)]
    pub max_chunk_size_in_bytes: Option<i64>,
    /// Record encoding: `avro` (the default), `avroDeflate` or `json`, in any case.
    #[serde(default)]
    pub encoding: Option<String>,
    /// `https://` URL of the storage account, used by identity-based authentication (informational).
    #[serde(default)]
    pub endpoint_uri: Option<String>,
    /// `keyBased` or `identityBased`; identity-based endpoints need a local override.
    #[serde(default)]
    pub authentication_type: Option<String>,
    /// Managed identity of an identity-based endpoint (informational here).
    #[serde(default)]
    pub identity: Option<ManagedIdentityConfig>,
    /// ARM id of the endpoint (informational).
    #[serde(default)]
    pub id: Option<String>,
    /// Azure subscription of the storage account (informational).
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Azure resource group of the storage account (informational).
    #[serde(default)]
    pub resource_group: Option<String>,
}

/// A Cosmos DB container endpoint (ARM `RoutingCosmosDBSqlApiProperties`): modelled so an export
/// parses, refused by validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CosmosDbEndpointConfig {
    /// Endpoint name.
    pub name: String,
    /// ARM id of the endpoint.
    #[serde(default)]
    pub id: Option<String>,
    /// Azure subscription of the account.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Azure resource group of the account.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// `https://` URL of the account.
    #[serde(default)]
    pub endpoint_uri: Option<String>,
    /// `keyBased` or `identityBased`.
    #[serde(default)]
    pub authentication_type: Option<String>,
    /// Managed identity of an identity-based endpoint.
    #[serde(default)]
    pub identity: Option<ManagedIdentityConfig>,
    /// Primary account key.
    #[serde(default, serialize_with = "serialize_masked")]
    pub primary_key: Option<SecretString>,
    /// Secondary account key.
    #[serde(default, serialize_with = "serialize_masked")]
    pub secondary_key: Option<SecretString>,
    /// Database name.
    #[serde(default)]
    pub database_name: Option<String>,
    /// Container name.
    #[serde(default)]
    pub container_name: Option<String>,
    /// Partition key name.
    #[serde(default)]
    pub partition_key_name: Option<String>,
    /// Partition key template.
    #[serde(default)]
    pub partition_key_template: Option<String>,
}

/// ARM `ManagedIdentity`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedIdentityConfig {
    /// ARM id of the user-assigned identity; absent for the system-assigned one.
    #[serde(default)]
    pub user_assigned_identity: Option<String>,
}

/// A route (ARM `RouteProperties`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfig {
    /// Route name: 1-64 letters, digits, `-`, `.`, `_`; unique.
    pub name: String,
    /// Messages the route sees: `DeviceMessages`, `TwinChangeEvents`, `DeviceLifecycleEvents`,
    /// `DeviceJobLifecycleEvents`, `DigitalTwinChangeEvents`, `DeviceConnectionStateEvents` or
    /// `MqttBrokerMessages`.
    pub source: String,
    /// Routing query; absent means `true`. An empty string evaluates to undefined (never matches).
    #[serde(default)]
    pub condition: Option<String>,
    /// The one endpoint matching messages go to (`events` is the built-in one).
    pub endpoint_names: Vec<String>,
    /// Whether the route is evaluated at all.
    pub is_enabled: bool,
}

/// The fallback route (ARM `FallbackRouteProperties`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FallbackRouteConfig {
    /// Name; IoT Hub uses `$fallback`.
    #[serde(default)]
    pub name: Option<String>,
    /// Must be `DeviceMessages`: only telemetry falls back.
    pub source: String,
    /// Routing query; absent means `true`.
    #[serde(default)]
    pub condition: Option<String>,
    /// The one endpoint, normally `events`.
    pub endpoint_names: Vec<String>,
    /// Whether telemetry that matched no route goes to the endpoint.
    pub is_enabled: bool,
}

/// An enrichment (ARM `EnrichmentProperties`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrichmentConfig {
    /// Application property name: letters, digits, `-`, `_`, `.`.
    pub key: String,
    /// A static string, `$iothubname`, or a twin path (`$twin.tags.<path>`,
    /// `$twin.properties.desired.<path>`, `$twin.properties.reported.<path>`).
    pub value: String,
    /// Endpoints whose messages get the property (at least one).
    pub endpoint_names: Vec<String>,
}

/// Why a routing file cannot be loaded. Parse errors carry the line and column.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ROUTING_FILE_BYTES`].
    #[error("{path}: larger than {MAX_ROUTING_FILE_BYTES} bytes; is this a routing file?")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The extension says neither JSON nor YAML.
    #[error("{path}: the routing file name must end in .json, .yaml or .yml")]
    Extension {
        /// The file.
        path: PathBuf,
    },
    /// Not valid JSON, or not the routing shape (the message says where).
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error, with its line and column.
        source: serde_json::Error,
    },
    /// Not valid YAML, or not the routing shape (the message says where).
    #[error("{path}: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The error, with its line and column.
        source: serde_norway::Error,
    },
}

impl RoutingConfig {
    /// Parses JSON (`az iot hub show --query properties.routing` output).
    pub fn from_json(text: &str) -> Result<RoutingConfig, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses YAML (`... -o yaml`).
    pub fn from_yaml(text: &str) -> Result<RoutingConfig, serde_norway::Error> {
        serde_norway::from_str(text)
    }

    /// Reads a `.json`, `.yaml` or `.yml` file.
    pub fn from_path(path: &Path) -> Result<RoutingConfig, LoadError> {
        let owned = || path.to_owned();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let yaml = match extension.as_deref() {
            Some("json") => false,
            Some("yaml" | "yml") => true,
            _ => return Err(LoadError::Extension { path: owned() }),
        };
        let text = read_limited(path)?;
        if yaml {
            RoutingConfig::from_yaml(&text).map_err(|source| LoadError::Yaml {
                path: owned(),
                source,
            })
        } else {
            RoutingConfig::from_json(&text).map_err(|source| LoadError::Json {
                path: owned(),
                source,
            })
        }
    }
}

fn read_limited(path: &Path) -> Result<String, LoadError> {
    use std::io::Read as _;
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_ROUTING_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_ROUTING_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(text)
}

/// `az` prints empty lists and objects as `null` at times.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Connection strings serialise with their secrets masked, as ARM exports them.
fn serialize_redacted<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret as _;
    match value {
        Some(secret) => s.serialize_some(&redact(secret.expose_secret())),
        None => s.serialize_none(),
    }
}

/// Keys serialise masked, as ARM exports them.
fn serialize_masked<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("****"),
        None => s.serialize_none(),
    }
}
