//! [`RoutingConfig::build`]: every check IoT Hub makes when a routing configuration is saved, plus
//! the local hub's own (backends, overrides), reporting all problems at once, one line each, named by
//! position and name: `routes[2] "toStorage": endpoint "Foo" does not exist`.

mod endpoints;

use std::collections::BTreeMap;
use std::fmt;

use iothub_protocol::MessageSource;
use iothub_query::{Condition, ConditionSet};
use secrecy::SecretString;
use serde::Serialize;

use super::config::RoutingConfig;
use super::endpoint::{Endpoint, EndpointId};
use super::enrich::{Enrichment, parse_value, valid_key};
use super::{Fallback, Route, RouteId, RouteSource, Routing, SourceTable, compile, limits, source_slot};

/// Names no custom endpoint may take (compared ignoring case).
const RESERVED_ENDPOINT_NAMES: [&str; 3] = ["events", "fileNotifications", "$default"];

/// What the hub configuration adds to the routing configuration.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The hub name, stamped for `$iothubname`.
    pub hub_name: String,
    /// Endpoint name → connection string, replacing the endpoint's `connectionString` (so an ARM
    /// export, whose keys are masked, runs against local backends).
    pub endpoint_overrides: BTreeMap<String, SecretString>,
    /// Development only: allow `batchFrequencyInSeconds` down to 1 and `maxChunkSizeInBytes` down
    /// to 1024.
    pub allow_short_batches: bool,
    /// For tools that evaluate but never deliver (`hub route test`, `hub route list` on a bare ARM
    /// export): do not require usable connection strings. An endpoint whose string is missing,
    /// masked, identity-based or unknown keeps the string it has (if any) and the backend ARM means
    /// by its list (Service Bus, Azure Blob). Never set it for `hub serve`.
    pub skip_connection_checks: bool,
}

impl BuildOptions {
    /// Options for hub `hub_name`, no overrides, IoT Hub's storage ranges.
    pub fn new(hub_name: impl Into<String>) -> BuildOptions {
        BuildOptions {
            hub_name: hub_name.into(),
            ..BuildOptions::default()
        }
    }

    /// Adds a connection string override for endpoint `name`.
    pub fn with_override(mut self, name: impl Into<String>, connection_string: impl Into<String>) -> Self {
        self.endpoint_overrides
            .insert(name.into(), SecretString::from(connection_string.into()));
        self
    }

    /// Sets the development override for short storage batches.
    pub fn with_short_batches(mut self, allow: bool) -> Self {
        self.allow_short_batches = allow;
        self
    }

    /// Sets [`BuildOptions::skip_connection_checks`].
    pub fn without_connection_checks(mut self) -> Self {
        self.skip_connection_checks = true;
        self
    }
}

/// One problem: where (`routes[2] "toStorage"`) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The route, endpoint, enrichment or section, by position and name.
    pub location: String,
    /// What is wrong, and how to fix it where that is not obvious.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem of a routing configuration, in configuration order. Never empty. Displays as one
/// line per problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct RoutingErrors(pub Vec<Problem>);

impl RoutingErrors {
    /// The problems, in order.
    pub fn problems(&self) -> &[Problem] {
        &self.0
    }

    /// Each problem as its one line.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(Problem::to_string).collect()
    }
}

impl fmt::Display for RoutingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            problem.fmt(f)?;
        }
        Ok(())
    }
}

/// Which list an endpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Queue,
    Storage,
}

/// What an endpoint name refers to while building.
#[derive(Debug, Clone, Copy)]
enum Target {
    Endpoint(EndpointId),
    /// An endpoint of an unsupported type, already reported.
    Unsupported,
}

struct Builder<'a> {
    options: &'a BuildOptions,
    problems: Vec<Problem>,
    endpoints: Vec<Endpoint>,
    /// Every endpoint name seen, with its location, for uniqueness and lookup.
    names: Vec<(String, String, Target)>,
}

