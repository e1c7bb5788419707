//! One call to the CRM's webhook, and what its answer means.
//!
//! Every request is a `POST` of the rendered ticket, signed per Standard Webhooks (`webhook-id` =
//! the ticket key, `webhook-timestamp`, `webhook-signature: v1,<base64>`), with `Idempotency-Key` =
//! the ticket key (the same on every retry and redelivery), the CRM's authentication, and the
//! message's trace context (`traceparent`, `tracestate`).
//!
//! | answer | [`CallResult`] | then |
//! |---|---|---|
//! | 2xx | `Created` | complete |
//! | 409 | `Duplicate` (the key was seen: the ticket exists) | complete |
//! | 408, 429, 5xx, timeout, connection error | `Failed` (with `Retry-After`) | retry, then abandon |
//! | 401, 403, 404, 410, 3xx | `Failed`: our credentials or the URL are wrong, not the message | retry, then abandon |
//! | any other 4xx | `Rejected` | dead-letter |

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use secrecy::ExposeSecret as _;
use service_kit::telemetry::TraceContext;

use crate::config::{Auth, HandlerConfig};
use crate::retry::parse_retry_after;
use crate::signing::SigningSecret;
use crate::url_policy::redact;

/// Bytes of an error answer kept for the dead-letter description and logs.
const MAX_DETAIL_BYTES: usize = 512;

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// 2xx: the ticket was created.
    Created,
    /// 409: the CRM already has a ticket for this key.
    Duplicate,
    /// A 4xx about this message: retrying cannot help.
    Rejected {
        /// The status code.
        status: u16,
        /// The start of the answer's body.
        detail: String,
    },
    /// A failure that may pass: retry later.
    Failed {
        /// Metric label: `408`, `429`, `5xx`, `3xx`, `auth`, `404`, `timeout`, `connect`, `error`.
        kind: &'static str,
        /// What the server asked for.
        retry_after: Option<Duration>,
        /// For logs.
        detail: String,
    },
}

impl CallResult {
    /// The metric label of this result.
    pub fn label(&self) -> &'static str {
        match self {
            CallResult::Created => "2xx",
            CallResult::Duplicate => "409",
            CallResult::Rejected { .. } => "4xx",
            CallResult::Failed { kind, .. } => kind,
        }
    }

    /// Whether the answer shows the webhook works (for the circuit breaker).
    pub fn endpoint_healthy(&self) -> bool {
        !matches!(self, CallResult::Failed { .. })
    }
}

/// The webhook: its URL, client, signing secret and authentication.
#[derive(Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    secret: SigningSecret,
    headers: HeaderMap,
}

/// Why the webhook could not be set up (a configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse or the policy refuses it.
    #[error("webhook.url: {0}")]
    Url(String),
    /// The signing secret is unusable.
    #[error("webhook.signing_secret: {0}")]
    Secret(String),
    /// An authentication value cannot be a header.
    #[error("webhook.auth: {0}")]
    Auth(String),
    /// The HTTP client could not be built.
    #[error("webhook client: {0}")]
    Client(String),
}

