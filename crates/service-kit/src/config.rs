//! Layered, typed configuration: defaults → optional file (YAML or JSON) → environment → overrides.
//!
//! Environment variables are `<PREFIX>_<key>`, with `__` between nested keys: `HUB_DATA_DIR` sets
//! `data_dir`, `HUB_MQTT__PORT` sets `mqtt.port` (the shape Helm charts set). The environment is read
//! through [`EnvSource`], so tests pass a map and never touch the process environment.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where environment variables come from.
pub trait EnvSource {
    /// Every variable, as (name, value).
    fn vars(&self) -> Vec<(String, String)>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

impl EnvSource for HashMap<String, String> {
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl EnvSource for [(&str, &str)] {
    fn vars(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
}

/// A configuration that cannot be used; the message names the offending key and its source.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A configuration error with this message (for checks done after loading).
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

/// What to load, besides the defaults of the configuration type.
#[derive(Debug, Clone)]
pub struct Sources<'a, E: EnvSource + ?Sized> {
    /// Environment variable prefix, e.g. `HUB`.
    pub prefix: &'a str,
    /// A YAML (`.yaml`, `.yml`) or JSON file, if given; it must exist.
    pub file: Option<&'a Path>,
    /// The environment.
    pub env: &'a E,
    /// `key.path=value` overrides from the command line, applied last.
    pub overrides: &'a [(String, String)],
}

/// Environment variables that carry the prefix but name no top-level setting: Kubernetes service links
/// (`HUB_SERVICE_HOST`, `HUB_PORT`) look like this. They are returned so the caller can log them.
pub type Ignored = Vec<String>;

/// Loads `T`: its `Default`, then the file, the environment and the overrides.
pub fn load<T, E>(sources: &Sources<'_, E>) -> Result<(T, Ignored), ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
    E: EnvSource + ?Sized,
{
    let defaults = Config::try_from(&T::default()).map_err(|e| ConfigError(format!("defaults: {e}")))?;
    let top_level = top_level_keys::<T>()?;
    let mut builder = Config::builder().add_source(defaults);
    if let Some(path) = sources.file {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => FileFormat::Json,
            Some("yaml" | "yml") => FileFormat::Yaml,
            _ => {
                return Err(ConfigError(format!(
                    "{}: the file name must end in .yaml, .yml or .json",
                    path.display()
                )));
            }
        };
        if !path.is_file() {
            return Err(ConfigError(format!("{}: no such file", path.display())));
        }
        builder = builder.add_source(File::from(path).format(format).required(true));
    }
    let (env, ignored) = prefixed(sources.prefix, sources.env, &top_level);
    builder = builder.add_source(
        Environment::with_prefix(sources.prefix)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    for (key, value) in sources.overrides {
        builder = builder
            .set_override(key.as_str(), value.as_str())
            .map_err(|e| ConfigError(format!("{key}: {e}")))?;
    }
    let config = builder.build().map_err(|e| ConfigError(e.to_string()))?;
    let value = config
        .try_deserialize::<T>()
        .map_err(|e| ConfigError(e.to_string()))?;
    Ok((value, ignored))
}

/// The top-level keys of `T`, from its serialised defaults.
fn top_level_keys<T: Serialize + Default>() -> Result<Vec<String>, ConfigError> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => Ok(map.keys().cloned().collect()),
        Ok(_) => Err(ConfigError(
            "the configuration type must serialise as a map".to_owned(),
        )),
        Err(e) => Err(ConfigError(format!("defaults: {e}"))),
    }
}

/// The variables with `prefix` whose first key segment is a top-level setting, and the names of
/// the others.
fn prefixed<E: EnvSource + ?Sized>(
    prefix: &str,
    env: &E,
    top_level: &[String],
) -> (HashMap<String, String>, Ignored) {
    let head = format!("{prefix}_");
    let mut kept = HashMap::new();
    let mut ignored = Vec::new();
    for (name, value) in env.vars() {
        let Some(rest) = name.strip_prefix(&head) else {
            continue;
        };
        let first = rest.split("__").next().unwrap_or("").to_ascii_lowercase();
        if top_level.contains(&first) {
            kept.insert(name, value);
        } else {
            ignored.push(name);
        }
    }
    ignored.sort();
    (kept, ignored)
}

/// `serialize_with` for a secret setting: `""` when unset, `"***"` otherwise, so a configuration
/// can be printed or logged. (Defaults are serialised to seed [`load`]: keep a secret's default
/// empty.)
pub fn redacted<S: serde::Serializer>(
    secret: &secrecy::SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret as _;
    serializer.serialize_str(if secret.expose_secret().is_empty() {
        ""
    } else {
        "***"
    })
}

/// `serialize_with` for a map of secrets: the keys, each value `"***"`.
pub fn redacted_map<S: serde::Serializer>(
    map: &BTreeMap<String, secrecy::SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut out = serializer.serialize_map(Some(map.len()))?;
    for key in map.keys() {
        out.serialize_entry(key, "***")?;
    }
    out.end()
}
