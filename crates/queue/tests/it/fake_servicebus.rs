//! An in-process Service Bus namespace speaking AMQP 1.0 (fe2o3-amqp's `acceptor`), just enough to
//! check the Service Bus-only frames: CBS put-token (with SAS verification), peek-lock deliveries with
//! `x-opt-*` annotations and a lock token, `modified` / `rejected{com.microsoft:dead-letter}` outcomes,
//! lock expiry, MaxDeliveryCount, and `com.microsoft:renew-lock` on `<queue>/$management`.
//!
//! Unlike Service Bus it cannot see a link's credit: it locks the next message for every consumer
//! link and then waits for credit, so a receiver link that stops asking holds one message until its
//! lock expires or the link closes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, SaslAnonymousMechanism, SessionAcceptor,
};
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, DeliveryAnnotations, Header, Message, MessageAnnotations,
    MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Symbol, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use fe2o3_amqp_types::messaging::annotations::OwnedKey;
use tokio::net::TcpListener;

pub(crate) const KEY_NAME: &str = "RootManageSharedAccessKey";
pub(crate) const KEY: &str = "SAS_KEY_VALUE+/=";

type AmqpMessage = Message<Body<Value>>;

#[derive(Debug, Clone)]
struct Stored {
    message: AmqpMessage,
    seq: i64,
    enqueued: SystemTime,
    delivery_count: u32,
}

/// What the peer saw, for the tests to check.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// (audience, token type, accepted) per put-token.
    pub(crate) puts: Vec<(String, String, bool)>,
    /// Attach order: "put-token <audience>" and "attach <address>".
    pub(crate) events: Vec<String>,
    /// Outcomes received for deliveries: "accepted", "modified failed=true here=false", "rejected <condition> <reason>".
    pub(crate) outcomes: Vec<String>,
    /// Lock tokens renewed.
    pub(crate) renewed: Vec<uuid::Uuid>,
}

#[derive(Debug, Default)]
struct Namespace {
    queues: HashMap<String, VecDeque<Stored>>,
    locked: HashMap<uuid::Uuid, (String, Stored, SystemTime)>,
    next_seq: i64,
    seen: Seen,
}

#[derive(Clone)]
pub(crate) struct FakeServiceBus {
    pub(crate) port: u16,
    state: Arc<Mutex<Namespace>>,
    lock_duration: Duration,
    max_delivery_count: u32,
}

