//! Reading the built-in `events` stream over HTTP as server-sent events: `GET /events?from=...`
//! with an optional device filter. Each event's `id` is its position, so a client resumes with
//! `Last-Event-ID`; `data` is the message as the hub stores it. Needs a ServiceConnect policy.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::stream;
use iothub_protocol::Timestamp;
use serde::Deserialize;

use super::{ApiError, authorization};
use crate::config::Right;
use crate::events::{EventRow, EventsReader, StoreError};
use crate::state::Hub;

/// How often an idle stream sends a comment, so proxies and clients see it is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);
const BATCH: usize = 500;

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    /// `earliest`, `latest` (the default: only new events), a position (events after it), or an
    /// ISO-8601 time (events enqueued at or after it).
    from: Option<String>,
    /// Only this device's events.
    device: Option<String>,
}

/// Where a reader starts: the position just before the first event it will get.
fn start_position(
    reader: &EventsReader,
    from: Option<&str>,
    last_event_id: Option<&str>,
) -> Result<u64, ApiError> {
    let internal = |e: StoreError| ApiError::internal(&e);
    if let Some(id) = last_event_id {
        return id
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_last_event_id", "Last-Event-ID must be a position"));
    }
    match from.unwrap_or("latest") {
        "latest" | "now" => reader.last_position().map_err(internal),
        "earliest" | "start" => Ok(0),
        text => {
            if let Ok(position) = text.parse::<u64>() {
                return Ok(position);
            }
            let time = Timestamp::parse(text).map_err(|_| {
                ApiError::bad_request(
                    "invalid_from",
                    "from must be earliest, latest, a position or an ISO-8601 time",
                )
            })?;
            reader.position_before_time(time.unix_millis()).map_err(internal)
        }
    }
}

fn frame(row: &EventRow) -> Bytes {
    let mut out = Vec::with_capacity(row.payload.len() + 32);
    out.extend_from_slice(format!("id: {}\ndata: ", row.seq).as_bytes());
    out.extend_from_slice(&row.payload);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

struct Cursor {
    reader: Option<EventsReader>,
    position: u64,
    device: Option<String>,
    hub: Arc<Hub>,
}

pub(crate) async fn stream_events(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    hub.auth
        .service(authorization(&request), Right::ServiceConnect, SystemTime::now())
        .map_err(ApiError::from)?;
    let path = hub.journal.path().to_owned();
    let last_event_id = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let from = query.from.clone();
    let (reader, position) = web::block(move || -> Result<(EventsReader, u64), ApiError> {
        let reader = EventsReader::open(&path).map_err(|e| ApiError::internal(&e))?;
        let position = start_position(&reader, from.as_deref(), last_event_id.as_deref())?;
        Ok((reader, position))
    })
    .await
    .map_err(|e| ApiError::internal(&e))??;
    let cursor = Cursor {
        reader: Some(reader),
        position,
        device: query.device.clone(),
        hub: Arc::clone(&hub),
    };
    let body = stream::unfold(cursor, next_chunk);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

/// The next piece of the stream: a batch of events, a heartbeat, or the end (shutdown, failure).
async fn next_chunk(mut cursor: Cursor) -> Option<(Result<Bytes, std::io::Error>, Cursor)> {
    let mut newest = cursor.hub.journal.last_position();
    loop {
        // Everything up to this position was committed before the read below starts.
        let committed = *newest.borrow_and_update();
        let reader = cursor.reader.take()?;
        let (position, device) = (cursor.position, cursor.device.clone());
        let read = tokio::task::spawn_blocking(move || {
            let rows = reader.read_after(position, BATCH, device.as_deref());
            (reader, rows)
        })
        .await;
        let (reader, rows) = match read {
            Ok((reader, Ok(rows))) => (reader, rows),
            Ok((_, Err(error))) => {
                tracing::warn!(%error, "events stream read failed; closing the stream");
                return None;
            }
            Err(_) => return None,
        };
        cursor.reader = Some(reader);
        if rows.is_empty() && cursor.device.is_some() {
            // Nothing of this device up to `committed`: skip past it instead of re-reading it.
            cursor.position = cursor.position.max(committed);
        }
        if let Some(last) = rows.last() {
            cursor.position = last.seq;
            let chunk: Vec<u8> = rows.iter().flat_map(|r| frame(r).to_vec()).collect();
            return Some((Ok(Bytes::from(chunk)), cursor));
        }
        tokio::select! {
            changed = newest.changed() => if changed.is_err() { return None },
            () = tokio::time::sleep(HEARTBEAT) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), cursor)),
            () = cursor.hub.shutdown.wait() => return None,
        }
    }
}
