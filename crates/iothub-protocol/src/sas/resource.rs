//! The resource URI a SAS token is scoped to (`{host}[/devices[/{d}[/modules/{m}]]]`).

use std::fmt;

use crate::encoding::{decode_lenient, decode_strict};

/// How far a token reaches on its hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceScope {
    /// `{host}`: the whole hub, signed with a shared access policy key (`skn=...`).
    Hub,
    /// `{host}/devices`: every device and module (a gateway's token).
    AllDevices,
    /// `{host}/devices/{device_id}`: one device and its modules.
    Device {
        /// The device id, URL-decoded.
        device_id: String,
    },
    /// `{host}/devices/{device_id}/modules/{module_id}`: one module.
    Module {
        /// The device id, URL-decoded.
        device_id: String,
        /// The module id, URL-decoded.
        module_id: String,
    },
}

/// Why a resource URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Percent-decoding gave bytes that are not UTF-8.
    #[error("is not UTF-8 once URL-decoded")]
    NotUtf8,
    /// The URI has no host name.
    #[error("has no host name")]
    NoHost,
    /// A segment between two `/` is empty.
    #[error("has an empty segment")]
    EmptySegment,
    /// A segment is not the one IoT Hub expects there.
    #[error(
        "must look like `{{host}}/devices/{{deviceId}}[/modules/{{moduleId}}]`, found `{found}` at segment {position}"
    )]
    UnexpectedSegment {
        /// 1-based position of the segment after the host.
        position: usize,
        /// The segment as found.
        found: String,
    },
    /// `…/modules` without a module id, or segments after the module id.
    #[error("must look like `{{host}}/devices/{{deviceId}}[/modules/{{moduleId}}]`")]
    BadShape,
}

/// A decoded resource URI: host name plus scope.
///
/// Parsing follows edgeHub: URL-decode the `sr` text once, split it on `/`, then URL-decode each
/// segment again (the C# SDK escapes the device id inside the URI before escaping the whole URI; the
/// Python SDK does not, and a second decode leaves such ids alone unless they contain `%XX`). The
/// literals `devices` and `modules` are matched case-insensitively; ids are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceUri {
    host: String,
    scope: ResourceScope,
}

impl ResourceUri {
    /// The hub itself: `{host}`.
    pub fn hub(host: impl Into<String>) -> Self {
        Self::new(host, ResourceScope::Hub)
    }

    /// A device: `{host}/devices/{device_id}`.
    pub fn device(host: impl Into<String>, device_id: impl Into<String>) -> Self {
        let device_id = device_id.into();
        Self::new(host, ResourceScope::Device { device_id })
    }

    /// A module: `{host}/devices/{device_id}/modules/{module_id}`.
    pub fn module(
        host: impl Into<String>,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
    ) -> Self {
        let (device_id, module_id) = (device_id.into(), module_id.into());
        Self::new(host, ResourceScope::Module { device_id, module_id })
    }

    /// A resource with any scope.
    pub fn new(host: impl Into<String>, scope: ResourceScope) -> Self {
        ResourceUri {
            host: host.into(),
            scope,
        }
    }

    /// Parses the `sr` field of a token as sent (URL-encoded).
    pub fn parse_encoded(sr: &str) -> Result<Self, ResourceError> {
        let uri = decode_strict(sr).ok_or(ResourceError::NotUtf8)?;
        Self::parse(&uri)
    }

    /// Parses a resource URI that is already URL-decoded once (`myhub.azure-devices.net/devices/d1`).
    pub fn parse(uri: &str) -> Result<Self, ResourceError> {
        let mut segments = uri.split('/');
        let host = segments.next().unwrap_or_default();
        if host.is_empty() {
            return Err(ResourceError::NoHost);
        }
        let rest: Vec<&str> = segments.collect();
        if rest.iter().any(|segment| segment.is_empty()) {
            return Err(ResourceError::EmptySegment);
        }
        let expect = |position: usize, literal: &str| match rest.get(position - 1) {
            Some(found) if !found.eq_ignore_ascii_case(literal) => Err(ResourceError::UnexpectedSegment {
                position,
                found: (*found).to_owned(),
            }),
            _ => Ok(()),
        };
        expect(1, "devices")?;
        expect(3, "modules")?;
        let id = |segment: &str| decode_lenient(segment).into_owned();
        let scope = match rest.as_slice() {
            [] => ResourceScope::Hub,
            [_] => ResourceScope::AllDevices,
            [_, device] => ResourceScope::Device {
                device_id: id(device),
            },
            [_, device, _, module] => ResourceScope::Module {
                device_id: id(device),
                module_id: id(module),
            },
            _ => return Err(ResourceError::BadShape),
        };
        Ok(Self::new(host, scope))
    }

    /// The host name, as written in the URI.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The scope below the host.
    pub fn scope(&self) -> &ResourceScope {
        &self.scope
    }

    /// The device id, for device and module scopes.
    pub fn device_id(&self) -> Option<&str> {
        match &self.scope {
            ResourceScope::Device { device_id } | ResourceScope::Module { device_id, .. } => Some(device_id),
            ResourceScope::Hub | ResourceScope::AllDevices => None,
        }
    }

    /// The module id, for module scopes.
    pub fn module_id(&self) -> Option<&str> {
        match &self.scope {
            ResourceScope::Module { module_id, .. } => Some(module_id),
            _ => None,
        }
    }

    /// Whether this is the hub itself: a policy (service) token's resource.
    pub fn is_hub_level(&self) -> bool {
        self.scope == ResourceScope::Hub
    }

    /// Whether a token for this resource reaches device `device_id` (or its module `module_id`) on
    /// `host`. Prefix match by segment, as IoT Hub does: `…/devices/d1` covers `…/devices/d1/modules/m`
    /// but not `…/devices/d10`. Host names compare case-insensitively, ids exactly.
    pub fn grants(&self, host: &str, device_id: &str, module_id: Option<&str>) -> bool {
        if !self.host.eq_ignore_ascii_case(host) {
            return false;
        }
        match &self.scope {
            ResourceScope::Hub | ResourceScope::AllDevices => true,
            ResourceScope::Device { device_id: d } => d == device_id,
            ResourceScope::Module {
                device_id: d,
                module_id: m,
            } => d == device_id && Some(m.as_str()) == module_id,
        }
    }
}

/// The URI as the Python SDK builds it before signing: segments are not escaped.
impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        match &self.scope {
            ResourceScope::Hub => Ok(()),
            ResourceScope::AllDevices => f.write_str("/devices"),
            ResourceScope::Device { device_id } => write!(f, "/devices/{device_id}"),
            ResourceScope::Module { device_id, module_id } => {
                write!(f, "/devices/{device_id}/modules/{module_id}")
            }
        }
    }
}
