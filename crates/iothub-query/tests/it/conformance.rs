//! The conformance suite in `tests/data`: IoT Hub's routing-engine expectations as data.

use crate::support::{Fixture, data_dir, run};

/// Runs every case of one `.cases` file and reports all mismatches at once.
#[track_caller]
fn check_file(name: &str) {
    let path = data_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut message = None;
    let mut failures = Vec::new();
    let mut cases = 0;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(fixture) = line.strip_prefix("@fixture ") {
            message = Some(Fixture::load(fixture.trim()));
            continue;
        }
        let (expected, condition) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("{name}:{}: no tab", number + 1));
        let message = message
            .as_ref()
            .unwrap_or_else(|| panic!("{name}:{}: no @fixture yet", number + 1));
        cases += 1;
        let actual = run(condition, message);
        let ok = match expected {
            "any" => actual != "error",
            _ => actual == expected,
        };
        if !ok {
            failures.push(format!(
                "{name}:{}: expected {expected}, got {actual}: {condition}",
                number + 1
            ));
        }
    }
    assert!(cases > 0, "{name} has no cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn condition_compiler() {
    check_file("condition_compiler.cases");
}

#[test]
fn condition_visitor() {
    check_file("condition_visitor.cases");
}

#[test]
fn error_listener() {
    check_file("error_listener.cases");
}

#[test]
fn body_query() {
    check_file("body_query.cases");
}

#[test]
fn body_query_i18n() {
    check_file("body_query_i18n.cases");
}

#[test]
fn message_query() {
    check_file("message_query.cases");
}
