//! One item, end to end: reattach, single flight, trigger without blind retries, wait, outcome.
//!
//! The order matters and is the same for every kind. First, an earlier attempt of the same
//! Kestra task run (a retry after a dead worker) is followed or its outcome adopted, so a retry
//! never triggers twice. Then `ifRunning` applies to a run already going. Then the trigger: an
//! ambiguous answer (5xx, a lost or unreadable response) is never retried blindly: the item's
//! runs are watched for the grace period (the history lags) before triggering again. The run is
//! followed by id, never as "the latest", with the adaptive polling policy, and its id is
//! announced as soon as it is known, so a run killed later still leaves it behind.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::admission;
use super::follow::{expectation, newest_new, oldest_new};
use super::{Outcome, Refreshable, Run, Triggered};
use crate::error::{Error, ExitCode, ServiceError};
use crate::ops::Context;
use crate::ops::outputs::{Outputs, Status};
use crate::store::Claim;
use crate::task::{IfRunning, OnTimeout, WaitOptions};
use crate::wait::{Aim, Expectation};

/// How many triggers are sent at most when their outcome stays ambiguous.
const TRIGGER_ATTEMPTS: u32 = 3;
/// Clock skew tolerated between us and the service when telling our run from older ones.
const SKEW: SignedDuration = SignedDuration::from_secs(60);

/// How to run one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Options {
    /// Wait bounds.
    pub wait: WaitOptions,
    /// Single-flight policy.
    pub if_running: IfRunning,
    /// Timeout policy.
    pub on_timeout: OnTimeout,
    /// `maxParallelPerCapacity` of a fleet: with a store, it holds across every process.
    pub per_capacity: Option<usize>,
    /// Whether the wait sees the end promptly or spends few calls (a fleet item nobody waits on).
    pub aim: Aim,
    /// How long refreshes on the item's capacity lately waited in the service's queue before
    /// they began (a fleet learns it): an economical wait looks later by its `likely` part, a
    /// frugal one by its `late` part.
    pub queue: crate::wait::Queue,
}

/// Refreshes `item` as `profile` and returns how it ended; `out` receives the item and, as soon
/// as it is known, the run's id (printed and recorded at once). While the item's capacity rejects
/// the trigger (surge protection), it waits and tries again within `timeout` (`capacity`).
pub(crate) async fn refresh(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    super::capacity::single(ctx, profile, item, opts, out).await
}

/// One try of [`refresh`], with the item's recent runs when they were just read (a fleet's
/// planning). A trigger its capacity rejects ends it with an outcome whose `rejected` is set:
/// nothing started, and the caller holds the capacity.
pub(crate) async fn refresh_with(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
    history: Option<Vec<Run>>,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    // `timeout` counts from here: the first reads and the store's lookups are part of the run.
    let deadline = tokio::time::Instant::now() + opts.wait.timeout;
    item.info().render(out);
    // The row names the item before anything is triggered, so a retry finds it.
    ctx.recorder.progress(out).await;
    let history = match history {
        Some(h) => h,
        None => item.runs().await?,
    };
    let mut follower = Follower::new(ctx, item, opts, history, deadline);
    match super::items::earlier_attempt(ctx, profile, item, opts).await? {
        Some(Earlier::Adopt(outcome)) => return Ok(outcome),
        Some(Earlier::Follow { run, slot }) => {
            // The earlier attempt's slot came with its refresh: held while following it.
            let inherited = ctx.store.zip(ctx.recorder.id()).zip(slot);
            let follow = follower.follow(Target::Run(run), true, out);
            return match inherited {
                Some(((store, me), (capacity, slot))) => {
                    admission::Admission::inherited(store, capacity, slot, me)
                        .hold(follow)
                        .await
                }
                None => follow.await,
            };
        }
        // It stopped before the service named its run: a run that began after it did, through
        // the API, is the one it started.
        Some(Earlier::Unnamed { started_at }) => {
            if let Some(run) = oldest_new(&follower.history, &[], started_at - SKEW).cloned() {
                if run.status.is_some() {
                    tracing::info!(request_id = %run.id, "an earlier attempt of this task run started this refresh, which has ended: reporting it");
                    return Ok(Outcome::adopted(&run, item));
                }
                tracing::info!(request_id = %run.id, "an earlier attempt of this task run started this refresh: following it");
                return follower.follow(Target::Run(run), true, out).await;
            }
        }
        None => {}
    }
    if let Some(running) = follower.history.iter().find(|r| r.running()).cloned() {
        return follower.on_running(running, out).await;
    }
    // Single flight across processes: one run at a time may trigger the item.
    let Some((store, holder)) = ctx.store.zip(ctx.recorder.id()) else {
        return follower.trigger(out).await;
    };
    let info = item.info();
    let key = format!("{}:{}", info.kind.as_str(), info.id.to_ascii_lowercase());
    let ttl = opts.wait.timeout + opts.wait.grace + Duration::from_secs(60);
    match store.claim_item(&key, holder, ttl).await? {
        Claim::Held { holder, since } => follower.on_claimed(holder, since, out).await,
        Claim::Ours => {
            let mut held = None;
            let result = match opts.per_capacity {
                None => follower.trigger(out).await,
                Some(limit) => {
                    let step = follower.store_step();
                    let deadline = follower.deadline;
                    match admission::admit(store, holder, info, limit, step, deadline).await {
                        Ok(Some(slot)) => {
                            let result = slot.renewing(follower.trigger(out)).await;
                            held = Some(slot);
                            result
                        }
                        Ok(None) => Ok(follower.no_slot().await),
                        Err(e) => Err(e),
                    }
                }
            };
            // The claim goes back with the slot when one was held: one store call.
            let released = match held {
                Some(slot) => slot.release(Some(&key)).await,
                None => store.release_item(&key, holder).await,
            };
            if let Err(e) = released {
                tracing::warn!("{e}; what was not given back lapses on its own");
            }
            result
        }
    }
}

