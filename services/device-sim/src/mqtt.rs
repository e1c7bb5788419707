//! One device over MQTT 3.1.1, as the Azure IoT device SDKs connect: client id = device id, username
//! `{host}/{device}/?api-version=...`, a SAS token as password, CleanSession=0, telemetry on
//! `devices/{id}/messages/events/{property bag}` with QoS 1.
//!
//! Two halves run together: the publisher makes a message every interval (paced by the fleet's rate
//! cap) and hands it to rumqttc, which keeps at most `max_in_flight` unacknowledged; the driver
//! polls the connection, matches each PUBACK to its PUBLISH for latency, and reconnects after a loss
//! with exponential backoff and full jitter (a fresh token when the old one is old). Refused
//! credentials stop the device with an error instead of retrying forever; a refusal as "server
//! unavailable" (throttling) or repeated losses slow the publisher down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use iothub_protocol::connection_string::DeviceConnectionString;
use iothub_protocol::mqtt::{encode_property_bag, telemetry_topic_base};
use iothub_protocol::sas;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use tokio_util::sync::CancellationToken;

use crate::device::{DeviceEnd, DeviceSettings, Slowdown};
use crate::message::SimMessage;
use crate::scenario::DeviceScenario;

/// Room for a 256 KB message and its topic.
const MAX_PACKET: usize = 300 * 1024;

/// The topic for `message`: the telemetry base and the message's property bag.
pub fn topic(device_id: &str, module_id: Option<&str>, message: &SimMessage) -> String {
    let mut topic = telemetry_topic_base(device_id, module_id);
    let system = [
        ("$.mid", message.message_id.as_deref()),
        ("$.cid", message.correlation_id.as_deref()),
        ("$.ct", message.content_type.as_deref()),
        ("$.ce", message.content_encoding.as_deref()),
    ];
    let pairs = message
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .chain(system.into_iter().filter(|(_, v)| v.is_some()));
    topic.push_str(&encode_property_bag(pairs));
    topic
}

/// The MQTT username the SDKs send.
fn username(device: &DeviceConnectionString) -> String {
    let identity = match device.module_id() {
        Some(module) => format!("{}/{module}", device.device_id()),
        None => device.device_id().to_owned(),
    };
    format!(
        "{}/{identity}/?api-version={}&DeviceClientType=iot-routing-device-sim%2F{}",
        device.host_name(),
        iothub_protocol::API_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// A SAS token for `device` valid for `ttl`, and when it was made; `None` for X.509 devices.
fn token(device: &DeviceConnectionString, ttl: Duration) -> Option<String> {
    let expiry = sas::expiry_after(SystemTime::now(), ttl);
    device.sas_token(expiry).map(|t| t.expose_secret())
}

fn options(device: &DeviceConnectionString, settings: &DeviceSettings) -> Result<MqttOptions, String> {
    let client_id = match device.module_id() {
        Some(module) => format!("{}/{module}", device.device_id()),
        None => device.device_id().to_owned(),
    };
    let host = settings
        .connect_host
        .clone()
        .unwrap_or_else(|| device.connect_host().to_owned());
    let websocket = settings.transport == crate::config::Transport::MqttWs;
    let mut options = if websocket {
        let url = format!(
            "wss://{host}:{}{}",
            settings.https_port,
            iothub_protocol::mqtt::WEBSOCKET_PATH
        );
        MqttOptions::new(client_id, url, settings.https_port)
    } else {
        MqttOptions::new(client_id, host, settings.mqtt_port)
    };
    let password = token(device, settings.token_ttl).ok_or("X.509 devices are not supported")?;
    options
        .set_credentials(username(device), password)
        .set_clean_session(false)
        .set_keep_alive(Duration::from_secs(60))
        .set_inflight(settings.max_in_flight)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    match (&settings.tls, websocket) {
        (Some(tls), true) => {
            options.set_transport(Transport::wss_with_config(TlsConfiguration::Rustls(Arc::clone(
                tls,
            ))));
        }
        (Some(tls), false) => {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::clone(
                tls,
            ))));
        }
        (None, _) => {}
    }
    Ok(options)
}

