//! Logs and traces: a tracing subscriber printing plain text or JSON, an OpenTelemetry OTLP exporter
//! when an endpoint is configured, and W3C trace context (`traceparent`) in and out of messages.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Logging and tracing settings, shared by every service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `plain` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,hub=debug`.
    pub log_level: String,
    /// OTLP/HTTP endpoint for traces (e.g. `http://otel-collector:4318/v1/traces`); none disables export.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Plain,
            log_level: "info".to_owned(),
            otlp_endpoint: None,
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log_level` is not a valid filter.
    #[error("telemetry.log_level {level:?} is not a valid filter: {reason}")]
    Filter {
        /// The filter text.
        level: String,
        /// Why.
        reason: String,
    },
    /// The OTLP exporter could not be built.
    #[error("telemetry.otlp_endpoint: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the trace exporter alive; flushes spans when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Best effort at exit: there is nobody left to tell if the collector is gone.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber for `service`. Call once, from `main`.
pub fn init(config: &TelemetryConfig, service: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_level).map_err(|e| TelemetryError::Filter {
        level: config.log_level.clone(),
        reason: e.to_string(),
    })?;
    let fmt = match config.log_format {
        LogFormat::Plain => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

/// Trace context carried with a message: its W3C `traceparent` and optional `tracestate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: Option<String>,
    /// Vendor state, passed through.
    pub tracestate: Option<String>,
}

struct Headers<'a>(&'a HashMap<String, String>);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct Collect<'a>(&'a mut HashMap<String, String>);

impl Injector for Collect<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl TraceContext {
    /// Makes `span` a child of this context (no-op when there is none or it does not parse).
    pub fn set_as_parent_of(&self, span: &tracing::Span) {
        let Some(traceparent) = &self.traceparent else {
            return;
        };
        let mut headers = HashMap::from([("traceparent".to_owned(), traceparent.clone())]);
        if let Some(state) = &self.tracestate {
            headers.insert("tracestate".to_owned(), state.clone());
        }
        let context = TraceContextPropagator::new().extract(&Headers(&headers));
        let _ = span.set_parent(context);
    }

    /// The context of `span`, to send on with an outgoing message or request. Empty when tracing
    /// export is off (no valid span context exists then).
    pub fn of(span: &tracing::Span) -> TraceContext {
        let mut headers = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut Collect(&mut headers));
        TraceContext {
            traceparent: headers.remove("traceparent"),
            tracestate: headers.remove("tracestate"),
        }
    }
}
