//! Blob containers by connection string: local directories and Azure Blob Storage / Azurite
//! through `object_store`.
//!
//! The hub's storage endpoint writes blobs and `storage-archiver` reads them; both name the place
//! with the same connection string and open a container the same way, here.
//!
//! # Connection strings
//!
//! ```
//! use blob_store::StorageConnection;
//!
//! // A local directory; each container is a subdirectory. Relative to the working directory…
//! let local: StorageConnection = "file://data/blobs".parse()?;
//! assert_eq!(local.location(), "file://data/blobs");
//! // …or absolute.
//! let local: StorageConnection = "file:///var/lib/iot-routing/blobs".parse()?;
//!
//! // Azure Blob Storage, as the portal shows it (keys are case-insensitive; `EndpointSuffix`
//! // defaults to core.windows.net, `DefaultEndpointsProtocol` to https).
//! let azure: StorageConnection = "DefaultEndpointsProtocol=https;AccountName=contoso;\
//!     AccountKey=c2VjcmV0LWtleQ==;EndpointSuffix=core.windows.net".parse()?;
//! assert_eq!(azure.location(), "https://contoso.blob.core.windows.net");
//!
//! // An explicit blob endpoint, e.g. Azurite's path-style one.
//! let azurite: StorageConnection = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
//!     AccountKey=c2VjcmV0LWtleQ==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1".parse()?;
//! assert_eq!(azurite.location(), "http://127.0.0.1:10000/devstoreaccount1");
//!
//! // Azurite's shorthand, with its well-known account and key; the proxy URI moves the host.
//! let dev: StorageConnection = "UseDevelopmentStorage=true".parse()?;
//! assert_eq!(dev.location(), "http://127.0.0.1:10000/devstoreaccount1");
//! let dev: StorageConnection = "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite".parse()?;
//! assert_eq!(dev.location(), "http://azurite:10000/devstoreaccount1");
//!
//! // Errors name the key at fault, never a value; `Debug` redacts the account key.
//! let error = "AccountName=contoso;AccountKey=not base64".parse::<StorageConnection>().unwrap_err();
//! assert_eq!(error.to_string(), "the storage connection string's `AccountKey` is invalid: not base64");
//! assert!(format!("{azure:?}").contains("<redacted>"));
//! # Ok::<(), blob_store::ConnectionStringError>(())
//! ```
//!
//! # Opening a container
//!
//! [`open`] gives an `object_store` rooted at the container: object paths are blob names.
//! It does no IO and creates nothing; whoever needs the container created does that itself.
//!
//! ```
//! use futures_util::TryStreamExt as _;
//! use object_store::ObjectStoreExt as _;
//! use object_store::path::Path;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let connection_string = format!("file://{}", tmp.path().display());
//! let connection = blob_store::StorageConnection::parse(&connection_string)?;
//! let store = blob_store::open(&connection, "storagecontainer")?;
//! store.put(&Path::from("hub/0/2018/10/30/10/56"), "{}\n".into()).await?;
//! let blobs: Vec<_> = store.list(None).try_collect().await?;
//! assert_eq!(blobs[0].location.as_ref(), "hub/0/2018/10/30/10/56");
//! # Ok(()) }
//! ```
//!
//! [`open_with`] takes [`OpenOptions`]: the retry policy of the Azure client (each service has
//! its own) and an HTTP client to share.
//!
//! ```
//! use std::time::Duration;
//! use object_store::{BackoffConfig, RetryConfig};
//!
//! let connection = blob_store::StorageConnection::parse("UseDevelopmentStorage=true")?;
//! let retry = RetryConfig {
//!     backoff: BackoffConfig::default(),
//!     max_retries: 5,
//!     retry_timeout: Duration::from_secs(60),
//! };
//! let client = blob_store::http_client()?;
//! let options = blob_store::OpenOptions::new().with_retry(retry).with_http_client(client);
//! let store = blob_store::open_with(&connection, "storagecontainer", &options)?;
//! // `Debug` and `Display` show the account and container, never the key.
//! assert_eq!(store.to_string(), "MicrosoftAzure { account: devstoreaccount1, container: storagecontainer }");
//! # Ok::<(), blob_store::BlobStoreError>(())
//! ```
//!
//! | item | what |
//! |---|---|
//! | [`StorageConnection`], [`ConnectionStringError`] | parse a connection string; where, without secrets |
//! | [`open`], [`open_with`], [`OpenOptions`] | an `Arc<dyn ObjectStore>` rooted at a container |
//! | [`check_container_name`], [`container_dir`] | Azure's container name rules; a local container's directory |
//! | [`http_client`], [`Connector`] | the rustls (ring) HTTP client, and how `object_store` gets it |
//! | [`BlobStoreError`] | why a container could not be opened, never with a secret |