impl FakeServiceBus {
    /// Serves on 127.0.0.1:<random port>; `queues` exist (with their dead-letter queues).
    pub(crate) async fn start(queues: &[&str], lock_duration: Duration, max_delivery_count: u32) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut namespace = Namespace::default();
        for q in queues {
            namespace.queues.insert((*q).to_owned(), VecDeque::new());
            namespace
                .queues
                .insert(format!("{q}/$deadletterqueue"), VecDeque::new());
        }
        let bus = Self {
            port: listener.local_addr().unwrap().port(),
            state: Arc::new(Mutex::new(namespace)),
            lock_duration,
            max_delivery_count,
        };
        let server = bus.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve_connection(stream).await });
            }
        });
        bus
    }

    pub(crate) fn connection_string(&self, entity: &str) -> String {
        format!(
            "Endpoint=sb://127.0.0.1:{}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY};EntityPath={entity};UseDevelopmentEmulator=true",
            self.port
        )
    }

    pub(crate) fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.lock().unwrap().seen)
    }

    async fn serve_connection(self, stream: tokio::net::TcpStream) {
        let acceptor = ConnectionAcceptor::builder()
            .container_id("fake-servicebus")
            .sasl_acceptor(SaslAnonymousMechanism::new())
            .build();
        let Ok(mut connection) = acceptor.accept(stream).await else {
            return;
        };
        while let Ok(mut session) = SessionAcceptor::new().accept(&mut connection).await {
            let server = self.clone();
            tokio::spawn(async move {
                // Request links ($cbs, $management) answer on the session's sender with the same node.
                let replies: Arc<tokio::sync::Mutex<Option<Sender>>> = Arc::default();
                while let Ok(link) = LinkAcceptor::new().accept(&mut session).await {
                    let server = server.clone();
                    match link {
                        LinkEndpoint::Receiver(receiver) => {
                            let replies = Arc::clone(&replies);
                            tokio::spawn(async move { server.serve_incoming(receiver, replies).await });
                        }
                        LinkEndpoint::Sender(sender) => {
                            let address = source_address(&sender);
                            if is_node(&address) {
                                *replies.lock().await = Some(sender);
                            } else {
                                server.event(format!("attach {address}"));
                                tokio::spawn(async move { server.serve_consumer(sender, address).await });
                            }
                        }
                    }
                }
            });
        }
    }

    fn event(&self, e: String) {
        self.state.lock().unwrap().seen.events.push(e);
    }

    /// A client's sender: messages for a queue, or requests to `$cbs` / `<queue>/$management`.
    async fn serve_incoming(self, mut receiver: Receiver, replies: Arc<tokio::sync::Mutex<Option<Sender>>>) {
        let address = receiver
            .target()
            .as_ref()
            .and_then(|t| t.address.clone())
            .unwrap_or_default();
        if !is_node(&address) {
            self.event(format!("attach {address}"));
        }
        while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
            let _ = receiver.accept(&delivery).await;
            let message = delivery.into_message();
            if !is_node(&address) {
                self.enqueue(&address, message);
                continue;
            }
            let reply = if address == "$cbs" {
                self.put_token(&message)
            } else {
                self.management(&message)
            };
            for _ in 0..100 {
                if let Some(sender) = replies.lock().await.as_mut() {
                    let _ = sender.send(reply).await;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    fn enqueue(&self, queue: &str, message: AmqpMessage) {
        let mut ns = self.state.lock().unwrap();
        ns.next_seq += 1;
        let stored = Stored {
            message,
            seq: ns.next_seq,
            enqueued: SystemTime::now(),
            delivery_count: 0,
        };
        ns.queues.entry(queue.to_owned()).or_default().push_back(stored);
    }

    fn put_token(&self, request: &AmqpMessage) -> AmqpMessage {
        let props = request.application_properties.as_ref().unwrap();
        let audience = text(props.get("name"));
        let token_type = text(props.get("type"));
        let token = match &request.body {
            Body::Value(AmqpValue(Value::String(s))) => s.clone(),
            _ => String::new(),
        };
        // Verify the signature the way Service Bus does: recompute it from the key.
        let expiry = token
            .rsplit("&se=")
            .next()
            .and_then(|rest| rest.split('&').next())
            .and_then(|s| s.parse().ok());
        let valid = expiry.is_some_and(|se| token == queue::sas_token(&audience, KEY_NAME, KEY, se));
        let mut ns = self.state.lock().unwrap();
        ns.seen.events.push(format!("put-token {audience}"));
        ns.seen.puts.push((audience, token_type, valid));
        reply(request, if valid { 202 } else { 401 }, None)
    }

    fn management(&self, request: &AmqpMessage) -> AmqpMessage {
        let props = request.application_properties.as_ref().unwrap();
        assert_eq!(text(props.get("operation")), "com.microsoft:renew-lock");
        let Body::Value(AmqpValue(Value::Map(body))) = &request.body else {
            return reply(request, 400, None);
        };
        let Some(Value::Array(tokens)) = body.get(&Value::String("lock-tokens".to_owned())) else {
            return reply(request, 400, None);
        };
        let mut ns = self.state.lock().unwrap();
        let mut expirations = Vec::new();
        for token in tokens.iter() {
            let Value::Uuid(u) = token else {
                return reply(request, 400, None);
            };
            let lock = uuid::Uuid::from_bytes(u.clone().into_inner());
            let Some(entry) = ns.locked.get_mut(&lock) else {
                return reply(request, 410, None);
            };
            entry.2 = SystemTime::now() + self.lock_duration;
            expirations.push(Value::Timestamp(timestamp(entry.2)));
            ns.seen.renewed.push(lock);
        }
        let mut map = OrderedMap::new();
        map.insert(
            Value::String("expirations".to_owned()),
            Value::Array(Array::from(expirations)),
        );
        reply(request, 200, Some(Value::Map(map)))
    }

    /// A client's receiver: peek-lock deliveries, outcomes applied as they come back.
    async fn serve_consumer(self, mut sender: Sender, queue: String) {
        let mut mine = Vec::new();
        loop {
            let Some((lock, stored, until)) = self.next(&queue) else {
                tokio::select! {
                    _ = sender.on_detach() => break,
                    () = tokio::time::sleep(Duration::from_millis(10)) => continue,
                }
            };
            mine.push(lock);
            let mut message = stored.message.clone();
            message.header = Some(Header {
                delivery_count: stored.delivery_count,
                ..Header::default()
            });
            let mut delivery_annotations = OrderedMap::new();
            delivery_annotations.insert(sym("x-opt-lock-token"), Value::Uuid(lock.into_bytes().into()));
            message.delivery_annotations = Some(DeliveryAnnotations(delivery_annotations));
            let mut annotations = OrderedMap::new();
            annotations.insert(sym("x-opt-locked-until"), Value::Timestamp(timestamp(until)));
            annotations.insert(
                sym("x-opt-enqueued-time"),
                Value::Timestamp(timestamp(stored.enqueued)),
            );
            annotations.insert(sym("x-opt-sequence-number"), Value::Long(stored.seq));
            message.message_annotations = Some(MessageAnnotations(annotations));
            let sendable = Sendable::builder().message(message).settled(false).build();
            let Ok(outcome) = sender.send_batchable(sendable).await else {
                break;
            };
            let server = self.clone();
            tokio::spawn(async move {
                if let Ok(outcome) = outcome.await {
                    server.settle(lock, outcome);
                }
            });
        }
        self.release_locks(&mine);
    }

    /// Locks die with the link they were given on: Service Bus makes those messages available again.
    fn release_locks(&self, locks: &[uuid::Uuid]) {
        let mut ns = self.state.lock().unwrap();
        for lock in locks {
            if let Some((q, stored, _)) = ns.locked.remove(lock) {
                self.give_back(&mut ns, &q, stored);
            }
        }
    }

    /// The next message of `queue`, locked; expired locks go back first (or to the DLQ).
    fn next(&self, queue: &str) -> Option<(uuid::Uuid, Stored, SystemTime)> {
        let mut ns = self.state.lock().unwrap();
        let now = SystemTime::now();
        let expired: Vec<uuid::Uuid> = ns
            .locked
            .iter()
            .filter(|(_, (_, _, until))| *until <= now)
            .map(|(k, _)| *k)
            .collect();
        for lock in expired {
            if let Some((q, stored, _)) = ns.locked.remove(&lock) {
                self.give_back(&mut ns, &q, stored);
            }
        }
        let stored = ns.queues.get_mut(queue)?.pop_front()?;
        let lock = uuid::Uuid::new_v4();
        let until = now + self.lock_duration;
        ns.locked.insert(lock, (queue.to_owned(), stored.clone(), until));
        Some((lock, stored, until))
    }

    fn give_back(&self, ns: &mut Namespace, queue: &str, mut stored: Stored) {
        stored.delivery_count += 1;
        if stored.delivery_count >= self.max_delivery_count && !queue.ends_with("/$deadletterqueue") {
            dead_letter(
                ns,
                queue,
                stored,
                "MaxDeliveryCountExceeded",
                "too many deliveries",
            );
        } else {
            ns.queues.entry(queue.to_owned()).or_default().push_front(stored);
        }
    }

    fn settle(&self, lock: uuid::Uuid, outcome: Outcome) {
        let mut ns = self.state.lock().unwrap();
        let text = match &outcome {
            Outcome::Accepted(_) => "accepted".to_owned(),
            Outcome::Released(_) => "released".to_owned(),
            Outcome::Modified(m) => format!(
                "modified failed={} here={}",
                m.delivery_failed.unwrap_or(false),
                m.undeliverable_here.unwrap_or(false)
            ),
            Outcome::Rejected(r) => {
                let error = r.error.as_ref();
                let condition = error.map(|e| format!("{:?}", e.condition)).unwrap_or_default();
                let reason = error
                    .and_then(|e| e.info.as_ref())
                    .and_then(|info| info.get(&Symbol::from("DeadLetterReason")).cloned())
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                format!("rejected {condition} {reason}")
            }
        };
        ns.seen.outcomes.push(text);
        // A lock that expired meanwhile is gone: the late outcome changes nothing (Service Bus: lock lost).
        let Some((queue, stored, _)) = ns.locked.remove(&lock) else {
            return;
        };
        match outcome {
            Outcome::Accepted(_) => {}
            Outcome::Released(_) | Outcome::Modified(_) => self.give_back(&mut ns, &queue, stored),
            Outcome::Rejected(r) => {
                let info = r.error.as_ref().and_then(|e| e.info.as_ref());
                let field = |k: &str| match info.and_then(|i| i.get(&Symbol::from(k))) {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                };
                let (reason, description) = (field("DeadLetterReason"), field("DeadLetterErrorDescription"));
                dead_letter(&mut ns, &queue, stored, &reason, &description);
            }
        }
    }
}

fn dead_letter(ns: &mut Namespace, queue: &str, mut stored: Stored, reason: &str, description: &str) {
    let props = stored
        .message
        .application_properties
        .get_or_insert_with(ApplicationProperties::default);
    props.0.insert(
        "DeadLetterReason".to_owned(),
        SimpleValue::String(reason.to_owned()),
    );
    props.0.insert(
        "DeadLetterErrorDescription".to_owned(),
        SimpleValue::String(description.to_owned()),
    );
    ns.queues
        .entry(format!("{queue}/$deadletterqueue"))
        .or_default()
        .push_back(stored);
}

fn is_node(address: &str) -> bool {
    address == "$cbs" || address.ends_with("/$management")
}

fn source_address(sender: &Sender) -> String {
    sender
        .source()
        .as_ref()
        .and_then(|s| s.address.clone())
        .unwrap_or_default()
}

fn reply(request: &AmqpMessage, status: i32, body: Option<Value>) -> AmqpMessage {
    let correlation = request.properties.as_ref().and_then(|p| p.message_id.clone());
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            correlation_id: correlation.or(Some(MessageId::Ulong(0))),
            ..Properties::default()
        }),
        application_properties: Some(
            ApplicationProperties::builder()
                .insert("statusCode", SimpleValue::Int(status))
                .build(),
        ),
        body: body.map_or(Body::Empty, |v| Body::Value(AmqpValue(v))),
        footer: None,
    }
}

fn text(value: Option<&SimpleValue>) -> String {
    match value {
        Some(SimpleValue::String(s)) => s.clone(),
        Some(SimpleValue::Symbol(s)) => s.as_str().to_owned(),
        _ => String::new(),
    }
}

fn sym(key: &str) -> OwnedKey {
    OwnedKey::Symbol(Symbol::from(key))
}

fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from_milliseconds(t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64)
}
