//! The values the index stores and answers with.

use serde::Serialize;

/// One message record of a blob, as indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRecord {
    /// Name of the blob it was read from.
    pub blob: String,
    /// Its position in the blob (0-based); with `blob`, its identity.
    pub position: u64,
    /// When the hub enqueued it, in milliseconds since the Unix epoch.
    pub enqueued_ms: i64,
    /// `iothub-connection-device-id`.
    pub device_id: Option<String>,
    /// `iothub-connection-module-id`.
    pub module_id: Option<String>,
    /// `message-id`.
    pub message_id: Option<String>,
    /// `correlation-id`.
    pub correlation_id: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `content-encoding`.
    pub content_encoding: Option<String>,
    /// Application properties, a JSON object (a property without a value is `null`).
    pub properties: serde_json::Value,
    /// System properties, a JSON object.
    pub system: serde_json::Value,
    /// The body, when it is JSON.
    pub body: Option<serde_json::Value>,
    /// The body's bytes, when it is not JSON (bounded by the caller).
    pub body_raw: Option<Vec<u8>>,
}

/// A record as read back: the fields it was stored with. PostgreSQL cannot hold U+0000 in text or
/// JSON, so that backend stores U+FFFD in its place; it also normalises JSON numbers (`1e2` → `100`).
pub type StoredRecord = IndexRecord;

impl IndexRecord {
    /// The cursor that continues a listing after this record.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            enqueued_ms: self.enqueued_ms,
            blob: self.blob.clone(),
            position: self.position,
        }
    }
}

/// Where a record listing continues: the last row read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The row's enqueued time.
    pub enqueued_ms: i64,
    /// The row's blob.
    pub blob: String,
    /// The row's position in its blob.
    pub position: u64,
}

/// Which records [`super::Store::query`] returns; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryFilter {
    /// Device id, exactly.
    pub device_id: Option<String>,
    /// Enqueued at or after (milliseconds since the Unix epoch).
    pub from_ms: Option<i64>,
    /// Enqueued before (milliseconds since the Unix epoch).
    pub to_ms: Option<i64>,
    /// Message id, exactly.
    pub message_id: Option<String>,
}

/// Where a blob version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobStatus {
    /// Waiting to be claimed (new, retried, or reset).
    Pending,
    /// Claimed by a worker whose lease runs.
    Indexing,
    /// Every record stored.
    Indexed,
    /// Given up on; see its error. [`super::Store::reset`] retries it.
    Failed,
}

impl BlobStatus {
    /// Every status, in life order.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Indexing, Self::Indexed, Self::Failed];

    /// The lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Indexing => "indexing",
            Self::Indexed => "indexed",
            Self::Failed => "failed",
        }
    }

    /// The status named `text` (lowercase, as [`BlobStatus::as_str`] gives).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for BlobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One blob version and its indexing state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobInfo {
    /// Blob name.
    pub name: String,
    /// The version's ETag.
    pub etag: String,
    /// Size in bytes, as listed.
    pub size: u64,
    /// Where it is.
    pub status: BlobStatus,
    /// Claims so far (reset to 0 by a reindex).
    pub attempts: u32,
    /// The last failure, if any.
    pub error: Option<String>,
    /// Records found when it was indexed.
    pub records: u64,
    /// The worker that claimed it last.
    pub claimed_by: Option<String>,
    /// Until when that worker's lease runs (only while indexing), milliseconds since the epoch.
    pub lease_until_ms: Option<i64>,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_ms: i64,
}

/// Records of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSummary {
    /// The device id.
    pub device_id: String,
    /// How many records it has.
    pub count: u64,
    /// Its earliest enqueued time, milliseconds since the Unix epoch.
    pub first_ms: i64,
    /// Its latest enqueued time, milliseconds since the Unix epoch.
    pub last_ms: i64,
}

/// Blob versions per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlobCounts {
    /// Waiting.
    pub pending: u64,
    /// Claimed.
    pub indexing: u64,
    /// Done.
    pub indexed: u64,
    /// Given up on.
    pub failed: u64,
}

impl BlobCounts {
    /// Adds `count` versions in `status`.
    pub(super) fn add(&mut self, status: BlobStatus, count: u64) {
        let slot = match status {
            BlobStatus::Pending => &mut self.pending,
            BlobStatus::Indexing => &mut self.indexing,
            BlobStatus::Indexed => &mut self.indexed,
            BlobStatus::Failed => &mut self.failed,
        };
        *slot += count;
    }
}

/// Index totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Records stored.
    pub records: u64,
    /// Blob versions per status.
    pub blobs: BlobCounts,
    /// The newest record's enqueued time, milliseconds since the Unix epoch.
    pub newest_enqueued_ms: Option<i64>,
}
