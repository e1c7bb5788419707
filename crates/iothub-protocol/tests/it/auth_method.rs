//! `iothub-connection-auth-method` (spec §5).

use iothub_protocol::auth_method::{AuthMethod, AuthScope, AuthType};

#[test]
fn renders_and_parses_the_observed_json() {
    let observed = r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#;
    let method = AuthMethod::new(AuthScope::Device, AuthType::Sas);
    assert_eq!(method.to_json(), observed);
    assert_eq!(method.to_string(), observed);
    assert_eq!(observed.parse::<AuthMethod>().unwrap(), method);

    let cases = [
        (
            AuthScope::Module,
            AuthType::SymKey,
            r#"{"scope":"module","type":"symkey","issuer":"iothub","acceptingIpFilterRule":null}"#,
        ),
        (
            AuthScope::Hub,
            AuthType::X509,
            r#"{"scope":"hub","type":"x509","issuer":"iothub","acceptingIpFilterRule":null}"#,
        ),
    ];
    for (scope, kind, json) in cases {
        assert_eq!(AuthMethod::new(scope, kind).to_json(), json);
        assert_eq!(json.parse::<AuthMethod>().unwrap(), AuthMethod::new(scope, kind));
    }
    // The documented shape without the rule field.
    let short: AuthMethod = r#"{"scope":"device","type":"x509","issuer":"iothub"}"#.parse().unwrap();
    assert_eq!(short, AuthMethod::new(AuthScope::Device, AuthType::X509));
    let with_rule: AuthMethod =
        r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":"office"}"#
            .parse()
            .unwrap();
    assert_eq!(with_rule.accepting_ip_filter_rule.as_deref(), Some("office"));
    let error = r#"{"scope":"planet","type":"sas","issuer":"iothub"}"#
        .parse::<AuthMethod>()
        .unwrap_err();
    assert!(
        error.to_string().starts_with(
            "`iothub-connection-auth-method` is not the expected JSON: unknown variant `planet`"
        ),
        "{error}"
    );
}
