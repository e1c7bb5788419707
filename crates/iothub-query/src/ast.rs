//! The syntax tree the parser produces and the type checker consumes.

use crate::diagnostic::Span;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    String(String),
    Number(f64),
    /// A literal IoT Hub cannot represent (a hex literal over 64 bits): typed `undefined`.
    UndefinedNumber,
    Bool(bool),
    Null,
    Undefined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Negate,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Mul,
    Div,
    Mod,
    Add,
    Sub,
    Concat,
    Less,
    LessEq,
    Greater,
    GreaterEq,
    Eq,
    NotEq,
    And,
    Or,
    Coalesce,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Literal(Literal, Span),
    /// An application property, by name.
    Property(String, Span),
    /// `$name` (text includes the `$`).
    SysProperty(String, Span),
    /// `{$name}` (text includes the `$`).
    EscapedSysProperty(String, Span),
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        op_span: Span,
        operand: Box<Expr>,
    },
    /// A left-associative run of operators of one precedence level: `first op1 e1 op2 e2 ...`.
    /// Kept flat so long `OR` lists do not make the tree (and its recursive walks) deep.
    Chain {
        first: Box<Expr>,
        rest: Vec<(BinaryOp, Span, Expr)>,
    },
}
