//! A [`Ticket`] → the body of the webhook request, through a minijinja template: one of the
//! built-in [`Preset`]s for common CRM and incident APIs, or a custom template file.
//!
//! ## Template context
//! - `ticket`: the [`Ticket`] as serialised (`ticket.key`, `ticket.subject`, `ticket.severity`,
//!   `ticket.device_id`, `ticket.properties`, `ticket.body`, ...);
//! - `vars`: the configured variables (strings), e.g. `vars.routing_key`;
//! - `now`: the render time, RFC 3339 UTC with milliseconds;
//! - `summary`: a plain-text account of the ticket, built in Rust: the subject, then device,
//!   module, severity and level, enqueued time, message and correlation ids, key and delivery
//!   count (one `Name: value` line each, absent ones left out), then the properties, then the body
//!   (pretty-printed JSON, text, or base64) and a note when it was truncated.
//!
//! Besides minijinja's built-in filters and tests there is one more test, `is label`: true for a
//! string of 1-255 ASCII letters, digits, `-`, `_` or `:` (safe as a Zendesk tag or Jira label).
//!
//! An unknown variable is an error (strict undefined behaviour), and blocks trim the newline after
//! them (`trim_blocks`, `lstrip_blocks`). When the content type is JSON, every `{{ value }}` is
//! written as JSON (auto-escaping) so device data cannot break out of a string; write
//! `{{ ticket.subject }}` or `{{ ticket.subject|tojson }}`, never `"{{ ticket.subject }}"`, and
//! build strings in the expression: `{{ ("Alarm: " ~ ticket.subject)|tojson }}`. The rendered
//! bytes are sent as they are; for JSON they must parse, or rendering fails.
//!
//! ## Presets (content type `application/json`)
//! - `generic`: a Standard Webhooks payload,
//!   `{"type": "iot.critical_message", "timestamp": now, "data": ticket}`.
//! - `zendesk` (`POST /api/v2/tickets.json`): `{"ticket": {"subject", "comment": {"body":
//!   summary}, "priority": urgent|high|normal|low (from critical|error|warning|info), "type":
//!   "incident", "external_id": key, "tags": ["iot-routing", level (lowercased, when a label)]}}`.
//!   Zendesk deduplicates on the `Idempotency-Key` header, which the caller sets, not the body.
//! - `servicenow` (`POST /api/now/table/incident`): `{"short_description": subject,
//!   "description": summary, "urgency" and "impact": "1" (critical), "2" (error), "3" (warning,
//!   info), "correlation_id": key, "correlation_display": "iot-routing"}`. ServiceNow has no
//!   idempotency key; `correlation_id` carries ours for a search-before-create guard.
//! - `pagerduty` (Events API v2, `POST /v2/enqueue`; needs `vars.routing_key`):
//!   `{"routing_key", "event_action": "trigger", "dedup_key": key, "payload": {"summary": subject,
//!   "source": device id or "unknown", "severity", "timestamp": enqueued time or now, "component":
//!   module id, else device id, else "unknown", "group": "iot-hub", "class": level or severity,
//!   "custom_details": {"message_id", "correlation_id", "properties", "body", "body_truncated"}}}`.
//! - `jira` (Cloud, `POST /rest/api/3/issue`; needs `vars.project_key`, optional
//!   `vars.issue_type`, default `Task`): `{"fields": {"project": {"key"}, "summary": subject,
//!   "issuetype": {"name"}, "labels": ["iot-routing", key (when a label)], "description": an
//!   Atlassian Document Format doc with one paragraph per non-blank line of the summary}}`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::ticket::{self, BodyFormat, Severity, Ticket};

