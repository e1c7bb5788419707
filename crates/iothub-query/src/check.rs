//! The static type check: [`Expr`] → typed [`Node`], with IoT Hub's operand rules. Every violation is
//! a compile error; all of them are collected, each reported once.

use crate::ast::{BinaryOp, Expr, Literal, UnaryOp};
use crate::diagnostic::{Diagnostic, Span};
use crate::functions::{self, CallError};
use crate::ir::{ArithOp, BinOp, CmpKind, CmpOp, LogicKind, LogicOp, Node, PathSlot, Ty};
use crate::path::Path;

/// A checked condition: its tree, the static type of its root, and the paths it reads.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub(crate) root: Option<(Node, Ty)>,
    pub(crate) body_paths: Vec<Path>,
    pub(crate) twin_paths: Vec<Path>,
    /// Lints: valid conditions that probably do not mean what they say.
    pub(crate) warnings: Vec<Diagnostic>,
}

pub(crate) fn check(source: &str, expr: Option<&Expr>) -> Result<Checked, Vec<Diagnostic>> {
    let mut checker = Checker {
        source,
        diagnostics: Vec::new(),
        checked: Checked::default(),
    };
    if let Some(expr) = expr {
        let root = checker.expr(expr);
        checker.checked.root = Some(root);
    }
    if checker.diagnostics.is_empty() {
        Ok(checker.checked)
    } else {
        Err(checker.diagnostics)
    }
}

/// Warns about `a = b` where both sides are bare names: `level = critical` compares two application
/// properties, and is almost always a missing pair of quotes.
fn lint_unquoted(warnings: &mut Vec<Diagnostic>, op: BinaryOp, lhs: &Expr, rhs: &Expr) {
    if let (BinaryOp::Eq | BinaryOp::NotEq, Expr::Property(_, _), Expr::Property(name, span)) = (op, lhs, rhs)
    {
        warnings.push(
            Diagnostic::warning(
                *span,
                format!("'{name}' is read as an application property, not as a string"),
            )
            .with_hint(format!("to compare with the text, quote it: '{name}'")),
        );
    }
}

struct Checker<'s> {
    source: &'s str,
    diagnostics: Vec<Diagnostic>,
    checked: Checked,
}

const ERROR: (Node, Ty) = (Node::Undefined, Ty::Error);

fn intern(paths: &mut Vec<Path>, path: Path) -> PathSlot {
    let index = paths.iter().position(|p| *p == path).unwrap_or_else(|| {
        paths.push(path);
        paths.len() - 1
    });
    index as PathSlot
}

fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// Which document a `$`-path reads.
#[derive(Clone, Copy)]
enum Document {
    Body,
    Twin,
}