impl RoutingConfig {
    /// Checks everything and compiles the conditions once: the [`Routing`] to route with, or every
    /// problem at once.
    pub fn build(&self, options: &BuildOptions) -> Result<Routing, RoutingErrors> {
        let mut b = Builder {
            options,
            problems: Vec::new(),
            endpoints: vec![Endpoint::events()],
            names: Vec::new(),
        };
        b.endpoints_section(self);
        let (routes, route_conditions) = b.routes_section(self);
        let fallback = b.fallback_section(self);
        let enrichments = b.enrichments_section(self);
        b.overrides_section(self);
        if !b.problems.is_empty() {
            return Err(RoutingErrors(b.problems));
        }
        let tables = tables(&routes, route_conditions, fallback.as_ref());
        let mut endpoints = b.endpoints;
        for (index, enrichment) in enrichments.iter().enumerate() {
            for endpoint in &enrichment.endpoints {
                endpoints[endpoint.0].enrichments.push(index);
            }
        }
        Ok(Routing {
            hub_name: options.hub_name.clone(),
            endpoints,
            routes,
            fallback: fallback.map(|(fallback, _)| fallback),
            enrichments,
            tables,
        })
    }
}

/// One [`SourceTable`] per message source, from the enabled routes (and the fallback for telemetry).
fn tables(
    routes: &[Route],
    conditions: Vec<Option<Condition>>,
    fallback: Option<&(Fallback, Option<Condition>)>,
) -> [SourceTable; 6] {
    let mut parts: [(Vec<Condition>, Vec<RouteId>, Vec<EndpointId>); 6] = Default::default();
    for (index, (route, condition)) in routes.iter().zip(conditions).enumerate() {
        let (RouteSource::Message(source), Some(condition), true) = (route.source, condition, route.enabled)
        else {
            continue;
        };
        let part = &mut parts[source_slot(source)];
        part.0.push(condition);
        part.1.push(RouteId(index));
        part.2.push(route.endpoint);
    }
    let mut has_fallback = false;
    if let Some((fallback, Some(condition))) = fallback
        && fallback.enabled
    {
        parts[source_slot(MessageSource::Telemetry)]
            .0
            .push(condition.clone());
        has_fallback = true;
    }
    let mut slot = 0;
    parts.map(|(conditions, routes, endpoints)| {
        let table = SourceTable {
            conditions: ConditionSet::new(conditions),
            routes,
            endpoints,
            has_fallback: has_fallback && slot == source_slot(MessageSource::Telemetry),
        };
        slot += 1;
        table
    })
}

/// `^[A-Za-z0-9-._]{1,64}$`, the ARM pattern of route and endpoint names.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

const NAME_RULE: &str = "name must be 1 to 64 letters, digits, '-', '.' or '_'";

const QUEUE_STRINGS: &str = "Endpoint=sb://...;EntityPath=..., sqlite://<file> or amqp[s]://<host>";
const STORAGE_STRINGS: &str = "DefaultEndpointsProtocol=...;AccountName=...;AccountKey=..., \
    UseDevelopmentStorage=true, BlobEndpoint=... or file://<directory>";
const OVERRIDE_HINT: &str = "give this endpoint a local connection string override";

