//! Indexing: a worker claims one pending blob version (no other replica gets it while the lease
//! holds), streams its records into the index in batches, renews the lease as it goes, and marks the
//! blob indexed. Inserting is idempotent (blob + position), so a blob indexed again after a crash
//! or a lost lease leaves every record once. A blob that fails is retried up to `max_attempts`
//! times, then marked failed with the error (a poison blob never blocks the others).

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, ObjectStore};
use tokio::time::Instant;

use crate::metrics::ArchiverMetrics;
use crate::records::{BlobFormat, Limits, Record, RecordReader};
use crate::store::{BlobInfo, IndexRecord, Store};

/// How a worker indexes.
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// This replica's name in claims.
    pub worker: String,
    /// Claim lease.
    pub lease: Duration,
    /// Attempts before a blob is failed for good.
    pub max_attempts: u32,
    /// Records per insert.
    pub batch_records: usize,
    /// Record size limit.
    pub max_record_bytes: usize,
    /// Non-JSON body bytes kept.
    pub max_body_bytes: usize,
}

/// Why indexing one blob stopped.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The blob could not be read or parsed: counts as an attempt.
    #[error("{0}")]
    Blob(String),
    /// The index failed: the blob is retried later, not held against it.
    #[error("index: {0}")]
    Index(String),
    /// Another replica took the blob over (our lease lapsed).
    #[error("the claim on the blob was lost")]
    ClaimLost,
    /// The blob changed since this version was listed; the new version is indexed on its own.
    #[error("a newer version of the blob replaced this one")]
    Superseded,
}

/// Claims and indexes blobs one at a time.
#[derive(Debug, Clone)]
pub struct Indexer {
    /// The container.
    pub container: Arc<dyn ObjectStore>,
    /// The index.
    pub index: Arc<dyn Store>,
    /// Settings.
    pub settings: IndexSettings,
    /// Metrics.
    pub metrics: ArchiverMetrics,
}

impl Indexer {
    /// Claims one blob and indexes it; `Ok(false)` when there was nothing to claim.
    pub async fn index_one(&self) -> Result<bool, IndexError> {
        let s = &self.settings;
        let claimed = self
            .index
            .claim(&s.worker, s.lease, s.max_attempts)
            .await
            .map_err(|e| IndexError::Index(e.to_string()))?;
        let Some(blob) = claimed else {
            return Ok(false);
        };
        let started = Instant::now();
        match self.index_blob(&blob).await {
            Ok(records) => {
                self.index
                    .finish(&blob.name, &blob.etag, &s.worker, records)
                    .await
                    .map_err(|e| IndexError::Index(e.to_string()))?;
                self.metrics.blobs_indexed.inc();
                tracing::info!(blob = %blob.name, records, elapsed = ?started.elapsed(), "blob indexed");
            }
            Err(IndexError::Superseded) => {
                tracing::info!(blob = %blob.name, etag = %blob.etag, "version superseded by a newer one");
                self.index
                    .fail(
                        &blob.name,
                        &blob.etag,
                        &s.worker,
                        "superseded by a newer version of the blob",
                        true,
                    )
                    .await
                    .map_err(|e| IndexError::Index(e.to_string()))?;
            }
            Err(IndexError::ClaimLost) => {
                tracing::warn!(blob = %blob.name, "claim lost; another replica finishes the blob");
            }
            Err(IndexError::Blob(error)) => {
                let last = blob.attempts >= s.max_attempts;
                if last {
                    self.metrics.blobs_failed.inc();
                }
                tracing::warn!(blob = %blob.name, attempt = blob.attempts, last, %error, "blob failed");
                self.index
                    .fail(&blob.name, &blob.etag, &s.worker, &error, last)
                    .await
                    .map_err(|e| IndexError::Index(e.to_string()))?;
            }
            Err(error @ IndexError::Index(_)) => {
                // Not the blob's fault: the claim lapses and another try comes (claiming counted the
                // attempt, so a blob that keeps breaking the index still ends up failed).
                return Err(error);
            }
        }
        Ok(true)
    }

