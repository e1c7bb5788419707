//! Connection strings (spec §3, after the Python SDK's `connection_string.py`).

use iothub_protocol::connection_string::{
    ConnectionString, DeviceConnectionString, DeviceCredential, ServiceConnectionString,
};
use iothub_protocol::sas::{ResourceUri, SasToken, SharedAccessKey};

use crate::KEY;

/// Parses `text`, re-renders it with secrets, and compares with `expected` (`Err`: the message).
#[track_caller]
fn check(text: &str, expected: Result<&str, &str>) {
    let actual = text.parse::<ConnectionString>();
    match (actual, expected) {
        (Ok(cs), Ok(rendered)) => {
            assert_eq!(cs.expose_secret(), rendered);
            // What it renders parses back to the same thing.
            assert_eq!(rendered.parse::<ConnectionString>().unwrap(), cs);
        }
        (Err(error), Err(message)) => assert_eq!(error.to_string(), message),
        (actual, expected) => panic!("{text}: got {actual:?}, expected {expected:?}"),
    }
}

#[test]
fn parses_device_and_service_strings() {
    let device = format!("HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey={KEY}");
    check(&device, Ok(&device));
    check(&format!("{device};"), Ok(&device));
    check(
        &format!("SharedAccessKey={KEY};GatewayHostName=localhost;ModuleId=m1;DeviceId=device1;HostName=h"),
        Ok(&format!(
            "HostName=h;DeviceId=device1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=localhost"
        )),
    );
    check(
        "HostName=h;DeviceId=d;x509=true",
        Ok("HostName=h;DeviceId=d;x509=true"),
    );
    check(
        &format!("HostName=h;DeviceId=d;x509=False;SharedAccessKey={KEY}"),
        Ok(&format!("HostName=h;DeviceId=d;SharedAccessKey={KEY}")),
    );
    let token = "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";
    check(
        &format!("HostName=h;DeviceId=d;SharedAccessSignature={token}"),
        Ok(&format!("HostName=h;DeviceId=d;SharedAccessSignature={token}")),
    );
    let service =
        format!("HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}");
    check(&service, Ok(&service));
}

#[test]
fn names_the_offending_key() {
    let cases: [(String, &str); 13] = [
        (
            "HostName=h;DeviceId=d".into(),
            "connection string has no `SharedAccessKey`",
        ),
        (
            format!("DeviceId=d;SharedAccessKey={KEY}"),
            "connection string has no `HostName`",
        ),
        (
            format!("HostName=;DeviceId=d;SharedAccessKey={KEY}"),
            "connection string has no `HostName`",
        ),
        (
            format!("HostName=h;SharedAccessKey={KEY}"),
            "connection string has no `SharedAccessKeyName`",
        ),
        (
            "HostName=h;SharedAccessKeyName=p".into(),
            "connection string has no `SharedAccessKey`",
        ),
        (
            format!("HostName=h;deviceid=d;SharedAccessKey={KEY}"),
            "unknown connection string key `deviceid` (known: HostName, DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, x509, GatewayHostName)",
        ),
        (
            format!("HostName=h;DeviceId=d;DeviceId=e;SharedAccessKey={KEY}"),
            "connection string key `DeviceId` appears twice",
        ),
        (
            "HostName=h;DeviceId=d;oops".into(),
            "connection string part 3 is not `Key=Value`",
        ),
        (
            format!("HostName=h;DeviceId=d;x509=true;SharedAccessKey={KEY}"),
            "connection string mixes authentication schemes: use one of SharedAccessKey, SharedAccessSignature, x509=true",
        ),
        (
            "HostName=h;DeviceId=d;x509=yes".into(),
            "connection string value of `x509` must be `true` or `false`",
        ),
        (
            "HostName=h;DeviceId=d;SharedAccessKey=secret!".into(),
            "connection string value of `SharedAccessKey` the shared access key is not valid base64",
        ),
        (
            "HostName=h;DeviceId=d;SharedAccessSignature=sig".into(),
            "connection string value of `SharedAccessSignature` a SAS token must start with `SharedAccessSignature ` followed by its fields",
        ),
        (
            format!("HostName=h;ModuleId=m;SharedAccessKeyName=p;SharedAccessKey={KEY}"),
            "connection string key `ModuleId` needs a `DeviceId`",
        ),
    ];
    for (text, message) in &cases {
        check(text, Err(message));
        assert!(!message.contains("secret!"));
    }
}

