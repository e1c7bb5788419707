//! The public face: compile a condition once, evaluate it many times; evaluate a set of conditions
//! (a route table) on one message with a single parse of its body.

use std::cell::OnceCell;
use std::fmt;

use serde::Serialize;

use crate::body::{BodyError, BodyPlan, LazyBody};
use crate::check::check;
use crate::diagnostic::{CompileError, CompileErrors, into_errors, locate_all};
use crate::eval::{Scope, eval, to_result};
use crate::ir::{Node, Ty};
use crate::message::MessageView;
use crate::parser::parse;
use crate::path::Path;

/// The result of a condition on a message. Only `True` routes the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The condition could not be decided (a missing property, an unreadable body, ...): treated as
    /// false by routing, and logged by IoT Hub as `UndefinedRouteEvaluation`.
    Undefined,
}

impl Outcome {
    fn from_tri(value: Option<bool>) -> Outcome {
        match value {
            Some(true) => Outcome::True,
            Some(false) => Outcome::False,
            None => Outcome::Undefined,
        }
    }

    /// `"true"`, `"false"` or `"undefined"`, as IoT Hub's Test Route API spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::True => "true",
            Outcome::False => "false",
            Outcome::Undefined => "undefined",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One evaluation: the outcome and, when the condition read the body and could not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The result.
    pub outcome: Outcome,
    /// Set when a `$body` reference was evaluated and the body could not be queried.
    pub body_error: Option<BodyError>,
}

/// A compiled route condition. Cheap to evaluate, immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    root: Option<(Node, Ty)>,
    body_paths: Vec<Path>,
    twin_paths: Vec<Path>,
    plan: BodyPlan,
    /// Slot in `plan` of each of `body_paths`.
    body_slots: Vec<u32>,
    warnings: Vec<CompileError>,
}

impl Condition {
    /// Compiles `source`. An empty condition (only white space and comments) compiles and evaluates
    /// to undefined, as in IoT Hub; a route *without* a condition is `true`, which is the caller's rule.
    pub fn compile(source: &str) -> Result<Condition, CompileErrors> {
        let expr = parse(source).map_err(|d| into_errors(source, d))?;
        let checked = check(source, expr.as_ref()).map_err(|d| into_errors(source, d))?;
        let (plan, body_slots) = BodyPlan::new(&checked.body_paths);
        Ok(Condition {
            source: source.to_owned(),
            root: checked.root,
            body_paths: checked.body_paths,
            twin_paths: checked.twin_paths,
            plan,
            body_slots,
            warnings: locate_all(source, checked.warnings),
        })
    }

    /// Lints on a condition that compiled: valid, but probably not what was meant (for example
    /// `level = critical`, which compares two properties). IoT Hub itself reports none of these.
    pub fn warnings(&self) -> &[CompileError] {
        &self.warnings
    }

    /// The text this condition was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether evaluating this condition may read the message body.
    pub fn reads_body(&self) -> bool {
        !self.body_paths.is_empty()
    }

    /// Evaluates the condition on `message`. The body is parsed only if a `$body` reference is reached.
    pub fn evaluate<M: MessageView + ?Sized>(&self, message: &M) -> Evaluation {
        let decoded = OnceCell::new();
        let body = LazyBody::new(&self.plan, message, &decoded);
        let outcome = self.evaluate_in(message, &body, &self.body_slots);
        Evaluation {
            outcome,
            body_error: body.error().cloned(),
        }
    }

    fn evaluate_in<'s, 'a: 's, M: MessageView + ?Sized>(
        &'s self,
        message: &'a M,
        body: &'s LazyBody<'s, 'a, M>,
        body_slots: &'s [u32],
    ) -> Outcome {
        let Some((root, ty)) = &self.root else {
            return Outcome::Undefined;
        };
        let scope = Scope {
            message,
            body,
            body_slots,
            twin_paths: &self.twin_paths,
        };
        Outcome::from_tri(to_result(&eval(root, &scope), *ty))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Several conditions evaluated together on each message (a route table): the body is decoded and
/// parsed at most once per message, extracting only the union of the paths they read.
#[derive(Debug, Clone, Default)]
pub struct ConditionSet {
    conditions: Vec<Condition>,
    plan: BodyPlan,
    /// For each condition, the slot in `plan` of each of its body paths.
    body_slots: Vec<Vec<u32>>,
}

impl ConditionSet {
    /// Builds a set; `conditions[i]` keeps index `i` in the results.
    pub fn new(conditions: Vec<Condition>) -> ConditionSet {
        let mut union: Vec<Path> = Vec::new();
        let mut local_to_union: Vec<Vec<usize>> = Vec::with_capacity(conditions.len());
        for condition in &conditions {
            let indexes = condition
                .body_paths
                .iter()
                .map(|path| {
                    union.iter().position(|p| p == path).unwrap_or_else(|| {
                        union.push(path.clone());
                        union.len() - 1
                    })
                })
                .collect();
            local_to_union.push(indexes);
        }
        let (plan, union_slots) = BodyPlan::new(&union);
        let body_slots = local_to_union
            .iter()
            .map(|indexes| indexes.iter().map(|&i| union_slots[i]).collect())
            .collect();
        ConditionSet {
            conditions,
            plan,
            body_slots,
        }
    }

    /// The conditions, in order.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Number of conditions.
    pub fn len(&self) -> usize {
        self.conditions.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Evaluates every condition on `message`, replacing the contents of `outcomes` with one outcome
    /// per condition, in order. Returns why the body could not be queried, if a condition needed it.
    pub fn evaluate_into<M: MessageView + ?Sized>(
        &self,
        message: &M,
        outcomes: &mut Vec<Outcome>,
    ) -> Option<BodyError> {
        outcomes.clear();
        let decoded = OnceCell::new();
        let body = LazyBody::new(&self.plan, message, &decoded);
        for (condition, slots) in self.conditions.iter().zip(&self.body_slots) {
            outcomes.push(condition.evaluate_in(message, &body, slots));
        }
        body.error().cloned()
    }

    /// Whether the body plan is empty, i.e. no condition reads the body.
    pub fn reads_body(&self) -> bool {
        !self.plan.is_empty()
    }
}