    /// Streams the blob's records into the index; returns how many it holds.
    async fn index_blob(&self, blob: &BlobInfo) -> Result<u64, IndexError> {
        let s = &self.settings;
        let path = StorePath::from(blob.name.as_str());
        let options = GetOptions {
            if_match: Some(blob.etag.clone()),
            ..GetOptions::default()
        };
        let result = match self.container.get_opts(&path, options).await {
            Ok(result) => result,
            Err(object_store::Error::Precondition { .. }) => {
                // A newer version replaced this one; that version has its own receipt.
                return Err(IndexError::Superseded);
            }
            Err(e) => return Err(IndexError::Blob(format!("reading the blob: {e}"))),
        };
        let stream = result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()));
        let reader = tokio_util::io::StreamReader::new(stream);
        let limits = Limits {
            max_record_bytes: s.max_record_bytes,
            ..Limits::default()
        };
        let mut records = RecordReader::open(reader, BlobFormat::from_name(&blob.name), limits)
            .await
            .map_err(|e| IndexError::Blob(e.to_string()))?;
        let mut batch = Vec::with_capacity(s.batch_records);
        let mut total = 0u64;
        let mut renew_at = Instant::now() + s.lease / 3;
        loop {
            let next = records
                .next()
                .await
                .map_err(|e| IndexError::Blob(e.to_string()))?;
            let done = next.is_none();
            if let Some(record) = next {
                batch.push(index_record(&blob.name, record, s.max_body_bytes));
            }
            if batch.len() >= s.batch_records || (done && !batch.is_empty()) {
                self.index.insert_records(&batch).await.map_err(|e| match e {
                    // A record the index cannot hold is the blob's fault: it spends an attempt.
                    crate::store::Error::InvalidRecord { .. } => IndexError::Blob(e.to_string()),
                    other => IndexError::Index(other.to_string()),
                })?;
                total += batch.len() as u64;
                self.metrics.records_indexed.inc_by(batch.len() as u64);
                if let Some(newest) = batch.iter().map(|r| r.enqueued_ms).max() {
                    self.metrics.saw_enqueued(newest);
                }
                batch.clear();
            }
            if Instant::now() >= renew_at {
                let kept = self
                    .index
                    .renew(&blob.name, &blob.etag, &s.worker, s.lease)
                    .await
                    .map_err(|e| IndexError::Index(e.to_string()))?;
                if !kept {
                    return Err(IndexError::ClaimLost);
                }
                renew_at = Instant::now() + s.lease / 3;
            }
            if done {
                return Ok(total);
            }
        }
    }
}

/// A record as the index stores it.
pub fn index_record(blob: &str, record: Record, max_body_bytes: usize) -> IndexRecord {
    let message = record.message;
    let system = &message.system;
    let properties: serde_json::Map<String, serde_json::Value> = message
        .app_properties
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.clone()
                    .map_or(serde_json::Value::Null, serde_json::Value::String),
            )
        })
        .collect();
    let body_raw = match &record.body_json {
        Some(_) => None,
        None if message.body.is_empty() => None,
        None => Some(message.body[..message.body.len().min(max_body_bytes)].to_vec()),
    };
    IndexRecord {
        blob: blob.to_owned(),
        position: record.position,
        enqueued_ms: record.enqueued_time.map_or(0, |t| {
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        }),
        device_id: system.connection_device_id.clone(),
        module_id: system.connection_module_id.clone(),
        message_id: system.message_id.clone(),
        correlation_id: system.correlation_id.clone(),
        content_type: system.content_type.clone(),
        content_encoding: system.content_encoding.clone(),
        properties: serde_json::Value::Object(properties),
        system: serde_json::to_value(system).unwrap_or(serde_json::Value::Null),
        body: record.body_json,
        body_raw,
    }
}
