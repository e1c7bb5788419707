//! Compile errors: messages, hints and 1-based positions, as snapshots of the Test Route API shape.

use iothub_query::Condition;

fn errors_of(condition: &str) -> String {
    match Condition::compile(condition) {
        Ok(_) => format!("{condition}\n  compiles\n"),
        Err(errors) => {
            let mut out = format!("{condition}\n");
            for e in errors.errors() {
                let (s, end) = (e.location.start, e.location.end);
                out.push_str(&format!(
                    "  {}:{}-{}:{} {}\n",
                    s.line, s.column, end.line, end.column, e.message
                ));
                if let Some(hint) = &e.hint {
                    out.push_str(&format!("    hint: {hint}\n"));
                }
            }
            out
        }
    }
}

fn snapshot(conditions: &[&str]) -> String {
    conditions
        .iter()
        .map(|c| errors_of(c))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn iot_hub_error_listener_cases() {
    // The conditions of IoT Hub's ErrorListenerTest; positions match IoT Hub's.
    insta::assert_snapshot!(snapshot(&[
        "3 + '4' = 7",
        "as_number(true) = true",
        "nope(true) = true",
        "(2 + 22 = 24",
        "as_number(\"2\" = 24",
        "(2 + 22 )) = 24",
        "as_number(\"2\")) = 24",
        "\"2 = 24",
        "3 = @ 3",
    ]));
}

#[test]
fn syntax_errors() {
    insta::assert_snapshot!(snapshot(&[
        "key1 = 'a\\nb'",
        "level = 'critical' AND",
        "level == 'critical'",
        "level = 'critical' && true",
        "as_number(level) -1 > 2",
        "true false",
        "[level] = 'critical'",
        "level = select",
        "{level} = 'x'",
        "level = 'x' /* unclosed comment",
        "level = 'x'\n  AND $body.a..b = 1",
        "name = 'é😀' AND @",
    ]));
}

#[test]
fn type_errors() {
    insta::assert_snapshot!(snapshot(&[
        "key2 = 3",
        "level AND true",
        "NOT level",
        "- $body.x = 1",
        "-$body.x = 1",
        "$body.x % 2 = 0",
        "length(3) = 1 OR abs('x') = 1",
        "3 + null = 3 AND 'a' || true = 'a'",
        "is_defined(3 + x) AND lower(2) = 'a'",
        "key1 ?? 12.34",
        "null AND undefined",
    ]));
}

#[test]
fn warnings_for_unquoted_strings() {
    let condition = Condition::compile("level = critical OR key1 <> 'x' OR a <> b").unwrap();
    let warnings: Vec<String> = condition.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "1:9: 'critical' is read as an application property, not as a string (hint: to compare with the text, quote it: 'critical')",
            "1:41: 'b' is read as an application property, not as a string (hint: to compare with the text, quote it: 'b')",
        ]
    );
    assert!(
        Condition::compile("level = 'critical'")
            .unwrap()
            .warnings()
            .is_empty()
    );
}

#[test]
fn errors_serialize_as_test_route_compilation_errors() {
    let errors = Condition::compile("3 = @ 3").expect_err("invalid symbol");
    let json = serde_json::to_value(&errors).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{
            "message": "Syntax error: invalid symbol '@'",
            "severity": "error",
            "location": {"start": {"line": 1, "column": 5}, "end": {"line": 1, "column": 6}}
        }])
    );
}