/// The content type of every preset, and of a custom template that names none.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A built-in request body for a CRM or incident API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A Standard Webhooks payload carrying the whole ticket.
    Generic,
    /// Zendesk Support: create a ticket.
    Zendesk,
    /// ServiceNow Table API: create an incident.
    #[serde(rename = "servicenow")]
    ServiceNow,
    /// PagerDuty Events API v2: trigger an alert.
    #[serde(rename = "pagerduty")]
    PagerDuty,
    /// Jira Cloud REST API v3: create an issue.
    Jira,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 5] = [
        Self::Generic,
        Self::Zendesk,
        Self::ServiceNow,
        Self::PagerDuty,
        Self::Jira,
    ];

    /// The name used in configuration (`generic`, `servicenow`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Zendesk => "zendesk",
            Self::ServiceNow => "servicenow",
            Self::PagerDuty => "pagerduty",
            Self::Jira => "jira",
        }
    }

    /// The variables the preset cannot do without.
    pub fn required_vars(self) -> &'static [&'static str] {
        match self {
            Self::PagerDuty => &["routing_key"],
            Self::Jira => &["project_key"],
            Self::Generic | Self::Zendesk | Self::ServiceNow => &[],
        }
    }

    fn template(self) -> (&'static str, &'static str) {
        match self {
            Self::Generic => ("generic.json.j2", include_str!("templates/generic.json.j2")),
            Self::Zendesk => ("zendesk.json.j2", include_str!("templates/zendesk.json.j2")),
            Self::ServiceNow => ("servicenow.json.j2", include_str!("templates/servicenow.json.j2")),
            Self::PagerDuty => ("pagerduty.json.j2", include_str!("templates/pagerduty.json.j2")),
            Self::Jira => ("jira.json.j2", include_str!("templates/jira.json.j2")),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a template could not be loaded or rendered. Messages never include variable values.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The custom template file could not be read.
    #[error("cannot read template {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The template does not compile.
    #[error("template {name}, line {line}: {message}")]
    Syntax {
        /// Template name (the file path for a custom template).
        name: String,
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A preset needs a variable that is not configured (or is empty).
    #[error("preset {preset} needs the variable `{var}` (vars.{var})")]
    MissingVar {
        /// The preset.
        preset: Preset,
        /// The variable.
        var: &'static str,
    },
    /// Rendering failed, e.g. on an undefined variable.
    #[error("template {name}, line {line}: {message}")]
    Render {
        /// Template name.
        name: String,
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// What went wrong, and the expression it happened in.
        message: String,
    },
    /// The content type is JSON but the rendered payload does not parse.
    #[error("rendered payload is not JSON (template {name}): {source}")]
    NotJson {
        /// Template name.
        name: String,
        /// Where the output stops being JSON.
        source: serde_json::Error,
    },
    /// The configured content type cannot be sent as a `Content-Type` header.
    #[error("content type {0:?} is not a valid media type (like text/plain)")]
    InvalidContentType(String),
}

/// Renders tickets into request bodies with one compiled template.
pub struct Renderer {
    env: Environment<'static>,
    name: String,
    source: String,
    content_type: String,
    /// Check every output parses as JSON: custom templates (a preset's shape is fixed and checked
    /// at construction; auto-escaping keeps every value in it valid).
    check_output: bool,
    /// Whether the template reads `summary` (built only then).
    uses_summary: bool,
    /// The generic preset's payload is the ticket itself: serialised straight from the
    /// [`Ticket`], the same JSON its template gives at a fraction of the cost (the template is
    /// still compiled and checked, and a test holds the two outputs equal).
    direct_generic: bool,
    vars: Value,
    var_names: Vec<String>,
}

impl Renderer {
    /// A preset's renderer. Fails when a variable the preset needs is absent or empty.
    pub fn preset(preset: Preset, vars: BTreeMap<String, String>) -> Result<Self, TemplateError> {
        if let Some(var) = preset
            .required_vars()
            .iter()
            .find(|var| vars.get(**var).is_none_or(|value| value.trim().is_empty()))
        {
            return Err(TemplateError::MissingVar { preset, var });
        }
        let (name, source) = preset.template();
        let mut renderer = Self::new(name.to_owned(), source.to_owned(), None, vars)?;
        renderer.check_output = false;
        renderer.direct_generic = preset == Preset::Generic;
        Ok(renderer)
    }

    /// A renderer for a custom minijinja template file, validated by rendering a sample ticket.
    /// `content_type` defaults to `application/json`, which also turns on JSON auto-escaping and
    /// the check that the output parses.
    pub fn from_file(
        path: &Path,
        content_type: Option<String>,
        vars: BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::new(path.display().to_string(), source, content_type, vars)
    }

    fn new(
        name: String,
        source: String,
        content_type: Option<String>,
        vars: BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let content_type = content_type.unwrap_or_else(|| JSON_CONTENT_TYPE.to_owned());
        if !is_media_type(&content_type) {
            return Err(TemplateError::InvalidContentType(content_type));
        }
        let json = ticket::is_json_media_type(&content_type);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(move |_| if json { AutoEscape::Json } else { AutoEscape::None });
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_test("label", is_label);
        env.add_template_owned(name.clone(), source.clone())
            .map_err(|error| {
                let (line, message) = describe(&error, &source);
                TemplateError::Syntax {
                    name: name.clone(),
                    line,
                    message,
                }
            })?;
        let uses_summary = env
            .get_template(&name)
            .map(|template| template.undeclared_variables(false).contains("summary"))
            .unwrap_or(true);
        let renderer = Self {
            env,
            name,
            source,
            content_type,
            check_output: json,
            uses_summary,
            direct_generic: false,
            vars: Value::from_serialize(&vars),
            var_names: vars.into_keys().collect(),
        };
        renderer.render(&sample_ticket(), SystemTime::UNIX_EPOCH)?;
        Ok(renderer)
    }

    /// The `Content-Type` of rendered bodies.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The request body for `ticket`, exactly as rendered. For a JSON content type the output is
    /// checked to parse, but not re-serialised.
    pub fn render(&self, ticket: &Ticket, now: SystemTime) -> Result<Vec<u8>, TemplateError> {
        let render_error = |line, message| TemplateError::Render {
            name: self.name.clone(),
            line,
            message,
        };
        let now = ticket::rfc3339_millis(now)
            .ok_or_else(|| render_error(0, "the clock is outside the years 0000-9999".to_owned()))?;
        if self.direct_generic {
            let payload = GenericPayload {
                kind: GENERIC_EVENT_TYPE,
                timestamp: &now,
                data: ticket,
            };
            return serde_json::to_vec(&payload).map_err(|e| render_error(0, e.to_string()));
        }
        let context = minijinja::context! {
            ticket => Value::from_serialize(ticket),
            vars => self.vars.clone(),
            now => now,
            summary => if self.uses_summary { summary(ticket) } else { String::new() },
        };
        let output = self
            .env
            .get_template(&self.name)
            .and_then(|template| template.render(context))
            .map_err(|error| {
                let (line, message) = describe(&error, &self.source);
                render_error(line, message)
            })?;
        if self.check_output
            && let Err(source) = serde_json::from_str::<serde::de::IgnoredAny>(&output)
        {
            return Err(TemplateError::NotJson {
                name: self.name.clone(),
                source,
            });
        }
        Ok(output.into_bytes())
    }
}

/// The generic preset's event type (as its template writes it).
const GENERIC_EVENT_TYPE: &str = "iot.critical_message";

/// The generic preset's payload, as its template shapes it.
#[derive(serde::Serialize)]
struct GenericPayload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: &'a str,
    data: &'a Ticket,
}

impl fmt::Debug for Renderer {
    /// Shows the variable names only: values may be credentials (PagerDuty's routing key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("template", &self.name)
            .field("content_type", &self.content_type)
            .field("vars", &self.var_names)
            .finish_non_exhaustive()
    }
}

