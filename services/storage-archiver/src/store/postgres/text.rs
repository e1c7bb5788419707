//! PostgreSQL's `text` and `jsonb` cannot hold U+0000, which device data may contain (a property
//! value, a JSON body's string). Every string this backend binds goes through here and has U+0000
//! replaced by U+FFFD, so a record with one is stored (nearly) as sent instead of failing its
//! whole blob, and a query for one finds it instead of failing.

use std::borrow::Cow;

use serde_json::Value;

const REPLACEMENT: &str = "\u{FFFD}";

/// `text` without U+0000.
pub(super) fn text(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.replace('\0', REPLACEMENT))
    } else {
        Cow::Borrowed(value)
    }
}

/// `text` without U+0000, owned (for statements whose values outlive the borrow).
pub(super) fn owned(value: &str) -> String {
    text(value).into_owned()
}

/// An optional `text` without U+0000.
pub(super) fn opt(value: Option<&String>) -> Option<Cow<'_, str>> {
    value.map(|v| text(v))
}

/// `value` without U+0000 in any string or key; borrowed when there is none (the usual case).
pub(super) fn json(value: &Value) -> Cow<'_, Value> {
    if has_nul(value) {
        Cow::Owned(clean(value.clone()))
    } else {
        Cow::Borrowed(value)
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn clean(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('\0', REPLACEMENT)),
        Value::Array(items) => Value::Array(items.into_iter().map(clean).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.replace('\0', REPLACEMENT), clean(v)))
                .collect(),
        ),
        other => other,
    }
}
