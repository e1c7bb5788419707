//! Route tables: many conditions, one body parse per message.

use std::cell::Cell;

use iothub_query::{BodyError, Condition, ConditionSet, MessageView, Outcome, SimpleMessage};

/// A message that counts how often its body is read.
struct Counting {
    inner: SimpleMessage,
    body_reads: Cell<usize>,
}

impl MessageView for Counting {
    fn app_property(&self, name: &str) -> Option<Option<&str>> {
        self.inner.app_property(name)
    }
    fn system_property(&self, name: &str) -> Option<Option<&str>> {
        self.inner.system_property(name)
    }
    fn body(&self) -> &[u8] {
        self.body_reads.set(self.body_reads.get() + 1);
        self.inner.body()
    }
}

fn json_message(body: &str) -> Counting {
    Counting {
        inner: SimpleMessage::new(body.as_bytes().to_vec())
            .with_app_property("level", Some("storage"))
            .with_system_property("contentType", Some("application/json"))
            .with_system_property("contentEncoding", Some("utf-8")),
        body_reads: Cell::new(0),
    }
}

fn set(conditions: &[&str]) -> ConditionSet {
    ConditionSet::new(
        conditions
            .iter()
            .map(|c| Condition::compile(c).unwrap())
            .collect(),
    )
}

#[test]
fn the_body_is_read_once_for_all_conditions() {
    let routes = set(&[
        "$body.windSpeed > 10 AND level = 'storage'",
        "$body.windSpeed > 50",
        "$body.deviceId = 'turbine-7' OR $body.meta.site = 'north'",
        "level = 'critical'",
        "is_object($body.meta)",
    ]);
    let message = json_message(r#"{"deviceId": "turbine-7", "windSpeed": 42, "meta": {"site": "south"}}"#);
    let mut outcomes = Vec::new();
    let error = routes.evaluate_into(&message, &mut outcomes);
    assert_eq!(error, None);
    assert_eq!(
        outcomes,
        [
            Outcome::True,
            Outcome::False,
            Outcome::True,
            Outcome::False,
            Outcome::True
        ]
    );
    assert_eq!(message.body_reads.get(), 1);
}

#[test]
fn the_body_is_not_read_when_no_condition_needs_it() {
    let routes = set(&["level = 'storage'", "level = 'critical'"]);
    let message = json_message("{}");
    let mut outcomes = Vec::new();
    assert_eq!(routes.evaluate_into(&message, &mut outcomes), None);
    assert_eq!(outcomes, [Outcome::True, Outcome::False]);
    assert_eq!(message.body_reads.get(), 0);
    assert!(!routes.reads_body());
}

#[test]
fn a_body_error_is_reported_once_and_leaves_other_routes_alone() {
    let routes = set(&[
        "$body.a = 1",
        "level = 'storage'",
        "$body.b = 2 OR level = 'storage'",
    ]);
    let message = json_message("[1, 2, 3]");
    let mut outcomes = Vec::new();
    let error = routes.evaluate_into(&message, &mut outcomes);
    assert_eq!(error, Some(BodyError::NotAnObject));
    assert_eq!(outcomes, [Outcome::Undefined, Outcome::True, Outcome::True]);
    assert_eq!(message.body_reads.get(), 1);
}

#[test]
fn a_single_condition_reports_why_the_body_was_unreadable() {
    let condition = Condition::compile("$body.a = 1").unwrap();
    let message =
        SimpleMessage::new(b"{}".to_vec()).with_system_property("contentType", Some("application/json"));
    let evaluation = condition.evaluate(&message);
    assert_eq!(evaluation.outcome, Outcome::Undefined);
    assert_eq!(
        evaluation.body_error.map(|e| e.to_string()),
        Some("Content encoding is not specified in system properties.".to_owned())
    );
}
