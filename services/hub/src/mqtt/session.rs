//! One MQTT 3.1.1 device connection: CONNECT and authentication, then publishes (acknowledged only
//! once durable, in order), subscriptions, keep-alive, and the will. Any protocol violation closes
//! this connection only.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use iothub_protocol::Message;
use iothub_protocol::mqtt::{
    MESSAGE_TYPE_PROPERTY, PublishTopic, RETAIN_PROPERTY, SubscriptionTopic, Username, WILL_MESSAGE_TYPE,
    parse_publish_topic, parse_subscription,
};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::live::{Eviction, Registration};
use crate::auth::{DeviceIdentity, Refusal};
use crate::ingest::IngestError;
use crate::metrics::{MessageLabel, OutcomeLabel, TransportLabel};
use crate::state::Hub;

/// IoT Hub's ceiling on the server-side keep-alive timeout.
const MAX_IDLE: Duration = Duration::from_secs(1767);
/// Room for the topic and property bag on top of the largest message.
const TOPIC_ALLOWANCE: usize = 64 * 1024;

type Pending = Pin<Box<dyn Future<Output = Result<Option<u16>, IngestError>> + Send>>;

/// How a session ended, for the log and the will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Disconnect,
    PeerClosed,
    KeepAlive,
    Evicted(Eviction),
    Shutdown,
    Violation(&'static str),
    Refused(&'static str),
    Io,
}

impl End {
    /// MQTT: the will is published when the connection ends without a DISCONNECT; a connection
    /// the hub closed on purpose (replaced, revoked, shutting down) does not send it.
    fn sends_will(self) -> bool {
        matches!(
            self,
            End::PeerClosed | End::KeepAlive | End::Io | End::Violation(_) | End::Refused(_)
        )
    }
}

/// Serves one connection until it ends.
pub async fn serve<S>(stream: S, transport: &'static str, hub: Arc<Hub>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let codec = Codec {
        max_incoming_size: hub.config.limits.max_message_bytes + TOPIC_ALLOWANCE,
        max_outgoing_size: 1 << 20,
    };
    let mut framed = Framed::new(stream, codec);
    let connect_timeout = Duration::from_secs(hub.config.limits.connect_timeout_secs.max(1));
    let connect = match tokio::time::timeout(connect_timeout, framed.next()).await {
        Ok(Some(Ok(Packet::Connect(connect)))) => connect,
        Ok(Some(Ok(_))) => return refuse_protocol(&hub, "first_packet_not_connect"),
        Ok(Some(Err(error))) => {
            tracing::debug!(%error, transport, "unreadable CONNECT");
            return refuse_protocol(&hub, "malformed_packet");
        }
        Ok(None) => return,
        Err(_) => return refuse_protocol(&hub, "connect_timeout"),
    };
    let identity = match authenticate(&hub, &connect) {
        Ok(identity) => identity,
        Err(refusal) => {
            hub.metrics
                .connects
                .get_or_create(&OutcomeLabel {
                    outcome: refusal.label(),
                })
                .inc();
            tracing::info!(client_id = %connect.client_id, reason = refusal.label(), transport, "connection refused");
            let code = match refusal {
                Refusal::ClientIdMismatch => ConnectReturnCode::BadClientId,
                _ => ConnectReturnCode::NotAuthorized,
            };
            let _ = framed.send(Packet::ConnAck(ConnAck::new(code, false))).await;
            return;
        }
    };
    let registration = hub.live.register(&connect.client_id);
    let stored = restore_session(&hub, &connect).await;
    let session_present = stored.is_some();
    if framed
        .send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            session_present,
        )))
        .await
        .is_err()
    {
        return;
    }
    hub.metrics
        .connects
        .get_or_create(&OutcomeLabel { outcome: "ok" })
        .inc();
    let gauge = hub
        .metrics
        .connections
        .get_or_create(&TransportLabel { transport })
        .clone();
    gauge.inc();
    identity.device.set_connected(true);
    emit(
        &hub,
        crate::notifications::connection_state(
            &hub.config.hub_name,
            identity.device.id(),
            identity.module_id.as_deref(),
            true,
        ),
    );
    tracing::info!(client_id = %connect.client_id, transport, clean_session = connect.clean_session, "device connected");

    let subscriptions = stored.unwrap_or_default();
    let mut session = Session {
        hub: &hub,
        identity: &identity,
        connect: &connect,
        transport,
        subscriptions,
    };
    let end = session.run(&mut framed, &registration).await;

    gauge.dec();
    if !matches!(end, End::Evicted(Eviction::Replaced)) {
        identity.device.set_connected(false);
        emit(
            &hub,
            crate::notifications::connection_state(
                &hub.config.hub_name,
                identity.device.id(),
                identity.module_id.as_deref(),
                false,
            ),
        );
    }
    if let End::Violation(reason) | End::Refused(reason) = end {
        hub.metrics
            .protocol_errors
            .get_or_create(&OutcomeLabel { outcome: reason })
            .inc();
    }
    tracing::info!(client_id = %connect.client_id, transport, end = ?end, "device disconnected");
    if end.sends_will() {
        publish_will(&hub, &identity, &connect);
    }
}

