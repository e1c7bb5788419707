//! The query API (JSON; errors as `{"code", "message"}`):
//!
//! - `GET /v1/messages?deviceId=&from=&to=&where=&limit=&cursor=`: indexed filters first (device,
//!   enqueued time in `[from, to)`), then `where`, a routing-query condition, evaluated on each
//!   record exactly as a route would (`level = "storage" AND $body.windSpeed > 30`). Ordered by
//!   enqueued time; `cursor` continues after the last page (stable: ties broken by blob and
//!   position). A page may hold fewer than `limit` messages when the condition is rare; follow
//!   `nextCursor` until it is null.
//! - `GET /v1/messages/{messageId}`; `GET /v1/devices`; `GET /v1/blobs?status=`; `GET /v1/stats`.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iothub_query::{Condition, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::metrics::{ArchiverMetrics, EndpointLabel};
use crate::store::{BlobStatus, Cursor, QueryFilter, Store, StoredRecord};

/// Largest page.
pub const MAX_LIMIT: u32 = 1000;
/// Rows looked at per request when a condition filters them; the page ends there (with a cursor).
pub const SCAN_BUDGET: u32 = 20_000;
/// Longest condition accepted.
const MAX_CONDITION_BYTES: usize = 16 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The index.
    pub index: Arc<dyn Store>,
    /// Metrics.
    pub metrics: ArchiverMetrics,
}

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/messages", web::get().to(messages))
        .route("/v1/messages/{id}", web::get().to(message))
        .route("/v1/devices", web::get().to(devices))
        .route("/v1/blobs", web::get().to(blobs))
        .route("/v1/stats", web::get().to(stats));
}

/// A client error or a server failure, as `{"code", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: actix_web::http::StatusCode,
    body: Value,
}

impl ApiError {
    fn bad(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: actix_web::http::StatusCode::BAD_REQUEST,
            body: json!({"code": code, "message": message.into()}),
        }
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "query failed");
        ApiError {
            status: actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            body: json!({"code": "index_unavailable", "message": "the index could not answer; try again"}),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(&self.body)
    }
}

/// A malformed or unknown query parameter (the query extractor's error, in our shape).
pub fn invalid_parameter(detail: &str) -> ApiError {
    ApiError::bad("invalid_parameter", detail)
}

/// `/v1/messages` parameters (unknown ones are refused: a typo must not silently widen a query).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessagesQuery {
    device_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "where")]
    condition: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let time =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).map_err(|_| {
            ApiError::bad(
                "invalid_time",
                format!("{name}: {value:?} is not an RFC 3339 time like 2026-11-26T09:00:00Z"),
            )
        })?;
    let ms = time.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms)
        .map(Some)
        .map_err(|_| ApiError::bad("invalid_time", format!("{name}: out of range")))
}

