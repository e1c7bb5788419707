//! System properties: the typed fields, and one table of their names on each wire and endpoint.

use serde::{Deserialize, Serialize};

use crate::timestamp::Timestamp;

/// Where a message comes from (`iothub-message-source`), which decides the routes it can take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageSource {
    /// Device-to-cloud telemetry (routing source `DeviceMessages`).
    #[default]
    Telemetry,
    /// Twin change notifications.
    #[serde(rename = "twinChangeEvents")]
    TwinChangeEvents,
    /// Device and module identity created or deleted.
    #[serde(rename = "deviceLifecycleEvents")]
    DeviceLifecycleEvents,
    /// Device or module connected or disconnected.
    #[serde(rename = "deviceConnectionStateEvents")]
    DeviceConnectionStateEvents,
    /// Device job lifecycle.
    #[serde(rename = "deviceJobLifecycleEvents")]
    DeviceJobLifecycleEvents,
    /// Digital twin change notifications.
    #[serde(rename = "digitalTwinChangeEvents")]
    DigitalTwinChangeEvents,
}

impl MessageSource {
    /// Every source, in ARM's order.
    pub const ALL: [MessageSource; 6] = [
        MessageSource::Telemetry,
        MessageSource::TwinChangeEvents,
        MessageSource::DeviceLifecycleEvents,
        MessageSource::DeviceJobLifecycleEvents,
        MessageSource::DigitalTwinChangeEvents,
        MessageSource::DeviceConnectionStateEvents,
    ];

    /// The `iothub-message-source` value: `Telemetry`, `twinChangeEvents`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            MessageSource::Telemetry => "Telemetry",
            MessageSource::TwinChangeEvents => "twinChangeEvents",
            MessageSource::DeviceLifecycleEvents => "deviceLifecycleEvents",
            MessageSource::DeviceConnectionStateEvents => "deviceConnectionStateEvents",
            MessageSource::DeviceJobLifecycleEvents => "deviceJobLifecycleEvents",
            MessageSource::DigitalTwinChangeEvents => "digitalTwinChangeEvents",
        }
    }

    /// The ARM `RoutingSource` a route names: `DeviceMessages`, `TwinChangeEvents`, ...
    pub fn routing_source(self) -> &'static str {
        match self {
            MessageSource::Telemetry => "DeviceMessages",
            MessageSource::TwinChangeEvents => "TwinChangeEvents",
            MessageSource::DeviceLifecycleEvents => "DeviceLifecycleEvents",
            MessageSource::DeviceConnectionStateEvents => "DeviceConnectionStateEvents",
            MessageSource::DeviceJobLifecycleEvents => "DeviceJobLifecycleEvents",
            MessageSource::DigitalTwinChangeEvents => "DigitalTwinChangeEvents",
        }
    }

    /// The source a route's `source` names, case-insensitively.
    pub fn from_routing_source(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|source| source.routing_source().eq_ignore_ascii_case(name))
    }

    /// The source an `iothub-message-source` value names, case-insensitively.
    pub fn from_wire(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|source| source.as_str().eq_ignore_ascii_case(value))
    }
}

/// A system property, with its name in each place it appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemProperty {
    /// `$.mid`, message-id.
    MessageId,
    /// `$.cid`, correlation-id.
    CorrelationId,
    /// `$.uid`, user-id.
    UserId,
    /// `$.ct`, content-type.
    ContentType,
    /// `$.ce`, content-encoding.
    ContentEncoding,
    /// `$.to` (cloud-to-device).
    To,
    /// `$.ctime`, set by the device; surfaces as application property `iothub-creation-time-utc`.
    CreationTime,
    /// `$.exp`, absolute-expiry-time.
    AbsoluteExpiryTime,
    /// `$.on`, a module's output name.
    OutputName,
    /// `$.ifid`, a PnP interface id.
    InterfaceId,
    /// `$.schema`, message schema.
    MessageSchema,
    /// dt-dataschema (PnP model id).
    DtDataSchema,
    /// `$.sub`, dt-subject (PnP component).
    DtSubject,
    /// Stamped by the hub: the authenticated device.
    ConnectionDeviceId,
    /// Stamped by the hub: the authenticated module.
    ConnectionModuleId,
    /// Stamped by the hub: how the sender authenticated (JSON).
    ConnectionAuthMethod,
    /// Stamped by the hub: the device's generation id.
    ConnectionDeviceGenerationId,
    /// Stamped by the hub: when it accepted the message.
    EnqueuedTime,
}

