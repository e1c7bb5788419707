//! Defaults → file → environment → overrides, errors that name the key, secrets that never print.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use service_kit::config::{Sources, load};

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    data_dir: String,
    mqtt: Mqtt,
    policies: Vec<String>,
    #[serde(serialize_with = "redacted")]
    key: SecretString,
}

fn redacted<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Mqtt {
    port: u16,
    tls: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: "data".into(),
            mqtt: Mqtt::default(),
            policies: vec![],
            key: SecretString::from(""),
        }
    }
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt {
            port: 8883,
            tls: true,
        }
    }
}

fn settings(
    file: Option<&Path>,
    env: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> Result<(Settings, Vec<String>), String> {
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    load(&Sources {
        prefix: "HUB",
        file,
        env,
        overrides: &overrides,
    })
    .map_err(|e| e.to_string())
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let (s, ignored) = settings(None, &[], &[]).unwrap();
    assert_eq!(
        (s.data_dir.as_str(), s.mqtt.port, s.mqtt.tls),
        ("data", 8883, true)
    );
    assert!(ignored.is_empty());
}

#[test]
fn file_then_environment_then_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("hub.yaml");
    std::fs::write(
        &yaml,
        "data_dir: /var/hub\nmqtt:\n  port: 1883\n  tls: false\nkey: from-file\n",
    )
    .unwrap();
    let (s, _) = settings(Some(&yaml), &[], &[]).unwrap();
    assert_eq!(
        (s.data_dir.as_str(), s.mqtt.port, s.mqtt.tls),
        ("/var/hub", 1883, false)
    );
    assert_eq!(s.key.expose_secret(), "from-file");

    let env = [
        ("HUB_MQTT__PORT", "2883"),
        ("HUB_KEY", "from-env"),
        ("OTHER_DATA_DIR", "x"),
    ];
    let (s, _) = settings(Some(&yaml), &env, &[]).unwrap();
    assert_eq!((s.data_dir.as_str(), s.mqtt.port), ("/var/hub", 2883));
    assert_eq!(s.key.expose_secret(), "from-env");

    let (s, _) = settings(Some(&yaml), &env, &[("mqtt.port", "3883")]).unwrap();
    assert_eq!(s.mqtt.port, 3883);

    let json = dir.path().join("hub.json");
    std::fs::write(
        &json,
        r#"{"data_dir": "/json", "policies": ["iothubowner", "device"]}"#,
    )
    .unwrap();
    let (s, _) = settings(Some(&json), &[], &[]).unwrap();
    assert_eq!((s.data_dir.as_str(), s.policies.len()), ("/json", 2));
}

#[test]
fn kubernetes_service_links_are_ignored_not_fatal() {
    let env = [
        ("HUB_SERVICE_HOST", "10.0.0.1"),
        ("HUB_PORT", "tcp://10.0.0.1:8883"),
        ("HUB_DATA_DIR", "/d"),
    ];
    let (s, ignored) = settings(None, &env, &[]).unwrap();
    assert_eq!(s.data_dir, "/d");
    assert_eq!(ignored, ["HUB_PORT", "HUB_SERVICE_HOST"]);
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    /// File, environment, text the error must contain.
    type Case<'a> = (Option<std::path::PathBuf>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (None, vec![("HUB_MQTT__PORT", "eighty")], "mqtt.port"),
        (None, vec![("HUB_MQTT__PROT", "1")], "prot"),
        (
            Some(dir.path().join("missing.yaml")),
            vec![],
            "missing.yaml: no such file",
        ),
        (Some(dir.path().join("hub.toml")), vec![], "must end in .yaml"),
    ];
    for (file, env, expected) in cases {
        let error = settings(file.as_deref(), &env, &[]).unwrap_err();
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
    }
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "mqtt:\n  port: [1, 2]\n").unwrap();
    let error = settings(Some(&bad), &[], &[]).unwrap_err();
    assert!(error.contains("mqtt.port"), "{error}");
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(&unknown, "dta_dir: x\n").unwrap();
    let error = settings(Some(&unknown), &[], &[]).unwrap_err();
    assert!(error.contains("dta_dir"), "{error}");
}

#[test]
fn secrets_never_print() {
    let (s, _) = settings(None, &[("HUB_KEY", "sup3r-secret")], &[]).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("sup3r-secret"), "{debug}");
}
