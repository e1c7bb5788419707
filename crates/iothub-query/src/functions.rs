//! Built-in functions: their signatures (checked at compile time) and what they compute.

use std::borrow::Cow;

use crate::ir::Ty;
use crate::number::parse_dotnet_number;
use crate::text;
use crate::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Abs,
    Exp,
    Square,
    Ceiling,
    Floor,
    Sign,
    Sqrt,
    Power,
    AsNumber,
    /// `as_number` of a number: the identity.
    AsNumberIdentity,
    IsBool,
    IsDefined,
    /// `is_null` of a dynamic value: true only for an explicit JSON null.
    IsNull,
    /// `is_null` of a string: true when the property is present with a null value.
    IsNullString,
    IsNumber,
    IsString,
    IsArray,
    IsObject,
    IsPrimitive,
    /// `is_bool`, `is_null`, `is_number` or `is_string` of a type that can never match: `false`.
    AlwaysFalse,
    /// `is_null(null)`: `true`.
    AlwaysTrue,
    Concat,
    Length,
    Lower,
    Upper,
    Substring,
    IndexOf,
    StartsWith,
    EndsWith,
    Contains,
}

/// Why a call does not check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallError {
    UnknownFunction,
    BadArguments,
}

const NAMES: &[&str] = &[
    "abs",
    "exp",
    "square",
    "ceiling",
    "floor",
    "sign",
    "sqrt",
    "power",
    "as_number",
    "is_bool",
    "is_defined",
    "is_null",
    "is_number",
    "is_string",
    "is_array",
    "is_object",
    "is_primitive",
    "concat",
    "length",
    "lower",
    "upper",
    "substring",
    "index_of",
    "starts_with",
    "ends_with",
    "contains",
];

/// A numeric argument: a number, or a dynamic value checked at run time.
fn numeric(t: Ty) -> bool {
    matches!(t, Ty::Number | Ty::Dynamic | Ty::Error)
}

/// A string argument: a string, or a dynamic value checked at run time.
fn stringy(t: Ty) -> bool {
    matches!(t, Ty::String | Ty::Dynamic | Ty::Error)
}

/// Resolves a call by name (case-insensitive) and argument types, as IoT Hub's overloads do.
pub(crate) fn resolve(name: &str, args: &[Ty]) -> Result<(Function, Ty), CallError> {
    let name = NAMES
        .iter()
        .copied()
        .find(|n| n.eq_ignore_ascii_case(name))
        .ok_or(CallError::UnknownFunction)?;
    let bad = Err(CallError::BadArguments);
    let one = |accept: fn(Ty) -> bool| args.len() == 1 && accept(args[0]);
    let math = |f: Function| if one(numeric) { Ok((f, Ty::Number)) } else { bad };
    let predicate = |accept: fn(Ty) -> bool, f: Function| match args {
        [t] if accept(*t) => Ok((f, Ty::Bool)),
        [_] => Ok((Function::AlwaysFalse, Ty::Bool)),
        _ => bad,
    };
    let any_one = |f: Function| if args.len() == 1 { Ok((f, Ty::Bool)) } else { bad };
    let strings = |n: usize, f: Function, result: Ty| {
        if args.len() == n && args.iter().all(|t| stringy(*t)) {
            Ok((f, result))
        } else {
            bad
        }
    };
    match name {
        "abs" => math(Function::Abs),
        "exp" => math(Function::Exp),
        "square" => math(Function::Square),
        "ceiling" => math(Function::Ceiling),
        "floor" => math(Function::Floor),
        "sign" => math(Function::Sign),
        "sqrt" => math(Function::Sqrt),
        "power" if args.len() == 2 && args.iter().all(|t| numeric(*t)) => Ok((Function::Power, Ty::Number)),
        "as_number" => match args {
            [Ty::Number] => Ok((Function::AsNumberIdentity, Ty::Number)),
            [t] if stringy(*t) => Ok((Function::AsNumber, Ty::Number)),
            _ => bad,
        },
        "is_bool" => predicate(
            |t| matches!(t, Ty::Bool | Ty::Dynamic | Ty::Error),
            Function::IsBool,
        ),
        "is_number" => predicate(numeric, Function::IsNumber),
        "is_string" => predicate(stringy, Function::IsString),
        "is_null" => match args {
            [Ty::Null] => Ok((Function::AlwaysTrue, Ty::Bool)),
            [Ty::String] => Ok((Function::IsNullString, Ty::Bool)),
            [Ty::Dynamic | Ty::Error] => Ok((Function::IsNull, Ty::Bool)),
            [_] => Ok((Function::AlwaysFalse, Ty::Bool)),
            _ => bad,
        },
        "is_defined" => any_one(Function::IsDefined),
        "is_array" => any_one(Function::IsArray),
        "is_object" => any_one(Function::IsObject),
        "is_primitive" => any_one(Function::IsPrimitive),
        "concat" if args.len() >= 2 && args.iter().all(|t| stringy(*t)) => Ok((Function::Concat, Ty::String)),
        "length" => strings(1, Function::Length, Ty::Number),
        "lower" => strings(1, Function::Lower, Ty::String),
        "upper" => strings(1, Function::Upper, Ty::String),
        "substring" => match args {
            [s, start] if stringy(*s) && numeric(*start) => Ok((Function::Substring, Ty::String)),
            [s, start, len] if stringy(*s) && numeric(*start) && numeric(*len) => {
                Ok((Function::Substring, Ty::String))
            }
            _ => bad,
        },
        "index_of" => strings(2, Function::IndexOf, Ty::Number),
        "starts_with" => strings(2, Function::StartsWith, Ty::Bool),
        "ends_with" => strings(2, Function::EndsWith, Ty::Bool),
        "contains" => strings(2, Function::Contains, Ty::Bool),
        _ => bad,
    }
}

