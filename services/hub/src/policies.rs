//! Shared access policies (`iothubowner`, `registryRead`, ...): keys from the configuration, or
//! generated once and kept in the registry store.

use iothub_protocol::sas::SharedAccessKey;
use secrecy::ExposeSecret as _;

use crate::config::{PolicyConfig, Right};
use crate::registry::{Registry, RegistryError, generate_key};

/// A policy with its keys decoded.
#[derive(Debug)]
pub struct Policy {
    /// The name, `skn` in tokens.
    pub name: String,
    /// Primary and secondary key.
    pub keys: [SharedAccessKey; 2],
    /// What it may do.
    pub rights: Vec<Right>,
}

impl Policy {
    /// Whether it has `right`.
    pub fn may(&self, right: Right) -> bool {
        self.rights.contains(&right)
    }
}

/// All policies.
#[derive(Debug)]
pub struct Policies(Vec<Policy>);

impl Policies {
    /// Builds the policies, generating and storing keys the configuration leaves out.
    pub fn load(configs: &[PolicyConfig], registry: &Registry) -> Result<Policies, RegistryError> {
        let mut policies = Vec::with_capacity(configs.len());
        for config in configs {
            let stored = registry.store().policy_keys(&config.name)?;
            let (stored_primary, stored_secondary) = stored.unwrap_or_default();
            let pick = |configured: &Option<secrecy::SecretString>, stored: String| match configured {
                Some(key) => key.expose_secret().to_owned(),
                None if !stored.is_empty() => stored,
                None => generate_key(),
            };
            let primary = pick(&config.primary_key, stored_primary);
            let secondary = pick(&config.secondary_key, stored_secondary);
            registry
                .store()
                .put_policy_keys(&config.name, &primary, &secondary)?;
            let decode = |which: &str, text: &str| {
                SharedAccessKey::from_base64(text)
                    .map_err(|e| RegistryError::Invalid(format!("policies.{}.{which}: {e}", config.name)))
            };
            policies.push(Policy {
                name: config.name.clone(),
                keys: [
                    decode("primary_key", &primary)?,
                    decode("secondary_key", &secondary)?,
                ],
                rights: config.rights.clone(),
            });
        }
        Ok(Policies(policies))
    }

    /// The policy `name`.
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.0.iter().find(|p| p.name == name)
    }

    /// Every policy.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.0.iter()
    }
}
