//! Tests of `template`.
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
fn the_generic_fast_path_gives_what_its_template_gives() {
    let (name, source) = Preset::Generic.template();
    let template = Renderer::new(name.to_owned(), source.to_owned(), None, BTreeMap::new()).unwrap();
    let direct = Renderer::preset(Preset::Generic, BTreeMap::new()).unwrap();
    assert!(direct.direct_generic && !template.direct_generic);
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_693_533_123);
    for ticket in [hostile_ticket(), sample_ticket()] {
        let parse = |r: &Renderer| {
            serde_json::from_slice::<serde_json::Value>(&r.render(&ticket, at).unwrap()).unwrap()
        };
        assert_eq!(parse(&direct), parse(&template));
    }
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