/// The signatures of a function, for error messages.
pub(crate) fn signatures(name: &str) -> &'static str {
    match name.to_ascii_lowercase().as_str() {
        "abs" | "exp" | "square" | "ceiling" | "floor" | "sign" | "sqrt" => "(number)",
        "power" => "(number, number)",
        "as_number" => "(string) or (number)",
        "is_bool" | "is_defined" | "is_null" | "is_number" | "is_string" | "is_array" | "is_object"
        | "is_primitive" => "(any one value)",
        "concat" => "(string, string, ...)",
        "length" | "lower" | "upper" => "(string)",
        "substring" => "(string, number) or (string, number, number)",
        "index_of" | "starts_with" | "ends_with" | "contains" => "(string, string)",
        _ => "",
    }
}

fn math(x: &Value<'_>, f: impl Fn(f64) -> f64) -> Value<'static> {
    x.as_number().map_or(Value::Undefined, |n| Value::number(f(n)))
}

fn string_fn<'a>(x: &Value<'_>, f: impl Fn(&str) -> Value<'a>) -> Value<'a> {
    x.as_str().map_or(Value::Undefined, f)
}

/// Lower or upper case, borrowing the input when it is borrowed and unchanged.
fn case_map<'a>(x: &Value<'a>, map: for<'x> fn(&'x str) -> Cow<'x, str>) -> Value<'a> {
    match x {
        Value::String(Cow::Borrowed(s)) => Value::String(map(s)),
        Value::String(Cow::Owned(s)) => Value::String(Cow::Owned(map(s).into_owned())),
        _ => Value::Undefined,
    }
}

fn two_strings<'a>(a: &Value<'_>, b: &Value<'_>, f: impl Fn(&str, &str) -> Value<'a>) -> Value<'a> {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => f(a, b),
        _ => Value::Undefined,
    }
}

fn bool_value<'a>(b: bool) -> Value<'a> {
    Value::Bool(b)
}

