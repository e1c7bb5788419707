//! Recursive-descent parser: tokens → [`Expr`]. Rejects trailing input and bounds nesting.

use crate::ast::{BinaryOp, Expr, Literal, UnaryOp};
use crate::diagnostic::{Diagnostic, Span};
use crate::lexer::{Token, TokenKind, tokenize};
use crate::{MAX_CONDITION_BYTES, MAX_NESTING};

/// Parses a whole condition. `Ok(None)` is the empty condition (only whitespace and comments).
pub(crate) fn parse(source: &str) -> Result<Option<Expr>, Vec<Diagnostic>> {
    if source.len() > MAX_CONDITION_BYTES {
        return Err(vec![Diagnostic::new(
            Span::new(0, 0),
            format!(
                "Condition is too long: {} bytes, the limit is {MAX_CONDITION_BYTES}",
                source.len()
            ),
        )]);
    }
    let tokens = tokenize(source);
    // One syntax error is reported, the first: later ones are usually its consequences.
    if let Some(lexical) = tokens.iter().find_map(|t| lexical_error(source, *t)) {
        return Err(vec![lexical]);
    }
    let mut parser = Parser {
        source,
        tokens,
        pos: 0,
        depth: 0,
    };
    if parser.peek().kind == TokenKind::Eof {
        return Ok(None);
    }
    let expr = parser.expr().map_err(|d| vec![d])?;
    let next = parser.peek();
    if next.kind != TokenKind::Eof {
        return Err(vec![parser.trailing_error(next)]);
    }
    Ok(Some(expr))
}

