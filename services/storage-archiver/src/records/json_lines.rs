//! JSON lines: one storage record per line, read with a bounded line length.

use iothub_protocol::storage_record::StorageRecord;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{Limits, Record, RecordError};

/// Reads records line by line from a buffered source.
#[derive(Debug)]
pub(super) struct JsonLines<S> {
    source: S,
    /// The current line, without its line ending; never longer than the limit.
    line: Vec<u8>,
    /// The 1-based number of the last line read (blank lines counted).
    line_number: u64,
    /// The position the next record gets.
    position: u64,
    limit: usize,
    /// An overlong line was reported; the rest of it is still to be skipped.
    skipping: bool,
}

/// What reading one line gave.
enum Line {
    /// A whole line (the last may lack its `\n`), in `self.line`.
    Complete { terminated: bool },
    /// The line is longer than the limit; the part read so far is dropped.
    TooLong,
    /// The end of the blob, with no line.
    End,
}

impl<S: AsyncBufRead + Unpin> JsonLines<S> {
    pub(super) fn new(source: S, limits: Limits) -> Self {
        JsonLines {
            source,
            line: Vec::new(),
            line_number: 0,
            position: 0,
            limit: limits.max_record_bytes,
            skipping: false,
        }
    }

    /// The next record; blank lines are skipped.
    pub(super) async fn next(&mut self) -> Result<Option<Record>, RecordError> {
        if self.skipping {
            self.skip_line().await?;
            self.skipping = false;
        }
        loop {
            let read = self.read_line().await?;
            let terminated = match read {
                Line::End => return Ok(None),
                Line::TooLong => {
                    let position = self.take_position();
                    return Err(RecordError::RecordTooLarge {
                        line: self.line_number,
                        position,
                        limit: self.limit,
                    });
                }
                Line::Complete { terminated } => terminated,
            };
            let text = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
            let text = match self.line_number {
                1 => text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text),
                _ => text,
            };
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let position = self.position;
            self.position += 1;
            return parse_line(text, self.line_number, position, terminated).map(Some);
        }
    }

    /// The position of a record that could not be read, which still counts.
    fn take_position(&mut self) -> u64 {
        let position = self.position;
        self.position += 1;
        position
    }

    /// Reads the next line into `self.line`, stopping (and setting `skipping` when the line goes
    /// on) as soon as it passes the limit.
    async fn read_line(&mut self) -> Result<Line, RecordError> {
        self.line.clear();
        let mut any = false;
        loop {
            let available = self.source.fill_buf().await?;
            if available.is_empty() {
                if any {
                    self.line_number += 1;
                    return Ok(Line::Complete { terminated: false });
                }
                return Ok(Line::End);
            }
            any = true;
            let newline = available.iter().position(|&byte| byte == b'\n');
            let content = newline.unwrap_or(available.len());
            if self.line.len() + content > self.limit {
                self.line_number += 1;
                self.line.clear();
                match newline {
                    Some(at) => self.source.consume(at + 1),
                    None => {
                        self.source.consume(content);
                        self.skipping = true;
                    }
                }
                return Ok(Line::TooLong);
            }
            self.line.extend_from_slice(&available[..content]);
            match newline {
                Some(at) => {
                    self.source.consume(at + 1);
                    self.line_number += 1;
                    return Ok(Line::Complete { terminated: true });
                }
                None => self.source.consume(content),
            }
        }
    }

    /// Discards the rest of the current line, up to and including its `\n`.
    async fn skip_line(&mut self) -> Result<(), RecordError> {
        loop {
            let available = self.source.fill_buf().await?;
            if available.is_empty() {
                return Ok(());
            }
            match available.iter().position(|&byte| byte == b'\n') {
                Some(at) => {
                    self.source.consume(at + 1);
                    return Ok(());
                }
                None => {
                    let all = available.len();
                    self.source.consume(all);
                }
            }
        }
    }

    #[cfg(test)]
    pub(super) fn buffered_capacity(&self) -> usize {
        self.line.capacity()
    }
}

/// One non-blank line as a record. A last line without its `\n` that stops mid-JSON is a cut
/// blob, not a bad record.
fn parse_line(text: &[u8], line: u64, position: u64, terminated: bool) -> Result<Record, RecordError> {
    let bad = |message: String| RecordError::Json {
        line,
        position,
        message,
    };
    let text = std::str::from_utf8(text).map_err(|error| bad(format!("the line is not UTF-8: {error}")))?;
    match StorageRecord::parse(text) {
        Ok(record) => Ok(Record::new(position, record)),
        Err(_) if !terminated && ends_early(text) => Err(RecordError::Truncated(format!(
            "line {line} (record {position}) ends before its JSON does"
        ))),
        Err(error) => Err(bad(error.to_string())),
    }
}

/// Whether `text` is the start of a JSON value cut short.
fn ends_early(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_err_and(|error| error.is_eof())
}
