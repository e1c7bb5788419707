//! Shared access signature (SAS) tokens: parse, verify against a key, generate like the Python SDK.
//!
//! A token reads `SharedAccessSignature sr={resource}&sig={signature}&se={expiry}[&skn={policy}]`,
//! fields in any order. The signature is base64(HMAC-SHA256(key, sr + "\n" + se)) over the `sr`
//! text *exactly as sent*: `%2F` and `%2f` give different signatures, so `sr` is kept raw (edgeHub
//! does the same) and only decoded to learn which device it names.
//!
//! Parsing follows edgeHub's `SharedAccessSignature.Parse`: field names are case-insensitive, a
//! field may appear once, unknown fields are ignored. Values other than `sr` are percent-decoded
//! (`+` stays a plus, so an unescaped base64 `+` in `sig` still works).

mod key;
mod resource;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

pub use key::{KeyError, SharedAccessKey};
pub use resource::{ResourceError, ResourceScope, ResourceUri};

use crate::encoding::{decode_strict, encode_component};

/// The token's leading word.
pub const SCHEME: &str = "SharedAccessSignature";

/// How long after `se` a token is still accepted: edgeHub's `MaxClockSkew`, 5 minutes.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why a token could not be parsed. Messages name the field and never contain the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    /// The text does not start with `SharedAccessSignature` and a space.
    #[error("a SAS token must start with `SharedAccessSignature ` followed by its fields")]
    MissingScheme,
    /// Whitespace inside the field list.
    #[error("the SAS token's fields must not contain whitespace")]
    Whitespace,
    /// A `&`-separated piece has no `=`.
    #[error("a field of the SAS token is not `name=value`")]
    NotNameValue,
    /// A required field (`sr`, `sig`, `se`) is missing or empty.
    #[error("the SAS token has no `{0}` field")]
    MissingField(&'static str),
    /// A field appears twice.
    #[error("the SAS token has the `{0}` field twice")]
    DuplicateField(&'static str),
    /// A field's value is malformed.
    #[error("the SAS token's `{field}` field {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `sr` field does not name an IoT Hub resource.
    #[error("the SAS token's `sr` field {0}")]
    InvalidResource(#[from] ResourceError),
}

/// Why a well-formed token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `se` plus [`MAX_CLOCK_SKEW`] is in the past.
    #[error("the SAS token expired at {expiry} (seconds since the epoch), more than 5 minutes ago")]
    Expired {
        /// The token's `se`.
        expiry: u64,
    },
    /// The signature matches none of the keys tried.
    #[error("the SAS token's signature matches none of the keys")]
    SignatureMismatch,
}

/// A parsed or generated SAS token.
///
/// It is a bearer credential: `Debug` redacts the signature and there is no `Display`; the token
/// text is reachable through [`SasToken::expose_secret`].
#[derive(Clone)]
pub struct SasToken {
    resource_raw: String,
    resource: ResourceUri,
    signature: Vec<u8>,
    expiry_raw: String,
    expiry: u64,
    key_name: Option<String>,
}

impl SasToken {
    /// Parses `SharedAccessSignature sr=...&sig=...&se=...[&skn=...]`.
    pub fn parse(token: &str) -> Result<Self, SasError> {
        let token = token.trim();
        let rest = token.strip_prefix(SCHEME).ok_or(SasError::MissingScheme)?;
        let fields = rest.trim_start();
        if fields.len() == rest.len() {
            return Err(SasError::MissingScheme);
        }
        if fields.contains(char::is_whitespace) {
            return Err(SasError::Whitespace);
        }
        let mut found = Fields::default();
        for piece in fields.split('&').filter(|piece| !piece.is_empty()) {
            let (name, value) = piece.split_once('=').ok_or(SasError::NotNameValue)?;
            found.set(name, value)?;
        }
        Self::from_fields(found)
    }

    fn from_fields(found: Fields<'_>) -> Result<Self, SasError> {
        let required = |value: Option<&str>, field| match value {
            Some(value) if !value.is_empty() => Ok(value.to_owned()),
            _ => Err(SasError::MissingField(field)),
        };
        let resource_raw = required(found.sr, "sr")?;
        let signature_text = required(found.sig, "sig")?;
        let expiry_text = required(found.se, "se")?;
        let resource = ResourceUri::parse_encoded(&resource_raw)?;

        let invalid = |field, reason| SasError::InvalidField { field, reason };
        let signature = decode_strict(&signature_text)
            .and_then(|text| STANDARD.decode(text.as_bytes()).ok())
            .ok_or(invalid("sig", "is not base64"))?;
        let expiry_raw = decode_strict(&expiry_text)
            .ok_or(invalid("se", "is not UTF-8"))?
            .into_owned();
        let expiry = parse_seconds(&expiry_raw)
            .ok_or(invalid("se", "is not a whole number of seconds since the epoch"))?;
        let key_name = match found.skn.map(decode_strict) {
            None => None,
            Some(None) => return Err(invalid("skn", "is not UTF-8")),
            Some(Some(name)) if name.is_empty() => None,
            Some(Some(name)) => Some(name.into_owned()),
        };
        Ok(SasToken {
            resource_raw,
            resource,
            signature,
            expiry_raw,
            expiry,
            key_name,
        })
    }

    /// Signs `resource` with `key` as the Python SDK does: `sr` is the URI with everything but
    /// unreserved characters escaped in uppercase (`%2F`), and `sig` is escaped the same way.
    pub fn generate(
        resource: &ResourceUri,
        key: &SharedAccessKey,
        key_name: Option<&str>,
        expiry: u64,
    ) -> Self {
        let resource_raw = encode_component(&resource.to_string()).into_owned();
        let expiry_raw = expiry.to_string();
        let signature = key
            .sign(&[resource_raw.as_bytes(), b"\n", expiry_raw.as_bytes()])
            .to_vec();
        SasToken {
            resource_raw,
            resource: resource.clone(),
            signature,
            expiry_raw,
            expiry,
            key_name: key_name.filter(|name| !name.is_empty()).map(str::to_owned),
        }
    }

    /// The `sr` field exactly as received (what the signature covers).
    pub fn resource_raw(&self) -> &str {
        &self.resource_raw
    }

    /// The decoded resource the token is scoped to.
    pub fn resource(&self) -> &ResourceUri {
        &self.resource
    }

    /// `se`: expiry in seconds since the Unix epoch.
    pub fn expiry(&self) -> u64 {
        self.expiry
    }

    /// `skn`: the shared access policy name, for policy-signed tokens.
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// Whether the token is expired at `now`: edgeHub rejects it once `se` is more than
    /// [`MAX_CLOCK_SKEW`] in the past.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        Duration::from_secs(self.expiry).saturating_add(MAX_CLOCK_SKEW) < now
    }

    /// Whether the signature was made with `key`, compared in constant time.
    pub fn signature_matches(&self, key: &SharedAccessKey) -> bool {
        let parts: [&[u8]; 3] = [self.resource_raw.as_bytes(), b"\n", self.expiry_raw.as_bytes()];
        key.verify(&parts, &self.signature)
    }

    /// Checks expiry at `now`, then the signature against each key in turn (primary, secondary).
    pub fn verify<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k SharedAccessKey>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        if self.is_expired(now) {
            return Err(VerifyError::Expired { expiry: self.expiry });
        }
        if keys.into_iter().any(|key| self.signature_matches(key)) {
            Ok(())
        } else {
            Err(VerifyError::SignatureMismatch)
        }
    }

    /// The token text (`SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`), for an MQTT password or
    /// an `Authorization` header. It is a secret: do not log it.
    pub fn expose_secret(&self) -> String {
        let signature = STANDARD.encode(&self.signature);
        let mut text = format!(
            "{SCHEME} sr={}&sig={}&se={}",
            self.resource_raw,
            encode_component(&signature),
            encode_component(&self.expiry_raw)
        );
        if let Some(name) = &self.key_name {
            text.push_str("&skn=");
            text.push_str(&encode_component(name));
        }
        text
    }
}

