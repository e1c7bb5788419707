//! A batch of records as column arrays: one `INSERT ... SELECT * FROM unnest(...)` per batch, one
//! round trip whatever its size.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use tokio_postgres::types::{Json, ToSql};

use super::text;
use crate::store::{IndexRecord, to_i64};

/// A batch of records as column arrays, for one `INSERT ... SELECT * FROM unnest(...)`.
pub(super) struct Columns<'a> {
    blob_ids: Vec<i64>,
    positions: Vec<i64>,
    enqueued: Vec<i64>,
    /// Device, module, message and correlation ids, content type, content encoding.
    texts: [Vec<Option<Cow<'a, str>>>; 6],
    properties: Vec<Json<Cow<'a, Value>>>,
    system: Vec<Json<Cow<'a, Value>>>,
    bodies: Vec<Option<Json<Cow<'a, Value>>>>,
    raw: Vec<Option<&'a [u8]>>,
}

impl<'a> Columns<'a> {
    pub(super) fn of(records: &'a [IndexRecord], ids: &BTreeMap<&str, i64>) -> Self {
        let texts = |field: fn(&IndexRecord) -> Option<&String>| -> Vec<Option<Cow<'a, str>>> {
            records.iter().map(|r| text::opt(field(r))).collect()
        };
        Self {
            blob_ids: records
                .iter()
                .map(|r| ids.get(r.blob.as_str()).copied().unwrap_or(0))
                .collect(),
            positions: records.iter().map(|r| to_i64(r.position)).collect(),
            enqueued: records.iter().map(|r| r.enqueued_ms).collect(),
            texts: [
                texts(|r| r.device_id.as_ref()),
                texts(|r| r.module_id.as_ref()),
                texts(|r| r.message_id.as_ref()),
                texts(|r| r.correlation_id.as_ref()),
                texts(|r| r.content_type.as_ref()),
                texts(|r| r.content_encoding.as_ref()),
            ],
            properties: records.iter().map(|r| Json(text::json(&r.properties))).collect(),
            system: records.iter().map(|r| Json(text::json(&r.system))).collect(),
            bodies: records
                .iter()
                .map(|r| r.body.as_ref().map(|b| Json(text::json(b))))
                .collect(),
            raw: records.iter().map(|r| r.body_raw.as_deref()).collect(),
        }
    }

    /// In the order of `INSERT_RECORDS`' placeholders.
    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let [
            device,
            module,
            message,
            correlation,
            content_type,
            content_encoding,
        ] = &self.texts;
        vec![
            &self.blob_ids,
            &self.positions,
            &self.enqueued,
            device,
            module,
            message,
            correlation,
            content_type,
            content_encoding,
            &self.properties,
            &self.system,
            &self.bodies,
            &self.raw,
        ]
    }
}
