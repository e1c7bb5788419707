//! Standard Webhooks v1 signatures (symmetric HMAC-SHA256): the `whsec_` secret format, signing the
//! `webhook-signature` header, and verifying it the way the reference libraries do.
//!
//! The signed content is `{msg_id}.{timestamp}.{payload}` over the exact bytes sent; the header value
//! is `v1,<base64 HMAC>`, and a header may carry several space-separated signatures so that a key can
//! be rotated without downtime (sign with both keys while receivers move over).

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// How far a `webhook-timestamp` may be from the verifier's clock, in either direction.
pub const TOLERANCE_SECS: i64 = 300;
/// The prefix of a symmetric Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes accepted (192 bits, as the spec asks).
pub const MIN_SECRET_BYTES: usize = 24;
/// Most key bytes accepted (512 bits).
pub const MAX_SECRET_BYTES: usize = 64;
/// Key bytes in a secret made by [`SigningSecret::generate`].
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The signature scheme id of HMAC-SHA256 signatures.
const SCHEME: &str = "v1";

/// Standard base64, padding optional (secrets are copied around by hand; some tools drop the `=`).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A symmetric signing key. The bytes are zeroed on drop and never printed.
#[derive(Clone)]
pub struct SigningSecret {
    key: SecretSlice<u8>,
}

/// Why a text is not a usable `whsec_` secret. Messages never include the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text does not start with `whsec_`.
    #[error("signing secret must start with \"whsec_\" (Standard Webhooks symmetric secret)")]
    MissingPrefix,
    /// What follows the prefix is not standard base64.
    #[error("signing secret is not valid base64 after \"whsec_\"")]
    NotBase64,
    /// The key is shorter than 24 bytes.
    #[error("signing secret is {len} bytes; at least {MIN_SECRET_BYTES} are required")]
    TooShort {
        /// Decoded key length.
        len: usize,
    },
    /// The key is longer than 64 bytes.
    #[error("signing secret is {len} bytes; at most {MAX_SECRET_BYTES} are allowed")]
    TooLong {
        /// Decoded key length.
        len: usize,
    },
    /// The operating system's random number generator failed.
    #[error("could not get random bytes from the operating system")]
    Random,
}

/// Why a webhook's signature headers were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header is absent or empty; names it.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer number of seconds.
    #[error("webhook-timestamp is not an integer Unix time")]
    InvalidTimestamp,
    /// `webhook-timestamp` is more than [`TOLERANCE_SECS`] in the past.
    #[error("webhook-timestamp is too old")]
    TimestampTooOld,
    /// `webhook-timestamp` is more than [`TOLERANCE_SECS`] in the future.
    #[error("webhook-timestamp is too far in the future")]
    FutureTimestamp,
    /// No `v1` signature in the header matches any of the secrets.
    #[error("no matching signature")]
    NoMatchingSignature,
}

