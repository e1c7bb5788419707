//! Device-to-cloud telemetry over HTTPS, exactly as a device SDK sends it (the C SDK's
//! `iothubtransporthttp.c`; REST "Device - Send Device Event"):
//!
//! ```text
//! POST https://{host}/devices/{id}/messages/events?api-version=2020-09-30
//! Authorization: SharedAccessSignature sr=…&sig=…&se=…
//! iothub-to: /devices/{id}/messages/events
//! Accept: application/json
//! Content-Type: application/octet-stream
//! iothub-messageid / iothub-correlationid / iothub-contenttype / iothub-contentencoding
//! iothub-app-{name}: {value}            one per application property
//! ```
//!
//! The hub answers `204 No Content` once the message is durable. Other answers become a
//! [`SendError`] that tells the caller what to do next: slow down, stop, drop the message or retry.
//!
//! A fleet shares one [`reqwest::Client`] (one connection pool): build it once with [`client`]
//! and give it to every device with [`HttpsDevice::with_client`].
//!
//! Also here, because the registry uses them too: [`RenewingToken`] (SAS tokens regenerated before
//! they expire) and the reading of IoT Hub's and the local hub's error bodies.
//!
//! HTTP/1.1 lowercases header names, so application property names arrive lowercased
//! (`iothub-app-Level` is received as `level`); routing queries compare names case-insensitively.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_protocol::Message;
use iothub_protocol::connection_string::{DeviceConnectionString, DeviceCredential, ServiceConnectionString};
use iothub_protocol::sas::{SasToken, expiry_after};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use url::Url;

use crate::message::SimMessage;
use service_kit::tls::TlsError;

/// The `api-version` device SDKs send telemetry with (the C SDK's current one).
pub const TELEMETRY_API_VERSION: &str = "2020-09-30";
/// How long a generated SAS token is valid: one hour, as the Python SDK.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// A token with less than this left is replaced before the next request.
pub const TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(300);
/// How long [`client`] waits for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const USER_AGENT: &str = concat!("device-sim/", env!("CARGO_PKG_VERSION"));
/// Error bodies longer than this are cut in messages.
const MAX_ERROR_TEXT: usize = 300;

/// Why a device (or the shared client) could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The CA file could not be read.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// The endpoint (or the host from the connection string) is not a usable `http(s)://` URL.
    #[error("endpoint: {0}")]
    Endpoint(String),
    /// The connection string cannot be used over HTTPS (x509, module identity).
    #[error("device credentials: {0}")]
    Credential(String),
}

/// Why one message was not accepted, and so what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// 429 or 503 with an optional `Retry-After`: slow down.
    #[error("throttled by the hub (retry after {retry_after:?})")]
    Throttled {
        /// The hub's `Retry-After` (`retry-after-ms` or delta-seconds), if it sent one.
        retry_after: Option<Duration>,
    },
    /// 401/403: the credentials are wrong; the device must stop (not retry forever).
    #[error("the hub refused the device's credentials: {0}")]
    Unauthorized(String),
    /// Other 4xx: this message is refused (e.g. too large); counted as failed, not retried.
    /// A message that cannot be put in HTTP headers (a property name that is not an HTTP token,
    /// a value with control or non-ASCII characters) is refused the same way, with status 400,
    /// before anything is sent.
    #[error("the hub rejected the message (HTTP {status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The hub's error message.
        message: String,
    },
    /// Connection errors, timeouts, 5xx: retry later.
    #[error("sending failed, retry later: {0}")]
    Transient(String),
}

/// An HTTP client for the hub's API: trusts `ca_file`'s certificates (or the public roots when
/// `None`), follows no redirects (a redirect would carry the token elsewhere), and gives up
/// connecting after [`CONNECT_TIMEOUT`]. Build one per fleet and share it: it is a connection pool.
pub fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, SetupError> {
    let tls = service_kit::tls::client_config(ca_file)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| SetupError::Client(describe(&e)))
}

/// One simulated device sending telemetry over HTTPS.
#[derive(Debug)]
pub struct HttpsDevice {
    client: reqwest::Client,
    device_id: String,
    /// `…/devices/{id}/messages/events?api-version=…`.
    url: Url,
    /// `/devices/{id}/messages/events`, as the C SDK sends it in `iothub-to`.
    iothub_to: HeaderValue,
    token: RenewingToken,
    timeout: Duration,
}

