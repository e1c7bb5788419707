//! IoT Hub connection strings: a device's (`HostName=…;DeviceId=…;SharedAccessKey=…`) and a shared
//! access policy's (`HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`).
//!
//! Rules, after the Python SDK's `connection_string.py`: `;`-separated `Key=Value` pairs split on the
//! first `=` (base64 keys end in `=`), case-sensitive keys from a fixed set, each at most once. A
//! string with `DeviceId` is a device's, otherwise a policy's. Empty pieces (a trailing `;`) are
//! skipped. Errors name the key, never a value.

use std::fmt;
use std::str::FromStr;

use crate::sas::{ResourceUri, SasError, SasToken, SharedAccessKey};

const HOST_NAME: &str = "HostName";
const DEVICE_ID: &str = "DeviceId";
const MODULE_ID: &str = "ModuleId";
const GATEWAY_HOST_NAME: &str = "GatewayHostName";
const SHARED_ACCESS_KEY_NAME: &str = "SharedAccessKeyName";
const SHARED_ACCESS_KEY: &str = "SharedAccessKey";
const SHARED_ACCESS_SIGNATURE: &str = "SharedAccessSignature";
const X509: &str = "x509";

/// Keys in the order they are rendered.
const KEYS: [&str; 8] = [
    HOST_NAME,
    DEVICE_ID,
    MODULE_ID,
    SHARED_ACCESS_KEY_NAME,
    SHARED_ACCESS_KEY,
    SHARED_ACCESS_SIGNATURE,
    X509,
    GATEWAY_HOST_NAME,
];

/// Why a connection string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    /// A piece between `;` has no `=`.
    #[error("connection string part {0} is not `Key=Value`")]
    NotKeyValue(usize),
    /// A key outside the known set (keys are case-sensitive).
    #[error(
        "unknown connection string key `{0}` (known: HostName, DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, x509, GatewayHostName)"
    )]
    UnknownKey(String),
    /// A key appears twice.
    #[error("connection string key `{0}` appears twice")]
    DuplicateKey(&'static str),
    /// A required key is missing (or its value is empty).
    #[error("connection string has no `{0}`")]
    MissingKey(&'static str),
    /// A key that this kind of connection string does not take.
    #[error("connection string key `{0}` needs a `DeviceId`")]
    NeedsDeviceId(&'static str),
    /// More than one of `SharedAccessKey`, `SharedAccessSignature`, `x509=true`.
    #[error(
        "connection string mixes authentication schemes: use one of SharedAccessKey, SharedAccessSignature, x509=true"
    )]
    MixedCredentials,
    /// A value is malformed.
    #[error("connection string value of `{key}` {reason}")]
    InvalidValue {
        /// The key whose value is wrong.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// How a device proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCredential {
    /// A symmetric key to sign SAS tokens with.
    SharedAccessKey(SharedAccessKey),
    /// A ready-made token.
    SharedAccessSignature(SasToken),
    /// `x509=true`: a client certificate, configured elsewhere.
    X509,
}

/// A device's (or module's) connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConnectionString {
    host_name: String,
    device_id: String,
    module_id: Option<String>,
    gateway_host_name: Option<String>,
    key_name: Option<String>,
    credential: DeviceCredential,
}

/// A shared access policy's connection string (registry and service APIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConnectionString {
    host_name: String,
    key_name: String,
    key: SharedAccessKey,
}

/// Either kind, as told by the presence of `DeviceId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionString {
    /// Has `DeviceId`.
    Device(DeviceConnectionString),
    /// Has `SharedAccessKeyName` and no `DeviceId`.
    Service(ServiceConnectionString),
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let pairs = Pairs::parse(text)?;
        if pairs.get(DEVICE_ID).is_some() {
            DeviceConnectionString::from_pairs(&pairs).map(ConnectionString::Device)
        } else {
            ServiceConnectionString::from_pairs(&pairs).map(ConnectionString::Service)
        }
    }
}

impl DeviceConnectionString {
    /// A device connection string; fails when a value is empty or contains `;`.
    pub fn new(
        host_name: impl Into<String>,
        device_id: impl Into<String>,
        credential: DeviceCredential,
    ) -> Result<Self, ConnectionStringError> {
        Ok(DeviceConnectionString {
            host_name: checked(HOST_NAME, host_name.into())?,
            device_id: checked(DEVICE_ID, device_id.into())?,
            module_id: None,
            gateway_host_name: None,
            key_name: None,
            credential,
        })
    }

    /// The same, for module `module_id`.
    pub fn with_module_id(mut self, module_id: impl Into<String>) -> Result<Self, ConnectionStringError> {
        self.module_id = Some(checked(MODULE_ID, module_id.into())?);
        Ok(self)
    }

    /// The same, connecting through gateway `host` (for example a local hub on `localhost`).
    pub fn with_gateway_host_name(mut self, host: impl Into<String>) -> Result<Self, ConnectionStringError> {
        self.gateway_host_name = Some(checked(GATEWAY_HOST_NAME, host.into())?);
        Ok(self)
    }