impl SystemProperty {
    /// Every system property, in the order of [`SystemProperties`]' fields.
    pub const ALL: [SystemProperty; 18] = [
        SystemProperty::MessageId,
        SystemProperty::CorrelationId,
        SystemProperty::UserId,
        SystemProperty::ContentType,
        SystemProperty::ContentEncoding,
        SystemProperty::To,
        SystemProperty::CreationTime,
        SystemProperty::AbsoluteExpiryTime,
        SystemProperty::OutputName,
        SystemProperty::InterfaceId,
        SystemProperty::MessageSchema,
        SystemProperty::DtDataSchema,
        SystemProperty::DtSubject,
        SystemProperty::ConnectionDeviceId,
        SystemProperty::ConnectionModuleId,
        SystemProperty::ConnectionAuthMethod,
        SystemProperty::ConnectionDeviceGenerationId,
        SystemProperty::EnqueuedTime,
    ];

    /// The name in routing queries (`$contentType`) — also the Storage endpoint's `SystemProperties`
    /// key for the documented ones.
    pub fn query_name(self) -> &'static str {
        use SystemProperty as P;
        match self {
            P::MessageId => "messageId",
            P::CorrelationId => "correlationId",
            P::UserId => "userId",
            P::ContentType => "contentType",
            P::ContentEncoding => "contentEncoding",
            P::To => "to",
            P::CreationTime => "creationTime",
            P::AbsoluteExpiryTime => "absolute-expiry-time",
            P::OutputName => "outputName",
            P::InterfaceId => "iothub-interface-id",
            P::MessageSchema => "messageSchema",
            P::DtDataSchema => "dt-dataschema",
            P::DtSubject => "dt-subject",
            P::ConnectionDeviceId => "connectionDeviceId",
            P::ConnectionModuleId => "connectionModuleId",
            P::ConnectionAuthMethod => "connectionAuthMethod",
            P::ConnectionDeviceGenerationId => "connectionDeviceGenerationId",
            P::EnqueuedTime => "enqueuedTime",
        }
    }

    /// The key a device sends in an MQTT property bag, or `None` for properties only the hub sets.
    /// `$.cdid`/`$.cmid` are outbound only: a device sending them gets application properties, so
    /// it cannot spoof its identity.
    pub fn mqtt_key(self) -> Option<&'static str> {
        use SystemProperty as P;
        Some(match self {
            P::MessageId => "$.mid",
            P::CorrelationId => "$.cid",
            P::UserId => "$.uid",
            P::ContentType => "$.ct",
            P::ContentEncoding => "$.ce",
            P::To => "$.to",
            P::CreationTime => "$.ctime",
            P::AbsoluteExpiryTime => "$.exp",
            P::OutputName => "$.on",
            P::InterfaceId => "$.ifid",
            P::MessageSchema => "$.schema",
            P::DtSubject => "$.sub",
            P::DtDataSchema
            | P::ConnectionDeviceId
            | P::ConnectionModuleId
            | P::ConnectionAuthMethod
            | P::ConnectionDeviceGenerationId
            | P::EnqueuedTime => return None,
        })
    }

    /// The property a decoded MQTT property-bag key sets (`$.mid`, ...), if any.
    pub fn from_mqtt_key(key: &str) -> Option<Self> {
        if !key.starts_with("$.") {
            return None;
        }
        Self::ALL.into_iter().find(|p| p.mqtt_key() == Some(key))
    }

    /// The property a routing query's `$name` means, case-insensitively.
    pub fn from_query_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| iothub_query::names_equal(p.query_name(), name))
    }

    /// The Event Hubs-compatible endpoint's name (DOC-MSG table), where one is documented.
    pub fn event_hubs_name(self) -> Option<&'static str> {
        use SystemProperty as P;
        Some(match self {
            P::MessageId => "message-id",
            P::UserId => "user-id",
            P::CorrelationId => "correlation-id",
            P::ContentType => "content-type",
            P::ContentEncoding => "content-encoding",
            P::ConnectionDeviceId => "iothub-connection-device-id",
            P::ConnectionModuleId => "iothub-connection-module-id",
            P::ConnectionDeviceGenerationId => "iothub-connection-auth-generation-id",
            P::ConnectionAuthMethod => "iothub-connection-auth-method",
            P::EnqueuedTime => "iothub-enqueuedtime",
            P::DtDataSchema => "dt-dataschema",
            P::DtSubject => "dt-subject",
            _ => return None,
        })
    }

    /// The Storage endpoint's `SystemProperties` key (DOC-MSG table), where one is documented.
    pub fn storage_name(self) -> Option<&'static str> {
        use SystemProperty as P;
        match self {
            P::MessageId
            | P::UserId
            | P::CorrelationId
            | P::ContentType
            | P::ContentEncoding
            | P::ConnectionDeviceId
            | P::ConnectionModuleId
            | P::ConnectionDeviceGenerationId
            | P::ConnectionAuthMethod
            | P::EnqueuedTime
            | P::DtDataSchema
            | P::DtSubject => Some(self.query_name()),
            _ => None,
        }
    }

    /// The Service Bus endpoint's name (DOC-MSG table), where one is documented; `enqueuedTime` is
    /// "N/A" there (the broker's own `EnqueuedTimeUtc` stands in).
    pub fn service_bus_name(self) -> Option<&'static str> {
        use SystemProperty as P;
        Some(match self {
            P::MessageId => "MessageId",
            P::UserId => "UserId",
            P::CorrelationId => "CorrelationId",
            P::ContentType => "ContentType",
            P::ContentEncoding => "ContentEncoding",
            P::ConnectionDeviceId => "iothub-connection-device-id",
            P::ConnectionModuleId => "iothub-connection-module-id",
            P::ConnectionDeviceGenerationId => "iothub-connection-auth-generation-id",
            P::ConnectionAuthMethod => "iothub-connection-auth-method",
            P::DtDataSchema => "dt-dataschema",
            P::DtSubject => "dt-subject",
            _ => return None,
        })
    }
}

