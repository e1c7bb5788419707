//! Accepting a message: stamp what IoT Hub stamps, check the size, route it, and make one copy per
//! target endpoint (with that endpoint's enrichments) durable in one transaction — the `events`
//! stream and the outboxes of custom endpoints together. Only then may the transport acknowledge it.
//! An endpoint whose backlog is over its bound slows down the messages routed to it (backpressure).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use iothub_protocol::{MAX_MESSAGE_SIZE, Message, MessageSource, Timestamp};

use crate::auth::DeviceIdentity;
use crate::events::{AppendError, Copy, Destination, Journal, OutboxSignal, payload};
use crate::metrics::{HubMetrics, MessageLabel, OutcomeLabel, RouteLabel, RoutingMetrics};
use crate::routes::LiveRouting;
use crate::routing::{Decision, EndpointKind};

/// Why a message was not accepted. The transport must not acknowledge it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Body and properties exceed the limit (as IoT Hub counts them).
    #[error("the message is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// It could not be stored.
    #[error(transparent)]
    Store(#[from] AppendError),
}

impl IngestError {
    /// A bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            IngestError::TooLarge { .. } => "too_large",
            IngestError::Store(AppendError::Store(_)) => "store_failed",
            IngestError::Store(AppendError::Closed) => "shutting_down",
        }
    }
}

/// Where accepted messages go. Cheap to clone (each accepted message holds one).
#[derive(Debug, Clone)]
pub struct Ingest {
    shared: Arc<Shared>,
}

/// What every clone of an [`Ingest`] shares.
#[derive(Debug)]
pub struct Shared {
    stats: IngestStats,
    journal: Journal,
    routes: Arc<LiveRouting>,
    metrics: HubMetrics,
    routing_metrics: RoutingMetrics,
    max_message_bytes: usize,
    max_backlog: u64,
}

/// Totals since the hub started, for the console (the metrics break them down by label).
#[derive(Debug, Default)]
pub struct IngestStats {
    received: AtomicU64,
    refused: AtomicU64,
    to_events: AtomicU64,
}

impl IngestStats {
    /// Device messages accepted.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Device messages refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Messages (device messages and the hub's own events) committed to the `events` stream.
    pub fn to_events(&self) -> u64 {
        self.to_events.load(Ordering::Relaxed)
    }
}

impl std::ops::Deref for Ingest {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// A routed message, ready to append.
struct Prepared {
    enqueued_ms: i64,
    device_id: String,
    copies: Vec<Copy>,
    /// Outboxes it goes to, for backpressure.
    outboxes: Vec<Arc<OutboxSignal>>,
}

impl Ingest {
    /// An ingest path routing with `routes` and writing to `journal`.
    pub fn new(
        journal: Journal,
        routes: Arc<LiveRouting>,
        metrics: HubMetrics,
        routing_metrics: RoutingMetrics,
        max_message_bytes: usize,
        max_backlog: u64,
    ) -> Self {
        Ingest {
            shared: Arc::new(Shared {
                stats: IngestStats::default(),
                journal,
                routes,
                metrics,
                routing_metrics,
                max_message_bytes,
                max_backlog,
            }),
        }
    }

    /// Stamps `message` as telemetry from `identity`, checks its size, routes it and starts making
    /// it durable. The returned future resolves when every copy is committed; drop it only if the
    /// message will never be acknowledged.
    pub fn accept(
        &self,
        identity: &DeviceIdentity,
        mut message: Message,
        label: MessageLabel,
    ) -> impl Future<Output = Result<(), IngestError>> + Send + 'static {
        let started = Instant::now();
        // The size counts what the device sent, before the hub's own stamps.
        let size = message.size();
        identity.device.touch();
        let prepared = if size > self.max_message_bytes {
            Err(IngestError::TooLarge {
                size,
                limit: self.max_message_bytes,
            })
        } else {
            stamp(&mut message, identity);
            self.prepare(&message)
        };
        let this = self.clone();
        async move {
            let result = match prepared {
                Ok(prepared) => this.commit(prepared).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(()) => {
                    this.stats.received.fetch_add(1, Ordering::Relaxed);
                    this.metrics.messages_received.get_or_create(&label).inc();
                    this.metrics.message_bytes_received.inc_by(size as u64);
                    this.metrics.ack_latency.observe(started.elapsed().as_secs_f64());
                }
                Err(error) => {
                    this.stats.refused.fetch_add(1, Ordering::Relaxed);
                    this.metrics
                        .messages_refused
                        .get_or_create(&OutcomeLabel {
                            outcome: error.label(),
                        })
                        .inc();
                }
            }
            result
        }
    }

