//! Compile errors rendered for people: the condition line, a caret under the error, the hint.

use std::fmt::Write as _;

use iothub_query::{CompileError, Severity};

/// Index in `line` (in chars) of 1-based UTF-16 `column`.
fn char_index(line: &str, column: u32) -> usize {
    let mut units = 0u32;
    for (i, c) in line.chars().enumerate() {
        if units + 1 >= column {
            return i;
        }
        units += c.len_utf16() as u32;
    }
    line.chars().count()
}

/// Renders `errors` against `source`, in the style of compiler diagnostics.
pub fn render(source: &str, errors: &[CompileError]) -> String {
    let lines: Vec<&str> = source.split('\n').collect();
    let mut out = String::new();
    for error in errors {
        let start = error.location.start;
        let end = error.location.end;
        let line = lines
            .get(start.line as usize - 1)
            .copied()
            .unwrap_or("")
            .trim_end_matches('\r');
        let from = char_index(line, start.column);
        let to = if end.line == start.line {
            char_index(line, end.column)
        } else {
            line.chars().count()
        };
        let width = to.saturating_sub(from).max(1);
        let number = start.line.to_string();
        let pad = " ".repeat(number.len());
        let label = match error.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}: {}", error.message);
        let _ = writeln!(out, "{pad}--> condition:{}:{}", start.line, start.column);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{number} | {line}");
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(from), "^".repeat(width));
        if let Some(hint) = &error.hint {
            let _ = writeln!(out, "{pad} = hint: {hint}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_query::Condition;

    #[test]
    fn carets_line_up_under_wide_characters() {
        let source = "name = 'é😀' AND @";
        let errors = Condition::compile(source).expect_err("invalid symbol");
        let text = render(source, errors.errors());
        assert!(
            text.contains(&format!("1 | name = 'é😀' AND @\n  | {}^\n", " ".repeat(16))),
            "{text}"
        );
    }
}
