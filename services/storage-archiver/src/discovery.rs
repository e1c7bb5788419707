//! Finding new blobs: list the container on an interval and record each blob version (name + ETag)
//! as a receipt, so it is indexed once.
//!
//! IoT Hub names blobs by time under a few fixed segments (`{iothub}/{partition}/{YYYY}/...`), so
//! within each group of the first `group_depth` segments a new blob's name sorts after the old ones.
//! Each poll lists each group from a persisted cursor instead of from the start. The cursor trails
//! by `settle_minutes` (it only moves past names older than that), so a blob that appears late under
//! an older name is still seen; receipts make seeing a blob again harmless.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;

use crate::store::Store;

/// The version a receipt records for a listed blob: its ETag, exactly as the store reports it
/// (the indexer reads the blob with `If-Match` on it).
pub(crate) fn version(meta: &object_store::ObjectMeta) -> String {
    meta.e_tag.clone().unwrap_or_else(|| {
        // A store without ETags (none here) would still get one receipt per size and time.
        format!("{}-{}", meta.size, meta.last_modified.timestamp_millis())
    })
}

/// What one poll found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollOutcome {
    /// Blobs listed.
    pub listed: u64,
    /// New blob versions recorded.
    pub new: u64,
}

/// Lists the container and records what is new.
#[derive(Debug)]
pub struct Discovery {
    store: Arc<dyn ObjectStore>,
    index: Arc<dyn Store>,
    prefix: String,
    group_depth: usize,
    settle: Duration,
    from: Option<SystemTime>,
    cursor_key: String,
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Listing the container failed.
    #[error("listing the container: {0}")]
    List(String),
    /// The index refused.
    #[error("index: {0}")]
    Index(String),
}

impl Discovery {
    /// Discovery of `prefix` in `store` for `container`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        index: Arc<dyn Store>,
        container: &str,
        prefix: &str,
        group_depth: usize,
        settle: Duration,
        from: Option<SystemTime>,
    ) -> Self {
        Discovery {
            store,
            index,
            prefix: prefix.trim_start_matches('/').to_owned(),
            group_depth,
            settle,
            from,
            cursor_key: format!("{container}/{prefix}"),
        }
    }

    /// One poll: every group, from its cursor.
    pub async fn poll(&self) -> Result<PollOutcome, DiscoveryError> {
        let mut outcome = PollOutcome::default();
        for group in self.groups().await? {
            let found = self.poll_group(&group).await?;
            outcome.listed += found.listed;
            outcome.new += found.new;
        }
        Ok(outcome)
    }

    /// The group prefixes `group_depth` segments below the prefix (the prefix itself at depth 0).
    async fn groups(&self) -> Result<Vec<String>, DiscoveryError> {
        let mut level = vec![self.prefix.clone()];
        for _ in 0..self.group_depth {
            let mut next = Vec::new();
            for prefix in &level {
                let path = (!prefix.is_empty()).then(|| StorePath::from(prefix.trim_end_matches('/')));
                let listed = self
                    .store
                    .list_with_delimiter(path.as_ref())
                    .await
                    .map_err(|e| DiscoveryError::List(e.to_string()))?;
                next.extend(listed.common_prefixes.iter().map(|p| format!("{p}/")));
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(level)
    }

    async fn poll_group(&self, group: &str) -> Result<PollOutcome, DiscoveryError> {
        let key = format!("{}|{group}", self.cursor_key);
        let cursor = self
            .index
            .cursor(&key)
            .await
            .map_err(|e| DiscoveryError::Index(e.to_string()))?;
        let prefix = (!group.is_empty()).then(|| StorePath::from(group.trim_end_matches('/')));
        let listing = match &cursor {
            Some(after) => self
                .store
                .list_with_offset(prefix.as_ref(), &StorePath::from(after.as_str())),
            None => self.store.list(prefix.as_ref()),
        };
        // Azure lists in name order; a local directory does not: sort what came after the cursor.
        let mut metas = Vec::new();
        let mut listing = listing;
        while let Some(meta) = listing.next().await {
            metas.push(meta.map_err(|e| DiscoveryError::List(e.to_string()))?);
        }
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let settled_before = SystemTime::now()
            .checked_sub(self.settle)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut outcome = PollOutcome::default();
        let mut advance_to: Option<String> = None;
        let mut blocked = false;
        for meta in metas {
            outcome.listed += 1;
            let name = meta.location.to_string();
            let modified: SystemTime = meta.last_modified.into();
            if self.from.is_none_or(|from| modified >= from) {
                let etag = version(&meta);
                let new = self
                    .index
                    .upsert_blob(&name, &etag, meta.size)
                    .await
                    .map_err(|e| DiscoveryError::Index(e.to_string()))?;
                if new {
                    outcome.new += 1;
                }
            }
            // Names arrive in order; the cursor may move past a name only while every name before
            // it has settled.
            if !blocked && modified < settled_before {
                advance_to = Some(name);
            } else {
                blocked = true;
            }
        }
        if let Some(to) = advance_to
            && cursor.as_deref() != Some(to.as_str())
        {
            self.index
                .set_cursor(&key, &to)
                .await
                .map_err(|e| DiscoveryError::Index(e.to_string()))?;
        }
        Ok(outcome)
    }
}
