//! Tokens of the condition language, cut by longest match with IoT Hub's rule priorities.
//!
//! Each rule reports how many bytes it can match at the current position; the longest wins and a tie
//! goes to the rule listed first in [`RULES`]. This reproduces the ANTLR lexer of IoT Hub's routing
//! engine, including its surprises (`3-4` and `a+b` are names, `'a'x` is a name, `-1` is a number).

use crate::diagnostic::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// `SELECT`, `FROM`, `WHERE`, `INTO`: reserved, never valid in a condition.
    Reserved,
    String,
    UnterminatedString,
    Integer,
    Hex,
    Real,
    True,
    False,
    Null,
    Undefined,
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    And,
    Or,
    Not,
    Eq,
    NotEq,
    LessGreater,
    LessEq,
    GreaterEq,
    Greater,
    Less,
    Concat,
    Coalesce,
    LBrace,
    RBrace,
    SysProp,
    Id,
    Whitespace,
    Comment,
    /// `/*` with no `*/` after it.
    UnterminatedComment,
    Unknown,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Span,
}

impl Token {
    pub(crate) fn text(self, source: &str) -> &str {
        source.get(self.span.start..self.span.end).unwrap_or("")
    }
}

/// Splits `source` into tokens, dropping whitespace and comments, ending with one `Eof`.
pub(crate) fn tokenize(source: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < source.len() {
        let rest = &source[pos..];
        let (kind, len) = longest_match(rest);
        let span = Span::new(pos, pos + len);
        pos += len;
        if !matches!(kind, TokenKind::Whitespace | TokenKind::Comment) {
            tokens.push(Token { kind, span });
        }
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(source.len(), source.len()),
    });
    tokens
}

type Rule = (TokenKind, fn(&str) -> usize);

/// Rules in priority order: on equal lengths the earlier one wins.
const RULES: &[Rule] = &[
    (TokenKind::LBrace, |s| literal(s, "{")),
    (TokenKind::RBrace, |s| literal(s, "}")),
    (TokenKind::Reserved, reserved_word),
    (TokenKind::String, string),
    (TokenKind::UnterminatedString, unterminated_string),
    (TokenKind::Integer, integer),
    (TokenKind::Hex, hex),
    (TokenKind::Real, real),
    (TokenKind::True, |s| literal(s, "true")),
    (TokenKind::False, |s| literal(s, "false")),
    (TokenKind::Null, |s| literal(s, "null")),
    (TokenKind::Undefined, |s| literal(s, "undefined")),
    (TokenKind::LParen, |s| literal(s, "(")),
    (TokenKind::RParen, |s| literal(s, ")")),
    (TokenKind::Comma, |s| literal(s, ",")),
    (TokenKind::Plus, |s| literal(s, "+")),
    (TokenKind::Minus, |s| literal(s, "-")),
    (TokenKind::Star, |s| literal(s, "*")),
    (TokenKind::Slash, |s| literal(s, "/")),
    (TokenKind::Percent, |s| literal(s, "%")),
    (TokenKind::And, |s| literal_ignore_case(s, "and")),
    (TokenKind::Or, |s| literal_ignore_case(s, "or")),
    (TokenKind::Not, |s| literal_ignore_case(s, "not")),
    (TokenKind::Eq, |s| literal(s, "=")),
    (TokenKind::NotEq, |s| literal(s, "!=")),
    (TokenKind::LessGreater, |s| literal(s, "<>")),
    (TokenKind::LessEq, |s| literal(s, "<=")),
    (TokenKind::GreaterEq, |s| literal(s, ">=")),
    (TokenKind::Greater, |s| literal(s, ">")),
    (TokenKind::Less, |s| literal(s, "<")),
    (TokenKind::Concat, |s| literal(s, "||")),
    (TokenKind::Coalesce, |s| literal(s, "??")),
    (TokenKind::SysProp, sys_prop),
    (TokenKind::Id, identifier),
    (TokenKind::Whitespace, whitespace),
    (TokenKind::Comment, comment),
    (TokenKind::UnterminatedComment, unterminated_comment),
];

fn longest_match(rest: &str) -> (TokenKind, usize) {
    let mut best = (TokenKind::Unknown, 0);
    for (kind, rule) in RULES {
        let len = rule(rest);
        if len > best.1 {
            best = (*kind, len);
        }
    }
    if best.1 == 0 {
        // Any other character is a token of its own, reported as an invalid symbol.
        let len = rest.chars().next().map_or(1, char::len_utf8);
        best = (TokenKind::Unknown, len);
    }
    best
}

fn literal(s: &str, word: &str) -> usize {
    if s.starts_with(word) { word.len() } else { 0 }
}

fn literal_ignore_case(s: &str, word: &str) -> usize {
    match s.get(..word.len()) {
        Some(head) if head.eq_ignore_ascii_case(word) => word.len(),
        _ => 0,
    }
}

fn reserved_word(s: &str) -> usize {
    ["select", "from", "where", "into"]
        .iter()
        .map(|w| literal_ignore_case(s, w))
        .max()
        .unwrap_or(0)
}

