//! What a simulated device sends: the tutorial's device, or messages made from a template file.
//!
//! A scenario is shared by every device of a fleet; each device makes its own messages from it with
//! its own random number generator (seeded from the run's seed and the device's index, so a run with
//! a fixed seed is reproducible) and its own message counter `n`, which starts at 0.
//!
//! ## The tutorial device
//!
//! The built-in scenario is the `SimulatedDevice` of Azure's "Routing messages with IoT Hub"
//! tutorial. Each message is
//!
//! - body `{"deviceId":"<device id>","windSpeed":<10 + 4 × rand + 2>}` (a JSON number in [12, 16)
//!   at full precision, always with a decimal point, e.g. `14.318359152445176`);
//! - message id `message_<n>`, correlation id `correlation_<n>`;
//! - content type `application/json`, content encoding `utf-8` (what IoT Hub routing needs to
//!   query the body and to write it to storage as JSON);
//! - with `r` drawn per message: `r > 0.8` → application property `level=critical` (about 20%),
//!   `0.5 < r ≤ 0.8` → `level=storage` (about 30%), otherwise no property (about 50%).
//!
//! It is built in Rust, not from a template; `examples/scenarios/tutorial.yaml` is the same
//! device as a template file, and makes exactly the same messages for the same seed.
//!
//! ## Template files
//!
//! A template file is YAML (`.yaml` or `.yml`) or JSON (any other name) with these fields:
//!
//! ```yaml
//! variables:                 # optional; rendered in order, before everything else
//!   level: '{{ choice(["critical", "storage", ""], [20, 30, 50]) }}'
//!   temperature: '{{ random(20, 30) | round(1) }}'
//! body: |                    # required
//!   {"deviceId": {{ device_id | tojson }}, "temperature": {{ temperature }}, "n": {{ n }}}
//! message_id: "message_{{ n }}"          # optional; default "{{ device_id }}-{{ n }}"
//! correlation_id: "correlation_{{ n }}"  # optional; default: none
//! content_type: application/json         # optional; default application/json; plain text
//! content_encoding: utf-8                # optional; default utf-8; plain text
//! properties:                            # optional; application properties, in this order
//!   level: "{{ level }}"                 # left out of a message when it renders empty
//! ```
//!
//! | Field | Required | Default | What it is |
//! |---|---|---|---|
//! | `variables` | no | none | Named templates, rendered in the order written, once per message. Each result is visible by name to the variables below it and to every other template. |
//! | `body` | yes | | Template for the message body (sent as its UTF-8 bytes). |
//! | `message_id` | no | `{{ device_id }}-{{ n }}` | Template for the message id. |
//! | `correlation_id` | no | none | Template for the correlation id. |
//! | `content_type` | no | `application/json` | Plain text (not a template); empty: not sent. |
//! | `content_encoding` | no | `utf-8` | Plain text (not a template); empty: not sent. |
//! | `properties` | no | none | Application properties: name → template. A property whose value renders empty is left out of that message. |
//!
//! Any other field is an error. A field set to `null` takes its default. Values must be strings;
//! in YAML, quote a template that starts with `{` (`'{{ n }}'`), or YAML reads it as a mapping.
//!
//! Templates are [minijinja](https://docs.rs/minijinja) (Jinja2) templates.
//!
//! ### Context
//!
//! Every template sees:
//!
//! | Name | Value |
//! |---|---|
//! | `device_id` | the device id (string) |
//! | `device_index` | the device's 0-based index in the fleet (integer) |
//! | `n` | this device's message counter, from 0 (integer) |
//! | `now` | the time the message is made, RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z` |
//! | `epoch_ms` | the same time in milliseconds since 1970-01-01 UTC (integer) |
//! | `hostname` | the `HOSTNAME` environment variable (the pod name in Kubernetes), else `device-sim` |
//! | each variable | its rendered text (string), once rendered: a variable sees only the variables above it |
//!
//! A variable may not be named like one of the above or like a function, and must be a valid
//! name (letters, digits and `_`, not starting with a digit).
//!
//! ### Functions
//!
//! These draw from the device's own random number generator, so the same seed makes the same
//! messages:
//!
//! | Function | Result |
//! |---|---|
//! | `random(min, max)` | a float in [`min`, `max`) |
//! | `random_int(min, max)` | an integer in [`min`, `max`], both ends included |
//! | `choice(list)` | one item of `list`, each as likely |
//! | `choice(list, weights)` | one item of `list`, item `i` with probability `weights[i] / sum(weights)` (weights ≥ 0, not all 0) |
//! | `uuid()` | a random UUID in version 4 format, e.g. `0f8fad5b-d9cb-469f-a165-70867728950e` |
//!
//! Besides these, minijinja's built-in filters (`tojson`, `round`, `int`, `float`, `upper`,
//! `default`, ...), tests and functions (`range`, `dict`, `namespace`) are available.
//!
//! ### Rendering rules
//!
//! - Nothing is escaped: a template's output is sent as written, so bodies need not be JSON.
//!   In a JSON body, write strings with `| tojson` (`{{ device_id | tojson }}`, which adds the
//!   quotes and escapes), never `"{{ device_id }}"`.
//! - Variables are strings. `{{ temperature }}` prints the number's text, so it can stand
//!   unquoted in JSON; to compute or compare with it, convert it: `{{ temperature | float > 25 }}`,
//!   `{{ count | int + 1 }}`.
//! - A float prints in full precision with a decimal point (`21.0`, `14.318359152445176`); use
//!   `| round(1)` for fewer digits.
//! - One trailing newline of each template is dropped (so `body: |` blocks send no final newline),
//!   and a block tag (`{% ... %}`) takes no newline or indentation with it.
//! - Undefined names are errors, never empty text.
//!
//! ### Checks at load
//!
//! Loading a file compiles every template, checks that each name a template uses exists (a
//! built-in, a variable above it, or a function) and renders one message for a sample device
//! (`sample-device`, index 0, `n` 0). A syntax error, an unknown variable, function, filter or
//! test, or a failing render (`random_int(5, 1)`) is reported then, naming the template
//! (`body`, `message_id`, `correlation_id`, `properties.<name>` or `variables.<name>`) and the
//! line within it, before any device connects. A render that fails later (say, only when `n` is
//! 100) fails that message.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::Object;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use crate::message::SimMessage;

