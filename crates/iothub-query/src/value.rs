//! Run-time values. One representation serves every static type; the type checker picks the operation
//! variant, so a value never has to carry its static type.

use std::borrow::Cow;

/// A value during evaluation. Strings borrow from the message or the condition where they can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    /// Undefined: a missing property, NaN, a failed conversion, a JSON object or array used as a value.
    Undefined,
    /// `null`: the literal, or an explicit JSON `null`.
    Null,
    /// A body or twin path that is not present: behaves as `null` except for `is_null` (IoT Hub quirk).
    Missing,
    Bool(bool),
    /// Never NaN: NaN is normalised to `Undefined` where it is produced.
    Number(f64),
    String(Cow<'a, str>),
    /// A string-typed property that is present with a null value.
    NullString,
    /// A JSON object in a body or twin: only `is_object`/`is_primitive` see it; elsewhere undefined.
    Object,
    /// A JSON array: as `Object`.
    Array,
}

impl<'a> Value<'a> {
    pub(crate) fn number(n: f64) -> Value<'a> {
        if n.is_nan() {
            Value::Undefined
        } else {
            Value::Number(n)
        }
    }

    pub(crate) fn from_tri(b: Option<bool>) -> Value<'a> {
        b.map_or(Value::Undefined, Value::Bool)
    }

    /// `is_defined`: everything but undefined, including null and null strings. JSON objects and
    /// arrays count as undefined, as IoT Hub cannot use them as values.
    pub(crate) fn is_defined(&self) -> bool {
        !matches!(self, Value::Undefined | Value::Object | Value::Array)
    }

    pub(crate) fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A defined, non-null string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A value of static type bool (or a dynamic bool): `Some(b)`, or `None` when undefined.
    pub(crate) fn as_tri(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}