/// Routes an event the hub emits, in the background (nothing waits for it to be acknowledged).
fn emit(hub: &Hub, message: Message) {
    let stored = hub.ingest.emit(message);
    tokio::spawn(async move {
        if let Err(error) = stored.await {
            tracing::warn!(%error, "connection-state event not stored");
        }
    });
}

fn refuse_protocol(hub: &Hub, reason: &'static str) {
    hub.metrics
        .connects
        .get_or_create(&OutcomeLabel { outcome: reason })
        .inc();
}

/// Checks the CONNECT: client id `{device}` or `{device}/{module}`, username naming the same ids
/// and one of the hub's host names, password a valid SAS token for that identity.
fn authenticate(hub: &Hub, connect: &Connect) -> Result<DeviceIdentity, Refusal> {
    let login = connect.login.as_ref().ok_or(Refusal::MissingCredentials)?;
    let username = Username::parse(&login.username).map_err(|_| Refusal::MalformedUsername)?;
    let (device_id, module_id) = match connect.client_id.split_once('/') {
        Some((device, module)) => (device, Some(module)),
        None => (connect.client_id.as_str(), None),
    };
    if device_id.is_empty() || username.device_id != device_id || username.module_id.as_deref() != module_id {
        return Err(Refusal::ClientIdMismatch);
    }
    if !hub.auth.is_own_host(&username.host) {
        return Err(Refusal::UnknownHost);
    }
    hub.auth
        .device(device_id, module_id, &login.password, SystemTime::now())
}

/// The subscriptions kept for this client id, or `None` when there is no session (a clean session
/// forgets any kept one).
async fn restore_session(hub: &Hub, connect: &Connect) -> Option<Vec<String>> {
    let registry = Arc::clone(&hub.registry);
    let (client_id, clean) = (connect.client_id.clone(), connect.clean_session);
    // Only a change touches the disk, but that is a synchronous SQLite write: off the async threads.
    tokio::task::spawn_blocking(move || {
        if clean {
            if let Err(error) = registry.set_session(&client_id, None) {
                tracing::warn!(%error, "could not forget an MQTT session");
            }
            return None;
        }
        let stored = registry.session(&client_id);
        // MQTT-3.1.2-4: a persistent connect without a session creates one (even with no
        // subscriptions yet), so the next persistent connect reports it present.
        if stored.is_none()
            && let Err(error) = registry.set_session(&client_id, Some(&[]))
        {
            tracing::warn!(%error, "could not keep an MQTT session");
        }
        stored
    })
    .await
    .ok()
    .flatten()
}

/// The will, as IoT Hub sends it: a telemetry message marked `iothub-MessageType=Will`.
fn publish_will(hub: &Arc<Hub>, identity: &DeviceIdentity, connect: &Connect) {
    let Some(will) = &connect.last_will else { return };
    let Ok(PublishTopic::Telemetry {
        device_id,
        module_id,
        properties,
    }) = parse_publish_topic(&will.topic)
    else {
        tracing::info!(client_id = %connect.client_id, "will topic is not the device's telemetry topic; dropped");
        return;
    };
    if device_id != identity.device.id() || module_id != identity.module_id {
        return;
    }
    let mut message = Message::from_property_bag(will.message.to_vec(), properties);
    message.set_app_property(MESSAGE_TYPE_PROPERTY, Some(WILL_MESSAGE_TYPE.to_owned()));
    let label = MessageLabel {
        transport: "mqtt_will",
        qos: "1",
    };
    let accepted = hub.ingest.accept(identity, message, label);
    tokio::spawn(async move {
        if let Err(error) = accepted.await {
            tracing::warn!(%error, "will message not stored");
        }
    });
}

