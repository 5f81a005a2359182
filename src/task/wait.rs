//! How a refresh is followed: `wait`, `timeout`, `poll`, `grace` → [`WaitOptions`], with the
//! defaults every refreshing operation shares.
//!
//! Each operation's raw type carries its own copy of these fields (serde cannot combine
//! `flatten` with `deny_unknown_fields`), and hands them here as a [`WaitFields`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::WaitOptions;
use super::fields::{Dur, Multiple};
use crate::error::Error;
use crate::wait::Ceiling;

/// Default overall wait: the service's own default per-attempt timeout (five hours).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 3600);
/// Default shortest poll interval: fine enough to see a 2-minute refresh end within 2 %.
pub const DEFAULT_POLL_MIN: Duration = Duration::from_secs(2);
/// Default longest poll interval: the policy polls densely only where a refresh is expected to
/// end, so a long maximum saves calls on long refreshes without delaying their detection.
pub const DEFAULT_POLL_MAX: Duration = Duration::from_secs(120);
/// Default time a new refresh may stay invisible before it counts as dropped.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);

/// Bounds of the polling interval.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    /// Shortest interval (default PT2S).
    pub min: Option<Dur>,
    /// Longest interval (default PT2M, or poll.min when longer). Given, it bounds every wait;
    /// the default lets a fleet item nobody waits on sleep past it once it has looked early.
    pub max: Option<Dur>,
}

/// The wait fields of one task, as given.
#[derive(Debug, Clone, Default)]
pub struct WaitFields {
    /// `wait`.
    pub wait: Option<bool>,
    /// `timeout`.
    pub timeout: Option<Dur>,
    /// `poll`.
    pub poll: Option<RawPoll>,
    /// `grace`.
    pub grace: Option<Dur>,
    /// `maxOverrun`.
    pub max_overrun: Option<Multiple>,
}

impl WaitFields {
    /// Whether any field was given (for operations where they apply only in some cases).
    pub fn given(&self) -> Option<&'static str> {
        [
            ("wait", self.wait.is_some()),
            ("timeout", self.timeout.is_some()),
            ("poll", self.poll.is_some()),
            ("grace", self.grace.is_some()),
            ("maxOverrun", self.max_overrun.is_some()),
        ]
        .into_iter()
        .find_map(|(name, given)| given.then_some(name))
    }

    /// Resolves the defaults and checks the bounds.
    pub fn options(&self) -> Result<WaitOptions, Error> {
        let poll = self.poll.clone().unwrap_or_default();
        let poll_min = poll.min.map_or(DEFAULT_POLL_MIN, |d| d.0);
        let poll_max = poll.max.map_or(DEFAULT_POLL_MAX.max(poll_min), |d| d.0);
        if poll_min.is_zero() {
            return Err(Error::task(
                "poll.min",
                "must be more than zero",
                "e.g. \"PT5S\"",
            ));
        }
        if poll_max < poll_min {
            return Err(Error::task(
                "poll.max",
                "is shorter than poll.min",
                "poll.max must be at least poll.min",
            ));
        }
        Ok(WaitOptions {
            wait: self.wait.unwrap_or(true),
            timeout: timeout("timeout", self.timeout)?.unwrap_or(DEFAULT_TIMEOUT),
            poll_min,
            poll_max,
            poll_ceiling: if poll.max.is_some() {
                Ceiling::Given
            } else {
                Ceiling::Default
            },
            grace: self.grace.map_or(DEFAULT_GRACE, |d| d.0),
            max_overrun: self.max_overrun.map(|m| m.0),
        })
    }
}

/// A wait's `timeout` (task-level or a fleet target's), which must be more than zero.
pub fn timeout(field: &str, given: Option<Dur>) -> Result<Option<Duration>, Error> {
    match given {
        Some(Dur(d)) if d.is_zero() => Err(Error::task(
            field,
            "must be more than zero",
            "use \"wait\": false to not wait at all",
        )),
        other => Ok(other.map(|d| d.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let o = WaitFields::default().options().expect("defaults");
        assert_eq!(
            (o.wait, o.timeout, o.poll_min, o.poll_max, o.grace),
            (
                true,
                DEFAULT_TIMEOUT,
                DEFAULT_POLL_MIN,
                DEFAULT_POLL_MAX,
                DEFAULT_GRACE
            )
        );
        let long_min = WaitFields {
            poll: Some(RawPoll {
                min: Some(Dur(Duration::from_secs(600))),
                max: None,
            }),
            ..WaitFields::default()
        };
        assert_eq!(
            long_min.options().expect("valid").poll_max,
            Duration::from_secs(600)
        );
        assert_eq!(o.poll_ceiling, Ceiling::Default, "poll.max left out");
        let given = WaitFields {
            poll: Some(RawPoll {
                min: None,
                max: Some(Dur(DEFAULT_POLL_MAX)),
            }),
            ..WaitFields::default()
        };
        assert_eq!(
            given.options().expect("valid").poll_ceiling,
            Ceiling::Given,
            "even when it equals the default"
        );
        let zero = WaitFields {
            timeout: Some(Dur(Duration::ZERO)),
            ..WaitFields::default()
        };
        assert!(
            zero.options()
                .expect_err("zero")
                .to_string()
                .contains("`timeout`")
        );
    }
}