/// The message id template when a file names none.
pub const DEFAULT_MESSAGE_ID: &str = "{{ device_id }}-{{ n }}";
/// The content type when a file names none, and the tutorial's.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// The content encoding when a file names none, and the tutorial's.
pub const DEFAULT_CONTENT_ENCODING: &str = "utf-8";
/// The names every template sees, besides the variables.
pub const CONTEXT_NAMES: [&str; 6] = ["device_id", "device_index", "n", "now", "epoch_ms", "hostname"];
/// The functions templates may call, besides minijinja's own.
pub const FUNCTIONS: [&str; 4] = ["random", "random_int", "choice", "uuid"];
/// The fields of a template file.
pub const FIELDS: [&str; 7] = [
    "variables",
    "body",
    "message_id",
    "correlation_id",
    "content_type",
    "content_encoding",
    "properties",
];

/// The device a template file is validated with.
const SAMPLE_DEVICE: &str = "sample-device";
/// `hostname` when `HOSTNAME` is unset or empty.
const DEFAULT_HOSTNAME: &str = "device-sim";
/// Where the functions find the device's generator in the render context (not usable in templates:
/// the name check rejects it).
const RNG_KEY: &str = "__device_sim_rng";

/// The syntax of a template file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (anything else).
    Json,
}

impl Format {
    /// YAML for a `.yaml` or `.yml` file (any case), else JSON.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|ext| ext.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") => Self::Yaml,
            _ => Self::Json,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        })
    }
}

