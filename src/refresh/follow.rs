//! The wait: find a run the trigger did not name, announce its id at once, follow it by id to
//! its end, and say truthfully how it ended.
//!
//! A run that the trigger's answer did not name (a Gen1 dataflow's, or a flow's) is the oldest
//! one that was not listed before the trigger and started since; it is looked for within the
//! grace period (the service's lag), then announced the moment it is found, so a run killed
//! during the long wait that follows still leaves its id in the store and the outputs.

use std::cell::RefCell;
use std::time::Duration;

use jiff::Timestamp;

use super::overrun::Overrun;
use super::runner::{Follower, Target};
use super::{Kind, Outcome, Run};
use crate::error::{Error, ExitCode};
use crate::ops::outputs::{Outputs, Status, secs};
use crate::task::OnTimeout;
use crate::wait::{self, Aim, Begin, Ceiling, Expectation, Poll, PollPolicy, Waited};

impl Follower<'_, '_> {
    /// Announces the run's id, then waits for it to end (unless `wait` is false).
    pub(super) async fn follow(
        &mut self,
        target: Target,
        attached: bool,
        out: &mut Outputs,
    ) -> Result<Outcome, Error> {
        let began = tokio::time::Instant::now();
        let (run, listed) = match target {
            Target::Run(run) => (run, false),
            Target::Listed(run) => (run, true),
            Target::Pending { since } => match self.find(since, attached).await? {
                Ok(run) => (run, true),
                Err(outcome) => return Ok(outcome),
            },
        };
        self.announce(&run, out).await;
        let base = Outcome {
            attached,
            request_id: Some(run.id.clone()),
            refresh_type: self.item.refresh_type(&run),
            ..Outcome::new(Status::Triggered, ExitCode::Success)
        };
        if !self.opts.wait.wait {
            return Ok(base);
        }
        if run.status.is_some() {
            return Ok(self.ended(&run, attached, began));
        }
        let started = run
            .start
            .and_then(|s| Duration::try_from(Timestamp::now().duration_since(s)).ok())
            .unwrap_or_default();
        // The service may ask for a pause before the first read (a Gen2 job's 202 Retry-After):
        // then the first read comes right after it. A run this process just started is not read
        // at once (the policy says when it may have ended; a read now costs a call and tells
        // nothing); one it attached to is (it may have ended meanwhile).
        let begin = if attached || run.retry_after.is_some() {
            Begin::Now
        } else if listed {
            Begin::Listed
        } else {
            Begin::Named
        };
        if let Some(pause) = run.retry_after {
            tokio::time::sleep(pause.min(self.remaining())).await;
        }
        let overrun = Overrun::new(
            self.expectation,
            self.opts.wait.max_overrun,
            &self.what(),
            started,
        );
        let current = RefCell::new(run);
        let item = self.item;
        let waited = wait::until_done(
            self.policy(),
            started,
            self.remaining(),
            self.opts.wait.grace,
            begin,
            || {
                let (current, overrun) = (&current, &overrun);
                async move {
                    let known = current.borrow().clone();
                    Ok(match item.status(&known).await? {
                        None => Poll::Missing,
                        Some(run) => {
                            let after = run.retry_after;
                            let done = run.status.is_some();
                            // Past `maxOverrun`, the wait ends as at the timeout.
                            let given_up = !done && overrun.check();
                            *current.borrow_mut() = run.clone();
                            match (done || given_up, after) {
                                (true, _) => Poll::Done(run),
                                (false, Some(after)) => Poll::RunningFor(after),
                                (false, None) => Poll::Running,
                            }
                        }
                    })
                }
            },
        )
        .await?;
        let last = current.into_inner();
        let mut outcome = match waited {
            Waited::Done(run) if run.status.is_none() => {
                let outcome = Outcome {
                    service_status: run.service_status.clone(),
                    start: run.start,
                    objects: run.objects.clone(),
                    wait_seconds: Some(secs(began.elapsed().as_secs_f64())),
                    ..base
                };
                let mut outcome = self.timed_out(Some(&run), outcome).await;
                overrun.explain(&mut outcome);
                outcome
            }
            Waited::Done(run) => self.ended(&run, attached, began),
            Waited::Dropped => self.dropped(base, began),
            Waited::TimedOut => {
                let outcome = Outcome {
                    service_status: last.service_status.clone(),
                    start: last.start,
                    objects: last.objects.clone(),
                    wait_seconds: Some(secs(began.elapsed().as_secs_f64())),
                    ..base
                };
                self.timed_out(Some(&last), outcome).await
            }
        };
        overrun.judge(&mut outcome);
        Ok(outcome)
    }

