//! One item, end to end: reattach, single flight, trigger without blind retries, wait, outcome.
//!
//! The order matters and is the same for every kind. First, an earlier attempt of the same
//! Kestra task run (a retry after a dead worker) is followed or its outcome adopted, so a retry
//! never triggers twice. Then `ifRunning` applies to a run already going. Then the trigger: an
//! ambiguous answer (5xx, a lost or unreadable response) is never retried blindly: the item's
//! runs are watched for the grace period (the history lags) before triggering again. The run is
//! followed by id, never as "the latest", with the adaptive polling policy, and its id is
//! announced as soon as it is known, so a run killed later still leaves it behind.

use std::cell::RefCell;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::{Kind, Outcome, Refreshable, Run, Triggered};
use crate::error::{Error, ExitCode, ServiceError};
use crate::ops::Context;
use crate::ops::outputs::{Outputs, Status, secs};
use crate::task::{IfRunning, OnTimeout, WaitOptions};
use crate::wait::{self, Expectation, Poll, PollPolicy, Waited};

/// How many triggers are sent at most when their outcome stays ambiguous.
const TRIGGER_ATTEMPTS: u32 = 3;
/// Clock skew tolerated between us and the service when telling our run from older ones.
const SKEW: SignedDuration = SignedDuration::from_secs(60);

/// How to run one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Wait bounds.
    pub wait: WaitOptions,
    /// Single-flight policy.
    pub if_running: IfRunning,
    /// Timeout policy.
    pub on_timeout: OnTimeout,
}

/// Refreshes `item` as `profile` and returns how it ended; `out` receives the item and, as soon
/// as it is known, the run's id (printed and recorded at once).
pub(crate) async fn refresh(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    refresh_with(ctx, profile, item, opts, None, out).await
}

/// [`refresh`], with the item's recent runs when they were just read (a fleet's planning).
pub(crate) async fn refresh_with(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
    history: Option<Vec<Run>>,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    item.info().render(out);
    let history = match history {
        Some(h) => h,
        None => item.runs().await?,
    };
    let mut follower = Follower {
        ctx,
        item,
        opts,
        expectation: expectation(&history),
        history,
    };
    match super::items::earlier_attempt(ctx, profile, item, opts).await? {
        Some(Earlier::Adopt(outcome)) => return Ok(outcome),
        Some(Earlier::Follow(run)) => {
            return follower.follow(Target::Run(run), true, out).await;
        }
        None => {}
    }
    if let Some(running) = follower.history.iter().find(|r| r.running()).cloned() {
        return follower.on_running(running, out).await;
    }
    follower.trigger(out).await
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
    let mut follower = Follower {
        ctx,
        item,
        opts,
        expectation: expectation(&history),
        history,
    };
    follower.follow(Target::Pending { since }, false, out).await
}

/// What an earlier attempt of the same task run left behind.
pub(crate) enum Earlier {
    /// Its run is still going: follow it.
    Follow(Run),
    /// It ended (or the earlier attempt completed the item): report that.
    Adopt(Outcome),
}

/// What is being followed.
enum Target {
    /// A run known by id.
    Run(Run),
    /// A run not named by the trigger's answer: the oldest new one since `since`.
    Pending { since: Timestamp },
}

struct Follower<'a, 'c> {
    ctx: &'a Context<'c>,
    item: &'a dyn Refreshable,
    opts: &'a Options,
    expectation: Option<Expectation>,
    /// The runs before the trigger (newest first); none of them can be the one we start.
    history: Vec<Run>,
}