struct Session<'a> {
    hub: &'a Arc<Hub>,
    identity: &'a DeviceIdentity,
    connect: &'a Connect,
    transport: &'static str,
    subscriptions: Vec<String>,
}

impl Session<'_> {
    async fn run<S>(&mut self, framed: &mut Framed<S, Codec>, registration: &Registration) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let idle = match self.connect.keep_alive {
            0 => MAX_IDLE,
            seconds => (Duration::from_secs(u64::from(seconds)) * 3 / 2).min(MAX_IDLE),
        };
        let max_inflight = self.hub.config.limits.max_inflight_per_connection;
        let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
        let mut deadline = Instant::now() + idle;
        loop {
            tokio::select! {
                biased;
                () = registration.evicted.cancelled() => {
                    return End::Evicted(registration.eviction().unwrap_or(Eviction::Revoked));
                }
                () = self.hub.shutdown.wait() => {
                    // Finish what was accepted, then close: acknowledged work is never dropped.
                    while let Some(done) = pending.next().await {
                        if self.acknowledge(framed, done).await.is_err() {
                            break;
                        }
                    }
                    let _ = framed.flush().await;
                    return End::Shutdown;
                }
                Some(done) = pending.next(), if !pending.is_empty() => {
                    if let Err(end) = self.acknowledge(framed, done).await {
                        return end;
                    }
                    // Acknowledge everything else already committed, then write once.
                    while let Some(Some(done)) = pending.next().now_or_never() {
                        if let Err(end) = self.acknowledge(framed, done).await {
                            return end;
                        }
                    }
                    if framed.flush().await.is_err() {
                        return End::Io;
                    }
                }
                frame = framed.next(), if pending.len() < max_inflight => {
                    deadline = Instant::now() + idle;
                    let packet = match frame {
                        None => return End::PeerClosed,
                        Some(Err(error)) => {
                            tracing::debug!(%error, client_id = %self.connect.client_id, "unreadable packet");
                            return End::Violation("malformed_packet");
                        }
                        Some(Ok(packet)) => packet,
                    };
                    if let Some(end) = self.handle(framed, packet, &mut pending).await {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return End::KeepAlive,
            }
        }
    }

    /// Writes the PUBACK of a committed message (nothing for QoS 0); a message that could not be
    /// stored ends the connection without its acknowledgement.
    async fn acknowledge<S>(
        &self,
        framed: &mut Framed<S, Codec>,
        done: Result<Option<u16>, IngestError>,
    ) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        match done {
            Ok(Some(pkid)) => framed
                .feed(Packet::PubAck(PubAck::new(pkid)))
                .await
                .map_err(|_| End::Io),
            Ok(None) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, client_id = %self.connect.client_id, "message refused; closing the connection");
                Err(End::Refused(error.label()))
            }
        }
    }

    async fn handle<S>(
        &mut self,
        framed: &mut Framed<S, Codec>,
        packet: Packet,
        pending: &mut FuturesOrdered<Pending>,
    ) -> Option<End>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        match packet {
            Packet::Publish(publish) => return self.publish(publish, pending),
            Packet::Subscribe(subscribe) => {
                let ack = self.subscribe(subscribe);
                self.save_subscriptions().await;
                if framed.send(Packet::SubAck(ack)).await.is_err() {
                    return Some(End::Io);
                }
            }
            Packet::Unsubscribe(unsubscribe) => {
                let ack = self.unsubscribe(unsubscribe);
                self.save_subscriptions().await;
                if framed.send(Packet::UnsubAck(ack)).await.is_err() {
                    return Some(End::Io);
                }
            }
            Packet::PingReq => {
                if framed.send(Packet::PingResp).await.is_err() {
                    return Some(End::Io);
                }
            }
            Packet::Disconnect => return Some(End::Disconnect),
            // The hub sends no QoS 1 messages yet, so a PUBACK from the device acknowledges nothing.
            Packet::PubAck(_) => {}
            Packet::Connect(_) => return Some(End::Violation("second_connect")),
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                return Some(End::Violation("qos2_flow"));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Some(End::Violation("server_packet_from_client"));
            }
        }
        None
    }

    fn publish(&mut self, publish: Publish, pending: &mut FuturesOrdered<Pending>) -> Option<End> {
        let qos = match publish.qos {
            QoS::AtMostOnce => "0",
            QoS::AtLeastOnce => "1",
            QoS::ExactlyOnce => return Some(End::Violation("qos2_publish")),
        };
        let properties = match parse_publish_topic(&publish.topic) {
            Ok(PublishTopic::Telemetry {
                device_id,
                module_id,
                properties,
            }) => {
                if device_id != self.identity.device.id() || module_id != self.identity.module_id {
                    return Some(End::Violation("foreign_topic"));
                }
                properties
            }
            Ok(PublishTopic::Unknown) => return Some(End::Violation("unknown_topic")),
            Ok(_) => return Some(End::Violation("unsupported_topic")),
            Err(_) => return Some(End::Violation("malformed_property_bag")),
        };
        let mut message = Message::from_property_bag(publish.payload.to_vec(), properties);
        if publish.retain {
            message.set_app_property(RETAIN_PROPERTY, Some("true".to_owned()));
        }
        let accepted = self.hub.ingest.accept(
            self.identity,
            message,
            MessageLabel {
                transport: self.transport,
                qos,
            },
        );
        let pkid = (publish.qos == QoS::AtLeastOnce).then_some(publish.pkid);
        pending.push_back(Box::pin(accepted.map(move |result| result.map(|()| pkid))));
        None
    }

    /// Grants the documented device topics of this identity at QoS ≤ 1; refuses anything else.
    fn subscribe(&mut self, subscribe: Subscribe) -> SubAck {
        let device = self.identity.device.id();
        let module = self.identity.module_id.as_deref();
        let codes = subscribe
            .filters
            .iter()
            .map(|filter| {
                let allowed = match parse_subscription(&filter.path) {
                    SubscriptionTopic::CloudToDevice { device_id } => device_id == device && module.is_none(),
                    SubscriptionTopic::ModuleInputs { device_id, module_id } => {
                        device_id == device && Some(module_id.as_str()) == module
                    }
                    SubscriptionTopic::TwinResponses
                    | SubscriptionTopic::TwinDesiredPatches
                    | SubscriptionTopic::MethodRequests => true,
                    SubscriptionTopic::Unknown => false,
                };
                if !allowed {
                    tracing::info!(client_id = %self.connect.client_id, filter = %filter.path, "subscription refused");
                    return SubscribeReasonCode::Failure;
                }
                if !self.subscriptions.contains(&filter.path) {
                    self.subscriptions.push(filter.path.clone());
                }
                match filter.qos {
                    QoS::AtMostOnce => SubscribeReasonCode::Success(QoS::AtMostOnce),
                    _ => SubscribeReasonCode::Success(QoS::AtLeastOnce),
                }
            })
            .collect();
        SubAck::new(subscribe.pkid, codes)
    }

    fn unsubscribe(&mut self, unsubscribe: Unsubscribe) -> UnsubAck {
        self.subscriptions.retain(|s| !unsubscribe.topics.contains(s));
        UnsubAck::new(unsubscribe.pkid)
    }

    /// Keeps the subscriptions of a persistent session across reconnects, as the SDKs expect.
    async fn save_subscriptions(&self) {
        if self.connect.clean_session {
            return;
        }
        let registry = Arc::clone(&self.hub.registry);
        let (client_id, subscriptions) = (self.connect.client_id.clone(), self.subscriptions.clone());
        let saved =
            tokio::task::spawn_blocking(move || registry.set_session(&client_id, Some(&subscriptions))).await;
        if let Ok(Err(error)) = saved {
            tracing::warn!(%error, "could not keep an MQTT session");
        }
    }
}
