//! Requests on `<queue>/$management`: `com.microsoft:renew-lock`. One request in flight per
//! management link (fe2o3-amqp-management does not match replies by correlation id), so each queue's
//! link sits behind a mutex.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Message};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Value};
use fe2o3_amqp_management::client::MgmtClient;
use fe2o3_amqp_management::error::Error as MgmtError;
use fe2o3_amqp_management::request::Request;
use fe2o3_amqp_management::response::Response;
use tokio::sync::Mutex;

use crate::amqp::Connector;
use crate::amqp::connection::{bounded, end_session};
use crate::amqp::convert::timestamp_to_system_time;
use crate::error::{Error, Result};

const BACKEND: &str = "servicebus";
pub(crate) const RENEW_LOCK: &str = "com.microsoft:renew-lock";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of `com.microsoft:renew-lock`: `{"lock-tokens": uuid[]}`.
#[derive(Debug)]
pub(crate) struct RenewLock {
    pub(crate) locks: Vec<uuid::Uuid>,
}

impl Request for RenewLock {
    const OPERATION: &'static str = RENEW_LOCK;
    type Response = RenewLockResponse;
    type Body = AmqpValue<Value>;

    fn encode_application_properties(&mut self) -> Option<ApplicationProperties> {
        Some(
            ApplicationProperties::builder()
                .insert("com.microsoft:server-timeout", SimpleValue::Uint(30_000))
                .build(),
        )
    }

    fn encode_body(self) -> Self::Body {
        let tokens: Vec<Value> = self
            .locks
            .into_iter()
            .map(|u| Value::Uuid(u.into_bytes().into()))
            .collect();
        let mut map = OrderedMap::new();
        map.insert(
            Value::String("lock-tokens".to_owned()),
            Value::Array(Array::from(tokens)),
        );
        AmqpValue(Value::Map(map))
    }
}

/// The reply: `{"expirations": timestamp[]}`.
#[derive(Debug)]
pub(crate) struct RenewLockResponse {
    pub(crate) expirations: Vec<SystemTime>,
}

impl Response for RenewLockResponse {
    const STATUS_CODE: u16 = 200;
    type Body = Option<OrderedMap<String, Value>>;
    type Error = MgmtError;

    fn decode_message(message: Message<Self::Body>) -> Result<Self, Self::Error> {
        let expirations = match message.body.as_ref().and_then(|m| m.get("expirations")) {
            Some(Value::Array(items)) => items.iter().filter_map(timestamp).collect(),
            Some(Value::List(items)) => items.iter().filter_map(timestamp).collect(),
            _ => Vec::new(),
        };
        Ok(Self { expirations })
    }
}

fn timestamp(value: &Value) -> Option<SystemTime> {
    match value {
        Value::Timestamp(t) => Some(timestamp_to_system_time(t)),
        _ => None,
    }
}

struct Link {
    session: SessionHandle<()>,
    client: MgmtClient,
}

/// Management links by queue.
#[derive(Default)]
pub(crate) struct Management {
    links: Mutex<HashMap<String, std::sync::Arc<Mutex<Option<Link>>>>>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Management")
    }
}

impl Management {
    /// Renews one lock; returns its new end.
    pub(crate) async fn renew_lock(
        &self,
        connector: &Connector,
        queue: &str,
        lock: uuid::Uuid,
    ) -> Result<SystemTime> {
        let slot = {
            let mut links = self.links.lock().await;
            std::sync::Arc::clone(links.entry(queue.to_owned()).or_default())
        };
        let mut link = slot.lock().await;
        if link.is_none() {
            let mut session = connector.session().await?;
            let attach = MgmtClient::builder()
                .management_node_address(format!("{queue}/$management"))
                .client_node_addr(format!("{queue}-mgmt-{}", uuid::Uuid::new_v4()))
                .attach(&mut session)
                .await;
            match attach {
                Ok(client) => *link = Some(Link { session, client }),
                Err(error) => {
                    end_session(session).await;
                    return Err(Error::backend(BACKEND, "attach $management", error));
                }
            }
        }
        let Some(current) = link.as_mut() else {
            return Err(Error::Closed);
        };
        let call =
            tokio::time::timeout(CALL_TIMEOUT, current.client.call(RenewLock { locks: vec![lock] })).await;
        let outcome = match call {
            Ok(Ok(response)) => {
                return response
                    .expirations
                    .first()
                    .copied()
                    .ok_or_else(|| Error::Rejected {
                        backend: BACKEND,
                        operation: "renew_lock",
                        reason: "reply had no expiration".to_owned(),
                    });
            }
            Ok(Err(MgmtError::Status(status))) => {
                // 410 Gone / MessageLockLost: the lock expired or was settled.
                let text = format!("{status:?}");
                if text.contains("410") || text.contains("Gone") || text.to_ascii_lowercase().contains("lock")
                {
                    Error::LockLost
                } else {
                    Error::Rejected {
                        backend: BACKEND,
                        operation: "renew_lock",
                        reason: text,
                    }
                }
            }
            Ok(Err(error)) => Error::backend(BACKEND, "renew_lock", error),
            Err(_) => Error::Timeout {
                operation: "renew_lock",
                after: CALL_TIMEOUT,
            },
        };
        // The link may be out of step now (a reply could still arrive): start afresh next time.
        if let Some(old) = link.take() {
            end_session(old.session).await;
        }
        Err(outcome)
    }

    pub(crate) async fn close(&self) {
        for (_, slot) in self.links.lock().await.drain() {
            if let Some(link) = slot.lock().await.take() {
                bounded(link.client.close()).await;
                end_session(link.session).await;
            }
        }
    }
}
