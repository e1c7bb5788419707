//! The events the hub emits itself, routable like telemetry by routes of their source: device
//! connection-state events (connect, disconnect) and device lifecycle events (create, delete), with
//! the properties and bodies IoT Hub documents (non-telemetry event schema).

use iothub_protocol::{Message, MessageSource, Timestamp};

use crate::registry::Device;

fn event(
    hub_name: &str,
    device_id: &str,
    module_id: Option<&str>,
    source: MessageSource,
    op_type: &str,
    schema: &str,
    body: serde_json::Value,
) -> Message {
    let now = Timestamp::now();
    let mut message = Message::new(body.to_string().into_bytes());
    message.set_app_property("hubName", Some(hub_name.to_owned()));
    message.set_app_property("deviceId", Some(device_id.to_owned()));
    if let Some(module) = module_id {
        message.set_app_property("moduleId", Some(module.to_owned()));
    }
    message.set_app_property("operationTimestamp", Some(now.as_str().to_owned()));
    message.set_app_property("opType", Some(op_type.to_owned()));
    message.set_app_property("iothub-message-schema", Some(schema.to_owned()));
    let system = &mut message.system;
    system.content_type = Some("application/json".to_owned());
    system.content_encoding = Some("utf-8".to_owned());
    system.correlation_id = Some(correlation_id(now));
    system.user_id = Some(hub_name.to_owned());
    system.connection_device_id = Some(device_id.to_owned());
    system.connection_module_id = module_id.map(str::to_owned);
    system.enqueued_time = Some(now);
    system.message_source = source;
    message
}

/// A correlation id in GUID form, unique per event (time-derived, with random low bits).
fn correlation_id(now: Timestamp) -> String {
    let high = now.unix_nanos() as u128;
    let low: u64 = rand::random();
    let value = (high << 64) ^ u128::from(low);
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `deviceConnected` / `deviceDisconnected` (or the module forms), source `deviceConnectionStateEvents`.
pub fn connection_state(
    hub_name: &str,
    device_id: &str,
    module_id: Option<&str>,
    connected: bool,
) -> Message {
    let op_type = match (module_id.is_some(), connected) {
        (false, true) => "deviceConnected",
        (false, false) => "deviceDisconnected",
        (true, true) => "moduleConnected",
        (true, false) => "moduleDisconnected",
    };
    // IoT Hub's body is an increasing hexadecimal sequence number.
    let sequence = format!("{:064X}", Timestamp::now().unix_nanos());
    let body = serde_json::json!({ "sequenceNumber": sequence });
    event(
        hub_name,
        device_id,
        module_id,
        MessageSource::DeviceConnectionStateEvents,
        op_type,
        "deviceConnectionStateNotification",
        body,
    )
}

/// `createDeviceIdentity` / `deleteDeviceIdentity`, source `deviceLifecycleEvents`; the body is the
/// device's twin.
pub fn lifecycle(hub_name: &str, device: &Device, created: bool) -> Message {
    let op_type = if created {
        "createDeviceIdentity"
    } else {
        "deleteDeviceIdentity"
    };
    let now = Timestamp::now();
    let metadata = serde_json::json!({ "$lastUpdated": now.as_str() });
    let body = serde_json::json!({
        "deviceId": device.device_id,
        "etag": "AAAAAAAAAAE=",
        "deviceEtag": device.etag,
        "status": device.status,
        "statusUpdateTime": device.status_updated_time,
        "connectionState": device.connection_state,
        "lastActivityTime": device.last_activity_time,
        "cloudToDeviceMessageCount": device.cloud_to_device_message_count,
        "authenticationType": "sas",
        "x509Thumbprint": { "primaryThumbprint": null, "secondaryThumbprint": null },
        "version": 2,
        "properties": {
            "desired": { "$metadata": metadata, "$version": 1 },
            "reported": { "$metadata": metadata, "$version": 1 },
        },
    });
    event(
        hub_name,
        &device.device_id,
        None,
        MessageSource::DeviceLifecycleEvents,
        op_type,
        "deviceLifecycleNotification",
        body,
    )
}
