//! Connection strings: each shape parses, and each mistake names the key at fault (never a secret).

use std::time::Duration;

use queue::{AmqpProfile, ConnectionConfig, Error, ServiceBusAuth, Synchronous};

#[track_caller]
fn bad(text: &str, key: &str, reason_part: &str) {
    match ConnectionConfig::parse(text) {
        Err(Error::ConnectionString { key: k, reason }) => {
            assert_eq!(k, key, "{text}: wrong key ({reason})");
            assert!(
                reason.contains(reason_part),
                "{text}: reason {reason:?} lacks {reason_part:?}"
            );
            let shown = Error::ConnectionString { key: k, reason }.to_string();
            for secret in ["s3cret", "SAS_KEY_VALUE"] {
                assert!(!shown.contains(secret), "{text}: error shows a secret: {shown}");
            }
        }
        other => panic!("{text}: expected a connection-string error naming {key}, got {other:?}"),
    }
}

#[test]
fn malformed_strings_name_the_bad_key() {
    bad("", "scheme", "expected");
    bad("http://x", "scheme", "expected");
    bad("sqlite://", "path", "empty");
    bad("sqlite://q.db?synchronous=sometimes", "synchronous", "full");
    bad("sqlite://q.db?lock=5s", "lock", "unknown key");
    bad("sqlite://q.db?poll_interval=soon", "poll_interval", "duration");
    bad("sqlite://q.db?max_message_size=0", "max_message_size", "positive");
    bad("sqlite://q.db?poll_interval", "poll_interval", "missing value");
    bad("amqp://guest:s3cret@host?profile=kafka", "profile", "rabbitmq");
    bad("amqp://guest:s3cret@host?credit=0", "credit", "positive");
    bad("amqp://guest:s3cret@host?vhost=x", "vhost", "unknown key");
    bad("amqp://guest:s3cret@:5672", "url", "");
    bad(
        "SharedAccessKeyName=Root;SharedAccessKey=SAS_KEY_VALUE",
        "Endpoint",
        "missing",
    );
    bad(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=SAS_KEY_VALUE",
        "SharedAccessKeyName",
        "missing",
    );
    bad(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root",
        "SharedAccessKey",
        "missing",
    );
    bad(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=",
        "SharedAccessKey",
        "empty",
    );
    bad(
        "Endpoint=http://ns/;SharedAccessKeyName=Root;SharedAccessKey=SAS_KEY_VALUE",
        "Endpoint",
        "sb://",
    );
    bad(
        "Endpoint=nonsense;SharedAccessKeyName=Root;SharedAccessKey=SAS_KEY_VALUE",
        "Endpoint",
        "sb://",
    );
    bad(
        "Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=SAS_KEY_VALUE;TransportType=AmqpWebSockets",
        "TransportType",
        "unknown key",
    );
    bad(
        "Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=yes",
        "UseDevelopmentEmulator",
        "true or false",
    );
    bad(
        "Endpoint=sb://ns/;SharedAccessKeyName=Root;SAS_KEY_VALUE",
        "segment 3",
        "Key=Value",
    );
}

#[test]
fn sqlite_urls() {
    let ConnectionConfig::Sqlite(c) =
        ConnectionConfig::parse("sqlite://data/queues.db?synchronous=normal&poll_interval=250ms").unwrap()
    else {
        panic!("not sqlite")
    };
    assert_eq!(c.path.to_str(), Some("data/queues.db"));
    assert_eq!(c.synchronous, Synchronous::Normal);
    assert_eq!(c.poll_interval, Duration::from_millis(250));
    let ConnectionConfig::Sqlite(c) = ConnectionConfig::parse("sqlite:///var/lib/hub/q.db").unwrap() else {
        panic!("not sqlite")
    };
    assert_eq!(c.path.to_str(), Some("/var/lib/hub/q.db"));
    assert_eq!(c.synchronous, Synchronous::Full);
    // URL schemes match in any case.
    let ConnectionConfig::Sqlite(c) = ConnectionConfig::parse("SQLite://q.db").unwrap() else {
        panic!("not sqlite")
    };
    assert_eq!(c.path.to_str(), Some("q.db"));
}

#[test]
fn amqp_urls() {
    let ConnectionConfig::Amqp(c) =
        ConnectionConfig::parse("amqp://guest:s%40cret@127.0.0.1:5673/prod?credit=10").unwrap()
    else {
        panic!("not amqp")
    };
    assert_eq!(
        (c.host.as_str(), c.port, c.user.as_str()),
        ("127.0.0.1", 5673, "guest")
    );
    assert_eq!(c.password.expose(), "s@cret");
    assert_eq!(c.vhost, "prod");
    assert_eq!(c.profile, AmqpProfile::RabbitMq);
    assert_eq!(c.credit, 10);
    assert!(!format!("{c:?}").contains("s@cret"), "Debug hides the password");
    let ConnectionConfig::Amqp(c) =
        ConnectionConfig::parse("amqps://u:p@broker.example?profile=generic").unwrap()
    else {
        panic!("not amqp")
    };
    assert!(c.tls);
    assert_eq!(
        (c.port, c.vhost.as_str(), c.profile),
        (5671, "/", AmqpProfile::Generic)
    );
    let ConnectionConfig::Amqp(c) = ConnectionConfig::parse("AMQPS://u:p@broker:5671/vhost").unwrap() else {
        panic!("not amqp")
    };
    assert!(c.tls);
    assert_eq!((c.host.as_str(), c.vhost.as_str()), ("broker", "vhost"));
}

#[test]
fn service_bus_strings() {
    let text = "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;\
                SharedAccessKey=SAS_KEY_VALUE+/=;EntityPath=critical";
    let ConnectionConfig::ServiceBus(c) = ConnectionConfig::parse(text).unwrap() else {
        panic!("not sb")
    };
    assert_eq!(
        (c.host.as_str(), c.port, c.emulator),
        ("contoso.servicebus.windows.net", 5671, false)
    );
    assert_eq!(c.entity_path.as_deref(), Some("critical"));
    let ServiceBusAuth::Key { key_name, key } = &c.auth else {
        panic!("not a key")
    };
    assert_eq!(
        (key_name.as_str(), key.expose()),
        ("RootManageSharedAccessKey", "SAS_KEY_VALUE+/=")
    );
    assert!(!format!("{c:?}").contains("SAS_KEY_VALUE"), "Debug hides the key");

    // The emulator's string, keys in any case, trailing separator.
    let emulator = "endpoint=sb://localhost;sharedaccesskeyname=RootManageSharedAccessKey;\
                    SHAREDACCESSKEY=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";
    let ConnectionConfig::ServiceBus(c) = ConnectionConfig::parse(emulator).unwrap() else {
        panic!("not sb")
    };
    assert_eq!((c.host.as_str(), c.port, c.emulator), ("localhost", 5672, true));
    assert_eq!(c.entity_path, None);

    let sas = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=z";
    let ConnectionConfig::ServiceBus(c) = ConnectionConfig::parse(sas).unwrap() else {
        panic!("not sb")
    };
    assert!(matches!(c.auth, ServiceBusAuth::Token(_)));
}
