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
    json: bool,
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
        Self::new(name.to_owned(), source.to_owned(), None, vars)
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
        let renderer = Self {
            env,
            name,
            source,
            content_type,
            json,
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
        let context = minijinja::context! {
            ticket => Value::from_serialize(ticket),
            vars => self.vars.clone(),
            now => now,
            summary => summary(ticket),
        };
        let output = self
            .env
            .get_template(&self.name)
            .and_then(|template| template.render(context))
            .map_err(|error| {
                let (line, message) = describe(&error, &self.source);
                render_error(line, message)
            })?;
        if self.json
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
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};
    use std::time::Duration;

    const HOSTILE: &str = "tur\"bine\n7 ✓ </script> \\ {{ x }}";

    fn hostile_ticket() -> Ticket {
        let mut ticket = sample_ticket();
        ticket.device_id = Some(HOSTILE.to_owned());
        ticket.subject = format!("Critical alert from {HOSTILE}").replace('\n', " ");
        ticket.key = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c".to_owned();
        ticket.properties.insert("note".to_owned(), HOSTILE.to_owned());
        ticket.body = json!({"text": HOSTILE, "n": 1});
        ticket
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_722_333_123)
    }

    #[track_caller]
    fn render_json(preset: Preset, vars: BTreeMap<String, String>, ticket: &Ticket) -> Json {
        let renderer = Renderer::preset(preset, vars).unwrap();
        assert_eq!(renderer.content_type(), "application/json");
        serde_json::from_slice(&renderer.render(ticket, now()).unwrap()).unwrap()
    }

    fn all_vars() -> BTreeMap<String, String> {
        vars(&[("routing_key", "R0UTINGKEY"), ("project_key", "OPS")])
    }

    #[test]
    fn every_preset_renders_json_that_keeps_device_strings_intact() {
        for preset in Preset::ALL {
            let rendered = render_json(preset, all_vars(), &hostile_ticket());
            assert!(
                rendered
                    .to_string()
                    .contains(&serde_json::to_string(HOSTILE).unwrap()[1..10]),
                "{preset}: {rendered}"
            );
        }
    }

    #[test]
    fn generic_wraps_the_whole_ticket() {
        let ticket = hostile_ticket();
        let rendered = render_json(Preset::Generic, BTreeMap::new(), &ticket);
        assert_eq!(rendered["type"], "iot.critical_message");
        assert_eq!(rendered["timestamp"], "2026-11-26T19:45:33.123Z");
        assert_eq!(rendered["data"], serde_json::to_value(&ticket).unwrap());
        assert_eq!(rendered["data"]["device_id"], HOSTILE);
    }

    #[test]
    fn zendesk_creates_an_incident_with_priority_and_tags() {
        let mut ticket = hostile_ticket();
        let rendered = render_json(Preset::Zendesk, BTreeMap::new(), &ticket);
        let t = &rendered["ticket"];
        assert_eq!(t["subject"], ticket.subject);
        assert_eq!(t["type"], "incident");
        assert_eq!(t["external_id"], ticket.key);
        assert_eq!(t["tags"], json!(["iot-routing", "critical"]));
        let body = t["comment"]["body"].as_str().unwrap();
        for expected in [
            HOSTILE,
            "Message id: sample-message-id",
            "Enqueued: 1970-01-01T00:00:00.000Z",
            "note: ",
        ] {
            assert!(body.contains(expected), "{expected:?} in {body}");
        }
        let cases = [
            (Severity::Critical, "urgent"),
            (Severity::Error, "high"),
            (Severity::Warning, "normal"),
            (Severity::Info, "low"),
        ];
        for (severity, priority) in cases {
            ticket.severity = severity;
            let rendered = render_json(Preset::Zendesk, BTreeMap::new(), &ticket);
            assert_eq!(rendered["ticket"]["priority"], priority);
        }
        ticket.level = Some("Critical Failure".to_owned());
        let rendered = render_json(Preset::Zendesk, BTreeMap::new(), &ticket);
        assert_eq!(rendered["ticket"]["tags"], json!(["iot-routing"]));
        ticket.level = None;
        let rendered = render_json(Preset::Zendesk, BTreeMap::new(), &ticket);
        assert_eq!(rendered["ticket"]["tags"], json!(["iot-routing"]));
    }

    #[test]
    fn servicenow_carries_the_key_as_correlation_id() {
        let mut ticket = hostile_ticket();
        let rendered = render_json(Preset::ServiceNow, BTreeMap::new(), &ticket);
        assert_eq!(rendered["short_description"], ticket.subject);
        assert_eq!(rendered["correlation_id"], ticket.key);
        assert_eq!(rendered["correlation_display"], "iot-routing");
        assert!(
            rendered["description"]
                .as_str()
                .unwrap()
                .contains("Ticket key: 6f1c2b3a")
        );
        for (severity, level) in [
            (Severity::Critical, "1"),
            (Severity::Error, "2"),
            (Severity::Warning, "3"),
            (Severity::Info, "3"),
        ] {
            ticket.severity = severity;
            let rendered = render_json(Preset::ServiceNow, BTreeMap::new(), &ticket);
            assert_eq!(
                (&rendered["urgency"], &rendered["impact"]),
                (&json!(level), &json!(level))
            );
        }
    }

    #[test]
    fn pagerduty_triggers_with_the_key_as_dedup_key() {
        let ticket = hostile_ticket();
        let rendered = render_json(Preset::PagerDuty, all_vars(), &ticket);
        assert_eq!(rendered["routing_key"], "R0UTINGKEY");
        assert_eq!(rendered["event_action"], "trigger");
        assert_eq!(rendered["dedup_key"], ticket.key);
        let payload = &rendered["payload"];
        assert_eq!(payload["summary"], ticket.subject);
        assert_eq!(payload["source"], HOSTILE);
        assert_eq!(payload["severity"], "critical");
        assert_eq!(payload["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(payload["component"], "sample-module");
        assert_eq!(payload["group"], "iot-hub");
        assert_eq!(payload["class"], "critical");
        let details = &payload["custom_details"];
        assert_eq!(details["message_id"], "sample-message-id");
        assert_eq!(details["body"], ticket.body);
        assert_eq!(details["properties"]["note"], HOSTILE);

        let mut bare = ticket;
        (bare.device_id, bare.module_id, bare.enqueued_time, bare.level) = (None, None, None, None);
        bare.correlation_id = None;
        let payload = render_json(Preset::PagerDuty, all_vars(), &bare)["payload"].clone();
        assert_eq!(payload["source"], "unknown");
        assert_eq!(payload["component"], "unknown");
        assert_eq!(payload["timestamp"], "2026-11-26T19:45:33.123Z");
        assert_eq!(payload["class"], "critical");
        assert_eq!(payload["custom_details"]["correlation_id"], Json::Null);
    }

    #[test]
    fn jira_creates_an_issue_with_an_adf_description() {
        let ticket = hostile_ticket();
        let rendered = render_json(Preset::Jira, all_vars(), &ticket);
        let fields = &rendered["fields"];
        assert_eq!(fields["project"]["key"], "OPS");
        assert_eq!(fields["summary"], ticket.subject);
        assert_eq!(fields["issuetype"]["name"], "Task");
        assert_eq!(fields["labels"], json!(["iot-routing", ticket.key]));
        let doc = &fields["description"];
        assert_eq!((&doc["type"], &doc["version"]), (&json!("doc"), &json!(1)));
        let paragraphs = doc["content"].as_array().unwrap();
        assert!(paragraphs.len() > 5);
        for paragraph in paragraphs {
            assert_eq!(paragraph["type"], "paragraph");
            assert!(
                !paragraph["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .trim()
                    .is_empty()
            );
        }
        assert_eq!(paragraphs[0]["content"][0]["text"], ticket.subject);

        let with_type = vars(&[("project_key", "OPS"), ("issue_type", "Incident")]);
        let rendered = render_json(Preset::Jira, with_type, &ticket);
        assert_eq!(rendered["fields"]["issuetype"]["name"], "Incident");
        let mut odd_key = ticket;
        odd_key.key = "a/b+c".to_owned();
        let rendered = render_json(Preset::Jira, all_vars(), &odd_key);
        assert_eq!(rendered["fields"]["labels"], json!(["iot-routing"]));
    }

    #[test]
    fn missing_required_vars_are_named() {
        let cases = [
            (
                Preset::PagerDuty,
                vars(&[]),
                "preset pagerduty needs the variable `routing_key` (vars.routing_key)",
            ),
            (
                Preset::PagerDuty,
                vars(&[("routing_key", " ")]),
                "preset pagerduty needs the variable `routing_key` (vars.routing_key)",
            ),
            (
                Preset::Jira,
                vars(&[("issue_type", "Bug")]),
                "preset jira needs the variable `project_key` (vars.project_key)",
            ),
        ];
        for (preset, vars, expected) in cases {
            assert_eq!(Renderer::preset(preset, vars).unwrap_err().to_string(), expected);
        }
    }

    fn custom(source: &str, content_type: Option<&str>) -> Result<Renderer, TemplateError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.j2");
        std::fs::write(&path, source).unwrap();
        Renderer::from_file(&path, content_type.map(str::to_owned), vars(&[("team", "ops")]))
    }

    #[test]
    fn custom_template_syntax_errors_report_the_line() {
        let error = custom(
            "{\n  \"a\": {{ ticket.key }},\n  \"b\": {{ ticket.key | }}\n}",
            None,
        )
        .unwrap_err();
        match &error {
            TemplateError::Syntax { name, line, .. } => {
                assert!(name.ends_with("custom.j2"));
                assert_eq!(*line, 3);
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
        assert!(
            error.to_string().contains("custom.j2, line 3: syntax error"),
            "{error}"
        );
    }

    #[test]
    fn custom_template_undefined_variables_fail_at_load() {
        let error = custom("{\"a\": {{ vars.missing_var }}}", None).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, TemplateError::Render { line: 1, .. }),
            "{message}"
        );
        assert!(message.contains("vars.missing_var"), "{message}");
        assert!(!message.contains("ops"), "values stay out of errors: {message}");
    }

    #[test]
    fn custom_json_templates_must_render_json() {
        let error = custom("{\"subject\": \"{{ ticket.subject }}\"}", None).unwrap_err();
        assert!(
            error.to_string().starts_with("rendered payload is not JSON"),
            "{error}"
        );
        // Auto-escaping makes a bare `{{ }}` safe JSON, and output is returned as rendered.
        let source = "{\"subject\":  {{ ticket.device_id }}, \"team\": {{ vars.team }} }";
        let renderer = custom(source, Some("application/vnd.crm+json; charset=utf-8")).unwrap();
        let out = renderer.render(&hostile_ticket(), now()).unwrap();
        let expected = format!(
            "{{\"subject\":  {}, \"team\": \"ops\" }}",
            serde_json::to_string(HOSTILE).unwrap()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn custom_plain_text_templates_are_not_escaped() {
        let source = "Alert {{ ticket.key }} from {{ ticket.device_id }} at {{ now }}\n{{ summary }}";
        let renderer = custom(source, Some("text/plain")).unwrap();
        assert_eq!(renderer.content_type(), "text/plain");
        let out = String::from_utf8(renderer.render(&hostile_ticket(), now()).unwrap()).unwrap();
        assert!(
            out.starts_with(&format!(
                "Alert 6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c from {HOSTILE} at 2026-11-26T19:45:33.123Z\n"
            )),
            "{out}"
        );
        assert!(out.contains("Body (json):"));
    }

    #[test]
    fn bad_content_types_and_files_are_refused() {
        for bad in ["", "json", "text/plain\n", "/x"] {
            assert!(
                matches!(custom("x", Some(bad)), Err(TemplateError::InvalidContentType(_))),
                "{bad:?}"
            );
        }
        let missing = Renderer::from_file(Path::new("/nonexistent/t.j2"), None, BTreeMap::new());
        assert!(matches!(missing, Err(TemplateError::Read { .. })));
    }

    #[test]
    fn debug_hides_variable_values() {
        let renderer = Renderer::preset(Preset::PagerDuty, all_vars()).unwrap();
        let shown = format!("{renderer:?}");
        assert!(
            shown.contains("routing_key") && !shown.contains("R0UTINGKEY"),
            "{shown}"
        );
    }

    #[test]
    fn preset_names_match_serde() {
        for preset in Preset::ALL {
            let name = serde_json::to_value(preset).unwrap();
            assert_eq!(name, preset.name());
            assert_eq!(serde_json::from_value::<Preset>(name).unwrap(), preset);
        }
    }
}