impl Follower<'_, '_> {
    fn what(&self) -> String {
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

    /// Triggers, checking the runs after every ambiguous answer before trying again.
    async fn trigger(&mut self, out: &mut Outputs) -> Result<Outcome, Error> {
        let since = Timestamp::now() - SKEW;
        let mut last = ServiceError::default();
        let mut busy = false;
        for attempt in 1..=TRIGGER_ATTEMPTS {
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
                    let runs = self.item.runs().await?;
                    if let Some(running) = runs.into_iter().find(Run::running) {
                        return self.on_running(running, out).await;
                    }
                    // It ended between the POST and the read: try again.
                    last = service;
                    busy = true;
                }
                Triggered::Ambiguous(why) => {
                    busy = false;
                    tracing::warn!(
                        "the refresh request's outcome is unknown ({why}); watching the runs of {} before trying again",
                        self.what()
                    );
                    if let Some(run) = self.appeared(since).await? {
                        tracing::info!(request_id = %run.id, "the refresh did start; following it");
                        return self.follow(Target::Run(run), false, out).await;
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

    /// After an ambiguous trigger: a run that was not there before and could be ours, looked
    /// for until the grace period (the history's lag) has passed.
    async fn appeared(&self, since: Timestamp) -> Result<Option<Run>, Error> {
        let began = tokio::time::Instant::now();
        let step = self.opts.wait.poll_min.min(Duration::from_secs(10));
        loop {
            tokio::time::sleep(step).await;
            let runs = self.item.runs().await?;
            if let Some(run) = newest_new(&runs, &self.history, since) {
                return Ok(Some(run.clone()));
            }
            if began.elapsed() + step > self.opts.wait.grace {
                return Ok(None);
            }
        }
    }

    /// Announces the run's id, then waits for it to end (unless `wait` is false).
    async fn follow(
        &mut self,
        target: Target,
        attached: bool,
        out: &mut Outputs,
    ) -> Result<Outcome, Error> {
        let began = tokio::time::Instant::now();
        let (seed, since) = match target {
            Target::Run(run) => (Some(run), None),
            Target::Pending { since } => (None, Some(since)),
        };
        if let Some(run) = &seed {
            self.announce(run, out).await;
        }
        let outcome_base = |run: Option<&Run>| Outcome {
            attached,
            request_id: run.map(|r| r.id.clone()),
            refresh_type: run.and_then(|r| self.item.refresh_type(r)),
            ..Outcome::new(Status::Triggered, ExitCode::Success)
        };
        if !self.opts.wait.wait && seed.is_some() {
            return Ok(outcome_base(seed.as_ref()));
        }
        let started = seed
            .as_ref()
            .and_then(|r| r.start)
            .and_then(|s| Duration::try_from(Timestamp::now().duration_since(s)).ok())
            .unwrap_or_default();
        let timeout = self.opts.wait.timeout;
        // The service may ask for a pause before the first read (a Gen2 job's 202 Retry-After).
        let first = seed.as_ref().and_then(|r| r.retry_after);
        if let Some(pause) = first {
            tokio::time::sleep(pause.min(timeout)).await;
        }
        let policy = PollPolicy {
            min: self.opts.wait.poll_min,
            max: self.opts.wait.poll_max,
            expectation: self.expectation,
        };
        let current = RefCell::new(seed.clone());
        let announced = RefCell::new(seed.is_some());
        let latest = RefCell::new(Vec::<Run>::new());
        let item = self.item;
        let history = &self.history;
        let wait = self.opts.wait.wait;
        let waited = wait::until_done(
            policy,
            started,
            timeout
                .saturating_sub(began.elapsed())
                .max(Duration::from_millis(1)),
            self.opts.wait.grace,
            seed.is_some(),
            || {
                let (current, latest) = (&current, &latest);
                async move {
                    let known = current.borrow().clone();
                    let view = match known {
                        Some(run) => item.status(&run).await?,
                        None => {
                            let runs = item.runs().await?;
                            let since = since.unwrap_or_else(Timestamp::now);
                            let found = oldest_new(&runs, history, since).cloned();
                            *latest.borrow_mut() = runs;
                            found
                        }
                    };
                    Ok(match view {
                        None => Poll::Missing,
                        Some(run) => {
                            let done = run.status.is_some() || !wait;
                            let after = run.retry_after;
                            *current.borrow_mut() = Some(run.clone());
                            if done {
                                Poll::Done(run)
                            } else {
                                after.map_or(Poll::Running, Poll::RunningFor)
                            }
                        }
                    })
                }
            },
        )
        .await?;
        let last = current.into_inner();
        if let (Some(run), false) = (&last, announced.into_inner()) {
            self.announce(run, out).await;
        }
        let waited_for = Some(secs(began.elapsed().as_secs_f64()));
        let mut history = latest.into_inner();
        if history.is_empty() {
            history = self.history.clone();
        }
        Ok(match waited {
            Waited::Done(run) if !wait => outcome_base(Some(&run)),
            Waited::Done(run) => {
                let mut outcome = Outcome::of_run(&run);
                outcome.attached = attached;
                outcome.refresh_type = self.item.refresh_type(&run);
                outcome.wait_seconds = waited_for;
                self.explain(&mut outcome, Some(&run), &history);
                outcome
            }
            Waited::Dropped => {
                let mut outcome = Outcome {
                    wait_seconds: waited_for,
                    ..outcome_base(None)
                };
                outcome.status = Status::Failed;
                outcome.exit = ExitCode::Unsuccessful;
                outcome.error_code = Some("RefreshDropped".into());
                outcome.error_message = Some(format!(
                    "the refresh of {} never appeared in the service within {}s: the service dropped the request (it does so under load); trigger it again",
                    self.what(),
                    self.opts.wait.grace.as_secs()
                ));
                self.explain(&mut outcome, None, &history);
                outcome
            }
            Waited::TimedOut => {
                let mut outcome = Outcome {
                    wait_seconds: waited_for,
                    ..outcome_base(last.as_ref())
                };
                if let Some(run) = &last {
                    outcome.service_status = run.service_status.clone();
                    outcome.start = run.start;
                    outcome.objects = run.objects.clone();
                }
                self.timed_out(last.as_ref(), outcome).await
            }
        })
    }

    /// Prints the outputs known so far (the run's id above all) and records them.
    async fn announce(&self, run: &Run, out: &mut Outputs) {
        out.request_id = Some(run.id.clone());
        out.refresh_type = self.item.refresh_type(run);
        self.ctx.announce(out).await;
    }

    /// A failure's code and words: the service's, or what the history explains better.
    fn explain(&self, outcome: &mut Outcome, run: Option<&Run>, history: &[Run]) {
        if outcome.status == Status::Completed {
            tracing::info!(
                "refresh of {} completed in {:.1}s",
                self.what(),
                outcome.duration_seconds().unwrap_or_default()
            );
            return;
        }
        let earlier: Vec<Run> = history
            .iter()
            .filter(|h| run.is_none_or(|r| r.id != h.id))
            .cloned()
            .collect();
        if let Some((code, message)) = self.item.explain(run, &earlier) {
            outcome.error_code = Some(code);
            outcome.error_message = Some(message);
        }
        if outcome.error_code.is_none() {
            let prefix = match self.item.info().kind {
                Kind::Model => "Refresh",
                Kind::Gen1 | Kind::Gen2 => "DataflowRefresh",
            };
            outcome.error_code = Some(format!("{prefix}{:?}", outcome.status));
        }
        tracing::error!(
            "refresh of {} ended {:?}: {} {}",
            self.what(),
            outcome.status,
            outcome.error_code.as_deref().unwrap_or_default(),
            outcome.error_message.as_deref().unwrap_or_default()
        );
    }

    /// Our wait timed out (exit 5); with `onTimeout: cancel`, the run is cancelled.
    async fn timed_out(&self, run: Option<&Run>, mut outcome: Outcome) -> Outcome {
        let waited = self.opts.wait.timeout.as_secs_f64();
        let id = run.map_or("", |r| r.id.as_str());
        let what = self.what();
        outcome.status = Status::Running;
        outcome.exit = ExitCode::Timeout;
        outcome.error_code = Some("WaitTimedOut".into());
        outcome.error_message = Some(format!(
            "the refresh {id} of {what} was still running after {waited:.0}s"
        ));
        let Some(run) = run.filter(|_| self.opts.on_timeout == OnTimeout::Cancel) else {
            tracing::warn!(request_id = %id, "wait timed out after {waited:.0}s; the refresh of {what} is left running (ifRunning: attach follows it)");
            return outcome;
        };
        match self.item.cancel(run).await {
            Ok(true) => {
                tracing::warn!(request_id = %id, "wait timed out after {waited:.0}s; the refresh of {what} was cancelled (onTimeout: cancel)");
                outcome.status = Status::Cancelled;
                outcome.cancel_requested = true;
            }
            Ok(false) => {
                tracing::warn!(request_id = %id, "wait timed out after {waited:.0}s; the refresh of {what} cannot be cancelled through the API (a standard model refresh) and is left running");
            }
            Err(e) => {
                tracing::error!(request_id = %id, "wait timed out, and cancelling the refresh of {what} failed: {e}");
            }
        }
        outcome
    }
}

/// Whether `run` can be the one a trigger sent at `since` started: not listed before it, started
/// through the API, and not before `since`.
fn is_new(run: &Run, before: &[Run], since: Timestamp) -> bool {
    run.via_api && !before.iter().any(|b| b.id == run.id) && run.start.is_none_or(|s| s >= since)
}

/// The oldest run that is new since the trigger (a run ending just before is not ours).
fn oldest_new<'r>(runs: &'r [Run], before: &[Run], since: Timestamp) -> Option<&'r Run> {
    runs.iter()
        .filter(|r| is_new(r, before, since))
        .min_by_key(|r| r.start)
}

/// The newest new run: after an ambiguous trigger, the one it may have started.
fn newest_new<'r>(runs: &'r [Run], before: &[Run], since: Timestamp) -> Option<&'r Run> {
    runs.iter()
        .filter(|r| is_new(r, before, since))
        .max_by_key(|r| r.start)
}