/// Applies `function` to already evaluated arguments (arity and types were checked at compile time).
pub(crate) fn call<'a>(function: Function, args: &[Value<'a>]) -> Value<'a> {
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Undefined);
    match function {
        Function::Abs => math(arg(0), f64::abs),
        Function::Exp => math(arg(0), f64::exp),
        Function::Square => math(arg(0), |x| x * x),
        Function::Ceiling => math(arg(0), f64::ceil),
        Function::Floor => math(arg(0), f64::floor),
        Function::Sign => math(arg(0), |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Function::Sqrt => math(arg(0), f64::sqrt),
        Function::Power => match (arg(0).as_number(), arg(1).as_number()) {
            (Some(x), Some(y)) => Value::number(x.powf(y)),
            _ => Value::Undefined,
        },
        Function::AsNumber => match arg(0) {
            Value::String(s) => parse_dotnet_number(s).map_or(Value::Undefined, Value::number),
            Value::Number(n) => Value::Number(*n),
            _ => Value::Undefined,
        },
        Function::AsNumberIdentity => arg(0).clone(),
        Function::IsBool => match arg(0) {
            v if !v.is_defined() => Value::Undefined,
            v => bool_value(matches!(v, Value::Bool(_))),
        },
        Function::IsDefined => bool_value(arg(0).is_defined()),
        Function::IsNull => match arg(0) {
            Value::Undefined | Value::Object | Value::Array => Value::Undefined,
            v => bool_value(matches!(v, Value::Null | Value::NullString)),
        },
        Function::IsNullString => bool_value(matches!(arg(0), Value::NullString)),
        Function::IsNumber => bool_value(matches!(arg(0), Value::Number(n) if n.is_finite())),
        Function::IsString => bool_value(matches!(arg(0), Value::String(_))),
        Function::IsArray => bool_value(matches!(arg(0), Value::Array)),
        Function::IsObject => bool_value(matches!(arg(0), Value::Object)),
        Function::IsPrimitive => bool_value(matches!(
            arg(0),
            Value::Null
                | Value::Missing
                | Value::Bool(_)
                | Value::Number(_)
                | Value::String(_)
                | Value::NullString
        )),
        Function::AlwaysFalse => Value::Bool(false),
        Function::AlwaysTrue => Value::Bool(true),
        Function::Concat => concat(args),
        Function::Length => string_fn(arg(0), |s| Value::Number(text::utf16_len(s) as f64)),
        Function::Lower => case_map(arg(0), text::to_lower),
        Function::Upper => case_map(arg(0), text::to_upper),
        Function::Substring => substring(arg(0), arg(1), args.get(2)),
        Function::IndexOf => two_strings(arg(0), arg(1), |s, t| Value::Number(text::index_of(s, t))),
        Function::StartsWith => two_strings(arg(0), arg(1), |s, t| bool_value(s.starts_with(t))),
        Function::EndsWith => two_strings(arg(0), arg(1), |s, t| bool_value(s.ends_with(t))),
        Function::Contains => two_strings(arg(0), arg(1), |s, t| bool_value(s.contains(t))),
    }
}

/// Concatenation: every argument must be a string; a null-valued string property counts as empty.
pub(crate) fn concat<'a>(args: &[Value<'a>]) -> Value<'a> {
    let mut out = String::new();
    for arg in args {
        match arg {
            Value::String(s) => out.push_str(s),
            Value::NullString => {}
            _ => return Value::Undefined,
        }
    }
    Value::String(Cow::Owned(out))
}

fn substring<'a>(s: &Value<'_>, start: &Value<'_>, length: Option<&Value<'_>>) -> Value<'a> {
    let (Some(s), Some(start)) = (s.as_str(), start.as_number()) else {
        return Value::Undefined;
    };
    let len = text::utf16_len(s) as f64;
    match length.map(Value::as_number) {
        None if (0.0..=len).contains(&start) => {
            Value::String(Cow::Owned(text::substring(s, start as usize, None)))
        }
        Some(Some(count)) if start >= 0.0 && start < len && count >= 0.0 && count <= len - start => {
            Value::String(Cow::Owned(text::substring(
                s,
                start as usize,
                Some(count as usize),
            )))
        }
        _ => Value::Undefined,
    }
}
