//! Compile errors in the shape of IoT Hub's Test Route API (`compilationErrors[]`), with positions.

use std::fmt;

use serde::Serialize;

/// A byte range in the condition text. Internal; users see [`Location`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub(crate) fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// How bad a compile error is. IoT Hub only ever reports `error` for route conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The condition is rejected.
    Error,
    /// The condition compiles, but probably does not do what was meant.
    Warning,
}

/// A 1-based line and column. Columns count UTF-16 code units, as IoT Hub and browsers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, in UTF-16 code units.
    pub column: u32,
}

/// Where an error is: from `start` up to, but not including, `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    /// First position covered.
    pub start: Position,
    /// First position after the range.
    pub end: Position,
}

/// One compile error, serialised exactly as an element of IoT Hub's `compilationErrors` array, plus an
/// optional `hint` saying how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompileError {
    /// What is wrong, in IoT Hub's wording where IoT Hub has one (e.g. `Syntax error: unterminated string`).
    pub message: String,
    /// An error rejects the condition; a warning (our own lints, never IoT Hub's) does not.
    pub severity: Severity,
    /// Where in the condition.
    pub location: Location,
    /// How to fix it, when there is an obvious fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.location.start;
        write!(f, "{}:{}: {}", start.line, start.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Every error found in one condition, in source order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct CompileErrors(pub Vec<CompileError>);

impl CompileErrors {
    /// The errors, in source order.
    pub fn errors(&self) -> &[CompileError] {
        &self.0
    }
}

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            error.fmt(f)?;
        }
        Ok(())
    }
}

/// An error found while compiling, still located by byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    pub(crate) severity: Severity,
    pub(crate) message: String,
    pub(crate) span: Span,
    pub(crate) hint: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub(crate) fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::new(span, message)
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Locates the error in `source`. An empty span (end of input) covers one column, as IoT Hub does.
    pub(crate) fn locate(self, source: &str) -> CompileError {
        let start = position_of(source, self.span.start);
        let mut end = position_of(source, self.span.end);
        if end <= start {
            end = Position {
                line: start.line,
                column: start.column + 1,
            };
        }
        CompileError {
            message: self.message,
            severity: self.severity,
            location: Location { start, end },
            hint: self.hint,
        }
    }
}

/// Line and UTF-16 column of byte offset `offset` (clamped to the text and to a char boundary).
fn position_of(source: &str, offset: usize) -> Position {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].encode_utf16().count() + 1;
    Position {
        line: saturate(line),
        column: saturate(column),
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Locates diagnostics in `source`, in source order.
pub(crate) fn locate_all(source: &str, mut diagnostics: Vec<Diagnostic>) -> Vec<CompileError> {
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    diagnostics.into_iter().map(|d| d.locate(source)).collect()
}

pub(crate) fn into_errors(source: &str, diagnostics: Vec<Diagnostic>) -> CompileErrors {
    CompileErrors(locate_all(source, diagnostics))
}
