//! Fabric job instances (Job Scheduler): `NotStarted` until first looked at, then `InProgress`,
//! then `Completed`, `Failed` (with `failureReason`), `Cancelled` or `Deduped`.

use crate::progress::Timing;
use crate::scenario::{FailureReason, JobBehaviour, JobOutcome};
use jiff::Timestamp;

/// A job instance.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: String,
    pub workspace_id: String,
    pub item_id: String,
    pub job_type: String,
    pub root_activity_id: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub ended: Option<JobOutcome>,
    pub failure: Option<FailureReason>,
    pub observed: u32,
    pub timing: Timing,
    pub outcome: JobOutcome,
    pub planned_failure: Option<FailureReason>,
    pub retry_after: u64,
    /// A countdown `Retry-After` on status reads.
    pub countdown: bool,
    /// How long it still reads `InProgress` after it ended.
    pub status_lag: Option<jiff::SignedDuration>,
    /// The status word it shows once ended, instead of its outcome's.
    pub end_status: Option<String>,
    /// List reads (or emulator time) it is still hidden from; hidden, a read by id is a 404.
    pub hidden: crate::lag::Hidden,
}

impl Job {
    /// A job starting now under `behaviour`.
    pub fn start(
        workspace_id: &str,
        item_id: &str,
        job_type: &str,
        now: Timestamp,
        behaviour: &JobBehaviour,
    ) -> Job {
        Job {
            id: crate::wire::new_guid(),
            workspace_id: workspace_id.to_owned(),
            item_id: item_id.to_owned(),
            job_type: job_type.to_owned(),
            root_activity_id: crate::wire::new_guid(),
            start: now,
            end: None,
            ended: None,
            failure: None,
            observed: 0,
            timing: Timing::new(behaviour.polls, behaviour.duration_seconds),
            outcome: behaviour.outcome,
            planned_failure: behaviour.failure_reason.clone(),
            retry_after: behaviour.retry_after_seconds,
            countdown: behaviour.countdown_retry_after,
            status_lag: behaviour.status_lag_seconds.map(crate::scenario::seconds),
            end_status: behaviour.end_status.clone(),
            hidden: Default::default(),
        }
    }

    /// Whether it has not ended.
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }

    /// Ends it if its time has come.
    pub fn settle(&mut self, now: Timestamp) {
        if self.running() {
            if let Some(at) = self.timing.due(self.start, self.observed, now) {
                self.finish(self.outcome, at, None);
            }
        }
    }

    /// Ends it with `outcome`; `failure` overrides the planned reason of a failure.
    pub fn finish(&mut self, outcome: JobOutcome, at: Timestamp, failure: Option<FailureReason>) {
        self.ended = Some(outcome);
        self.end = Some(at.max(self.start));
        self.failure = match outcome {
            JobOutcome::Failed => Some(
                failure
                    .or_else(|| self.planned_failure.clone())
                    .unwrap_or_else(|| FailureReason {
                        error_code: "JobFailed".to_owned(),
                        message: "The job instance failed".to_owned(),
                    }),
            ),
            _ => None,
        };
    }

    /// When a read first shows it ended: its end, plus the status lag.
    pub fn shown_end(&self) -> Option<Timestamp> {
        let end = self.end?;
        Some(match self.status_lag {
            Some(lag) => end.saturating_add(lag).unwrap_or(end),
            None => end,
        })
    }

    /// The wire `status` a read at `now` shows.
    pub fn status_at(&self, now: Timestamp) -> &str {
        match (self.shown_end(), &self.end_status) {
            (Some(shown), _) if now < shown => "InProgress",
            (Some(_), Some(word)) => word,
            _ => self.status(),
        }
    }

    /// The `Retry-After` seconds (emulator clock) of a status read at `now`; `None` when the
    /// read shows it ended and the job counts down.
    pub fn retry_after_at(&self, now: Timestamp) -> Option<f64> {
        if !self.countdown {
            return Some(self.retry_after as f64);
        }
        let due = match self.shown_end() {
            Some(shown) if now >= shown => return None,
            Some(shown) => shown,
            None => match self.timing.duration {
                Some(duration) => self.start.saturating_add(duration).unwrap_or(self.start),
                None => return Some(self.retry_after as f64),
            },
        };
        Some(due.duration_since(now).as_secs_f64().max(0.0))
    }

    /// The wire `status` of its state (without a status lag or an end status word).
    pub fn status(&self) -> &'static str {
        match self.ended {
            Some(JobOutcome::Completed) => "Completed",
            Some(JobOutcome::Failed) => "Failed",
            Some(JobOutcome::Cancelled) => "Cancelled",
            Some(JobOutcome::Deduped) => "Deduped",
            None if self.observed == 0 => "NotStarted",
            None => "InProgress",
        }
    }
}