/// Follows the first run of `item` that was not in `history` and started after `since`: the
/// one something else triggered (a Power Automate flow the run just called).
pub(crate) async fn follow_new(
    ctx: &Context<'_>,
    item: &dyn Refreshable,
    opts: &Options,
    history: Vec<Run>,
    since: Timestamp,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    item.info().render(out);
    let deadline = tokio::time::Instant::now() + opts.wait.timeout;
    let mut follower = Follower::new(ctx, item, opts, history, deadline);
    follower.follow(Target::Pending { since }, false, out).await
}

/// Follows `run`, which an earlier attempt of this task run started.
pub(crate) async fn follow_earlier(
    ctx: &Context<'_>,
    item: &dyn Refreshable,
    opts: &Options,
    run: Run,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    item.info().render(out);
    let history = item.runs().await?;
    let deadline = tokio::time::Instant::now() + opts.wait.timeout;
    let mut follower = Follower::new(ctx, item, opts, history, deadline);
    follower.follow(Target::Run(run), true, out).await
}

/// What an earlier attempt of the same task run left behind.
pub(crate) enum Earlier {
    /// Its run is still going: follow it.
    Follow {
        /// The run.
        run: Run,
        /// The capacity slot (capacity, slot) the earlier attempt held, now this run's.
        slot: Option<(String, i64)>,
    },
    /// It ended (or the earlier attempt completed the item): report that.
    Adopt(Outcome),
    /// It stopped before its run had an id: a run it started began after `started_at`.
    Unnamed {
        /// When the earlier attempt started.
        started_at: Timestamp,
    },
}

/// What is being followed.
pub(super) enum Target {
    /// A run known by id: attached to, or named by the trigger's answer.
    Run(Run),
    /// A run read from the item's list (it exists: it cannot be dropped).
    Listed(Run),
    /// A run not named by the trigger's answer: the oldest new one since `since`.
    Pending { since: Timestamp },
}

/// One item's run being triggered and followed.
pub(super) struct Follower<'a, 'c> {
    pub(super) ctx: &'a Context<'c>,
    pub(super) item: &'a dyn Refreshable,
    pub(super) opts: &'a Options,
    pub(super) expectation: Option<Expectation>,
    /// The runs before the trigger (newest first); none of them can be the one we start.
    pub(super) history: Vec<Run>,
    /// When `timeout` runs out: it bounds triggering, looking for the run and waiting for it.
    pub(super) deadline: tokio::time::Instant,
}

impl<'a, 'c> Follower<'a, 'c> {
    fn new(
        ctx: &'a Context<'c>,
        item: &'a dyn Refreshable,
        opts: &'a Options,
        history: Vec<Run>,
        deadline: tokio::time::Instant,
    ) -> Follower<'a, 'c> {
        Follower {
            ctx,
            item,
            opts,
            expectation: expectation(&history),
            history,
            deadline,
        }
    }

