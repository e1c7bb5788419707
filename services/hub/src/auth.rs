//! Who may connect and call: device SAS tokens (MQTT password, HTTPS `Authorization`) and service
//! SAS tokens of shared access policies. A refusal carries a bounded reason for logs and metrics;
//! tokens themselves are never logged.

use std::sync::Arc;
use std::time::SystemTime;

use iothub_protocol::sas::{ResourceScope, SasToken, VerifyError};

use crate::config::Right;
use crate::policies::Policies;
use crate::registry::{Entry, Registry};

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials were sent.
    MissingCredentials,
    /// The MQTT username is not `{host}/{device}/?api-version=...`.
    MalformedUsername,
    /// The client id does not match the username's device (and module).
    ClientIdMismatch,
    /// The token does not parse.
    MalformedToken,
    /// The token names a host this hub does not answer to.
    UnknownHost,
    /// The token's resource does not cover this device.
    WrongResource,
    /// The token has expired.
    Expired,
    /// The signature matches no key.
    BadSignature,
    /// No such device.
    UnknownDevice,
    /// The device is disabled.
    DisabledDevice,
    /// No such policy.
    UnknownPolicy,
    /// The policy lacks the right needed.
    MissingRight,
}

impl Refusal {
    /// A stable snake_case name, for logs and the `outcome` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MissingCredentials => "missing_credentials",
            Refusal::MalformedUsername => "malformed_username",
            Refusal::ClientIdMismatch => "client_id_mismatch",
            Refusal::MalformedToken => "malformed_token",
            Refusal::UnknownHost => "unknown_host",
            Refusal::WrongResource => "wrong_resource",
            Refusal::Expired => "expired_token",
            Refusal::BadSignature => "bad_signature",
            Refusal::UnknownDevice => "unknown_device",
            Refusal::DisabledDevice => "disabled_device",
            Refusal::UnknownPolicy => "unknown_policy",
            Refusal::MissingRight => "missing_right",
        }
    }
}

/// An authenticated device (or module) connection.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    /// The registry entry.
    pub device: Arc<Entry>,
    /// The module, when a module connected.
    pub module_id: Option<String>,
    /// The `iothub-connection-auth-method` value stamped on its messages.
    pub auth_method: String,
}

/// Checks tokens against the registry and the policies.
#[derive(Debug)]
pub struct Authenticator {
    host_names: Vec<String>,
    registry: Arc<Registry>,
    policies: Arc<Policies>,
}

impl Authenticator {
    /// An authenticator for a hub answering to `host_names`.
    pub fn new(host_names: Vec<String>, registry: Arc<Registry>, policies: Arc<Policies>) -> Self {
        Authenticator {
            host_names,
            registry,
            policies,
        }
    }

    /// Whether `host` is one of this hub's names.
    pub fn is_own_host(&self, host: &str) -> bool {
        self.host_names.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Authenticates `device_id` (and `module_id`) presenting `token` at `now`: the signature over
    /// `sr` exactly as sent, with the device's primary or secondary key (or a DeviceConnect policy's
    /// key with `skn`), not expired, scoped to this device, device enabled.
    pub fn device(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        token: &str,
        now: SystemTime,
    ) -> Result<DeviceIdentity, Refusal> {
        let token = SasToken::parse(token).map_err(|_| Refusal::MalformedToken)?;
        let resource = token.resource();
        if !self.is_own_host(resource.host()) {
            return Err(Refusal::UnknownHost);
        }
        if !resource.grants(resource.host(), device_id, module_id) {
            return Err(Refusal::WrongResource);
        }
        let device = self.registry.entry(device_id).ok_or(Refusal::UnknownDevice)?;
        let verified = match token.key_name() {
            Some(name) => {
                let policy = self.policies.get(name).ok_or(Refusal::UnknownPolicy)?;
                if !policy.may(Right::DeviceConnect) {
                    return Err(Refusal::MissingRight);
                }
                token.verify(&policy.keys, now)
            }
            None => {
                // A device key signs for its own device or module only, not for the whole hub.
                if matches!(resource.scope(), ResourceScope::Hub | ResourceScope::AllDevices) {
                    return Err(Refusal::WrongResource);
                }
                token.verify(device.keys(), now)
            }
        };
        match verified {
            Ok(()) => {}
            Err(VerifyError::Expired { .. }) => return Err(Refusal::Expired),
            Err(VerifyError::SignatureMismatch) => return Err(Refusal::BadSignature),
        }
        if !device.enabled() {
            return Err(Refusal::DisabledDevice);
        }
        let scope = if module_id.is_some() { "module" } else { "device" };
        let auth_method =
            format!(r#"{{"scope":"{scope}","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}}"#);
        Ok(DeviceIdentity {
            device,
            module_id: module_id.map(str::to_owned),
            auth_method,
        })
    }

    /// Authenticates a service call with `Authorization: SharedAccessSignature ...&skn=<policy>`
    /// needing `right`. Returns the policy name.
    pub fn service(
        &self,
        authorization: Option<&str>,
        right: Right,
        now: SystemTime,
    ) -> Result<String, Refusal> {
        let token = SasToken::parse(authorization.ok_or(Refusal::MissingCredentials)?)
            .map_err(|_| Refusal::MalformedToken)?;
        if !self.is_own_host(token.resource().host()) {
            return Err(Refusal::UnknownHost);
        }
        let name = token.key_name().ok_or(Refusal::UnknownPolicy)?;
        let policy = self.policies.get(name).ok_or(Refusal::UnknownPolicy)?;
        match token.verify(&policy.keys, now) {
            Ok(()) => {}
            Err(VerifyError::Expired { .. }) => return Err(Refusal::Expired),
            Err(VerifyError::SignatureMismatch) => return Err(Refusal::BadSignature),
        }
        if !policy.may(right) {
            return Err(Refusal::MissingRight);
        }
        Ok(policy.name.clone())
    }
}
