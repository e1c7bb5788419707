//! MQTT property bags: the `k=v&k2=v2` tail of telemetry and cloud-to-device topics.
//!
//! Decoding follows the C# SDK's `UrlEncodedDictionarySerializer`, which edgeHub uses:
//! * `&` separates pairs; the first `/` ends the bag (anything after it is ignored);
//! * a name without `=` has a null value; an empty name, `&&` or a trailing `&` are errors;
//! * a second `=` inside a value is an error;
//! * names and values are percent-decoded only (`+` stays a plus); an escape that does not decode
//!   to UTF-8 is kept as written;
//! * a repeated name keeps its first position and takes the last value.
//!
//! One deliberate difference: `name=` (empty value) decodes to an empty string, not null, so that
//! the documented encoding (null → `name`, empty → `name=`) round-trips.
//!
//! Encoding follows the Python SDK: names and values escaped with everything but unreserved
//! characters (`$.mid` → `%24.mid`, `/` → `%2F`, space → `%20`).

use crate::encoding::{decode_lenient, encode_component};

/// Why a property bag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyBagError {
    /// A pair has an empty name (`=v`, `&&`, a leading `&`).
    #[error("property {0} of the property bag has an empty name")]
    EmptyName(usize),
    /// The bag ends with `&`.
    #[error("the property bag ends with `&`")]
    TrailingSeparator,
    /// A value contains a second `=`.
    #[error("the value of property `{0}` contains a second `=`")]
    SecondEquals(String),
}

/// Decodes a property bag into ordered `(name, value)` pairs.
pub fn decode_property_bag(bag: &str) -> Result<Vec<(String, Option<String>)>, PropertyBagError> {
    let (bag, terminated) = match bag.split_once('/') {
        Some((before, _)) => (before, true),
        None => (bag, false),
    };
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    if bag.is_empty() {
        return Ok(pairs);
    }
    let pieces: Vec<&str> = bag.split('&').collect();
    let last = pieces.len() - 1;
    for (index, piece) in pieces.into_iter().enumerate() {
        if piece.is_empty() && index == last {
            // `a&/` is accepted (the `/` ends the bag), a trailing `a&` is not.
            return if terminated {
                Ok(pairs)
            } else {
                Err(PropertyBagError::TrailingSeparator)
            };
        }
        let (name, value) = match piece.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (piece, None),
        };
        if name.is_empty() {
            return Err(PropertyBagError::EmptyName(index + 1));
        }
        let name = decode_lenient(name).into_owned();
        if value.is_some_and(|value| value.contains('=')) {
            return Err(PropertyBagError::SecondEquals(name));
        }
        let value = value.map(|value| decode_lenient(value).into_owned());
        match pairs.iter_mut().find(|(known, _)| *known == name) {
            Some((_, slot)) => *slot = value,
            None => pairs.push((name, value)),
        }
    }
    Ok(pairs)
}

/// Encodes pairs as a property bag: `name=value`, `name` for a null value, joined with `&`.
pub fn encode_property_bag<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut bag = String::new();
    for (name, value) in pairs {
        if !bag.is_empty() {
            bag.push('&');
        }
        bag.push_str(&encode_component(name));
        if let Some(value) = value {
            bag.push('=');
            bag.push_str(&encode_component(value));
        }
    }
    bag
}
