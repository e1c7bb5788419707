//! When to call the webhook again: exponential backoff with full jitter, and the server's
//! `Retry-After` (delay-seconds or an HTTP-date, RFC 9110 §10.2.3), which is never undercut.

use std::time::{Duration, SystemTime};

use crate::config::RetrySettings;

/// The delay before retry number `retry` (1 = the first retry): uniformly random in
/// `[0, min(max, base × 2^(retry-1))]` ("full jitter"), so that many messages failing together do not
/// retry together.
pub fn backoff(settings: &RetrySettings, retry: u32) -> Duration {
    let cap = ceiling(settings, retry);
    Duration::from_millis(fastrand::u64(0..=cap.as_millis().try_into().unwrap_or(u64::MAX)))
}

/// The upper bound of [`backoff`] for retry number `retry`.
pub fn ceiling(settings: &RetrySettings, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(32);
    let millis = settings
        .base_delay_ms
        .saturating_mul(1u64 << doublings)
        .min(settings.max_delay_ms);
    Duration::from_millis(millis)
}

/// The wait a `Retry-After` header value asks for, measured from `now`; `None` when it does not
/// parse. A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The delay before the next attempt: the jittered backoff, but never less than what the server
/// asked for.
pub fn next_delay(settings: &RetrySettings, retry: u32, retry_after: Option<Duration>) -> Duration {
    let jittered = backoff(settings, retry);
    match retry_after {
        Some(asked) => asked.max(jittered.min(asked + Duration::from_secs(1))),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RetrySettings {
        RetrySettings {
            attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 1000,
            max_retry_after_secs: 60,
        }
    }

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let s = settings();
        let ceilings: Vec<u128> = (1..=6).map(|r| ceiling(&s, r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            ceiling(&s, 1000).as_millis(),
            1000,
            "no overflow on a huge retry number"
        );
    }

    #[test]
    fn backoff_stays_within_the_ceiling_and_varies() {
        let s = settings();
        let delays: Vec<Duration> = (0..200).map(|_| backoff(&s, 3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 20, "full jitter spreads the delays");
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn retry_after_is_never_undercut() {
        let s = settings();
        for _ in 0..100 {
            let delay = next_delay(&s, 1, Some(Duration::from_secs(2)));
            assert!(delay >= Duration::from_secs(2), "{delay:?}");
            assert!(delay <= Duration::from_secs(3), "{delay:?}");
        }
    }
}
