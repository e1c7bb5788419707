//! Evaluation of a checked condition against one message: pure, allocation-free for the common
//! operators, three-valued.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::body::LazyBody;
use crate::functions;
use crate::ir::{ArithOp, BinOp, CmpKind, CmpOp, LogicKind, LogicOp, Node, Ty};
use crate::message::{MessageView, names_equal};
use crate::path::Path;
use crate::text::ordinal_cmp;
use crate::value::Value;

/// Everything a node may read while one message is evaluated.
pub(crate) struct Scope<'s, 'a, M: ?Sized> {
    pub(crate) message: &'a M,
    pub(crate) body: &'s LazyBody<'s, 'a, M>,
    /// Maps the condition's body paths to slots of the (possibly shared) body plan.
    pub(crate) body_slots: &'s [u32],
    pub(crate) twin_paths: &'s [Path],
}

pub(crate) fn eval<'s, 'a: 's, M: MessageView + ?Sized>(
    node: &'s Node,
    scope: &Scope<'s, 'a, M>,
) -> Value<'s> {
    match node {
        Node::Number(n) => Value::Number(*n),
        Node::String(s) => Value::String(Cow::Borrowed(s)),
        Node::Bool(b) => Value::Bool(*b),
        Node::Null => Value::Null,
        Node::Undefined => Value::Undefined,
        Node::AppProperty(name) => property(scope.message.app_property(name)),
        Node::SysProperty(name) => property(scope.message.system_property(name)),
        Node::ShadowedSysProperty { app, sys } => match scope.message.app_property(app) {
            Some(value) => property(Some(value)),
            None => property(scope.message.system_property(sys)),
        },
        Node::Body(slot) => body(*slot, scope),
        Node::ShadowedBody { app, slot } => match scope.message.app_property(app) {
            Some(value) => property(Some(value)),
            None => body(*slot, scope),
        },
        Node::Twin(slot) => twin(*slot, scope),
        Node::ShadowedTwin { app, slot } => match scope.message.app_property(app) {
            Some(value) => property(Some(value)),
            None => twin(*slot, scope),
        },
        Node::Negate(operand) => match eval(operand, scope) {
            Value::Number(n) => Value::Number(-n),
            _ => Value::Undefined,
        },
        Node::Not(operand) => match eval(operand, scope) {
            Value::Bool(b) => Value::Bool(!b),
            Value::Null => Value::Bool(true),
            _ => Value::Undefined,
        },
        Node::NotDynamic(operand) => match eval(operand, scope) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Undefined,
        },
        // Up to three arguments stay on the stack: no allocation per call.
        Node::Call(function, args) => match args.as_slice() {
            [a] => functions::call(*function, &[eval(a, scope)]),
            [a, b] => functions::call(*function, &[eval(a, scope), eval(b, scope)]),
            [a, b, c] => functions::call(*function, &[eval(a, scope), eval(b, scope), eval(c, scope)]),
            _ => {
                let values: Vec<Value<'s>> = args.iter().map(|a| eval(a, scope)).collect();
                functions::call(*function, &values)
            }
        },
        Node::Chain { first, rest } => {
            let mut acc = eval(first, scope);
            for (op, operand) in rest {
                acc = apply(*op, acc, eval(operand, scope));
            }
            acc
        }
    }
}

/// The final conversion of a condition's value to its result, by the root's static type.
pub(crate) fn to_result(value: &Value<'_>, ty: Ty) -> Option<bool> {
    match ty {
        Ty::Null => Some(false),
        Ty::Bool | Ty::Dynamic => value.as_tri(),
        _ => None,
    }
}

fn property(value: Option<Option<&str>>) -> Value<'_> {
    match value {
        Some(Some(s)) => Value::String(Cow::Borrowed(s)),
        Some(None) => Value::NullString,
        None => Value::Undefined,
    }
}

fn body<'s, M: MessageView + ?Sized>(slot: u32, scope: &Scope<'s, '_, M>) -> Value<'s> {
    let Ok(slots) = scope.body.slots() else {
        return Value::Undefined;
    };
    let value = scope
        .body_slots
        .get(slot as usize)
        .and_then(|&s| slots.get(s as usize));
    match value {
        Some(Value::String(s)) => Value::String(Cow::Borrowed(s)),
        Some(other) => other.clone(),
        None => Value::Undefined,
    }
}

