//! Property tests: any condition text and any message give a result or a compile error, never a panic.

use iothub_query::{Condition, ConditionSet, SimpleMessage};
use proptest::prelude::*;

/// Fragments of the language, so generated conditions reach past the lexer often.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("key1".to_owned()),
        Just("$body.a".to_owned()),
        Just("$body.a.b[1]".to_owned()),
        Just("{$contentType}".to_owned()),
        Just("$twin.tags.x".to_owned()),
        Just("'str'".to_owned()),
        Just("-1.5e3".to_owned()),
        Just("0x1F".to_owned()),
        Just("null".to_owned()),
        Just("undefined".to_owned()),
        Just("true".to_owned()),
        Just(" AND ".to_owned()),
        Just(" OR ".to_owned()),
        Just(" NOT ".to_owned()),
        Just(" = ".to_owned()),
        Just(" <> ".to_owned()),
        Just(" < ".to_owned()),
        Just(" + ".to_owned()),
        Just(" - ".to_owned()),
        Just(" % ".to_owned()),
        Just(" || ".to_owned()),
        Just(" ?? ".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(",".to_owned()),
        Just("as_number(".to_owned()),
        Just("substring(".to_owned()),
        Just("concat(".to_owned()),
        Just("is_null(".to_owned()),
        "\\PC{0,4}",
    ]
}

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        any::<String>(),
        prop::collection::vec(fragment(), 0..24).prop_map(|parts| parts.concat()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        Just(br#"{"a": {"b": [1, "x", {"c": null}]}, "a": 2}"#.to_vec()),
        "\\{\"a\": \\PC{0,20}\\}".prop_map(String::into_bytes),
        any::<f64>().prop_map(|n| format!("{{\"a\": {n:e}}}").into_bytes()),
    ]
}

fn property() -> impl Strategy<Value = (String, Option<String>)> {
    (
        prop_oneof![Just("key1".to_owned()), Just("$body.a".to_owned()), "\\PC{0,8}"],
        prop::option::of("\\PC{0,8}"),
    )
}

fn message() -> impl Strategy<Value = SimpleMessage> {
    (
        prop::collection::vec(property(), 0..4),
        prop::sample::select(vec!["application/json", "text/plain", "APPLICATION/JSON"]),
        prop::sample::select(vec!["utf-8", "utf-16", "utf-32", "latin1"]),
        body(),
    )
        .prop_map(|(app, content_type, encoding, body)| SimpleMessage {
            app_properties: app,
            system_properties: vec![
                ("contentType".to_owned(), Some(content_type.to_owned())),
                ("contentEncoding".to_owned(), Some(encoding.to_owned())),
            ],
            body,
            twin: Some(serde_json::json!({"tags": {"x": [1, {"y": "z"}]}})),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn any_condition_on_any_message_never_panics(text in condition(), message in message()) {
        match Condition::compile(&text) {
            Ok(condition) => {
                let single = condition.evaluate(&message).outcome;
                let set = ConditionSet::new(vec![condition]);
                let mut outcomes = Vec::new();
                set.evaluate_into(&message, &mut outcomes);
                prop_assert_eq!(outcomes, vec![single]);
            }
            Err(errors) => {
                prop_assert!(!errors.errors().is_empty());
                for error in errors.errors() {
                    prop_assert!(error.location.start.line >= 1 && error.location.start.column >= 1);
                    prop_assert!(error.location.end > error.location.start);
                }
            }
        }
    }
}