#[test]
fn display_and_debug_redact_secrets() {
    let device: DeviceConnectionString = format!("HostName=h;DeviceId=d;SharedAccessKey={KEY}")
        .parse()
        .unwrap();
    assert_eq!(
        device.to_string(),
        "HostName=h;DeviceId=d;SharedAccessKey=<redacted>"
    );
    assert!(!format!("{device:?}").contains(KEY));
    let service: ServiceConnectionString = format!("HostName=h;SharedAccessKeyName=p;SharedAccessKey={KEY}")
        .parse()
        .unwrap();
    assert_eq!(
        service.to_string(),
        "HostName=h;SharedAccessKeyName=p;SharedAccessKey=<redacted>"
    );
    assert!(!format!("{service:?}").contains(KEY));
    let any: ConnectionString = service.expose_secret().parse().unwrap();
    assert_eq!(
        any.to_string(),
        "HostName=h;SharedAccessKeyName=p;SharedAccessKey=<redacted>"
    );
    assert_eq!(any.host_name(), "h");
}

#[test]
fn typed_parsers_refuse_the_other_kind() {
    let service = format!("HostName=h;SharedAccessKeyName=p;SharedAccessKey={KEY}");
    assert_eq!(
        service.parse::<DeviceConnectionString>().unwrap_err().to_string(),
        "connection string has no `DeviceId`"
    );
    let device = format!("HostName=h;DeviceId=d;SharedAccessKey={KEY}");
    assert!(device.parse::<ServiceConnectionString>().is_err());
}

/// The token a device connection string signs is the spec's worked example (spec §3).
#[test]
fn signs_tokens_from_the_connection_string() {
    let cs: DeviceConnectionString = format!(
        "HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey={KEY};GatewayHostName=localhost"
    )
    .parse()
    .unwrap();
    assert_eq!(cs.connect_host(), "localhost");
    assert_eq!(
        cs.resource_uri(),
        ResourceUri::device("myhub.azure-devices.net", "device1")
    );
    assert_eq!(
        cs.sas_token(1_700_000_000).unwrap().expose_secret(),
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000"
    );
    let service: ServiceConnectionString =
        format!("HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}")
            .parse()
            .unwrap();
    assert_eq!(
        service.sas_token(1_700_000_000).expose_secret(),
        "SharedAccessSignature sr=myhub.azure-devices.net&sig=iIzEw6hi6GK79RY5jNXO6QeQkSL%2FAx4zTmy44X2G1VY%3D&se=1700000000&skn=iothubowner"
    );
    let x509: DeviceConnectionString = "HostName=h;DeviceId=d;x509=true".parse().unwrap();
    assert_eq!(x509.sas_token(1), None);
}

#[test]
fn builds_connection_strings() {
    let key = SharedAccessKey::from_base64(KEY).unwrap();
    let cs = DeviceConnectionString::new("h", "d", DeviceCredential::SharedAccessKey(key.clone()))
        .unwrap()
        .with_module_id("m")
        .unwrap()
        .with_gateway_host_name("localhost")
        .unwrap();
    assert_eq!(
        cs.expose_secret(),
        format!("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey={KEY};GatewayHostName=localhost")
    );
    assert_eq!(
        (cs.host_name(), cs.device_id(), cs.module_id()),
        ("h", "d", Some("m"))
    );
    assert_eq!(cs.resource_uri(), ResourceUri::module("h", "d", "m"));
    assert_eq!(cs.credential(), &DeviceCredential::SharedAccessKey(key.clone()));
    assert_eq!(
        DeviceConnectionString::new("h", "a;b", DeviceCredential::X509)
            .unwrap_err()
            .to_string(),
        "connection string value of `DeviceId` must not contain `;`"
    );
    assert_eq!(
        ServiceConnectionString::new("h", "", key)
            .unwrap_err()
            .to_string(),
        "connection string has no `SharedAccessKeyName`"
    );
    let token = SasToken::parse("SharedAccessSignature sr=h&sig=AA%3D%3D&se=1").unwrap();
    let with_token =
        DeviceConnectionString::new("h", "d", DeviceCredential::SharedAccessSignature(token.clone()))
            .unwrap();
    assert_eq!(with_token.sas_token(99), Some(token));
}
