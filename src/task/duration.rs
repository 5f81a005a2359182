//! Durations in tasks: ISO-8601 (`PT2H`, `PT90S`) or plain seconds (`90`, `"90"`, `0.5`).
//!
//! Flows write ISO-8601 because Kestra does; people at a terminal write seconds. Both are exact,
//! and nothing else is guessed: `"2 hours"` is an error that says which forms are accepted.

use std::time::Duration;

use serde_json::Value;

use crate::error::Error;

/// The longest duration any task field or setting takes: a year. Longer values are typos, and
/// unbounded ones would overflow the clock arithmetic of a wait.
pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// The hint of every duration error.
pub const HELP: &str = "write an ISO-8601 duration such as \"PT2H\" or \"PT30S\", or a number of seconds (at most a year, P366D)";

/// What a number outside `0..=MAX` seconds is.
pub const OUT_OF_RANGE: &str = "not a number of seconds between 0 and a year";

/// Parses the duration in `value`, naming `field` in the error.
pub fn parse(field: &str, value: &Value) -> Result<Duration, Error> {
    match value {
        Value::Number(n) => n.as_f64().and_then(seconds).ok_or_else(|| {
            Error::task(
                field,
                format!(
                    "`{}` is {OUT_OF_RANGE}",
                    n.as_f64().map_or(n.to_string(), show)
                ),
                HELP,
            )
        }),
        Value::String(s) => parse_str(s).ok_or_else(|| {
            Error::task(
                field,
                format!("`{s}` is not a duration (or is out of range)"),
                HELP,
            )
        }),
        _ => Err(Error::task(
            field,
            "expected a duration string or a number of seconds",
            HELP,
        )),
    }
}

/// Parses `PT…` ISO-8601 durations and plain seconds, up to [`MAX`]; never panics.
pub fn parse_str(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs);
    }
    if !text.starts_with(['P', 'p']) {
        return None;
    }
    // Days and weeks (`P1D`) are 24 hours and 7 days: a wait has no calendar.
    let signed = match text.parse::<jiff::SignedDuration>() {
        Ok(d) => d,
        Err(_) => text
            .parse::<jiff::Span>()
            .ok()?
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .ok()?,
    };
    Duration::try_from(signed).ok().filter(|d| *d <= MAX)
}

/// A number as people write it: `1e30`, not thirty-one digits.
pub fn show(n: f64) -> String {
    if n.abs() >= 1e15 {
        format!("{n:e}")
    } else {
        n.to_string()
    }
}

/// A number of seconds as a duration, when it is finite and within `0..=MAX`.
pub fn seconds(secs: f64) -> Option<Duration> {
    let ok = secs.is_finite() && secs >= 0.0 && secs <= MAX.as_secs_f64();
    ok.then(|| Duration::try_from_secs_f64(secs).ok()).flatten()
}

/// Formats a duration as the service's `hh:mm:ss` (used by the enhanced refresh `timeout`).
pub fn to_hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_iso_8601_and_seconds() {
        assert_eq!(
            parse("t", &json!("PT2H")).ok(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            parse("t", &json!("PT1M30S")).ok(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse("t", &json!("P1D")).ok(),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(parse("t", &json!(90)).ok(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse("t", &json!("0.05")).ok(),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            parse("t", &json!(0.5)).ok(),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn rejects_everything_else_naming_the_field() {
        for bad in [
            json!("2 hours"),
            json!("-PT1H"),
            json!(-3),
            json!(true),
            json!("PTXS"),
            json!(""),
            json!(1e30),
            json!("1e30"),
            json!(u64::MAX),
            json!("NaN"),
            json!("inf"),
            json!("-0.5"),
            json!("P400D"),
            json!("PT99999999999999999H"),
        ] {
            let err = parse("poll.min", &bad).expect_err("must fail");
            assert!(err.to_string().contains("`poll.min`"), "{err}");
            assert!(err.hint().is_some());
        }
    }

    #[test]
    fn formats_service_timeouts() {
        assert_eq!(to_hms(Duration::from_secs(7200)), "02:00:00");
        assert_eq!(to_hms(Duration::from_secs(3725)), "01:02:05");
    }
}
