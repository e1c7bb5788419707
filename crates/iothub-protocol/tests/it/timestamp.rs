//! IoT Hub timestamps: seven fractional digits, UTC (spec §6).

use std::time::{Duration, UNIX_EPOCH};

use iothub_protocol::timestamp::{Timestamp, TimestampError};

#[track_caller]
fn check(text: &str, expected: Result<&str, TimestampError>) {
    let actual = Timestamp::parse(text).map(|t| t.to_string());
    assert_eq!(actual.as_deref().map_err(Clone::clone), expected, "{text}");
}

#[test]
fn parses_and_formats() {
    check("2019-05-10T06:06:32.7220000Z", Ok("2019-05-10T06:06:32.7220000Z"));
    check("2019-09-26T17:46:09.8870000Z", Ok("2019-09-26T17:46:09.8870000Z"));
    check("2021-04-21T11:30:16Z", Ok("2021-04-21T11:30:16.0000000Z"));
    check("2021-04-21T11:30:16.1Z", Ok("2021-04-21T11:30:16.1000000Z"));
    check(
        "2021-04-21T11:30:16.123456789Z",
        Ok("2021-04-21T11:30:16.1234567Z"),
    );
    check("2021-04-21T13:30:16+02:00", Ok("2021-04-21T11:30:16.0000000Z"));
    check("2021-04-21t11:30:16z", Ok("2021-04-21T11:30:16.0000000Z"));
    check("2021-04-21T11:30:16.5", Ok("2021-04-21T11:30:16.5000000Z"));
    check("0000-01-01T00:00:00Z", Ok("0000-01-01T00:00:00.0000000Z"));
    check("9999-12-31T23:59:59.9999999Z", Ok("9999-12-31T23:59:59.9999999Z"));
    check("1969-12-31T23:59:59.9999999Z", Ok("1969-12-31T23:59:59.9999999Z"));
    check("yesterday", Err(TimestampError::Invalid("yesterday".into())));
    check(
        "2021-02-30T00:00:00Z",
        Err(TimestampError::Invalid("2021-02-30T00:00:00Z".into())),
    );
    check("", Err(TimestampError::Invalid(String::new())));
    let long = "x".repeat(100);
    let message = Timestamp::parse(&long).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "`{}…` is not a timestamp like 2019-05-10T06:06:32.7220000Z",
            "x".repeat(64)
        )
    );
}

#[test]
fn converts_to_and_from_epoch_times() {
    let t = Timestamp::parse("2019-05-10T06:06:32.7220000Z").unwrap();
    assert_eq!(t.unix_millis(), 1_557_468_392_722);
    assert_eq!(Timestamp::from_unix_millis(1_557_468_392_722).unwrap(), t);
    assert_eq!(t.unix_nanos(), 1_557_468_392_722_000_000);
    // Truncated to 100 ns, towards the past.
    assert_eq!(Timestamp::from_unix_nanos(199).unwrap().unix_nanos(), 100);
    assert_eq!(
        Timestamp::from_unix_nanos(-1).unwrap().to_string(),
        "1969-12-31T23:59:59.9999999Z"
    );
    assert_eq!(Timestamp::from_unix_nanos(-1).unwrap().unix_millis(), -1);
    let system = UNIX_EPOCH + Duration::from_nanos(1_557_468_392_722_000_050);
    assert_eq!(Timestamp::from_system_time(system).unwrap(), t);
    assert_eq!(
        Timestamp::from_system_time(UNIX_EPOCH - Duration::from_secs(1))
            .unwrap()
            .unix_millis(),
        -1000
    );
    assert_eq!(Timestamp::UNIX_EPOCH, Timestamp::from_unix_nanos(0).unwrap());
    assert_eq!(
        Timestamp::from_unix_millis(i64::MAX),
        Err(TimestampError::OutOfRange)
    );
    assert_eq!(
        Timestamp::from_unix_nanos(-62_167_219_200_000_000_001),
        Err(TimestampError::OutOfRange)
    );
    assert!(Timestamp::now() > t);
}

#[test]
fn orders_and_serializes_as_text() {
    let early = Timestamp::parse("2019-05-10T06:06:32.7220000Z").unwrap();
    let late = Timestamp::parse("2019-05-10T06:06:32.7220001Z").unwrap();
    assert!(early < late && early.as_str() < late.as_str());
    assert_eq!(
        serde_json::to_string(&early).unwrap(),
        r#""2019-05-10T06:06:32.7220000Z""#
    );
    assert_eq!(
        serde_json::from_str::<Timestamp>(r#""2019-05-10T06:06:32.722Z""#).unwrap(),
        early
    );
    assert!(serde_json::from_str::<Timestamp>(r#""never""#).is_err());
    assert_eq!(format!("{early:?}"), "Timestamp(2019-05-10T06:06:32.7220000Z)");
    assert_eq!("2019-05-10T06:06:32.722Z".parse::<Timestamp>(), Ok(early));
}
