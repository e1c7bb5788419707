//! What `hub route test --config <routing> --message <file>` and `hub route list` print: serde
//! structures built from a [`Routing`]. Connection strings are only ever shown redacted.

use iothub_protocol::MessageSource;
use iothub_query::{MessageView, Outcome};
use serde::Serialize;

use super::{Decision, EndpointId, RouteSource, Routing, StorageEncoding, source_slot};

/// `hub route test`: every route's result on one message, where it would go, and the fallback.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTestReport {
    /// The message's routing source (`DeviceMessages`, ...).
    pub source: &'static str,
    /// Every route, in configuration order.
    pub routes: Vec<RouteReport>,
    /// The fallback route; `null` when not configured.
    pub fallback: Option<FallbackReport>,
    /// Endpoints that would receive the message, each once.
    pub endpoints: Vec<TargetReport>,
    /// Telemetry that would reach no endpoint (dropped and counted as orphaned).
    pub orphaned: bool,
    /// No route is configured, so telemetry goes to `events`.
    pub default_events: bool,
    /// Why `$body` was undefined for some condition, if it was.
    pub body_error: Option<String>,
}

/// One route in a [`RouteTestReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    /// Route name.
    pub name: String,
    /// Route source.
    pub source: &'static str,
    /// Condition as written; `null` means `true`.
    pub condition: Option<String>,
    /// Its endpoint.
    pub endpoint: String,
    /// `true`, `false` or `undefined`; `null` when not evaluated (see `skipped`).
    pub result: Option<Outcome>,
    /// Why the route was not evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<RouteSkipped>,
}

/// Why a route was not evaluated on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteSkipped {
    /// `isEnabled` is false.
    Disabled,
    /// The route is for another source.
    OtherSource,
}

/// The fallback route in a [`RouteTestReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FallbackReport {
    /// Its name.
    pub name: String,
    /// Whether it is on.
    pub enabled: bool,
    /// Its endpoint.
    pub endpoint: String,
    /// Condition as written; `null` means `true`.
    pub condition: Option<String>,
    /// Its condition's result; `null` when not evaluated (disabled, or not telemetry).
    pub result: Option<Outcome>,
    /// Whether it sent the message to its endpoint (only when no route matched).
    pub fired: bool,
}

/// An endpoint that would receive the message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    /// Endpoint name.
    pub name: String,
    /// `events`, `serviceBusQueue` or `storageContainer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Routes that sent it there (the fallback by its name; `[]` for the no-routes default).
    pub via: Vec<String>,
    /// Application properties stamped for this endpoint.
    pub enrichments: Vec<StampListing>,
}

/// One stamped enrichment.
#[derive(Debug, Clone, Serialize)]
pub struct StampListing {
    /// Property name.
    pub key: String,
    /// Property value.
    pub value: String,
}

/// `hub route list`: the routing as the hub runs it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingListing {
    /// The hub name `$iothubname` stands for.
    pub hub_name: String,
    /// Routes, in configuration order.
    pub routes: Vec<RouteListing>,
    /// The fallback route; `null` when not configured.
    pub fallback: Option<FallbackListing>,
    /// Endpoints: `events`, then the custom ones.
    pub endpoints: Vec<EndpointListing>,
    /// Enrichments.
    pub enrichments: Vec<EnrichmentListing>,
}

/// A route in a [`RoutingListing`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteListing {
    /// Route name.
    pub name: String,
    /// Route source.
    pub source: &'static str,
    /// Condition as written; `null` means `true`.
    pub condition: Option<String>,
    /// Its endpoint.
    pub endpoint: String,
    /// Whether it is evaluated.
    pub enabled: bool,
}

/// The fallback route in a [`RoutingListing`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FallbackListing {
    /// Its name.
    pub name: String,
    /// Condition as written; `null` means `true`.
    pub condition: Option<String>,
    /// Its endpoint.
    pub endpoint: String,
    /// Whether it is on.
    pub enabled: bool,
}

/// An endpoint in a [`RoutingListing`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointListing {
    /// Endpoint name.
    pub name: String,
    /// `events`, `serviceBusQueue` or `storageContainer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `builtIn`, `serviceBus`, `sqlite`, `amqp`, `azureBlob` or `localDirectory`.
    pub backend: &'static str,
    /// The connection string with every key, password and signature masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Whether the connection string is a local override.
    pub overridden: bool,
    /// Queue endpoints: the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    /// Storage endpoints: the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Storage endpoints: the blob name format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name_format: Option<String>,
    /// Storage endpoints: seconds between blobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_frequency_in_seconds: Option<u64>,
    /// Storage endpoints: largest blob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_chunk_size_in_bytes: Option<u64>,
    /// Storage endpoints: record encoding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<StorageEncoding>,
    /// Keys of the enrichments stamped on this endpoint's messages.
    pub enrichments: Vec<String>,
}

/// An enrichment in a [`RoutingListing`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrichmentListing {
    /// Property name.
    pub key: String,
    /// Value as configured.
    pub value: String,
    /// Endpoints it applies to.
    pub endpoint_names: Vec<String>,
}

