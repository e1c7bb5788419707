//! String semantics of IoT Hub (.NET): lengths and indexes count UTF-16 code units, ordering is ordinal
//! by UTF-16 code unit, case mapping is the invariant culture's simple one-to-one mapping.

use std::borrow::Cow;
use std::cmp::Ordering;

pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

/// Ordinal comparison by UTF-16 code units (differs from byte order only above U+FFFF).
pub(crate) fn ordinal_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() || b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// The characters from UTF-16 index `start`, `count` code units long (to the end when `None`). Indexes
/// were checked against the length by the caller. A surrogate pair cut in half becomes U+FFFD.
pub(crate) fn substring(s: &str, start: usize, count: Option<usize>) -> String {
    if s.is_ascii() {
        let end = count.map_or(s.len(), |c| start + c);
        return s.get(start..end).unwrap_or("").to_owned();
    }
    let units: Vec<u16> = s.encode_utf16().collect();
    let end = count.map_or(units.len(), |c| start + c).min(units.len());
    String::from_utf16_lossy(units.get(start.min(end)..end).unwrap_or(&[]))
}

/// Ordinal index of `needle` in `haystack`, in UTF-16 code units; -1 when absent.
pub(crate) fn index_of(haystack: &str, needle: &str) -> f64 {
    match haystack.find(needle) {
        Some(byte) => utf16_len(&haystack[..byte]) as f64,
        None => -1.0,
    }
}

/// Simple (one-to-one) case mapping: a character whose full mapping is several characters is kept.
fn simple_map(c: char, full: impl ExactSizeIterator<Item = char>) -> char {
    let mut full = full;
    if full.len() == 1 {
        full.next().unwrap_or(c)
    } else {
        c
    }
}

/// Lower case; borrows when nothing changes (the common case for ASCII text already in lower case).
pub(crate) fn to_lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        };
    }
    Cow::Owned(s.chars().map(|c| simple_map(c, c.to_lowercase())).collect())
}

/// Upper case; borrows when nothing changes.
pub(crate) fn to_upper(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return if s.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(s.to_ascii_uppercase())
        } else {
            Cow::Borrowed(s)
        };
    }
    Cow::Owned(s.chars().map(|c| simple_map(c, c.to_uppercase())).collect())
}

/// Case-insensitive name equality, as .NET's `OrdinalIgnoreCase` (simple upper-case mapping).
/// Whether two property names are equal ignoring case, as IoT Hub compares them (.NET
/// `OrdinalIgnoreCase`).
pub fn names_equal(a: &str, b: &str) -> bool {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    for (&p, &q) in x.iter().zip(y) {
        if p == q || (p.is_ascii() && q.is_ascii() && p.eq_ignore_ascii_case(&q)) {
            continue;
        }
        // ASCII characters only map to ASCII ones: two different ASCII characters settle it.
        if p.is_ascii() && q.is_ascii() {
            return false;
        }
        return simple_upper(a).eq(simple_upper(b));
    }
    // One is a prefix of the other, ignoring ASCII case: equal only if as long.
    x.len() == y.len()
}

fn simple_upper(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().map(|c| simple_map(c, c.to_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_semantics() {
        assert_eq!(utf16_len("😀a"), 3);
        assert_eq!(index_of("é😀a", "a"), 3.0);
        assert_eq!(substring("h😀llo", 3, None), "llo");
        assert_eq!(substring("h😀llo", 1, Some(1)), "\u{FFFD}");
        assert_eq!(ordinal_cmp("\u{FF61}", "😀"), Ordering::Greater);
        assert_eq!(to_upper("straße"), "STRAßE");
        assert!(names_equal("Température", "TEMPÉRATURE"));
        assert!(!names_equal("key1", "key2"));
    }
}
