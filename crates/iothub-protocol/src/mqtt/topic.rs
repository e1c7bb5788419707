//! Device-side MQTT topics: what a device may publish to and subscribe to (DOC-MQTT).

use crate::encoding::{decode_lenient, encode_component};
use crate::message::Message;

use super::property_bag::{PropertyBagError, decode_property_bag, encode_property_bag};

/// Subscription filter for twin responses.
pub const TWIN_RESPONSES_FILTER: &str = "$iothub/twin/res/#";
/// Subscription filter for desired-property patches.
pub const TWIN_DESIRED_PATCHES_FILTER: &str = "$iothub/twin/PATCH/properties/desired/#";
/// Subscription filter for direct-method requests.
pub const METHOD_REQUESTS_FILTER: &str = "$iothub/methods/POST/#";

/// What a device's PUBLISH topic means. Ids are URL-decoded (the Python SDK escapes them); the
/// caller checks them against the connected identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishTopic {
    /// `devices/{d}[/modules/{m}]/messages/events[/[{property_bag}]]`.
    Telemetry {
        /// `{d}`.
        device_id: String,
        /// `{m}`, for a module.
        module_id: Option<String>,
        /// The decoded property bag, in order.
        properties: Vec<(String, Option<String>)>,
    },
    /// `$iothub/twin/GET/?$rid={rid}`.
    TwinGet {
        /// `$rid`.
        request_id: Option<String>,
    },
    /// `$iothub/twin/PATCH/properties/reported/?$rid={rid}`.
    TwinReportedPatch {
        /// `$rid`.
        request_id: Option<String>,
    },
    /// `$iothub/methods/res/{status}/?$rid={rid}`.
    MethodResponse {
        /// `{status}` as written (normally an HTTP status code).
        status: String,
        /// `$rid`.
        request_id: Option<String>,
    },
    /// Anything else: IoT Hub supports only the documented topics.
    Unknown,
}

/// What a device's SUBSCRIBE filter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionTopic {
    /// `devices/{d}/messages/devicebound/#`: cloud-to-device messages.
    CloudToDevice {
        /// `{d}`, URL-decoded.
        device_id: String,
    },
    /// `devices/{d}/modules/{m}/inputs/#`: a module's inputs.
    ModuleInputs {
        /// `{d}`, URL-decoded.
        device_id: String,
        /// `{m}`, URL-decoded.
        module_id: String,
    },
    /// `$iothub/twin/res/#`.
    TwinResponses,
    /// `$iothub/twin/PATCH/properties/desired/#`.
    TwinDesiredPatches,
    /// `$iothub/methods/POST/#`.
    MethodRequests,
    /// Anything else, wildcards in other places included.
    Unknown,
}

/// Why a publish topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The property bag (or `?` query) is malformed.
    #[error(transparent)]
    PropertyBag(#[from] PropertyBagError),
}

/// Classifies a PUBLISH topic.
///
/// For telemetry the property bag is everything after `events/`, and its first `/` ends it (the
/// C# rules): the C SDK sends values unescaped by default, so `$.ct=application/json` arrives as
/// content type `application`, as it does on IoT Hub.
pub fn parse_publish_topic(topic: &str) -> Result<PublishTopic, TopicError> {
    if let Some(rest) = topic.strip_prefix("devices/") {
        return parse_telemetry(rest);
    }
    if let Some(rest) = topic.strip_prefix("$iothub/") {
        return parse_iothub(rest);
    }
    Ok(PublishTopic::Unknown)
}

fn parse_telemetry(rest: &str) -> Result<PublishTopic, TopicError> {
    let Some((device, rest)) = rest.split_once('/') else {
        return Ok(PublishTopic::Unknown);
    };
    let (module, rest) = match rest.strip_prefix("modules/") {
        Some(rest) => match rest.split_once('/') {
            Some((module, rest)) => (Some(module), rest),
            None => return Ok(PublishTopic::Unknown),
        },
        None => (None, rest),
    };
    let Some(after) = rest.strip_prefix("messages/events") else {
        return Ok(PublishTopic::Unknown);
    };
    let bag = match after {
        "" => "",
        _ => match after.strip_prefix('/') {
            Some(bag) => bag,
            None => return Ok(PublishTopic::Unknown),
        },
    };
    if device.is_empty() || module.is_some_and(str::is_empty) {
        return Ok(PublishTopic::Unknown);
    }
    Ok(PublishTopic::Telemetry {
        device_id: decode_lenient(device).into_owned(),
        module_id: module.map(|module| decode_lenient(module).into_owned()),
        properties: decode_property_bag(bag)?,
    })
}