/// The typed system properties of a message. Serialized with short, stable names (see the
/// [`message`](crate::message) module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemProperties {
    /// `messageId`.
    #[serde(rename = "mid", default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// `correlationId`.
    #[serde(rename = "cid", default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// `userId`.
    #[serde(rename = "uid", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `contentType`.
    #[serde(rename = "ct", default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `contentEncoding`.
    #[serde(rename = "ce", default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `to`.
    #[serde(rename = "to", default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `creationTime`, as the device sent it (not necessarily a valid timestamp).
    #[serde(rename = "ctime", default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    /// `absolute-expiry-time`, as the device sent it.
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none")]
    pub absolute_expiry_time: Option<String>,
    /// `outputName`.
    #[serde(rename = "on", default, skip_serializing_if = "Option::is_none")]
    pub output_name: Option<String>,
    /// `iothub-interface-id`.
    #[serde(rename = "ifid", default, skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    /// `messageSchema`.
    #[serde(rename = "schema", default, skip_serializing_if = "Option::is_none")]
    pub message_schema: Option<String>,
    /// `dt-dataschema`.
    #[serde(rename = "dsch", default, skip_serializing_if = "Option::is_none")]
    pub dt_dataschema: Option<String>,
    /// `dt-subject`.
    #[serde(rename = "sub", default, skip_serializing_if = "Option::is_none")]
    pub dt_subject: Option<String>,
    /// `connectionDeviceId`.
    #[serde(rename = "cdid", default, skip_serializing_if = "Option::is_none")]
    pub connection_device_id: Option<String>,
    /// `connectionModuleId`.
    #[serde(rename = "cmid", default, skip_serializing_if = "Option::is_none")]
    pub connection_module_id: Option<String>,
    /// `connectionAuthMethod`: the JSON text of an [`AuthMethod`](crate::auth_method::AuthMethod).
    #[serde(rename = "cam", default, skip_serializing_if = "Option::is_none")]
    pub connection_auth_method: Option<String>,
    /// `connectionDeviceGenerationId`.
    #[serde(rename = "cgid", default, skip_serializing_if = "Option::is_none")]
    pub connection_device_generation_id: Option<String>,
    /// `enqueuedTime`.
    #[serde(rename = "enq", default, skip_serializing_if = "Option::is_none")]
    pub enqueued_time: Option<Timestamp>,
    /// `iothub-message-source`.
    #[serde(rename = "src", default, skip_serializing_if = "is_telemetry")]
    pub message_source: MessageSource,
}