impl Checker<'_> {
    fn error(&mut self, diagnostic: Diagnostic) -> (Node, Ty) {
        self.diagnostics.push(diagnostic);
        ERROR
    }

    fn op_text(&self, span: Span) -> &str {
        self.source.get(span.start..span.end).unwrap_or("?")
    }

    fn expr(&mut self, expr: &Expr) -> (Node, Ty) {
        match expr {
            Expr::Literal(literal, _) => literal_node(literal),
            Expr::Property(name, _) => (Node::AppProperty(name.as_str().into()), Ty::String),
            Expr::SysProperty(text, span) => self.sys_property(text, *span, false),
            Expr::EscapedSysProperty(text, span) => self.sys_property(text, *span, true),
            Expr::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args),
            Expr::Unary { op, op_span, operand } => self.unary(*op, *op_span, operand),
            Expr::Chain { first, rest } => self.chain(first, rest),
        }
    }

    /// `$name` or `{$name}`: a body or twin path, or a system property, possibly shadowed by an
    /// application property literally named `$name` (only in the unescaped form).
    fn sys_property(&mut self, text: &str, span: Span, escaped: bool) -> (Node, Ty) {
        let document = if let Some(path) = strip_prefix_ignore_case(text, "$body.") {
            Some((Document::Body, path))
        } else {
            strip_prefix_ignore_case(text, "$twin.").map(|path| (Document::Twin, path))
        };
        let bracketed = text.contains(['[', ']']);
        if let Some((document, path)) = document {
            let path = match Path::parse(path) {
                Ok(path) => path,
                Err(reason) => {
                    let which = match document {
                        Document::Body => "$body",
                        Document::Twin => "$twin",
                    };
                    return self.error(
                        Diagnostic::new(span, format!("Invalid {which} query '{text}': {reason}")).with_hint(
                            "paths are names joined by '.', each optionally followed by one [index]",
                        ),
                    );
                }
            };
            let (paths, plain): (&mut Vec<Path>, fn(PathSlot) -> Node) = match document {
                Document::Body => (&mut self.checked.body_paths, Node::Body),
                Document::Twin => (&mut self.checked.twin_paths, Node::Twin),
            };
            let slot = intern(paths, path);
            // IoT Hub only lets an application property shadow a path without brackets.
            let node = match (escaped || bracketed, document) {
                (true, _) => plain(slot),
                (false, Document::Body) => Node::ShadowedBody {
                    app: text.into(),
                    slot,
                },
                (false, Document::Twin) => Node::ShadowedTwin {
                    app: text.into(),
                    slot,
                },
            };
            return (node, Ty::Dynamic);
        }
        if bracketed {
            // `$body[0]` and the like: IoT Hub documents the result as undefined.
            return (Node::Undefined, Ty::Dynamic);
        }
        let name = &text[1..];
        let node = if escaped {
            Node::SysProperty(name.into())
        } else {
            Node::ShadowedSysProperty {
                app: text.into(),
                sys: name.into(),
            }
        };
        (node, Ty::String)
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Expr]) -> (Node, Ty) {
        let (nodes, types): (Vec<Node>, Vec<Ty>) = args.iter().map(|a| self.expr(a)).unzip();
        match functions::resolve(name, &types) {
            Ok((function, ty)) => (Node::Call(function, nodes), ty),
            Err(CallError::UnknownFunction) => self.error(
                Diagnostic::new(name_span, format!("Invalid built-in function '{name}'")).with_hint(
                    "the functions are abs, exp, power, square, ceiling, floor, sign, sqrt, as_number, \
                     is_bool, is_defined, is_null, is_number, is_string, is_array, is_object, is_primitive, \
                     concat, length, lower, upper, substring, index_of, starts_with, ends_with, contains",
                ),
            ),
            Err(CallError::BadArguments) if types.contains(&Ty::Error) => ERROR,
            Err(CallError::BadArguments) => {
                let given: Vec<&str> = types.iter().map(|t| t.name()).collect();
                let message = format!(
                    "Invalid arguments to built-in function '{name}': {name}({})",
                    given.join(", ")
                );
                let hint = format!(
                    "{} takes {}",
                    name.to_ascii_lowercase(),
                    functions::signatures(name)
                );
                let hint = if types.contains(&Ty::String) && functions::signatures(name).contains("number") {
                    format!("{hint}; convert a property with as_number(...)")
                } else {
                    hint
                };
                self.error(Diagnostic::new(name_span, message).with_hint(hint))
            }
        }
    }

    fn unary(&mut self, op: UnaryOp, op_span: Span, operand: &Expr) -> (Node, Ty) {
        let (node, ty) = self.expr(operand);
        let boxed = Box::new(node);
        match (op, ty) {
            (_, Ty::Error) => ERROR,
            (UnaryOp::Negate, Ty::Number) => (Node::Negate(boxed), Ty::Number),
            (UnaryOp::Not, Ty::Bool | Ty::Null) => (Node::Not(boxed), Ty::Bool),
            (UnaryOp::Not, Ty::Dynamic) => (Node::NotDynamic(boxed), Ty::Bool),
            (UnaryOp::Negate, _) => {
                let error = self.operand_error(op_span, &[ty], "'number'");
                let hint = if ty == Ty::Dynamic {
                    "IoT Hub cannot negate a $body value; write - as_number($body.x) or 0 - $body.x"
                } else {
                    "only numbers can be negated; convert a property with as_number(...)"
                };
                self.error(error.with_hint(hint))
            }
            (UnaryOp::Not, _) => {
                let error = self.operand_error(op_span, &[ty], "'bool'");
                self.error(error.with_hint("NOT applies to a condition, e.g. NOT (level = 'critical')"))
            }
        }
    }

    fn operand_error(&self, op_span: Span, have: &[Ty], expected: &str) -> Diagnostic {
        let arity = if have.len() == 1 { "unary" } else { "binary" };
        let have: Vec<String> = have.iter().map(|t| format!("'{}'", t.name())).collect();
        Diagnostic::new(
            op_span,
            format!(
                "Invalid operands to {arity} operator '{}': have {}, expected {expected}",
                self.op_text(op_span),
                have.join(" and ")
            ),
        )
    }

    fn chain(&mut self, first: &Expr, rest: &[(BinaryOp, Span, Expr)]) -> (Node, Ty) {
        let mut previous = first;
        let (first, mut ty) = self.expr(first);
        let mut steps = Vec::with_capacity(rest.len());
        for (op, span, operand) in rest {
            lint_unquoted(&mut self.checked.warnings, *op, previous, operand);
            previous = operand;
            let (node, rhs) = self.expr(operand);
            let (step, result) = match self.binary(*op, *span, ty, rhs) {
                Ok(resolved) => resolved,
                Err(diagnostic) => {
                    if let Some(diagnostic) = diagnostic {
                        self.diagnostics.push(diagnostic);
                    }
                    (BinOp::Coalesce, Ty::Error)
                }
            };
            steps.push((step, node));
            ty = result;
        }
        (
            Node::Chain {
                first: Box::new(first),
                rest: steps,
            },
            ty,
        )
    }

    /// Resolves one binary operator. `Err(None)`: an operand already failed, nothing more to say.
    fn binary(&self, op: BinaryOp, span: Span, l: Ty, r: Ty) -> Result<(BinOp, Ty), Option<Diagnostic>> {
        if l == Ty::Error || r == Ty::Error {
            return Err(None);
        }
        match op {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                let arith = match op {
                    BinaryOp::Add => ArithOp::Add,
                    BinaryOp::Sub => ArithOp::Sub,
                    BinaryOp::Mul => ArithOp::Mul,
                    BinaryOp::Div => ArithOp::Div,
                    _ => ArithOp::Mod,
                };
                let numeric = |t| matches!(t, Ty::Number | Ty::Dynamic);
                if l == Ty::Number && r == Ty::Number {
                    Ok((BinOp::Arith(arith), Ty::Number))
                } else if numeric(l) && numeric(r) && op != BinaryOp::Mod {
                    Ok((BinOp::DynamicArith(arith), Ty::Dynamic))
                } else {
                    let error = self.operand_error(span, &[l, r], "'number' and 'number'");
                    Err(Some(if op == BinaryOp::Mod && numeric(l) && numeric(r) {
                        error.with_hint("IoT Hub has no % on $body values; write as_number($body.x) % n")
                    } else if l == Ty::String || r == Ty::String {
                        error.with_hint("properties are strings; convert with as_number(...)")
                    } else {
                        error
                    }))
                }
            }
            BinaryOp::Concat => {
                let stringy = |t| matches!(t, Ty::String | Ty::Dynamic);
                if stringy(l) && stringy(r) {
                    Ok((BinOp::Concat, Ty::String))
                } else {
                    Err(Some(self.operand_error(span, &[l, r], "'string' and 'string'")))
                }
            }
            BinaryOp::Less
            | BinaryOp::LessEq
            | BinaryOp::Greater
            | BinaryOp::GreaterEq
            | BinaryOp::Eq
            | BinaryOp::NotEq => {
                let cmp = match op {
                    BinaryOp::Less => CmpOp::Lt,
                    BinaryOp::LessEq => CmpOp::Le,
                    BinaryOp::Greater => CmpOp::Gt,
                    BinaryOp::GreaterEq => CmpOp::Ge,
                    BinaryOp::Eq => CmpOp::Eq,
                    _ => CmpOp::Ne,
                };
                let kind = self.same_type(span, l, r)?;
                Ok((BinOp::Compare(cmp, kind), Ty::Bool))
            }
            BinaryOp::Coalesce => {
                let kind = self.same_type(span, l, r)?;
                Ok((
                    BinOp::Coalesce,
                    if kind == CmpKind::Dynamic { Ty::Dynamic } else { l },
                ))
            }
            BinaryOp::And | BinaryOp::Or => self.logic(op, span, l, r),
        }
    }

    /// Comparisons and `??` need both sides of one static type, except that a dynamic value mixes
    /// with a string, number, bool or null.
    fn same_type(&self, span: Span, l: Ty, r: Ty) -> Result<CmpKind, Option<Diagnostic>> {
        let kind = match (l, r) {
            (Ty::Dynamic, t) | (t, Ty::Dynamic) if t.mixes_with_dynamic() => CmpKind::Dynamic,
            (Ty::String, Ty::String) => CmpKind::String,
            (Ty::Number, Ty::Number) => CmpKind::Number,
            (Ty::Bool, Ty::Bool) => CmpKind::Bool,
            (Ty::Null, Ty::Null) => CmpKind::Null,
            (Ty::Undefined, Ty::Undefined) => CmpKind::Undefined,
            _ => {
                let expected = format!("'{0}' and '{0}'", l.name());
                let error = self.operand_error(span, &[l, r], &expected);
                let numbers_and_strings =
                    matches!((l, r), (Ty::String, Ty::Number) | (Ty::Number, Ty::String));
                return Err(Some(if numbers_and_strings {
                    error.with_hint(
                        "properties are strings: compare with a string ('3') or convert with as_number(...)",
                    )
                } else if l == Ty::Undefined || r == Ty::Undefined {
                    error.with_hint("to test for a missing value use is_defined(...)")
                } else if l == Ty::Null || r == Ty::Null {
                    error.with_hint("to test for null use is_null(...)")
                } else {
                    error
                }));
            }
        };
        Ok(kind)
    }

    fn logic(&self, op: BinaryOp, span: Span, l: Ty, r: Ty) -> Result<(BinOp, Ty), Option<Diagnostic>> {
        let logic_op = if op == BinaryOp::And {
            LogicOp::And
        } else {
            LogicOp::Or
        };
        let valid = |t| matches!(t, Ty::Bool | Ty::Null | Ty::Undefined | Ty::Dynamic);
        // IoT Hub has no AND/OR between null and undefined, nor between null and a dynamic value.
        let null_mix = matches!(
            (l, r),
            (Ty::Null, Ty::Undefined | Ty::Dynamic) | (Ty::Undefined | Ty::Dynamic, Ty::Null)
        );
        if !valid(l) || !valid(r) || null_mix {
            let error = self.operand_error(span, &[l, r], "'bool' and 'bool'");
            return Err(Some(if l == Ty::String || r == Ty::String {
                error.with_hint("a property alone is not a condition; compare it, e.g. level = 'critical'")
            } else {
                error
            }));
        }
        if l == Ty::Dynamic || r == Ty::Dynamic {
            return Ok((BinOp::Logic(logic_op, LogicKind::Dynamic), Ty::Bool));
        }
        let ty = match logic_op {
            LogicOp::And if l == Ty::Null || r == Ty::Null => Ty::Null,
            LogicOp::Or if l == Ty::Null && r == Ty::Null => Ty::Null,
            _ => Ty::Bool,
        };
        Ok((BinOp::Logic(logic_op, LogicKind::Static), ty))
    }
}

fn literal_node(literal: &Literal) -> (Node, Ty) {
    match literal {
        Literal::String(s) => (Node::String(s.as_str().into()), Ty::String),
        Literal::Number(n) => (Node::Number(*n), Ty::Number),
        Literal::UndefinedNumber | Literal::Undefined => (Node::Undefined, Ty::Undefined),
        Literal::Bool(b) => (Node::Bool(*b), Ty::Bool),
        Literal::Null => (Node::Null, Ty::Null),
    }
}
