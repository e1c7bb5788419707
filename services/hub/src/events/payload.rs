//! How a message is stored in the journal. The built-in `events` stream keeps JSON: its readers
//! (`/events`, `hub monitor`, operators with `sqlite3`) want text. Outbox copies for custom
//! endpoints are MessagePack with named fields: the body stays raw bytes instead of base64, and
//! encoding and decoding cost a fraction of JSON's, on the hot path of every routed message.
//! Rows written as JSON (by earlier versions) still decode: a JSON payload starts with `{`, a
//! MessagePack map never does.

use iothub_protocol::Message;

/// The events stream's encoding of `message`.
pub fn encode_event(message: &Message) -> Result<Vec<u8>, String> {
    serde_json::to_vec(message).map_err(|e| e.to_string())
}

/// An outbox copy's encoding of `message`.
pub fn encode_outbox(message: &Message) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(message).map_err(|e| e.to_string())
}

/// A stored payload back to the message, whichever encoding it has.
pub fn decode(payload: &[u8]) -> Result<Message, String> {
    if payload.first() == Some(&b'{') {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    } else {
        rmp_serde::from_slice(payload).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use iothub_protocol::{MessageSource, Timestamp};

    use super::*;

    fn sample() -> Message {
        let mut message = Message::new(vec![0, 1, 2, 255, b'{']);
        message.app_properties = vec![
            ("level".to_owned(), Some("critical".to_owned())),
            ("flag".to_owned(), None),
        ];
        message.system.message_id = Some("m-1".to_owned());
        message.system.content_type = Some("application/json".to_owned());
        message.system.connection_device_id = Some("turbine-7".to_owned());
        message.system.enqueued_time = Some(Timestamp::from_unix_millis(1_795_651_200_123).unwrap());
        message.system.message_source = MessageSource::DeviceLifecycleEvents;
        message
    }

    #[test]
    fn outbox_copies_round_trip_with_raw_bodies() {
        let message = sample();
        let encoded = encode_outbox(&message).unwrap();
        assert_ne!(encoded.first(), Some(&b'{'));
        assert_eq!(decode(&encoded).unwrap(), message);
        let json = encode_event(&message).unwrap();
        assert!(encoded.len() < json.len(), "no base64, no quoting");
    }

    #[test]
    fn json_rows_of_earlier_versions_still_decode() {
        let message = sample();
        assert_eq!(decode(&encode_event(&message).unwrap()).unwrap(), message);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"{not json", b"\xc1\xc1", b"\x81\xa4body"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
