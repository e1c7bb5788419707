//! Reading the built-in `events` stream back: `GET /events?from=earliest&device=X` as server-sent
//! events, each `data` the stored message JSON and `id` its position. The stream never ends, so a
//! reader stops at a message it knows is there (a count, or a marker sent after the messages under
//! test): what precedes the marker is everything that was stored.

use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use iothub_protocol::Message;

use super::{TestHub, within};

/// One event of the stream.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Its position (the SSE `id`).
    pub(crate) position: u64,
    /// The stored message.
    pub(crate) message: Message,
}

/// Reads `device`'s events from the start of the stream at `base` (`http://host:port`) until `stop`
/// says so; the event that stopped it is the last one returned.
pub(crate) async fn read_events(
    client: &reqwest::Client,
    base: &str,
    authorization: &str,
    device: &str,
    stop: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let url = format!(
        "{base}/events?from=earliest&device={device}&api-version={}",
        iothub_protocol::API_VERSION
    );
    read_stream(
        client,
        &url,
        authorization,
        &format!("the events of {device}"),
        stop,
    )
    .await
}

/// Every device's events from the start of the stream at `base`, until `stop` says so.
pub(crate) async fn read_all_events(
    client: &reqwest::Client,
    base: &str,
    authorization: &str,
    stop: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let url = format!(
        "{base}/events?from=earliest&api-version={}",
        iothub_protocol::API_VERSION
    );
    read_stream(client, &url, authorization, "the events of every device", stop).await
}

async fn read_stream(
    client: &reqwest::Client,
    url: &str,
    authorization: &str,
    what: &str,
    mut stop: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let response = within(
        "the events stream to open",
        client.get(url).header("authorization", authorization).send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK, "GET /events");
    let mut stream = response.bytes_stream().eventsource();
    let mut events = Vec::new();
    within(what, async {
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            let event = Event {
                position: event.id.parse().unwrap(),
                message: serde_json::from_str(&event.data).unwrap(),
            };
            let done = stop(&event);
            events.push(event);
            if done {
                return;
            }
        }
        panic!("the events stream ended");
    })
    .await;
    events
}

/// The message id of an event, or "".
pub(crate) fn message_id(event: &Event) -> &str {
    event.message.system.message_id.as_deref().unwrap_or("")
}

impl TestHub {
    /// `device`'s events from the start, until `stop` says so (that event included).
    pub(crate) async fn events_until(&self, device: &str, stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
        read_events(
            self.client(),
            &format!("http://{}", self.http),
            &self.owner_token(),
            device,
            stop,
        )
        .await
    }

    /// The first `count` events of `device`.
    pub(crate) async fn events(&self, device: &str, count: usize) -> Vec<Event> {
        let mut seen = 0;
        self.events_until(device, |_| {
            seen += 1;
            seen == count
        })
        .await
    }

    /// Every device's events from the start, up to and including the one with message id `marker`.
    pub(crate) async fn all_events_until_marker(&self, marker: &str) -> Vec<Event> {
        read_all_events(
            self.client(),
            &format!("http://{}", self.http),
            &self.owner_token(),
            |event| message_id(event) == marker,
        )
        .await
    }

    /// `device`'s events up to and including the one with message id `marker`.
    pub(crate) async fn events_until_marker(&self, device: &str, marker: &str) -> Vec<Event> {
        self.events_until(device, |event| message_id(event) == marker)
            .await
    }
}
