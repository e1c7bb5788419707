use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::file::{epoch_ms, rfc3339_millis};
use super::*;

/// 2023-11-14T22:13:20.123Z.
fn fixed_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/scenarios")
        .join(name)
}

fn messages(scenario: &Scenario, device_id: &str, index: u64, seed: u64, count: usize) -> Vec<SimMessage> {
    let mut device = scenario.device(device_id, index, seed);
    (0..count)
        .map(|_| device.next_message(fixed_time()).unwrap())
        .collect()
}

fn one(yaml: &str) -> SimMessage {
    Scenario::from_yaml(yaml)
        .unwrap()
        .device("dev-1", 3, 42)
        .next_message(fixed_time())
        .unwrap()
}

fn body(message: &SimMessage) -> &str {
    std::str::from_utf8(&message.body).unwrap()
}

fn level(message: &SimMessage) -> Option<&str> {
    message
        .properties
        .iter()
        .find(|(name, _)| name == "level")
        .map(|(_, value)| value.as_str())
}

fn load_error(yaml: &str) -> ScenarioError {
    Scenario::from_yaml(yaml).unwrap_err()
}

#[test]
fn scenario_and_device_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Scenario>();
    send::<DeviceScenario>();
}

// --- The tutorial device ---------------------------------------------------------------------

