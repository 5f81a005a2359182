//! The typed outcome of one item's refresh, and the one place it becomes Kestra outputs.

use super::{ItemInfo, Run};
use crate::error::{ExitCode, ServiceError};
use crate::ops::outputs::{Outputs, Status, secs};
use crate::powerbi::wire::RefreshObjectStatus;

/// How one item's refresh ended for this run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// Normalized status.
    pub status: Status,
    /// The exit code this outcome means.
    pub exit: ExitCode,
    /// The service's own status word.
    pub service_status: Option<String>,
    /// The run followed (or skipped, or adopted).
    pub request_id: Option<String>,
    /// `Standard`/`Enhanced` for models.
    pub refresh_type: Option<&'static str>,
    /// True when the run followed a refresh it did not trigger.
    pub attached: bool,
    /// Service start and end.
    pub start: Option<jiff::Timestamp>,
    /// End.
    pub end: Option<jiff::Timestamp>,
    /// When the service began working on it, when it says (see [`Run::began`]).
    pub began: Option<jiff::Timestamp>,
    /// How long this run waited.
    pub wait_seconds: Option<f64>,
    /// The service's error code or pbiops's own (`RefreshDropped`, `WaitTimedOut`, `Upstream…`).
    pub error_code: Option<String>,
    /// The error's words.
    pub error_message: Option<String>,
    /// Per-table status of an enhanced refresh.
    pub objects: Option<Vec<RefreshObjectStatus>>,
    /// True when pbiops cancelled the refresh after its wait timed out.
    pub cancel_requested: bool,
    /// The median duration of the item's recent successful runs.
    pub expected_seconds: Option<f64>,
    /// Whether the run took longer than nine in ten of those.
    pub overran: Option<bool>,
    /// The item's capacity refused the trigger (surge protection, overload) and nothing started:
    /// what it said. The caller holds the capacity and tries again ([`super::capacity`]).
    pub rejected: Option<ServiceError>,
    /// How long the item waited for its capacity to accept the refresh.
    pub capacity_wait_seconds: Option<f64>,
}

impl Outcome {
    /// An outcome with `status` and nothing else known yet.
    pub(crate) fn new(status: Status, exit: ExitCode) -> Outcome {
        Outcome {
            status,
            exit,
            service_status: None,
            request_id: None,
            refresh_type: None,
            attached: false,
            start: None,
            end: None,
            began: None,
            wait_seconds: None,
            error_code: None,
            error_message: None,
            objects: None,
            cancel_requested: false,
            expected_seconds: None,
            overran: None,
            rejected: None,
            capacity_wait_seconds: None,
        }
    }

    /// Seconds the refresh waited in the service's queue before it began, when the service says.
    pub(crate) fn queued_seconds(&self) -> Option<f64> {
        let waited = self.began?.duration_since(self.start?).as_secs_f64();
        Some(waited.max(0.0))
    }

    /// The outcome a finished run means.
    pub(crate) fn of_run(run: &Run) -> Outcome {
        let status = run.status.unwrap_or(Status::Failed);
        let exit = if status == Status::Completed {
            ExitCode::Success
        } else {
            ExitCode::Unsuccessful
        };
        let failed = status != Status::Completed;
        Outcome {
            service_status: run.service_status.clone(),
            request_id: Some(run.id.clone()),
            start: run.start,
            end: run.end,
            began: run.began,
            error_code: failed.then(|| run.error_code.clone()).flatten(),
            error_message: failed.then(|| run.error_message.clone()).flatten(),
            objects: run.objects.clone(),
            ..Outcome::new(status, exit)
        }
    }

    /// The outcome of a finished run this run did not start (an earlier attempt's), as `item`
    /// reports it.
    pub(crate) fn adopted(run: &Run, item: &dyn super::Refreshable) -> Outcome {
        Outcome {
            attached: true,
            refresh_type: item.refresh_type(run),
            ..Outcome::of_run(run)
        }
    }

    /// End minus start, in seconds.
    pub(crate) fn duration_seconds(&self) -> Option<f64> {
        let d = self.end?.duration_since(self.start?);
        Some(secs(d.as_secs_f64()))
    }

    /// Writes the outcome into the outputs (the only place it is rendered).
    pub(crate) fn render(&self, out: &mut Outputs) {
        out.status = Some(self.status);
        out.service_status = self.service_status.clone();
        out.request_id = self.request_id.clone().or(out.request_id.take());
        out.refresh_type = self.refresh_type.or(out.refresh_type);
        out.attached = Some(self.attached);
        out.start_time = self.start.map(|t| t.to_string());
        out.end_time = self.end.map(|t| t.to_string());
        out.duration_seconds = self.duration_seconds();
        out.wait_seconds = self.wait_seconds;
        out.queued_seconds = self.queued_seconds().map(secs);
        // The service's own words may quote anything, a configured secret included.
        out.error_code = self.error_code.as_deref().map(crate::redact::scrub);
        out.error_message = self.error_message.as_deref().map(crate::redact::scrub);
        out.objects = self.objects.clone();
        out.cancel_requested = self.cancel_requested.then_some(true);
        out.expected_seconds = self.expected_seconds;
        out.overran = self.overran;
        out.capacity_wait_seconds = self.capacity_wait_seconds;
    }
}

impl ItemInfo {
    /// Writes the item's identity into the outputs.
    pub(crate) fn render(&self, out: &mut Outputs) {
        out.workspace_id = Some(self.workspace_id.clone());
        out.workspace_name = Some(self.workspace_name.clone());
        out.item_kind = Some(self.kind.as_str());
        out.generation = self.kind.generation();
        match self.kind {
            super::Kind::Model => {
                out.dataset_id = Some(self.id.clone());
                out.dataset_name = Some(self.name.clone());
            }
            super::Kind::Gen1 | super::Kind::Gen2 => {
                out.dataflow_id = Some(self.id.clone());
                out.dataflow_name = Some(self.name.clone());
            }
        }
    }
}
