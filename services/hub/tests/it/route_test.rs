//! `hub route test`: results, compile errors, exit codes, and bad input files.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proptest::prelude::*;
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

fn hub(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or("").to_owned();
    let mut pipe = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn tutorial_message(dir: &Path) -> PathBuf {
    let message = json!({
        "body": "{\"deviceId\": \"turbine-7\", \"windSpeed\": 42.5}",
        "appProperties": {"level": "critical", "empty": null},
        "systemProperties": {
            "contentType": "application/json",
            "contentEncoding": "utf-8",
            "connectionDeviceId": "turbine-7"
        }
    });
    write(dir, "message.json", message.to_string())
}

fn test(condition: &str, message: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "route",
        "test",
        "--condition",
        condition,
        "--message",
        message.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    hub(&args, None)
}

#[test]
fn results_are_true_false_or_undefined_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let message = tutorial_message(dir.path());
    for (condition, expected) in [
        ("level = \"critical\"", "true"),
        ("level = \"storage\"", "false"),
        (
            "$body.windSpeed > 30 AND $connectionDeviceId = 'turbine-7'",
            "true",
        ),
        ("missing = 'x'", "undefined"),
        ("is_null(empty)", "true"),
    ] {
        let run = test(condition, &message, &[]);
        assert_eq!(run.code, 0, "{condition}: {}", run.stderr);
        assert_eq!(
            run.json(),
            json!({"result": expected, "details": {"compilationErrors": []}}),
            "{condition}"
        );
    }
}

#[test]
fn compile_errors_are_reported_with_positions_and_exit_65() {
    let dir = tempfile::tempdir().unwrap();
    let message = tutorial_message(dir.path());
    let run = test("level = @", &message, &[]);
    assert_eq!(run.code, 65);
    assert_eq!(
        run.json(),
        json!({"result": "undefined", "details": {"compilationErrors": [{
            "message": "Syntax error: invalid symbol '@'",
            "severity": "error",
            "location": {"start": {"line": 1, "column": 9}, "end": {"line": 1, "column": 10}}
        }]}})
    );
    assert!(
        run.stderr.contains("1 | level = @\n  |         ^\n"),
        "{}",
        run.stderr
    );

    let run = test("level = 3", &message, &[]);
    assert_eq!(run.code, 65);
    let errors = &run.json()["details"]["compilationErrors"];
    assert_eq!(errors[0]["location"]["start"], json!({"line": 1, "column": 7}));
    assert!(errors[0]["hint"].as_str().unwrap().contains("as_number"));
}

#[test]
fn unquoted_strings_compile_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let message = tutorial_message(dir.path());
    let run = test("level = critical", &message, &[]);
    assert_eq!(run.code, 0);
    let json = run.json();
    assert_eq!(json["result"], json!("undefined"));
    assert_eq!(
        json["details"]["compilationErrors"][0]["severity"],
        json!("warning")
    );
    assert!(
        run.stderr
            .starts_with("warning: 'critical' is read as an application property"),
        "{}",
        run.stderr
    );
}

#[test]
fn raw_body_files_carry_utf16_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let message = write(
        dir.path(),
        "m.json",
        json!({"systemProperties": {"contentType": "application/json", "contentEncoding": "utf-16"}})
            .to_string(),
    );
    let body: Vec<u8> = r#"{"city": "Zürich"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let body = write(dir.path(), "body.bin", body);
    let run = test(
        "$body.city = 'Zürich'",
        &message,
        &["--body-file", body.to_str().unwrap()],
    );
    assert_eq!(
        (run.code, run.json()["result"].clone()),
        (0, json!("true")),
        "{}",
        run.stderr
    );

    // A text body is encoded as contentEncoding says.
    let text = write(
        dir.path(),
        "text.json",
        json!({"body": "{\"city\": \"Zürich\"}",
               "systemProperties": {"contentType": "application/json", "contentEncoding": "utf-32"}})
        .to_string(),
    );
    let run = test("$body.city = 'Zürich'", &text, &[]);
    assert_eq!(run.json()["result"], json!("true"), "{}", run.stderr);
}

#[test]
fn an_unreadable_body_is_explained_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let message = write(dir.path(), "m.json", json!({"body": "{\"a\": 1}"}).to_string());
    let run = test("$body.a = 1", &message, &[]);
    assert_eq!((run.code, run.json()["result"].clone()), (0, json!("undefined")));
    assert!(
        run.stderr
            .contains("Content encoding is not specified in system properties."),
        "{}",
        run.stderr
    );
}

