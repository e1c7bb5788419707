//! IoT Hub's MQTT 3.1.1 conventions for devices: the CONNECT username, topics, property bags.
//!
//! A hub reads a PUBLISH like this:
//!
//! ```
//! use iothub_protocol::message::Message;
//! use iothub_protocol::mqtt::{PublishTopic, parse_publish_topic};
//!
//! let topic = "devices/device1/messages/events/%24.mid=msg-1&%24.ct=application%2Fjson&level=critical";
//! let PublishTopic::Telemetry { device_id, module_id, properties } = parse_publish_topic(topic)? else {
//!     unreachable!("a telemetry topic");
//! };
//! assert_eq!((device_id.as_str(), module_id), ("device1", None));
//! let message = Message::from_property_bag(b"{}".to_vec(), properties);
//! assert_eq!(message.system.message_id.as_deref(), Some("msg-1"));
//! assert_eq!(message.system.content_type.as_deref(), Some("application/json"));
//! assert_eq!(message.app_property("level"), Some(Some("critical")));
//! # Ok::<(), iothub_protocol::mqtt::TopicError>(())
//! ```

mod property_bag;
mod topic;
mod username;

pub use property_bag::{PropertyBagError, decode_property_bag, encode_property_bag};
pub use topic::{
    METHOD_REQUESTS_FILTER, PublishTopic, SubscriptionTopic, TWIN_DESIRED_PATCHES_FILTER,
    TWIN_RESPONSES_FILTER, TopicError, cloud_to_device_filter, module_inputs_filter, parse_publish_topic,
    parse_subscription, telemetry_topic, telemetry_topic_base,
};
pub use username::{Username, UsernameError};

/// The WebSocket path for MQTT over WebSockets (port 443).
pub const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// Application property IoT Hub adds when a device publishes with RETAIN set.
pub const RETAIN_PROPERTY: &str = "mqtt-retain";

/// Application property IoT Hub adds to a Will message it forwards: `iothub-MessageType=Will`.
pub const MESSAGE_TYPE_PROPERTY: &str = "iothub-MessageType";

/// The value of [`MESSAGE_TYPE_PROPERTY`] on a Will message.
pub const WILL_MESSAGE_TYPE: &str = "Will";
