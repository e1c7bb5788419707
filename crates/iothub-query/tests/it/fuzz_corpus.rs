//! Replays the fuzz corpus (`fuzz/corpus/compile`): every seed and every past crash, on stable Rust.

use iothub_query::{Condition, SimpleMessage};
use serde_json::json;

use crate::support::data_dir;

#[test]
fn every_corpus_entry_compiles_or_fails_cleanly_and_evaluates() {
    let corpus = data_dir().join("../../fuzz/corpus/compile");
    let mut entries = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        entries += 1;
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let Ok(condition) = Condition::compile(text) else {
            continue;
        };
        let json = SimpleMessage::new(br#"{"a": {"b": [1, "x", null]}, "s": "t", "a": 2.5}"#.to_vec())
            .with_app_property("key1", Some("value1"))
            .with_app_property("$body.a", None)
            .with_system_property("contentType", Some("application/json"))
            .with_system_property("contentEncoding", Some("utf-8"))
            .with_twin(json!({"tags": {"x": 1}, "properties": {"reported": {"y": [true]}}}));
        let garbage = SimpleMessage::new(data.clone())
            .with_system_property("contentType", Some("application/json"))
            .with_system_property("contentEncoding", Some("utf-16"));
        let _ = condition.evaluate(&json);
        let _ = condition.evaluate(&garbage);
    }
    assert!(
        entries >= 10,
        "corpus at {} has {entries} entries",
        corpus.display()
    );
}
