//! Message routing as IoT Hub does it: the ARM-shaped configuration ([`RoutingConfig`]), its
//! validation into a compiled [`Routing`], and the per-message decision of which endpoints get a
//! message with which enrichments ([`Routing::route`]). Pure: no IO but reading the config file.
//!
//! ```text
//! RoutingConfig::from_path ─► RoutingConfig::build(&BuildOptions) ─► Routing   (once per (re)load)
//! Routing::route(&message, source, twin, &mut Decision)                          (every message)
//!   └─ for each target: Routing::enrichments(target, source, twin)              (at delivery)
//! ```
//!
//! Rules (spec `routing-query.md` §9–§11):
//! * every enabled route of the message's source is evaluated, with one parse of the body for all;
//! * an endpoint gets a message once however many routes send it there;
//! * the fallback route fires only for telemetry, only when no route of that source evaluated to
//!   `true` (undefined is not a match), and only when its own condition is `true`;
//! * telemetry that reaches no endpoint is *orphaned* (dropped and counted);
//! * with no routes at all, telemetry goes to the built-in `events` endpoint (a new IoT Hub). Once
//!   any route exists, `events` only gets what a route or the fallback sends there;
//! * conditions see the message as sent; enrichments are stamped per endpoint at delivery.

mod config;
mod describe;
mod endpoint;
mod enrich;
mod router;
mod validate;

use std::fmt;

use iothub_protocol::MessageSource;
use iothub_query::{Condition, ConditionSet};

pub use config::{
    CosmosDbEndpointConfig, EndpointsConfig, EnrichmentConfig, FallbackRouteConfig, LoadError,
    MAX_ROUTING_FILE_BYTES, ManagedIdentityConfig, QueueEndpointConfig, RouteConfig, RoutingConfig,
    StorageEndpointConfig,
};
pub use describe::{
    EndpointListing, EnrichmentListing, FallbackListing, FallbackReport, RouteListing, RouteReport,
    RouteSkipped, RouteTestReport, RoutingListing, StampListing, TargetReport,
};
pub use endpoint::{
    DEFAULT_FILE_NAME_FORMAT, Endpoint, EndpointId, EndpointKind, FILE_NAME_TOKENS, QueueBackend,
    StorageBackend, StorageEncoding, StorageSettings, redact,
};
pub use enrich::{Enrichment, Enrichments, Stamp};
pub use router::Decision;
pub use validate::{BuildOptions, Problem, RoutingErrors};

/// Limits of a paid IoT Hub (spec §11).
pub mod limits {
    /// Routes per hub.
    pub const MAX_ROUTES: usize = 100;
    /// Custom endpoints per hub, across all types.
    pub const MAX_CUSTOM_ENDPOINTS: usize = 10;
    /// Enrichments per hub.
    pub const MAX_ENRICHMENTS: usize = 10;
    /// `batchFrequencyInSeconds` range.
    pub const BATCH_FREQUENCY_SECS: std::ops::RangeInclusive<i64> = 60..=720;
    /// `batchFrequencyInSeconds` range with the development override.
    pub const SHORT_BATCH_FREQUENCY_SECS: std::ops::RangeInclusive<i64> = 1..=720;
    /// `maxChunkSizeInBytes` range.
    pub const CHUNK_SIZE_BYTES: std::ops::RangeInclusive<i64> = 10_485_760..=524_288_000;
    /// `maxChunkSizeInBytes` range with the development override.
    pub const SHORT_CHUNK_SIZE_BYTES: std::ops::RangeInclusive<i64> = 1024..=524_288_000;
    /// Default `batchFrequencyInSeconds`.
    pub const DEFAULT_BATCH_FREQUENCY_SECS: i64 = 300;
    /// Default `maxChunkSizeInBytes`.
    pub const DEFAULT_CHUNK_SIZE_BYTES: i64 = 314_572_800;
}

/// A route's source (ARM `RoutingSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteSource {
    /// A source the hub emits messages of.
    Message(MessageSource),
    /// `MqttBrokerMessages`: valid in ARM, never emitted by this hub, so such routes never match.
    MqttBrokerMessages,
}

impl RouteSource {
    /// Every ARM name, for messages.
    pub const NAMES: &'static str = "DeviceMessages, TwinChangeEvents, DeviceLifecycleEvents, \
        DeviceJobLifecycleEvents, DigitalTwinChangeEvents, DeviceConnectionStateEvents, MqttBrokerMessages";

    /// Parses an ARM name, case-insensitively.
    pub fn parse(name: &str) -> Option<RouteSource> {
        if name.eq_ignore_ascii_case("MqttBrokerMessages") {
            return Some(RouteSource::MqttBrokerMessages);
        }
        MessageSource::from_routing_source(name).map(RouteSource::Message)
    }

    /// The ARM name: `DeviceMessages`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::Message(source) => source.routing_source(),
            RouteSource::MqttBrokerMessages => "MqttBrokerMessages",
        }
    }
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of a route in [`Routing::routes`], i.e. its position in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(pub(crate) usize);

