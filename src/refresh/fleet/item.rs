//! One item of a fleet or a cascade: what is known of it while it waits ([`Planned`]), each try
//! of it, and its own recorded operation ([`Recorded`]): its row in the store and its outputs,
//! kept across the tries a capacity hold causes (a rejected trigger is not an end: the same row
//! goes on, and records the wait), and its entry in the summary.

use std::time::Duration;

use tokio::time::Instant;

use super::hold::{Accepted, Holds, Watched};
use super::{FRESH, State};
use crate::error::{Error, ServiceError};
use crate::ops::outputs::{Outputs, secs};
use crate::ops::{Context, Recorder};
use crate::refresh::capacity;
use crate::refresh::runner::{self, Options};
use crate::refresh::summary::{TargetResult, of_item};
use crate::refresh::{ItemInfo, Kind, Outcome, Refreshable, Run};

/// An item's operation: its row, and what its outputs hold so far.
pub(super) struct Recorded<'s> {
    recorder: Recorder<'s>,
    out: Outputs,
}

impl<'s> Recorded<'s> {
    /// Writes the item's start row.
    pub(super) async fn begin(
        ctx: &Context<'s>,
        profile: &str,
        info: &ItemInfo,
    ) -> Result<Recorded<'s>, Error> {
        let operation = info.kind.operation();
        let mut out = Outputs {
            operation: Some(operation),
            profile: Some(profile.to_string()),
            ..Default::default()
        };
        info.render(&mut out);
        let recorder = Recorder::begin(
            ctx.store,
            operation,
            Some(profile),
            None,
            Some(&out),
            ctx.settings,
        )
        .await?;
        out.operation_id = recorder.id();
        Ok(Recorded { recorder, out })
    }

    /// One try of the runner, recorded in this row.
    pub(super) async fn attempt(
        &mut self,
        ctx: &Context<'_>,
        profile: &str,
        item: &dyn Refreshable,
        opts: &Options,
        history: Option<Vec<Run>>,
    ) -> Result<Outcome, Error> {
        let child = Context {
            recorder: &self.recorder,
            ..*ctx
        };
        runner::refresh_with(&child, profile, item, opts, history, &mut self.out).await
    }

    /// Records how the item ended (after `capacity_wait` waiting for its capacity) and returns
    /// its entry.
    pub(super) async fn finish(
        mut self,
        key: &str,
        info: &ItemInfo,
        result: Result<Outcome, Error>,
        capacity_wait: Duration,
    ) -> TargetResult {
        info.render(&mut self.out);
        let out = &mut self.out;
        let (code, error) = match result {
            Ok(outcome) => {
                outcome.render(out);
                (outcome.exit, None)
            }
            Err(e) => {
                tracing::error!("{key}: {e}");
                (e.exit_code(), Some(e))
            }
        };
        if !capacity_wait.is_zero() {
            out.capacity_wait_seconds = Some(secs(capacity_wait.as_secs_f64()));
        }
        if let Err(e) = self.recorder.finish(out, code, error.as_ref()).await {
            tracing::error!("{key}: {e}");
        }
        let mut result = of_item(key, info);
        result.status = out.status;
        result.request_id = out.request_id.clone();
        result.attached = out.attached;
        result.duration_seconds = out.duration_seconds;
        result.queued_seconds = out.queued_seconds;
        result.capacity_wait_seconds = out.capacity_wait_seconds;
        result.exit_code = code.code();
        result.error_code = out
            .error_code
            .clone()
            .or_else(|| error.as_ref().map(Error::code));
        result.error_message = out
            .error_message
            .clone()
            .or_else(|| error.as_ref().map(|e| crate::redact::scrub(&e.to_string())));
        result.operation_id = out.operation_id;
        result
    }
}

/// The entry of an item whose row could not even be started.
pub(super) fn unrecorded(key: &str, info: &ItemInfo, e: &Error) -> TargetResult {
    let mut result = of_item(key, info);
    result.exit_code = e.exit_code().code();
    result.error_code = Some(e.code());
    result.error_message = Some(crate::redact::scrub(&e.to_string()));
    result
}

/// How one try of an item ended.
pub(super) enum Step<'a, 'c> {
    /// For good (whatever the outcome).
    Done {
        index: usize,
        /// It was its held capacity's probe.
        probe: bool,
        /// How long its refresh waited in the service's queue, when the service said.
        queued: Option<f64>,
        result: Box<TargetResult>,
    },
    /// Its capacity rejected the trigger: it waits again, its row kept.
    Rejected(Box<Planned<'a, 'c>>, ServiceError),
}

