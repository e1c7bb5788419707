//! Azure Service Bus over AMQP 1.0, as `shared/spec/servicebus-amqp.md` maps peek-lock:
//!
//! - TLS (`amqps`, 5671) with rustls, or plain AMQP for the emulator (`UseDevelopmentEmulator=true`);
//!   SASL ANONYMOUS, then a CBS put-token per entity, renewed before it expires.
//! - Receive links on `<queue>` / `<queue>/$deadletterqueue` in peek-lock (unsettled, settle mode first).
//! - Lock token: the 16-byte delivery tag read as a .NET GUID, else the `x-opt-lock-token` delivery
//!   annotation; `x-opt-locked-until`, `x-opt-enqueued-time`, `x-opt-sequence-number` annotations.
//! - complete = `accepted`; abandon = `modified{delivery-failed}`; dead-letter = `rejected` with
//!   `com.microsoft:dead-letter` and `DeadLetterReason` / `DeadLetterErrorDescription`.
//! - Renew lock on `<queue>/$management` (`com.microsoft:renew-lock`).
//!
//! Message counts are not served over AMQP (they come from the ARM / ATOM management API), so `len`
//! and `dead_letter_len` say so; peek is not implemented yet (`com.microsoft:peek-message`).

mod cbs;
mod management;
pub(crate) mod sas;

use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::link::receiver::TerminalDeliveryState;
use fe2o3_amqp::types::definitions::{self, ErrorCondition};
use fe2o3_amqp::types::messaging::{Modified, Rejected};
use fe2o3_amqp::types::primitives::{OrderedMap, Symbol, Value};
use fe2o3_amqp_types::messaging::annotations::OwnedKey;

use self::cbs::Cbs;
use self::management::Management;
use crate::amqp::connection::Endpoint;
use crate::amqp::convert::annotation_time;
use crate::amqp::queue::AmqpQueue;
use crate::amqp::receiver::AmqpDelivery;
use crate::amqp::{Connector, Dialect};
use crate::{Backend, Error, Queue, QueueOptions, Result, ServiceBusConfig};

const BACKEND: &str = "servicebus";
/// Rejected-outcome condition that dead-letters a message.
pub(crate) const DEAD_LETTER_CONDITION: &str = "com.microsoft:dead-letter";

#[derive(Debug)]
pub(crate) struct ServiceBusDialect {
    cbs: Arc<Cbs>,
    management: Management,
    credit: u32,
    max_message_size: usize,
}

#[async_trait::async_trait]
impl Dialect for ServiceBusDialect {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn address(&self, queue: &str) -> String {
        queue.to_owned()
    }

    fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    fn credit(&self) -> u32 {
        self.credit
    }

    async fn authorize(&self, connector: &Arc<Connector>, queue: &str) -> Result<()> {
        self.cbs.authorize(connector, queue).await
    }

    fn counts_deliveries(&self) -> bool {
        true
    }

    fn abandon_state(&self) -> TerminalDeliveryState {
        TerminalDeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            undeliverable_here: Some(false),
            message_annotations: None,
        })
    }

    fn dead_letter_state(&self, reason: &str, description: &str) -> TerminalDeliveryState {
        let mut info = OrderedMap::new();
        info.insert(
            Symbol::from(crate::DEAD_LETTER_REASON),
            Value::String(reason.to_owned()),
        );
        info.insert(
            Symbol::from(crate::DEAD_LETTER_DESCRIPTION),
            Value::String(description.to_owned()),
        );
        TerminalDeliveryState::Rejected(Rejected {
            error: Some(definitions::Error {
                condition: ErrorCondition::Custom(Symbol::from(DEAD_LETTER_CONDITION)),
                description: Some(description.to_owned()),
                info: Some(Box::new(info)),
            }),
        })
    }

    fn lock_of(&self, delivery: &AmqpDelivery) -> (Option<uuid::Uuid>, Option<SystemTime>) {
        let message = delivery.message();
        let lock = lock_token(
            delivery.delivery_tag(),
            message.delivery_annotations.as_ref().map(|d| &d.0),
        );
        let until = annotation_time(message.message_annotations.as_ref(), "x-opt-locked-until");
        (lock, until)
    }

    async fn renew_lock(
        &self,
        connector: &Arc<Connector>,
        queue: &str,
        lock: Option<uuid::Uuid>,
    ) -> Result<SystemTime> {
        let lock = lock.ok_or(Error::Unsupported {
            backend: BACKEND,
            operation: "renew_lock",
            reason: "the delivery carried no lock token",
        })?;
        self.cbs.authorize(connector, queue).await?;
        // A dead-letter queue has its own node: `<queue>/$deadletterqueue/$management`.
        self.management.renew_lock(connector, queue, lock).await
    }

    async fn count(&self, _: &Arc<Connector>, _: &str) -> Result<u64> {
        Err(Error::Unsupported {
            backend: BACKEND,
            operation: "len",
            reason: "Service Bus serves message counts through its management REST API, not AMQP",
        })
    }
}

/// The lock token of a delivery: a 16-byte tag is a .NET GUID (little-endian first three fields);
/// otherwise the `x-opt-lock-token` delivery annotation.
pub(crate) fn lock_token(
    tag: &[u8],
    delivery_annotations: Option<&OrderedMap<OwnedKey, Value>>,
) -> Option<uuid::Uuid> {
    if let Ok(bytes) = <[u8; 16]>::try_from(tag) {
        return Some(uuid::Uuid::from_bytes_le(bytes));
    }
    match delivery_annotations?.get(&OwnedKey::Symbol(Symbol::from("x-opt-lock-token")))? {
        Value::Uuid(u) => Some(uuid::Uuid::from_bytes(u.clone().into_inner())),
        _ => None,
    }
}

/// Client of one Service Bus namespace.
#[derive(Debug)]
pub(crate) struct ServiceBusBackend {
    dialect: Arc<ServiceBusDialect>,
    connector: Arc<Connector>,
}

pub(crate) async fn connect(config: ServiceBusConfig) -> Result<ServiceBusBackend> {
    let connector = Connector::new(Endpoint {
        backend: BACKEND,
        host: config.host.clone(),
        port: config.port,
        tls: !config.emulator,
        plain: None,
        hostname: config.host.clone(),
    });
    connector.ensure_open().await?;
    let dialect = Arc::new(ServiceBusDialect {
        cbs: Cbs::new(&config),
        management: Management::default(),
        credit: config.credit,
        max_message_size: config.max_message_size,
    });
    Ok(ServiceBusBackend { dialect, connector })
}

#[async_trait::async_trait]
impl Backend for ServiceBusBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn queue(&self, name: &str) -> Result<Arc<dyn Queue>> {
        let queue = AmqpQueue::open(Arc::clone(&self.dialect), Arc::clone(&self.connector), name).await?;
        Ok(queue)
    }

    async fn create_queue(&self, _name: &str, _options: &QueueOptions) -> Result<()> {
        Err(Error::Unsupported {
            backend: BACKEND,
            operation: "create_queue",
            reason: "create Service Bus queues in Azure (portal, ARM/Bicep, az servicebus queue create) or in the \
                     emulator's Config.json",
        })
    }

    async fn close(&self) {
        self.dialect.management.close().await;
        self.connector.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::lock_token;

    #[test]
    fn a_16_byte_tag_is_a_dotnet_guid() {
        let tag = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
        ];
        let lock = lock_token(&tag, None).unwrap();
        assert_eq!(lock.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
    }

    #[test]
    fn a_short_tag_falls_back_to_the_annotation() {
        assert_eq!(lock_token(&[1, 0, 0, 0], None), None);
    }
}
