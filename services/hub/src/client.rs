//! The CLI's way to a running hub: its URL, a service SAS token, and TLS trust. Given explicitly
//! (`--url`, `--connection-string`, `--ca-file`), or read from the hub's own configuration and data
//! directory when the CLI runs beside it (`--config`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::Args;
use iothub_protocol::connection_string::ServiceConnectionString;
use iothub_protocol::sas::{SharedAccessKey, expiry_after};

use crate::config::{HubConfig, Right};
use crate::policies::Policies;
use crate::registry::Registry;

/// How the CLI reaches a hub.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The hub's HTTP(S) API, e.g. https://localhost:443 (default: from the hub configuration).
    #[arg(long, env = "HUB_URL")]
    pub url: Option<String>,
    /// A service connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...).
    #[arg(long, env = "HUB_SERVICE_CONNECTION_STRING", hide_env_values = true)]
    pub connection_string: Option<String>,
    /// PEM CA certificate to trust for https (default: the hub's development CA, if used).
    #[arg(long, env = "HUB_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The hub's configuration file, to find its listeners, data directory and policy keys.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// A resolved connection to a hub's API.
#[derive(Debug)]
pub struct HubClient {
    /// Base URL, without a trailing slash.
    pub url: String,
    /// For `Authorization` headers.
    pub credentials: ServiceConnectionString,
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl HubClient {
    /// Resolves `args`; `right` picks a policy when reading keys from the data directory.
    pub fn connect(args: &ClientArgs, right: Right) -> anyhow::Result<HubClient> {
        let config = match (&args.url, &args.connection_string) {
            (Some(_), Some(_)) => None,
            _ => Some(crate::cli::load_config(args.config.as_deref(), &[])?),
        };
        let credentials = match &args.connection_string {
            Some(text) => text.parse().context("--connection-string")?,
            None => policy_credentials(config.as_ref().context("no hub configuration")?, right)?,
        };
        let url = match &args.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => api_url(config.as_ref().context("no hub configuration")?)?,
        };
        let ca_file = args.ca_file.clone().or_else(|| {
            config
                .as_ref()
                .filter(|c| c.tls.cert_file.is_none())
                .map(crate::tls::development_ca_file)
        });
        let http = http_client(ca_file.as_deref().filter(|_| url.starts_with("https:")))?;
        Ok(HubClient {
            url,
            credentials,
            http,
        })
    }

    /// A fresh `Authorization` header value (valid one hour).
    pub fn authorization(&self) -> String {
        self.credentials
            .sas_token(expiry_after(SystemTime::now(), Duration::from_secs(3600)))
            .expose_secret()
    }

    /// `url` + `path` + `?api-version=...`.
    pub fn endpoint(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!(
            "{}{path}{separator}api-version={}",
            self.url,
            iothub_protocol::API_VERSION
        )
    }
}

/// The hub's API URL from its configuration: plain HTTP on loopback if enabled, else HTTPS.
fn api_url(config: &HubConfig) -> anyhow::Result<String> {
    let local = |addr: std::net::SocketAddr| {
        if addr.ip().is_unspecified() {
            std::net::SocketAddr::new([127, 0, 0, 1].into(), addr.port())
        } else {
            addr
        }
    };
    if let Some(addr) = config.listeners.http {
        return Ok(format!("http://{}", local(addr)));
    }
    if let Some(addr) = config.listeners.https {
        return Ok(format!("https://{}:{}", config.primary_host(), addr.port()));
    }
    bail!("the hub has neither listeners.http nor listeners.https; give --url")
}

/// A service connection string built from a policy's key in the hub's data directory.
pub fn policy_credentials(config: &HubConfig, right: Right) -> anyhow::Result<ServiceConnectionString> {
    let registry = Registry::open(&config.data_dir.join("registry.db"))
        .with_context(|| format!("the hub's data directory {}", config.data_dir.display()))?;
    let policies = Policies::load(&config.policies, &registry)?;
    let policy = policies
        .iter()
        .find(|p| p.may(right))
        .with_context(|| format!("no policy has the {right:?} right"))?;
    let key = SharedAccessKey::from_base64(policy.keys[0].expose_secret())?;
    Ok(ServiceConnectionString::new(
        config.primary_host(),
        &policy.name,
        key,
    )?)
}

fn http_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let tls = service_kit::tls::client_config(ca_file).context("--ca-file")?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}