fn parse_limit(value: Option<&str>) -> Result<u32, ApiError> {
    let Some(value) = value else {
        return Ok(100);
    };
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad(
            "invalid_limit",
            format!("limit: {value:?} must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

fn encode_cursor(cursor: &Cursor) -> String {
    let text = json!([cursor.enqueued_ms, cursor.blob, cursor.position]).to_string();
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(value: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let invalid = || ApiError::bad("invalid_cursor", "cursor: not a cursor this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| invalid())?;
    let (enqueued_ms, blob, position): (i64, String, u64) =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok(Some(Cursor {
        enqueued_ms,
        blob,
        position,
    }))
}

fn compile(condition: Option<&str>) -> Result<Option<Condition>, ApiError> {
    let Some(text) = condition else {
        return Ok(None);
    };
    if text.len() > MAX_CONDITION_BYTES {
        return Err(ApiError::bad(
            "invalid_condition",
            format!("where: longer than {MAX_CONDITION_BYTES} bytes"),
        ));
    }
    Condition::compile(text).map(Some).map_err(|errors| ApiError {
        status: actix_web::http::StatusCode::BAD_REQUEST,
        body: json!({
            "code": "invalid_condition",
            "message": format!("where: {errors}"),
            "compilationErrors": errors.errors(),
        }),
    })
}

async fn messages(
    state: web::Data<ApiState>,
    query: web::Query<MessagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let q = query.into_inner();
    let filter = QueryFilter {
        device_id: q.device_id.clone(),
        from_ms: parse_time("from", q.from.as_deref())?,
        to_ms: parse_time("to", q.to.as_deref())?,
        message_id: None,
    };
    if let (Some(from), Some(to)) = (filter.from_ms, filter.to_ms)
        && from >= to
    {
        return Err(ApiError::bad("invalid_time", "from must be before to"));
    }
    let limit = parse_limit(q.limit.as_deref())?;
    let condition = compile(q.condition.as_deref())?;
    let mut after = decode_cursor(q.cursor.as_deref())?;
    let mut found = Vec::new();
    let mut scanned = 0u32;
    let mut exhausted = false;
    while found.len() < limit as usize && scanned < SCAN_BUDGET {
        let page = if condition.is_some() {
            MAX_LIMIT
        } else {
            limit - found.len() as u32
        };
        let rows = state
            .index
            .query(&filter, page, after.as_ref())
            .await
            .map_err(ApiError::internal)?;
        let got = rows.len() as u32;
        for row in rows {
            scanned += 1;
            after = Some(Cursor {
                enqueued_ms: row.enqueued_ms,
                blob: row.blob.clone(),
                position: row.position,
            });
            if condition.as_ref().is_none_or(|c| matches(c, &row)) {
                found.push(row);
                if found.len() == limit as usize {
                    break;
                }
            }
        }
        if got < page {
            exhausted = found.len() < limit as usize;
            break;
        }
    }
    let next = if exhausted {
        None
    } else {
        after.as_ref().map(encode_cursor)
    };
    observe(&state, "messages", started);
    Ok(HttpResponse::Ok().json(json!({
        "messages": found.iter().map(render).collect::<Vec<_>>(),
        "nextCursor": next,
    })))
}

/// Whether `condition` is true for the stored record, as a route would decide.
pub fn matches(condition: &Condition, row: &StoredRecord) -> bool {
    condition.evaluate(&to_message(row)).outcome == Outcome::True
}

/// The stored record as a message the query language reads.
pub fn to_message(row: &StoredRecord) -> iothub_protocol::Message {
    let mut message: iothub_protocol::Message =
        iothub_protocol::Message::new(match (&row.body, &row.body_raw) {
            (Some(json), _) => serde_json::to_vec(json).unwrap_or_default(),
            (None, Some(raw)) => raw.clone(),
            (None, None) => Vec::new(),
        });
    if let Ok(system) = serde_json::from_value(row.system.clone()) {
        message.system = system;
    }
    if let Value::Object(properties) = &row.properties {
        message.app_properties = properties
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
            .collect();
    }
    message
}

fn render(row: &StoredRecord) -> Value {
    let (body, body_encoding) = match (&row.body, &row.body_raw) {
        (Some(json), _) => (json.clone(), "json"),
        (None, Some(raw)) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
            "base64",
        ),
        (None, None) => (Value::Null, "none"),
    };
    let enqueued = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.enqueued_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    json!({
        "blob": row.blob,
        "position": row.position,
        "enqueuedTime": enqueued,
        "deviceId": row.device_id,
        "moduleId": row.module_id,
        "messageId": row.message_id,
        "correlationId": row.correlation_id,
        "contentType": row.content_type,
        "contentEncoding": row.content_encoding,
        "properties": row.properties,
        "systemProperties": row.system,
        "body": body,
        "bodyEncoding": body_encoding,
    })
}

async fn message(state: web::Data<ApiState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let rows = state.index.by_message_id(&id).await.map_err(ApiError::internal)?;
    observe(&state, "message", started);
    if rows.is_empty() {
        return Ok(HttpResponse::NotFound()
            .json(json!({"code": "not_found", "message": format!("no message has id {:?}", id.as_str())})));
    }
    Ok(HttpResponse::Ok().json(json!({"messages": rows.iter().map(render).collect::<Vec<_>>()})))
}

/// `limit` and `after` for the list endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    after: Option<String>,
    status: Option<String>,
}

async fn devices(state: web::Data<ApiState>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    if query.status.is_some() {
        return Err(ApiError::bad(
            "invalid_parameter",
            "status: only /v1/blobs takes a status",
        ));
    }
    let limit = parse_limit(query.limit.as_deref())?;
    let rows = state
        .index
        .devices(limit, query.after.as_deref())
        .await
        .map_err(ApiError::internal)?;
    observe(&state, "devices", started);
    Ok(HttpResponse::Ok().json(json!({ "devices": rows })))
}

async fn blobs(state: web::Data<ApiState>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let limit = parse_limit(query.limit.as_deref())?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(BlobStatus::parse(text).ok_or_else(|| {
            ApiError::bad(
                "invalid_status",
                format!("status: {text:?} is not pending, indexing, indexed or failed"),
            )
        })?),
    };
    let rows = state
        .index
        .blobs(status, limit, query.after.as_deref())
        .await
        .map_err(ApiError::internal)?;
    observe(&state, "blobs", started);
    Ok(HttpResponse::Ok().json(json!({ "blobs": rows })))
}

async fn stats(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let stats = state.index.stats().await.map_err(ApiError::internal)?;
    observe(&state, "stats", started);
    Ok(HttpResponse::Ok().json(stats))
}

fn observe(state: &ApiState, endpoint: &'static str, started: Instant) {
    state
        .metrics
        .query_latency
        .get_or_create(&EndpointLabel { endpoint })
        .observe(started.elapsed().as_secs_f64());
}
