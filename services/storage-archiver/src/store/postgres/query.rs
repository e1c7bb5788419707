//! Statements built at run time from a filter: only fixed SQL fragments are joined; every value is a
//! bound parameter.

use tokio_postgres::types::ToSql;

use super::sql::{blob_columns, record_columns};
use super::text;
use crate::store::{BlobStatus, Cursor, QueryFilter, to_i64};

/// A statement and its bound values.
pub(super) struct Statement {
    pub(super) sql: String,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            values: Vec::new(),
        }
    }

    /// Binds `value`; answers its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Blob versions by name then etag. Names order through the index on their first 400 characters
/// (C collation: a prefix orders like the whole), ties by the whole name.
pub(super) fn blobs(status: Option<BlobStatus>, limit: u32, after: Option<&str>) -> Statement {
    let mut s = Statement::new(concat!(
        "SELECT ",
        blob_columns!(),
        " FROM blobs b JOIN blob_names n ON n.id = b.name_id WHERE TRUE"
    ));
    if let Some(status) = status {
        let p = s.bind(status.as_str());
        s.sql += &format!(" AND b.status = {p}");
    }
    if let Some(after) = after {
        let p = s.bind(text::owned(after));
        s.sql += &format!(" AND left(n.name, 400) >= left({p}, 400) AND n.name > {p}");
    }
    let p = s.bind(i64::from(limit));
    s.sql += &format!(" ORDER BY left(n.name, 400), n.name, b.etag LIMIT {p}");
    s
}

/// Records matching `filter` after `after`, in `(enqueued_ms, blob_id, position)` order. The
/// cursor's blob name becomes its id (a name never indexed matches no tie).
pub(super) fn records(filter: &QueryFilter, limit: u32, after: Option<&Cursor>) -> Statement {
    let mut s = Statement::new(concat!(
        "SELECT ",
        record_columns!(),
        " FROM records r JOIN blob_names n ON n.id = r.blob_id WHERE TRUE"
    ));
    if let Some(device) = &filter.device_id {
        let p = s.bind(text::owned(device));
        s.sql += &format!(" AND r.device_id = {p}");
    }
    if let Some(id) = &filter.message_id {
        let p = s.bind(text::owned(id));
        s.sql += &format!(" AND r.message_id = {p}");
    }
    if let Some(from) = filter.from_ms {
        let p = s.bind(from);
        s.sql += &format!(" AND r.enqueued_ms >= {p}");
    }
    if let Some(to) = filter.to_ms {
        let p = s.bind(to);
        s.sql += &format!(" AND r.enqueued_ms < {p}");
    }
    if let Some(cursor) = after {
        let time = s.bind(cursor.enqueued_ms);
        let blob = s.bind(text::owned(&cursor.blob));
        let position = s.bind(to_i64(cursor.position));
        s.sql += &format!(
            " AND r.enqueued_ms >= {time} AND (r.enqueued_ms, r.blob_id, r.position) > \
             ({time}, (SELECT id FROM blob_names WHERE name = {blob}), {position})"
        );
    }
    let p = s.bind(i64::from(limit));
    s.sql += &format!(" ORDER BY r.enqueued_ms, r.blob_id, r.position LIMIT {p}");
    s
}

/// One row per device id, after `after`.
pub(super) fn devices(limit: u32, after: Option<&str>) -> Statement {
    let mut s = Statement::new(
        "SELECT device_id, count(*), min(enqueued_ms), max(enqueued_ms) FROM records WHERE device_id IS NOT NULL",
    );
    if let Some(after) = after {
        let p = s.bind(text::owned(after));
        s.sql += &format!(" AND device_id > {p}");
    }
    let p = s.bind(i64::from(limit));
    s.sql += &format!(" GROUP BY device_id ORDER BY device_id LIMIT {p}");
    s
}
