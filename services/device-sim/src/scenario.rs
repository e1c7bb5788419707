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

// ---------------------------------------------------------------------------------------------
// The file

/// A template file as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    variables: Templates,
    body: String,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_encoding: Option<String>,
    #[serde(default)]
    properties: Templates,
}

impl ScenarioFile {
    fn parse(text: &str, format: Format) -> Result<ScenarioFile, ScenarioError> {
        let (message, line, column) = match format {
            Format::Yaml => match serde_norway::from_str(text) {
                Ok(file) => return Ok(file),
                Err(error) => {
                    let (line, column) = error
                        .location()
                        .map_or((0, 0), |location| (location.line(), location.column()));
                    (error.to_string(), line, column)
                }
            },
            Format::Json => match serde_json::from_str(text) {
                Ok(file) => return Ok(file),
                Err(error) => (error.to_string(), error.line(), error.column()),
            },
        };
        // Both libraries append the position to the message; it goes in its own fields.
        let message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
        if let Some(field) = message
            .split_once("unknown field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(field, _)| field.to_owned())
        {
            return Err(ScenarioError::UnknownField {
                format,
                field,
                line,
                column,
            });
        }
        Err(ScenarioError::Syntax {
            format,
            line,
            column,
            message,
        })
    }
}

/// Named templates in the order written (`variables`, `properties`). `null` is empty.
#[derive(Debug, Default)]
struct Templates(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Templates {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Templates;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of names to template strings")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Templates, E> {
                Ok(Templates::default())
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Templates, E> {
                Ok(Templates::default())
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Templates, A::Error> {
                let mut entries: Vec<(String, String)> = Vec::new();
                while let Some((name, template)) = map.next_entry::<String, String>()? {
                    if entries.iter().any(|(seen, _)| *seen == name) {
                        return Err(serde::de::Error::custom(format_args!("duplicate name `{name}`")));
                    }
                    entries.push((name, template));
                }
                Ok(Templates(entries))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled templates

/// A template file, compiled once and shared by all devices.
struct Compiled {
    env: Environment<'static>,
    /// `variables`, in order; `names[i]` is the name of `variables[i]`.
    variables: Vec<Text>,
    names: Vec<String>,
    body: Text,
    message_id: Text,
    correlation_id: Option<Text>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    properties: Vec<(String, Text)>,
    hostname: Value,
}

/// One template of a file.
enum Text {
    /// Text without any `{{`, `{%` or `{#`: sent as it is (less one trailing newline, like a
    /// template).
    Constant(String),
    /// A template in the environment, under `name` (`body`, `properties.level`, ...).
    Template { name: String, source: String },
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("variables", &self.names)
            .field(
                "properties",
                &self.properties.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Compiles every template of `file` and checks the names they use.
    fn new(file: ScenarioFile, hostname: String) -> Result<Compiled, ScenarioError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_debug(false);
        env.add_function("random", random);
        env.add_function("random_int", random_int);
        env.add_function("choice", choice);
        env.add_function("uuid", uuid);

        let mut names = Vec::with_capacity(file.variables.0.len());
        let mut variables = Vec::with_capacity(file.variables.0.len());
        for (name, source) in file.variables.0 {
            check_variable_name(&name)?;
            variables.push(compile(&mut env, format!("variables.{name}"), source)?);
            names.push(name);
        }
        let body = compile(&mut env, "body".to_owned(), file.body)?;
        let message_id = compile(
            &mut env,
            "message_id".to_owned(),
            file.message_id.unwrap_or_else(|| DEFAULT_MESSAGE_ID.to_owned()),
        )?;
        let correlation_id = file
            .correlation_id
            .map(|source| compile(&mut env, "correlation_id".to_owned(), source))
            .transpose()?;
        let properties = file
            .properties
            .0
            .into_iter()
            .map(|(name, source)| {
                let text = compile(&mut env, format!("properties.{name}"), source)?;
                Ok((name, text))
            })
            .collect::<Result<Vec<_>, ScenarioError>>()?;
        let plain = |text: Option<String>, default: &str| match text {
            None => Some(default.to_owned()),
            Some(text) if text.is_empty() => None,
            Some(text) => Some(text),
        };
        let compiled = Compiled {
            content_type: plain(file.content_type, DEFAULT_CONTENT_TYPE),
            content_encoding: plain(file.content_encoding, DEFAULT_CONTENT_ENCODING),
            env,
            variables,
            names,
            body,
            message_id,
            correlation_id,
            properties,
            hostname: Value::from(hostname),
        };
        compiled.check_names()?;
        Ok(compiled)
    }

    /// Every name a template uses must be in the context, a variable above it, or a global
    /// function: checked statically, so that a name in a branch the sample message does not take
    /// is caught too.
    fn check_names(&self) -> Result<(), ScenarioError> {
        let globals: Vec<String> = self.env.globals().map(|(name, _)| name.to_owned()).collect();
        let others = [
            Some(&self.body),
            Some(&self.message_id),
            self.correlation_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        .chain(self.properties.iter().map(|(_, text)| text));
        let all = self.variables.len();
        for (count, text) in self
            .variables
            .iter()
            .enumerate()
            .chain(others.map(|text| (all, text)))
        {
            let Text::Template {
                name: template,
                source,
            } = text
            else {
                continue;
            };
            let visible = &self.names[..count];
            let tmpl = self
                .env
                .get_template(template)
                .map_err(|error| syntax_error(template, &error))?;
            let mut used: Vec<String> = tmpl.undeclared_variables(false).into_iter().collect();
            used.sort();
            for name in used {
                if CONTEXT_NAMES.contains(&name.as_str())
                    || globals.contains(&name)
                    || visible.contains(&name)
                {
                    continue;
                }
                if self.names[count..].contains(&name) {
                    return Err(ScenarioError::VariableOrder {
                        template: template.clone(),
                        name,
                    });
                }
                if is_called(source, &name) {
                    return Err(ScenarioError::UnknownFunction {
                        template: template.clone(),
                        kind: "function",
                        name,
                    });
                }
                let known: Vec<&str> = CONTEXT_NAMES
                    .iter()
                    .copied()
                    .chain(visible.iter().map(String::as_str))
                    .collect();
                return Err(ScenarioError::UnknownVariable {
                    template: template.clone(),
                    name,
                    known: known.join(", "),
                });
            }
        }
        Ok(())
    }

    /// Renders every template for one message.
    fn message(&self, context: &Arc<MessageContext>) -> Result<SimMessage, ScenarioError> {
        let value = Value::from_dyn_object(Arc::clone(context));
        for (text, slot) in self.variables.iter().zip(&context.variables) {
            // Each slot is set once, in order, before any later template reads it.
            let _ = slot.set(Value::from(self.render(text, &value)?));
        }
        let body = self.render(&self.body, &value)?;
        let message_id = self.render(&self.message_id, &value)?;
        let correlation_id = self
            .correlation_id
            .as_ref()
            .map(|text| self.render(text, &value))
            .transpose()?;
        let mut properties = Vec::with_capacity(self.properties.len());
        for (name, text) in &self.properties {
            let rendered = self.render(text, &value)?;
            if !rendered.is_empty() {
                properties.push((name.clone(), rendered));
            }
        }
        Ok(SimMessage {
            body: body.into_bytes(),
            message_id: Some(message_id),
            correlation_id,
            content_type: self.content_type.clone(),
            content_encoding: self.content_encoding.clone(),
            properties,
        })
    }

    fn render(&self, text: &Text, context: &Value) -> Result<String, ScenarioError> {
        match text {
            Text::Constant(text) => Ok(text.clone()),
            Text::Template { name, source } => self
                .env
                .get_template(name)
                .and_then(|template| template.render(context))
                .map_err(|error| render_error(name, source, &error)),
        }
    }
}

/// Adds `source` to the environment as `name`, unless it is constant text.
fn compile(env: &mut Environment<'static>, name: String, source: String) -> Result<Text, ScenarioError> {
    if !["{{", "{%", "{#"].iter().any(|start| source.contains(start)) {
        let text = source.strip_suffix('\n').unwrap_or(&source);
        let text = text.strip_suffix('\r').unwrap_or(text);
        return Ok(Text::Constant(text.to_owned()));
    }
    env.add_template_owned(name.clone(), source.clone())
        .map_err(|error| syntax_error(&name, &error))?;
    Ok(Text::Template { name, source })
}

/// A variable's name must be usable in a template and not hide a built-in name or function.
fn check_variable_name(name: &str) -> Result<(), ScenarioError> {
    let reason = if CONTEXT_NAMES.contains(&name) || FUNCTIONS.contains(&name) || name == RNG_KEY {
        format!(
            "`{name}` is a built-in name ({}, {}) and cannot be redefined",
            CONTEXT_NAMES.join(", "),
            FUNCTIONS.join(", ")
        )
    } else if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        format!("`{name}` is not a valid name: use letters, digits and `_`, not starting with a digit")
    } else {
        return Ok(());
    };
    Err(ScenarioError::BadVariableName {
        name: name.to_owned(),
        reason,
    })
}

/// Whether `name` appears in `source` as a call, `name(` (a heuristic that tells an unknown
/// function from an unknown variable in messages).
fn is_called(source: &str, name: &str) -> bool {
    source.match_indices(name).any(|(start, _)| {
        let before = source[..start].chars().next_back();
        let after = source[start + name.len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') && after.starts_with('(')
    })
}

fn syntax_error(template: &str, error: &minijinja::Error) -> ScenarioError {
    ScenarioError::Template {
        template: template.to_owned(),
        line: error.line().unwrap_or(0),
        message: error
            .detail()
            .map_or_else(|| error.kind().to_string(), ToOwned::to_owned),
    }
}

fn render_error(template: &str, source: &str, error: &minijinja::Error) -> ScenarioError {
    let kind = match error.kind() {
        ErrorKind::UnknownFunction => Some("function"),
        ErrorKind::UnknownFilter => Some("filter"),
        ErrorKind::UnknownTest => Some("test"),
        _ => None,
    };
    // minijinja says "filter NAME is unknown", "test NAME is unknown", "NAME is unknown".
    let name = error
        .detail()
        .and_then(|detail| detail.strip_suffix(" is unknown"))
        .map(|name| {
            name.trim_start_matches("filter ")
                .trim_start_matches("test ")
                .to_owned()
        });
    if let (Some(kind), Some(name)) = (kind, name) {
        return ScenarioError::UnknownFunction {
            template: template.to_owned(),
            kind,
            name,
        };
    }
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message = format!("{message}: {detail}");
    }
    let snippet = error
        .range()
        .and_then(|range| source.get(range))
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|text| !text.is_empty() && text.chars().count() <= 80);
    if let Some(snippet) = snippet {
        message = format!("{message} (in `{snippet}`)");
    }
    ScenarioError::Render {
        template: template.to_owned(),
        line: error.line().unwrap_or(0),
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// The render context and the functions

/// What the templates of one message see: the context names, the variables rendered so far, and
/// the device's generator (for the functions).
#[derive(Debug)]
struct MessageContext {
    compiled: Arc<Compiled>,
    device_id: Value,
    device_index: u64,
    n: u64,
    now: SystemTime,
    /// `now` as text, made on first use.
    now_text: OnceLock<Option<Value>>,
    /// One slot per variable, set once rendered.
    variables: Vec<OnceLock<Value>>,
    /// A [`DeviceRng`].
    rng: Value,
}

impl MessageContext {
    fn lookup(&self, key: &str) -> Option<Value> {
        match key {
            "device_id" => Some(self.device_id.clone()),
            "device_index" => Some(Value::from(self.device_index)),
            "n" => Some(Value::from(self.n)),
            "now" => self
                .now_text
                .get_or_init(|| rfc3339_millis(self.now).map(Value::from))
                .clone(),
            "epoch_ms" => Some(Value::from(epoch_ms(self.now))),
            "hostname" => Some(self.compiled.hostname.clone()),
            RNG_KEY => Some(self.rng.clone()),
            _ => {
                let index = self.compiled.names.iter().position(|name| name == key)?;
                self.variables.get(index)?.get().cloned()
            }
        }
    }
}

impl Object for MessageContext {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.lookup(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.lookup(key)
    }
}

/// RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.123Z`); `None` outside what `time`
/// represents.
fn rfc3339_millis(now: SystemTime) -> Option<String> {
    let nanos = match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// Milliseconds since 1970-01-01 UTC (negative before).
fn epoch_ms(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

mod functions;

use functions::{DeviceRng, choice, random, random_int, uuid};

#[cfg(test)]
mod tests;
