//! Publish topics and subscription filters (spec §2).

use iothub_protocol::Message;
use iothub_protocol::mqtt::{
    PropertyBagError, PublishTopic, SubscriptionTopic, TopicError, cloud_to_device_filter,
    module_inputs_filter, parse_publish_topic, parse_subscription, telemetry_topic, telemetry_topic_base,
};

fn telemetry(device: &str, module: Option<&str>, properties: &[(&str, Option<&str>)]) -> PublishTopic {
    PublishTopic::Telemetry {
        device_id: device.into(),
        module_id: module.map(Into::into),
        properties: properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect(),
    }
}

#[track_caller]
fn check(topic: &str, expected: Result<PublishTopic, TopicError>) {
    assert_eq!(parse_publish_topic(topic), expected, "{topic}");
}

#[test]
fn classifies_publish_topics() {
    let none: &[(&str, Option<&str>)] = &[];
    check("devices/d1/messages/events/", Ok(telemetry("d1", None, none)));
    check("devices/d1/messages/events", Ok(telemetry("d1", None, none)));
    check(
        "devices/d1/messages/events/a=1/",
        Ok(telemetry("d1", None, &[("a", Some("1"))])),
    );
    check(
        "devices/d1/modules/m1/messages/events/a=1",
        Ok(telemetry("d1", Some("m1"), &[("a", Some("1"))])),
    );
    // The Python SDK escapes ids in topics.
    check(
        "devices/dev%40ice/messages/events/",
        Ok(telemetry("dev@ice", None, none)),
    );
    // DOC-MQTT's example, with a literal `$`.
    check(
        "devices/d1/messages/events/$.ct=application%2Fjson%3Bcharset%3Dutf-8",
        Ok(telemetry(
            "d1",
            None,
            &[("$.ct", Some("application/json;charset=utf-8"))],
        )),
    );
    // A C device with unescaped values: the first `/` ends the bag.
    check(
        "devices/d1/messages/events/$.ct=application/json&$.ce=utf-8",
        Ok(telemetry("d1", None, &[("$.ct", Some("application"))])),
    );
    check(
        "devices/d1/messages/events/a==b",
        Err(TopicError::PropertyBag(PropertyBagError::SecondEquals(
            "a".into(),
        ))),
    );
    check(
        "$iothub/twin/GET/?$rid=42",
        Ok(PublishTopic::TwinGet {
            request_id: Some("42".into()),
        }),
    );
    check(
        "$iothub/twin/GET/",
        Ok(PublishTopic::TwinGet { request_id: None }),
    );
    check(
        "$iothub/twin/PATCH/properties/reported/?$rid=a%2Fb&$version=3",
        Ok(PublishTopic::TwinReportedPatch {
            request_id: Some("a/b".into()),
        }),
    );
    check(
        "$iothub/methods/res/200/?%24rid=7",
        Ok(PublishTopic::MethodResponse {
            status: "200".into(),
            request_id: Some("7".into()),
        }),
    );
    for unknown in [
        "",
        "devices",
        "devices/d1",
        "devices/d1/messages/eventsX",
        "devices/d1/messages/devicebound/",
        "devices//messages/events/",
        "devices/d1/modules//messages/events/",
        "devices/d1/modules/m1",
        "devices/d1/inputs/x",
        "$iothub/twin/res/200/?$rid=1",
        "$iothub/methods/POST/m/?$rid=1",
        "$iothub/methods/res//?$rid=1",
        "$iothub/telemetry",
        "other/topic",
    ] {
        check(unknown, Ok(PublishTopic::Unknown));
    }
}

#[test]
fn classifies_subscription_filters() {
    let cases = [
        (
            "devices/d1/messages/devicebound/#",
            SubscriptionTopic::CloudToDevice {
                device_id: "d1".into(),
            },
        ),
        (
            "devices/dev%40ice/messages/devicebound/#",
            SubscriptionTopic::CloudToDevice {
                device_id: "dev@ice".into(),
            },
        ),
        (
            "devices/d1/modules/m1/inputs/#",
            SubscriptionTopic::ModuleInputs {
                device_id: "d1".into(),
                module_id: "m1".into(),
            },
        ),
        ("$iothub/twin/res/#", SubscriptionTopic::TwinResponses),
        (
            "$iothub/twin/PATCH/properties/desired/#",
            SubscriptionTopic::TwinDesiredPatches,
        ),
        ("$iothub/methods/POST/#", SubscriptionTopic::MethodRequests),
        ("devices/+/messages/devicebound/#", SubscriptionTopic::Unknown),
        ("devices/#", SubscriptionTopic::Unknown),
        ("devices/d1/messages/devicebound/+", SubscriptionTopic::Unknown),
        ("devices/d1/messages/events/", SubscriptionTopic::Unknown),
        ("$iothub/twin/#", SubscriptionTopic::Unknown),
        ("#", SubscriptionTopic::Unknown),
    ];
    for (filter, expected) in cases {
        assert_eq!(parse_subscription(filter), expected, "{filter}");
    }
    assert_eq!(
        cloud_to_device_filter("d 1"),
        "devices/d%201/messages/devicebound/#"
    );
    assert_eq!(module_inputs_filter("d", "m"), "devices/d/modules/m/inputs/#");
    assert_eq!(
        parse_subscription(&module_inputs_filter("a/b", "m")),
        SubscriptionTopic::ModuleInputs {
            device_id: "a/b".into(),
            module_id: "m".into()
        }
    );
}

/// Spec §2 [computed]: the Python SDK's topic for message_id `msg-1`, correlation_id `corr 1`,
/// ct `application/json`, ce `utf-8`, props `{temperatureAlert: "true", unit: "°C/s"}`.
#[test]
fn round_trips_the_python_sdk_topic() {
    const TOPIC: &str = "devices/device1/messages/events/%24.mid=msg-1&%24.cid=corr%201&%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=true&unit=%C2%B0C%2Fs";
    let mut message = Message::new(b"{}".to_vec())
        .with_app_property("temperatureAlert", Some("true"))
        .with_app_property("unit", Some("°C/s"));
    message.system.message_id = Some("msg-1".into());
    message.system.correlation_id = Some("corr 1".into());
    message.system.content_type = Some("application/json".into());
    message.system.content_encoding = Some("utf-8".into());
    assert_eq!(telemetry_topic("device1", None, &message), TOPIC);

    let Ok(PublishTopic::Telemetry {
        device_id,
        module_id,
        properties,
    }) = parse_publish_topic(TOPIC)
    else {
        panic!("not telemetry");
    };
    assert_eq!((device_id.as_str(), module_id), ("device1", None));
    assert_eq!(Message::from_property_bag(b"{}".to_vec(), properties), message);
}

#[test]
fn builds_topic_bases() {
    assert_eq!(telemetry_topic_base("d1", None), "devices/d1/messages/events/");
    assert_eq!(
        telemetry_topic_base("d/1", Some("m 1")),
        "devices/d%2F1/modules/m%201/messages/events/"
    );
    assert_eq!(
        telemetry_topic("d", Some("m"), &Message::new(Vec::new())),
        "devices/d/modules/m/messages/events/"
    );
}
