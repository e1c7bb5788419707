//! MQTT devices for the tests: rumqttc clients over plain TCP or over TLS trusting the hub's
//! development CA, driven one step at a time so a test sees every CONNACK, PUBACK, SUBACK and
//! close. The raw side (hand-made packets on a `TcpStream`) lives in the bad-input tests.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};

use super::{Device, HOST, TestHub, tls_client_config, within};

/// Room for a 256 KB message plus its topic, both ways.
const MAX_PACKET: usize = 1 << 20;

/// Which device listener to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Plain TCP.
    Tcp,
    /// TLS, verifying the server certificate against the development CA for `localhost`.
    Tls,
}

/// What happened to a PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// QoS 1: the hub sent the PUBACK.
    Acked,
    /// QoS 0: written to the connection (nothing more to wait for).
    Sent,
    /// The hub closed the connection instead of acknowledging.
    Closed,
}

impl TestHub {
    /// Options for `client_id` logging in with `password` and the username the docs give, over `link`.
    pub(crate) fn mqtt_options(&self, link: Link, client_id: &str, password: &str) -> MqttOptions {
        let username = format!("{HOST}/{client_id}/?api-version={}", iothub_protocol::API_VERSION);
        self.mqtt_login(link, client_id, &username, password)
    }

    /// Options with an explicit username.
    pub(crate) fn mqtt_login(
        &self,
        link: Link,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> MqttOptions {
        let port = match link {
            Link::Tcp => self.mqtt_tcp.port(),
            Link::Tls => self.mqtt_tls.port(),
        };
        // The TLS server name is the broker host; `localhost` is in the certificate.
        let host = match link {
            Link::Tcp => "127.0.0.1",
            Link::Tls => HOST,
        };
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(60));
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if link == Link::Tls {
            let tls = TlsConfiguration::Rustls(Arc::new(tls_client_config(&self.ca_pem)));
            options.set_transport(Transport::tls_with_config(tls));
        }
        options
    }

    /// Connects `device` with a valid token over `link`; panics if refused.
    pub(crate) async fn connect(&self, device: &Device, link: Link) -> MqttDevice {
        let options = self.mqtt_options(link, &device.id, &device.token());
        match MqttDevice::connect(options).await {
            Ok((connection, _)) => connection,
            Err(code) => panic!("{} was refused over {link:?}: {code:?}", device.id),
        }
    }
}

/// A connected MQTT client.
pub(crate) struct MqttDevice {
    client: AsyncClient,
    events: EventLoop,
}

impl std::fmt::Debug for MqttDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttDevice")
            .field("client_id", &self.events.mqtt_options.client_id())
            .finish()
    }
}

impl MqttDevice {
    /// Connects; `Ok` with the CONNACK's session-present flag, or the CONNACK's refusal code.
    pub(crate) async fn connect(options: MqttOptions) -> Result<(MqttDevice, bool), ConnectReturnCode> {
        let (client, mut events) = AsyncClient::new(options, 64);
        loop {
            match within("the CONNACK", events.poll()).await {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    return Ok((MqttDevice { client, events }, ack.session_present));
                }
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return Err(code),
                Err(error) => panic!("connecting failed below MQTT: {error}"),
            }
        }
    }

    /// Publishes and waits for what the hub does: PUBACK (QoS 1), written (QoS 0), or close.
    /// QoS 2 waits for a PUBREC that the hub must never send.
    pub(crate) async fn publish(&mut self, topic: &str, qos: QoS, payload: impl Into<Vec<u8>>) -> Outcome {
        self.publish_with(topic, qos, false, payload).await
    }

    /// [`publish`](Self::publish) with the RETAIN flag.
    pub(crate) async fn publish_with(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Outcome {
        self.client
            .publish(topic, qos, retain, payload.into())
            .await
            .unwrap();
        loop {
            match within("the hub's answer to a PUBLISH", self.events.poll()).await {
                Ok(Event::Incoming(Incoming::PubAck(_) | Incoming::PubRec(_))) => return Outcome::Acked,
                Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => return Outcome::Sent,
                Ok(_) => {}
                Err(_) => return Outcome::Closed,
            }
        }
    }

    /// Subscribes to `filters` at once; the SUBACK's return codes, in order.
    pub(crate) async fn subscribe(&mut self, filters: &[(&str, QoS)]) -> Vec<SubscribeReasonCode> {
        let filters = filters
            .iter()
            .map(|(path, qos)| SubscribeFilter::new((*path).to_owned(), *qos));
        self.client.subscribe_many(filters).await.unwrap();
        loop {
            match within("the SUBACK", self.events.poll()).await {
                Ok(Event::Incoming(Incoming::SubAck(ack))) => return ack.return_codes,
                Ok(_) => {}
                Err(error) => panic!("the hub closed the connection instead of a SUBACK: {error}"),
            }
        }
    }

    /// Waits until the hub closes the connection (any packet meanwhile is ignored).
    pub(crate) async fn closed_by_hub(&mut self) {
        loop {
            if within("the hub to close the connection", self.events.poll())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Sends DISCONNECT and waits until it is written.
    pub(crate) async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        loop {
            match within("DISCONNECT to be sent", self.events.poll()).await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}