fn lexical_error(source: &str, token: Token) -> Option<Diagnostic> {
    match token.kind {
        TokenKind::Unknown => {
            let text = token.text(source);
            let error = Diagnostic::new(token.span, format!("Syntax error: invalid symbol '{text}'"));
            Some(match text {
                "[" | "]" => error.with_hint(
                    "application property names cannot be bracketed or quoted; only system properties \
                     have an escape form, {$name}",
                ),
                "?" => error.with_hint("the coalesce operator is '??'"),
                "\\" => error.with_hint("backslashes are only valid inside strings"),
                _ => error,
            })
        }
        TokenKind::UnterminatedComment => Some(
            Diagnostic::new(
                Span::new(token.span.start, token.span.start + 2),
                "Syntax error: unterminated comment",
            )
            .with_hint("close the comment with */"),
        ),
        TokenKind::UnterminatedString => {
            let after = source.get(token.span.end..).unwrap_or("");
            let error = Diagnostic::new(token.span, "Syntax error: unterminated string");
            Some(if after.starts_with('\\') {
                error.with_hint(r#"the only escapes are \', \", \\ and \uXXXX"#)
            } else {
                error.with_hint("close the string with the quote it opens with")
            })
        }
        _ => None,
    }
}

struct Parser<'s> {
    source: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

type Parsed = Result<Expr, Diagnostic>;

/// Binary operator levels, loosest first.
const LEVELS: &[&[(TokenKind, BinaryOp)]] = &[
    &[(TokenKind::Coalesce, BinaryOp::Coalesce)],
    &[(TokenKind::Or, BinaryOp::Or)],
    &[(TokenKind::And, BinaryOp::And)],
    &[
        (TokenKind::Eq, BinaryOp::Eq),
        (TokenKind::NotEq, BinaryOp::NotEq),
        (TokenKind::LessGreater, BinaryOp::NotEq),
    ],
    &[
        (TokenKind::Less, BinaryOp::Less),
        (TokenKind::LessEq, BinaryOp::LessEq),
        (TokenKind::Greater, BinaryOp::Greater),
        (TokenKind::GreaterEq, BinaryOp::GreaterEq),
    ],
    &[
        (TokenKind::Plus, BinaryOp::Add),
        (TokenKind::Minus, BinaryOp::Sub),
        (TokenKind::Concat, BinaryOp::Concat),
    ],
    &[
        (TokenKind::Star, BinaryOp::Mul),
        (TokenKind::Slash, BinaryOp::Div),
        (TokenKind::Percent, BinaryOp::Mod),
    ],
];

impl<'s> Parser<'s> {
    fn peek(&self) -> Token {
        // The token list always ends with Eof and `pos` never passes it.
        self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let token = self.peek();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
        }
        token
    }

    fn text(&self, token: Token) -> &'s str {
        token.text(self.source)
    }

    fn expr(&mut self) -> Parsed {
        self.level(0)
    }

    fn level(&mut self, level: usize) -> Parsed {
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let first = self.level(level + 1)?;
        let mut rest = Vec::new();
        loop {
            let token = self.peek();
            let Some(&(_, op)) = ops.iter().find(|(kind, _)| *kind == token.kind) else {
                break;
            };
            self.bump();
            let operand = self.level(level + 1)?;
            rest.push((op, token.span, operand));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Chain {
                first: Box::new(first),
                rest,
            }
        })
    }

    fn nested<T>(
        &mut self,
        at: Span,
        f: impl FnOnce(&mut Self) -> Result<T, Diagnostic>,
    ) -> Result<T, Diagnostic> {
        if self.depth >= MAX_NESTING {
            return Err(Diagnostic::new(
                at,
                format!("Syntax error: the condition is nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn unary(&mut self) -> Parsed {
        let token = self.peek();
        let op = match token.kind {
            TokenKind::Minus => UnaryOp::Negate,
            TokenKind::Not => UnaryOp::Not,
            _ => return self.primary(),
        };
        self.bump();
        let operand = self.nested(token.span, Self::unary)?;
        Ok(Expr::Unary {
            op,
            op_span: token.span,
            operand: Box::new(operand),
        })
    }

    fn primary(&mut self) -> Parsed {
        let token = self.bump();
        let text = self.text(token);
        let literal = |lit| Ok(Expr::Literal(lit, token.span));
        match token.kind {
            TokenKind::String => literal(Literal::String(unescape(&text[1..text.len() - 1]))),
            TokenKind::Integer | TokenKind::Real => literal(Literal::Number(parse_decimal(text))),
            TokenKind::Hex => literal(parse_hex(&text[2..])),
            TokenKind::True => literal(Literal::Bool(true)),
            TokenKind::False => literal(Literal::Bool(false)),
            TokenKind::Null => literal(Literal::Null),
            TokenKind::Undefined => literal(Literal::Undefined),
            TokenKind::SysProp => Ok(Expr::SysProperty(text.to_owned(), token.span)),
            TokenKind::Id if self.peek().kind == TokenKind::LParen => self.call(token),
            TokenKind::Id => Ok(Expr::Property(text.to_owned(), token.span)),
            TokenKind::LParen => self.parenthesised(token),
            TokenKind::LBrace => self.escaped_sys_property(token),
            _ => Err(self.expected_expression(token)),
        }
    }

    fn parenthesised(&mut self, open: Token) -> Parsed {
        let inner = self.nested(open.span, Self::expr)?;
        let close = self.peek();
        match close.kind {
            TokenKind::RParen => {
                self.bump();
                Ok(inner)
            }
            TokenKind::Eof => Err(Diagnostic::new(open.span, "Syntax error: missing closing ')'")),
            _ => Err(self.unexpected(close, "')'")),
        }
    }

    fn call(&mut self, name: Token) -> Parsed {
        self.bump(); // '('
        let mut args = Vec::new();
        if self.peek().kind == TokenKind::RParen {
            self.bump();
        } else {
            loop {
                args.push(self.nested(name.span, Self::expr)?);
                let next = self.bump();
                match next.kind {
                    TokenKind::Comma => continue,
                    TokenKind::RParen => break,
                    _ => {
                        let what = format!("',' or ')' in the call to '{}'", self.text(name));
                        return Err(self.unexpected(next, &what));
                    }
                }
            }
        }
        Ok(Expr::Call {
            name: self.text(name).to_owned(),
            name_span: name.span,
            args,
        })
    }

    fn escaped_sys_property(&mut self, open: Token) -> Parsed {
        let prop = self.bump();
        if prop.kind != TokenKind::SysProp {
            return Err(
                Diagnostic::new(prop.span, "Syntax error: '{' must be followed by a $-name")
                    .with_hint("the escape form reads a system property, as in {$contentType}"),
            );
        }
        let close = self.bump();
        if close.kind != TokenKind::RBrace {
            return Err(self.unexpected(close, "'}'"));
        }
        Ok(Expr::EscapedSysProperty(
            self.text(prop).to_owned(),
            open.span.to(close.span),
        ))
    }

    fn describe(&self, token: Token) -> String {
        match token.kind {
            TokenKind::Eof => "the end of the condition".to_owned(),
            _ => format!("'{}'", self.text(token)),
        }
    }

    fn unexpected(&self, token: Token, expected: &str) -> Diagnostic {
        Diagnostic::new(
            token.span,
            format!(
                "Syntax error: expected {expected}, found {}",
                self.describe(token)
            ),
        )
    }

    fn expected_expression(&self, token: Token) -> Diagnostic {
        if token.kind == TokenKind::Reserved {
            return Diagnostic::new(
                token.span,
                format!("Syntax error: '{}' is a reserved word", self.text(token)),
            )
            .with_hint("SELECT, FROM, WHERE and INTO cannot be used in a route condition");
        }
        let error = self.unexpected(token, "an expression");
        match token.kind {
            TokenKind::Eq => error.with_hint("compare with a single '='"),
            TokenKind::RParen => error.with_hint("a pair of parentheses must hold an expression"),
            _ => error,
        }
    }

    fn trailing_error(&self, token: Token) -> Diagnostic {
        if token.kind == TokenKind::RParen {
            return Diagnostic::new(token.span, "Syntax error: unmatched closing ')'");
        }
        let text = self.text(token);
        let error = Diagnostic::new(
            token.span,
            format!(
                "Syntax error: unexpected {} after a complete expression",
                self.describe(token)
            ),
        );
        match token.kind {
            TokenKind::Integer | TokenKind::Real if text.starts_with('-') => error.with_hint(
                "'-' directly before a digit makes a negative number; put a space after '-' to subtract",
            ),
            TokenKind::Id if text == "&&" => error.with_hint("use AND"),
            TokenKind::Id if text.starts_with('!') => error.with_hint("use NOT, or != to compare"),
            _ => error.with_hint(
                "join conditions with AND or OR; operators touching a name need spaces (a-1 is one name)",
            ),
        }
    }
}

/// Decimal literal to double. Every INTEGER/REAL token is a valid Rust float; huge ones become infinite.
fn parse_decimal(text: &str) -> f64 {
    text.parse::<f64>().unwrap_or(f64::NAN)
}

/// Hex literal: read as a 64-bit two's-complement integer; more than 64 bits is `undefined`.
fn parse_hex(digits: &str) -> Literal {
    let significant = digits.trim_start_matches('0');
    if significant.len() > 16 {
        return Literal::UndefinedNumber;
    }
    match u64::from_str_radix(if significant.is_empty() { "0" } else { significant }, 16) {
        Ok(bits) => Literal::Number(bits as i64 as f64),
        Err(_) => Literal::UndefinedNumber,
    }
}

/// IoT Hub's two-pass unescape: first every `\uXXXX` (either case of `u`), then `\\`, `\'` and `\"`.
/// The order matters: `\\u0041` becomes `\A`, as in IoT Hub.
pub(crate) fn unescape(raw: &str) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if let Some(unit) = unicode_escape(rest) {
            units.push(unit);
            rest = &rest[6..];
            continue;
        }
        let mut buf = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut buf));
        rest = &rest[c.len_utf8()..];
    }
    let first = String::from_utf16_lossy(&units);
    let mut out = String::with_capacity(first.len());
    let mut chars = first.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek().filter(|n| matches!(n, '\\' | '\'' | '"'))
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn unicode_escape(s: &str) -> Option<u16> {
    let bytes = s.as_bytes();
    if bytes.len() >= 6 && bytes[0] == b'\\' && (bytes[1] == b'u' || bytes[1] == b'U') {
        let hex = s.get(2..6)?;
        if hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return u16::from_str_radix(hex, 16).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_runs_unicode_first_like_iot_hub() {
        assert_eq!(unescape(r"it\'s"), "it's");
        assert_eq!(unescape(r"\u00e9t\u00E9"), "été");
        assert_eq!(unescape(r"\\u0041"), r"\A");
        assert_eq!(unescape(r"\ud83d\ude00"), "😀");
        assert_eq!(unescape(r"\ud83d"), "\u{FFFD}");
    }

    #[test]
    fn hex_literals_are_64_bit_twos_complement() {
        assert_eq!(parse_hex("1F"), Literal::Number(31.0));
        assert_eq!(parse_hex("FFFFFFFFFFFFFFFF"), Literal::Number(-1.0));
        assert_eq!(parse_hex("00000000000000000001"), Literal::Number(1.0));
        assert_eq!(parse_hex("1FFFFFFFFFFFFFFFF"), Literal::UndefinedNumber);
    }
}