/// Runs one device until `stop` fires or its scenario has sent `settings.messages`, then waits up
/// to the grace period for acknowledgements.
pub async fn run(
    device: DeviceConnectionString,
    mut scenario: DeviceScenario,
    settings: Arc<DeviceSettings>,
    start_at: Instant,
    stop: CancellationToken,
) -> DeviceEnd {
    let options = match options(&device, &settings) {
        Ok(options) => options,
        Err(e) => return DeviceEnd::Failed(e),
    };
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    eventloop
        .network_options
        .set_connection_timeout(settings.timeout.as_secs().max(1));
    let publishing_done = CancellationToken::new();
    // Fired by the driver when the device must stop for good (refused credentials).
    let halt = stop.child_token();
    let slowdown = Slowdown::default();
    let mut driver = Driver {
        eventloop,
        device: &device,
        settings: &settings,
        inflight: HashMap::new(),
        acked: 0,
        written: 0,
        connected: false,
        ever_connected: false,
        slowdown: slowdown.clone(),
        token_made: Instant::now(),
    };
    let topic_device = device.device_id().to_owned();
    let module = device.module_id().map(str::to_owned);
    let publisher = async {
        let qos = if settings.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let mut sent = 0u64;
        let mut next = start_at;
        loop {
            if settings.messages.is_some_and(|max| sent >= max) {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = halt.cancelled() => break,
            }
            next = settings.next_send(next, &slowdown);
            settings.pacer.wait().await;
            let message = match scenario.next_message(SystemTime::now()) {
                Ok(message) => message,
                Err(e) => {
                    settings.stats.failed("scenario", 1);
                    tracing::warn!(error = %e, "scenario failed to make a message");
                    continue;
                }
            };
            let topic = topic(&topic_device, module.as_deref(), &message);
            // Waits while the in-flight window is full: the hub's pace is the device's.
            let published = tokio::select! {
                result = client.publish(topic, qos, false, message.body) => result,
                () = halt.cancelled() => break,
            };
            if published.is_err() {
                break;
            }
            sent += 1;
            settings.stats.sent();
        }
        publishing_done.cancel();
        sent
    };
    let (sent, end) = tokio::join!(publisher, driver.drive(&halt, &publishing_done));
    let end = match end {
        Some(end) => end,
        None => {
            // Stopped or done: wait for what is in flight, within the grace period.
            driver.flush(sent).await;
            let _ = client.try_disconnect();
            DeviceEnd::Done
        }
    };
    if driver.connected {
        settings.stats.connected(false);
    }
    // A publish cancelled by the stop may still have been taken by the client and written: what
    // went out counts as sent, so that the report matches what the hub received.
    let extra = driver.written.saturating_sub(sent);
    for _ in 0..extra {
        settings.stats.sent();
    }
    let sent = sent + extra;
    let unacked = sent.saturating_sub(driver.acked);
    settings.stats.failed("unacknowledged", unacked);
    end
}

struct Driver<'a> {
    eventloop: EventLoop,
    device: &'a DeviceConnectionString,
    settings: &'a DeviceSettings,
    /// When each unacknowledged PUBLISH (by packet id) was first written.
    inflight: HashMap<u16, Instant>,
    acked: u64,
    /// PUBLISHes written for the first time (a resend after a reconnect is not counted again).
    written: u64,
    connected: bool,
    ever_connected: bool,
    slowdown: Slowdown,
    token_made: Instant,
}

