//! SAS tokens: the spec §3 worked examples as known answers, parsing, expiry, resource scopes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_protocol::sas::{
    ResourceError, ResourceScope, ResourceUri, SasError, SasToken, SharedAccessKey, VerifyError, expiry_after,
};

use crate::KEY;

const SE: u64 = 1_700_000_000;

fn key() -> SharedAccessKey {
    SharedAccessKey::from_base64(KEY).unwrap()
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Spec §3 "Worked example": uppercase escapes, what the Python SDK sends.
#[test]
fn generates_the_spec_device_token() {
    let token = SasToken::generate(
        &ResourceUri::device("myhub.azure-devices.net", "device1"),
        &key(),
        None,
        SE,
    );
    assert_eq!(
        token.resource_raw(),
        "myhub.azure-devices.net%2Fdevices%2Fdevice1"
    );
    assert_eq!(
        token.expose_secret(),
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000"
    );
}

/// Spec §3: the policy token, same key, `skn=iothubowner`.
#[test]
fn generates_the_spec_policy_token() {
    let token = SasToken::generate(
        &ResourceUri::hub("myhub.azure-devices.net"),
        &key(),
        Some("iothubowner"),
        SE,
    );
    assert_eq!(
        token.expose_secret(),
        "SharedAccessSignature sr=myhub.azure-devices.net&sig=iIzEw6hi6GK79RY5jNXO6QeQkSL%2FAx4zTmy44X2G1VY%3D&se=1700000000&skn=iothubowner"
    );
}

#[track_caller]
fn check_verifies(token: &str, expected: Result<(), VerifyError>) {
    let token = SasToken::parse(token).unwrap();
    assert_eq!(token.verify([&key()], at(SE - 60)), expected, "{token:?}");
}

/// The signature covers `sr` exactly as sent: `%2f` and `%2F` sign differently (spec §3 "Casing").
#[test]
fn verifies_over_the_raw_resource_text() {
    let upper = "sr=myhub.azure-devices.net%2Fdevices%2Fdevice1";
    let lower = "sr=myhub.azure-devices.net%2fdevices%2fdevice1";
    let upper_sig = "sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D";
    let lower_sig = "sig=iIyvul1z7xsjQDMXvGvUxZi%2BlqnXkFn5lOgyNrICYDM%3D";
    let ok = Ok(());
    let mismatch = Err(VerifyError::SignatureMismatch);
    check_verifies(
        &format!("SharedAccessSignature {upper}&{upper_sig}&se=1700000000"),
        ok.clone(),
    );
    check_verifies(
        &format!("SharedAccessSignature {lower}&{lower_sig}&se=1700000000"),
        ok.clone(),
    );
    check_verifies(
        &format!("SharedAccessSignature {lower}&{upper_sig}&se=1700000000"),
        mismatch.clone(),
    );
    check_verifies(
        &format!("SharedAccessSignature {upper}&{lower_sig}&se=1700000000"),
        mismatch.clone(),
    );
    // Any field order; an unescaped `+` and `=` in `sig` still decode to the same signature.
    check_verifies(
        &format!(
            "SharedAccessSignature se=1700000000&sig=iIyvul1z7xsjQDMXvGvUxZi+lqnXkFn5lOgyNrICYDM=&{lower}"
        ),
        ok.clone(),
    );
    // `se` is signed too.
    check_verifies(
        &format!("SharedAccessSignature {upper}&{upper_sig}&se=1700000001"),
        mismatch,
    );
    check_verifies(
        "SharedAccessSignature sr=myhub.azure-devices.net&sig=iIzEw6hi6GK79RY5jNXO6QeQkSL%2FAx4zTmy44X2G1VY%3D&se=1700000000&skn=iothubowner",
        ok,
    );
}

#[test]
fn tries_each_key_in_turn() {
    let token = SasToken::generate(&ResourceUri::device("h", "d"), &key(), None, SE);
    let other = SharedAccessKey::from_bytes(&[7; 32]).unwrap();
    assert_eq!(token.verify([&other, &key()], at(SE)), Ok(()));
    assert_eq!(
        token.verify([&other], at(SE)),
        Err(VerifyError::SignatureMismatch)
    );
    assert_eq!(token.verify([], at(SE)), Err(VerifyError::SignatureMismatch));
}

/// edgeHub's rule: rejected once `se + 5 min` is in the past, to the nanosecond.
#[test]
fn expiry_allows_five_minutes_of_skew() {
    let token = SasToken::generate(&ResourceUri::device("h", "d"), &key(), None, SE);
    let cases = [
        (at(0), false),
        (at(SE), false),
        (at(SE + 300), false),
        (at(SE + 300) + Duration::from_nanos(1), true),
        (at(SE + 301), true),
        (UNIX_EPOCH - Duration::from_secs(1), false),
    ];
    for (now, expired) in cases {
        assert_eq!(token.is_expired(now), expired, "{now:?}");
    }
    let expired = VerifyError::Expired { expiry: SE };
    assert_eq!(token.verify([&key()], at(SE + 301)), Err(expired.clone()));
    assert_eq!(
        expired.to_string(),
        "the SAS token expired at 1700000000 (seconds since the epoch), more than 5 minutes ago"
    );
}

#[test]
fn expiry_after_truncates_to_seconds() {
    let now = at(SE) + Duration::from_millis(999);
    assert_eq!(expiry_after(now, Duration::from_secs(3600)), SE + 3600);
    assert_eq!(
        expiry_after(UNIX_EPOCH - Duration::from_secs(5), Duration::from_secs(10)),
        10
    );
}

#[track_caller]
fn check_parse(token: &str, expected: Result<(&str, &ResourceScope, Option<&str>), &str>) {
    let actual = SasToken::parse(token);
    match (actual, expected) {
        (Ok(token), Ok((host, scope, key_name))) => {
            assert_eq!(token.resource().host(), host);
            assert_eq!(token.resource().scope(), scope);
            assert_eq!(token.key_name(), key_name);
        }
        (Err(error), Err(message)) => assert_eq!(error.to_string(), message),
        (actual, expected) => panic!("{token}: got {actual:?}, expected {expected:?}"),
    }
}

/// Parsing, including the doc's own examples (DOC-SAS; their keys are not published).
#[test]
fn parses_tokens_and_names_the_bad_field() {
    let device1 = ResourceScope::Device {
        device_id: "device1".into(),
    };
    let host = "myhub.azure-devices.net";
    let sig = "sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D";
    let sr = "sr=myhub.azure-devices.net%2Fdevices%2Fdevice1";
    check_parse(
        "SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdevice1&sig=13y8ejUk2z7PLmvtwR5RqlGBOVwiq7rQR3WZ5xZX3N4%3D&se=1456971697",
        Ok((host, &device1, None)),
    );
    check_parse(
        "SharedAccessSignature sr=myhub.azure-devices.net&sig=JdyscqTpXdEJs49elIUCcohw2DlFDR3zfH5KqGJo4r4%3D&se=1456973447&skn=registryRead",
        Ok((host, &ResourceScope::Hub, Some("registryRead"))),
    );
    check_parse(
        &format!("  SharedAccessSignature   {sr}&{sig}&se=1&skn=  "),
        Ok((host, &device1, None)),
    );
    // Field names are case-insensitive.
    check_parse(
        "SharedAccessSignature SR=myhub.azure-devices.net%2Fdevices%2Fdevice1&SIG=x&SE=1",
        Err("the SAS token's `sig` field is not base64"),
    );
    check_parse(
        &format!("SharedAccessSignature {sr}&{sig}&se=1&&x=y&"),
        Ok((host, &device1, None)),
    );

    let cases: [(String, &str); 14] = [
        (
            format!("{sr}&{sig}&se=1"),
            "a SAS token must start with `SharedAccessSignature ` followed by its fields",
        ),
        (
            format!("sharedaccesssignature {sr}&{sig}&se=1"),
            "a SAS token must start with `SharedAccessSignature ` followed by its fields",
        ),
        (
            format!("SharedAccessSignature{sr}&{sig}&se=1"),
            "a SAS token must start with `SharedAccessSignature ` followed by its fields",
        ),
        (
            format!("SharedAccessSignature {sr}& {sig}&se=1"),
            "the SAS token's fields must not contain whitespace",
        ),
        (
            format!("SharedAccessSignature {sr}&{sig}&se"),
            "a field of the SAS token is not `name=value`",
        ),
        (
            format!("SharedAccessSignature {sig}&se=1"),
            "the SAS token has no `sr` field",
        ),
        (
            format!("SharedAccessSignature {sr}&se=1"),
            "the SAS token has no `sig` field",
        ),
        (
            format!("SharedAccessSignature {sr}&{sig}"),
            "the SAS token has no `se` field",
        ),
        (
            format!("SharedAccessSignature {sr}&{sig}&se="),
            "the SAS token has no `se` field",
        ),
        (
            format!("SharedAccessSignature {sr}&{sig}&se=1&Se=2"),
            "the SAS token has the `se` field twice",
        ),
        (
            format!("SharedAccessSignature {sr}&{sig}&se=+1"),
            "the SAS token's `se` field is not a whole number of seconds since the epoch",
        ),
        (
            format!("SharedAccessSignature {sr}&{sig}&se=1.5"),
            "the SAS token's `se` field is not a whole number of seconds since the epoch",
        ),
        (
            format!("SharedAccessSignature {sr}&sig=%%%&se=1"),
            "the SAS token's `sig` field is not base64",
        ),
        (
            format!("SharedAccessSignature sr=h%2Fthings%2Fd&{sig}&se=1"),
            "the SAS token's `sr` field must look like `{host}/devices/{deviceId}[/modules/{moduleId}]`, found `things` at segment 1",
        ),
    ];
    for (token, message) in &cases {
        check_parse(token, Err(message));
    }
}

#[track_caller]
fn check_resource(uri: &str, expected: Result<ResourceUri, ResourceError>) {
    assert_eq!(ResourceUri::parse_encoded(uri), expected, "{uri}");
}

#[test]
fn decodes_resource_uris_segment_wise() {
    let h = "myhub.azure-devices.net";
    check_resource(h, Ok(ResourceUri::hub(h)));
    check_resource(
        "myhub.azure-devices.net%2Fdevices",
        Ok(ResourceUri::new(h, ResourceScope::AllDevices)),
    );
    check_resource(
        "myhub.azure-devices.net%2FDevices%2Fd1",
        Ok(ResourceUri::device(h, "d1")),
    );
    check_resource(
        "myhub.azure-devices.net%2Fdevices%2Fd1%2Fmodules%2Fm1",
        Ok(ResourceUri::module(h, "d1", "m1")),
    );
    // The C# SDK escapes the id inside the URI, then the URI: decoded twice, segment by segment.
    check_resource(
        "myhub.azure-devices.net%2Fdevices%2Fdev%2540ice",
        Ok(ResourceUri::device(h, "dev@ice")),
    );
    // The Python SDK escapes once; a `%` not followed by hex digits stays as it is.
    check_resource(
        "myhub.azure-devices.net%2Fdevices%2F100%25",
        Ok(ResourceUri::device(h, "100%")),
    );
    check_resource(
        "myhub.azure-devices.net/devices/d1",
        Ok(ResourceUri::device(h, "d1")),
    );
    check_resource("", Err(ResourceError::NoHost));
    check_resource("%2Fdevices%2Fd1", Err(ResourceError::NoHost));
    check_resource("h%2Fdevices%2F", Err(ResourceError::EmptySegment));
    check_resource("h%2Fdevices%2Fd%2Fmodules", Err(ResourceError::BadShape));
    check_resource("h%2Fdevices%2Fd%2Fmodules%2Fm%2Fx", Err(ResourceError::BadShape));
    check_resource(
        "h%2Fdevices%2Fd%2Finputs%2Fm",
        Err(ResourceError::UnexpectedSegment {
            position: 3,
            found: "inputs".into(),
        }),
    );
    check_resource("h%FF", Err(ResourceError::NotUtf8));
}

#[test]
fn resources_grant_by_segment_prefix() {
    let device = ResourceUri::device("MyHub.azure-devices.net", "d1");
    let module = ResourceUri::module("h", "d1", "m1");
    let cases: [(&ResourceUri, &str, &str, Option<&str>, bool); 10] = [
        (&device, "myhub.azure-devices.net", "d1", None, true),
        (&device, "myhub.azure-devices.net", "d1", Some("m1"), true),
        (&device, "myhub.azure-devices.net", "d10", None, false),
        (&device, "myhub.azure-devices.net", "D1", None, false),
        (&device, "otherhub.azure-devices.net", "d1", None, false),
        (&module, "h", "d1", Some("m1"), true),
        (&module, "h", "d1", None, false),
        (&module, "h", "d1", Some("m2"), false),
        (&ResourceUri::hub("h"), "h", "any", None, true),
        (
            &ResourceUri::new("h", ResourceScope::AllDevices),
            "h",
            "any",
            Some("m"),
            true,
        ),
    ];
    for (resource, host, device_id, module_id, granted) in cases {
        assert_eq!(
            resource.grants(host, device_id, module_id),
            granted,
            "{resource} {host} {device_id} {module_id:?}"
        );
    }
    assert!(ResourceUri::hub("h").is_hub_level());
    assert!(!device.is_hub_level());
    assert_eq!(module.to_string(), "h/devices/d1/modules/m1");
    assert_eq!((module.device_id(), module.module_id()), (Some("d1"), Some("m1")));
}

#[test]
fn keys_and_tokens_never_print_secrets() {
    let key = key();
    assert_eq!(format!("{key:?}"), "SharedAccessKey(<redacted>)");
    assert_eq!(key.to_string(), "<redacted>");
    assert_eq!(key.expose_secret(), KEY);
    let token = SasToken::generate(&ResourceUri::device("h", "d"), &key, Some("device"), SE);
    let debug = format!("{token:?}");
    assert_eq!(
        debug,
        r#"SasToken { sr: "h%2Fdevices%2Fd", sig: "<redacted>", se: 1700000000, skn: Some("device") }"#
    );
    assert!(!debug.contains(&token.expose_secret()[40..60]));
}

#[test]
fn keys_are_strict_base64() {
    assert_eq!(
        SharedAccessKey::from_base64("not base64!")
            .unwrap_err()
            .to_string(),
        "the shared access key is not valid base64"
    );
    assert_eq!(
        SharedAccessKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
            .unwrap_err()
            .to_string(),
        "the shared access key is not valid base64"
    );
    assert_eq!(
        SharedAccessKey::from_base64("").unwrap_err().to_string(),
        "the shared access key is empty"
    );
    assert_eq!(
        SharedAccessKey::from_bytes(&(0..32).collect::<Vec<u8>>()).unwrap(),
        key()
    );
    assert_ne!(SharedAccessKey::from_bytes(&[1]).unwrap(), key());
}

#[test]
fn parse_and_render_round_trip() {
    let token = SasToken::generate(&ResourceUri::module("h", "d", "m"), &key(), Some("device"), SE);
    let parsed = SasToken::parse(&token.expose_secret()).unwrap();
    assert_eq!(parsed, token);
    assert_eq!(parsed.expiry(), SE);
    assert!(parsed.signature_matches(&key()));
    assert!(matches!(SasToken::parse("x"), Err(SasError::MissingScheme)));
}
