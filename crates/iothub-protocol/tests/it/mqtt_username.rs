//! CONNECT usernames (spec §1 "CONNECT fields", edgeHub's `MqttUsernameParser`).

use iothub_protocol::mqtt::{Username, UsernameError};

fn username(host: &str, device: &str, module: Option<&str>, api: &str) -> Username {
    Username {
        host: host.into(),
        device_id: device.into(),
        module_id: module.map(Into::into),
        api_version: api.into(),
        device_client_type: None,
        model_id: None,
        auth_chain: None,
    }
}

#[track_caller]
fn check(text: &str, expected: Result<Username, UsernameError>) {
    assert_eq!(Username::parse(text), expected, "{text}");
}

#[test]
fn parses_the_documented_forms() {
    let h = "contoso.azure-devices.net";
    check(
        "contoso.azure-devices.net/MyDevice01/?api-version=2021-04-12",
        Ok(username(h, "MyDevice01", None, "2021-04-12")),
    );
    check(
        "contoso.azure-devices.net/MyDevice01/m1/?api-version=2021-04-12",
        Ok(username(h, "MyDevice01", Some("m1"), "2021-04-12")),
    );
    // DOC-MQTT-2017: no `?`.
    check(
        "contoso.azure-devices.net/MyDevice01/api-version=2016-11-14",
        Ok(username(h, "MyDevice01", None, "2016-11-14")),
    );
    check(
        "contoso.azure-devices.net/MyDevice01/m1/api-version=2016-11-14&DeviceClientType=x",
        Ok(Username {
            device_client_type: Some("x".into()),
            ..username(h, "MyDevice01", Some("m1"), "2016-11-14")
        }),
    );
    // `?` is a valid device id character; only a leading `?` on the last segment starts the query.
    check(
        "h/dev?ice/?api-version=1",
        Ok(username("h", "dev?ice", None, "1")),
    );
    // The first of a repeated key wins; unknown keys are ignored; values are percent-decoded.
    check(
        "h/d/?x=1&api-version=a%2Bb&api-version=2&model-id=dtmi%3Acom%3Aexample%3Bthermostat%3B1&auth-chain=d%3Bp",
        Ok(Username {
            model_id: Some("dtmi:com:example;thermostat;1".into()),
            auth_chain: Some("d;p".into()),
            ..username("h", "d", None, "a+b")
        }),
    );
}

#[test]
fn refuses_bad_usernames() {
    check("h/d/?DeviceClientType=x", Err(UsernameError::NoApiVersion));
    check("h/d/?api-version=", Err(UsernameError::NoApiVersion));
    check("h/d/?api-version= ", Err(UsernameError::NoApiVersion));
    check("h/d/?api-version", Err(UsernameError::NoApiVersion));
    check("h/d", Err(UsernameError::Shape));
    check("h/d/x", Err(UsernameError::Shape));
    check("h/?api-version=1", Err(UsernameError::Shape));
    check("h/d/m/x/?api-version=1", Err(UsernameError::Shape));
    check("", Err(UsernameError::Shape));
    check("/d/?api-version=1", Err(UsernameError::NoHost));
    check("h/ /?api-version=1", Err(UsernameError::NoDeviceId));
    check("h/d//?api-version=1", Err(UsernameError::NoModuleId));
    assert_eq!(
        UsernameError::Shape.to_string(),
        "the MQTT username must be `{host}/{deviceId}/?api-version=...` or `{host}/{deviceId}/{moduleId}/?api-version=...`"
    );
}

/// Spec §8 [computed]: the Python SDK's username, parsed and re-rendered byte for byte.
#[test]
fn round_trips_the_python_sdk_username() {
    let text = "myhub.azure-devices.net/device1/?api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0%283.10.12%3BLinux%20%231%20SMP%3Bx86_64%29";
    let parsed = Username::parse(text).unwrap();
    assert_eq!(
        parsed,
        Username {
            device_client_type: Some("azure-iot-device-iothub-py/2.14.0(3.10.12;Linux #1 SMP;x86_64)".into()),
            ..username("myhub.azure-devices.net", "device1", None, "2019-10-01")
        }
    );
    assert_eq!(parsed.to_string(), text);
    let module = username("h", "d", Some("m"), "2021-04-12");
    assert_eq!(module.to_string(), "h/d/m/?api-version=2021-04-12");
    assert_eq!(module.to_string().parse::<Username>(), Ok(module));
}
