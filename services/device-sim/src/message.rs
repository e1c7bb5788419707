//! One simulated device-to-cloud message, as a scenario makes it and a transport sends it.

/// A telemetry message: body, system properties and application properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimMessage {
    /// The payload.
    pub body: Vec<u8>,
    /// `$.mid` / `iothub-messageid`.
    pub message_id: Option<String>,
    /// `$.cid` / `iothub-correlationid`.
    pub correlation_id: Option<String>,
    /// `$.ct` / `iothub-contenttype`, e.g. `application/json`.
    pub content_type: Option<String>,
    /// `$.ce` / `iothub-contentencoding`, e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Application properties, in order.
    pub properties: Vec<(String, String)>,
}
