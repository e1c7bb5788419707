//! The message model: routing-query view, size, durable format, names per endpoint (spec §5).

use iothub_protocol::auth_method::{AuthMethod, AuthScope, AuthType};
use iothub_protocol::message::{
    MAX_MESSAGE_SIZE, Message, MessageSource, ServiceBusProperties, SystemProperty,
};
use iothub_protocol::timestamp::Timestamp;
use iothub_query::{Condition, MessageView, Outcome};

/// A telemetry message as the hub has it after stamping.
pub(crate) fn stamped() -> Message {
    let mut message = Message::new(br#"{"deviceId":"d1","windSpeed":12.5}"#.to_vec())
        .with_app_property("level", Some("critical"))
        .with_app_property("flag", None);
    let system = &mut message.system;
    system.message_id = Some("message_1".into());
    system.correlation_id = Some("correlation_1".into());
    system.content_type = Some("application/json".into());
    system.content_encoding = Some("utf-8".into());
    system.connection_device_id = Some("d1".into());
    system.connection_auth_method = Some(AuthMethod::new(AuthScope::Device, AuthType::Sas).to_json());
    system.connection_device_generation_id = Some("636930642531278483".into());
    system.enqueued_time = Some(Timestamp::parse("2019-05-10T06:06:32.7220000Z").unwrap());
    message
}

#[track_caller]
fn check_query(message: &Message, condition: &str, expected: Outcome) {
    let condition = Condition::compile(condition).unwrap();
    assert_eq!(condition.evaluate(message).outcome, expected, "{condition:?}");
}

#[test]
fn routing_queries_read_the_model() {
    let message = stamped();
    check_query(&message, "level = 'critical'", Outcome::True);
    check_query(&message, "LEVEL = 'critical'", Outcome::True);
    check_query(&message, "is_null(flag)", Outcome::True);
    check_query(
        &message,
        "$connectionDeviceId = 'd1' AND $CONTENTTYPE = 'application/json'",
        Outcome::True,
    );
    // Ordinal string comparison: `.7220000Z` sorts before `Z`, so compare at a coarser digit.
    check_query(&message, "$enqueuedTime > '2019-05-10T06:06:31Z'", Outcome::True);
    check_query(&message, "$enqueuedTime < '2019-05-10T06:06:33'", Outcome::True);
    check_query(
        &message,
        "$messageId = 'message_1' AND $correlationId = 'correlation_1'",
        Outcome::True,
    );
    check_query(
        &message,
        "$connectionDeviceGenerationId = '636930642531278483'",
        Outcome::True,
    );
    check_query(&message, "$body.windSpeed > 10", Outcome::True);
    check_query(&message, "is_defined($userId)", Outcome::False);
    check_query(&message, "is_defined($nonsense)", Outcome::False);
    assert_eq!(message.system_property("dt-subject"), None);
    assert_eq!(MessageView::content_type(&message), Some("application/json"));
    assert_eq!(MessageView::content_encoding(&message), Some("utf-8"));
    assert_eq!(MessageView::body(&message), message.body.as_slice());
}

#[test]
fn query_names_cover_every_property() {
    for property in SystemProperty::ALL {
        let name = property.query_name();
        assert_eq!(SystemProperty::from_query_name(name), Some(property));
        assert_eq!(
            SystemProperty::from_query_name(&name.to_uppercase()),
            Some(property)
        );
        if let Some(key) = property.mqtt_key() {
            assert_eq!(SystemProperty::from_mqtt_key(key), Some(property));
        }
    }
    assert_eq!(SystemProperty::from_mqtt_key("$.cdid"), None);
    assert_eq!(SystemProperty::from_mqtt_key("mid"), None);
}

/// DOC-MSG: body + system property values + application property names and values.
#[test]
fn counts_size_like_iot_hub() {
    let mut message = Message::new(vec![0; 10])
        .with_app_property("ab", Some("cde"))
        .with_app_property("f", None);
    assert_eq!(message.size(), 10 + 5 + 1);
    message.system.message_id = Some("1234".into());
    message.system.enqueued_time = Some(Timestamp::UNIX_EPOCH);
    assert_eq!(message.size(), 16 + 4 + 28);
    assert_eq!(MAX_MESSAGE_SIZE, 262_144);
}

#[test]
fn app_properties_are_ordered_and_settable() {
    let mut message = Message::new(Vec::new())
        .with_app_property("b", Some("1"))
        .with_app_property("a", Some("2"));
    message.set_app_property("b", None);
    message.set_app_property("c", Some("3".into()));
    assert_eq!(
        message.app_properties,
        [
            ("b".to_owned(), None),
            ("a".to_owned(), Some("2".to_owned())),
            ("c".to_owned(), Some("3".to_owned()))
        ]
    );
    assert_eq!(message.app_property("B"), Some(None));
    assert_eq!(message.app_property("z"), None);
}

/// The durable format: short stable names, unset fields omitted, body base64 in JSON.
#[test]
fn serializes_compactly_and_round_trips() {
    let mut message = stamped();
    message.system.message_source = MessageSource::DeviceLifecycleEvents;
    let json = serde_json::to_string(&message).unwrap();
    assert_eq!(
        json,
        r#"{"body":"eyJkZXZpY2VJZCI6ImQxIiwid2luZFNwZWVkIjoxMi41fQ==","app":[["level","critical"],["flag",null]],"sys":{"mid":"message_1","cid":"correlation_1","ct":"application/json","ce":"utf-8","cdid":"d1","cam":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\",\"acceptingIpFilterRule\":null}","cgid":"636930642531278483","enq":"2019-05-10T06:06:32.7220000Z","src":"deviceLifecycleEvents"}}"#
    );
    assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), message);
    assert_eq!(
        serde_json::to_string(&Message::new(b"x".to_vec())).unwrap(),
        r#"{"body":"eA==","sys":{}}"#
    );
    // Unknown fields are ignored; missing ones default.
    let old: Message =
        serde_json::from_str(r#"{"body":"","sys":{"mid":"1","future":true},"next":1}"#).unwrap();
    assert_eq!(old.system.message_id.as_deref(), Some("1"));
    assert!(serde_json::from_str::<Message>(r#"{"body":"!!","sys":{}}"#).is_err());
    assert!(serde_json::from_str::<Message>(r#"{"body":"","sys":{"enq":"yesterday"}}"#).is_err());
}

#[test]
fn debug_hides_the_body() {
    let debug = format!("{:?}", Message::new(b"secret payload".to_vec()));
    assert!(
        debug.starts_with("Message { body: <14 bytes>, app_properties: [], system: SystemProperties {"),
        "{debug}"
    );
}

/// DOC-MSG "System Property Names", Storage column, in the order the DOC-ENRICH record shows.
#[test]
fn names_storage_system_properties() {
    let mut message = stamped();
    message.system.user_id = Some("u".into());
    message.system.connection_module_id = Some("m".into());
    message.system.dt_subject = Some("thermostat1".into());
    message.system.to = Some("ignored".into());
    let names: Vec<&str> = message
        .storage_system_properties()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "messageId",
            "correlationId",
            "userId",
            "connectionDeviceId",
            "connectionModuleId",
            "connectionAuthMethod",
            "connectionDeviceGenerationId",
            "contentType",
            "contentEncoding",
            "enqueuedTime",
            "dt-subject",
        ]
    );
}

/// DOC-MSG "System Property Names", Service Bus column; enqueuedTime is N/A there.
#[test]
fn names_service_bus_properties() {
    let mut message = stamped();
    message.system.creation_time = Some("2021-04-21T11:30:16Z".into());
    message.system.dt_dataschema = Some("dtmi:x;1".into());
    let auth = message.system.connection_auth_method.clone().unwrap();
    assert_eq!(
        message.service_bus_properties(),
        ServiceBusProperties {
            message_id: Some("message_1"),
            correlation_id: Some("correlation_1"),
            content_type: Some("application/json"),
            content_encoding: Some("utf-8"),
            user_id: None,
            application: vec![
                ("iothub-connection-device-id", Some("d1")),
                ("iothub-connection-auth-method", Some(auth.as_str())),
                ("iothub-connection-auth-generation-id", Some("636930642531278483")),
                ("dt-dataschema", Some("dtmi:x;1")),
                ("level", Some("critical")),
                ("flag", None),
                ("iothub-creation-time-utc", Some("2021-04-21T11:30:16Z")),
            ],
        }
    );
    let names = [
        (SystemProperty::MessageId, "message-id", "messageId", "MessageId"),
        (SystemProperty::UserId, "user-id", "userId", "UserId"),
        (
            SystemProperty::ConnectionDeviceId,
            "iothub-connection-device-id",
            "connectionDeviceId",
            "iothub-connection-device-id",
        ),
        (
            SystemProperty::ConnectionModuleId,
            "iothub-connection-module-id",
            "connectionModuleId",
            "iothub-connection-module-id",
        ),
        (
            SystemProperty::ConnectionDeviceGenerationId,
            "iothub-connection-auth-generation-id",
            "connectionDeviceGenerationId",
            "iothub-connection-auth-generation-id",
        ),
        (
            SystemProperty::ConnectionAuthMethod,
            "iothub-connection-auth-method",
            "connectionAuthMethod",
            "iothub-connection-auth-method",
        ),
        (
            SystemProperty::ContentType,
            "content-type",
            "contentType",
            "ContentType",
        ),
        (
            SystemProperty::ContentEncoding,
            "content-encoding",
            "contentEncoding",
            "ContentEncoding",
        ),
        (
            SystemProperty::CorrelationId,
            "correlation-id",
            "correlationId",
            "CorrelationId",
        ),
        (
            SystemProperty::DtDataSchema,
            "dt-dataschema",
            "dt-dataschema",
            "dt-dataschema",
        ),
        (
            SystemProperty::DtSubject,
            "dt-subject",
            "dt-subject",
            "dt-subject",
        ),
    ];
    for (property, event_hubs, storage, service_bus) in names {
        assert_eq!(
            (
                property.event_hubs_name(),
                property.storage_name(),
                property.service_bus_name()
            ),
            (Some(event_hubs), Some(storage), Some(service_bus))
        );
    }
    let enqueued = SystemProperty::EnqueuedTime;
    assert_eq!(
        (
            enqueued.event_hubs_name(),
            enqueued.storage_name(),
            enqueued.service_bus_name()
        ),
        (Some("iothub-enqueuedtime"), Some("enqueuedTime"), None)
    );
}

#[test]
fn message_sources_have_wire_and_routing_names() {
    let cases = [
        (MessageSource::Telemetry, "Telemetry", "DeviceMessages"),
        (
            MessageSource::TwinChangeEvents,
            "twinChangeEvents",
            "TwinChangeEvents",
        ),
        (
            MessageSource::DeviceLifecycleEvents,
            "deviceLifecycleEvents",
            "DeviceLifecycleEvents",
        ),
        (
            MessageSource::DeviceConnectionStateEvents,
            "deviceConnectionStateEvents",
            "DeviceConnectionStateEvents",
        ),
        (
            MessageSource::DeviceJobLifecycleEvents,
            "deviceJobLifecycleEvents",
            "DeviceJobLifecycleEvents",
        ),
        (
            MessageSource::DigitalTwinChangeEvents,
            "digitalTwinChangeEvents",
            "DigitalTwinChangeEvents",
        ),
    ];
    for (source, wire, routing) in cases {
        assert_eq!((source.as_str(), source.routing_source()), (wire, routing));
        assert_eq!(MessageSource::from_wire(wire), Some(source));
        assert_eq!(
            MessageSource::from_routing_source(&routing.to_lowercase()),
            Some(source)
        );
        assert_eq!(serde_json::to_string(&source).unwrap(), format!("\"{wire}\""));
    }
    assert_eq!(MessageSource::from_routing_source("Invalid"), None);
}
