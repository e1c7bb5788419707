//! `storage-archiver serve` configuration: defaults → `--config` file → `STORAGE_ARCHIVER_...`
//! environment (`__` between nested keys) → `--set`. Every field's `///` line is its documentation.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use service_kit::config::ConfigError;
use service_kit::telemetry::TelemetryConfig;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiverConfig {
    /// The blob container routing writes to.
    pub container: ContainerSettings,
    /// Where the index lives: `sqlite://data/index.db` (one replica) or `postgres://...` (several).
    #[serde(serialize_with = "redacted")]
    pub index: SecretString,
    /// How often the container is listed for new blobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// Push mode: BlobCreated notifications from a queue record new blobs at once; listing stays
    /// on as the fallback. None: listing only.
    pub notifications: Option<NotificationSettings>,
    /// Index only blobs modified at or after this time (RFC 3339), or `now`; default: everything
    /// (backfill).
    pub from: Option<String>,
    /// Blobs indexed at once by this replica.
    pub workers: usize,
    /// Seconds a replica's claim on a blob lasts without renewal (a dead replica's blob is taken
    /// over after this).
    pub lease_secs: u64,
    /// Attempts before a blob that fails is marked failed (poison).
    pub max_attempts: u32,
    /// Largest single record accepted, in bytes.
    pub max_record_bytes: usize,
    /// Bytes of a non-JSON body kept in the index (longer ones are cut).
    pub max_body_bytes: usize,
    /// Records per index transaction.
    pub batch_records: usize,
    /// This replica's name in claims; default: host name and process id.
    pub worker_id: Option<String>,
    /// The query API (`/v1/...`).
    pub api: Option<SocketAddr>,
    /// Admin server (`/live`, `/ready`, `/metrics`); `null` turns it off.
    pub admin: Option<SocketAddr>,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Seconds allowed to finish the current batches on SIGTERM.
    pub grace_period_secs: u64,
}

/// The container and which part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerSettings {
    /// `file://<dir>`, an Azure Storage connection string, or `UseDevelopmentStorage=true`.
    #[serde(serialize_with = "redacted")]
    pub connection_string: SecretString,
    /// The container name (IoT Hub's `containerName`).
    pub name: String,
    /// Only blobs under this prefix (e.g. `myhub/`).
    pub prefix: String,
    /// Path segments (after the prefix) that group blobs whose names grow with time: 2 for IoT
    /// Hub's default `{iothub}/{partition}/{YYYY}/...`. Listing resumes within each group after
    /// the last name seen.
    pub group_depth: usize,
    /// Minutes a listed name is looked at again, for blobs that appear late under older names.
    pub settle_minutes: u64,
}

/// Where Event Grid delivers the container's BlobCreated events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// A Service Bus connection string, `amqp://...` or `sqlite://...` (as `crates/queue` reads).
    #[serde(serialize_with = "redacted")]
    pub connection_string: SecretString,
    /// The queue's name.
    pub queue: String,
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        ArchiverConfig {
            container: ContainerSettings::default(),
            index: SecretString::from("sqlite://data/index.db"),
            poll_interval_ms: 2000,
            notifications: None,
            from: None,
            workers: 2,
            lease_secs: 60,
            max_attempts: 5,
            max_record_bytes: 4 * 1024 * 1024,
            max_body_bytes: 64 * 1024,
            batch_records: 1000,
            worker_id: None,
            api: Some(SocketAddr::from(([0, 0, 0, 0], 8090))),
            admin: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            telemetry: TelemetryConfig::default(),
            grace_period_secs: 20,
        }
    }
}

impl Default for ContainerSettings {
    fn default() -> Self {
        ContainerSettings {
            connection_string: SecretString::from(""),
            name: String::new(),
            prefix: String::new(),
            group_depth: 2,
            settle_minutes: 10,
        }
    }
}

impl ArchiverConfig {
    /// Checks what serde cannot, every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.container.connection_string.expose_secret().trim().is_empty() {
            problems.push("container.connection_string: required".to_owned());
        } else if let Err(e) =
            blob_store::StorageConnection::parse(self.container.connection_string.expose_secret())
        {
            problems.push(format!("container.connection_string: {e}"));
        }
        if self.container.name.trim().is_empty() {
            problems.push("container.name: required".to_owned());
        }
        let index = self.index.expose_secret();
        if !(index.starts_with("sqlite://")
            || index.starts_with("postgres://")
            || index.starts_with("postgresql://"))
        {
            problems.push("index: must start with sqlite:// or postgres://".to_owned());
        }
        if let Some(from) = &self.from
            && from != "now"
            && time::OffsetDateTime::parse(from, &time::format_description::well_known::Rfc3339).is_err()
        {
            problems.push(format!(
                "from: {from:?} is not an RFC 3339 time (2026-11-26T09:00:00Z) or `now`"
            ));
        }
        if self.workers == 0 || self.workers > 64 {
            problems.push("workers: must be 1..=64".to_owned());
        }
        if self.lease_secs < 5 {
            problems.push("lease_secs: must be at least 5".to_owned());
        }
        if self.max_attempts == 0 {
            problems.push("max_attempts: must be at least 1".to_owned());
        }
        if self.batch_records == 0 || self.batch_records > 100_000 {
            problems.push("batch_records: must be 1..=100000".to_owned());
        }
        if self.poll_interval_ms < 10 {
            problems.push("poll_interval_ms: must be at least 10".to_owned());
        }
        if let Some(notifications) = &self.notifications {
            if let Err(e) = queue::ConnectionConfig::parse(notifications.connection_string.expose_secret()) {
                problems.push(format!("notifications.connection_string: {e}"));
            }
            if notifications.queue.trim().is_empty() {
                problems.push("notifications.queue: required".to_owned());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(problems.join("; ")))
        }
    }

    /// The grace period.
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(self.grace_period_secs)
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// This replica's worker name.
    pub fn worker_name(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "archiver".to_owned());
            format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
        })
    }
}

fn redacted<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    let text = secret.expose_secret();
    // The default index (`sqlite://...`) is serialised to seed the configuration: keep URLs that
    // cannot hold a password as they are.
    if text.starts_with("sqlite://") || text.starts_with("file://") {
        serializer.serialize_str(text)
    } else {
        service_kit::config::redacted(secret, serializer)
    }
}