fn parse_iothub(rest: &str) -> Result<PublishTopic, TopicError> {
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    let request_id = || -> Result<Option<String>, TopicError> {
        let Some(query) = query else {
            return Ok(None);
        };
        let pairs = decode_property_bag(query)?;
        Ok(pairs
            .into_iter()
            .find(|(name, _)| name == "$rid")
            .and_then(|(_, value)| value))
    };
    if path == "twin/GET" {
        return Ok(PublishTopic::TwinGet {
            request_id: request_id()?,
        });
    }
    if path == "twin/PATCH/properties/reported" {
        return Ok(PublishTopic::TwinReportedPatch {
            request_id: request_id()?,
        });
    }
    if let Some(status) = path.strip_prefix("methods/res/")
        && !status.is_empty()
        && !status.contains('/')
    {
        return Ok(PublishTopic::MethodResponse {
            status: decode_lenient(status).into_owned(),
            request_id: request_id()?,
        });
    }
    Ok(PublishTopic::Unknown)
}

/// Classifies a SUBSCRIBE filter. Only the documented filters are recognised.
pub fn parse_subscription(filter: &str) -> SubscriptionTopic {
    match filter {
        TWIN_RESPONSES_FILTER => return SubscriptionTopic::TwinResponses,
        TWIN_DESIRED_PATCHES_FILTER => return SubscriptionTopic::TwinDesiredPatches,
        METHOD_REQUESTS_FILTER => return SubscriptionTopic::MethodRequests,
        _ => {}
    }
    let segments: Vec<&str> = filter.split('/').collect();
    let id = |segment: &str| {
        let wildcard = segment.is_empty() || segment.contains(['#', '+']);
        (!wildcard).then(|| decode_lenient(segment).into_owned())
    };
    let topic = match segments.as_slice() {
        ["devices", device, "messages", "devicebound", "#"] => {
            id(device).map(|device_id| SubscriptionTopic::CloudToDevice { device_id })
        }
        ["devices", device, "modules", module, "inputs", "#"] => id(device)
            .zip(id(module))
            .map(|(device_id, module_id)| SubscriptionTopic::ModuleInputs { device_id, module_id }),
        _ => None,
    };
    topic.unwrap_or(SubscriptionTopic::Unknown)
}

/// `devices/{d}[/modules/{m}]/messages/events/`, ids escaped as the Python SDK does.
pub fn telemetry_topic_base(device_id: &str, module_id: Option<&str>) -> String {
    let mut topic = format!("devices/{}", encode_component(device_id));
    if let Some(module) = module_id {
        topic.push_str("/modules/");
        topic.push_str(&encode_component(module));
    }
    topic.push_str("/messages/events/");
    topic
}

/// The topic to publish `message` on: [`telemetry_topic_base`] followed by the message's property
/// bag ([`Message::property_bag_pairs`]).
pub fn telemetry_topic(device_id: &str, module_id: Option<&str>, message: &Message) -> String {
    let mut topic = telemetry_topic_base(device_id, module_id);
    topic.push_str(&encode_property_bag(message.property_bag_pairs()));
    topic
}

/// `devices/{d}/messages/devicebound/#`.
pub fn cloud_to_device_filter(device_id: &str) -> String {
    format!("devices/{}/messages/devicebound/#", encode_component(device_id))
}

/// `devices/{d}/modules/{m}/inputs/#`.
pub fn module_inputs_filter(device_id: &str, module_id: &str) -> String {
    format!(
        "devices/{}/modules/{}/inputs/#",
        encode_component(device_id),
        encode_component(module_id)
    )
}
