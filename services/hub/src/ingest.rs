//! Accepting a device message: stamp what IoT Hub stamps, check the size, make it durable in the
//! built-in `events` stream, and only then let the transport acknowledge it.

use std::time::Instant;

use iothub_protocol::{Message, MessageSource, Timestamp};

use crate::auth::DeviceIdentity;
use crate::events::{AppendError, Journal};
use crate::metrics::{HubMetrics, MessageLabel, OutcomeLabel};

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

/// Where device messages go.
#[derive(Debug, Clone)]
pub struct Ingest {
    journal: Journal,
    metrics: HubMetrics,
    max_message_bytes: usize,
}

impl Ingest {
    /// An ingest path writing to `journal`.
    pub fn new(journal: Journal, metrics: HubMetrics, max_message_bytes: usize) -> Self {
        Ingest {
            journal,
            metrics,
            max_message_bytes,
        }
    }

    /// Stamps `message` as coming from `identity`, checks its size and starts making it durable.
    /// The returned future resolves when the message is committed; drop it only if the message
    /// will never be acknowledged.
    pub fn accept(
        &self,
        identity: &DeviceIdentity,
        mut message: Message,
        label: MessageLabel,
    ) -> impl Future<Output = Result<(), IngestError>> + Send + 'static {
        let started = Instant::now();
        // The size counts what the device sent, before the hub's own stamps.
        let size = message.size();
        let checked = if size > self.max_message_bytes {
            Err(IngestError::TooLarge {
                size,
                limit: self.max_message_bytes,
            })
        } else {
            stamp(&mut message, identity);
            serde_json::to_vec(&message)
                .map_err(|e| IngestError::Store(AppendError::Store(e.to_string())))
                .map(|payload| {
                    (
                        payload,
                        message.system.enqueued_time.map_or(0, |t| t.unix_millis()),
                    )
                })
        };
        let journal = self.journal.clone();
        let metrics = self.metrics.clone();
        let device_id = identity.device.id().to_owned();
        identity.device.touch();
        async move {
            let result = match checked {
                Ok((payload, enqueued_ms)) => journal
                    .append(enqueued_ms, &device_id, payload)
                    .await
                    .map(|_| ())
                    .map_err(IngestError::from),
                Err(e) => Err(e),
            };
            match &result {
                Ok(()) => {
                    metrics.messages_received.get_or_create(&label).inc();
                    metrics.message_bytes_received.inc_by(size as u64);
                    metrics.ack_latency.observe(started.elapsed().as_secs_f64());
                }
                Err(error) => {
                    metrics
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
