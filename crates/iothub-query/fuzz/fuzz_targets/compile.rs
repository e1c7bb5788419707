//! Fuzzes the whole pipeline: any bytes as a condition are compiled and, when they compile, evaluated
//! on messages that reach the body, twin and property paths. Must never panic.
//!
//! Run: `cargo +nightly fuzz run compile -- -max_total_time=60` in crates/iothub-query/fuzz.
//! Every crash found becomes a file in corpus/compile/ (replayed by `cargo test -p iothub-query`).

#![no_main]

use iothub_query::{Condition, SimpleMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(condition) = Condition::compile(text) else {
        return;
    };
    let json = SimpleMessage::new(br#"{"a": {"b": [1, "x", null]}, "s": "t", "a": 2.5}"#.to_vec())
        .with_app_property("key1", Some("value1"))
        .with_app_property("$body.a", None)
        .with_system_property("contentType", Some("application/json"))
        .with_system_property("contentEncoding", Some("utf-8"))
        .with_twin(serde_json::json!({"tags": {"x": 1}, "properties": {"reported": {"y": [true]}}}));
    let garbage = SimpleMessage::new(data.to_vec())
        .with_system_property("contentType", Some("application/json"))
        .with_system_property("contentEncoding", Some("utf-16"));
    let _ = condition.evaluate(&json);
    let _ = condition.evaluate(&garbage);
});
