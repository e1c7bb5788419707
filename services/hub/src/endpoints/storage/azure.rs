//! The Azure Blob backend's hub-side plumbing: the retries of the `object_store` client that
//! [`blob_store::open_with`] builds (with [`blob_store::http_client`]: rustls with ring, like the
//! rest of the hub, so no aws-lc), and the calls `object_store` lacks, Create Container and Get
//! Container Properties, signed with Shared Key on the same HTTP client.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use object_store::{BackoffConfig, RetryConfig};
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use url::Url;

use super::error::{SinkError, SinkErrorKind, scrub};

/// The REST API version of our own requests (the one `object_store` 0.14 sends).
const API_VERSION: &str = "2023-11-03";

/// The Azure account a sink writes to.
#[derive(Clone)]
pub(crate) struct AzureTarget {
    pub(crate) account: String,
    pub(crate) key: SecretString,
    pub(crate) endpoint: Url,
    pub(crate) container: String,
}

impl std::fmt::Debug for AzureTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureTarget")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .field("endpoint", &self.endpoint.as_str())
            .field("container", &self.container)
            .finish()
    }
}

/// The `object_store` retries of the storage endpoint's Azure client, for
/// [`blob_store::OpenOptions::with_retry`]. They are short: the dispatcher retries with its own
/// backoff and needs to learn of an outage quickly.
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
    }
}

/// Creates the container (Create Container, `PUT <endpoint>/<container>?restype=container`).
/// An existing container is success.
pub(crate) async fn create_container(
    target: &AzureTarget,
    client: &reqwest::Client,
) -> Result<(), SinkError> {
    let operation = "creating the container";
    match container_request(target, client, reqwest::Method::PUT, operation).await? {
        status if status.is_success() || status == StatusCode::CONFLICT => Ok(()),
        status => Err(status_error(target, operation, status)),
    }
}

/// Reads the container's properties (Get Container Properties, `HEAD …?restype=container`): the
/// cheapest call that proves the service answers, the key is accepted and the container exists.
pub(crate) async fn container_exists(
    target: &AzureTarget,
    client: &reqwest::Client,
) -> Result<(), SinkError> {
    let operation = "probing the container";
    match container_request(target, client, reqwest::Method::HEAD, operation).await? {
        status if status.is_success() => Ok(()),
        status => Err(status_error(target, operation, status)),
    }
}

/// Sends a Shared Key-signed, bodiless `method` to `<endpoint>/<container>?restype=container`.
async fn container_request(
    target: &AzureTarget,
    client: &reqwest::Client,
    method: reqwest::Method,
    operation: &str,
) -> Result<StatusCode, SinkError> {
    let mut url = target.endpoint.clone();
    url.path_segments_mut()
        .map_err(|()| SinkError::new(SinkErrorKind::Invalid, "the blob endpoint cannot be a base URL"))?
        .pop_if_empty()
        .push(&target.container);
    url.set_query(Some("restype=container"));
    let date = httpdate::fmt_http_date(SystemTime::now());
    let authorization = shared_key(target, method.as_str(), &url, &date)?;
    let mut request = client
        .request(method.clone(), url)
        .header("x-ms-date", &date)
        .header("x-ms-version", API_VERSION)
        .header("Authorization", authorization);
    if method == reqwest::Method::PUT {
        request = request.header("Content-Length", "0");
    }
    let response = request
        .send()
        .await
        .map_err(|error| transport_error(error, target, operation))?;
    Ok(response.status())
}

fn status_error(target: &AzureTarget, operation: &str, status: StatusCode) -> SinkError {
    let kind = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SinkErrorKind::Unauthorized,
        StatusCode::NOT_FOUND => SinkErrorKind::NotFound,
        StatusCode::BAD_REQUEST => SinkErrorKind::Invalid,
        _ => SinkErrorKind::Service,
    };
    SinkError::new(kind, format!("{operation} `{}`: HTTP {status}", target.container))
}

/// `SharedKey <account>:<signature>` for a request with no body and no standard headers
/// (the Shared Key string-to-sign of the Blob service, version 2015-02-21 and later).
fn shared_key(target: &AzureTarget, verb: &str, url: &Url, date: &str) -> Result<String, SinkError> {
    let mut resource = format!("/{}{}", target.account, url.path());
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
        .collect();
    query.sort();
    for (name, value) in query {
        resource.push_str(&format!("\n{name}:{value}"));
    }
    // Verb, then 11 empty standard headers (Content-Encoding … Range), then the x-ms- headers.
    let string_to_sign =
        format!("{verb}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n{resource}");
    let invalid_key = || {
        SinkError::new(
            SinkErrorKind::Invalid,
            "the storage connection string's `AccountKey` is invalid: not base64",
        )
    };
    let key = STANDARD
        .decode(target.key.expose_secret())
        .map_err(|_| invalid_key())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| invalid_key())?;
    mac.update(string_to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    Ok(format!("SharedKey {}:{signature}", target.account))
}

fn transport_error(error: reqwest::Error, target: &AzureTarget, operation: &str) -> SinkError {
    let kind = if error.is_connect() || error.is_timeout() || error.is_request() {
        SinkErrorKind::Unreachable
    } else {
        SinkErrorKind::Service
    };
    // Without the URL (the endpoint is in the sink's description), with the causes.
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let message = format!("{operation} `{}`: {text}", target.container);
    SinkError::new(kind, scrub(&message, Some(target.key.expose_secret())))
}
