//! Fabric items and the Job Scheduler: how a Dataflow Gen2 is refreshed (`powerbi-api.md` §3).
//!
//! The generic endpoint `items/{id}/jobs/instances?jobType=Refresh` is used, because the
//! dataflow-specific one refuses service principals outright. Its 202 carries the job
//! instance in `Location` and a `Retry-After` the client must wait before the first poll.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::Fabric;
use crate::error::{Error, ServiceError};
use crate::http::Retry;

/// A Fabric item.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Item id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Item type, e.g. `Dataflow`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// A job instance (`ItemJobInstance`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobInstance {
    /// Job instance id.
    pub id: String,
    /// `NotStarted`, `InProgress`, `Completed`, `Failed`, `Cancelled`, `Deduped`.
    #[serde(default)]
    pub status: Option<String>,
    /// Start (no `Z`: UTC).
    #[serde(default)]
    pub start_time_utc: Option<String>,
    /// End.
    #[serde(default)]
    pub end_time_utc: Option<String>,
    /// The error, when it failed.
    #[serde(default)]
    pub failure_reason: Option<FailureReason>,
}

/// Fabric's `ErrorResponse`, as a job's failure reason.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailureReason {
    /// Code.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
}

/// What a run-on-demand request returned.
#[derive(Debug)]
pub enum Started {
    /// Accepted: the job instance, and how long to wait before the first poll.
    Job {
        /// Job instance id (from `Location`).
        id: String,
        /// `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The outcome is unknown (5xx or a lost response).
    Ambiguous(String),
    /// The capacity refused it (`CapacityLimitExceeded`: surge protection or an overload); no job
    /// instance was created.
    CapacityRejected(ServiceError),
}

const SP_REFUSED_HELP: &str = "Fabric refuses service principals for this dataflow's refresh job: run pbiops with a managed identity profile, or refresh the dataflow from a Fabric data pipeline (Dataflow activity) that the principal can run";

impl Fabric<'_> {
    /// Items of a workspace, optionally of one type (`Dataflow` for Dataflow Gen2).
    pub async fn items(&self, workspace_id: &str, kind: Option<&str>) -> Result<Vec<Item>, Error> {
        let path = match kind {
            Some(k) => format!("/workspaces/{workspace_id}/items?type={k}"),
            None => format!("/workspaces/{workspace_id}/items"),
        };
        self.list(
            "fabric.items",
            &format!("list the items of workspace {workspace_id}"),
            &path,
        )
        .await
    }

    /// Starts a job (`Refresh` for a Dataflow Gen2). Retried only on 429.
    pub async fn run_job(
        &self,
        workspace_id: &str,
        item_id: &str,
        job_type: &str,
        body: &serde_json::Value,
    ) -> Result<Started, Error> {
        let action =
            format!("start a {job_type} job of item {item_id} in workspace {workspace_id}");
        let url = format!(
            "{}/workspaces/{workspace_id}/items/{item_id}/jobs/instances?jobType={job_type}",
            self.base
        );
        let response = match self
            .send(
                Some(body),
                "fabric.job.run",
                &action,
                Retry::ThrottleOnly,
                Method::POST,
                &url,
            )
            .await
        {
            Err(Error::Unavailable { last, .. }) => return Ok(Started::Ambiguous(last)),
            Err(Error::AccessRefused {
                action, service, ..
            }) => {
                return Err(Error::AccessRefused {
                    action,
                    service,
                    help: SP_REFUSED_HELP.into(),
                });
            }
            other => other?,
        };
        if response.capacity_rejected() {
            return Ok(Started::CapacityRejected(response.service_error()));
        }
        if response.status >= 500 {
            return Ok(Started::Ambiguous(response.service_error().to_string()));
        }
        if !response.is_success() {
            let service = response.service_error();
            if service.code.as_deref() == Some("PrincipalTypeNotSupported") {
                return Err(Error::AccessRefused {
                    action,
                    service,
                    help: SP_REFUSED_HELP.into(),
                });
            }
            return Err(Error::Rejected {
                action,
                service,
                help: None,
            });
        }
        let retry_after = response
            .header("Retry-After")
            .and_then(crate::http::retry_after);
        let id = response
            .header("Location")
            .map(|l| l.split('?').next().unwrap_or(l).trim_end_matches('/'))
            .and_then(|l| l.rsplit('/').next())
            .filter(|id| crate::resolve::is_guid(id))
            .map(String::from)
            .or_else(|| response.header("x-ms-job-id").map(String::from));
        match id {
            Some(id) => Ok(Started::Job { id, retry_after }),
            // Some documented examples show a Location without the id: take the newest instance.
            None => {
                let newest = self
                    .job_instances(workspace_id, item_id)
                    .await?
                    .into_iter()
                    .next();
                newest
                    .map(|j| Started::Job {
                        id: j.id,
                        retry_after,
                    })
                    .ok_or_else(|| Error::Rejected {
                        action,
                        service: ServiceError {
                            message: Some(
                                "the job was accepted but no job instance could be found".into(),
                            ),
                            ..Default::default()
                        },
                        help: None,
                    })
            }
        }
    }

    /// One job instance, and the `Retry-After` the service asks for; `None` when unknown.
    pub async fn job_instance(
        &self,
        workspace_id: &str,
        item_id: &str,
        job_id: &str,
    ) -> Result<Option<(JobInstance, Option<Duration>)>, Error> {
        let action = format!("read job instance {job_id} of item {item_id}");
        let url = format!(
            "{}/workspaces/{workspace_id}/items/{item_id}/jobs/instances/{job_id}",
            self.base
        );
        let response = self
            .send(
                None,
                "fabric.job.get",
                &action,
                Retry::Idempotent,
                Method::GET,
                &url,
            )
            .await?;
        match response.status {
            404 => Ok(None),
            s if (200..300).contains(&s) => {
                let after = response
                    .header("Retry-After")
                    .and_then(crate::http::retry_after);
                Ok(Some((response.json(&action)?, after)))
            }
            _ => Err(Error::Rejected {
                action,
                service: response.service_error(),
                help: None,
            }),
        }
    }

    /// Job instances of an item, newest first.
    pub async fn job_instances(
        &self,
        workspace_id: &str,
        item_id: &str,
    ) -> Result<Vec<JobInstance>, Error> {
        let path = format!("/workspaces/{workspace_id}/items/{item_id}/jobs/instances");
        let mut jobs: Vec<JobInstance> = self
            .list(
                "fabric.job.list",
                &format!("list the jobs of item {item_id}"),
                &path,
            )
            .await?;
        jobs.sort_by(|a, b| b.start_time_utc.cmp(&a.start_time_utc));
        Ok(jobs)
    }

    /// Cancels a job instance.
    pub async fn cancel_job(
        &self,
        workspace_id: &str,
        item_id: &str,
        job_id: &str,
    ) -> Result<(), Error> {
        let action = format!("cancel job instance {job_id} of item {item_id}");
        let url = format!(
            "{}/workspaces/{workspace_id}/items/{item_id}/jobs/instances/{job_id}/cancel",
            self.base
        );
        let response = self
            .send(
                None,
                "fabric.job.cancel",
                &action,
                Retry::Idempotent,
                Method::POST,
                &url,
            )
            .await?;
        if response.is_success() {
            Ok(())
        } else {
            Err(Error::Rejected {
                action,
                service: response.service_error(),
                help: None,
            })
        }
    }
}
