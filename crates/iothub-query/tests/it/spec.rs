//! The examples of `spec/routing-query.md`, one table per section: condition → expected result on a
//! fixed message (`true`, `false`, `undefined`, or `error` for a compile error).

use iothub_query::SimpleMessage;
use serde_json::json;

use crate::support::{encode, run};

fn message_with_body(body: &[u8], content_type: Option<&str>, encoding: Option<&str>) -> SimpleMessage {
    let mut message = SimpleMessage::new(body.to_vec())
        .with_app_property("level", Some("critical"))
        .with_app_property("key1", Some("value1"))
        .with_app_property("key2", Some("3"))
        .with_app_property("null_value", None)
        .with_app_property("$sys4", Some("value4"))
        .with_app_property("TRUE", Some("yes"))
        .with_app_property("a-1", Some("dash"))
        .with_app_property("$body.shadowed", Some("from-app"))
        .with_app_property("$twin.tags.shadowed", Some("from-app"))
        .with_system_property("connectionDeviceId", Some("turbine-7"))
        .with_system_property("sys1", Some("sysvalue1"))
        .with_system_property("sys4", Some("sysvalue4"))
        .with_system_property("sysnull", None)
        .with_system_property("enqueuedTime", Some("2022-06-06T22:56:06.0000000Z"));
    if let Some(content_type) = content_type {
        message = message.with_system_property("contentType", Some(content_type));
    }
    if let Some(encoding) = encoding {
        message = message.with_system_property("contentEncoding", Some(encoding));
    }
    message
}

const BODY: &str = r#"{"windSpeed": 42.5, "a": 50, "flag": true, "off": false, "s": "text", "n": null,
    "o": {"x": 1}, "arr": [10, 20, {"k": "v"}], "Weather": {"IsEnabled": true}, "shadowed": "from-body",
    "esc": "a\"b\u00e9", "Welcome!": {"he": "שלום"}, "I'mnotusingspaces%1": {"es": "hola"}}"#;

fn message() -> SimpleMessage {
    message_with_body(BODY.as_bytes(), Some("application/json"), Some("utf-8")).with_twin(json!({
        "tags": {"deploymentLocation": {"floor": "1", "building": 43}, "shadowed": "from-twin"},
        "properties": {"desired": {"telemetryInterval": 30}, "reported": {"state": {"on": true}, "list": [1, 2]}}
    }))
}