fn is_telemetry(source: &MessageSource) -> bool {
    *source == MessageSource::Telemetry
}

impl SystemProperties {
    /// The value of `property`, if set.
    pub fn get(&self, property: SystemProperty) -> Option<&str> {
        match property {
            SystemProperty::EnqueuedTime => self.enqueued_time.as_ref().map(Timestamp::as_str),
            _ => self.text_slot(property).and_then(|slot| slot.as_deref()),
        }
    }

    /// Sets a text-valued property; returns `false` (and changes nothing) for
    /// [`SystemProperty::EnqueuedTime`], which is set through its typed field.
    pub fn set(&mut self, property: SystemProperty, value: Option<String>) -> bool {
        match self.text_slot_mut(property) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    fn text_slot(&self, property: SystemProperty) -> Option<&Option<String>> {
        use SystemProperty as P;
        Some(match property {
            P::MessageId => &self.message_id,
            P::CorrelationId => &self.correlation_id,
            P::UserId => &self.user_id,
            P::ContentType => &self.content_type,
            P::ContentEncoding => &self.content_encoding,
            P::To => &self.to,
            P::CreationTime => &self.creation_time,
            P::AbsoluteExpiryTime => &self.absolute_expiry_time,
            P::OutputName => &self.output_name,
            P::InterfaceId => &self.interface_id,
            P::MessageSchema => &self.message_schema,
            P::DtDataSchema => &self.dt_dataschema,
            P::DtSubject => &self.dt_subject,
            P::ConnectionDeviceId => &self.connection_device_id,
            P::ConnectionModuleId => &self.connection_module_id,
            P::ConnectionAuthMethod => &self.connection_auth_method,
            P::ConnectionDeviceGenerationId => &self.connection_device_generation_id,
            P::EnqueuedTime => return None,
        })
    }

    fn text_slot_mut(&mut self, property: SystemProperty) -> Option<&mut Option<String>> {
        use SystemProperty as P;
        Some(match property {
            P::MessageId => &mut self.message_id,
            P::CorrelationId => &mut self.correlation_id,
            P::UserId => &mut self.user_id,
            P::ContentType => &mut self.content_type,
            P::ContentEncoding => &mut self.content_encoding,
            P::To => &mut self.to,
            P::CreationTime => &mut self.creation_time,
            P::AbsoluteExpiryTime => &mut self.absolute_expiry_time,
            P::OutputName => &mut self.output_name,
            P::InterfaceId => &mut self.interface_id,
            P::MessageSchema => &mut self.message_schema,
            P::DtDataSchema => &mut self.dt_dataschema,
            P::DtSubject => &mut self.dt_subject,
            P::ConnectionDeviceId => &mut self.connection_device_id,
            P::ConnectionModuleId => &mut self.connection_module_id,
            P::ConnectionAuthMethod => &mut self.connection_auth_method,
            P::ConnectionDeviceGenerationId => &mut self.connection_device_generation_id,
            P::EnqueuedTime => return None,
        })
    }

    /// The properties that are set, in [`SystemProperty::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (SystemProperty, &str)> + '_ {
        SystemProperty::ALL
            .into_iter()
            .filter_map(|property| self.get(property).map(|value| (property, value)))
    }
}
