//! Blob names from IoT Hub's `fileNameFormat` (ARM `RoutingStorageContainerProperties`).
//!
//! The format mixes literal text with seven tokens, each required at least once, in any order:
//! `{iothub}` (the hub's name), `{partition}` (this hub has one: `0`), and the batch time in UTC,
//! `{YYYY}` `{MM}` `{DD}` `{HH}` `{mm}`. The default is IoT Hub's,
//! `{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}`, which gives `ContosoTestHub/0/2018/10/30/10/56`.
//! Tokens are case-sensitive (`{MM}` is the month, `{mm}` the minute), as in IoT Hub.
//!
//! # Which time
//!
//! The time is the one the batch was *opened* (its first message joined it), not the flush time: the
//! name is then fixed for the batch's whole life, so a retried write after an outage or a restart
//! aims at the same name, and a blob's name is never later than the records inside it (IoT Hub's
//! blobs read the same way: `…/10/56` holds messages from 10:56 on).
//!
//! # Never overwritten: suffixes
//!
//! When a name is taken, the writer tries the same name with `_1`, `_2`, … ([`with_suffix`]). The
//! suffix goes into the last path segment *before its extension* — the text from the segment's
//! last `.` on, when that `.` is not the segment's first character — so that a literal extension
//! survives: `hub/0/2018/10/30/10/56` → `…/56_1`, `{mm}.json` → `56_1.json`, `{mm}/data.avro` →
//! `56/data_1.avro`. Tokens never expand to a `.`, so an extension always comes from literal text.
//!
//! # What a format may not contain
//!
//! Names must be valid blob names and valid local paths at once: no empty segment (`//`, a leading or
//! trailing `/`), no `.` or `..` segment, no `\`, no control characters, and no `#` (the local
//! directory backend stages uploads as `name#N` and hides such names from listings).

use std::fmt;
use std::str::FromStr;

use iothub_protocol::Timestamp;

/// IoT Hub's default `fileNameFormat`.
pub const DEFAULT_FILE_NAME_FORMAT: &str = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}";

/// Azure's limit on a blob name, in characters.
const MAX_BLOB_NAME_LEN: usize = 1024;

/// IoT Hub's longest hub name: a format must leave room for it.
const MAX_HUB_NAME_LEN: usize = 50;

/// A token of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    IotHub,
    Partition,
    Year,
    Month,
    Day,
    Hour,
    Minute,
}

impl Token {
    const ALL: [Token; 7] = [
        Token::IotHub,
        Token::Partition,
        Token::Year,
        Token::Month,
        Token::Day,
        Token::Hour,
        Token::Minute,
    ];

    fn text(self) -> &'static str {
        match self {
            Token::IotHub => "{iothub}",
            Token::Partition => "{partition}",
            Token::Year => "{YYYY}",
            Token::Month => "{MM}",
            Token::Day => "{DD}",
            Token::Hour => "{HH}",
            Token::Minute => "{mm}",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Token::ALL
            .into_iter()
            .find(|token| &token.text()[1..token.text().len() - 1] == name)
    }

    /// The expansion; the time fields are slices of the IoT Hub text `YYYY-MM-DDTHH:MM:…`.
    fn expand<'a>(self, hub: &'a str, partition: &'a str, time: &'a str) -> &'a str {
        match self {
            Token::IotHub => hub,
            Token::Partition => partition,
            Token::Year => &time[0..4],
            Token::Month => &time[5..7],
            Token::Day => &time[8..10],
            Token::Hour => &time[11..13],
            Token::Minute => &time[14..16],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Token(Token),
}

