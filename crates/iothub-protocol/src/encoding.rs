//! Percent-encoding the way the IoT Hub SDKs do it: escape everything but RFC 3986 unreserved
//! characters, uppercase hex; decode `%XX` only (`+` stays a plus).

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but `A-Z a-z 0-9 - . _ ~`: Python's `quote(s, safe="")`, .NET's `Uri.EscapeDataString`,
/// JavaScript's `encodeURIComponent` minus its `! ' ( ) *` exceptions.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Escapes `text` for a URI component, with uppercase escapes (`/` → `%2F`, `$` → `%24`).
pub(crate) fn encode_component(text: &str) -> Cow<'_, str> {
    utf8_percent_encode(text, COMPONENT).into()
}

/// Decodes `%XX` escapes like .NET's `Uri.UnescapeDataString`: a `%` not followed by two hex digits
/// stays as it is, and `+` is not a space. When the decoded bytes are not UTF-8 the text is returned
/// unchanged, as .NET leaves such escapes alone.
pub(crate) fn decode_lenient(text: &str) -> Cow<'_, str> {
    match percent_decode_str(text).decode_utf8() {
        Ok(decoded) => decoded,
        Err(_) => Cow::Borrowed(text),
    }
}

/// Decodes `%XX` escapes; `None` when the decoded bytes are not UTF-8.
pub(crate) fn decode_strict(text: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(text).decode_utf8().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_python_quote_with_no_safe_characters() {
        assert_eq!(encode_component("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(encode_component("$.mid"), "%24.mid");
        assert_eq!(encode_component("a/b c+d"), "a%2Fb%20c%2Bd");
        assert_eq!(encode_component("°"), "%C2%B0");
    }

    #[test]
    fn decodes_percent_escapes_only() {
        assert_eq!(decode_lenient("a+b%20c"), "a+b c");
        assert_eq!(decode_lenient("100%"), "100%");
        assert_eq!(decode_lenient("%zz%2f"), "%zz/");
        assert_eq!(decode_lenient("%FF"), "%FF");
        assert_eq!(decode_strict("%FF"), None);
    }
}