impl RouteId {
    /// Position in [`Routing::routes`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// A route, checked.
#[derive(Debug, Clone)]
pub struct Route {
    pub(crate) name: String,
    pub(crate) source: RouteSource,
    pub(crate) condition: Option<String>,
    pub(crate) endpoint: EndpointId,
    pub(crate) enabled: bool,
}

impl Route {
    /// The route name (a bounded metric label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its source.
    pub fn source(&self) -> RouteSource {
        self.source
    }

    /// The condition as written; `None` is `true`.
    pub fn condition(&self) -> Option<&str> {
        self.condition.as_deref()
    }

    /// Its endpoint.
    pub fn endpoint(&self) -> EndpointId {
        self.endpoint
    }

    /// Whether it is evaluated.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// The fallback route, checked.
#[derive(Debug, Clone)]
pub struct Fallback {
    pub(crate) name: String,
    pub(crate) condition: Option<String>,
    pub(crate) endpoint: EndpointId,
    pub(crate) enabled: bool,
}

impl Fallback {
    /// Its name (`$fallback` unless configured otherwise).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The condition as written; `None` is `true`.
    pub fn condition(&self) -> Option<&str> {
        self.condition.as_deref()
    }

    /// Its endpoint.
    pub fn endpoint(&self) -> EndpointId {
        self.endpoint
    }

    /// Whether it is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// The enabled routes of one message source, compiled together.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceTable {
    /// Conditions of `routes`, in order, then the fallback's when this is telemetry and it is on.
    pub(crate) conditions: ConditionSet,
    pub(crate) routes: Vec<RouteId>,
    /// `endpoints[i]` is the endpoint of `routes[i]`.
    pub(crate) endpoints: Vec<EndpointId>,
    /// Whether the last condition is the fallback's.
    pub(crate) has_fallback: bool,
}

/// A checked routing configuration, compiled: build it once per (re)load with
/// [`RoutingConfig::build`], share it (`Arc`), and call [`Routing::route`] per message.
#[derive(Debug, Clone)]
pub struct Routing {
    pub(crate) hub_name: String,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) routes: Vec<Route>,
    pub(crate) fallback: Option<Fallback>,
    pub(crate) enrichments: Vec<Enrichment>,
    /// Indexed by [`source_slot`].
    pub(crate) tables: [SourceTable; 6],
}

// Shared across the hub's tasks behind an `Arc`.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Routing>();
    shared::<Decision>();
};

/// Position of a source in [`Routing::tables`].
pub(crate) fn source_slot(source: MessageSource) -> usize {
    match source {
        MessageSource::Telemetry => 0,
        MessageSource::TwinChangeEvents => 1,
        MessageSource::DeviceLifecycleEvents => 2,
        MessageSource::DeviceJobLifecycleEvents => 3,
        MessageSource::DigitalTwinChangeEvents => 4,
        MessageSource::DeviceConnectionStateEvents => 5,
    }
}

impl Routing {
    /// The routing of a hub with no routing configuration: telemetry goes to `events`, nothing else
    /// goes anywhere. The same as building an empty [`RoutingConfig`].
    pub fn without_routes(hub_name: impl Into<String>) -> Routing {
        Routing {
            hub_name: hub_name.into(),
            endpoints: vec![Endpoint::events()],
            routes: Vec::new(),
            fallback: None,
            enrichments: Vec::new(),
            tables: Default::default(),
        }
    }

    /// The hub name `$iothubname` stands for.
    pub fn hub_name(&self) -> &str {
        &self.hub_name
    }

    /// Every endpoint: `events` first, then the queue and storage endpoints in configuration order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// One endpoint.
    pub fn endpoint(&self, id: EndpointId) -> &Endpoint {
        &self.endpoints[id.0]
    }

    /// The endpoint called `name`, if any.
    pub fn endpoint_id(&self, name: &str) -> Option<EndpointId> {
        self.endpoints.iter().position(|e| e.name == name).map(EndpointId)
    }

    /// Every route, in configuration order (disabled ones included).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// One route.
    pub fn route_info(&self, id: RouteId) -> &Route {
        &self.routes[id.0]
    }

    /// The fallback route, when configured (it may be disabled).
    pub fn fallback(&self) -> Option<&Fallback> {
        self.fallback.as_ref()
    }

    /// Every enrichment, in configuration order.
    pub fn enrichment_list(&self) -> &[Enrichment] {
        &self.enrichments
    }

    /// Whether no route is configured, so telemetry goes to `events` by default.
    pub fn has_no_routes(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether any route or the fallback route of `source` reads the message body; the caller may
    /// skip work (e.g. decoding) otherwise.
    pub fn reads_body(&self, source: MessageSource) -> bool {
        self.tables[source_slot(source)].conditions.reads_body()
    }
}

/// Compiles a condition as IoT Hub does: an absent one is `true`.
pub(crate) fn compile(condition: Option<&str>) -> Result<Condition, iothub_query::CompileErrors> {
    Condition::compile(condition.unwrap_or("true"))
}