/// Why a `fileNameFormat` was refused. Positions are 1-based character columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileNameFormatError {
    /// Some required tokens are absent.
    #[error("fileNameFormat `{format}` is missing {}: all of {{iothub}} {{partition}} {{YYYY}} {{MM}} {{DD}} {{HH}} {{mm}} are required", .missing.join(" "))]
    Missing {
        /// The format.
        format: String,
        /// The absent tokens, in canonical order.
        missing: Vec<&'static str>,
    },
    /// `{name}` is not one of the seven tokens.
    #[error(
        "fileNameFormat has an unknown token `{{{name}}}` at column {column} (tokens are {{iothub}} {{partition}} {{YYYY}} {{MM}} {{DD}} {{HH}} {{mm}})"
    )]
    UnknownToken {
        /// The text between the braces.
        name: String,
        /// Where the `{` is.
        column: usize,
    },
    /// A `{` without its `}`.
    #[error("fileNameFormat has a `{{` without a closing `}}` at column {column}")]
    Unclosed {
        /// Where the `{` is.
        column: usize,
    },
    /// A `}` without its `{`.
    #[error("fileNameFormat has a `}}` without an opening `{{` at column {column}")]
    Unopened {
        /// Where the `}` is.
        column: usize,
    },
    /// The names it makes are not valid blob names.
    #[error("fileNameFormat `{format}` makes invalid blob names: {reason}")]
    InvalidName {
        /// The format.
        format: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A parsed `fileNameFormat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNameFormat {
    text: String,
    parts: Vec<Part>,
}

impl FileNameFormat {
    /// Parses and validates a format.
    pub fn parse(text: &str) -> Result<Self, FileNameFormatError> {
        let parts = tokenize(text)?;
        let missing: Vec<&'static str> = Token::ALL
            .into_iter()
            .filter(|token| !parts.contains(&Part::Token(*token)))
            .map(Token::text)
            .collect();
        if !missing.is_empty() {
            return Err(FileNameFormatError::Missing {
                format: text.to_owned(),
                missing,
            });
        }
        let format = FileNameFormat {
            text: text.to_owned(),
            parts,
        };
        // Token expansions are fixed-width digits or the hub name (checked on its own, see
        // `check_hub_name`), so one sample with a longest hub name validates every name.
        let sample = format.render(&"h".repeat(MAX_HUB_NAME_LEN), "0", Timestamp::UNIX_EPOCH);
        if let Err(reason) = check_blob_name(&sample) {
            return Err(FileNameFormatError::InvalidName {
                format: text.to_owned(),
                reason,
            });
        }
        Ok(format)
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The blob name for a hub, a partition and a batch time (UTC, to the minute).
    pub fn render(&self, hub: &str, partition: &str, time: Timestamp) -> String {
        let time = time.as_str();
        let mut name = String::with_capacity(self.text.len() + hub.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => name.push_str(text),
                Part::Token(token) => name.push_str(token.expand(hub, partition, time)),
            }
        }
        name
    }
}

/// IoT Hub's default, [`DEFAULT_FILE_NAME_FORMAT`].
impl Default for FileNameFormat {
    fn default() -> Self {
        // Tokens in `Token::ALL` order, separated by `/`: exactly the default format's text.
        let parts = Token::ALL
            .into_iter()
            .enumerate()
            .flat_map(|(index, token)| {
                let separator = (index > 0).then(|| Part::Literal("/".to_owned()));
                separator.into_iter().chain([Part::Token(token)])
            })
            .collect();
        FileNameFormat {
            text: DEFAULT_FILE_NAME_FORMAT.to_owned(),
            parts,
        }
    }
}

impl FromStr for FileNameFormat {
    type Err = FileNameFormatError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for FileNameFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn tokenize(text: &str) -> Result<Vec<Part>, FileNameFormatError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().enumerate();
    while let Some((index, c)) = chars.next() {
        match c {
            '{' => {
                let column = index + 1;
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some((_, '}')) => break,
                        Some((_, '{')) | None => return Err(FileNameFormatError::Unclosed { column }),
                        Some((_, c)) => name.push(c),
                    }
                }
                let token =
                    Token::from_name(&name).ok_or(FileNameFormatError::UnknownToken { name, column })?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Token(token));
            }
            '}' => return Err(FileNameFormatError::Unopened { column: index + 1 }),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// Whether `name` is a blob name every backend stores under exactly that name.
fn check_blob_name(name: &str) -> Result<(), &'static str> {
    if name.chars().count() > MAX_BLOB_NAME_LEN {
        return Err("longer than 1024 characters");
    }
    if name.contains('#') {
        return Err("`#` is not allowed (local uploads are staged as `name#N`)");
    }
    if name.contains('\\') {
        return Err("`\\` is not allowed");
    }
    if name.chars().any(char::is_control) {
        return Err("control characters are not allowed");
    }
    if name.split('/').any(str::is_empty) {
        return Err("a path segment is empty (leading, trailing or doubled `/`)");
    }
    if name.split('/').any(|segment| segment == "." || segment == "..") {
        return Err("`.` and `..` are not allowed as path segments");
    }
    object_store::path::Path::parse(name).map_err(|_| "not a valid object path")?;
    Ok(())
}

/// Whether `hub` can stand for `{iothub}`: one non-empty path segment of at most 50 characters
/// with none of the characters a format may not contain.
pub(crate) fn check_hub_name(hub: &str) -> Result<(), &'static str> {
    if hub.is_empty() || hub.chars().count() > MAX_HUB_NAME_LEN {
        return Err("the hub name must have 1 to 50 characters");
    }
    if hub.contains('/') || hub == "." || hub == ".." {
        return Err("the hub name must not contain `/` or be `.` or `..`");
    }
    check_blob_name(hub)
}

/// `name` with collision suffix `n` (`n = 0` is the name itself): `_n` goes before the extension of
/// the last path segment, if it has one, else at the end.
pub fn with_suffix(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    let segment_start = name.rfind('/').map_or(0, |slash| slash + 1);
    let segment = &name[segment_start..];
    let insert_at = match segment.rfind('.') {
        Some(dot) if dot > 0 => segment_start + dot,
        _ => name.len(),
    };
    format!("{}_{n}{}", &name[..insert_at], &name[insert_at..])
}