/// Why a scenario could not be loaded, or a message not made. Each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The template file could not be read.
    #[error("cannot read scenario file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid YAML or JSON, or does not have the shape of a scenario (a missing
    /// `body`, a value that is not a string, ...).
    #[error("invalid {format}{}: {message}", at_line(*.line, *.column))]
    Syntax {
        /// YAML or JSON.
        format: Format,
        /// 1-based line in the file (0 when unknown).
        line: usize,
        /// 1-based column in the file (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file has a field that is not one of [`FIELDS`].
    #[error("unknown field `{field}` in the {format} scenario{}; the fields are {}", at_line(*.line, *.column), FIELDS.join(", "))]
    UnknownField {
        /// YAML or JSON.
        format: Format,
        /// The field as written.
        field: String,
        /// 1-based line in the file (0 when unknown).
        line: usize,
        /// 1-based column in the file (0 when unknown).
        column: usize,
    },
    /// A template does not compile.
    #[error("template syntax error in {template}, line {line}: {message}")]
    Template {
        /// `body`, `message_id`, `correlation_id`, `properties.<name>` or `variables.<name>`.
        template: String,
        /// 1-based line within the template (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A template uses a name that is neither in the context nor a variable.
    #[error("unknown variable `{name}` in {template}; known: {known}")]
    UnknownVariable {
        /// The template.
        template: String,
        /// The unknown name.
        name: String,
        /// The names the template could use, comma-separated.
        known: String,
    },
    /// A variable uses itself or a variable defined after it.
    #[error(
        "{template} uses `{name}`, which is not defined yet: a variable sees only the variables above it"
    )]
    VariableOrder {
        /// The variable's template, `variables.<name>`.
        template: String,
        /// The variable it uses.
        name: String,
    },
    /// A template calls a function, or applies a filter or test, that does not exist.
    #[error("unknown {kind} `{name}` in {template}")]
    UnknownFunction {
        /// The template.
        template: String,
        /// `function`, `filter` or `test`.
        kind: &'static str,
        /// The unknown name.
        name: String,
    },
    /// A variable's name cannot be used.
    #[error("variables.{name}: {reason}")]
    BadVariableName {
        /// The name as written.
        name: String,
        /// Why not.
        reason: String,
    },
    /// A template failed to render (at load for the sample device, or for a message).
    #[error("cannot render {template}, line {line}: {message}")]
    Render {
        /// The template.
        template: String,
        /// 1-based line within the template (0 when unknown).
        line: usize,
        /// What went wrong, and the expression it happened in.
        message: String,
    },
}

/// ` at line L, column C`, or nothing when the position is unknown.
fn at_line(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" at line {line}, column {column}")
    }
}

/// What every device of a fleet sends: the tutorial's device, or a template file. Cheap to share
/// between threads; [`Scenario::device`] makes one device's generator.
#[derive(Debug)]
pub struct Scenario {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Tutorial,
    Template(Arc<Compiled>),
}

impl Scenario {
    /// The tutorial's `SimulatedDevice` (see the module documentation), built in Rust.
    pub fn tutorial() -> Scenario {
        Scenario { kind: Kind::Tutorial }
    }

    /// A template file: YAML if it ends in `.yaml` or `.yml`, else JSON. Every template is
    /// compiled and checked, and one message rendered for a sample device, so that a bad template
    /// fails here.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text, Format::from_path(path))
    }

    /// A YAML template file's text (see [`Scenario::from_file`]).
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        Self::from_text(text, Format::Yaml)
    }

    /// A JSON template file's text (see [`Scenario::from_file`]).
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        Self::from_text(text, Format::Json)
    }

    /// A template file's text in the given format (see [`Scenario::from_file`]).
    pub fn from_text(text: &str, format: Format) -> Result<Scenario, ScenarioError> {
        let file = ScenarioFile::parse(text, format)?;
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned());
        let scenario = Scenario {
            kind: Kind::Template(Arc::new(Compiled::new(file, hostname)?)),
        };
        scenario.device(SAMPLE_DEVICE, 0, 0).next_message(UNIX_EPOCH)?;
        Ok(scenario)
    }

    /// Whether this is the built-in tutorial device.
    pub fn is_tutorial(&self) -> bool {
        matches!(self.kind, Kind::Tutorial)
    }

    /// One device's generator: its own random number generator, seeded from `seed` and `index`
    /// (so the same seed and index make the same messages), and its own counter `n` from 0.
    pub fn device(&self, device_id: &str, index: u64, seed: u64) -> DeviceScenario {
        let rng = fastrand::Rng::with_seed(device_seed(seed, index));
        let kind = match &self.kind {
            Kind::Tutorial => DeviceKind::Tutorial {
                rng,
                device_id_json: serde_json::Value::from(device_id).to_string(),
            },
            Kind::Template(compiled) => DeviceKind::Template {
                compiled: Arc::clone(compiled),
                device_id: Value::from(device_id),
                device_index: index,
                rng: Value::from_object(DeviceRng(Mutex::new(rng))),
            },
        };
        DeviceScenario { n: 0, kind }
    }
}