#[test]
fn twins_come_from_a_twin_file() {
    let dir = tempfile::tempdir().unwrap();
    let message = tutorial_message(dir.path());
    let twin = write(
        dir.path(),
        "twin.json",
        json!({"tags": {"site": {"floor": 3}}, "properties": {"reported": {"firmware": "1.3"}}}).to_string(),
    );
    let twin_arg = ["--twin", twin.to_str().unwrap()];
    let run = test(
        "$twin.tags.site.floor = 3 AND $twin.properties.reported.firmware = '1.3'",
        &message,
        &twin_arg,
    );
    assert_eq!(run.json()["result"], json!("true"), "{}", run.stderr);
    let run = test("$twin.tags.site.floor = 3", &message, &[]);
    assert_eq!(run.json()["result"], json!("undefined"));
}

#[test]
fn the_message_can_come_from_stdin() {
    let message = json!({"appProperties": {"level": "storage"}}).to_string();
    let run = hub(
        &[
            "route",
            "test",
            "--condition",
            "level = 'storage'",
            "--message",
            "-",
        ],
        Some(&message),
    );
    assert_eq!(
        (run.code, run.json()["result"].clone()),
        (0, json!("true")),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_usage_and_bad_files_exit_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let message = tutorial_message(dir.path());
    let body = write(dir.path(), "body.bin", b"{}");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "is not a valid RoutingMessage"),
        (b"[1, 2]".to_vec(), "is not a valid RoutingMessage"),
        (
            br#"{"appProperties": {"level": 3}}"#.to_vec(),
            "invalid type: integer `3`, expected a string",
        ),
        (br#"{"appProperty": {}}"#.to_vec(), "unknown field `appProperty`"),
        (
            br#"{"appProperties": {"Level": "a", "level": "b"}}"#.to_vec(),
            "property names are case-insensitive",
        ),
        (b"\xff\xfe".to_vec(), "is not a valid RoutingMessage"),
    ];
    for (contents, expected) in cases {
        let file = write(dir.path(), "bad.json", &contents);
        let run = test("true", &file, &[]);
        assert_eq!(run.code, 64, "{}", String::from_utf8_lossy(&contents));
        assert!(run.stderr.contains(expected), "{expected} not in {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    let run = test("true", &dir.path().join("missing.json"), &[]);
    assert_eq!(run.code, 64);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);

    let run = test("true", &message, &["--body-file", body.to_str().unwrap()]);
    assert_eq!(run.code, 64);
    assert!(run.stderr.contains("give only one"), "{}", run.stderr);

    let bad_twin = write(dir.path(), "twin.json", br#"{"tag": {}}"#);
    let run = test("true", &message, &["--twin", bad_twin.to_str().unwrap()]);
    assert_eq!(run.code, 64);
    assert!(run.stderr.contains("unknown field `tag`"), "{}", run.stderr);

    for args in [
        &["route", "test"][..],
        &["route", "test", "--condition", "x"],
        &["route", "nope"],
        &["nope"],
    ] {
        let run = hub(args, None);
        assert_eq!(run.code, 64, "{args:?}: {}", run.stderr);
    }
    assert_eq!(hub(&["--help"], None).code, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any JSON document as a message file gives a result or a clear error, never a panic.
    #[test]
    fn any_json_as_a_message_file_is_handled(value in any_json(), raw in proptest::option::of(any::<Vec<u8>>())) {
        let bytes = serde_json::to_vec(&value).unwrap();
        match hub::route_test::load_message(Path::new("m.json"), &bytes, raw) {
            Ok(message) => {
                let (result, _) = hub::route_test::test_route("$body.a = 1 OR level = 'x'", &message);
                prop_assert!(result.details.compilation_errors.is_empty());
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
        let twin = hub::route_test::load_twin(Path::new("t.json"), &bytes);
        prop_assert!(twin.is_ok() || !twin.unwrap_err().to_string().is_empty());
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        Just(Value::String("application/json".into())),
        Just(Value::String("utf-16".into())),
    ];
    let keys = prop_oneof![
        Just("body".to_owned()),
        Just("appProperties".to_owned()),
        Just("systemProperties".to_owned()),
        Just("contentType".to_owned()),
        Just("contentEncoding".to_owned()),
        Just("tags".to_owned()),
        Just("properties".to_owned()),
        "\\PC{0,6}",
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