impl Webhook {
    /// Builds the webhook client from the configuration; `content_type` is the renderer's.
    pub fn new(config: &HandlerConfig, content_type: &str) -> Result<Self, WebhookError> {
        let settings = &config.webhook;
        let url = url::Url::parse(&settings.url).map_err(|e| WebhookError::Url(e.to_string()))?;
        let policy = config.url_policy();
        policy
            .check_url(&url)
            .map_err(|e| WebhookError::Url(e.to_string()))?;
        let secret = SigningSecret::parse(settings.signing_secret.expose_secret())
            .map_err(|e| WebhookError::Secret(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .map_err(|e| WebhookError::Auth(format!("content type: {e}")))?,
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!(
                "iot-routing-critical-handler/",
                env!("CARGO_PKG_VERSION")
            )),
        );
        if let Some((name, value)) = auth_header(&settings.auth)? {
            headers.insert(name, value);
        }
        let client = policy
            .client_builder(&url)
            .tls_backend_preconfigured(
                (*service_kit::tls::client_config(settings.ca_file.as_deref())
                    .map_err(|e| WebhookError::Client(format!("webhook.ca_file: {e}")))?)
                .clone(),
            )
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
            .pool_max_idle_per_host(config.concurrency)
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Webhook {
            client,
            url,
            secret,
            headers,
        })
    }

    /// The URL without credentials or query, for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Posts `payload` for the ticket `key`, signed at the current time.
    pub async fn call(&self, key: &str, payload: Vec<u8>, trace: &TraceContext) -> CallResult {
        let timestamp = unix_now();
        let signature = self.secret.sign(key, timestamp, &payload);
        let mut request = reqwest::Request::new(reqwest::Method::POST, self.url.clone());
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        // A ticket key is visible ASCII (see `ticket`); a signature is base64.
        match (HeaderValue::from_str(key), HeaderValue::try_from(signature)) {
            (Ok(id), Ok(signature)) => {
                headers.insert(WEBHOOK_ID, id.clone());
                headers.insert(IDEMPOTENCY_KEY, id);
                headers.insert(WEBHOOK_SIGNATURE, signature);
            }
            (Err(e), _) | (_, Err(e)) => {
                return CallResult::Failed {
                    kind: "error",
                    retry_after: None,
                    detail: format!("request header: {e}"),
                };
            }
        }
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        for (name, value) in [(TRACEPARENT, &trace.traceparent), (TRACESTATE, &trace.tracestate)] {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        *request.body_mut() = Some(payload.into());
        match self.client.execute(request).await {
            Ok(response) => classify(response).await,
            Err(e) => failure(e),
        }
    }
}

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

async fn classify(response: reqwest::Response) -> CallResult {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let detail = read_detail(response).await;
    let failed = |kind| CallResult::Failed {
        kind,
        retry_after,
        detail: format!("HTTP {}: {detail}", status.as_u16()),
    };
    match status {
        s if s.is_success() => CallResult::Created,
        StatusCode::CONFLICT => CallResult::Duplicate,
        StatusCode::REQUEST_TIMEOUT => failed("408"),
        StatusCode::TOO_MANY_REQUESTS => failed("429"),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => failed("auth"),
        StatusCode::NOT_FOUND | StatusCode::GONE => failed("404"),
        s if s.is_server_error() => failed("5xx"),
        s if s.is_redirection() => failed("3xx"),
        s if s.is_client_error() => CallResult::Rejected {
            status: s.as_u16(),
            detail,
        },
        _ => failed("error"),
    }
}

/// Reads at most [`MAX_DETAIL_BYTES`] of the body for diagnostics, and drains a little more so the
/// connection can be reused; a large body is not read to the end.
async fn read_detail(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    let mut read = 0usize;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if kept.len() < MAX_DETAIL_BYTES {
            let room = MAX_DETAIL_BYTES - kept.len();
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if read > 64 * 1024 {
            break;
        }
    }
    String::from_utf8_lossy(&kept)
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

fn failure(error: reqwest::Error) -> CallResult {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "error"
    };
    // The URL may carry a secret in its path or query: leave it out of the message.
    let error = error.without_url();
    CallResult::Failed {
        kind,
        retry_after: None,
        detail: error_chain(&error.to_string(), &error),
    }
}

fn error_chain(head: &str, error: &reqwest::Error) -> String {
    let mut text = head.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn auth_header(auth: &Auth) -> Result<Option<(HeaderName, HeaderValue)>, WebhookError> {
    use base64::Engine as _;
    let sensitive = |text: String| {
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| WebhookError::Auth("the value holds characters a header cannot carry".to_owned()))?;
        value.set_sensitive(true);
        Ok::<_, WebhookError>(value)
    };
    Ok(match auth {
        Auth::None => None,
        Auth::Bearer { token } => Some((
            AUTHORIZATION,
            sensitive(format!("Bearer {}", token.expose_secret()))?,
        )),
        Auth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose_secret());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Some((AUTHORIZATION, sensitive(format!("Basic {encoded}"))?))
        }
        Auth::Header { name, value } => {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| WebhookError::Auth(format!("{name:?} is not a header name")))?;
            Some((name, sensitive(value.expose_secret().to_owned())?))
        }
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