impl Routing {
    fn endpoint_name(&self, id: EndpointId) -> String {
        self.endpoints[id.0].name.clone()
    }

    /// `hub route test`: evaluates `message` (of `source`, with its twin if known) against every
    /// route and reports each result, the endpoints it would reach with their enrichments, and the
    /// fallback decision.
    pub fn describe<M: MessageView + ?Sized>(
        &self,
        message: &M,
        source: MessageSource,
        twin: Option<&serde_json::Value>,
    ) -> RouteTestReport {
        let mut decision = Decision::new();
        self.route(message, source, twin, &mut decision);
        let table = &self.tables[source_slot(source)];
        let routes = self
            .routes
            .iter()
            .enumerate()
            .map(|(index, route)| {
                let position = table.routes.iter().position(|r| r.0 == index);
                let skipped = if !route.enabled {
                    Some(RouteSkipped::Disabled)
                } else if route.source != RouteSource::Message(source) {
                    Some(RouteSkipped::OtherSource)
                } else {
                    None
                };
                RouteReport {
                    name: route.name.clone(),
                    source: route.source.as_str(),
                    condition: route.condition.clone(),
                    endpoint: self.endpoint_name(route.endpoint),
                    result: position.and_then(|i| decision.outcomes.get(i).copied()),
                    skipped,
                }
            })
            .collect();
        let fallback = self.fallback.as_ref().map(|fallback| FallbackReport {
            name: fallback.name.clone(),
            enabled: fallback.enabled,
            endpoint: self.endpoint_name(fallback.endpoint),
            condition: fallback.condition.clone(),
            result: if table.has_fallback {
                decision.outcomes.last().copied()
            } else {
                None
            },
            fired: decision.fallback_fired(),
        });
        let endpoints = decision
            .targets()
            .iter()
            .map(|&target| {
                let mut via: Vec<String> = decision
                    .matched_routes()
                    .iter()
                    .filter(|r| self.routes[r.0].endpoint == target)
                    .map(|r| self.routes[r.0].name.clone())
                    .collect();
                if decision.fallback_fired()
                    && let Some(fallback) = &self.fallback
                {
                    via.push(fallback.name.clone());
                }
                TargetReport {
                    name: self.endpoint_name(target),
                    kind: self.endpoints[target.0].kind.type_name(),
                    via,
                    enrichments: self
                        .enrichments(target, source, twin)
                        .map(|stamp| StampListing {
                            key: stamp.key.to_owned(),
                            value: stamp.value.into_owned(),
                        })
                        .collect(),
                }
            })
            .collect();
        RouteTestReport {
            source: source.routing_source(),
            routes,
            fallback,
            endpoints,
            orphaned: decision.orphaned(),
            default_events: decision.default_events(),
            body_error: decision.body_error().map(ToString::to_string),
        }
    }

    /// `hub route list`: routes, endpoints (kinds, redacted connection strings), fallback and
    /// enrichments.
    pub fn list(&self) -> RoutingListing {
        RoutingListing {
            hub_name: self.hub_name.clone(),
            routes: self
                .routes
                .iter()
                .map(|route| RouteListing {
                    name: route.name.clone(),
                    source: route.source.as_str(),
                    condition: route.condition.clone(),
                    endpoint: self.endpoint_name(route.endpoint),
                    enabled: route.enabled,
                })
                .collect(),
            fallback: self.fallback.as_ref().map(|fallback| FallbackListing {
                name: fallback.name.clone(),
                condition: fallback.condition.clone(),
                endpoint: self.endpoint_name(fallback.endpoint),
                enabled: fallback.enabled,
            }),
            endpoints: self
                .endpoints
                .iter()
                .map(|endpoint| {
                    let storage = endpoint.storage();
                    EndpointListing {
                        name: endpoint.name.clone(),
                        kind: endpoint.kind.type_name(),
                        backend: endpoint.kind.backend_name(),
                        connection_string: endpoint.redacted_connection_string(),
                        overridden: endpoint.overridden,
                        queue_name: endpoint.queue_name.clone(),
                        container_name: storage.map(|s| s.container_name.clone()),
                        file_name_format: storage.map(|s| s.file_name_format.clone()),
                        batch_frequency_in_seconds: storage.map(|s| s.batch_frequency.as_secs()),
                        max_chunk_size_in_bytes: storage.map(|s| s.max_chunk_size_bytes),
                        encoding: storage.map(|s| s.encoding),
                        enrichments: endpoint
                            .enrichments
                            .iter()
                            .map(|&i| self.enrichments[i].key.clone())
                            .collect(),
                    }
                })
                .collect(),
            enrichments: self
                .enrichments
                .iter()
                .map(|enrichment| EnrichmentListing {
                    key: enrichment.key.clone(),
                    value: enrichment.text.clone(),
                    endpoint_names: enrichment
                        .endpoints
                        .iter()
                        .map(|&id| self.endpoint_name(id))
                        .collect(),
                })
                .collect(),
        }
    }
}
