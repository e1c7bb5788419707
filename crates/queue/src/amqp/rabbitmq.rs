//! The `amqp` backend: any AMQP 1.0 broker, with RabbitMQ 3.x (`rabbitmq_amqp1_0`) as the default
//! profile.
//!
//! RabbitMQ profile: queues are pre-declared (durable quorum queues with `x-delivery-limit` and a
//! dead-letter exchange routing to `<queue>.dlq`, see `scripts/services/rabbitmq`) and addressed as
//! `/amq/queue/<name>`; `<name>/$deadletterqueue` maps to `/amq/queue/<name>.dlq`. Abandon is
//! `released` (`modified` ends the session there), dead-letter is `rejected` (the broker drops the
//! reason), and a redelivery shows as `first-acquirer = false` since the delivery count stays 0.
//! There is no lock expiry: a delivery stays locked until settled or until its link closes.

use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::link::receiver::TerminalDeliveryState;
use fe2o3_amqp::types::definitions::{self, ErrorCondition};
use fe2o3_amqp::types::messaging::{Modified, Rejected, Released};
use fe2o3_amqp::types::primitives::{OrderedMap, Symbol, Value};

use super::Dialect;
use super::connection::{Connector, Endpoint};
use super::queue::AmqpQueue;
use crate::{AmqpConfig, AmqpProfile, Backend, DEAD_LETTER_SUFFIX, Error, Queue, QueueOptions, Result};

const BACKEND: &str = "amqp";

#[derive(Debug)]
pub(crate) struct RabbitMqDialect {
    profile: AmqpProfile,
    credit: u32,
    max_message_size: usize,
}

#[async_trait::async_trait]
impl Dialect for RabbitMqDialect {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn address(&self, queue: &str) -> String {
        match (self.profile, queue.strip_suffix(DEAD_LETTER_SUFFIX)) {
            (AmqpProfile::RabbitMq, Some(base)) => format!("/amq/queue/{base}.dlq"),
            (AmqpProfile::RabbitMq, None) => format!("/amq/queue/{queue}"),
            (AmqpProfile::Generic, _) => queue.to_owned(),
        }
    }

    fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    fn credit(&self) -> u32 {
        self.credit
    }

    fn counts_deliveries(&self) -> bool {
        false
    }

    fn abandon_state(&self) -> TerminalDeliveryState {
        match self.profile {
            AmqpProfile::RabbitMq => TerminalDeliveryState::Released(Released {}),
            AmqpProfile::Generic => TerminalDeliveryState::Modified(Modified {
                delivery_failed: Some(true),
                undeliverable_here: Some(false),
                message_annotations: None,
            }),
        }
    }

    fn dead_letter_state(&self, reason: &str, description: &str) -> TerminalDeliveryState {
        let error = match self.profile {
            AmqpProfile::RabbitMq => None,
            AmqpProfile::Generic => {
                let mut info = OrderedMap::new();
                info.insert(Symbol::from("DeadLetterReason"), Value::String(reason.to_owned()));
                info.insert(
                    Symbol::from("DeadLetterErrorDescription"),
                    Value::String(description.to_owned()),
                );
                Some(definitions::Error {
                    condition: ErrorCondition::Custom(Symbol::from("dead-letter")),
                    description: Some(description.to_owned()),
                    info: Some(Box::new(info)),
                })
            }
        };
        TerminalDeliveryState::Rejected(Rejected { error })
    }

    async fn renew_lock(&self, _: &Arc<Connector>, _: &str, _: Option<uuid::Uuid>) -> Result<SystemTime> {
        Err(Error::Unsupported {
            backend: BACKEND,
            operation: "renew_lock",
            reason: "the broker has no lock expiry: a delivery stays locked until settled or its link closes",
        })
    }
}

/// Client of one AMQP 1.0 broker.
#[derive(Debug)]
pub(crate) struct AmqpBackend {
    dialect: Arc<RabbitMqDialect>,
    connector: Arc<Connector>,
}

impl AmqpBackend {
    pub(crate) async fn connect(config: AmqpConfig) -> Result<Self> {
        let hostname = match config.profile {
            AmqpProfile::RabbitMq => format!("vhost:{}", config.vhost),
            AmqpProfile::Generic => config.host.clone(),
        };
        let connector = Connector::new(Endpoint {
            backend: BACKEND,
            host: config.host.clone(),
            port: config.port,
            tls: config.tls,
            plain: Some((config.user.clone(), config.password.clone())),
            hostname,
        });
        connector.ensure_open().await?;
        let dialect = Arc::new(RabbitMqDialect {
            profile: config.profile,
            credit: config.credit,
            max_message_size: config.max_message_size,
        });
        Ok(Self { dialect, connector })
    }
}

#[async_trait::async_trait]
impl Backend for AmqpBackend {
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
            reason: "declare broker queues with the broker's tools (scripts/services/rabbitmq shows a quorum queue \
                     with a delivery limit and a dead-letter queue)",
        })
    }

    async fn close(&self) {
        self.connector.close().await;
    }
}
