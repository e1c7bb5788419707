//! IoT Hub's timestamp format: UTC, seven fractional digits, `2019-05-10T06:06:32.7220000Z`.
//!
//! A [`Timestamp`] has .NET's 100-nanosecond resolution and keeps its text, so it formats for free
//! and its text sorts like its time (years 0000-9999). Calendar math is the `time` crate's.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Length of the text: `YYYY-MM-DDTHH:MM:SS.fffffffZ`.
const TEXT_LEN: usize = 28;
const NANOS_PER_TICK: i128 = 100;

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The text is not an RFC 3339 / ISO 8601 date-time.
    #[error("`{0}` is not a timestamp like 2019-05-10T06:06:32.7220000Z")]
    Invalid(String),
    /// The instant is outside the years 0000-9999.
    #[error("the timestamp is outside the years 0000-9999")]
    OutOfRange,
}

/// An instant in UTC, at 100 ns resolution, with its IoT Hub text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// 100-nanosecond ticks since the Unix epoch.
    ticks: i64,
    /// ASCII text, always `YYYY-MM-DDTHH:MM:SS.fffffffZ`.
    text: [u8; TEXT_LEN],
}

impl Timestamp {
    /// The current time (the only clock read in this crate). A system clock outside the years
    /// 0000-9999 gives the Unix epoch rather than a panic.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now()).unwrap_or(Self::UNIX_EPOCH)
    }

    /// 1970-01-01T00:00:00.0000000Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp {
        ticks: 0,
        text: *b"1970-01-01T00:00:00.0000000Z",
    };

    /// From a system time, truncated to 100 ns.
    pub fn from_system_time(time: SystemTime) -> Result<Self, TimestampError> {
        let nanos = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).map_err(|_| TimestampError::OutOfRange)?,
            Err(before) => {
                let nanos =
                    i128::try_from(before.duration().as_nanos()).map_err(|_| TimestampError::OutOfRange)?;
                -nanos
            }
        };
        Self::from_unix_nanos(nanos)
    }

    /// From nanoseconds since the Unix epoch, truncated (towards the past) to 100 ns.
    pub fn from_unix_nanos(nanos: i128) -> Result<Self, TimestampError> {
        let ticks = nanos.div_euclid(NANOS_PER_TICK);
        let ticks = i64::try_from(ticks).map_err(|_| TimestampError::OutOfRange)?;
        let datetime = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ticks) * NANOS_PER_TICK)
            .map_err(|_| TimestampError::OutOfRange)?;
        Self::from_datetime(ticks, datetime)
    }

    /// From milliseconds since the Unix epoch (AMQP timestamps, `iothub-enqueuedtime`).
    pub fn from_unix_millis(millis: i64) -> Result<Self, TimestampError> {
        Self::from_unix_nanos(i128::from(millis) * 1_000_000)
    }

    /// Parses RFC 3339 / ISO 8601 text: any number of fractional digits (kept to 100 ns), `Z` or
    /// an offset (converted to UTC); text without an offset is taken as UTC, as .NET does for
    /// IoT Hub's `iothub-creation-time-utc`.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .or_else(|_| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339))
            .map_err(|_| TimestampError::Invalid(excerpt(text)))?;
        Self::from_unix_nanos(parsed.unix_timestamp_nanos())
    }

    /// The IoT Hub text, `2019-05-10T06:06:32.7220000Z`.
    pub fn as_str(&self) -> &str {
        // The text is ASCII by construction; the fallback is unreachable.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// Milliseconds since the Unix epoch, rounded towards the past.
    pub fn unix_millis(&self) -> i64 {
        self.ticks.div_euclid(10_000)
    }

    /// Nanoseconds since the Unix epoch (a multiple of 100).
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.ticks) * NANOS_PER_TICK
    }

    fn from_datetime(ticks: i64, datetime: OffsetDateTime) -> Result<Self, TimestampError> {
        let year = u32::try_from(datetime.year()).map_err(|_| TimestampError::OutOfRange)?;
        if year > 9999 {
            return Err(TimestampError::OutOfRange);
        }
        let mut text = *b"0000-00-00T00:00:00.0000000Z";
        write_digits(&mut text[0..4], year);
        write_digits(&mut text[5..7], u32::from(u8::from(datetime.month())));
        write_digits(&mut text[8..10], u32::from(datetime.day()));
        write_digits(&mut text[11..13], u32::from(datetime.hour()));
        write_digits(&mut text[14..16], u32::from(datetime.minute()));
        write_digits(&mut text[17..19], u32::from(datetime.second()));
        write_digits(&mut text[20..27], datetime.nanosecond() / 100);
        Ok(Timestamp { ticks, text })
    }
}

/// Writes `value` as zero-padded decimal digits filling `out`.
fn write_digits(out: &mut [u8], mut value: u32) {
    for byte in out.iter_mut().rev() {
        // `value % 10` is below 10, so the cast cannot truncate.
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// At most 64 characters of `text`, for error messages.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.as_str())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Serialized as its IoT Hub text.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}