/// What the item's recent successful runs predict of the next one.
pub(crate) fn expectation(history: &[Run]) -> Option<Expectation> {
    let durations: Vec<Duration> = history
        .iter()
        .filter(|r| r.status == Some(Status::Completed))
        .filter_map(Run::duration)
        .filter(|d| !d.is_zero())
        .take(10)
        .collect();
    Expectation::from_durations(&durations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, start: Option<&str>, via_api: bool) -> Run {
        Run {
            start: start.map(|s| s.parse().expect("timestamp")),
            via_api,
            ..Run::seed(id)
        }
    }

    #[test]
    fn only_a_run_absent_before_and_started_via_the_api_since_the_trigger_is_ours() {
        let since: Timestamp = "2026-01-01T10:00:00Z".parse().expect("ts");
        let before = vec![run("old", Some("2026-01-01T09:00:00Z"), true)];
        let runs = vec![
            run("scheduled", Some("2026-01-01T10:00:05Z"), false),
            run("late", Some("2026-01-01T10:00:09Z"), true),
            run("ours", Some("2026-01-01T10:00:01Z"), true),
            run("old", Some("2026-01-01T09:00:00Z"), true),
            run("earlier", Some("2026-01-01T09:59:00Z"), true),
        ];
        assert_eq!(
            oldest_new(&runs, &before, since).map(|r| r.id.as_str()),
            Some("ours")
        );
        assert_eq!(
            newest_new(&runs, &before, since).map(|r| r.id.as_str()),
            Some("late")
        );
        // A run whose start the service does not give counts as new when it was not listed.
        let sparse = vec![run("no-start", None, true)];
        assert!(oldest_new(&sparse, &before, since).is_some());
    }

    #[test]
    fn the_expectation_comes_from_completed_runs_only() {
        let done = |id: &str, secs: i64| Run {
            status: Some(Status::Completed),
            start: Some("2026-01-01T10:00:00Z".parse().expect("ts")),
            end: Some(
                "2026-01-01T10:00:00Z".parse::<Timestamp>().expect("ts")
                    + SignedDuration::from_secs(secs),
            ),
            ..Run::seed(id)
        };
        let failed = Run {
            status: Some(Status::Failed),
            ..done("f", 9000)
        };
        let e = expectation(&[done("a", 100), failed, done("b", 120)]).expect("expectation");
        assert!(e.median >= Duration::from_secs(100) && e.median <= Duration::from_secs(120));
        assert!(expectation(&[]).is_none());
    }
}