/// The generator's seed for device `index` of a run seeded with `seed` (SplitMix64 of both, so
/// neighbouring devices and seeds get unrelated streams).
fn device_seed(seed: u64, index: u64) -> u64 {
    fn splitmix64(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    splitmix64(seed ^ splitmix64(index))
}

/// One device's messages: owned by the device's task.
#[derive(Debug)]
pub struct DeviceScenario {
    n: u64,
    kind: DeviceKind,
}

#[derive(Debug)]
enum DeviceKind {
    Tutorial {
        rng: fastrand::Rng,
        /// The device id as a JSON string, quotes included.
        device_id_json: String,
    },
    Template {
        compiled: Arc<Compiled>,
        device_id: Value,
        device_index: u64,
        /// A [`DeviceRng`].
        rng: Value,
    },
}

impl DeviceScenario {
    /// The next message, made at `now` (for `now` and `epoch_ms`). The counter `n` advances
    /// only when the message is made; the generator advances either way.
    pub fn next_message(&mut self, now: SystemTime) -> Result<SimMessage, ScenarioError> {
        let message = match &mut self.kind {
            DeviceKind::Tutorial { rng, device_id_json } => tutorial_message(rng, device_id_json, self.n),
            DeviceKind::Template {
                compiled,
                device_id,
                device_index,
                rng,
            } => {
                let context = Arc::new(MessageContext {
                    compiled: Arc::clone(compiled),
                    device_id: device_id.clone(),
                    device_index: *device_index,
                    n: self.n,
                    now,
                    now_text: OnceLock::new(),
                    variables: compiled.variables.iter().map(|_| OnceLock::new()).collect(),
                    rng: rng.clone(),
                });
                compiled.message(&context)?
            }
        };
        self.n += 1;
        Ok(message)
    }

    /// How many messages this device has made: the `n` of the next one.
    pub fn sent(&self) -> u64 {
        self.n
    }
}

/// Message `n` of the tutorial device.
fn tutorial_message(rng: &mut fastrand::Rng, device_id_json: &str, n: u64) -> SimMessage {
    let wind_speed = 10.0 + rng.f64() * 4.0 + 2.0;
    let level = rng.f64();
    let mut body = String::with_capacity(device_id_json.len() + 48);
    body.push_str("{\"deviceId\":");
    body.push_str(device_id_json);
    body.push_str(",\"windSpeed\":");
    let start = body.len();
    // Writing to a String cannot fail.
    let _ = write!(body, "{wind_speed}");
    if !body[start..].contains('.') {
        body.push_str(".0");
    }
    body.push('}');
    let level = if level > 0.8 {
        Some("critical")
    } else if level > 0.5 {
        Some("storage")
    } else {
        None
    };
    SimMessage {
        body: body.into_bytes(),
        message_id: Some(format!("message_{n}")),
        correlation_id: Some(format!("correlation_{n}")),
        content_type: Some(DEFAULT_CONTENT_TYPE.to_owned()),
        content_encoding: Some(DEFAULT_CONTENT_ENCODING.to_owned()),
        properties: level
            .map(|level| vec![("level".to_owned(), level.to_owned())])
            .unwrap_or_default(),
    }
}

mod file;
mod functions;

use file::{Compiled, MessageContext, ScenarioFile};

use functions::{DeviceRng, choice, random, random_int, uuid};

#[cfg(test)]
mod tests;