mod connection;
mod error;
mod http;
mod redact;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};
use secrecy::ExposeSecret as _;

pub use connection::{ConnectionStringError, DEV_ACCOUNT, DEV_ACCOUNT_KEY, StorageConnection};
pub use error::BlobStoreError;
pub use http::{Connector, http_client};

use redact::Redacted;

/// How [`open_with`] builds an Azure store. Local directories ignore it.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    retry: Option<RetryConfig>,
    http_client: Option<reqwest::Client>,
}

impl OpenOptions {
    /// `object_store`'s default retries and a new [`http_client`] per store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Azure client's retries (`object_store` retries timeouts, connection errors, 5xx and
    /// 429 by itself, within this budget). Without it, `object_store`'s default (10 retries, up
    /// to 3 minutes).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Use `client` (e.g. one from [`http_client`], shared with other requests) instead of
    /// building a new one.
    #[must_use]
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }
}

/// [`open_with`] with the default [`OpenOptions`].
pub fn open(connection: &StorageConnection, container: &str) -> Result<Arc<dyn ObjectStore>, BlobStoreError> {
    open_with(connection, container, &OpenOptions::default())
}

/// The container `container` of `connection`, as an `object_store` whose paths are blob names.
///
/// No IO: nothing is contacted, checked or created.
///
/// - **Local** (`file://<root>`): the directory `<root>/<container>` ([`container_dir`]), which
///   need not exist yet. Writes are durable when they return (the file and its directory are
///   fsynced); a write lands in a staging file `<name>#<n>` first and listings skip such names.
///   While the directory is missing, reads fail with `NotFound`, listings are empty and writes
///   create it.
/// - **Azure** / **Azurite**: Shared Key with the account key, the endpoint exactly as the
///   connection string gives it (path-style for Azurite; plain `http` allowed only when the
///   endpoint is `http`), [`OpenOptions`]' retries, and the HTTP client from [`http_client`]
///   (or the one given). A missing container shows as `NotFound` on first use.
///
/// The container name must follow Azure's rules on both backends ([`check_container_name`]), so
/// that a local one cannot leave the directory. The store's `Debug` and `Display` never show the
/// account key.
pub fn open_with(
    connection: &StorageConnection,
    container: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn ObjectStore>, BlobStoreError> {
    match connection {
        StorageConnection::Local { root } => {
            let dir = container_dir(root, container)?;
            // Rooted at `/` with the directory as a prefix, rather than `new_with_prefix`, which
            // canonicalizes and so needs the directory to exist.
            let prefix = object_store::path::Path::from_absolute_path(&dir)
                .map_err(|error| BlobStoreError::LocalPath(error.to_string()))?;
            let local = LocalFileSystem::new().with_fsync(true);
            Ok(Arc::new(PrefixStore::new(local, prefix)))
        }
        StorageConnection::Azure {
            account,
            key,
            endpoint,
        } => {
            check_name(container)?;
            let client = match &options.http_client {
                Some(client) => client.clone(),
                None => http_client()?,
            };
            let mut builder = MicrosoftAzureBuilder::new()
                .with_account(account)
                .with_access_key(key.expose_secret())
                .with_container_name(container)
                .with_endpoint(endpoint.as_str().trim_end_matches('/').to_owned())
                .with_allow_http(endpoint.scheme() == "http")
                .with_http_connector(Connector::new(client));
            if let Some(retry) = &options.retry {
                builder = builder.with_retry(retry.clone());
            }
            let store = builder.build().map_err(|error| {
                BlobStoreError::azure("configuring Azure Blob storage", &error, key.expose_secret())
            })?;
            Ok(Arc::new(Redacted(store)))
        }
    }
}

/// The directory of the local container `container` under `root`, made absolute against the
/// working directory (symbolic links are not resolved). The directory need not exist.
///
/// ```
/// let dir = blob_store::container_dir(std::path::Path::new("/var/blobs"), "storagecontainer")?;
/// assert_eq!(dir, std::path::Path::new("/var/blobs/storagecontainer"));
/// # Ok::<(), blob_store::BlobStoreError>(())
/// ```
pub fn container_dir(root: &Path, container: &str) -> Result<PathBuf, BlobStoreError> {
    check_name(container)?;
    std::path::absolute(root.join(container)).map_err(|error| BlobStoreError::LocalDirectory {
        kind: error.kind(),
        message: error.to_string(),
    })
}

/// Azure's container name rules: 3-63 characters, lowercase letters, digits and single hyphens,
/// starting and ending with a letter or digit. `Err` says which rule is broken.
///
/// ```
/// assert_eq!(blob_store::check_container_name("storagecontainer"), Ok(()));
/// assert_eq!(
///     blob_store::check_container_name("a--b"),
///     Err("`-` must sit between letters or digits")
/// );
/// ```
pub fn check_container_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("it must have 3 to 63 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("only lowercase letters, digits and `-` are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("`-` must sit between letters or digits");
    }
    Ok(())
}

