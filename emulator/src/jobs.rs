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

    /// The wire `status`.
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
