//! The MQTT CONNECT username: `{host}/{device}[/{module}]/?api-version=...&DeviceClientType=...`.

use std::fmt;
use std::str::FromStr;

use crate::encoding::{decode_lenient, encode_component};

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Not one of the accepted layouts.
    #[error(
        "the MQTT username must be `{{host}}/{{deviceId}}/?api-version=...` or `{{host}}/{{deviceId}}/{{moduleId}}/?api-version=...`"
    )]
    Shape,
    /// The host name is empty.
    #[error("the MQTT username has no host name")]
    NoHost,
    /// The device id is empty.
    #[error("the MQTT username has no device id")]
    NoDeviceId,
    /// The module id segment is present but empty.
    #[error("the MQTT username has an empty module id")]
    NoModuleId,
    /// `api-version` is missing or empty.
    #[error("the MQTT username has no `api-version`")]
    NoApiVersion,
}

/// A parsed CONNECT username.
///
/// Parsing follows edgeHub's `MqttUsernameParser`: split on `/`; if the last segment starts with
/// `?` the layout is `host/device/?props` or `host/device/module/?props`, otherwise the old form
/// `host/device[/module]/api-version=...` (DOC-MQTT-2017). Properties are `&`-separated `k=v`
/// pairs whose values are percent-decoded; the first of a repeated key wins; unknown keys are
/// ignored. `api-version` must be non-empty, its value is not checked. Ids are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// The hub host name the client thinks it talks to (`HostName`, not a gateway's name).
    pub host: String,
    /// The device id.
    pub device_id: String,
    /// The module id, for module identities.
    pub module_id: Option<String>,
    /// `api-version`.
    pub api_version: String,
    /// `DeviceClientType`: the SDK's user agent, decoded.
    pub device_client_type: Option<String>,
    /// `model-id`: a PnP model id (DTMI).
    pub model_id: Option<String>,
    /// `auth-chain`: the gateway chain of a nested edge device.
    pub auth_chain: Option<String>,
}

impl Username {
    /// Parses a CONNECT username.
    pub fn parse(username: &str) -> Result<Self, UsernameError> {
        let segments: Vec<&str> = username.split('/').collect();
        let (ids, query) = match segments.split_last() {
            Some((last, ids)) if last.starts_with('?') => (ids, &last[1..]),
            Some((last, ids)) if last.contains("api-version=") => (ids, *last),
            _ => return Err(UsernameError::Shape),
        };
        let (host, device, module) = match ids {
            [host, device] => (host.trim(), device.trim(), None),
            [host, device, module] => (host.trim(), device.trim(), Some(module.trim())),
            _ => return Err(UsernameError::Shape),
        };
        if host.is_empty() {
            return Err(UsernameError::NoHost);
        }
        if device.is_empty() {
            return Err(UsernameError::NoDeviceId);
        }
        if module.is_some_and(str::is_empty) {
            return Err(UsernameError::NoModuleId);
        }
        let find = |key: &str| -> Option<String> {
            query.trim().split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name == key).then(|| decode_lenient(value).into_owned())
            })
        };
        let api_version = find("api-version")
            .filter(|version| !version.trim().is_empty())
            .ok_or(UsernameError::NoApiVersion)?;
        Ok(Username {
            host: host.to_owned(),
            device_id: device.to_owned(),
            module_id: module.map(str::to_owned),
            api_version,
            device_client_type: find("DeviceClientType"),
            model_id: find("model-id").filter(|id| !id.trim().is_empty()),
            auth_chain: find("auth-chain").filter(|chain| !chain.trim().is_empty()),
        })
    }
}

impl FromStr for Username {
    type Err = UsernameError;

    fn from_str(username: &str) -> Result<Self, Self::Err> {
        Self::parse(username)
    }
}

/// The username as the SDKs send it: `{host}/{device}[/{module}]/?api-version=…` followed by
/// `&DeviceClientType=…`, `&model-id=…`, `&auth-chain=…` when set, values escaped.
impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/", self.host, self.device_id)?;
        if let Some(module) = &self.module_id {
            write!(f, "{module}/")?;
        }
        write!(f, "?api-version={}", encode_component(&self.api_version))?;
        let optional = [
            ("DeviceClientType", &self.device_client_type),
            ("model-id", &self.model_id),
            ("auth-chain", &self.auth_chain),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                write!(f, "&{key}={}", encode_component(value))?;
            }
        }
        Ok(())
    }
}
