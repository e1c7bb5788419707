//! The `iothub-connection-auth-method` property: a JSON string saying how the sender authenticated,
//! `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which identity the credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScope {
    /// The device's own credential.
    Device,
    /// A module's credential.
    Module,
    /// A shared access policy of the hub.
    Hub,
}

/// What kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// A SAS token.
    Sas,
    /// A symmetric key used directly (AMQP CBS, HTTPS).
    #[serde(rename = "symkey")]
    SymKey,
    /// An X.509 client certificate.
    X509,
}

/// The parsed property. Serializes with IoT Hub's key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthMethod {
    /// `scope`.
    pub scope: AuthScope,
    /// `type`.
    #[serde(rename = "type")]
    pub kind: AuthType,
    /// `issuer`: always `iothub` from IoT Hub.
    pub issuer: String,
    /// `acceptingIpFilterRule`: the IP filter rule that let the connection in, usually `null`.
    #[serde(rename = "acceptingIpFilterRule", default)]
    pub accepting_ip_filter_rule: Option<String>,
}

/// Why the property text was refused.
#[derive(Debug, thiserror::Error)]
#[error("`iothub-connection-auth-method` is not the expected JSON: {0}")]
pub struct AuthMethodError(#[from] serde_json::Error);

impl AuthMethod {
    /// Issued by `iothub`, no IP filter rule.
    pub fn new(scope: AuthScope, kind: AuthType) -> Self {
        AuthMethod {
            scope,
            kind,
            issuer: "iothub".to_owned(),
            accepting_ip_filter_rule: None,
        }
    }

    /// The property value, as IoT Hub writes it.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and enums to a String cannot fail; the fallback is unreachable.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl FromStr for AuthMethod {
    type Err = AuthMethodError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(serde_json::from_str(text)?)
    }
}