impl HttpsDevice {
    /// A device with its own HTTP client; prefer [`HttpsDevice::with_client`] for fleets.
    ///
    /// `device`: the device connection string (HostName, DeviceId, SharedAccessKey or
    /// SharedAccessSignature; GatewayHostName is honoured as the connect host, as the SDKs do).
    /// `endpoint` overrides scheme, host and port (and adds its path as a prefix), e.g.
    /// `http://127.0.0.1:8080` for the local hub's plain listener; tokens still name `HostName`.
    /// `ca_file`: the CA to trust (the local hub's development CA); `None` trusts the public roots.
    /// `timeout` bounds each request, connection included. Tokens live one hour and are renewed
    /// five minutes before they expire.
    pub fn new(
        device: &DeviceConnectionString,
        endpoint: Option<&Url>,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, SetupError> {
        Self::with_client(client(ca_file)?, device, endpoint, timeout)
    }

    /// The same, sending through `client` (see [`client`]), shared with the rest of the fleet.
    pub fn with_client(
        client: reqwest::Client,
        device: &DeviceConnectionString,
        endpoint: Option<&Url>,
        timeout: Duration,
    ) -> Result<Self, SetupError> {
        if device.module_id().is_some() {
            return Err(SetupError::Credential(
                "module identities cannot send telemetry over HTTPS; use MQTT".to_owned(),
            ));
        }
        let token = RenewingToken::device(device.clone())?;
        let base = base_url(endpoint, device.connect_host())?;
        let path_and_query =
            iothub_protocol::https::telemetry_path(device.device_id(), TELEMETRY_API_VERSION);
        let url = api_url(&base, &path_and_query)?;
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query.as_str(), |(path, _)| path);
        let iothub_to = HeaderValue::from_str(path).map_err(|e| SetupError::Endpoint(e.to_string()))?;
        Ok(HttpsDevice {
            client,
            device_id: device.device_id().to_owned(),
            url,
            iothub_to,
            token,
            timeout,
        })
    }

    /// The device's id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Where messages are posted.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Sends one message; `Ok` when the hub answered 204 (or any 2xx).
    pub async fn send(&self, message: &SimMessage) -> Result<(), SendError> {
        let headers = self.headers(message)?;
        let response = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .timeout(self.timeout)
            .body(message.body.clone())
            .send()
            .await
            .map_err(|e| SendError::Transient(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            // Read to the end so the connection goes back to the pool.
            let _ = response.bytes().await;
            return Ok(());
        }
        let retry_after = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        let error = classify(status, retry_after, &error_message(status, &body));
        tracing::debug!(device_id = %self.device_id, %status, %error, "HTTPS telemetry not accepted");
        Err(error)
    }

    /// Every header of the request for `message`, token included.
    fn headers(&self, message: &SimMessage) -> Result<HeaderMap, SendError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            self.token.header().map_err(SendError::Unauthorized)?,
        );
        headers.insert(HeaderName::from_static("iothub-to"), self.iothub_to.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        for (name, value) in message_headers(message)? {
            headers.append(name, value);
        }
        Ok(headers)
    }
}

/// The `iothub-*` headers of `message` (iothub-protocol's mapping), checked to be valid HTTP.
fn message_headers(message: &SimMessage) -> Result<Vec<(HeaderName, HeaderValue)>, SendError> {
    let refuse = |message: String| SendError::Rejected { status: 400, message };
    if message.properties.iter().any(|(name, _)| name.is_empty()) {
        return Err(refuse(
            "not sent: an application property has an empty name".to_owned(),
        ));
    }
    let mut protocol = Message::default();
    protocol.system.message_id.clone_from(&message.message_id);
    protocol.system.correlation_id.clone_from(&message.correlation_id);
    protocol.system.content_type.clone_from(&message.content_type);
    protocol
        .system
        .content_encoding
        .clone_from(&message.content_encoding);
    protocol.app_properties = message
        .properties
        .iter()
        .map(|(name, value)| (name.clone(), Some(value.clone())))
        .collect();
    iothub_protocol::https::message_headers(&protocol)
        .into_iter()
        .map(|(name, value)| {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| refuse(format!("not sent: {name:?} is not a valid HTTP header name")))?;
            // `HeaderValue` would take bytes above 0x7F, which the hub cannot read back as text.
            let header_value = Some(value.as_str())
                .filter(|text| text.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
                .and_then(|text| HeaderValue::from_str(text).ok())
                .ok_or_else(|| {
                    refuse(format!(
                        "not sent: the value of {name} has characters HTTP headers cannot carry (visible ASCII only)"
                    ))
                })?;
            Ok((header_name, header_value))
        })
        .collect()
}

/// What an unsuccessful status means for the sender.
fn classify(status: StatusCode, retry_after: Option<Duration>, message: &str) -> SendError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            SendError::Unauthorized(format!("HTTP {}: {message}", status.as_u16()))
        }
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            SendError::Throttled { retry_after }
        }
        StatusCode::REQUEST_TIMEOUT => SendError::Transient(format!("HTTP 408: {message}")),
        status if status.is_server_error() => {
            SendError::Transient(format!("HTTP {}: {message}", status.as_u16()))
        }
        status => SendError::Rejected {
            status: status.as_u16(),
            message: message.to_owned(),
        },
    }
}