    /// Routes and stores a message the hub itself emits (device lifecycle and connection-state
    /// events), already stamped with its source and properties.
    pub fn emit(&self, message: Message) -> impl Future<Output = Result<(), IngestError>> + Send + 'static {
        let prepared = self.prepare(&message);
        let this = self.clone();
        async move { this.commit(prepared?).await }
    }

    /// Routes `message` and serialises one copy per target (enrichments applied per endpoint).
    fn prepare(&self, message: &Message) -> Result<Prepared, IngestError> {
        let routing = self.routes.current();
        let mut decision = Decision::new();
        routing.route_message(message, None, &mut decision);
        self.count(&routing, &decision);
        let source = message.system.message_source;
        // One encoding per destination kind, shared by the copies that carry no enrichment.
        let mut plain_event: Option<Vec<u8>> = None;
        let mut plain_outbox: Option<Vec<u8>> = None;
        let mut copies = Vec::with_capacity(decision.targets().len());
        let mut outboxes = Vec::new();
        for &target in decision.targets() {
            let endpoint = routing.endpoint(target);
            let to_events = matches!(endpoint.kind(), EndpointKind::Events);
            let encode = |m: &Message| {
                if to_events {
                    serialize(m, payload::encode_event)
                } else {
                    serialize(m, payload::encode_outbox)
                }
            };
            let payload = if routing.enrichments(target, source, None).next().is_some() {
                let mut enriched = message.clone();
                routing.enrich(target, None, &mut enriched);
                if enriched.size() > MAX_MESSAGE_SIZE {
                    // IoT Hub drops a message its enrichments take over 256 KB, for that endpoint.
                    tracing::warn!(
                        endpoint = endpoint.name(),
                        "message over 256 KB after enrichment; not sent there"
                    );
                    self.metrics
                        .messages_refused
                        .get_or_create(&OutcomeLabel {
                            outcome: "too_large_enriched",
                        })
                        .inc();
                    continue;
                }
                encode(&enriched)?
            } else {
                let plain = if to_events {
                    &mut plain_event
                } else {
                    &mut plain_outbox
                };
                match plain {
                    Some(bytes) => bytes.clone(),
                    None => plain.insert(encode(message)?).clone(),
                }
            };
            let destination = match endpoint.kind() {
                EndpointKind::Events => Destination::Events,
                _ => {
                    outboxes.push(self.journal.outboxes().signal(endpoint.name()));
                    Destination::Endpoint(Arc::from(endpoint.name()))
                }
            };
            copies.push(Copy { destination, payload });
        }
        Ok(Prepared {
            enqueued_ms: message.system.enqueued_time.map_or(0, |t| t.unix_millis()),
            device_id: message.system.connection_device_id.clone().unwrap_or_default(),
            copies,
            outboxes,
        })
    }

    fn count(&self, routing: &crate::routing::Routing, decision: &Decision) {
        let m = &self.routing_metrics;
        for &route in decision.matched_routes() {
            if let Some(info) = routing.routes().get(route.index()) {
                m.route_matched
                    .get_or_create(&RouteLabel {
                        route: info.name().to_owned(),
                    })
                    .inc();
            }
        }
        if decision.fallback_fired()
            && let Some(fallback) = routing.fallback()
        {
            m.route_matched
                .get_or_create(&RouteLabel {
                    route: fallback.name().to_owned(),
                })
                .inc();
        }
        if decision.orphaned() {
            m.orphaned.inc();
        }
        if decision.body_error().is_some() {
            m.body_errors.inc();
        }
    }

    async fn commit(&self, prepared: Prepared) -> Result<(), IngestError> {
        if prepared.copies.is_empty() {
            // Orphaned (or enriched out): IoT Hub acknowledges and drops it.
            return Ok(());
        }
        for outbox in &prepared.outboxes {
            self.wait_for_room(outbox).await?;
        }
        let to_events = prepared
            .copies
            .iter()
            .any(|copy| copy.destination == Destination::Events);
        self.journal
            .append(prepared.enqueued_ms, &prepared.device_id, prepared.copies)
            .await
            .map_err(IngestError::from)?;
        if to_events {
            self.stats.to_events.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Totals since start.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Waits while `outbox` holds more than the bound (its dispatcher is behind or its endpoint down).
    /// Gives up when the hub shuts down, since the dispatchers stop then and room would never come:
    /// the message is not acknowledged and the device sends it again.
    async fn wait_for_room(&self, outbox: &OutboxSignal) -> Result<(), IngestError> {
        loop {
            let drained = outbox.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if outbox.backlog() <= self.max_backlog {
                return Ok(());
            }
            tokio::select! {
                () = drained => {}
                () = self.routes.shutdown().wait() => return Err(AppendError::Closed.into()),
            }
        }
    }
}

fn serialize(
    message: &Message,
    encode: fn(&Message) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, IngestError> {
    encode(message).map_err(|e| IngestError::Store(AppendError::Store(e)))
}

/// What IoT Hub stamps on every device message: connection ids, auth method, generation id,
/// enqueued time and source. The device's own values for these are replaced (anti-spoofing).
fn stamp(message: &mut Message, identity: &DeviceIdentity) {
    let system = &mut message.system;
    system.connection_device_id = Some(identity.device.id().to_owned());
    system.connection_module_id = identity.module_id.clone();
    system.connection_auth_method = Some(identity.auth_method.clone());
    system.connection_device_generation_id = Some(identity.device.generation_id().to_owned());
    system.enqueued_time = Some(Timestamp::now());
    system.message_source = MessageSource::Telemetry;
}
