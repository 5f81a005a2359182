//! Dataflow Gen2 through Fabric's Job Scheduler: runs are job instances, read with a Fabric
//! token, never a Power BI one.
//!
//! The trigger's 202 names the instance and asks for a pause (`Retry-After`, 60 s in every real
//! recording) before the first read; every read may ask again. `Deduped` (the service merged this
//! run into another run of the same job) ends the wait as a failure of its own kind, never as a
//! reason to poll until the timeout.

use super::{Fut, ItemInfo, Refreshable, Run, Triggered};
use crate::fabric::Fabric;
use crate::fabric::jobs::{JobInstance, Started};
use crate::ops::outputs::{Status, parse_time};
use crate::task::DataflowOptions;

/// A resolved Dataflow Gen2 and its trigger options.
pub(crate) struct Gen2<'a> {
    fabric: Fabric<'a>,
    info: ItemInfo,
    options: DataflowOptions,
}

impl<'a> Gen2<'a> {
    /// A Dataflow Gen2 to refresh with `options`.
    pub(crate) fn new(fabric: Fabric<'a>, info: ItemInfo, options: DataflowOptions) -> Gen2<'a> {
        Gen2 {
            fabric,
            info,
            options,
        }
    }
}

impl Refreshable for Gen2<'_> {
    fn info(&self) -> &ItemInfo {
        &self.info
    }

    fn runs(&self) -> Fut<'_, Vec<Run>> {
        Box::pin(async move {
            let jobs = self
                .fabric
                .job_instances(&self.info.workspace_id, &self.info.id)
                .await?;
            Ok(jobs.iter().map(from_job).collect())
        })
    }

    fn trigger(&self) -> Fut<'_, Triggered> {
        Box::pin(async move {
            let body = match &self.options.execute_option {
                Some(option) => serde_json::json!({"executionData": {"executeOption": option}}),
                None => serde_json::json!({}),
            };
            Ok(
                match self
                    .fabric
                    .run_job(&self.info.workspace_id, &self.info.id, "Refresh", &body)
                    .await?
                {
                    Started::Job { id, retry_after } => Triggered::Accepted(Some(Run {
                        retry_after,
                        ..Run::seed(id)
                    })),
                    Started::Ambiguous(why) => Triggered::Ambiguous(why),
                    Started::CapacityRejected(service) => Triggered::CapacityRejected(service),
                },
            )
        })
    }

    fn status<'a>(&'a self, run: &'a Run) -> Fut<'a, Option<Run>> {
        Box::pin(async move {
            let found = self
                .fabric
                .job_instance(&self.info.workspace_id, &self.info.id, &run.id)
                .await?;
            Ok(found.map(|(job, after)| Run {
                retry_after: after,
                ..from_job(&job)
            }))
        })
    }

    fn cancel<'a>(&'a self, run: &'a Run) -> Fut<'a, bool> {
        Box::pin(async move {
            self.fabric
                .cancel_job(&self.info.workspace_id, &self.info.id, &run.id)
                .await?;
            Ok(true)
        })
    }
}

/// A job instance as a run.
fn from_job(job: &JobInstance) -> Run {
    let status = match job.status.as_deref() {
        Some("Completed") => Some(Status::Completed),
        Some("Failed" | "Deduped") => Some(Status::Failed),
        Some("Cancelled" | "Canceled") => Some(Status::Cancelled),
        Some("NotStarted" | "InProgress") | None => None,
        // A word outside the documented list: with an end time the job is over, and not a
        // success anyone documented; without one it is still going.
        Some(_) if job.end_time_utc.is_some() => Some(Status::Failed),
        Some(_) => None,
    };
    let (error_code, error_message) = if job.status.as_deref() == Some("Deduped") {
        (
            Some("JobDeduped".to_string()),
            Some("the service merged this run into another run of the same job, so it did not run itself".to_string()),
        )
    } else {
        let reason = job.failure_reason.clone().unwrap_or_default();
        let unknown = status == Some(Status::Failed) && job.status.as_deref() != Some("Failed");
        let code = reason.error_code.or_else(|| {
            unknown.then(|| format!("JobStatus{}", job.status.clone().unwrap_or_default()))
        });
        let message = reason.message.or_else(|| {
            unknown.then(|| {
                format!(
                    "the job ended with status {}, which is not a documented success",
                    job.status.as_deref().unwrap_or("?")
                )
            })
        });
        (code, message)
    };
    Run {
        id: job.id.clone(),
        status,
        service_status: job.status.clone(),
        start: job.start_time_utc.as_deref().and_then(parse_time),
        end: job.end_time_utc.as_deref().and_then(parse_time),
        error_code,
        error_message,
        via_api: true,
        ..Run::default()
    }
}
