//! Times and durations in a scenario: absolute or relative (`-PT2H`) times, and the checks and
//! conversions of `durationSeconds`.

use super::DurationSpec;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};

pub(crate) fn check_spec(spec: Option<&DurationSpec>) -> Result<(), String> {
    spec.map_or(Ok(()), DurationSpec::check)
        .map_err(|e| format!("durationSeconds: {e}"))
}

pub(crate) fn check_duration(seconds: Option<f64>) -> Result<(), String> {
    match seconds {
        Some(s) if !s.is_finite() || s < 0.0 || SignedDuration::try_from_secs_f64(s).is_err() => {
            Err(format!("must be a non-negative number of seconds, got {s}"))
        }
        _ => Ok(()),
    }
}

/// Converts a non-negative number of seconds to a duration.
pub(crate) fn seconds(s: f64) -> SignedDuration {
    SignedDuration::try_from_secs_f64(s.max(0.0)).unwrap_or(SignedDuration::MAX)
}

/// Resolves a scenario time: RFC 3339 (`2026-11-24T01:00:00Z`) or an ISO 8601 duration relative to
/// `start` (`-PT2H` is two hours before it; days count as 24 hours).
pub(crate) fn resolve_time(text: &str, start: Timestamp) -> Result<Timestamp, String> {
    let trimmed = text.trim();
    let relative = trimmed.starts_with(['-', '+', 'P', 'p']);
    if relative {
        let span: Span = trimmed
            .parse()
            .map_err(|e| format!("invalid relative time '{text}': {e}"))?;
        let offset = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|e| format!("invalid relative time '{text}': {e}"))?;
        start
            .checked_add(offset)
            .map_err(|e| format!("relative time '{text}' is out of range: {e}"))
    } else {
        trimmed.parse().map_err(|e| {
            format!("invalid time '{text}' (expected RFC 3339 like 2026-11-24T01:00:00Z or a duration like -PT2H): {e}")
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_count_back_from_the_start() {
        let start: Timestamp = "2026-11-24T03:00:00Z".parse().unwrap();
        let at = resolve_time("-PT2H", start).unwrap();
        assert_eq!(at.to_string(), "2026-11-24T01:00:00Z");
        let at = resolve_time("-P1DT30M", start).unwrap();
        assert_eq!(at.to_string(), "2026-11-23T02:30:00Z");
        assert_eq!(
            resolve_time("2026-01-02T03:04:05Z", start)
                .unwrap()
                .to_string(),
            "2026-01-02T03:04:05Z"
        );
    }
}
