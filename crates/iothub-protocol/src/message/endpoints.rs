//! A message's properties under the names each routing endpoint uses (DOC-MSG "System Property
//! Names": Event Hubs, Storage, Service Bus columns).
//!
//! Only documented names are produced. Properties the docs name for no endpoint (`to`,
//! `absolute-expiry-time`, `outputName`, `iothub-interface-id`, `messageSchema`) stay in the model
//! and in routing queries but are not written out. The device's `$.ctime` reaches every endpoint as
//! the application property `iothub-creation-time-utc`.

use super::{CREATION_TIME_PROPERTY, Message, SystemProperty};

/// System properties in the order IoT Hub writes a blob record's `SystemProperties`.
const STORAGE_ORDER: [SystemProperty; 12] = [
    SystemProperty::MessageId,
    SystemProperty::CorrelationId,
    SystemProperty::UserId,
    SystemProperty::ConnectionDeviceId,
    SystemProperty::ConnectionModuleId,
    SystemProperty::ConnectionAuthMethod,
    SystemProperty::ConnectionDeviceGenerationId,
    SystemProperty::ContentType,
    SystemProperty::ContentEncoding,
    SystemProperty::EnqueuedTime,
    SystemProperty::DtDataSchema,
    SystemProperty::DtSubject,
];

/// The hub-stamped properties that travel as Service Bus application properties, in order.
const SERVICE_BUS_APPLICATION: [SystemProperty; 6] = [
    SystemProperty::ConnectionDeviceId,
    SystemProperty::ConnectionModuleId,
    SystemProperty::ConnectionAuthMethod,
    SystemProperty::ConnectionDeviceGenerationId,
    SystemProperty::DtDataSchema,
    SystemProperty::DtSubject,
];

/// A message's properties as a Service Bus queue endpoint receives them.
///
/// `MessageId`, `CorrelationId`, `ContentType`, `ContentEncoding` and `UserId` belong in the broker
/// properties (the AMQP properties section, where `content-encoding` also lives); the rest are
/// application properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusProperties<'a> {
    /// `MessageId`.
    pub message_id: Option<&'a str>,
    /// `CorrelationId`.
    pub correlation_id: Option<&'a str>,
    /// `ContentType`.
    pub content_type: Option<&'a str>,
    /// `ContentEncoding`.
    pub content_encoding: Option<&'a str>,
    /// `UserId`.
    pub user_id: Option<&'a str>,
    /// `iothub-connection-device-id`, `iothub-connection-module-id`, `iothub-connection-auth-method`,
    /// `iothub-connection-auth-generation-id`, `dt-dataschema`, `dt-subject` (those set), then the
    /// message's application properties, then `iothub-creation-time-utc`.
    pub application: Vec<(&'a str, Option<&'a str>)>,
}

impl Message {
    /// The Storage endpoint's `SystemProperties` map: `messageId`, `correlationId`, `userId`,
    /// `connectionDeviceId`, `connectionModuleId`, `connectionAuthMethod`,
    /// `connectionDeviceGenerationId`, `contentType`, `contentEncoding`, `enqueuedTime`,
    /// `dt-dataschema`, `dt-subject` — those set, in that order.
    pub fn storage_system_properties(&self) -> Vec<(&'static str, &str)> {
        STORAGE_ORDER
            .into_iter()
            .filter_map(|property| {
                let name = property.storage_name()?;
                self.system.get(property).map(|value| (name, value))
            })
            .collect()
    }

    /// The application properties every endpoint receives: the message's own, then
    /// `iothub-creation-time-utc` when the device sent `$.ctime`.
    pub fn endpoint_app_properties(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let creation = self
            .system
            .creation_time
            .as_deref()
            .map(|time| (CREATION_TIME_PROPERTY, Some(time)));
        self.app_properties
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_deref()))
            .chain(creation)
    }

    /// The properties a Service Bus queue endpoint receives.
    pub fn service_bus_properties(&self) -> ServiceBusProperties<'_> {
        let stamped = SERVICE_BUS_APPLICATION.into_iter().filter_map(|property| {
            let name = property.service_bus_name()?;
            self.system.get(property).map(|value| (name, Some(value)))
        });
        ServiceBusProperties {
            message_id: self.system.message_id.as_deref(),
            correlation_id: self.system.correlation_id.as_deref(),
            content_type: self.system.content_type.as_deref(),
            content_encoding: self.system.content_encoding.as_deref(),
            user_id: self.system.user_id.as_deref(),
            application: stamped.chain(self.endpoint_app_properties()).collect(),
        }
    }
}
