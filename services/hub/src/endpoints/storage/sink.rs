//! [`StorageSink`]: writes a batch as one blob to a local directory or to Azure Blob Storage /
//! Azurite, through `object_store`.
//!
//! # Whole or not at all
//!
//! A blob is written with one `put`: Azure's Put Blob commits the whole body or nothing, and the
//! local backend writes a staging file `name#N` beside the target, fsyncs it, hard-links it to the
//! name (which fails if the name exists) and fsyncs the directory. A crash mid-write leaves at most
//! a staging file, which `object_store` listings skip (names ending in `#` and digits); a crash
//! after the link leaves the whole blob. Readers that walk the directory themselves must skip
//! `*#<digits>` files too.
//!
//! # Never overwritten
//!
//! Every put is `PutMode::Create` (`If-None-Match: *` on Azure, a hard link locally). When the
//! name is taken, the sink first checks whether the existing blob holds exactly these bytes —
//! encoding is deterministic, so that is this same batch written before (a retry whose reply was
//! lost, a restart after a crash) and the write is reported done with `already_existed: true`.
//! Otherwise it tries the next suffix (`_1`, `_2`, …, see [`super::naming::with_suffix`]), up to
//! [`MAX_SUFFIX`].
//!
//! # The container
//!
//! IoT Hub needs the container to exist before the endpoint is created. This hub creates it
//! instead (the local directory with `create_dir_all`, the Azure container with Create Container):
//! [`StorageSink::connect`] ensures it once, and a write that finds it missing (deleted while
//! running) creates it again and retries once. [`StorageSink::probe`] only looks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use blob_store::OpenOptions;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use iothub_protocol::{Message, Timestamp};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use secrecy::ExposeSecret as _;

use super::azure::{self, AzureTarget};
use super::connection::StorageConnection;
use super::encode::{EncodeError, Encoding, encode_blob};
use super::error::{SinkError, SinkErrorKind};
use super::naming::{FileNameFormat, check_hub_name, with_suffix};

/// The partition in blob names: this hub has one.
pub const PARTITION: &str = "0";
/// The highest collision suffix tried before giving up with [`SinkErrorKind::Conflict`].
pub const MAX_SUFFIX: u32 = 1000;
/// How long [`StorageSink::probe`] waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A storage endpoint's settings, validated without any IO (all at once, at config load).
#[derive(Debug, Clone)]
pub struct StorageSinkConfig {
    /// Where and with which credentials.
    pub connection: StorageConnection,
    /// The container (a subdirectory for `file://`).
    pub container: String,
    /// `{iothub}` in blob names.
    pub hub_name: String,
    /// The blob name format.
    pub file_name_format: FileNameFormat,
    /// The blob encoding.
    pub encoding: Encoding,
}

impl StorageSinkConfig {
    /// Validates an endpoint's settings: the connection string, the container name (Azure's
    /// rules, for both backends), the hub name and the `fileNameFormat`. Errors are
    /// [`SinkErrorKind::Invalid`] and name the setting.
    pub fn new(
        connection_string: &str,
        container: &str,
        hub_name: &str,
        file_name_format: &str,
        encoding: Encoding,
    ) -> Result<Self, SinkError> {
        let connection = StorageConnection::parse(connection_string)?;
        blob_store::check_container_name(container).map_err(|reason| {
            SinkError::new(
                SinkErrorKind::Invalid,
                format!("containerName `{container}` is invalid: {reason}"),
            )
        })?;
        check_hub_name(hub_name).map_err(|reason| {
            SinkError::new(
                SinkErrorKind::Invalid,
                format!("hub name `{hub_name}` cannot be used in blob names: {reason}"),
            )
        })?;
        let file_name_format = FileNameFormat::parse(file_name_format)?;
        Ok(StorageSinkConfig {
            connection,
            container: container.to_owned(),
            hub_name: hub_name.to_owned(),
            file_name_format,
            encoding,
        })
    }
}

/// One blob written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobWritten {
    /// Its name in the container.
    pub name: String,
    /// Its size.
    pub bytes: usize,
    /// How many records it holds.
    pub records: usize,
    /// The same bytes were already there under this name (written earlier by a try whose outcome
    /// was lost); nothing new was written.
    pub already_existed: bool,
}

/// A blob in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its name in the container.
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

