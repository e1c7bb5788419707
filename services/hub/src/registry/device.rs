//! A device identity, in IoT Hub's registry REST shape (`Device` JSON).

use serde::{Deserialize, Serialize};

/// Never, as IoT Hub prints it.
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// Enabled or disabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// May connect.
    #[default]
    Enabled,
    /// Refused at connect; connected sessions are closed.
    Disabled,
}

/// Connected or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    /// Has a live connection.
    Connected,
    /// Has none.
    #[default]
    Disconnected,
}

/// The device's symmetric keys (base64).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKey {
    /// Primary key; null in a create request means "generate one".
    pub primary_key: Option<String>,
    /// Secondary key; null means "generate one".
    pub secondary_key: Option<String>,
}

/// X.509 thumbprints (kept for shape; X.509 authentication is not supported).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Thumbprint {
    /// Primary thumbprint.
    pub primary_thumbprint: Option<String>,
    /// Secondary thumbprint.
    pub secondary_thumbprint: Option<String>,
}

/// How the device authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// `sas` (the only type this hub supports).
    #[serde(rename = "type")]
    pub kind: String,
    /// The keys.
    #[serde(default)]
    pub symmetric_key: SymmetricKey,
    /// Thumbprints (unused).
    #[serde(default)]
    pub x509_thumbprint: X509Thumbprint,
}

impl Default for Authentication {
    fn default() -> Self {
        Authentication {
            kind: "sas".to_owned(),
            symmetric_key: SymmetricKey::default(),
            x509_thumbprint: X509Thumbprint::default(),
        }
    }
}

/// Device capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Whether it is an IoT Edge device.
    pub iot_edge: bool,
}

/// A device as the registry API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Case-sensitive id, up to 128 characters.
    pub device_id: String,
    /// Tells re-created devices with the same id apart.
    pub generation_id: String,
    /// Changes on every update; `If-Match` compares against it.
    pub etag: String,
    /// Connected or not.
    pub connection_state: ConnectionState,
    /// Enabled or disabled.
    pub status: Status,
    /// Why it is disabled, if it is.
    pub status_reason: Option<String>,
    /// Last connect or disconnect.
    pub connection_state_updated_time: String,
    /// Last status change.
    pub status_updated_time: String,
    /// Last message or connection.
    pub last_activity_time: String,
    /// Cloud-to-device messages waiting (always 0: C2D is not supported yet).
    pub cloud_to_device_message_count: u32,
    /// Keys.
    pub authentication: Authentication,
    /// Capabilities.
    pub capabilities: Capabilities,
}

/// A create-or-update request body. Unknown fields are ignored, as IoT Hub does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceRequest {
    /// Must match the id in the path when present.
    pub device_id: Option<String>,
    /// Enabled by default.
    pub status: Option<Status>,
    /// Why it is disabled.
    pub status_reason: Option<String>,
    /// Keys; generated when absent or null.
    pub authentication: Option<Authentication>,
    /// Capabilities.
    pub capabilities: Option<Capabilities>,
}

/// Why a device id is not acceptable, or `None` when it is. IoT Hub allows up to 128 ASCII
/// letters, digits and `- . % _ * ? ! ( ) , : = @ $ '`.
pub fn invalid_device_id(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > 128 {
        return Some(format!(
            "a device id has 1 to 128 characters, this one has {}",
            id.chars().count()
        ));
    }
    let bad = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-.%_*?!(),:=@$'".contains(*c)));
    bad.map(|c| {
        format!(
            "'{}' is not allowed in a device id (letters, digits and -.%_*?!(),:=@$' are)",
            c.escape_default()
        )
    })
}
