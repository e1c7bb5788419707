//! Shared helpers: fixture messages and one-line checks.

use std::path::PathBuf;

use iothub_query::{Condition, Outcome, SimpleMessage};
use serde::Deserialize;

/// A message in the shape of IoT Hub's Test Route API input, plus how to encode the body text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Fixture {
    #[serde(default)]
    pub(crate) body: String,
    #[serde(default)]
    pub(crate) body_bytes: Option<String>,
    #[serde(default)]
    pub(crate) app_properties: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub(crate) system_properties: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub(crate) twin: Option<serde_json::Value>,
}

pub(crate) fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn properties(map: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, Option<String>)> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
        .collect()
}

pub(crate) fn encode(text: &str, encoding: Option<&str>) -> Vec<u8> {
    match encoding.unwrap_or("utf-8") {
        "utf-8" => text.as_bytes().to_vec(),
        "utf-16le" => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        "utf-32le" => text.chars().flat_map(|c| (c as u32).to_le_bytes()).collect(),
        other => panic!("unknown bodyBytes {other}"),
    }
}

impl Fixture {
    pub(crate) fn load(name: &str) -> SimpleMessage {
        let path = data_dir().join("fixtures").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let fixture: Fixture =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fixture.into_message()
    }

    pub(crate) fn into_message(self) -> SimpleMessage {
        SimpleMessage {
            app_properties: properties(&self.app_properties),
            system_properties: properties(&self.system_properties),
            body: encode(&self.body, self.body_bytes.as_deref()),
            twin: self.twin,
        }
    }
}

/// `"true"`, `"false"`, `"undefined"` or `"error"` for `condition` on `message`.
pub(crate) fn run(condition: &str, message: &SimpleMessage) -> &'static str {
    match Condition::compile(condition) {
        Ok(c) => match c.evaluate(message).outcome {
            Outcome::True => "true",
            Outcome::False => "false",
            Outcome::Undefined => "undefined",
        },
        Err(_) => "error",
    }
}