fn twin<'s, 'a: 's, M: MessageView + ?Sized>(slot: u32, scope: &Scope<'s, 'a, M>) -> Value<'s> {
    let (Some(mut current), Some(path)) = (scope.message.twin(), scope.twin_paths.get(slot as usize)) else {
        return Value::Undefined;
    };
    for segment in &path.0 {
        let member = match current {
            serde_json::Value::Object(map) => map.iter().find(|(k, _)| names_equal(k, &segment.name)),
            _ => None,
        };
        let Some((_, next)) = member else {
            return Value::Missing;
        };
        current = next;
        if let Some(index) = segment.index {
            match current.as_array().and_then(|items| items.get(index as usize)) {
                Some(item) => current = item,
                None => return Value::Missing,
            }
        }
    }
    match current {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n.as_f64().map_or(Value::Undefined, Value::number),
        serde_json::Value::String(s) => Value::String(Cow::Borrowed(s)),
        serde_json::Value::Array(_) => Value::Array,
        serde_json::Value::Object(_) => Value::Object,
    }
}

fn apply<'s>(op: BinOp, l: Value<'s>, r: Value<'s>) -> Value<'s> {
    match op {
        BinOp::Arith(op) | BinOp::DynamicArith(op) => match (l.as_number(), r.as_number()) {
            (Some(a), Some(b)) => Value::number(arith(op, a, b)),
            _ => Value::Undefined,
        },
        BinOp::Concat => functions::concat(&[l, r]),
        BinOp::Compare(op, kind) => Value::from_tri(compare(op, kind, &l, &r)),
        BinOp::Logic(op, LogicKind::Static) => logic_static(op, l, r),
        BinOp::Logic(op, LogicKind::Dynamic) => match (l, r) {
            (Value::Bool(a), Value::Bool(b)) => Value::Bool(if op == LogicOp::And { a && b } else { a || b }),
            _ => Value::Undefined,
        },
        BinOp::Coalesce => {
            if l.is_defined() {
                l
            } else {
                r
            }
        }
    }
}

fn arith(op: ArithOp, a: f64, b: f64) -> f64 {
    match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div => a / b,
        ArithOp::Mod => a % b,
    }
}

/// AND/OR of bool, undefined and null operands: Kleene logic, with IoT Hub's `null` rules
/// (`null AND x` is null, `null OR x` is x).
fn logic_static<'s>(op: LogicOp, l: Value<'s>, r: Value<'s>) -> Value<'s> {
    match (op, &l, &r) {
        (LogicOp::And, Value::Null, _) | (LogicOp::And, _, Value::Null) => Value::Null,
        (LogicOp::Or, Value::Null, _) => r,
        (LogicOp::Or, _, Value::Null) => l,
        (LogicOp::And, _, _) => Value::from_tri(match (l.as_tri(), r.as_tri()) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }),
        (LogicOp::Or, _, _) => Value::from_tri(match (l.as_tri(), r.as_tri()) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        }),
    }
}

fn holds(op: CmpOp, ordering: Ordering) -> bool {
    match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    }
}

fn compare(op: CmpOp, kind: CmpKind, l: &Value<'_>, r: &Value<'_>) -> Option<bool> {
    // Equality of two strings needs no ordering: compare bytes.
    if kind == CmpKind::String && matches!(op, CmpOp::Eq | CmpOp::Ne) {
        let equal = l.as_str()? == r.as_str()?;
        return Some(equal == (op == CmpOp::Eq));
    }
    let ordering = match kind {
        CmpKind::String => ordinal_cmp(l.as_str()?, r.as_str()?),
        CmpKind::Number => l.as_number()?.partial_cmp(&r.as_number()?)?,
        CmpKind::Bool => l.as_tri()?.cmp(&r.as_tri()?),
        CmpKind::Null => Ordering::Equal,
        CmpKind::Undefined => return None,
        CmpKind::Dynamic => dynamic_cmp(l, r)?,
    };
    Some(holds(op, ordering))
}

/// Dynamic values: no coercion; different JSON types order bool < number < string < null.
fn dynamic_cmp(l: &Value<'_>, r: &Value<'_>) -> Option<Ordering> {
    let rank = |v: &Value<'_>| match v {
        Value::Bool(_) => Some(1),
        Value::Number(_) => Some(2),
        Value::String(_) | Value::NullString => Some(3),
        Value::Null | Value::Missing => Some(4),
        Value::Undefined | Value::Object | Value::Array => None,
    };
    let (lr, rr) = (rank(l)?, rank(r)?);
    if lr != rr {
        return Some(lr.cmp(&rr));
    }
    Some(match (l, r) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Number(a), Value::Number(b)) => a.partial_cmp(b)?,
        (Value::String(a), Value::String(b)) => ordinal_cmp(a, b),
        (Value::NullString, Value::String(_)) => Ordering::Less,
        (Value::String(_), Value::NullString) => Ordering::Greater,
        _ => Ordering::Equal,
    })
}
