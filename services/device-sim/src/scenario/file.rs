//! Template files: the YAML/JSON shape, compiling every template once with its names checked,
//! and rendering one message with the per-message context (`device_id`, `n`, `now`, ...).

use super::*;

/// A template file as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScenarioFile {
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
    pub(super) fn parse(text: &str, format: Format) -> Result<ScenarioFile, ScenarioError> {
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
pub(super) struct Templates(Vec<(String, String)>);

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
pub(super) struct Compiled {
    pub(super) env: Environment<'static>,
    /// `variables`, in order; `names[i]` is the name of `variables[i]`.
    pub(super) variables: Vec<Text>,
    pub(super) names: Vec<String>,
    pub(super) body: Text,
    pub(super) message_id: Text,
    pub(super) correlation_id: Option<Text>,
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) properties: Vec<(String, Text)>,
    pub(super) hostname: Value,
}

/// One template of a file.
pub(super) enum Text {
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
    pub(super) fn new(file: ScenarioFile, hostname: String) -> Result<Compiled, ScenarioError> {
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
    pub(super) fn message(&self, context: &Arc<MessageContext>) -> Result<SimMessage, ScenarioError> {
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
pub(super) fn compile(
    env: &mut Environment<'static>,
    name: String,
    source: String,
) -> Result<Text, ScenarioError> {
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
pub(super) fn check_variable_name(name: &str) -> Result<(), ScenarioError> {
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
pub(super) fn is_called(source: &str, name: &str) -> bool {
    source.match_indices(name).any(|(start, _)| {
        let before = source[..start].chars().next_back();
        let after = source[start + name.len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') && after.starts_with('(')
    })
}

pub(super) fn syntax_error(template: &str, error: &minijinja::Error) -> ScenarioError {
    ScenarioError::Template {
        template: template.to_owned(),
        line: error.line().unwrap_or(0),
        message: error
            .detail()
            .map_or_else(|| error.kind().to_string(), ToOwned::to_owned),
    }
}

pub(super) fn render_error(template: &str, source: &str, error: &minijinja::Error) -> ScenarioError {
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
pub(super) struct MessageContext {
    pub(super) compiled: Arc<Compiled>,
    pub(super) device_id: Value,
    pub(super) device_index: u64,
    pub(super) n: u64,
    pub(super) now: SystemTime,
    /// `now` as text, made on first use.
    pub(super) now_text: OnceLock<Option<Value>>,
    /// One slot per variable, set once rendered.
    pub(super) variables: Vec<OnceLock<Value>>,
    /// A [`DeviceRng`].
    pub(super) rng: Value,
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
pub(super) fn rfc3339_millis(now: SystemTime) -> Option<String> {
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
pub(super) fn epoch_ms(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}
