//! The hub's Prometheus metrics. Labels are bounded: transport, QoS, outcome reason; never a device id.

use service_kit::metrics::{
    Counter, EncodeLabelSet, Family, Gauge, Histogram, Metrics, Unit, latency_buckets,
};

/// Labels naming a transport: `mqtt_tls`, `mqtt_tcp`, `mqtt_ws`, `https`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransportLabel {
    /// The transport.
    pub transport: &'static str,
}

/// Labels of a connection attempt's outcome: `ok` or the refusal reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok`, or why it was refused.
    pub outcome: &'static str,
}

/// Labels of a received message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MessageLabel {
    /// The transport.
    pub transport: &'static str,
    /// `0` or `1` for MQTT; `1` for HTTPS (acknowledged).
    pub qos: &'static str,
}

/// Labels naming an endpoint (bounded: at most 10 custom endpoints plus `events`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabel {
    /// The endpoint's name.
    pub endpoint: String,
}

/// Labels naming a route (bounded: at most 100 routes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route's name (`$fallback` for the fallback route).
    pub route: String,
}

/// Routing and delivery metrics.
#[derive(Debug, Clone)]
pub struct RoutingMetrics {
    /// Messages a route matched (true condition).
    pub route_matched: Family<RouteLabel, Counter>,
    /// Messages that matched no route with the fallback off (IoT Hub's orphaned messages).
    pub orphaned: Counter,
    /// Messages whose route conditions read an unreadable body (IoT Hub's RouteEvaluationError).
    pub body_errors: Counter,
    /// Messages delivered to an endpoint.
    pub delivered: Family<EndpointLabel, Counter>,
    /// Failed delivery attempts (each is retried).
    pub delivery_failures: Family<EndpointLabel, Counter>,
    /// Messages waiting for an endpoint.
    pub backlog: Family<EndpointLabel, Gauge>,
    /// Time from acceptance to delivery.
    pub delivery_latency: Family<EndpointLabel, Histogram>,
    /// Endpoint health: 1 for the current status of each endpoint.
    pub health: Family<EndpointHealthLabel, Gauge>,
}

/// Labels of the endpoint health gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointHealthLabel {
    /// The endpoint's name.
    pub endpoint: String,
    /// `healthy`, `unhealthy`, `degraded`, `dead` or `unknown`.
    pub status: &'static str,
}

impl RoutingMetrics {
    /// Creates the metrics and registers them (under the `hub_` prefix).
    pub fn new(registry: &Metrics) -> Self {
        let metrics = RoutingMetrics {
            route_matched: Family::default(),
            orphaned: Counter::default(),
            body_errors: Counter::default(),
            delivered: Family::default(),
            delivery_failures: Family::default(),
            backlog: Family::default(),
            delivery_latency: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            health: Family::default(),
        };
        registry.register(|r| {
            r.register(
                "route_matched",
                "Messages a route matched",
                metrics.route_matched.clone(),
            );
            r.register(
                "messages_orphaned",
                "Messages no route matched, with the fallback off",
                metrics.orphaned.clone(),
            );
            r.register(
                "route_body_errors",
                "Messages whose body route conditions could not read",
                metrics.body_errors.clone(),
            );
            r.register(
                "endpoint_delivered",
                "Messages delivered to an endpoint",
                metrics.delivered.clone(),
            );
            r.register(
                "endpoint_delivery_failures",
                "Failed delivery attempts (retried)",
                metrics.delivery_failures.clone(),
            );
            r.register(
                "endpoint_backlog",
                "Messages waiting for an endpoint",
                metrics.backlog.clone(),
            );
            r.register_with_unit(
                "endpoint_delivery_latency",
                "Time from accepting a message to delivering it to the endpoint",
                Unit::Seconds,
                metrics.delivery_latency.clone(),
            );
            r.register(
                "endpoint_health",
                "1 for each endpoint's current health status",
                metrics.health.clone(),
            );
        });
        metrics
    }
}

/// Every metric the hub exports.
#[derive(Debug, Clone)]
pub struct HubMetrics {
    /// Open device connections.
    pub connections: Family<TransportLabel, Gauge>,
    /// Connection attempts by outcome.
    pub connects: Family<OutcomeLabel, Counter>,
    /// Connections closed by the hub for a protocol violation, by reason.
    pub protocol_errors: Family<OutcomeLabel, Counter>,
    /// Device messages accepted.
    pub messages_received: Family<MessageLabel, Counter>,
    /// Bytes of accepted device messages (body and properties).
    pub message_bytes_received: Counter,
    /// Messages refused (too large, store failure, ...), by reason.
    pub messages_refused: Family<OutcomeLabel, Counter>,
    /// Time from receiving a message to its acknowledgement (PUBACK or HTTP 204).
    pub ack_latency: Histogram,
}

impl HubMetrics {
    /// Creates the metrics and registers them in `registry` (under the `hub_` prefix).
    pub fn new(registry: &Metrics) -> Self {
        let metrics = HubMetrics {
            connections: Family::default(),
            connects: Family::default(),
            protocol_errors: Family::default(),
            messages_received: Family::default(),
            message_bytes_received: Counter::default(),
            messages_refused: Family::default(),
            ack_latency: Histogram::new(latency_buckets()),
        };
        registry.register(|r| {
            r.register(
                "connections",
                "Open device connections",
                metrics.connections.clone(),
            );
            r.register(
                "connects",
                "Device connection attempts by outcome",
                metrics.connects.clone(),
            );
            r.register(
                "protocol_errors",
                "Connections closed for a protocol violation",
                metrics.protocol_errors.clone(),
            );
            r.register(
                "messages_received",
                "Device messages accepted",
                metrics.messages_received.clone(),
            );
            r.register_with_unit(
                "message_received",
                "Bytes of accepted device messages",
                Unit::Bytes,
                metrics.message_bytes_received.clone(),
            );
            r.register(
                "messages_refused",
                "Device messages refused, by reason",
                metrics.messages_refused.clone(),
            );
            r.register_with_unit(
                "ack_latency",
                "Time from receiving a device message to acknowledging it",
                Unit::Seconds,
                metrics.ack_latency.clone(),
            );
        });
        metrics
    }
}
