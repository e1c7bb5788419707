//! One device over HTTPS: a message every interval, sent and acknowledged by the hub's answer;
//! throttling (429, 503) waits for `Retry-After` or backs off and slows the device; refused
//! credentials stop it; transient failures retry the same message with backoff.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use iothub_protocol::connection_string::DeviceConnectionString;
use tokio_util::sync::CancellationToken;

use crate::device::{DeviceEnd, DeviceSettings, Slowdown};
use crate::https::{HttpsDevice, SendError};
use crate::mqtt::backoff;
use crate::scenario::DeviceScenario;

/// Runs one HTTPS device until `stop` fires or it has sent `settings.messages`.
pub async fn run(
    device: DeviceConnectionString,
    mut scenario: DeviceScenario,
    settings: Arc<DeviceSettings>,
    start_at: Instant,
    stop: CancellationToken,
) -> DeviceEnd {
    let Some(client) = settings.https_client.clone() else {
        return DeviceEnd::Failed("no HTTPS client".to_owned());
    };
    let endpoint = match endpoint(&device, &settings) {
        Ok(url) => url,
        Err(e) => return DeviceEnd::Failed(e),
    };
    let sender = match HttpsDevice::with_client(client, &device, Some(&endpoint), settings.timeout) {
        Ok(sender) => sender,
        Err(e) => return DeviceEnd::Failed(e.to_string()),
    };
    let slowdown = Slowdown::default();
    let mut sent = 0u64;
    let mut next = start_at;
    let mut connected = false;
    let end = 'messages: loop {
        if settings.messages.is_some_and(|max| sent >= max) {
            break DeviceEnd::Done;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            () = stop.cancelled() => break DeviceEnd::Done,
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
        sent += 1;
        settings.stats.sent();
        let started = Instant::now();
        let mut failures = 0u32;
        loop {
            match sender.send(&message).await {
                Ok(()) => {
                    if !connected {
                        connected = true;
                        settings.stats.connected(true);
                    }
                    settings.stats.acked(started.elapsed());
                    slowdown.recovered();
                    break;
                }
                Err(SendError::Unauthorized(reason)) => {
                    settings.stats.failed("unauthorized", 1);
                    break 'messages DeviceEnd::Failed(format!("the hub refused the credentials: {reason}"));
                }
                Err(SendError::Rejected { status, message }) => {
                    settings.stats.failed("rejected", 1);
                    tracing::warn!(status, %message, "the hub refused a message");
                    break;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = match &e {
                        SendError::Throttled { retry_after } => {
                            slowdown.throttled();
                            retry_after.unwrap_or_else(|| backoff(failures))
                        }
                        _ => backoff(failures),
                    };
                    tracing::debug!(error = %e, retry_in = ?wait, "send failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => {
                            settings.stats.failed("unacknowledged", 1);
                            break 'messages DeviceEnd::Done;
                        }
                    }
                }
            }
        }
    };
    if connected {
        settings.stats.connected(false);
    }
    end
}

fn endpoint(device: &DeviceConnectionString, settings: &DeviceSettings) -> Result<url::Url, String> {
    let host = settings
        .connect_host
        .clone()
        .unwrap_or_else(|| device.connect_host().to_owned());
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    url::Url::parse(&format!("{scheme}://{host}:{}", settings.https_port))
        .map_err(|e| format!("endpoint: {e}"))
}
