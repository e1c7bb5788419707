//! The hub's HTTP API, served over HTTPS (and optionally plain HTTP on loopback): device telemetry,
//! the registry, the events stream, and MQTT over WebSockets.

mod console;
mod error;
mod events;
mod health;
mod registry;
mod telemetry;
mod websocket;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpServer, web};

pub use error::ApiError;

use crate::state::Hub;

/// The `Authorization` header, if any.
pub(crate) fn authorization(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// IoT Hub refuses REST calls without `api-version`; so does this hub (any value is accepted).
pub(crate) fn require_api_version(request: &HttpRequest) -> Result<(), ApiError> {
    let has_version = request
        .query_string()
        .split('&')
        .any(|pair| pair.starts_with("api-version=") && pair.len() > 12);
    if has_version {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "api_version_missing",
            "add ?api-version=2021-04-12 to the request",
        ))
    }
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/devices", web::get().to(registry::list_devices))
        .route("/devices/{id}", web::put().to(registry::put_device))
        .route("/devices/{id}", web::get().to(registry::get_device))
        .route("/devices/{id}", web::delete().to(registry::delete_device))
        .route(
            "/devices/{id}/messages/events",
            web::post().to(telemetry::send_event),
        )
        .route("/events", web::get().to(events::stream_events))
        .route("/routingEndpointsHealth", web::get().to(health::endpoints_health))
        .route("/$iothub/websocket", web::get().to(websocket::upgrade))
        .configure(console::routes);
}

/// Starts the API server on `listener`, with TLS when `tls` is given. It stops when the hub's
/// shutdown fires, letting requests in progress finish within `grace`.
pub fn serve(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    hub: Arc<Hub>,
    grace: Duration,
) -> std::io::Result<Server> {
    let body_limit = hub.config.limits.max_message_bytes + 1024;
    let shutdown = hub.shutdown.wait_owned();
    let data = web::Data::new(hub);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .configure(routes)
    })
    .workers(2)
    .disable_signals()
    .shutdown_signal(shutdown)
    .shutdown_timeout(grace.as_secs().max(1));
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}