fn check_name(container: &str) -> Result<(), BlobStoreError> {
    check_container_name(container).map_err(|reason| BlobStoreError::InvalidContainer {
        container: container.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt as _;
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStoreExt as _, PutMode, PutOptions};

    use super::*;

    #[test]
    fn container_names_follow_azures_rules() {
        for good in ["abc", "storagecontainer", "a-b-c", "0day", &"a".repeat(63)] {
            assert_eq!(check_container_name(good), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("ab", "it must have 3 to 63 characters"),
            (&"a".repeat(64), "it must have 3 to 63 characters"),
            (
                "Storage_Container",
                "only lowercase letters, digits and `-` are allowed",
            ),
            ("../etc", "only lowercase letters, digits and `-` are allowed"),
            ("/etc", "only lowercase letters, digits and `-` are allowed"),
            ("-abc", "`-` must sit between letters or digits"),
            ("abc-", "`-` must sit between letters or digits"),
            ("a--b", "`-` must sit between letters or digits"),
        ] {
            assert_eq!(check_container_name(bad), Err(reason), "{bad}");
        }
        let connection = StorageConnection::parse("file:///tmp/blobs").unwrap();
        let error = open(&connection, "/etc").unwrap_err();
        assert_eq!(
            error.to_string(),
            "container name `/etc` is invalid: only lowercase letters, digits and `-` are allowed"
        );
        let dev = StorageConnection::parse("UseDevelopmentStorage=true").unwrap();
        assert!(matches!(
            open(&dev, "A").unwrap_err(),
            BlobStoreError::InvalidContainer { .. }
        ));
    }

    #[test]
    fn container_dir_is_absolute() {
        let dir = container_dir(Path::new("data/blobs"), "storagecontainer").unwrap();
        assert!(dir.is_absolute(), "{}", dir.display());
        assert!(dir.ends_with("data/blobs/storagecontainer"), "{}", dir.display());
    }

    #[tokio::test]
    async fn a_local_container_is_a_directory_that_need_not_exist_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let connection = StorageConnection::parse(&format!("file://{}", tmp.path().display())).unwrap();
        let store = open(&connection, "storagecontainer").unwrap();
        let dir = tmp.path().join("storagecontainer");
        assert!(!dir.exists(), "open does no IO");

        let name = ObjectPath::from("hub/0/2018/10/30/10/56");
        let missing = store.get(&name).await.unwrap_err();
        assert!(
            matches!(missing, object_store::Error::NotFound { .. }),
            "{missing}"
        );
        let nothing: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert!(nothing.is_empty(), "{nothing:?}");

        store.put(&name, "{}\n".into()).await.unwrap();
        assert_eq!(
            std::fs::read(dir.join("hub/0/2018/10/30/10/56")).unwrap(),
            b"{}\n"
        );
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let taken = store.put_opts(&name, "x".into(), create).await.unwrap_err();
        assert!(
            matches!(taken, object_store::Error::AlreadyExists { .. }),
            "{taken}"
        );

        // Listings are relative to the container and skip staging files.
        std::fs::write(dir.join("hub/0/2018/10/30/10/57#1"), b"partial").unwrap();
        let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
        let names: Vec<_> = listed.iter().map(|meta| meta.location.to_string()).collect();
        assert_eq!(names, ["hub/0/2018/10/30/10/56"]);
        assert_eq!(
            store.get(&name).await.unwrap().bytes().await.unwrap().as_ref(),
            b"{}\n"
        );
    }

    #[test]
    fn an_azure_store_never_shows_the_key() {
        let key = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtcHJpbnRlZA==";
        let connection = StorageConnection::parse(&format!("AccountName=acct;AccountKey={key}")).unwrap();
        let store = open(&connection, "container").unwrap();
        let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key).unwrap();
        let decoded = format!("{decoded:?}");
        for text in [format!("{store:?}"), store.to_string()] {
            assert!(!text.contains(key), "{text}");
            assert!(!text.contains(decoded.trim_matches(['[', ']'])), "{text}");
            assert_eq!(text, "MicrosoftAzure { account: acct, container: container }");
        }
    }
}