    /// How often the store is asked again while waiting on another process (a claim's holder,
    /// a capacity slot).
    fn store_step(&self) -> Duration {
        self.opts
            .wait
            .poll_min
            .clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    /// What is left until the deadline (never zero: a wait still looks once).
    pub(super) fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(1))
    }

    pub(super) fn what(&self) -> String {
        self.item.info().describe()
    }

    /// Applies `ifRunning` to a run that is already going.
    async fn on_running(&mut self, running: Run, out: &mut Outputs) -> Result<Outcome, Error> {
        let started = running
            .start
            .map_or_else(|| "an unknown time".into(), |t| t.to_string());
        let what = self.what();
        match self.opts.if_running {
            IfRunning::Skip => {
                tracing::info!(request_id = %running.id, "a refresh of {what} started at {started} is already running; skipping (ifRunning: skip)");
                Ok(Outcome {
                    request_id: Some(running.id.clone()),
                    refresh_type: self.item.refresh_type(&running),
                    ..Outcome::new(Status::Skipped, ExitCode::Success)
                })
            }
            IfRunning::Fail => {
                // The outputs still name the refresh that blocked this one.
                out.request_id = Some(running.id.clone());
                Err(Error::Rejected {
                    action: format!("trigger a refresh of {what}"),
                    service: ServiceError {
                        code: Some("RefreshAlreadyRunning".into()),
                        message: Some(format!(
                            "refresh {}, started at {started}, is still running",
                            running.id
                        )),
                        ..Default::default()
                    },
                    help: Some(
                        "use ifRunning: attach to wait for it, or skip to leave it alone".into(),
                    ),
                })
            }
            IfRunning::Attach => {
                tracing::info!(request_id = %running.id, "a refresh of {what} started at {started} is already running; attaching to it");
                self.follow(Target::Run(running), true, out).await
            }
        }
    }

    /// Another process's run is triggering (or following) a refresh of the item: `ifRunning`
    /// applies to the run it starts.
    async fn on_claimed(
        &mut self,
        holder: i64,
        since: Timestamp,
        out: &mut Outputs,
    ) -> Result<Outcome, Error> {
        let what = self.what();
        match self.opts.if_running {
            IfRunning::Skip => {
                tracing::info!(
                    "operation {holder} (started {since}) is refreshing {what}; skipping (ifRunning: skip)"
                );
                Ok(Outcome::new(Status::Skipped, ExitCode::Success))
            }
            IfRunning::Fail => Err(Error::Rejected {
                action: format!("trigger a refresh of {what}"),
                service: ServiceError {
                    code: Some("RefreshAlreadyRunning".into()),
                    message: Some(format!(
                        "operation {holder}, started at {since}, is refreshing it"
                    )),
                    ..Default::default()
                },
                help: Some(
                    "use ifRunning: attach to wait for it, or skip to leave it alone".into(),
                ),
            }),
            IfRunning::Attach => {
                tracing::info!(
                    "operation {holder} (started {since}) is refreshing {what}; attaching to the refresh it starts"
                );
                self.follow_holder(holder, out).await
            }
        }
    }

    /// The timeout passed while every slot of the item's capacity stayed taken.
    async fn no_slot(&self) -> Outcome {
        let mut outcome = self
            .timed_out(None, Outcome::new(Status::Running, ExitCode::Timeout))
            .await;
        outcome.status = Status::Skipped;
        outcome.error_code = Some("NoCapacitySlot".into());
        outcome.error_message = Some(format!(
            "no slot of capacity {} came free within the timeout: {} was not refreshed",
            self.item.info().capacity,
            self.what()
        ));
        outcome
    }

    /// Follows the refresh the operation `holder` (another process) starts: its row names the
    /// run once the service has; if it ends without one (refused before triggering), this run
    /// triggers itself.
    async fn follow_holder(&mut self, holder: i64, out: &mut Outputs) -> Result<Outcome, Error> {
        let Some(store) = self.ctx.store else {
            return self.trigger(out).await;
        };
        let step = self.store_step();
        loop {
            let row = store.operation(holder).await?;
            match row {
                Some(row) if row.request_id.is_some() => {
                    let id = row.request_id.unwrap_or_default();
                    return self.follow(Target::Run(Run::seed(id)), true, out).await;
                }
                Some(row) if row.ended_at.is_none() && row.status == crate::store::RUNNING => {}
                _ => {
                    tracing::info!(
                        "operation {holder} ended without starting a refresh of {}; triggering it here",
                        self.what()
                    );
                    return self.trigger(out).await;
                }
            }
            if tokio::time::Instant::now() + step > self.deadline {
                let outcome = Outcome::new(Status::Running, ExitCode::Timeout);
                return Ok(self.timed_out(None, outcome).await);
            }
            tokio::time::sleep(step).await;
        }
    }

    /// Triggers, checking the runs after every ambiguous answer before trying again.
    async fn trigger(&mut self, out: &mut Outputs) -> Result<Outcome, Error> {
        let since = Timestamp::now() - SKEW;
        let mut last = ServiceError::default();
        let mut busy = false;
        for attempt in 1..=TRIGGER_ATTEMPTS {
            if attempt > 1 && tokio::time::Instant::now() >= self.deadline {
                break;
            }
            match self.item.trigger().await? {
                Triggered::Accepted(run) => {
                    tracing::info!(
                        request_id = run.as_ref().map_or("", |r| r.id.as_str()),
                        "refresh of {} triggered",
                        self.what()
                    );
                    let target = run.map_or(Target::Pending { since }, Target::Run);
                    return self.follow(target, false, out).await;
                }
                Triggered::Busy(service) => {
                    // The service says a run is going; its list may lag: watch for it.
                    let running = self
                        .watch(|runs| runs.iter().find(|r| r.running()).cloned(), false)
                        .await?;
                    if let Some(running) = running {
                        return self.on_running(running, out).await;
                    }
                    // None showed within the grace period (it ended meanwhile): try again.
                    last = service;
                    busy = true;
                }
                Triggered::CapacityRejected(service) => {
                    return Ok(self.capacity_rejected(service));
                }
                Triggered::Ambiguous(why) => {
                    busy = false;
                    tracing::warn!(
                        "the refresh request's outcome is unknown ({why}); watching the runs of {} before trying again",
                        self.what()
                    );
                    let history = &self.history;
                    let appeared = self
                        .watch(|runs| newest_new(runs, history, since).cloned(), true)
                        .await?;
                    if let Some(run) = appeared {
                        tracing::info!(request_id = %run.id, "the refresh did start; following it");
                        return self.follow(Target::Listed(run), false, out).await;
                    }
                    last = ServiceError {
                        message: Some(why),
                        ..Default::default()
                    };
                    if attempt < TRIGGER_ATTEMPTS {
                        tracing::info!(
                            "no refresh started; triggering again (attempt {} of {TRIGGER_ATTEMPTS})",
                            attempt + 1
                        );
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= self.deadline {
            let outcome = Outcome::new(Status::Running, ExitCode::Timeout);
            return Ok(self.timed_out(None, outcome).await);
        }
        let action = format!("trigger a refresh of {}", self.what());
        if busy {
            // The service kept saying "already running" while its runs showed nothing running.
            return Err(Error::Rejected {
                action,
                service: ServiceError { code: Some("RefreshAlreadyRunning".into()), ..last },
                help: Some("a refresh the service does not list yet is running (its history lags): rerun with ifRunning: attach in a minute".into()),
            });
        }
        Err(Error::Unavailable {
            action,
            attempts: TRIGGER_ATTEMPTS,
            last: last.to_string(),
        })
    }

    /// Reads the item's runs until `pick` finds one or the grace period (the history's lag)
    /// has passed; `pause_first` waits one step before the first read.
    async fn watch(
        &self,
        pick: impl Fn(&[Run]) -> Option<Run>,
        pause_first: bool,
    ) -> Result<Option<Run>, Error> {
        let began = tokio::time::Instant::now();
        let step = self.opts.wait.poll_min.min(Duration::from_secs(10));
        if pause_first {
            tokio::time::sleep(step).await;
        }
        loop {
            let runs = self.item.runs().await?;
            if let Some(run) = pick(&runs) {
                return Ok(Some(run));
            }
            let now = tokio::time::Instant::now();
            if now.duration_since(began) + step > self.opts.wait.grace || now + step > self.deadline
            {
                return Ok(None);
            }
            tokio::time::sleep(step).await;
        }
    }
}
