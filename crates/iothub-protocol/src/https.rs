//! Device-to-cloud over HTTPS: `POST /devices/{id}/messages/events?api-version=…` with message
//! properties in headers (the C SDK's `iothubtransporthttp.c`; REST "Device - Send Device Event").

use crate::encoding::encode_component;
use crate::message::Message;

/// Prefix of headers carrying application properties (`iothub-app-level: critical`).
pub const APP_PROPERTY_PREFIX: &str = "iothub-app-";
/// Header carrying the message id.
pub const MESSAGE_ID: &str = "iothub-messageid";
/// Header carrying the correlation id.
pub const CORRELATION_ID: &str = "iothub-correlationid";
/// Header carrying the content type.
pub const CONTENT_TYPE: &str = "iothub-contenttype";
/// Header carrying the content encoding.
pub const CONTENT_ENCODING: &str = "iothub-contentencoding";

/// The request path for a device's telemetry: `/devices/{escaped id}/messages/events?api-version=…`.
pub fn telemetry_path(device_id: &str, api_version: &str) -> String {
    format!(
        "/devices/{}/messages/events?api-version={}",
        encode_component(device_id),
        encode_component(api_version)
    )
}

/// Applies one request header to `message`; returns whether the header was an IoT Hub property.
///
/// Header names compare case-insensitively. An `iothub-app-` header's name after the prefix
/// becomes the property name as received (HTTP libraries usually lowercase it); values are kept
/// as sent.
pub fn apply_header(message: &mut Message, name: &str, value: &str) -> bool {
    let system = &mut message.system;
    let slot = if name.eq_ignore_ascii_case(MESSAGE_ID) {
        &mut system.message_id
    } else if name.eq_ignore_ascii_case(CORRELATION_ID) {
        &mut system.correlation_id
    } else if name.eq_ignore_ascii_case(CONTENT_TYPE) {
        &mut system.content_type
    } else if name.eq_ignore_ascii_case(CONTENT_ENCODING) {
        &mut system.content_encoding
    } else {
        let prefix_len = APP_PROPERTY_PREFIX.len();
        let is_app = name.len() > prefix_len
            && name.is_char_boundary(prefix_len)
            && name[..prefix_len].eq_ignore_ascii_case(APP_PROPERTY_PREFIX);
        if is_app {
            message.set_app_property(&name[prefix_len..], Some(value.to_owned()));
        }
        return is_app;
    };
    *slot = Some(value.to_owned());
    true
}

/// The headers a device sends for `message`: system properties that are set, then one
/// `iothub-app-{name}` per application property (null values are sent as empty strings).
pub fn message_headers(message: &Message) -> Vec<(String, String)> {
    let system = &message.system;
    let fixed = [
        (MESSAGE_ID, &system.message_id),
        (CORRELATION_ID, &system.correlation_id),
        (CONTENT_TYPE, &system.content_type),
        (CONTENT_ENCODING, &system.content_encoding),
    ];
    let mut headers: Vec<(String, String)> = fixed
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| (name.to_owned(), value.clone())))
        .collect();
    headers.extend(message.app_properties.iter().map(|(name, value)| {
        (
            format!("{APP_PROPERTY_PREFIX}{name}"),
            value.clone().unwrap_or_default(),
        )
    }));
    headers
}
