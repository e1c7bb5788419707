//! The web console: a page bundled in the binary (`services/hub/console/`) and the two calls only it
//! needs. Everything else it shows comes from the APIs the CLI uses (`/devices`, `/events`). The
//! page signs its own SAS tokens with a policy key the user types; the key never reaches the hub.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use iothub_protocol::MessageSource;
use iothub_query::Severity;
use serde::{Deserialize, Serialize};

use super::{ApiError, authorization};
use crate::config::Right;
use crate::metrics::{EndpointLabel, RouteLabel};
use crate::route_test::{RoutingMessage, simple_message, test_route};
use crate::state::Hub;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// Largest route test request (a message is at most 256 KB; its JSON form a little more).
pub(crate) const MAX_TEST_BYTES: usize = 1024 * 1024;

/// Mounts the console under `/console`.
pub(crate) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/console", web::get().to(redirect))
        .route("/console/", web::get().to(index))
        .route("/console/app.js", web::get().to(script))
        .route("/console/app.css", web::get().to(style))
        .route("/console/api/info", web::get().to(info))
        .route("/console/api/overview", web::get().to(overview))
        .route("/console/api/test-route", web::post().to(test));
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // The page loads nothing from elsewhere; say so, so an injected script could not either.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

fn authorize(hub: &Hub, request: &HttpRequest) -> Result<(), ApiError> {
    hub.auth
        .service(authorization(request), Right::ServiceConnect, SystemTime::now())
        .map(|_| ())
        .map_err(ApiError::from)
}

/// What the login form needs before any key is typed: no secret in it.
async fn info(hub: web::Data<Arc<Hub>>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "hubName": hub.config.hub_name,
        "hostName": hub.config.host_names.first().cloned().unwrap_or_default(),
    }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Overview {
    hub_name: String,
    host_name: String,
    devices: DeviceCounts,
    messages: MessageCounts,
    routes: Vec<RouteView>,
    fallback: Option<RouteView>,
    endpoints: Vec<EndpointView>,
    enrichments: Vec<crate::routing::EnrichmentListing>,
}

#[derive(Debug, Serialize)]
struct DeviceCounts {
    total: usize,
    connected: usize,
}

#[derive(Debug, Serialize)]
struct MessageCounts {
    received: u64,
    refused: u64,
    orphaned: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RouteView {
    name: String,
    source: &'static str,
    condition: String,
    endpoint_names: Vec<String>,
    is_enabled: bool,
    /// Messages it matched since the hub started.
    matched: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointView {
    name: String,
    kind: &'static str,
    health: &'static str,
    last_known_error: Option<String>,
    last_known_error_time: Option<String>,
    backlog: u64,
    /// Messages delivered since the hub started (for `events`: accepted into the stream).
    delivered: u64,
}

/// Counters since start, for the page to turn into rates; the routing as loaded, connection
/// strings left out.
async fn overview(hub: web::Data<Arc<Hub>>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&hub, &request)?;
    let routing = hub.routing.current();
    let listing = routing.list();
    let metrics = &hub.routing.metrics();
    let matched = |name: &str| {
        metrics
            .route_matched
            .get_or_create(&RouteLabel {
                route: name.to_owned(),
            })
            .get()
    };
    let routes = listing
        .routes
        .iter()
        .map(|route| RouteView {
            name: route.name.clone(),
            source: route.source,
            condition: route.condition.clone().unwrap_or_else(|| "true".to_owned()),
            endpoint_names: vec![route.endpoint.clone()],
            is_enabled: route.enabled,
            matched: matched(&route.name),
        })
        .collect();
    let fallback = listing.fallback.as_ref().map(|fallback| RouteView {
        name: fallback.name.clone(),
        source: MessageSource::Telemetry.routing_source(),
        condition: fallback.condition.clone().unwrap_or_else(|| "true".to_owned()),
        endpoint_names: vec![fallback.endpoint.clone()],
        is_enabled: fallback.enabled,
        matched: matched(&fallback.name),
    });
    let health = hub.routing.health();
    let endpoints = listing
        .endpoints
        .iter()
        .map(|endpoint| {
            let report = health.iter().find(|h| h.endpoint_id == endpoint.name);
            let delivered = if endpoint.kind == "events" {
                hub.ingest.stats().to_events()
            } else {
                metrics
                    .delivered
                    .get_or_create(&EndpointLabel {
                        endpoint: endpoint.name.clone(),
                    })
                    .get()
            };
            EndpointView {
                name: endpoint.name.clone(),
                kind: endpoint.kind,
                health: report.map_or("healthy", |r| r.health_status.as_str()),
                last_known_error: report.and_then(|r| r.last_known_error.clone()),
                last_known_error_time: report.and_then(|r| r.last_known_error_time.clone()),
                backlog: report.map_or(0, |r| r.backlog),
                delivered,
            }
        })
        .collect();
    let stats = hub.ingest.stats();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Overview {
            hub_name: listing.hub_name.clone(),
            host_name: hub.config.host_names.first().cloned().unwrap_or_default(),
            devices: DeviceCounts {
                total: hub.registry.len(),
                connected: hub.live.len(),
            },
            messages: MessageCounts {
                received: stats.received(),
                refused: stats.refused(),
                orphaned: metrics.orphaned.get(),
            },
            routes,
            fallback,
            endpoints,
            enrichments: listing.enrichments,
        }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestRequest {
    condition: String,
    #[serde(default)]
    message: Option<RoutingMessage>,
    /// `DeviceMessages` (the default) or another routing source.
    #[serde(default)]
    routing_source: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TestResponse {
    /// `true`, `false`, `undefined`, or `error` when the condition does not compile.
    result: &'static str,
    compilation_errors: Vec<iothub_query::CompileError>,
    /// Why `$body` was undefined, if it was.
    body_error: Option<String>,
    /// Where the loaded routing would send the message (fallback included).
    endpoints: Vec<String>,
}

/// The route tester: one condition on one message (IoT Hub's Test Route API), and where the
/// loaded routing would send that message.
async fn test(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    authorize(&hub, &request)?;
    if body.len() > MAX_TEST_BYTES {
        return Err(ApiError::bad_request(
            "too_large",
            format!("a route test is at most {MAX_TEST_BYTES} bytes"),
        ));
    }
    let test: TestRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"condition\", \"message\": {{\"body\", \"appProperties\", \"systemProperties\"}}}}: {e}"),
        )
    })?;
    let source = match test.routing_source.as_deref() {
        None => MessageSource::Telemetry,
        Some(name) => MessageSource::from_routing_source(name).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_routing_source",
                format!("unknown routing source '{name}'"),
            )
        })?,
    };
    let message = simple_message(test.message.unwrap_or_default(), None)
        .map_err(|e| ApiError::bad_request("invalid_message", e.to_string()))?;
    let (result, body_error) = test_route(&test.condition, &message);
    let errors = result.details.compilation_errors;
    let failed = errors.iter().any(|e| e.severity == Severity::Error);
    let report = hub.routing.current().describe(&message, source, None);
    Ok(HttpResponse::Ok().json(TestResponse {
        result: if failed { "error" } else { result.result.as_str() },
        compilation_errors: errors,
        body_error: body_error.map(|e| e.to_string()).or(report.body_error),
        endpoints: report.endpoints.into_iter().map(|e| e.name).collect(),
    }))
}