/// The line of a minijinja error and a message naming the failing expression (never values).
fn describe(error: &minijinja::Error, source: &str) -> (usize, String) {
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
    (error.line().unwrap_or(0), message)
}

/// The `is label` test: false for anything but a string of 1-255 safe ASCII characters.
fn is_label(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        (1..=255).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
    })
}

/// `type/subtype`, optionally with parameters, all visible ASCII (it goes into a header).
fn is_media_type(text: &str) -> bool {
    let essence = text.split(';').next().unwrap_or_default().trim();
    let valid = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_graphic());
    matches!(essence.split_once('/'), Some((kind, sub)) if valid(kind) && valid(sub))
        && text
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

/// The plain-text account of a ticket that presets use as a comment or description.
fn summary(ticket: &Ticket) -> String {
    let mut out = format!("{}\n\n", ticket.subject);
    let mut line = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            out.push_str(&format!("{name}: {value}\n"));
        }
    };
    line("Device", Some(ticket.device_id.as_deref().unwrap_or("unknown")));
    line("Module", ticket.module_id.as_deref());
    let severity = match &ticket.level {
        Some(level) => format!("{} (level {level:?})", ticket.severity.as_str()),
        None => ticket.severity.as_str().to_owned(),
    };
    line("Severity", Some(&severity));
    line("Enqueued", ticket.enqueued_time.as_deref());
    line("Message id", ticket.message_id.as_deref());
    line("Correlation id", ticket.correlation_id.as_deref());
    line("Ticket key", Some(&ticket.key));
    line("Deliveries", Some(&ticket.delivery_count.to_string()));
    if !ticket.properties.is_empty() {
        out.push_str("\nProperties:\n");
        for (name, value) in &ticket.properties {
            out.push_str(&format!("  {name}: {value}\n"));
        }
    }
    out.push_str(&format!("\nBody ({}):\n", ticket.body_format.as_str()));
    let body = match (&ticket.body_format, &ticket.body) {
        (BodyFormat::Json, value) => {
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        }
        (_, serde_json::Value::String(text)) => text.clone(),
        (_, value) => value.to_string(),
    };
    out.push_str(&body);
    if ticket.body_truncated {
        out.push_str("\n(body truncated)");
    }
    out
}

/// The ticket a template is validated with: every field set, so that any field may be used.
fn sample_ticket() -> Ticket {
    let properties = BTreeMap::from([
        (ticket::DEVICE_ID_PROPERTY.to_owned(), "sample-device".to_owned()),
        (ticket::MODULE_ID_PROPERTY.to_owned(), "sample-module".to_owned()),
        (ticket::LEVEL_PROPERTY.to_owned(), "critical".to_owned()),
    ]);
    Ticket {
        key: "sample-message-id".to_owned(),
        subject: "Critical alert from sample-device".to_owned(),
        severity: Severity::Critical,
        level: Some("critical".to_owned()),
        device_id: Some("sample-device".to_owned()),
        module_id: Some("sample-module".to_owned()),
        enqueued_time: Some("1970-01-01T00:00:00.000Z".to_owned()),
        message_id: Some("sample-message-id".to_owned()),
        correlation_id: Some("sample-correlation-id".to_owned()),
        content_type: Some(JSON_CONTENT_TYPE.to_owned()),
        content_encoding: Some("utf-8".to_owned()),
        properties,
        body: serde_json::json!({"deviceId": "sample-device", "windSpeed": 12.5}),
        body_format: BodyFormat::Json,
        body_truncated: false,
        delivery_count: 1,
    }
}

#[cfg(test)]
mod tests;
