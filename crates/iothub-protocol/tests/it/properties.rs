//! Property tests: decoders never panic on arbitrary text, encoders round-trip through decoders.

use iothub_protocol::Message;
use iothub_protocol::connection_string::ConnectionString;
use iothub_protocol::mqtt::{
    Username, decode_property_bag, encode_property_bag, parse_publish_topic, parse_subscription,
};
use iothub_protocol::sas::SasToken;
use iothub_protocol::storage_record::StorageRecord;
use iothub_protocol::timestamp::Timestamp;
use proptest::prelude::*;

/// Text that often looks like the real thing.
fn wireish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z$%.=&/+0-9A-F?#]{0,40}",
        "(devices/[a-z0-9%]{0,4}/(modules/[a-z]{0,2}/)?messages/events/)?[a-z$%.=&/0-9A-F]{0,30}",
        "SharedAccessSignature [a-zA-Z=&%0-9]{0,60}",
        "[A-Za-z]{0,12}=[A-Za-z=;]{0,20}(;[A-Za-z]{0,12}=[A-Za-z=]{0,20}){0,4}",
    ]
}

/// Unique, non-empty names with optional values; any characters.
fn pairs() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    prop::collection::vec((".{1,12}", prop::option::of(".{0,12}")), 0..8).prop_map(|pairs| {
        let mut unique: Vec<(String, Option<String>)> = Vec::new();
        for (name, value) in pairs {
            if !unique.iter().any(|(known, _)| *known == name) {
                unique.push((name, value));
            }
        }
        unique
    })
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.9999999Z in 100 ns ticks since the Unix epoch.
const FIRST_TICK: i64 = -62_135_596_800 * 10_000_000;
const LAST_TICK: i64 = 253_402_300_800 * 10_000_000 - 1;

proptest! {
    #[test]
    fn decoders_never_panic(text in wireish()) {
        let _ = decode_property_bag(&text);
        let _ = parse_publish_topic(&text);
        let _ = parse_subscription(&text);
        let _ = Username::parse(&text);
        let _ = SasToken::parse(&text);
        let _ = text.parse::<ConnectionString>();
        let _ = Timestamp::parse(&text);
        let _ = StorageRecord::parse(&text);
    }

    #[test]
    fn property_bags_round_trip(pairs in pairs()) {
        let encoded = encode_property_bag(pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
        prop_assert!(!encoded.contains('/'));
        prop_assert_eq!(decode_property_bag(&encoded).unwrap(), pairs);
    }

    #[test]
    fn telemetry_topics_round_trip(device in ".{1,10}", pairs in pairs(), mid in prop::option::of(".{1,10}")) {
        let mut message = Message::new(Vec::new());
        message.system.message_id = mid;
        message.app_properties = pairs.into_iter().filter(|(name, _)| !name.starts_with("$.")).collect();
        let topic = iothub_protocol::mqtt::telemetry_topic(&device, None, &message);
        let Ok(iothub_protocol::mqtt::PublishTopic::Telemetry { device_id, properties, .. }) = parse_publish_topic(&topic) else {
            return Err(TestCaseError::fail(format!("not telemetry: {topic}")));
        };
        prop_assert_eq!(device_id, device);
        prop_assert_eq!(Message::from_property_bag(Vec::new(), properties), message);
    }

    #[test]
    fn timestamps_round_trip(ticks in FIRST_TICK..=LAST_TICK) {
        let time = Timestamp::from_unix_nanos(i128::from(ticks) * 100).unwrap();
        prop_assert_eq!(Timestamp::parse(time.as_str()).unwrap(), time);
        prop_assert_eq!(time.unix_nanos(), i128::from(ticks) * 100);
    }
}
