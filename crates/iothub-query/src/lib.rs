//! The Azure IoT Hub message-routing query language: compile a route condition once, evaluate it on
//! many messages, get `true`, `false` or `undefined` exactly as IoT Hub would.
//!
//! # Grammar
//!
//! ```text
//! condition  := expr | <empty>                     (anything left over is a syntax error)
//! expr       := coalesce
//! coalesce   := or   ( '??' or )*
//! or         := and  ( OR and )*                   AND, OR, NOT are case-insensitive
//! and        := eq   ( AND eq )*
//! eq         := cmp  ( ('=' | '!=' | '<>') cmp )*
//! cmp        := add  ( ('<' | '<=' | '>' | '>=') add )*
//! add        := mul  ( ('+' | '-' | '||') mul )*
//! mul        := unary ( ('*' | '/' | '%') unary )*
//! unary      := ('-' | NOT) unary | primary       prefix operators bind tighter than any binary one
//! primary    := '(' expr ')' | literal | SYS_PROP | '{' SYS_PROP '}' | ID | ID '(' [expr (',' expr)*] ')'
//! literal    := STRING | INTEGER | HEX | REAL | true | false | null | undefined   (lowercase only)
//!
//! STRING     := '...' | "..."        escapes: \' \" \\ \uXXXX only
//! INTEGER    := '-'? [0-9]+          HEX := 0[xX][0-9a-fA-F]+
//! REAL       := '-'? [0-9]* '.' [0-9]+ EXP? | '-'? [0-9]* EXP        EXP := [eE] [+-]? [0-9]+
//! SYS_PROP   := '$' (any char but ( ) < > @ , ; : \ " / ? = { } space tab CR LF)+
//! ID         := (any char but ( ) < > @ , ; : \ " / [ ] ? = { } space tab CR LF)+
//! comments   := /* ... */            whitespace: space, tab, CR, LF
//! reserved   := SELECT FROM WHERE INTO (case-insensitive; never valid in a condition)
//! ```
//!
//! The lexer takes the longest match; on a tie the earlier rule in the list above wins (keywords,
//! strings, numbers, `true false null undefined`, operators, SYS_PROP, ID). Because `- + * . ! ' % & |`
//! are identifier characters, operators touching a name need spaces: `a-1` is one property name.
//!
//! # Meaning
//!
//! * `ID` is an application property (case-insensitive name, value a string or null).
//! * `$name` is a system property (`$contentType`, `$connectionDeviceId`, ...), case-insensitive,
//!   unless an application property is literally named `$name`: that one wins. `{$name}` always means
//!   the system property.
//! * `$body.a.b[0]` reads the JSON body when `contentType` is `application/json` and `contentEncoding`
//!   is `utf-8`, `utf-16` or `utf-32`; `$twin.tags.x` reads the device twin, when one is supplied.
//! * Operands are type-checked at compile time (an application property compared with a number is an
//!   error); at run time every value may be `undefined`, and the logic is three-valued.
//!
//! The full rules, with their sources, are in the project's `spec/routing-query.md`; `ARCHITECTURE.md`
//! says how the pieces fit.
//!
//! # Use
//!
//! ```
//! use iothub_query::{Condition, Outcome, SimpleMessage};
//!
//! let condition = Condition::compile("level = 'critical' AND $body.windSpeed > 30").unwrap();
//! let message = SimpleMessage::new(br#"{"windSpeed": 42.5}"#.to_vec())
//!     .with_app_property("level", Some("critical"))
//!     .with_system_property("contentType", Some("application/json"))
//!     .with_system_property("contentEncoding", Some("utf-8"));
//! assert_eq!(condition.evaluate(&message).outcome, Outcome::True);
//! ```
//!
//! This crate does no IO and knows nothing of MQTT, queues or HTTP.

mod ast;
mod body;
mod check;
mod condition;
mod diagnostic;
mod eval;
mod functions;
mod ir;
mod lexer;
mod message;
mod number;
mod parser;
mod path;
mod text;
mod value;

pub use body::BodyError;
pub use condition::{Condition, ConditionSet, Evaluation, Outcome};
pub use diagnostic::{CompileError, CompileErrors, Location, Position, Severity};
pub use message::{MessageView, SimpleMessage, names_equal};

/// Longest condition accepted, in bytes. IoT Hub documents no limit; this one keeps compile time and
/// memory bounded while leaving room for long `OR` lists of device ids.
pub const MAX_CONDITION_BYTES: usize = 64 * 1024;

/// Deepest nesting of parentheses, calls and prefix operators accepted in a condition.
pub const MAX_NESTING: usize = 128;