    fn from_pairs(pairs: &Pairs<'_>) -> Result<Self, ConnectionStringError> {
        let host_name = pairs.required(HOST_NAME)?;
        let device_id = pairs.required(DEVICE_ID)?;
        let x509 = match pairs.get(X509) {
            None => false,
            Some(value) if value.eq_ignore_ascii_case("true") => true,
            Some(value) if value.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(invalid(X509, "must be `true` or `false`")),
        };
        let key = pairs.get(SHARED_ACCESS_KEY);
        let token = pairs.get(SHARED_ACCESS_SIGNATURE);
        let credential = match (key, token, x509) {
            (Some(key), None, false) => DeviceCredential::SharedAccessKey(
                SharedAccessKey::from_base64(key).map_err(|e| invalid(SHARED_ACCESS_KEY, e))?,
            ),
            (None, Some(token), false) => DeviceCredential::SharedAccessSignature(
                SasToken::parse(token).map_err(|e: SasError| invalid(SHARED_ACCESS_SIGNATURE, e))?,
            ),
            (None, None, true) => DeviceCredential::X509,
            (None, None, false) => return Err(ConnectionStringError::MissingKey(SHARED_ACCESS_KEY)),
            _ => return Err(ConnectionStringError::MixedCredentials),
        };
        Ok(DeviceConnectionString {
            host_name: host_name.to_owned(),
            device_id: device_id.to_owned(),
            module_id: pairs.get(MODULE_ID).map(str::to_owned),
            gateway_host_name: pairs.get(GATEWAY_HOST_NAME).map(str::to_owned),
            key_name: pairs.get(SHARED_ACCESS_KEY_NAME).map(str::to_owned),
            credential,
        })
    }

    /// `HostName`: the hub's host name, which also appears in the MQTT username and token resource.
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// `DeviceId`.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// `ModuleId`, for a module identity.
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }

    /// `GatewayHostName`: where to open the connection instead of `HostName`.
    pub fn gateway_host_name(&self) -> Option<&str> {
        self.gateway_host_name.as_deref()
    }

    /// `SharedAccessKeyName`, when the key is a policy's rather than the device's own.
    pub fn shared_access_key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// The credential.
    pub fn credential(&self) -> &DeviceCredential {
        &self.credential
    }

    /// The host to connect to: `GatewayHostName` if set, else `HostName` (as the Python SDK does).
    pub fn connect_host(&self) -> &str {
        self.gateway_host_name.as_deref().unwrap_or(&self.host_name)
    }

    /// The resource URI the identity's tokens are scoped to.
    pub fn resource_uri(&self) -> ResourceUri {
        match &self.module_id {
            Some(module) => ResourceUri::module(&self.host_name, &self.device_id, module),
            None => ResourceUri::device(&self.host_name, &self.device_id),
        }
    }

    /// A token valid until `expiry`: signed with the key, or the string's own token; `None` for x509.
    pub fn sas_token(&self, expiry: u64) -> Option<SasToken> {
        match &self.credential {
            DeviceCredential::SharedAccessKey(key) => Some(SasToken::generate(
                &self.resource_uri(),
                key,
                self.key_name.as_deref(),
                expiry,
            )),
            DeviceCredential::SharedAccessSignature(token) => Some(token.clone()),
            DeviceCredential::X509 => None,
        }
    }

    /// The full connection string, secrets included. Do not log it.
    pub fn expose_secret(&self) -> String {
        self.render(true)
    }

    fn render(&self, secrets: bool) -> String {
        let secret = |value: String| if secrets { value } else { "<redacted>".to_owned() };
        let mut pairs = vec![
            (HOST_NAME, self.host_name.clone()),
            (DEVICE_ID, self.device_id.clone()),
        ];
        if let Some(module) = &self.module_id {
            pairs.push((MODULE_ID, module.clone()));
        }
        if let Some(name) = &self.key_name {
            pairs.push((SHARED_ACCESS_KEY_NAME, name.clone()));
        }
        match &self.credential {
            DeviceCredential::SharedAccessKey(key) => {
                pairs.push((SHARED_ACCESS_KEY, secret(key.expose_secret().to_owned())));
            }
            DeviceCredential::SharedAccessSignature(token) => {
                pairs.push((SHARED_ACCESS_SIGNATURE, secret(token.expose_secret())));
            }
            DeviceCredential::X509 => pairs.push((X509, "true".to_owned())),
        }
        if let Some(gateway) = &self.gateway_host_name {
            pairs.push((GATEWAY_HOST_NAME, gateway.clone()));
        }
        join(&pairs)
    }
}

/// The connection string with secrets shown as `<redacted>`.
impl fmt::Display for DeviceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl FromStr for DeviceConnectionString {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let pairs = Pairs::parse(text)?;
        pairs.required(DEVICE_ID)?;
        Self::from_pairs(&pairs)
    }
}