    /// Looks for the run a trigger started without naming it; `Err` carries the outcome when
    /// it never appears (dropped) or the wait ends first.
    async fn find(&self, since: Timestamp, attached: bool) -> Result<Result<Run, Outcome>, Error> {
        let began = tokio::time::Instant::now();
        let item = self.item;
        let history = &self.history;
        // The run is announced as soon as it shows: `poll.max` bounds every look for it.
        let looking = PollPolicy {
            ceiling: Ceiling::Given,
            give_up: None,
            ..self.policy()
        };
        let waited = wait::until_done(
            looking,
            Duration::ZERO,
            self.remaining(),
            self.opts.wait.grace,
            Begin::Named,
            || async move {
                let runs = item.runs().await?;
                Ok(match oldest_new(&runs, history, since) {
                    Some(run) => Poll::Done(run.clone()),
                    None => Poll::Missing,
                })
            },
        )
        .await?;
        let base = Outcome {
            attached,
            ..Outcome::new(Status::Triggered, ExitCode::Success)
        };
        Ok(match waited {
            Waited::Done(run) => Ok(run),
            Waited::Dropped => Err(self.dropped(base, began)),
            Waited::TimedOut => Err(self
                .timed_out(
                    None,
                    Outcome {
                        wait_seconds: Some(secs(began.elapsed().as_secs_f64())),
                        ..base
                    },
                )
                .await),
        })
    }

    fn policy(&self) -> PollPolicy {
        PollPolicy {
            min: self.opts.wait.poll_min,
            max: self.opts.wait.poll_max,
            expectation: self.expectation,
            // Once the service has throttled this run, or another run as the same principal
            // (what it learned comes through the store), the API budget is what binds a fleet:
            // every call saved lets another item start sooner.
            aim: match self.opts.aim {
                Aim::Economy
                    if self.ctx.http.pace().budgeted() || self.ctx.http.was_throttled() =>
                {
                    Aim::Frugal
                }
                aim => aim,
            },
            queue: self.opts.queue,
            ceiling: self.opts.wait.poll_ceiling,
            give_up: self
                .expectation
                .zip(self.opts.wait.max_overrun)
                .map(|(e, limit)| e.overrun_at(limit)),
        }
    }

    /// Prints the outputs known so far (the run's id above all) and records them.
    async fn announce(&self, run: &Run, out: &mut Outputs) {
        out.request_id = Some(run.id.clone());
        out.refresh_type = self.item.refresh_type(run);
        self.ctx.announce(out).await;
    }

    /// The outcome of a run that ended.
    fn ended(&self, run: &Run, attached: bool, began: tokio::time::Instant) -> Outcome {
        let mut outcome = Outcome::of_run(run);
        outcome.attached = attached;
        outcome.refresh_type = self.item.refresh_type(run);
        outcome.wait_seconds = Some(secs(began.elapsed().as_secs_f64()));
        self.explain(&mut outcome, Some(run));
        outcome
    }

    /// The run never appeared in the service within the grace period.
    fn dropped(&self, base: Outcome, began: tokio::time::Instant) -> Outcome {
        let mut outcome = Outcome {
            status: Status::Failed,
            exit: ExitCode::Unsuccessful,
            wait_seconds: Some(secs(began.elapsed().as_secs_f64())),
            error_code: Some("RefreshDropped".into()),
            error_message: Some(format!(
                "the refresh of {} never appeared in the service within {}s: the service dropped the request (it does so under load); trigger it again",
                self.what(),
                secs(self.opts.wait.grace.as_secs_f64())
            )),
            ..base
        };
        self.explain(&mut outcome, None);
        outcome
    }

    /// A failure's code and words: the service's, or what the history explains better.
    fn explain(&self, outcome: &mut Outcome, run: Option<&Run>) {
        if outcome.status == Status::Completed {
            tracing::info!(
                "refresh of {} completed in {:.1}s",
                self.what(),
                outcome.duration_seconds().unwrap_or_default()
            );
            return;
        }
        let earlier: Vec<Run> = self
            .history
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
    pub(super) async fn timed_out(&self, run: Option<&Run>, mut outcome: Outcome) -> Outcome {
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
pub(super) fn oldest_new<'r>(runs: &'r [Run], before: &[Run], since: Timestamp) -> Option<&'r Run> {
    runs.iter()
        .filter(|r| is_new(r, before, since))
        .min_by_key(|r| r.start)
}

/// The newest new run: after an ambiguous trigger, the one it may have started.
pub(super) fn newest_new<'r>(runs: &'r [Run], before: &[Run], since: Timestamp) -> Option<&'r Run> {
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
    use jiff::SignedDuration;

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