/// Same fields; the signatures are compared in constant time.
impl PartialEq for SasToken {
    fn eq(&self, other: &Self) -> bool {
        self.resource_raw == other.resource_raw
            && self.expiry_raw == other.expiry_raw
            && self.key_name == other.key_name
            && bool::from(self.signature.ct_eq(&other.signature))
    }
}

impl Eq for SasToken {}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("sr", &self.resource_raw)
            .field("sig", &"<redacted>")
            .field("se", &self.expiry)
            .field("skn", &self.key_name)
            .finish()
    }
}

/// The expiry (`se`) of a token that lives `ttl` from `now`, truncated to whole seconds like
/// Python's `int(time.time() + ttl)`.
pub fn expiry_after(now: SystemTime, ttl: Duration) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(ttl)
        .as_secs()
}

/// The fields found so far, by case-insensitive name.
#[derive(Default)]
struct Fields<'a> {
    sr: Option<&'a str>,
    sig: Option<&'a str>,
    se: Option<&'a str>,
    skn: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn set(&mut self, name: &str, value: &'a str) -> Result<(), SasError> {
        let (slot, field) = match name.to_ascii_lowercase().as_str() {
            "sr" => (&mut self.sr, "sr"),
            "sig" => (&mut self.sig, "sig"),
            "se" => (&mut self.se, "se"),
            "skn" => (&mut self.skn, "skn"),
            _ => return Ok(()),
        };
        if slot.replace(value).is_some() {
            return Err(SasError::DuplicateField(field));
        }
        Ok(())
    }
}

/// ASCII digits only: `u64::from_str` would also take a leading `+`.
fn parse_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