/// Writes batches as blobs. Cheap to clone; share one per endpoint.
#[derive(Debug, Clone)]
pub struct StorageSink {
    inner: Arc<Inner>,
}

/// Shows the settings (key redacted) and where it writes; never the clients.
struct Inner {
    config: StorageSinkConfig,
    backend: Backend,
    /// The container, from [`blob_store::open_with`]: object paths are blob names.
    store: Arc<dyn ObjectStore>,
    location: String,
}

/// What the sink needs beside the store: where to create and probe the container.
enum Backend {
    /// The container directory, absolute (it need not exist when the sink is built).
    Local { dir: PathBuf },
    /// The account, and the HTTP client the store uses too.
    Azure {
        target: AzureTarget,
        client: reqwest::Client,
    },
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSink")
            .field("location", &self.location)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StorageSink {
    /// The sink for `config`, without IO (no connection is made, nothing is created).
    pub fn new(config: StorageSinkConfig) -> Result<Self, SinkError> {
        let (backend, location) = match &config.connection {
            StorageConnection::Local { root } => {
                let dir = blob_store::container_dir(root, &config.container)?;
                let location = format!("file://{}", dir.display());
                (Backend::Local { dir }, location)
            }
            StorageConnection::Azure {
                account,
                key,
                endpoint,
            } => {
                let target = AzureTarget {
                    account: account.clone(),
                    key: key.clone(),
                    endpoint: endpoint.clone(),
                    container: config.container.clone(),
                };
                let client = blob_store::http_client()?;
                let location = format!("{}/{}", endpoint.as_str().trim_end_matches('/'), config.container);
                (Backend::Azure { target, client }, location)
            }
        };
        let options = match &backend {
            Backend::Local { .. } => OpenOptions::new(),
            Backend::Azure { client, .. } => OpenOptions::new()
                .with_retry(azure::retry_config())
                .with_http_client(client.clone()),
        };
        let store = blob_store::open_with(&config.connection, &config.container, &options)?;
        Ok(StorageSink {
            inner: Arc::new(Inner {
                config,
                backend,
                store,
                location,
            }),
        })
    }

    /// [`Self::new`], then [`Self::ensure_container`].
    pub async fn connect(config: StorageSinkConfig) -> Result<Self, SinkError> {
        let sink = Self::new(config)?;
        sink.ensure_container().await?;
        Ok(sink)
    }

    /// Where it writes, without secrets: `file:///dir/container` or `http(s)://…/container`.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &StorageSinkConfig {
        &self.inner.config
    }

    /// Creates the container if it is missing.
    pub async fn ensure_container(&self) -> Result<(), SinkError> {
        match &self.inner.backend {
            Backend::Local { dir, .. } => tokio::fs::create_dir_all(dir)
                .await
                .map_err(|error| SinkError::from_io("creating the container directory", &error)),
            Backend::Azure { target, client, .. } => azure::create_container(target, client).await,
        }
    }

