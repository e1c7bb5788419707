//! `hub monitor`: watch the built-in events stream, printed as `az iot hub monitor-events` prints it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use iothub_protocol::Message;
use iothub_protocol::monitor::{MonitorOptions, StreamPosition, render_event, start_banner, to_pretty_json};

use crate::client::HubClient;

/// What to watch.
#[derive(Debug, Clone)]
pub struct MonitorRequest {
    /// Only this device.
    pub device: Option<String>,
    /// `sys`, `app`, `anno`, `all`.
    pub properties: Vec<String>,
    /// Stop after this long; `None` runs until interrupted.
    pub timeout: Option<Duration>,
    /// `latest` (default), `earliest`, a position or an ISO-8601 time.
    pub from: Option<String>,
}

/// Streams events to `out` until the timeout, the end of the stream, or an error.
pub async fn monitor(
    client: &HubClient,
    request: &MonitorRequest,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let options = MonitorOptions::from_props(request.properties.iter().map(String::as_str))?;
    let mut url = client.endpoint("/events");
    if let Some(device) = &request.device {
        url.push_str(&format!("&device={}", encode(device)));
    }
    if let Some(from) = &request.from {
        url.push_str(&format!("&from={}", encode(from)));
    }
    let response = client
        .http
        .get(&url)
        .header("authorization", client.authorization())
        .header("accept", "text/event-stream")
        .send()
        .await
        .with_context(|| format!("cannot reach the hub at {}", client.url))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("the hub answered {status}: {body}");
    }
    writeln!(out, "{}", start_banner(request.device.as_deref()))?;
    out.flush()?;
    let mut events = response.bytes_stream().eventsource();
    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(()),
            },
            None => events.next().await,
        };
        let Some(event) = next else { return Ok(()) };
        let event = event.context("the events stream broke")?;
        let message: Message = serde_json::from_str(&event.data).context("an event the hub sent")?;
        let sequence_number = event.id.parse::<i64>().unwrap_or_default();
        let position = StreamPosition {
            sequence_number,
            offset: sequence_number.to_string(),
        };
        writeln!(
            out,
            "{}",
            to_pretty_json(&render_event(&message, Some(&position), &options))
        )?;
        out.flush()?;
    }
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}
