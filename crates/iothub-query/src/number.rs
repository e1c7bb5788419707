//! `as_number` parses strings as IoT Hub does: .NET `double.TryParse` with `NumberStyles.Any` and the
//! invariant culture. That accepts surrounding white space, a leading or trailing sign, parentheses for
//! a negative number, the currency sign `¤`, thousands separators, a decimal point and an exponent, and
//! the words `Infinity`, `-Infinity` and `NaN`.

/// .NET's white space for number parsing: U+0009..U+000D and U+0020.
fn is_white(c: char) -> bool {
    matches!(c, '\u{9}'..='\u{d}' | ' ')
}

const CURRENCY: char = '¤';

#[derive(Default)]
struct Parts {
    negative: bool,
    signed: bool,
    parens: bool,
    currency: bool,
    int_digits: String,
    frac_digits: String,
    exponent: String,
}

/// Parses `text`; `None` when .NET would fail. Overflow gives an infinity, as in .NET Core 3.0 and later.
pub(crate) fn parse_dotnet_number(text: &str) -> Option<f64> {
    parse_numeric(text).or_else(|| parse_symbol(text))
}

fn parse_numeric(text: &str) -> Option<f64> {
    let mut chars = text.chars().peekable();
    let mut p = Parts::default();

    // Leading: white space (only before the sign), sign or '(', currency sign.
    while let Some(&c) = chars.peek() {
        if is_white(c) && !p.signed {
        } else if (c == '+' || c == '-') && !p.signed {
            p.signed = true;
            p.negative = c == '-';
        } else if c == '(' && !p.signed {
            p.signed = true;
            p.parens = true;
            p.negative = true;
        } else if c == CURRENCY && !p.currency {
            p.currency = true;
        } else {
            break;
        }
        chars.next();
    }

    // Digits with thousands separators (after the first digit, before the point), then a fraction.
    let mut in_fraction = false;
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            if in_fraction {
                p.frac_digits.push(c)
            } else {
                p.int_digits.push(c)
            }
        } else if c == '.' && !in_fraction {
            in_fraction = true;
        } else if c == ',' && !in_fraction && !p.int_digits.is_empty() {
        } else {
            break;
        }
        chars.next();
    }
    if p.int_digits.is_empty() && p.frac_digits.is_empty() {
        return None;
    }

    // Exponent: taken only when digits follow; otherwise the 'e' is left and fails below.
    if matches!(chars.peek(), Some('e' | 'E')) {
        let mut look = chars.clone();
        look.next();
        let mut exponent = String::new();
        if let Some(&s @ ('+' | '-')) = look.peek() {
            exponent.push(s);
            look.next();
        }
        let mut any = false;
        while let Some(&d) = look.peek().filter(|d| d.is_ascii_digit()) {
            exponent.push(d);
            any = true;
            look.next();
        }
        if any {
            p.exponent = exponent;
            chars = look;
        }
    }

    // Trailing: white space, a sign if none yet, ')' closing '(', currency sign.
    let mut closed = false;
    for c in chars {
        if is_white(c) {
        } else if (c == '+' || c == '-') && !p.signed {
            p.signed = true;
            p.negative = c == '-';
        } else if c == ')' && p.parens && !closed {
            closed = true;
        } else if c == CURRENCY && !p.currency {
            p.currency = true;
        } else {
            return None;
        }
    }
    if p.parens && !closed {
        return None;
    }

    let mut normalised = String::with_capacity(p.int_digits.len() + p.frac_digits.len() + 8);
    if p.negative {
        normalised.push('-');
    }
    normalised.push_str(if p.int_digits.is_empty() {
        "0"
    } else {
        &p.int_digits
    });
    if !p.frac_digits.is_empty() {
        normalised.push('.');
        normalised.push_str(&p.frac_digits);
    }
    if !p.exponent.is_empty() {
        normalised.push('e');
        normalised.push_str(&p.exponent);
    }
    normalised.parse::<f64>().ok()
}

fn parse_symbol(text: &str) -> Option<f64> {
    let word = text.trim_matches(is_white);
    let (negative, rest) = match word.as_bytes().first() {
        Some(b'-') => (true, &word[1..]),
        Some(b'+') => (false, &word[1..]),
        _ => (false, word),
    };
    if rest.eq_ignore_ascii_case("infinity") {
        Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        })
    } else if rest.eq_ignore_ascii_case("nan") {
        Some(f64::NAN)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_number_styles_any() {
        let ok = [
            ("12.5", 12.5),
            (" 3 ", 3.0),
            ("1,000", 1000.0),
            ("(5)", -5.0),
            ("5-", -5.0),
            ("+7", 7.0),
            ("¤12", 12.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1E+3", 1000.0),
            ("10e10", 1e11),
            ("-Infinity", f64::NEG_INFINITY),
            ("10e1000", f64::INFINITY),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_dotnet_number(text), Some(expected), "{text}");
        }
        for bad in [
            "apple", "value1", "", ".", "1e", "(5", "5)", ",1", "1.2.3", "- 5", "0x10", "1 2",
        ] {
            assert_eq!(parse_dotnet_number(bad), None, "{bad}");
        }
        assert!(parse_dotnet_number("NaN").is_some_and(f64::is_nan));
    }
}
