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