/// Characters that end a name; `[` and `]` end application-property names only.
fn is_path_char(c: char) -> bool {
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
            | '?'
            | '='
            | '{'
            | '}'
            | ' '
            | '\t'
            | '\n'
            | '\r'
    )
}

fn is_id_char(c: char) -> bool {
    is_path_char(c) && c != '[' && c != ']'
}

fn run_of(s: &str, accept: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !accept(c))
        .map_or(s.len(), |(i, _)| i)
}

fn sys_prop(s: &str) -> usize {
    match s.strip_prefix('$') {
        Some(rest) => match run_of(rest, is_path_char) {
            0 => 0,
            n => n + 1,
        },
        None => 0,
    }
}

fn identifier(s: &str) -> usize {
    run_of(s, is_id_char)
}

fn whitespace(s: &str) -> usize {
    run_of(s, |c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

fn unterminated_comment(s: &str) -> usize {
    if s.starts_with("/*") && comment(s) == 0 {
        s.len()
    } else {
        0
    }
}

fn comment(s: &str) -> usize {
    match s.strip_prefix("/*").and_then(|rest| rest.find("*/")) {
        Some(end) => end + 4,
        None => 0,
    }
}

/// Scans a quoted string body. Returns the length up to (not including) the closing quote and whether
/// the closing quote follows; stops at the first backslash that starts no valid escape.
fn scan_string(s: &str) -> Option<(usize, bool)> {
    let quote = s.chars().next().filter(|&c| c == '\'' || c == '"')?;
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == quote as u8 {
            return Some((i, true));
        }
        if b == b'\\' {
            match escape_len(&s[i..]) {
                Some(n) => i += n,
                None => return Some((i, false)),
            }
        } else {
            i += 1;
        }
    }
    Some((i, false))
}

/// `\'`, `\"`, `\\` or `\uXXXX` (lowercase `u`, four hex digits).
fn escape_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    match bytes.get(1)? {
        b'\'' | b'"' | b'\\' => Some(2),
        b'u' if bytes.len() >= 6 && bytes[2..6].iter().all(u8::is_ascii_hexdigit) => Some(6),
        _ => None,
    }
}

fn string(s: &str) -> usize {
    match scan_string(s) {
        Some((len, true)) => len + 1,
        _ => 0,
    }
}

fn unterminated_string(s: &str) -> usize {
    match scan_string(s) {
        Some((len, _)) => len,
        None => 0,
    }
}

fn digits(s: &str) -> usize {
    run_of(s, |c| c.is_ascii_digit())
}

fn sign(s: &str) -> usize {
    usize::from(s.starts_with('-'))
}

fn integer(s: &str) -> usize {
    let sign = sign(s);
    match digits(&s[sign..]) {
        0 => 0,
        n => sign + n,
    }
}

fn hex(s: &str) -> usize {
    if s.starts_with("0x") || s.starts_with("0X") {
        match run_of(&s[2..], |c| c.is_ascii_hexdigit()) {
            0 => 0,
            n => n + 2,
        }
    } else {
        0
    }
}

fn exponent(s: &str) -> usize {
    let Some(rest) = s.strip_prefix(['e', 'E']) else {
        return 0;
    };
    let signed = usize::from(rest.starts_with(['+', '-']));
    match digits(&rest[signed..]) {
        0 => 0,
        n => 1 + signed + n,
    }
}

fn real(s: &str) -> usize {
    let sign = sign(s);
    let int = digits(&s[sign..]);
    let after_int = &s[sign + int..];
    // '-'? [0-9]* '.' [0-9]+ EXP?
    let fraction = match after_int.strip_prefix('.') {
        Some(frac) => match digits(frac) {
            0 => 0,
            n => sign + int + 1 + n + exponent(&frac[n..]),
        },
        None => 0,
    };
    // '-'? [0-9]* EXP
    let exp_only = match exponent(after_int) {
        0 => 0,
        n => sign + int + n,
    };
    fraction.max(exp_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<(TokenKind, &str)> {
        tokenize(source)
            .into_iter()
            .map(|t| (t.kind, t.text(source)))
            .collect()
    }

    #[test]
    fn operators_touching_names_are_part_of_the_name() {
        use TokenKind::*;
        assert_eq!(kinds("3-4"), vec![(Id, "3-4"), (Eof, "")]);
        assert_eq!(
            kinds("a - -1"),
            vec![(Id, "a"), (Minus, "-"), (Integer, "-1"), (Eof, "")]
        );
        assert_eq!(kinds("'a'x 'b'"), vec![(Id, "'a'x"), (String, "'b'"), (Eof, "")]);
        assert_eq!(
            kinds(".5 1e3 0x1F 0x"),
            vec![(Real, ".5"), (Real, "1e3"), (Hex, "0x1F"), (Id, "0x"), (Eof, "")]
        );
    }

    #[test]
    fn strings_stop_at_invalid_escapes() {
        use TokenKind::*;
        assert_eq!(kinds(r#""a\nb""#)[0], (UnterminatedString, r#""a"#));
        assert_eq!(kinds(r#"'it\'s'"#)[0], (String, r#"'it\'s'"#));
        assert_eq!(kinds(r#""\u00e9""#)[0], (String, r#""\u00e9""#));
    }
}