/// Checks every `(condition, expected)` row on `message`, reporting all mismatches at once.
#[track_caller]
fn check_on(message: &SimpleMessage, table: &[(&str, &str)]) {
    let failures: Vec<String> = table
        .iter()
        .filter_map(|(condition, expected)| {
            let actual = run(condition, message);
            let shown: String = condition.chars().take(100).collect();
            (actual != *expected).then(|| format!("{shown:?}: expected {expected}, got {actual}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[track_caller]
fn check(table: &[(&str, &str)]) {
    check_on(&message(), table);
}

#[test]
fn lexical_rules() {
    check(&[
        // Strings: both quotes, only \' \" \\ \uXXXX escapes.
        (r#"'it\'s' = "it's""#, "true"),
        (r#""say \"hi\"" = 'say "hi"'"#, "true"),
        (r"'\u00e9' = 'é'", "true"),
        (r"'a\\b' = 'a\\b'", "true"),
        (r"'a\nb' = 'a'", "error"),
        (r"'a\tb' = 'a'", "error"),
        (r"'\U00e9' = 'é'", "error"),
        ("'unterminated = 'x'", "error"),
        // Numbers: leading zeros, reals, exponents, hex, huge values.
        ("0100 = 100", "true"),
        ("-1 < 0", "true"),
        (".5 = 0.5", "true"),
        ("1e3 = 1000", "true"),
        ("1.234e-1 = 0.1234", "true"),
        ("0x1F = 31", "true"),
        ("0XfF = 255", "true"),
        ("is_defined(10e1000)", "true"),
        ("10e1000 = 3/0", "true"),
        // Keywords: literals lowercase only, AND/OR/NOT any case, reserved words rejected.
        ("true", "true"),
        ("TRUE = 'yes'", "true"),
        ("is_defined(True)", "true"), // the application property "TRUE": names are case-insensitive
        ("is_defined(False)", "false"),
        ("true aNd NoT false", "true"),
        ("key1 = select", "error"),
        ("key1 = FROM", "error"),
        ("SELECT", "error"),
        // Operators touching names are part of the name.
        ("a-1 = 'dash'", "true"),
        ("is_defined(-undefined)", "false"),
        ("3-4 = '3-4'", "undefined"),
        ("3 - 4 = -1", "true"),
        ("key2 -1", "error"),
        // Whitespace and comments.
        ("/* a comment */ key1 /* another */ = 'value1'", "true"),
        ("key1\t=\r\n'value1'", "true"),
        // Stray characters.
        ("key1 = @", "error"),
        ("[key1] = 'value1'", "error"),
        ("key1 ; true", "error"),
        ("key1 = 'value1' : true", "error"),
        ("key1 = 'value1' \\", "error"),
        ("key1 == 'value1'", "error"),
        ("key1 = 'value1' && true", "error"),
        ("key1 = 'value1' ? true", "error"),
    ]);
}

#[test]
fn syntax_and_precedence() {
    check(&[
        ("true or false and false", "true"),
        ("(true or false) and false", "false"),
        ("NOT key1 = 'value1'", "error"),
        ("NOT (key1 = 'value1')", "false"),
        ("NOT true = false", "true"),
        ("- 3 * 2 = -6", "true"),
        ("2 + 3 * 4 = 14", "true"),
        ("(2 + 3) * 4 = 20", "true"),
        ("10 - 2 - 3 = 5", "true"),
        ("100 / 10 / 5 = 2", "true"),
        ("7 % 4 * 2 = 6", "true"),
        ("1 < 2 = true", "true"),
        ("'a' || 'b' || 'c' = 'abc'", "true"),
        ("missing ?? 'x' = 'x'", "error"), // ?? binds loosest: missing ?? ('x' = 'x')
        ("(missing ?? 'x') = 'x'", "true"),
        // Trailing input is rejected (a deliberate departure from edgeHub, which drops it).
        ("true false", "error"),
        ("3 $ 4", "error"),
        ("$ sys1 = 'sysvalue1'", "error"),
        // Dangling operators, unbalanced parentheses.
        ("key1 =", "error"),
        ("= key1", "error"),
        ("(key1 = 'value1'", "error"),
        ("key1 = 'value1')", "error"),
        ("as_number(key2))", "error"),
        ("as_number(key2", "error"),
        ("as_number(key2,)", "error"),
        ("()", "error"),
        ("", "undefined"),
        ("   /* nothing */ ", "undefined"),
    ]);
}

#[test]
fn names_and_lookup() {
    check(&[
        // Application properties: case-insensitive names, case-sensitive values.
        ("KEY1 = 'value1'", "true"),
        ("key1 = 'VALUE1'", "false"),
        ("key1 = value1", "undefined"),
        ("is_defined(missing)", "false"),
        ("is_defined(null_value)", "true"),
        ("is_null(null_value)", "true"),
        ("null_value = 'x'", "undefined"),
        // System properties with $, case-insensitive names.
        ("$connectionDeviceId = 'turbine-7'", "true"),
        ("$CONNECTIONDEVICEID = 'turbine-7'", "true"),
        ("$SYS1 = 'sysvalue1'", "true"),
        ("$sys1 = 'SYSVALUE1'", "false"),
        ("is_null($sysnull)", "true"),
        ("connectionDeviceId = 'turbine-7'", "undefined"),
        ("$enqueuedTime > '2022-06-06T22:56:05Z'", "true"),
        // An application property literally named $name wins; {$name} reaches the system property.
        ("$sys4 = 'value4'", "true"),
        ("{$sys4} = 'sysvalue4'", "true"),
        ("{ $sys1 } = 'sysvalue1'", "true"),
        ("{sys1} = 'sysvalue1'", "error"),
        ("{$sys1 = 'sysvalue1'", "error"),
        ("$body.shadowed = 'from-app'", "true"),
        ("{$body.shadowed} = 'from-body'", "true"),
        ("$twin.tags.shadowed = 'from-app'", "true"),
        ("{$twin.tags.shadowed} = 'from-twin'", "true"),
        // Bare $body is the system property "body"; a bracketed $-name is undefined.
        ("is_defined($body)", "false"),
        ("$body[0] = 'Feb'", "undefined"),
        ("$foo[0] = 'x'", "undefined"),
    ]);
}

#[test]
fn static_types() {
    check(&[
        // Arithmetic needs numbers (or body values).
        ("is_defined(3 + key1)", "error"),
        ("is_defined(3 + null)", "error"),
        ("is_defined(3 + undefined)", "error"),
        ("is_defined('a' + 'b')", "error"),
        ("is_defined(true + 3)", "error"),
        ("$body.a + 1 = 51", "true"),
        ("$body.a * 2 = 100", "true"),
        ("-$body.a = -50", "error"),
        ("0 - $body.a = -50", "true"),
        ("- as_number($body.a) = -50", "true"),
        ("-as_number($body.a) = -50", "error"), // `-as_number` is one name
        ("$body.a % 2 = 0", "error"),
        ("as_number($body.a) % 2 = 0", "true"),
        // Concatenation needs strings.
        ("'a' || null = 'a'", "error"),
        ("'a' || true = 'a'", "error"),
        ("'a' || $body.s = 'atext'", "true"),
        // Comparisons need the same static type, except with a body value.
        ("key2 = 3", "error"),
        ("3 = key2", "error"),
        ("as_number(key2) = 3", "true"),
        ("key2 = '3'", "true"),
        ("key1 = null", "error"),
        ("undefined = undefined", "undefined"),
        ("key1 = undefined", "error"),
        ("$body.a = undefined", "error"),
        ("$body.a = 50", "true"),
        ("$body.s = 'text'", "true"),
        ("$body.flag = true", "true"),
        ("$body.n = null", "true"),
        // AND/OR/NOT need booleans, null, undefined (or body values).
        ("key1 and true", "error"),
        ("undefined and 'hello'", "error"),
        ("3 or true", "error"),
        ("NOT 'x'", "error"),
        ("NOT key1", "error"),
        ("NOT undefined", "error"),
        ("NOT $body.flag", "false"),
        ("NOT $body.s", "undefined"),
        ("$body.a = 50 AND $body.flag", "true"),
        ("$body.flag AND $body.a = 50", "true"),
        ("$body.flag OR $body.off", "true"),
        ("$body.flag AND $body.s", "undefined"),
        ("null AND undefined", "error"),
        ("null AND $body.flag", "error"),
        // Coalesce needs the same type on both sides.
        ("(key1 ?? 12.34) = 1", "error"),
        ("(key1 ?? null) = 1", "error"),
        ("(missing ?? 'hello') = 'hello'", "true"),
        ("(3 % 0 ?? 12.34) = 12.34", "true"),
        ("($body.missing.path ?? 'x') = 'x'", "false"),
        ("($body.o ?? 'x') = 'x'", "true"),
        // Functions check their argument types.
        ("abs('x') = 1", "error"),
        ("as_number(true) = 1", "error"),
        ("length(3) = 1", "error"),
        ("concat('a') = 'a'", "error"),
        ("nope(1) = 1", "error"),
        ("is_defined()", "error"),
        ("is_defined(1, 2)", "error"),
    ]);
}

#[test]
fn undefined_and_null_logic() {
    check(&[
        ("false AND undefined", "false"),
        ("true AND undefined", "undefined"),
        ("undefined AND undefined", "undefined"),
        ("false OR undefined", "undefined"),
        ("true OR undefined", "true"),
        ("undefined OR undefined", "undefined"),
        ("NOT (1 < missing_number ?? undefined)", "error"),
        ("NOT (key1 = missing)", "undefined"),
        ("null", "false"),
        ("null OR true", "true"),
        ("null OR false", "false"),
        ("null AND true", "false"),
        ("NOT null", "true"),
        ("(null and true) = null", "true"),
        ("null = null", "true"),
        ("null != null", "false"),
        ("null <= null", "true"),
        ("null < null", "false"),
        ("3", "undefined"),
        ("'a string'", "undefined"),
        ("undefined", "undefined"),
        ("$body.flag", "true"),
        ("$body.Weather.IsEnabled", "true"),
        ("$body.off", "false"),
        ("$body.s", "undefined"),
        ("$body.n", "undefined"),
        // Undefined propagates through arithmetic; division by zero is infinite, modulo by zero undefined.
        ("is_defined(3 % 0)", "false"),
        ("is_defined(3 / 0)", "true"),
        ("3 / 0 > 1e300", "true"),
        ("-3 / 0 < 0", "true"),
        ("is_defined(as_number(key1) + 1)", "false"),
        ("power(10, 4000) = 3/0", "true"),
        // Comparisons with an undefined side are undefined; strings are ordinal.
        ("missing = missing", "undefined"),
        ("missing != 'x'", "undefined"),
        ("'a' < 'b'", "true"),
        ("'abc' = 'ABC'", "false"),
        ("'B' < 'a'", "true"),
        ("false < true", "true"),
        // Dynamic values: no coercion, different types are never equal.
        ("$body.a = '50'", "false"),
        ("$body.a <> '100'", "true"),
        ("$body.missing = null", "true"),
        ("$body.missing <> '100'", "true"),
        ("$body.o <> null", "undefined"),
        ("$body.arr = 1", "undefined"),
    ]);
}

#[test]
fn functions() {
    check(&[
        ("abs(-2) = 2", "true"),
        ("abs($body.a) = 50", "true"),
        ("is_defined(abs($body.s))", "false"),
        ("exp(0) = 1", "true"),
        ("exp(4000) = 3/0", "true"),
        ("square(3) = 9", "true"),
        ("ceiling(1.2) = 2", "true"),
        ("floor(-1.2) = -2", "true"),
        ("sign(-5) = -1", "true"),
        ("sign(0) = 0", "true"),
        ("sign(3/0) = 1", "true"),
        ("sqrt(16) = 4", "true"),
        ("is_defined(sqrt(-1))", "false"),
        ("power(2, 10) = 1024", "true"),
        ("POWER(10, 4000) = 3/0", "true"),
        ("as_number('12.5') = 12.5", "true"),
        ("as_number('10e10') = 10e10", "true"),
        ("AS_NUMBER('10e1000') = 1/0", "true"),
        ("as_number(' 3 ') = 3", "true"),
        ("as_number('1,000') = 1000", "true"),
        ("as_number('(5)') = -5", "true"),
        ("is_defined(as_number('apple'))", "false"),
        ("is_defined(as_number(key1))", "false"),
        ("as_number(key2) = 3", "true"),
        ("as_number(3) = 3", "true"),
        ("as_number($body.a) = 50", "true"),
        ("is_bool(true)", "true"),
        ("is_bool($body.flag)", "true"),
        ("is_bool($body.a)", "false"),
        ("is_bool(3)", "false"),
        ("is_bool(key1)", "false"),
        ("is_bool(null)", "false"),
        ("is_bool(undefined)", "false"),
        ("is_bool(missing = 'x')", "undefined"),
        ("is_bool($body.arr)", "undefined"),
        ("is_defined(null)", "true"),
        ("is_defined(undefined)", "false"),
        ("is_defined($body.missing)", "true"),
        ("is_defined($body.o)", "false"),
        ("is_null(null)", "true"),
        ("is_null(key1)", "false"),
        ("is_null(missing)", "false"),
        ("is_null($body.n)", "true"),
        ("is_null($body.missing)", "false"),
        ("is_null($body.a)", "false"),
        ("is_null(3)", "false"),
        ("is_number(3)", "true"),
        ("is_number(3/0)", "false"),
        ("is_number($body.a)", "true"),
        ("is_number($body.s)", "false"),
        ("is_number(key2)", "false"),
        ("is_string('a')", "true"),
        ("is_string(key1)", "true"),
        ("is_string(null_value)", "false"),
        ("is_string(missing)", "false"),
        ("is_string($body.s)", "true"),
        ("is_string(3)", "false"),
        ("is_array($body.arr)", "true"),
        ("is_array($body.o)", "false"),
        ("IS_OBJECT($body.o)", "true"),
        ("is_object($body.arr[2])", "true"),
        ("is_primitive($body.a)", "true"),
        ("is_primitive($body.o)", "false"),
        ("is_primitive(key1)", "true"),
        ("is_primitive(missing)", "false"),
        ("concat('a', 'b', 'c') = 'abc'", "true"),
        ("concat(key1, $body.s) = 'value1text'", "true"),
        ("concat('a', missing) = 'a'", "undefined"),
        ("'a' || null_value || 'd' = 'ad'", "true"),
        ("concat('a', $body.a) = 'a50'", "undefined"),
        ("length('hello') = 5", "true"),
        ("LeNgTh('😀') = 2", "true"),
        ("is_defined(length(null_value))", "false"),
        ("lower('ABC') = 'abc'", "true"),
        ("upper(key1) = 'VALUE1'", "true"),
        ("substring('hello', 1) = 'ello'", "true"),
        ("substring('hello', 5) = ''", "true"),
        ("is_defined(substring('hello', 6))", "false"),
        ("is_defined(substring('hello', -1))", "false"),
        ("substring('hello', 1, 3) = 'ell'", "true"),
        ("substring('hello', 1.9, 2.9) = 'el'", "true"),
        ("is_defined(substring('abc', 3, 0))", "false"),
        ("is_defined(substring('abc', 1, 3))", "false"),
        ("index_of('hello', 'l') = 2", "true"),
        ("index_of('hello', 'z') = -1", "true"),
        ("index_of('hello', '') = 0", "true"),
        ("starts_with(key1, 'val')", "true"),
        ("starts_with(key1, 'VAL')", "false"),
        ("ends_with(key1, 'e1')", "true"),
        ("contains(key1, 'lue')", "true"),
        ("contains(missing, 'x')", "undefined"),
        ("contains(null_value, 'x')", "undefined"),
    ]);
}

#[test]
fn body_paths() {
    check(&[
        ("$body.windSpeed > 30", "true"),
        ("$BODY.windSpeed > 30", "true"),
        ("$bODY.windSpeed > 30", "true"),
        ("$body.WindSpeed = 42.5", "false"), // path segments are case-sensitive
        // Values of different JSON types order bool < number < string < null (a missing path is null),
        // as in IoT Hub's engine: a missing field is "greater" than any number. Guard with is_number.
        ("$body.WindSpeed > 30", "true"),
        ("$body.s > 30", "true"),
        ("$body.flag < 30", "true"),
        ("is_number($body.WindSpeed) AND $body.WindSpeed > 30", "false"),
        ("$body.arr[1] = 20", "true"),
        ("$body.arr[5] = null", "true"),
        ("$body.arr[2].k = 'v'", "true"),
        ("$body.o.x = 1", "true"),
        ("$body.s.x = null", "true"),
        ("$body.esc = 'a\"bé'", "true"),
        ("$body.Welcome!.he = 'שלום'", "true"),
        ("$body.I'mnotusingspaces%1.es = 'hola'", "true"),
        ("$body. = 1", "error"),
        ("$body.a..b = 1", "error"),
        ("$body.arr[] = 1", "error"),
        ("$body.arr['x'] = 1", "error"),
        ("$body.arr[1:2] = 1", "error"),
        ("$body.a;b = 1", "error"),
        ("$body.windSpeed > 30 AND level = 'critical'", "true"),
    ]);
}

#[test]
fn body_gating() {
    let json = br#"{"a": 1}"#;
    /// Body, content type, content encoding, expected result of `$body.a = 1`.
    type Case<'a> = (&'a [u8], Option<&'a str>, Option<&'a str>, &'a str);
    let cases: &[Case<'_>] = &[
        (json, Some("application/json"), Some("utf-8"), "true"),
        (json, Some("application/JSON"), Some("UTF-8"), "true"),
        (json, Some("APPLICATION/json"), Some("Utf-8"), "true"),
        (json, None, Some("utf-8"), "undefined"),
        (json, Some("application/json"), None, "undefined"),
        (json, Some("text/plain"), Some("utf-8"), "undefined"),
        (
            json,
            Some("application/json; charset=utf-8"),
            Some("utf-8"),
            "undefined",
        ),
        (json, Some("application/json"), Some("latin1"), "undefined"),
        (b"[1, 2]", Some("application/json"), Some("utf-8"), "undefined"),
        (b"{\"a\": 1", Some("application/json"), Some("utf-8"), "undefined"),
        (
            b"{\"a\": 1} trailing",
            Some("application/json"),
            Some("utf-8"),
            "undefined",
        ),
        (
            b"\xEF\xBB\xBF{\"a\": 1}",
            Some("application/json"),
            Some("utf-8"),
            "true",
        ),
        (
            b"{\"a\": 1, \"a\": 2}",
            Some("application/json"),
            Some("utf-8"),
            "false",
        ),
        (
            b"{\"a\": {\"b\": 1}, \"a\": 1}",
            Some("application/json"),
            Some("utf-8"),
            "true",
        ),
        (b"\xFF\xFE", Some("application/json"), Some("utf-8"), "undefined"),
    ];
    for (body, content_type, encoding, expected) in cases {
        let message = message_with_body(body, *content_type, *encoding);
        assert_eq!(
            run("$body.a = 1", &message),
            *expected,
            "body {:?} type {content_type:?} encoding {encoding:?}",
            String::from_utf8_lossy(body)
        );
    }
    // The rest of the condition still evaluates when the body cannot be queried.
    let text = message_with_body(b"not json", Some("text/plain"), Some("utf-8"));
    check_on(
        &text,
        &[
            ("$body.a = 1 OR key1 = 'value1'", "true"),
            ("$body.a = 1 AND key1 = 'value1'", "undefined"),
        ],
    );
    // utf-16 and utf-32 mean little-endian.
    for (encoding, name) in [("utf-16le", "utf-16"), ("utf-32le", "UTF-32"), ("utf-8", "utf-8")] {
        let body = encode(r#"{"city": "Zürich 😀", "n": 2}"#, Some(encoding));
        let message = message_with_body(&body, Some("application/json"), Some(name));
        check_on(&message, &[("$body.city = 'Zürich 😀' AND $body.n = 2", "true")]);
    }
}

#[test]
fn twin_paths() {
    check(&[
        ("$twin.tags.deploymentLocation.building = 43", "true"),
        ("$twin.tags.deploymentLocation.floor = '1'", "true"),
        ("$twin.tags.deploymentLocation.floor = 1", "false"),
        ("$twin.TAGS.DeploymentLocation.Building = 43", "true"),
        ("$twin.properties.desired.telemetryInterval > 10", "true"),
        ("$twin.properties.reported.state.on", "true"),
        ("IS_OBJECT($twin.properties.reported.state)", "true"),
        ("is_array($twin.properties.reported.list)", "true"),
        ("$twin.properties.reported.list[1] = 2", "true"),
        ("$twin.tags.missing = null", "true"),
        ("$twin. = 1", "error"),
    ]);
    let no_twin = message_with_body(b"{}", Some("application/json"), Some("utf-8"));
    check_on(
        &no_twin,
        &[("$twin.tags.deploymentLocation.building = 43", "undefined")],
    );
}

#[test]
fn long_or_lists_and_deep_nesting() {
    let ids: Vec<String> = (0..1500)
        .map(|i| format!("$connectionDeviceId = 'device-{i:05}'"))
        .collect();
    let condition = format!("{} OR $connectionDeviceId = 'turbine-7'", ids.join(" OR "));
    check(&[(&condition, "true")]);
    let nested = format!("{}true{}", "(".repeat(100), ")".repeat(100));
    check(&[(&nested, "true")]);
    let too_deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    check(&[(&too_deep, "error")]);
    let nots = format!("{}true", "NOT ".repeat(200));
    check(&[(&nots, "error")]);
    let too_long = format!("key1 = '{}'", "x".repeat(iothub_query::MAX_CONDITION_BYTES));
    check(&[(&too_long, "error")]);
}