/// `retry-after-ms` (Azure's) or `Retry-After` in seconds; an HTTP-date is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
    };
    number("retry-after-ms")
        .map(Duration::from_millis)
        .or_else(|| number(RETRY_AFTER.as_str()).map(Duration::from_secs))
}

/// The message of an error answer: IoT Hub's `{"Message": …}`, the local hub's
/// `{"code": …, "message": …}` (as `code: message`), else the body text (cut) or the reason phrase.
pub(crate) fn error_message(status: StatusCode, body: &str) -> String {
    let text = body.trim();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let field = |name: &str| json.get(name).and_then(serde_json::Value::as_str);
        if let Some(message) = field("Message").or_else(|| field("message")) {
            return match field("code") {
                Some(code) => format!("{code}: {message}"),
                None => message.to_owned(),
            };
        }
    }
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no reason given").to_owned();
    }
    if text.chars().count() > MAX_ERROR_TEXT {
        let cut: String = text.chars().take(MAX_ERROR_TEXT).collect();
        return format!("{cut}…");
    }
    text.to_owned()
}

/// A `reqwest` error with its causes (`error sending request: connection refused`).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `endpoint`, or `https://{host}`.
pub(crate) fn base_url(endpoint: Option<&Url>, host: &str) -> Result<Url, SetupError> {
    match endpoint {
        Some(url) => Ok(url.clone()),
        None => Url::parse(&format!("https://{host}"))
            .map_err(|e| SetupError::Endpoint(format!("host {host:?}: {e}"))),
    }
}

/// `base`'s scheme, host, port and path prefix followed by `path_and_query` (which starts with `/`).
pub(crate) fn api_url(base: &Url, path_and_query: &str) -> Result<Url, SetupError> {
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(SetupError::Endpoint(format!(
            "{base} is not an http:// or https:// URL with a host"
        )));
    }
    let text = format!(
        "{}{}{path_and_query}",
        base.origin().ascii_serialization(),
        base.path().trim_end_matches('/')
    );
    Url::parse(&text).map_err(|e| SetupError::Endpoint(format!("{text}: {e}")))
}

/// Who signs a [`RenewingToken`].
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A device: `sr={host}/devices/{id}`, signed with its key (or its fixed token).
    Device(DeviceConnectionString),
    /// A shared access policy: `sr={host}`, `skn={policy}`.
    Service(ServiceConnectionString),
}

/// A SAS token for `Authorization` headers, valid [`TOKEN_TTL`] and regenerated when less than
/// [`TOKEN_RENEW_BEFORE`] is left. A connection string with a fixed `SharedAccessSignature` keeps
/// its token whatever its expiry (the hub will refuse it once it is too old).
#[derive(Debug)]
pub struct RenewingToken {
    source: TokenSource,
    current: Mutex<Option<CachedToken>>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    /// Marked sensitive: `Debug` shows `Sensitive`.
    header: HeaderValue,
    /// `se`, seconds since the epoch.
    expiry: u64,
}

impl RenewingToken {
    /// Tokens of a device; x509 devices have none.
    pub fn device(device: DeviceConnectionString) -> Result<Self, SetupError> {
        if matches!(device.credential(), DeviceCredential::X509) {
            return Err(SetupError::Credential(
                "x509 devices are not supported; use SharedAccessKey or SharedAccessSignature".to_owned(),
            ));
        }
        Ok(Self::new(TokenSource::Device(device)))
    }

    /// Tokens of a shared access policy.
    pub fn service(service: ServiceConnectionString) -> Self {
        Self::new(TokenSource::Service(service))
    }

    fn new(source: TokenSource) -> Self {
        RenewingToken {
            source,
            current: Mutex::new(None),
        }
    }

    /// The `Authorization` header value to send now; the error says why there is none.
    pub fn header(&self) -> Result<HeaderValue, String> {
        self.header_at(SystemTime::now())
    }

    fn header_at(&self, now: SystemTime) -> Result<HeaderValue, String> {
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = current.as_ref()
            && cached.expiry > now_secs.saturating_add(TOKEN_RENEW_BEFORE.as_secs())
        {
            return Ok(cached.header.clone());
        }
        let token = self.sign(expiry_after(now, TOKEN_TTL))?;
        let mut header = HeaderValue::from_str(&token.expose_secret())
            .map_err(|_| "the SAS token has characters HTTP headers cannot carry".to_owned())?;
        header.set_sensitive(true);
        *current = Some(CachedToken {
            header: header.clone(),
            expiry: token.expiry(),
        });
        Ok(header)
    }

    fn sign(&self, expiry: u64) -> Result<SasToken, String> {
        match &self.source {
            TokenSource::Device(device) => device
                .sas_token(expiry)
                .ok_or_else(|| "an x509 device has no SAS token".to_owned()),
            TokenSource::Service(service) => Ok(service.sas_token(expiry)),
        }
    }
}

#[cfg(test)]
mod tests;