impl ServiceConnectionString {
    /// A policy connection string; fails when a value is empty or contains `;`.
    pub fn new(
        host_name: impl Into<String>,
        key_name: impl Into<String>,
        key: SharedAccessKey,
    ) -> Result<Self, ConnectionStringError> {
        Ok(ServiceConnectionString {
            host_name: checked(HOST_NAME, host_name.into())?,
            key_name: checked(SHARED_ACCESS_KEY_NAME, key_name.into())?,
            key,
        })
    }

    fn from_pairs(pairs: &Pairs<'_>) -> Result<Self, ConnectionStringError> {
        let host_name = pairs.required(HOST_NAME)?;
        let key_name = pairs.required(SHARED_ACCESS_KEY_NAME)?;
        for device_only in [MODULE_ID, GATEWAY_HOST_NAME, SHARED_ACCESS_SIGNATURE, X509] {
            if pairs.get(device_only).is_some() {
                return Err(ConnectionStringError::NeedsDeviceId(device_only));
            }
        }
        let key = SharedAccessKey::from_base64(pairs.required(SHARED_ACCESS_KEY)?)
            .map_err(|e| invalid(SHARED_ACCESS_KEY, e))?;
        Ok(ServiceConnectionString {
            host_name: host_name.to_owned(),
            key_name: key_name.to_owned(),
            key,
        })
    }

    /// `HostName`.
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// `SharedAccessKeyName`: the policy name (`iothubowner`, `registryReadWrite`, ...).
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// `SharedAccessKey`: the policy's key.
    pub fn key(&self) -> &SharedAccessKey {
        &self.key
    }

    /// A hub-level token (`sr={host}`, `skn={policy}`) valid until `expiry`.
    pub fn sas_token(&self, expiry: u64) -> SasToken {
        let resource = ResourceUri::hub(&self.host_name);
        SasToken::generate(&resource, &self.key, Some(&self.key_name), expiry)
    }

    /// The full connection string, key included. Do not log it.
    pub fn expose_secret(&self) -> String {
        self.render(self.key.expose_secret())
    }

    fn render(&self, key: &str) -> String {
        join(&[
            (HOST_NAME, self.host_name.clone()),
            (SHARED_ACCESS_KEY_NAME, self.key_name.clone()),
            (SHARED_ACCESS_KEY, key.to_owned()),
        ])
    }
}

/// The connection string with the key shown as `<redacted>`.
impl fmt::Display for ServiceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("<redacted>"))
    }
}

impl FromStr for ServiceConnectionString {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let pairs = Pairs::parse(text)?;
        if pairs.get(DEVICE_ID).is_some() {
            return Err(ConnectionStringError::UnknownKey(DEVICE_ID.to_owned()));
        }
        Self::from_pairs(&pairs)
    }
}

impl ConnectionString {
    /// `HostName`, whichever kind.
    pub fn host_name(&self) -> &str {
        match self {
            ConnectionString::Device(device) => device.host_name(),
            ConnectionString::Service(service) => service.host_name(),
        }
    }

    /// The full connection string, secrets included. Do not log it.
    pub fn expose_secret(&self) -> String {
        match self {
            ConnectionString::Device(device) => device.expose_secret(),
            ConnectionString::Service(service) => service.expose_secret(),
        }
    }
}

/// The connection string with secrets shown as `<redacted>`.
impl fmt::Display for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionString::Device(device) => device.fmt(f),
            ConnectionString::Service(service) => service.fmt(f),
        }
    }
}

/// The recognised pairs of one connection string, indexed like [`KEYS`].
struct Pairs<'a>([Option<&'a str>; KEYS.len()]);

impl<'a> Pairs<'a> {
    fn parse(text: &'a str) -> Result<Self, ConnectionStringError> {
        let mut values = [None; KEYS.len()];
        for (index, piece) in text.trim().split(';').enumerate() {
            if piece.is_empty() {
                continue;
            }
            let (key, value) = piece
                .split_once('=')
                .ok_or(ConnectionStringError::NotKeyValue(index + 1))?;
            let slot = KEYS
                .iter()
                .position(|known| *known == key)
                .ok_or_else(|| ConnectionStringError::UnknownKey(key.to_owned()))?;
            if values[slot].replace(value).is_some() {
                return Err(ConnectionStringError::DuplicateKey(KEYS[slot]));
            }
        }
        Ok(Pairs(values))
    }

    /// The value of `key`; an empty value counts as absent.
    fn get(&self, key: &str) -> Option<&'a str> {
        let slot = KEYS.iter().position(|known| *known == key)?;
        self.0[slot].filter(|value| !value.is_empty())
    }

    fn required(&self, key: &'static str) -> Result<&'a str, ConnectionStringError> {
        self.get(key).ok_or(ConnectionStringError::MissingKey(key))
    }
}

fn invalid(key: &'static str, reason: impl fmt::Display) -> ConnectionStringError {
    ConnectionStringError::InvalidValue {
        key,
        reason: reason.to_string(),
    }
}

fn checked(key: &'static str, value: String) -> Result<String, ConnectionStringError> {
    if value.is_empty() {
        Err(ConnectionStringError::MissingKey(key))
    } else if value.contains(';') {
        Err(invalid(key, "must not contain `;`"))
    } else {
        Ok(value)
    }
}

fn join(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(";")
}
