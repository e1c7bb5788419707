//! `SharedAccessKey`: a base64 symmetric key that never prints, with its HMAC-SHA256 state ready.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a shared access key was refused. The messages never contain the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key text is not standard, padded base64.
    #[error("the shared access key is not valid base64")]
    NotBase64,
    /// The key decodes to no bytes.
    #[error("the shared access key is empty")]
    Empty,
}

/// A symmetric key of a device, module or shared access policy.
///
/// `Debug` and `Display` print `<redacted>`; the key text is only reachable through
/// [`SharedAccessKey::expose_secret`]. Equality is constant-time.
#[derive(Clone)]
pub struct SharedAccessKey {
    base64: String,
    /// HMAC state with the key already absorbed: each signature clones it.
    mac: HmacSha256,
}

impl SharedAccessKey {
    /// A key from its base64 text, as IoT Hub shows it (`AAECAwQF...=`): standard alphabet, padded.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(text).map_err(|_| KeyError::NotBase64)?;
        Self::from_bytes(&bytes)
    }

    /// A key from raw bytes, for example freshly generated random ones (IoT Hub uses 32 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        // HMAC takes keys of any length; the error cannot happen but is not unwrapped.
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| KeyError::Empty)?;
        Ok(SharedAccessKey {
            base64: STANDARD.encode(bytes),
            mac,
        })
    }

    /// The key's base64 text. It is a secret: do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.base64
    }

    /// HMAC-SHA256 of `parts` joined together, keyed with this key.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.mac_of(parts).finalize().into_bytes().into()
    }

    /// Whether `signature` is the HMAC-SHA256 of `parts`, compared in constant time.
    pub(crate) fn verify(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        self.mac_of(parts).verify_slice(signature).is_ok()
    }

    fn mac_of(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac
    }
}

impl PartialEq for SharedAccessKey {
    fn eq(&self, other: &Self) -> bool {
        self.base64.as_bytes().ct_eq(other.base64.as_bytes()).into()
    }
}

impl Eq for SharedAccessKey {}

impl fmt::Debug for SharedAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedAccessKey(<redacted>)")
    }
}

impl fmt::Display for SharedAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