/// One try of `p`, as its own recorded operation (the row of an earlier try goes on).
pub(super) async fn attempt<'a, 'c>(
    ctx: &Context<'c>,
    profile: &str,
    mut p: Planned<'a, 'c>,
    key: String,
    deps: Vec<String>,
    accepted: &Accepted,
) -> (String, Step<'a, 'c>) {
    let info = p.item.info().clone();
    let done = |mut result: TargetResult, queued: Option<f64>| {
        result.depends_on = deps;
        Step::Done {
            index: p.index,
            probe: p.probe,
            queued,
            result: Box::new(result),
        }
    };
    // A Gen2 item has no "already running" answer to fall back on: read it afresh.
    let reusable = info.kind != Kind::Gen2 && p.read_at.elapsed() < FRESH;
    let history = p.history.take().filter(|_| reusable);
    let mut op = match p.op.take() {
        Some(op) => op,
        None => match Recorded::begin(ctx, profile, &info).await {
            Ok(op) => op,
            Err(e) => {
                let result = unrecorded(&key, &info, &e);
                return (info.capacity, done(result, None));
            }
        },
    };
    let opts = match p.deadline() {
        Some(deadline) => capacity::within(&p.opts, deadline),
        None => p.opts,
    };
    let watched = Watched {
        inner: p.item.as_ref(),
        accepted,
    };
    let result = op.attempt(ctx, profile, &watched, &opts, history).await;
    let rejected = match &result {
        Ok(outcome) => outcome.rejected.clone(),
        Err(_) => None,
    };
    if let Some(service) = rejected {
        p.op = Some(op);
        return (info.capacity, Step::Rejected(Box::new(p), service));
    }
    let queued = result.as_ref().ok().and_then(Outcome::queued_seconds);
    let result = op.finish(&key, &info, result, p.capacity_wait).await;
    (info.capacity.clone(), done(result, queued))
}

/// Ends every waiting item whose capacity is still held when its timeout has passed.
pub(super) async fn give_up_held<'c>(
    ctx: &Context<'c>,
    profile: &str,
    planned: &mut Vec<Planned<'_, 'c>>,
    states: &mut [State],
    holds: &Holds,
    keys: &[String],
    now: Instant,
) {
    let mut i = 0;
    while i < planned.len() {
        let p = &planned[i];
        let service = holds.holding(&p.item.info().capacity);
        let (Some(service), Some(deadline)) = (service, p.deadline()) else {
            i += 1;
            continue;
        };
        if now < deadline {
            i += 1;
            continue;
        }
        let mut p = planned.remove(i);
        let info = p.item.info().clone();
        let key = &keys[p.index];
        p.hold(now);
        let waited = p.capacity_wait + p.held_since.map_or(Duration::ZERO, |t| now - t);
        let outcome = capacity::given_up(&info, service, waited);
        tracing::error!(
            "{key}: {}; help: {}",
            outcome.error_message.as_deref().unwrap_or_default(),
            capacity::HELP
        );
        let op = match p.op.take() {
            Some(op) => Ok(op),
            None => Recorded::begin(ctx, profile, &info).await,
        };
        let result = match op {
            Ok(op) => op.finish(key, &info, Ok(outcome), waited).await,
            Err(e) => unrecorded(key, &info, &e),
        };
        states[p.index] = State::Done(Box::new(result));
    }
}

/// A resolved item waiting for its dependencies, a slot, or its capacity.
pub(super) struct Planned<'a, 'c> {
    pub(super) index: usize,
    pub(super) item: Box<dyn Refreshable + 'a>,
    pub(super) opts: Options,
    pub(super) expected: f64,
    pub(super) history: Option<Vec<Run>>,
    pub(super) read_at: Instant,
    /// Its row, once a try was rejected by its capacity.
    pub(super) op: Option<Recorded<'c>>,
    /// When its `timeout` began: its first try, or when it first waited for its held capacity.
    pub(super) clock: Option<Instant>,
    /// Since when it waits for its held capacity.
    pub(super) held_since: Option<Instant>,
    /// How long it waited for its capacity before its current try.
    pub(super) capacity_wait: Duration,
    /// Its current try probes its held capacity.
    pub(super) probe: bool,
}

impl Planned<'_, '_> {
    /// When its `timeout` ends, once it began.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.clock.map(|c| c + self.opts.wait.timeout)
    }

    /// It waits for its held capacity from `now` (if not already).
    pub(super) fn hold(&mut self, now: Instant) {
        self.clock.get_or_insert(now);
        self.held_since.get_or_insert(now);
    }

    /// A try starts at `now`.
    pub(super) fn start(&mut self, now: Instant) {
        self.clock.get_or_insert(now);
        if let Some(since) = self.held_since.take() {
            self.capacity_wait += now - since;
        }
    }
}
