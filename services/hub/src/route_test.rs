//! `hub route test`: the local twin of IoT Hub's Test Route API (`az iot hub message-route test`).
//! Reads a `RoutingMessage` and an optional `RoutingTwin`, evaluates one condition, and answers with a
//! `TestRouteResult`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use iothub_query::{BodyError, CompileError, Condition, Outcome, SimpleMessage, names_equal};
use serde::{Deserialize, Serialize};

/// Largest message or twin file read (IoT Hub messages are at most 256 KB).
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// IoT Hub's `RoutingMessage`: what the Test Route API takes as the message.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingMessage {
    /// The body as text; encoded per the `contentEncoding` system property (UTF-8 by default).
    #[serde(default)]
    pub body: Option<String>,
    /// Application properties: string values, or null for a property present with no value.
    #[serde(default)]
    pub app_properties: BTreeMap<String, Option<String>>,
    /// System properties by query name (`contentType`, `contentEncoding`, `connectionDeviceId`, ...).
    #[serde(default)]
    pub system_properties: BTreeMap<String, Option<String>>,
}

/// IoT Hub's `RoutingTwin`: tags and desired/reported properties.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingTwin {
    /// Twin tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
    /// Desired and reported properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<TwinProperties>,
}

/// `properties` of a [`RoutingTwin`].
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TwinProperties {
    /// Desired properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<serde_json::Map<String, serde_json::Value>>,
    /// Reported properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<serde_json::Map<String, serde_json::Value>>,
}

/// IoT Hub's `TestRouteResult`.
#[derive(Debug, Serialize)]
pub struct TestRouteResult {
    /// `"true"`, `"false"` or `"undefined"` (also when the condition does not compile).
    pub result: Outcome,
    /// Compile errors, if any.
    pub details: TestRouteResultDetails,
}

/// `details` of a [`TestRouteResult`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRouteResultDetails {
    /// Errors when the condition did not compile; otherwise warnings only (severity `warning`), usually none.
    pub compilation_errors: Vec<CompileError>,
}

/// Why an input file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_INPUT_BYTES`].
    #[error("{path} is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not the expected JSON.
    #[error("{path} is not a valid {what}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// `RoutingMessage` or `RoutingTwin`.
        what: &'static str,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// Two property names differ only in case; IoT Hub treats them as one.
    #[error("{section} has both '{first}' and '{second}'; property names are case-insensitive")]
    DuplicateName {
        /// `appProperties` or `systemProperties`.
        section: &'static str,
        /// One name.
        first: String,
        /// The other.
        second: String,
    },
    /// The body was given twice.
    #[error("the message file has a body and --body-file gives one too; give only one")]
    BodyTwice,
}

/// Reads a whole file (or standard input for `-`), refusing more than [`MAX_INPUT_BYTES`].
pub fn read_input(path: &Path) -> Result<Vec<u8>, InputError> {
    let read_error = |source| InputError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    let limit = MAX_INPUT_BYTES + 1;
    if path == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
    } else {
        std::fs::File::open(path)
            .map_err(read_error)?
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
    }
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn properties(
    section: &'static str,
    map: BTreeMap<String, Option<String>>,
) -> Result<Vec<(String, Option<String>)>, InputError> {
    let list: Vec<(String, Option<String>)> = map.into_iter().collect();
    for (i, (first, _)) in list.iter().enumerate() {
        if let Some((second, _)) = list[i + 1..].iter().find(|(other, _)| names_equal(first, other)) {
            return Err(InputError::DuplicateName {
                section,
                first: first.clone(),
                second: second.clone(),
            });
        }
    }
    Ok(list)
}

/// Encodes a text body as the message's `contentEncoding` says (utf-16 and utf-32 are little-endian,
/// as in .NET); anything else is UTF-8.
fn encode_body(text: &str, encoding: Option<&str>) -> Vec<u8> {
    match encoding {
        Some(e) if e.eq_ignore_ascii_case("utf-16") => {
            text.encode_utf16().flat_map(u16::to_le_bytes).collect()
        }
        Some(e) if e.eq_ignore_ascii_case("utf-32") => {
            text.chars().flat_map(|c| u32::from(c).to_le_bytes()).collect()
        }
        _ => text.as_bytes().to_vec(),
    }
}

/// Builds the message to test from a `RoutingMessage` file and, optionally, raw body bytes.
pub fn load_message(
    path: &Path,
    bytes: &[u8],
    raw_body: Option<Vec<u8>>,
) -> Result<SimpleMessage, InputError> {
    let message: RoutingMessage = serde_json::from_slice(bytes).map_err(|source| InputError::Json {
        path: path.to_owned(),
        what: "RoutingMessage ({\"body\", \"appProperties\", \"systemProperties\"})",
        source,
    })?;
    simple_message(message, raw_body)
}

/// The message to test from a parsed `RoutingMessage` and, optionally, raw body bytes.
pub fn simple_message(
    message: RoutingMessage,
    raw_body: Option<Vec<u8>>,
) -> Result<SimpleMessage, InputError> {
    let app_properties = properties("appProperties", message.app_properties)?;
    let system_properties = properties("systemProperties", message.system_properties)?;
    let body = match (message.body, raw_body) {
        (Some(_), Some(_)) => return Err(InputError::BodyTwice),
        (None, Some(raw)) => raw,
        (text, None) => {
            let encoding = system_properties
                .iter()
                .find(|(name, _)| names_equal(name, "contentEncoding"))
                .and_then(|(_, value)| value.as_deref());
            encode_body(&text.unwrap_or_default(), encoding)
        }
    };
    Ok(SimpleMessage {
        app_properties,
        system_properties,
        body,
        twin: None,
    })
}

/// Reads a `RoutingTwin` file into the twin document conditions see.
pub fn load_twin(path: &Path, bytes: &[u8]) -> Result<serde_json::Value, InputError> {
    let twin: RoutingTwin = serde_json::from_slice(bytes).map_err(|source| InputError::Json {
        path: path.to_owned(),
        what: "RoutingTwin ({\"tags\", \"properties\": {\"desired\", \"reported\"}})",
        source,
    })?;
    serde_json::to_value(twin).map_err(|source| InputError::Json {
        path: path.to_owned(),
        what: "RoutingTwin",
        source,
    })
}

/// Compiles and evaluates `condition` on `message`. Also says why `$body` was undefined, if it was.
pub fn test_route(condition: &str, message: &SimpleMessage) -> (TestRouteResult, Option<BodyError>) {
    match Condition::compile(condition) {
        Ok(compiled) => {
            let evaluation = compiled.evaluate(message);
            let result = TestRouteResult {
                result: evaluation.outcome,
                details: TestRouteResultDetails {
                    compilation_errors: compiled.warnings().to_vec(),
                },
            };
            (result, evaluation.body_error)
        }
        Err(errors) => {
            let result = TestRouteResult {
                result: Outcome::Undefined,
                details: TestRouteResultDetails {
                    compilation_errors: errors.0,
                },
            };
            (result, None)
        }
    }
}