impl Driver<'_> {
    /// Polls the connection until the publisher is done (`None`) or the device must stop for good.
    async fn drive(
        &mut self,
        stop: &CancellationToken,
        publishing_done: &CancellationToken,
    ) -> Option<DeviceEnd> {
        let mut failures = 0u32;
        loop {
            let event = tokio::select! {
                event = self.eventloop.poll() => event,
                () = publishing_done.cancelled() => return None,
            };
            match event {
                Ok(event) => {
                    failures = 0;
                    self.on_event(event);
                }
                Err(ConnectionError::ConnectionRefused(
                    code @ (ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword),
                )) => {
                    let reason = format!("the hub refused the credentials ({code:?})");
                    tracing::error!(device = self.device.device_id(), %reason, "device stops");
                    stop.cancel();
                    return Some(DeviceEnd::Failed(reason));
                }
                Err(e) => {
                    self.lost();
                    if matches!(
                        e,
                        ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable)
                    ) {
                        self.slowdown.throttled();
                    }
                    failures = failures.saturating_add(1);
                    let delay = backoff(failures);
                    tracing::debug!(device = self.device.device_id(), error = %e, retry_in = ?delay, "connection lost");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => {}
                        () = publishing_done.cancelled() => return None,
                    }
                    self.refresh_token();
                }
            }
        }
    }

    /// After publishing ends: keeps polling until every sent message, and every PUBLISH written,
    /// is acknowledged, or the grace period is over.
    async fn flush(&mut self, sent: u64) {
        let deadline = Instant::now() + self.settings.grace;
        let mut failures = 0u32;
        while (self.acked < sent || !self.inflight.is_empty()) && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.eventloop.poll()).await {
                Err(_) => return,
                Ok(Ok(event)) => {
                    failures = 0;
                    self.on_event(event);
                }
                Ok(Err(ConnectionError::ConnectionRefused(
                    ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
                ))) => return,
                Ok(Err(_)) => {
                    self.lost();
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(backoff(failures).min(left)).await;
                    self.refresh_token();
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(_)) => {
                if !self.connected {
                    self.connected = true;
                    self.settings.stats.connected(true);
                }
                if self.ever_connected {
                    self.settings.stats.reconnected();
                }
                self.ever_connected = true;
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if self.settings.qos == 0 {
                    self.written += 1;
                    self.acked += 1;
                    self.settings.stats.acked(Duration::ZERO);
                } else if let std::collections::hash_map::Entry::Vacant(first) = self.inflight.entry(pkid) {
                    // A resend after a reconnect keeps the first send's time.
                    self.written += 1;
                    first.insert(Instant::now());
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(sent) = self.inflight.remove(&ack.pkid) {
                    self.acked += 1;
                    self.settings.stats.acked(sent.elapsed());
                    self.slowdown.recovered();
                }
            }
            _ => {}
        }
    }

    fn lost(&mut self) {
        if self.connected {
            self.connected = false;
            self.settings.stats.connected(false);
            self.slowdown.throttled();
        }
    }

    /// A new token once a fifth of the old one's lifetime is left (IoT Hub closes the connection at
    /// expiry; the next connect then carries the new one).
    fn refresh_token(&mut self) {
        if self.token_made.elapsed() < self.settings.token_ttl.mul_f64(0.8) {
            return;
        }
        if let Some(password) = token(self.device, self.settings.token_ttl) {
            let username = username(self.device);
            self.eventloop.mqtt_options.set_credentials(username, password);
            self.token_made = Instant::now();
        }
    }
}

/// Exponential backoff with full jitter: up to 0.5 s × 2^(n-1), at most 30 s.
pub fn backoff(failures: u32) -> Duration {
    let cap = Duration::from_millis(500u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(30));
    cap.mul_f64(fastrand::f64()).max(Duration::from_millis(50))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_carries_ids_and_properties() {
        let message = SimMessage {
            body: b"{}".to_vec(),
            message_id: Some("message_1".to_owned()),
            correlation_id: Some("correlation_1".to_owned()),
            content_type: Some("application/json".to_owned()),
            content_encoding: Some("utf-8".to_owned()),
            properties: vec![("level".to_owned(), "critical".to_owned())],
        };
        assert_eq!(
            topic("dev 1", None, &message),
            "devices/dev%201/messages/events/level=critical&%24.mid=message_1&%24.cid=correlation_1&%24.ct=application%2Fjson&%24.ce=utf-8"
        );
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for n in 1..20 {
            assert!(backoff(n) <= Duration::from_secs(30));
        }
        assert!(
            (0..100)
                .map(|_| backoff(1))
                .all(|d| d <= Duration::from_millis(500))
        );
    }
}