#[test]
fn tutorial_message_shape() {
    let scenario = Scenario::tutorial();
    assert!(scenario.is_tutorial());
    let mut device = scenario.device("myFirstDevice", 0, 7);
    assert_eq!(device.sent(), 0);
    for n in 0..50 {
        let message = device.next_message(fixed_time()).unwrap();
        let text = body(&message);
        assert!(
            text.starts_with(r#"{"deviceId":"myFirstDevice","windSpeed":"#),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let object = json.as_object().unwrap();
        assert_eq!(object.len(), 2);
        let wind = object["windSpeed"].as_f64().unwrap();
        assert!((12.0..16.0).contains(&wind), "{wind}");
        assert!(text.contains('.'));
        assert_eq!(
            message.message_id.as_deref(),
            Some(format!("message_{n}").as_str())
        );
        assert_eq!(
            message.correlation_id.as_deref(),
            Some(format!("correlation_{n}").as_str())
        );
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(message.content_encoding.as_deref(), Some("utf-8"));
        match message.properties.as_slice() {
            [] => {}
            [(name, value)] => {
                assert_eq!(name, "level");
                assert!(value == "critical" || value == "storage", "{value}");
            }
            other => panic!("unexpected properties {other:?}"),
        }
        assert_eq!(device.sent(), n + 1);
    }
}

#[test]
fn tutorial_device_id_is_json_escaped() {
    let message = Scenario::tutorial()
        .device("a\"b\\c", 0, 1)
        .next_message(fixed_time())
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(json["deviceId"], "a\"b\\c");
}

#[test]
fn tutorial_level_shares() {
    let all = messages(&Scenario::tutorial(), "dev", 0, 2024, 10_000);
    let share =
        |wanted: &str| all.iter().filter(|m| level(m) == Some(wanted)).count() as f64 / all.len() as f64;
    let (critical, storage) = (share("critical"), share("storage"));
    assert!((critical - 0.20).abs() <= 0.02, "critical {critical}");
    assert!((storage - 0.30).abs() <= 0.02, "storage {storage}");
    let none = all.iter().filter(|m| m.properties.is_empty()).count() as f64 / 10_000.0;
    assert!((none - 0.50).abs() <= 0.02, "none {none}");
}

#[test]
fn tutorial_is_reproducible() {
    let scenario = Scenario::tutorial();
    let a = messages(&scenario, "dev-1", 1, 99, 100);
    assert_eq!(a, messages(&scenario, "dev-1", 1, 99, 100));
    // Another device, or another seed, draws differently.
    let other_device = messages(&scenario, "dev-2", 2, 99, 100);
    let other_seed = messages(&scenario, "dev-1", 1, 100, 100);
    let winds = |ms: &[SimMessage]| -> Vec<String> {
        ms.iter()
            .map(|m| body(m).split("windSpeed").nth(1).unwrap().to_owned())
            .collect()
    };
    assert_ne!(winds(&a), winds(&other_device));
    assert_ne!(winds(&a), winds(&other_seed));
}

#[test]
fn tutorial_template_file_matches_the_builtin() {
    let file = Scenario::from_file(&example("tutorial.yaml")).unwrap();
    assert!(!file.is_tutorial());
    let builtin = Scenario::tutorial();
    for (index, seed) in [(0, 0), (5, 12345)] {
        let from_file = messages(&file, "myFirstDevice", index, seed, 500);
        assert_eq!(from_file, messages(&builtin, "myFirstDevice", index, seed, 500));
    }
}

// --- Template files --------------------------------------------------------------------------

const FULL: &str = r#"
variables:
  level: '{{ choice(["critical", "storage", ""], [20, 30, 50]) }}'
  temperature: '{{ random(20, 30) | round(1) }}'
body: |
  {"deviceId": {{ device_id | tojson }}, "temperature": {{ temperature }}, "level": {{ level | tojson }}, "n": {{ n }}}
message_id: "message_{{ n }}"
correlation_id: "correlation_{{ n }}"
content_type: application/json; charset=utf-8
content_encoding: utf-8
properties:
  level: "{{ level }}"
  temperature: "{{ temperature }}"
  kind: reading
"#;

#[test]
fn yaml_file_renders_every_field() {
    let scenario = Scenario::from_yaml(FULL).unwrap();
    let mut device = scenario.device("dev-1", 0, 1);
    let mut levels = std::collections::HashSet::new();
    for n in 0..200u64 {
        let message = device.next_message(fixed_time()).unwrap();
        // No trailing newline from the `|` block.
        assert!(body(&message).ends_with('}'));
        let json: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(json["deviceId"], "dev-1");
        assert_eq!(json["n"], n);
        let temperature = json["temperature"].as_f64().unwrap();
        assert!((20.0..=30.0).contains(&temperature));
        assert_eq!(
            message.message_id.as_deref(),
            Some(format!("message_{n}").as_str())
        );
        assert_eq!(
            message.correlation_id.as_deref(),
            Some(format!("correlation_{n}").as_str())
        );
        assert_eq!(
            message.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(message.content_encoding.as_deref(), Some("utf-8"));
        // The variables are the same in body and properties; the empty level is left out.
        let body_level = json["level"].as_str().unwrap();
        levels.insert(body_level.to_owned());
        let names: Vec<&str> = message.properties.iter().map(|(name, _)| name.as_str()).collect();
        if body_level.is_empty() {
            assert_eq!(names, ["temperature", "kind"]);
        } else {
            assert_eq!(names, ["level", "temperature", "kind"]);
            assert_eq!(level(&message), Some(body_level));
        }
        let property = |wanted: &str| {
            message
                .properties
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(property("temperature").unwrap(), json["temperature"].to_string());
        assert_eq!(property("kind").as_deref(), Some("reading"));
    }
    assert_eq!(levels.len(), 3, "{levels:?}");
}

#[test]
fn json_file_is_the_same_format() {
    let json = r#"{
        "variables": {"t": "{{ random_int(1, 3) }}"},
        "body": "{\"t\": {{ t }}, \"id\": {{ device_id | tojson }}}",
        "correlation_id": "c-{{ n }}",
        "properties": {"t": "{{ t }}"}
    }"#;
    let scenario = Scenario::from_json(json).unwrap();
    let message = scenario.device("d", 0, 0).next_message(fixed_time()).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(body["id"], "d");
    assert_eq!(message.properties, vec![("t".to_owned(), body["t"].to_string())]);
    assert_eq!(message.message_id.as_deref(), Some("d-0"));
    assert_eq!(message.correlation_id.as_deref(), Some("c-0"));
    // from_text with the format as a flag is the same.
    assert!(Scenario::from_text(json, Format::Json).is_ok());
}

#[test]
fn example_files_load() {
    for name in ["thermostat.yaml", "thermostat.json", "tutorial.yaml"] {
        let scenario = Scenario::from_file(&example(name)).unwrap();
        for message in messages(&scenario, "thermo-1", 0, 3, 50) {
            let json: serde_json::Value = serde_json::from_slice(&message.body)
                .unwrap_or_else(|error| panic!("{name}: {error}: {}", body(&message)));
            assert!(json.is_object());
        }
    }
}

#[test]
fn format_follows_the_extension() {
    assert_eq!(Format::from_path(Path::new("a.yaml")), Format::Yaml);
    assert_eq!(Format::from_path(Path::new("a.YML")), Format::Yaml);
    assert_eq!(Format::from_path(Path::new("a.json")), Format::Json);
    assert_eq!(Format::from_path(Path::new("scenario")), Format::Json);
}

#[test]
fn defaults() {
    let message = one("body: hello\n");
    assert_eq!(body(&message), "hello");
    assert_eq!(message.message_id.as_deref(), Some("dev-1-0"));
    assert_eq!(message.correlation_id, None);
    assert_eq!(message.content_type.as_deref(), Some(DEFAULT_CONTENT_TYPE));
    assert_eq!(
        message.content_encoding.as_deref(),
        Some(DEFAULT_CONTENT_ENCODING)
    );
    assert!(message.properties.is_empty());
    // null is the default too; empty content type and encoding are not sent.
    let message =
        one("body: x\nmessage_id: null\nvariables:\nproperties: ~\ncontent_type: ''\ncontent_encoding: ''\n");
    assert_eq!(message.message_id.as_deref(), Some("dev-1-0"));
    assert_eq!(message.content_type, None);
    assert_eq!(message.content_encoding, None);
}

#[test]
fn constant_text_is_sent_as_written() {
    let message = one("body: |\n  plain text, not JSON\nproperties:\n  a: '1'\n  b: x\n");
    assert_eq!(body(&message), "plain text, not JSON");
    assert_eq!(
        message.properties,
        vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "x".to_owned())]
    );
}

#[test]
fn nothing_is_escaped() {
    let message = one(r#"body: '{{ "<a & b>" }} {{ device_id | tojson }}'"#);
    assert_eq!(body(&message), r#"<a & b> "dev-1""#);
}

#[test]
fn context_names() {
    let message =
        one("body: '{{ device_id }}|{{ device_index }}|{{ n }}|{{ now }}|{{ epoch_ms }}|{{ hostname }}'\n");
    let text = body(&message);
    let parts: Vec<&str> = text.split('|').collect();
    assert_eq!(
        parts[..5],
        ["dev-1", "3", "0", "2023-11-14T22:13:20.123Z", "1700000000123"]
    );
    let expected = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "device-sim".to_owned());
    assert_eq!(parts[5], expected);
}

#[test]
fn n_counts_per_device() {
    let scenario = Scenario::from_yaml("body: '{{ n }}'").unwrap();
    let mut a = scenario.device("a", 0, 0);
    let mut b = scenario.device("b", 1, 0);
    for _ in 0..3 {
        a.next_message(fixed_time()).unwrap();
    }
    assert_eq!(a.sent(), 3);
    assert_eq!(body(&a.next_message(fixed_time()).unwrap()), "3");
    assert_eq!(body(&b.next_message(fixed_time()).unwrap()), "0");
    assert_eq!(b.sent(), 1);
}

#[test]
fn variables_see_those_above_and_are_strings() {
    let message = one(
        "variables:\n  a: '{{ 20 + 1.5 }}'\n  b: '{{ a | float * 2 }}'\n  c: '{{ a ~ \"!\" }}'\nbody: '{{ a }} {{ b }} {{ c }} {{ a is string }}'\n",
    );
    assert_eq!(body(&message), "21.5 43.0 21.5! True");
}

#[test]
fn blocks_trim_their_lines() {
    let yaml = "body: |\n  {% if n == 0 %}\n  first\n  {% else %}\n  later\n  {% endif %}\n";
    assert_eq!(body(&one(yaml)), "first\n");
}

#[test]
fn template_messages_are_reproducible() {
    let scenario = Scenario::from_yaml(FULL).unwrap();
    let with_uuid = Scenario::from_yaml("body: '{{ uuid() }} {{ random(0, 1) }}'").unwrap();
    for scenario in [&scenario, &with_uuid] {
        let a = messages(scenario, "dev-1", 4, 77, 50);
        assert_eq!(a, messages(scenario, "dev-1", 4, 77, 50));
        let bodies = |ms: &[SimMessage]| ms.iter().map(|m| m.body.clone()).collect::<Vec<_>>();
        assert_ne!(bodies(&a), bodies(&messages(scenario, "dev-1", 5, 77, 50)));
        assert_ne!(bodies(&a), bodies(&messages(scenario, "dev-1", 4, 78, 50)));
    }
}

// --- Functions -------------------------------------------------------------------------------

fn samples(template: &str, count: usize) -> Vec<String> {
    let scenario = Scenario::from_yaml(&format!("body: '{template}'")).unwrap();
    messages(&scenario, "d", 0, 5, count)
        .iter()
        .map(|message| body(message).to_owned())
        .collect()
}

#[test]
fn random_is_a_float_in_the_half_open_range() {
    let values: Vec<f64> = samples("{{ random(-2, 3.5) }}", 2_000)
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
    assert!(values.iter().all(|v| (-2.0..3.5).contains(v)));
    assert!(values.iter().any(|v| *v < -1.5) && values.iter().any(|v| *v > 3.0));
    assert_eq!(samples("{{ random(4, 4) }}", 3), ["4.0"; 3]);
}

#[test]
fn random_int_includes_both_ends() {
    let values: Vec<i64> = samples("{{ random_int(-1, 2) }}", 1_000)
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
    for wanted in -1..=2 {
        assert!(values.contains(&wanted), "{wanted} never drawn");
    }
    assert!(values.iter().all(|v| (-1..=2).contains(v)));
}

#[test]
fn choice_picks_items() {
    let values = samples(r#"{{ choice(["a", "b", 3]) }}"#, 600);
    for wanted in ["a", "b", "3"] {
        let count = values.iter().filter(|v| *v == wanted).count();
        assert!((150..=250).contains(&count), "{wanted}: {count}");
    }
    let weighted = samples(r#"{{ choice(["a", "b", "c"], [0, 1, 3]) }}"#, 4_000);
    assert!(!weighted.iter().any(|v| v == "a"));
    let c = weighted.iter().filter(|v| *v == "c").count() as f64 / 4_000.0;
    assert!((c - 0.75).abs() < 0.03, "{c}");
}

#[test]
fn uuid_is_version_4() {
    let values = samples("{{ uuid() }}", 100);
    for value in &values {
        let groups: Vec<&str> = value.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{value}"
        );
        assert!(
            value
                .chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(groups[2].starts_with('4'), "{value}");
        assert!(
            matches!(groups[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
            "{value}"
        );
    }
    let unique: std::collections::HashSet<_> = values.iter().collect();
    assert_eq!(unique.len(), values.len());
}

#[test]
fn bad_function_arguments_fail_at_load() {
    for (template, expected) in [
        (
            "{{ random_int(5, 1) }}",
            "random_int(5, 1): min is greater than max",
        ),
        ("{{ random(2, 1) }}", "min <= max"),
        ("{{ choice([]) }}", "choice: the list is empty"),
        ("{{ choice(\"abc\") }}", "choice: expected a list"),
        ("{{ choice([1, 2], [1]) }}", "choice: 2 items but 1 weights"),
        ("{{ choice([1, 2], [0, 0]) }}", "choice: the weights add up to 0"),
        ("{{ choice([1, 2], [1, -1]) }}", "not negative"),
    ] {
        let error = load_error(&format!("body: '{template}'"));
        assert!(
            matches!(error, ScenarioError::Render { .. }),
            "{template}: {error:?}"
        );
        let text = error.to_string();
        assert!(text.starts_with("cannot render body, line 1: "), "{text}");
        assert!(text.contains(expected), "{text}");
    }
}

// --- Errors ----------------------------------------------------------------------------------

#[test]
fn unreadable_file() {
    let path = Path::new("/nonexistent/scenario.yaml");
    let error = Scenario::from_file(path).unwrap_err();
    assert!(matches!(error, ScenarioError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with("cannot read scenario file /nonexistent/scenario.yaml: "),
        "{error}"
    );
}

#[test]
fn file_read_from_disk_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    std::fs::write(&json, r#"{"body": "{{ n }}"}"#).unwrap();
    assert_eq!(
        body(
            &Scenario::from_file(&json)
                .unwrap()
                .device("d", 0, 0)
                .next_message(fixed_time())
                .unwrap()
        ),
        "0"
    );
    // YAML that is not JSON fails as JSON without the .yaml extension.
    let other = dir.path().join("s.txt");
    std::fs::write(&other, "body: x\n").unwrap();
    let error = Scenario::from_file(&other).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid JSON at line 1, column 1: "),
        "{error}"
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let error = load_error("body: x\nproperties:\n  a: [1,\n");
    let ScenarioError::Syntax { format, line, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*format, Format::Yaml);
    assert!(*line >= 3, "{error}");
    assert!(error.to_string().starts_with("invalid YAML at line "), "{error}");
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let error = Scenario::from_json("{\n  \"body\": \"x\",\n}").unwrap_err();
    assert!(
        matches!(
            error,
            ScenarioError::Syntax {
                format: Format::Json,
                line: 3,
                column: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "invalid JSON at line 3, column 1: trailing comma"
    );
}

#[test]
fn shape_errors() {
    let missing = load_error("message_id: x\n");
    assert!(missing.to_string().contains("missing field `body`"), "{missing}");
    let not_string = load_error("body: x\nproperties:\n  a: [1]\n");
    assert!(
        not_string.to_string().starts_with("invalid YAML at line 3"),
        "{not_string}"
    );
    let duplicate = Scenario::from_json(r#"{"body": "x", "properties": {"a": "1", "a": "2"}}"#).unwrap_err();
    assert!(
        duplicate.to_string().contains("duplicate name `a`"),
        "{duplicate}"
    );
}

#[test]
fn unknown_field_is_named() {
    let error = load_error("body: x\nproperty:\n  a: b\n");
    assert!(
        matches!(&error, ScenarioError::UnknownField { field, line: 2, .. } if field == "property"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "unknown field `property` in the YAML scenario at line 2, column 1; the fields are variables, \
         body, message_id, correlation_id, content_type, content_encoding, properties"
    );
    let error = Scenario::from_json(r#"{"body": "x", "extra": 1}"#).unwrap_err();
    assert!(
        matches!(&error, ScenarioError::UnknownField { field, format: Format::Json, .. } if field == "extra"),
        "{error:?}"
    );
}

#[test]
fn template_syntax_errors_name_template_and_line() {
    for (yaml, template, line) in [
        ("body: |\n  line one\n  {{ n + }}\n", "body", 2),
        ("body: x\nmessage_id: '{{ n'\n", "message_id", 1),
        ("body: x\ncorrelation_id: '{% if n %}'\n", "correlation_id", 1),
        ("body: x\nproperties:\n  level: '{{ }}'\n", "properties.level", 1),
        (
            "variables:\n  t: |\n    a\n    b\n    {% for %}\nbody: x\n",
            "variables.t",
            3,
        ),
    ] {
        let error = load_error(yaml);
        let ScenarioError::Template {
            template: got,
            line: got_line,
            ..
        } = &error
        else {
            panic!("{yaml}: {error:?}");
        };
        assert_eq!((got.as_str(), *got_line), (template, line), "{error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("template syntax error in {template}, line {line}: ")),
            "{error}"
        );
    }
}

#[test]
fn unknown_variable_is_named() {
    let error = load_error("variables:\n  temperature: '1'\nbody: '{{ temprature }}'\n");
    assert_eq!(
        error.to_string(),
        "unknown variable `temprature` in body; known: device_id, device_index, n, now, epoch_ms, \
         hostname, temperature"
    );
    // Also in a branch the sample message does not take, and in a property.
    let error = load_error("body: x\nproperties:\n  p: '{% if n > 5 %}{{ nope }}{% endif %}'\n");
    assert!(
        matches!(&error, ScenarioError::UnknownVariable { template, name, .. }
            if template == "properties.p" && name == "nope"),
        "{error:?}"
    );
    // The generator's hidden name is not usable.
    let error = load_error(&format!("body: '{{{{ {RNG_KEY} }}}}'"));
    assert!(
        matches!(error, ScenarioError::UnknownVariable { .. }),
        "{error:?}"
    );
}

#[test]
fn variable_order_is_checked() {
    let error = load_error("variables:\n  a: '{{ b }}'\n  b: '1'\nbody: x\n");
    assert_eq!(
        error.to_string(),
        "variables.a uses `b`, which is not defined yet: a variable sees only the variables above it"
    );
    let error = load_error("variables:\n  a: '{{ a }}'\nbody: x\n");
    assert!(matches!(error, ScenarioError::VariableOrder { .. }), "{error:?}");
}

#[test]
fn unknown_function_filter_and_test_are_named() {
    let error = load_error("body: '{% if n > 1 %}{{ randomm(1, 2) }}{% endif %}'\n");
    assert_eq!(error.to_string(), "unknown function `randomm` in body");
    let error = load_error("body: x\nmessage_id: '{{ n | hexx }}'\n");
    assert_eq!(error.to_string(), "unknown filter `hexx` in message_id");
    let error = load_error("body: '{{ n is evenn }}'\n");
    assert_eq!(error.to_string(), "unknown test `evenn` in body");
}

#[test]
fn bad_variable_names() {
    for name in ["n", "now", "random", "device_id"] {
        let error = load_error(&format!("variables:\n  {name}: x\nbody: x\n"));
        assert!(
            error
                .to_string()
                .starts_with(&format!("variables.{name}: `{name}` is a built-in name (")),
            "{error}"
        );
    }
    let error = load_error("variables:\n  wind-speed: x\nbody: x\n");
    assert_eq!(
        error.to_string(),
        "variables.wind-speed: `wind-speed` is not a valid name: use letters, digits and `_`, not \
         starting with a digit"
    );
}

#[test]
fn render_error_at_run_time() {
    let scenario =
        Scenario::from_yaml("body: '{% if n == 1 %}{{ random_int(2, 1) }}{% endif %}ok'\n").unwrap();
    let mut device = scenario.device("d", 0, 0);
    assert_eq!(body(&device.next_message(fixed_time()).unwrap()), "ok");
    let error = device.next_message(fixed_time()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot render body, line 1: invalid operation: random_int(2, 1): min is greater than max \
         (in `random_int(2, 1)`)"
    );
    // The failed message does not count.
    assert_eq!(device.sent(), 1);

    let scenario = Scenario::from_yaml("body: '{{ [1][n] }}'\n").unwrap();
    let mut device = scenario.device("d", 0, 0);
    device.next_message(fixed_time()).unwrap();
    let error = device.next_message(fixed_time()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot render body, line 1: undefined value (in `[1][n]`)"
    );
}

#[test]
fn seeds_are_mixed() {
    assert_ne!(device_seed(0, 0), device_seed(0, 1));
    assert_ne!(device_seed(0, 1), device_seed(1, 0));
    assert_eq!(device_seed(3, 4), device_seed(3, 4));
}

#[test]
fn time_formats() {
    assert_eq!(
        rfc3339_millis(fixed_time()).as_deref(),
        Some("2023-11-14T22:13:20.123Z")
    );
    assert_eq!(
        rfc3339_millis(UNIX_EPOCH).as_deref(),
        Some("1970-01-01T00:00:00.000Z")
    );
    assert_eq!(epoch_ms(fixed_time()), 1_700_000_000_123);
    assert_eq!(epoch_ms(UNIX_EPOCH - Duration::from_millis(5)), -5);
}
