//! The checked, executable form of a condition: every operation already specialised by the static
//! types of its operands, so evaluation never re-checks types.

use crate::functions::Function;

/// Static types of the language (IoT Hub's type checker has the same six).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    String,
    Number,
    Bool,
    Null,
    Undefined,
    /// A `$body` or `$twin` value: its JSON type is known only at run time.
    Dynamic,
    /// The type of an expression that already failed to check; accepted everywhere so that one
    /// mistake is reported once.
    Error,
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Number => "number",
            Ty::Bool => "bool",
            Ty::Null => "null",
            Ty::Undefined => "undefined",
            Ty::Dynamic => "dynamic",
            Ty::Error => "error",
        }
    }

    /// May be mixed with a dynamic value in comparisons, `??` and function arguments.
    pub(crate) fn mixes_with_dynamic(self) -> bool {
        matches!(
            self,
            Ty::String | Ty::Number | Ty::Bool | Ty::Null | Ty::Dynamic | Ty::Error
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// How two operands compare, fixed by their static types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpKind {
    String,
    Number,
    Bool,
    Null,
    Undefined,
    /// At least one side dynamic: no coercion, values of different JSON types are ordered by type.
    Dynamic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogicOp {
    And,
    Or,
}

/// How `AND`/`OR` combine, fixed by the static types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogicKind {
    /// Three-valued logic over bool/undefined operands, with `null` behaving as IoT Hub's `Null`.
    Static,
    /// At least one side dynamic: both values must be booleans, otherwise undefined.
    Dynamic,
}

/// One binary step of a left-associative chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Arith(ArithOp),
    DynamicArith(ArithOp),
    Concat,
    Compare(CmpOp, CmpKind),
    Logic(LogicOp, LogicKind),
    Coalesce,
}

/// Where a `$body`/`$twin` value comes from: index into the condition's list of paths.
pub(crate) type PathSlot = u32;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Number(f64),
    String(Box<str>),
    Bool(bool),
    Null,
    Undefined,
    AppProperty(Box<str>),
    SysProperty(Box<str>),
    /// `$name`: the application property literally named `$name` if present, else system property `name`.
    ShadowedSysProperty {
        app: Box<str>,
        sys: Box<str>,
    },
    Body(PathSlot),
    /// `$body.x`: the application property literally named `$body.x` if present, else the body path.
    ShadowedBody {
        app: Box<str>,
        slot: PathSlot,
    },
    Twin(PathSlot),
    ShadowedTwin {
        app: Box<str>,
        slot: PathSlot,
    },
    Negate(Box<Node>),
    Not(Box<Node>),
    /// `NOT` of a dynamic value: defined only for booleans.
    NotDynamic(Box<Node>),
    Call(Function, Vec<Node>),
    Chain {
        first: Box<Node>,
        rest: Vec<(BinOp, Node)>,
    },
}