    /// Whether the container is there and usable: Get Container Properties (Azure: service up,
    /// key accepted, container present), or a look at the directory (local). Bounded by a 10 s
    /// timeout (`unreachable`). It never creates anything.
    pub async fn probe(&self) -> Result<(), SinkError> {
        let probe = async {
            match &self.inner.backend {
                Backend::Local { dir, .. } => {
                    let metadata = tokio::fs::metadata(dir)
                        .await
                        .map_err(|error| SinkError::from_io("probing the container directory", &error))?;
                    if metadata.is_dir() {
                        Ok(())
                    } else {
                        Err(SinkError::new(
                            SinkErrorKind::Invalid,
                            "the container path is not a directory",
                        ))
                    }
                }
                Backend::Azure { target, client, .. } => azure::container_exists(target, client).await,
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .unwrap_or_else(|_| {
                Err(SinkError::new(
                    SinkErrorKind::Unreachable,
                    format!("probing the container: no answer within {PROBE_TIMEOUT:?}"),
                ))
            })
    }

    /// Writes `messages` as one blob named for `batch_opened` (the time the batch was opened, UTC).
    ///
    /// The blob is visible whole or not at all, and never replaces another blob; see the module
    /// docs. Encoding (a 300 MB batch takes a moment of CPU) runs in place on the calling thread,
    /// via `block_in_place` on a multi-threaded runtime so that other tasks move elsewhere.
    pub async fn write_blob(
        &self,
        messages: &[Message],
        batch_opened: Timestamp,
    ) -> Result<BlobWritten, SinkError> {
        let config = &self.inner.config;
        let body = Bytes::from(encode_off_the_reactor(messages, config.encoding)?);
        let base = config
            .file_name_format
            .render(&config.hub_name, PARTITION, batch_opened);
        let written = |name: String, already_existed: bool| BlobWritten {
            name,
            bytes: body.len(),
            records: messages.len(),
            already_existed,
        };
        let mut recreated_container = false;
        let mut suffix = 0;
        while suffix <= MAX_SUFFIX {
            let name = with_suffix(&base, suffix);
            let path = self.object_path(&name)?;
            match self.put_create(&path, body.clone()).await {
                Ok(()) => return Ok(written(name, false)),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    if self.holds(&path, &body).await? {
                        return Ok(written(name, true));
                    }
                    suffix += 1;
                }
                Err(object_store::Error::NotFound { .. }) if !recreated_container => {
                    // The container was deleted under us: create it and try the same name again.
                    self.ensure_container().await?;
                    recreated_container = true;
                }
                Err(error) => return Err(self.store_error("writing a blob", &error)),
            }
        }
        Err(SinkError::new(
            SinkErrorKind::Conflict,
            format!("every name from `{base}` to suffix _{MAX_SUFFIX} is taken"),
        ))
    }

    /// The blobs in the container, sorted by name (staging files excluded).
    pub async fn list_blobs(&self) -> Result<Vec<BlobInfo>, SinkError> {
        if let Backend::Local { dir } = &self.inner.backend
            && !tokio::fs::try_exists(dir).await.unwrap_or(false)
        {
            return Err(SinkError::new(
                SinkErrorKind::NotFound,
                "the container directory does not exist",
            ));
        }
        let objects: Vec<_> = self
            .store()
            .list(None)
            .try_collect()
            .await
            .map_err(|error| self.store_error("listing blobs", &error))?;
        let mut blobs: Vec<BlobInfo> = objects
            .into_iter()
            .map(|meta| BlobInfo {
                name: meta.location.to_string(),
                bytes: meta.size,
            })
            .collect();
        blobs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(blobs)
    }

    /// A blob's bytes.
    pub async fn read_blob(&self, name: &str) -> Result<Vec<u8>, SinkError> {
        let path = self.object_path(name)?;
        let result = self
            .store()
            .get(&path)
            .await
            .map_err(|error| self.store_error("reading a blob", &error))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|error| self.store_error("reading a blob", &error))?;
        Ok(bytes.to_vec())
    }

    async fn put_create(&self, path: &ObjectPath, body: Bytes) -> Result<(), object_store::Error> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store()
            .put_opts(path, PutPayload::from(body), options)
            .await
            .map(drop)
    }

    /// Whether the blob at `path` holds exactly `body`.
    async fn holds(&self, path: &ObjectPath, body: &Bytes) -> Result<bool, SinkError> {
        let store = self.store();
        let meta = store
            .head(path)
            .await
            .map_err(|error| self.store_error("checking an existing blob", &error))?;
        if meta.size != body.len() as u64 {
            return Ok(false);
        }
        let existing = store
            .get(path)
            .await
            .map_err(|error| self.store_error("checking an existing blob", &error))?
            .bytes()
            .await
            .map_err(|error| self.store_error("checking an existing blob", &error))?;
        Ok(existing == *body)
    }

    fn store(&self) -> &dyn ObjectStore {
        self.inner.store.as_ref()
    }

    /// The object path of blob `name` (the store is rooted at the container).
    fn object_path(&self, name: &str) -> Result<ObjectPath, SinkError> {
        ObjectPath::parse(name)
            .map_err(|error| SinkError::new(SinkErrorKind::Invalid, format!("blob name `{name}`: {error}")))
    }

    fn store_error(&self, operation: &str, error: &object_store::Error) -> SinkError {
        let secret = match &self.inner.backend {
            Backend::Local { .. } => None,
            Backend::Azure { target, .. } => Some(target.key.expose_secret()),
        };
        SinkError::from_store(operation, error, secret)
    }
}

/// Encodes, telling a multi-threaded runtime that this thread is busy for a while.
fn encode_off_the_reactor(messages: &[Message], encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    let flavor = tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor());
    if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
        tokio::task::block_in_place(|| encode_blob(messages, encoding))
    } else {
        encode_blob(messages, encoding)
    }
}