impl Builder<'_> {
    fn problem(&mut self, location: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            location: location.to_owned(),
            message: message.into(),
        });
    }

    /// Resolves `names` (which must hold exactly one name) to an endpoint.
    fn single_endpoint(&mut self, location: &str, names: &[String]) -> Option<EndpointId> {
        match names {
            [name] => self.lookup(location, name),
            _ => {
                self.problem(
                    location,
                    format!(
                        "endpointNames must name exactly one endpoint, not {}",
                        names.len()
                    ),
                );
                None
            }
        }
    }

    fn lookup(&mut self, location: &str, name: &str) -> Option<EndpointId> {
        if name == "events" {
            return Some(EndpointId::EVENTS);
        }
        match self.names.iter().find(|(n, _, _)| n == name) {
            Some((_, _, Target::Endpoint(id))) => Some(*id),
            Some((_, _, Target::Unsupported)) => None,
            None => {
                self.problem(location, format!("endpoint {name:?} does not exist"));
                None
            }
        }
    }

    fn condition(&mut self, location: &str, condition: Option<&str>) -> Option<Condition> {
        match compile(condition) {
            Ok(compiled) => Some(compiled),
            Err(errors) => {
                for error in errors.errors() {
                    self.problem(location, format!("condition {error}"));
                }
                None
            }
        }
    }

    fn routes_section(&mut self, config: &RoutingConfig) -> (Vec<Route>, Vec<Option<Condition>>) {
        if config.routes.len() > limits::MAX_ROUTES {
            self.problem(
                "routes",
                format!(
                    "{} routes; IoT Hub allows at most {}",
                    config.routes.len(),
                    limits::MAX_ROUTES
                ),
            );
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut conditions = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            let location = format!("routes[{i}] {:?}", route.name);
            if !valid_name(&route.name) {
                self.problem(&location, NAME_RULE);
            }
            if let Some(first) = config.routes[..i].iter().position(|r| r.name == route.name) {
                self.problem(&location, format!("name is already used by routes[{first}]"));
            }
            let source = RouteSource::parse(&route.source);
            if source.is_none() {
                self.problem(
                    &location,
                    format!("source {:?} is not one of {}", route.source, RouteSource::NAMES),
                );
            }
            let endpoint = self.single_endpoint(&location, &route.endpoint_names);
            conditions.push(self.condition(&location, route.condition.as_deref()));
            routes.push(Route {
                name: route.name.clone(),
                source: source.unwrap_or(RouteSource::Message(MessageSource::Telemetry)),
                condition: route.condition.clone(),
                endpoint: endpoint.unwrap_or(EndpointId::EVENTS),
                enabled: route.is_enabled,
            });
        }
        (routes, conditions)
    }

    fn fallback_section(&mut self, config: &RoutingConfig) -> Option<(Fallback, Option<Condition>)> {
        let fallback = config.fallback_route.as_ref()?;
        let location = "fallbackRoute";
        if !fallback.source.eq_ignore_ascii_case("DeviceMessages") {
            self.problem(
                location,
                format!(
                    "source must be DeviceMessages (only telemetry falls back), not {:?}",
                    fallback.source
                ),
            );
        }
        let endpoint = self.single_endpoint(location, &fallback.endpoint_names);
        let condition = self.condition(location, fallback.condition.as_deref());
        Some((
            Fallback {
                name: fallback.name.clone().unwrap_or_else(|| "$fallback".to_owned()),
                condition: fallback.condition.clone(),
                endpoint: endpoint.unwrap_or(EndpointId::EVENTS),
                enabled: fallback.is_enabled,
            },
            condition,
        ))
    }

    fn enrichments_section(&mut self, config: &RoutingConfig) -> Vec<Enrichment> {
        if config.enrichments.len() > limits::MAX_ENRICHMENTS {
            self.problem(
                "enrichments",
                format!(
                    "{} enrichments; IoT Hub allows at most {}",
                    config.enrichments.len(),
                    limits::MAX_ENRICHMENTS
                ),
            );
        }
        let mut enrichments = Vec::with_capacity(config.enrichments.len());
        for (i, enrichment) in config.enrichments.iter().enumerate() {
            let location = format!("enrichments[{i}] {:?}", enrichment.key);
            if !valid_key(&enrichment.key) {
                self.problem(
                    &location,
                    "key must be one or more letters, digits, '-', '_' or '.'",
                );
            }
            if let Some(first) = config.enrichments[..i]
                .iter()
                .position(|e| e.key == enrichment.key)
            {
                self.problem(&location, format!("key is already used by enrichments[{first}]"));
            }
            let value = match parse_value(&enrichment.value, &self.options.hub_name) {
                Ok(value) => Some(value),
                Err(why) => {
                    self.problem(&location, why);
                    None
                }
            };
            if enrichment.endpoint_names.is_empty() {
                self.problem(&location, "endpointNames must name at least one endpoint");
            }
            let mut endpoints = Vec::with_capacity(enrichment.endpoint_names.len());
            for name in &enrichment.endpoint_names {
                if let Some(id) = self.lookup(&location, name)
                    && !endpoints.contains(&id)
                {
                    endpoints.push(id);
                }
            }
            if let Some(value) = value {
                enrichments.push(Enrichment {
                    key: enrichment.key.clone(),
                    text: enrichment.value.clone(),
                    value,
                    endpoints,
                });
            }
        }
        enrichments
    }

    fn overrides_section(&mut self, config: &RoutingConfig) {
        let e = &config.endpoints;
        let custom = |name: &str| {
            e.service_bus_queues.iter().any(|q| q.name == name)
                || e.storage_containers.iter().any(|s| s.name == name)
        };
        let unknown: Vec<String> = self
            .options
            .endpoint_overrides
            .keys()
            .filter(|name| !custom(name))
            .cloned()
            .collect();
        for name in unknown {
            self.problem(
                &format!("endpoint overrides {name:?}"),
                "no serviceBusQueues or storageContainers endpoint has this name",
            );
        }
    }
}