impl SigningSecret {
    /// Parses `whsec_<base64>` (standard alphabet, padding optional; surrounding whitespace, such
    /// as the newline at the end of a mounted secret file, is ignored).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = LENIENT_BASE64
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        let key = SecretSlice::from(key);
        match key.expose_secret().len() {
            len if len < MIN_SECRET_BYTES => Err(SecretError::TooShort { len }),
            len if len > MAX_SECRET_BYTES => Err(SecretError::TooLong { len }),
            _ => Ok(Self { key }),
        }
    }

    /// A fresh secret of [`GENERATED_SECRET_BYTES`] random bytes, as `whsec_<base64>`.
    ///
    /// The bytes come from the operating system's CSPRNG through `ring` (already linked for TLS),
    /// not from `fastrand`, whose generator is not meant for keys.
    pub fn generate() -> Result<String, SecretError> {
        let mut key = SecretSlice::from(vec![0_u8; GENERATED_SECRET_BYTES]);
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(secrecy::ExposeSecretMut::expose_secret_mut(&mut key))
            .map_err(|_| SecretError::Random)?;
        Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(key.expose_secret())))
    }

    /// The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256>` of
    /// `{msg_id}.{timestamp}.{payload}`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
        let mac = self.mac(msg_id, &timestamp.to_string(), payload);
        format!("{SCHEME},{}", STANDARD.encode(mac))
    }

    fn mac(&self, msg_id: &str, timestamp: &str, payload: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length, so this cannot fail; an empty MAC would simply never verify.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose_secret()) else {
            return [0; 32];
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

/// Verifies a webhook like the reference libraries: the header values exactly as received (the
/// timestamp is signed as its text), any `v1` signature among the space-separated ones may match
/// any secret (compared in constant time), and the timestamp must be within [`TOLERANCE_SECS`] of
/// `now_unix` in either direction.
pub fn verify(
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    payload: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    for (name, value) in [
        ("webhook-id", msg_id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature_header),
    ] {
        if value.is_empty() {
            return Err(VerifyError::MissingHeader(name));
        }
    }
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    if now_unix.saturating_sub(sent) > TOLERANCE_SECS {
        return Err(VerifyError::TimestampTooOld);
    }
    if sent.saturating_sub(now_unix) > TOLERANCE_SECS {
        return Err(VerifyError::FutureTimestamp);
    }
    let received: Vec<&[u8]> = signature_header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(scheme, _)| *scheme == SCHEME)
        .map(|(_, signature)| signature.as_bytes())
        .collect();
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = STANDARD.encode(secret.mac(msg_id, timestamp, payload));
        for signature in &received {
            matched |= expected.as_bytes().ct_eq(signature);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const PAYLOAD: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn secret() -> SigningSecret {
        SigningSecret::parse(SECRET).unwrap()
    }

    fn check(
        secrets: &[SigningSecret],
        ts: &str,
        header: &str,
        payload: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        verify(secrets, ID, ts, header, payload, now)
    }

    #[test]
    fn known_answer_vector() {
        assert_eq!(secret().sign(ID, TS, PAYLOAD), EXPECTED);
    }

    #[test]
    fn verifies_own_signature_and_the_vector() {
        let ts = TS.to_string();
        assert_eq!(check(&[secret()], &ts, EXPECTED, PAYLOAD, TS), Ok(()));
        assert_eq!(
            check(&[secret()], &ts, EXPECTED, PAYLOAD, TS + TOLERANCE_SECS),
            Ok(())
        );
        assert_eq!(
            check(&[secret()], &ts, EXPECTED, PAYLOAD, TS - TOLERANCE_SECS),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampered_payload_and_wrong_secret() {
        let ts = TS.to_string();
        let tampered = br#"{"email":"test@example.com","username":"test_user" }"#;
        assert_eq!(
            check(&[secret()], &ts, EXPECTED, tampered, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        let other = SigningSecret::parse(&SigningSecret::generate().unwrap()).unwrap();
        assert_eq!(
            check(&[other], &ts, EXPECTED, PAYLOAD, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            check(&[], &ts, EXPECTED, PAYLOAD, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        // The timestamp is part of the signed content, as text.
        let ts2 = (TS + 1).to_string();
        assert_eq!(
            check(&[secret()], &ts2, EXPECTED, PAYLOAD, TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn rejects_timestamps_outside_tolerance() {
        let ts = TS.to_string();
        assert_eq!(
            check(&[secret()], &ts, EXPECTED, PAYLOAD, TS + TOLERANCE_SECS + 1),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            check(&[secret()], &ts, EXPECTED, PAYLOAD, TS - TOLERANCE_SECS - 1),
            Err(VerifyError::FutureTimestamp)
        );
        assert_eq!(
            check(&[secret()], "soon", EXPECTED, PAYLOAD, TS),
            Err(VerifyError::InvalidTimestamp)
        );
        assert_eq!(
            check(&[secret()], &i64::MIN.to_string(), EXPECTED, PAYLOAD, i64::MAX),
            Err(VerifyError::TimestampTooOld)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let ts = TS.to_string();
        assert_eq!(
            verify(&[secret()], "", &ts, EXPECTED, PAYLOAD, TS),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            check(&[secret()], "", EXPECTED, PAYLOAD, TS),
            Err(VerifyError::MissingHeader("webhook-timestamp"))
        );
        assert_eq!(
            check(&[secret()], &ts, "", PAYLOAD, TS),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
    }

    #[test]
    fn any_of_several_signatures_may_match_during_rotation() {
        let old = secret();
        let new = SigningSecret::parse(&SigningSecret::generate().unwrap()).unwrap();
        let ts = TS.to_string();
        let both = format!("{} {}", new.sign(ID, TS, PAYLOAD), old.sign(ID, TS, PAYLOAD));
        // A receiver that knows only one of the keys accepts either way.
        assert_eq!(check(std::slice::from_ref(&old), &ts, &both, PAYLOAD, TS), Ok(()));
        assert_eq!(check(std::slice::from_ref(&new), &ts, &both, PAYLOAD, TS), Ok(()));
        // A receiver holding both keys accepts a header signed with only one.
        assert_eq!(check(&[new, old], &ts, EXPECTED, PAYLOAD, TS), Ok(()));
        // Other schemes and junk entries are skipped, not errors.
        let mixed = format!("v1a,abc junk {EXPECTED}");
        assert_eq!(check(&[secret()], &ts, &mixed, PAYLOAD, TS), Ok(()));
        let wrong_scheme = EXPECTED.replacen("v1,", "v2,", 1);
        assert_eq!(
            check(&[secret()], &ts, &wrong_scheme, PAYLOAD, TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn parses_secrets_with_and_without_padding() {
        let generated = SigningSecret::generate().unwrap();
        assert!(generated.starts_with(SECRET_PREFIX));
        assert_eq!(
            SigningSecret::parse(&generated)
                .unwrap()
                .key
                .expose_secret()
                .len(),
            32
        );
        assert_eq!(generated.len(), "whsec_".len() + 44);
        let unpadded = generated.trim_end_matches('=');
        assert!(SigningSecret::parse(unpadded).is_ok());
        assert!(SigningSecret::parse(&format!("{generated}\n")).is_ok());
        assert_ne!(SigningSecret::generate().unwrap(), generated);
    }

    #[test]
    fn rejects_bad_secrets_with_clear_errors() {
        let b64 = |n: usize| STANDARD.encode(vec![7_u8; n]);
        let cases = [
            ("C2FVsBQIhrscChlQIMV+b5sSYspob7oD", SecretError::MissingPrefix),
            (
                "whsk_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                SecretError::MissingPrefix,
            ),
            ("whsec_not base64!", SecretError::NotBase64),
            ("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD", SecretError::NotBase64),
            (&format!("whsec_{}", b64(23)), SecretError::TooShort { len: 23 }),
            ("whsec_", SecretError::TooShort { len: 0 }),
            (&format!("whsec_{}", b64(65)), SecretError::TooLong { len: 65 }),
        ];
        for (text, expected) in cases {
            assert_eq!(SigningSecret::parse(text).err(), Some(expected), "{text}");
        }
        assert!(SigningSecret::parse(&format!("whsec_{}", b64(24))).is_ok());
        assert!(SigningSecret::parse(&format!("whsec_{}", b64(64))).is_ok());
        assert_eq!(
            SecretError::TooShort { len: 3 }.to_string(),
            "signing secret is 3 bytes; at least 24 are required"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", secret());
        assert_eq!(shown, "SigningSecret(***)");
    }
}
