//! A capacity that rejects new refreshes: Fabric surge protection, or a capacity overloaded past
//! its limits, answers every trigger `CapacityLimitExceeded` until its load falls (Microsoft
//! Learn, "Surge protection": new background operations are rejected until the 24-hour
//! background percentage falls below the recovery threshold). That is a wait, not a failure:
//! nothing started, nothing is to be watched, and the same trigger succeeds later.
//!
//! So the item's capacity is *held*: the trigger is tried again after a back-off of 30 s,
//! doubling up to 5 min, never past `timeout` (the first wait is brought within the task's `poll`
//! bounds, and the cap is ten times the first wait, so a test with tiny bounds runs in moments).
//! One item retries in [`single`]. In a fleet (`fleet::hold`), no other item of a held capacity
//! starts while it is held; when the back-off ends one item probes it, and the first trigger the
//! capacity accepts ends the hold for all; items on other capacities go on meanwhile. An item
//! whose capacity is still rejecting when its `timeout` has passed ends `Skipped`, exit 5,
//! `errorCode` [`REJECTED`]: nothing ran, and a rerun may succeed.
//!
//! UNVERIFIED: the HTTP status of the rejection (429 per third-party clients) and whether it
//! carries `Retry-After`; pbiops keys on the code alone, in either API's error envelope, and
//! ignores any `Retry-After` it might carry (the capacity's recovery takes minutes, not seconds).

use std::time::Duration;

use tokio::time::Instant;

use super::runner::{self, Follower, Options};
use super::{ItemInfo, Outcome, Refreshable};
use crate::error::{Error, ExitCode, ServiceError};
use crate::ops::Context;
use crate::ops::outputs::{Outputs, Status, secs};
use crate::task::WaitOptions;

/// The `errorCode` of an item whose capacity rejected it until its timeout.
pub(crate) const REJECTED: &str = "CapacityRejected";
/// What to do about it.
pub(crate) const HELP: &str = "the capacity rejects new background operations while its surge protection is active or it is overloaded: see its load in the Fabric Capacity Metrics app, then raise its surge protection thresholds, scale it up, or move the refresh to a quieter hour; a longer `timeout` waits longer";
/// The first wait after a rejection (before `poll` bounds).
const FIRST: Duration = Duration::from_secs(30);
/// The longest wait, as a multiple of the first (30 s → 5 min).
const GROWTH: u32 = 10;

/// The waits between two triggers on a rejecting capacity: doubling from the first up to ten
/// times it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// 30 s doubling to 5 min, the first wait brought within `wait`'s poll bounds.
    pub(crate) fn new(wait: &WaitOptions) -> Backoff {
        let first = FIRST.min(wait.poll_max).max(wait.poll_min);
        Backoff {
            next: first,
            max: first * GROWTH,
        }
    }

    /// The next wait.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        wait
    }
}

impl Follower<'_, '_> {
    /// The capacity refused the trigger: an outcome saying so, for the caller to hold it.
    pub(super) fn capacity_rejected(&self, service: ServiceError) -> Outcome {
        tracing::warn!(
            "capacity {} rejected the refresh of {} ({service}): surge protection or an overload; nothing started",
            self.item.info().capacity,
            self.what()
        );
        Outcome {
            error_code: Some(REJECTED.into()),
            rejected: Some(service),
            ..Outcome::new(Status::Skipped, ExitCode::Timeout)
        }
    }
}

/// The outcome of an item whose capacity rejected it until its timeout, after `waited`.
pub(super) fn given_up(info: &ItemInfo, service: &ServiceError, waited: Duration) -> Outcome {
    Outcome {
        error_code: Some(REJECTED.into()),
        error_message: Some(format!(
            "capacity {} rejected every refresh of {} for {:.0}s, until the timeout ({service}); nothing was started",
            info.capacity,
            info.describe(),
            waited.as_secs_f64()
        )),
        capacity_wait_seconds: Some(secs(waited.as_secs_f64())),
        ..Outcome::new(Status::Skipped, ExitCode::Timeout)
    }
}

/// One item (not in a fleet): refreshes it, and while its capacity rejects the trigger, waits
/// and tries again, within `timeout`; each try goes through the whole runner again (a refresh
/// someone else started meanwhile is attached to, not doubled).
pub(super) async fn single(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    let deadline = Instant::now() + opts.wait.timeout;
    let mut backoff = Backoff::new(&opts.wait);
    let mut waited = Duration::ZERO;
    loop {
        let attempt = within(opts, deadline);
        let mut outcome = runner::refresh_with(ctx, profile, item, &attempt, None, out).await?;
        let Some(service) = outcome.rejected.take() else {
            if !waited.is_zero() {
                outcome.capacity_wait_seconds = Some(secs(waited.as_secs_f64()));
            }
            return Ok(outcome);
        };
        let pause = backoff
            .next()
            .min(deadline.saturating_duration_since(Instant::now()));
        if !pause.is_zero() {
            tracing::info!(
                "holding capacity {}: the refresh is tried again in {:.1}s",
                item.info().capacity,
                pause.as_secs_f64()
            );
        }
        tokio::time::sleep(pause).await;
        waited += pause;
        if Instant::now() >= deadline {
            let outcome = given_up(item.info(), &service, waited);
            let message = outcome.error_message.clone().unwrap_or_default();
            ctx.reporter
                .error(&crate::redact::scrub(&message), Some(HELP));
            return Ok(outcome);
        }
    }
}

/// `opts` with what is left until `deadline` as its timeout.
pub(super) fn within(opts: &Options, deadline: Instant) -> Options {
    let left = deadline.saturating_duration_since(Instant::now());
    Options {
        wait: WaitOptions {
            timeout: left.max(Duration::from_millis(1)),
            ..opts.wait
        },
        ..*opts
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Wait options with these poll bounds.
    pub(crate) fn wait(poll_min: f64, poll_max: f64) -> WaitOptions {
        WaitOptions {
            wait: true,
            timeout: Duration::from_secs(3600),
            poll_min: Duration::from_secs_f64(poll_min),
            poll_max: Duration::from_secs_f64(poll_max),
            poll_ceiling: crate::wait::Ceiling::Given,
            grace: Duration::from_secs(60),
            max_overrun: None,
        }
    }

    fn waits(mut backoff: Backoff, n: usize) -> Vec<f64> {
        (0..n).map(|_| backoff.next().as_secs_f64()).collect()
    }

    #[test]
    fn the_back_off_doubles_from_30_seconds_to_5_minutes_within_the_poll_bounds() {
        assert_eq!(
            waits(Backoff::new(&wait(5.0, 120.0)), 6),
            [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
        );
        // Tiny bounds (tests) scale it down; a long poll.min scales it up.
        assert_eq!(
            waits(Backoff::new(&wait(0.01, 0.1)), 6),
            [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
        );
        assert_eq!(waits(Backoff::new(&wait(60.0, 120.0)), 2), [60.0, 120.0]);
    }
}
