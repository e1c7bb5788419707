//! Paths into the message body and the twin: `a.b[2].c`, IoT Hub's JSONPath subset.

use std::fmt;

/// One step of a path: a member name, optionally followed by one array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Segment {
    pub(crate) name: Box<str>,
    pub(crate) index: Option<u32>,
}

/// A validated path. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Path(pub(crate) Vec<Segment>);

/// Characters not allowed in a path name (besides `.`, `[` and `]`, which structure the path).
fn is_name_char(c: char) -> bool {
    !matches!(
        c,
        '(' | ')'
            | '<'
            | '>'
            | '@'
            | ','
            | ';'
            | ':'
            | '\\'
            | '"'
            | '/'
            | '['
            | ']'
            | '?'
            | '='
            | '{'
            | '}'
            | '.'
            | '\t'
            | '\n'
            | '\r'
    )
}

impl Path {
    /// Parses the text after `$body.` or `$twin.`. The error says what is wrong, for the user.
    pub(crate) fn parse(text: &str) -> Result<Path, String> {
        if text.is_empty() {
            return Err("the path is empty".to_owned());
        }
        let mut segments = Vec::new();
        for (i, part) in text.split('.').enumerate() {
            segments.push(Self::segment(part).map_err(|e| format!("segment {} ('{part}'): {e}", i + 1))?);
        }
        Ok(Path(segments))
    }

    fn segment(part: &str) -> Result<Segment, String> {
        let name_len = part
            .char_indices()
            .find(|&(_, c)| !is_name_char(c))
            .map_or(part.len(), |(i, _)| i);
        let (name, rest) = part.split_at(name_len);
        if name.is_empty() {
            return Err("a name is missing".to_owned());
        }
        let index = match rest {
            "" => None,
            _ => {
                let digits = rest
                    .strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                    .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        format!("'{rest}' is not an array index; write name[N] with N a non-negative integer")
                    })?;
                Some(
                    digits
                        .parse::<u32>()
                        .map_err(|_| format!("array index {digits} is too large"))?,
                )
            }
        };
        Ok(Segment {
            name: name.into(),
            index,
        })
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&segment.name)?;
            if let Some(index) = segment.index {
                write!(f, "[{index}]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_paths() {
        assert!(Path::parse("message.Weather.Temperature").is_ok());
        assert_eq!(
            Path::parse("a[2].b").map(|p| p.to_string()),
            Ok("a[2].b".to_owned())
        );
        assert!(Path::parse("Welcome!.he").is_ok());
        for bad in [
            "", "a..b", "a.", "a[]", "a['x']", "a[1:2]", "a;b", "a[0][1]", "[0]",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
