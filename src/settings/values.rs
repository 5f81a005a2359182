//! Single variables, read and checked: levels, counts, durations, endpoints. Each error names
//! the variable and says what it accepts; none repeats a value that could be a secret.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::Error;
use crate::kestra::LogFormat;
use crate::task::duration;

/// Largest HTTP timeout or retry budget, in seconds (a day).
const MAX_SETTING_SECONDS: f64 = 86_400.0;
/// Largest response cap, in MiB.
const MAX_RESPONSE_MB: usize = 1024;

/// `PBIOPS_LOG_LEVEL` (info when unset).
pub(super) fn log_level(value: Option<&str>) -> Result<tracing::Level, Error> {
    Ok(match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("info") => tracing::Level::INFO,
        Some("error") => tracing::Level::ERROR,
        Some("warn") => tracing::Level::WARN,
        Some("debug") => tracing::Level::DEBUG,
        Some("trace") => tracing::Level::TRACE,
        Some(_) => {
            return Err(Error::setting(
                "PBIOPS_LOG_LEVEL",
                "unknown level",
                "one of: error, warn, info, debug, trace",
            ));
        }
    })
}

/// A count of at least one, or `default` when unset.
pub(super) fn positive(
    variable: &str,
    value: Option<&str>,
    default: usize,
) -> Result<usize, Error> {
    match value {
        None => Ok(default),
        Some(n) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                Error::setting(
                    variable,
                    format!("`{n}` is not a positive integer"),
                    format!("e.g. {default}"),
                )
            }),
    }
}

/// Parses a log format name.
pub fn parse_log_format(variable: &str, value: &str) -> Result<LogFormat, Error> {
    match value.to_ascii_lowercase().as_str() {
        "kestra" => Ok(LogFormat::Kestra),
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(Error::setting(
            variable,
            format!("`{value}` is not a log format"),
            "one of: kestra, text, json",
        )),
    }
}

/// A duration of more than zero and at most a day (ISO-8601 or seconds), or `default`.
pub(super) fn duration_var(
    variable: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, Error> {
    match value {
        None => Ok(default),
        // A number of seconds beyond a day is refused before it reaches a conversion that
        // would overflow (e.g. `1e30`).
        Some(v)
            if v.trim()
                .parse::<f64>()
                .is_ok_and(|s| !(0.0..=MAX_SETTING_SECONDS).contains(&s)) =>
        {
            Err(Error::setting(
                variable,
                format!("`{v}` is not a duration of at most a day"),
                "ISO-8601 (e.g. PT30S) or seconds, at most PT24H",
            ))
        }
        Some(v) => duration::parse_str(v)
            .filter(|d| d.as_secs_f64() <= MAX_SETTING_SECONDS)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Error::setting(
                    variable,
                    format!("`{v}` is not a duration of at most PT24H"),
                    "ISO-8601 (e.g. PT30S) or seconds",
                )
            }),
    }
}

/// Shortest and longest `PBIOPS_SLOT_LEASE`: below 10 s every holder would write to the store
/// every couple of seconds; above an hour a dead worker's slots would be lost for the night.
const SLOT_LEASE_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(3600));

/// `PBIOPS_SLOT_LEASE`, checked.
pub(super) fn slot_lease(value: Option<&str>) -> Result<Duration, Error> {
    let lease = duration_var(
        "PBIOPS_SLOT_LEASE",
        value,
        crate::refresh::admission::DEFAULT_SLOT_LEASE,
    )?;
    let (min, max) = SLOT_LEASE_BOUNDS;
    if lease < min || lease > max {
        return Err(Error::setting(
            "PBIOPS_SLOT_LEASE",
            format!("{} s is outside PT10S..PT1H", lease.as_secs_f64()),
            "a dead worker's capacity slots return after the lease, and every holder renews every quarter of it: keep the default (PT2M) or stay between PT10S and PT1H",
        ));
    }
    Ok(lease)
}

/// An endpoint variable, checked, when it is set.
pub(super) fn explicit(variable: &str, value: Option<&str>) -> Result<Option<String>, Error> {
    value
        .map(|v| endpoint(variable, Some(v), "", false))
        .transpose()
}

/// Checks an endpoint URL: https, or plain http only to a loopback host (or, for `managed`
/// identity endpoints, anywhere: IMDS and App Service's endpoint are plain HTTP by design).
pub(super) fn endpoint(
    variable: &str,
    value: Option<&str>,
    default: &str,
    managed: bool,
) -> Result<String, Error> {
    let text = value.unwrap_or(default).trim().trim_end_matches('/');
    let url = url::Url::parse(text).map_err(|e| {
        Error::setting(
            variable,
            format!("`{text}` is not a URL: {e}"),
            "e.g. https://api.powerbi.com/v1.0/myorg",
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if managed || is_loopback(&url) => {}
        "http" => {
            return Err(Error::setting(
                variable,
                "plain http:// to a non-loopback host would send tokens in clear text",
                "use https://, or a loopback address (127.0.0.1) for the emulator",
            ));
        }
        other => {
            return Err(Error::setting(
                variable,
                format!("unsupported scheme `{other}`"),
                "use https://",
            ));
        }
    }
    Ok(text.to_string())
}

/// Whether `url` names this machine (the emulator), where plain http cannot leak a token.
pub(super) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `PBIOPS_HTTP_MAX_RESPONSE_MB`: the largest answer read, in MiB (32 unless set, at most 1024).
pub(super) fn max_response_mb(value: Option<&str>) -> Result<usize, Error> {
    let mebibytes = positive(
        "PBIOPS_HTTP_MAX_RESPONSE_MB",
        value,
        crate::http::DEFAULT_MAX_RESPONSE_BYTES >> 20,
    )?;
    if mebibytes > MAX_RESPONSE_MB {
        return Err(Error::setting(
            "PBIOPS_HTTP_MAX_RESPONSE_MB",
            format!("{mebibytes} MiB is more than {MAX_RESPONSE_MB} MiB"),
            "the default (32) fits every answer the services give",
        ));
    }
    Ok(mebibytes)
}
