//! Semantic models: standard refreshes (followed through the history) and enhanced ones
//! (followed by id through their execution details, the only ones the API can cancel).

use super::{Fut, ItemInfo, Kind, Refreshable, Run, Triggered};
use crate::error::Error;
use crate::ops::outputs::{parse_time, terminal_status};
use crate::powerbi::wire::{self, Dataset, Group, Refresh, RefreshDetail};
use crate::powerbi::{PowerBi, Trigger};
use crate::task::RefreshBody;

/// How many history entries are read (the service keeps 20–60).
const HISTORY: u32 = 20;

/// A resolved semantic model and the body its refresh is triggered with.
pub(crate) struct Model<'a> {
    pbi: PowerBi<'a>,
    info: ItemInfo,
    body: RefreshBody,
}

impl<'a> Model<'a> {
    /// A model to refresh with `body`; refuses what the service would refuse.
    pub(crate) fn new(
        pbi: PowerBi<'a>,
        group: &Group,
        dataset: &Dataset,
        body: RefreshBody,
    ) -> Result<Model<'a>, Error> {
        let info = ItemInfo {
            refreshable: dataset.is_refreshable,
            ..super::items::info(Kind::Model, group, &dataset.id, &dataset.name)
        };
        if matches!(body, RefreshBody::Enhanced(_)) && info.shared {
            return Err(Error::task(
                "refresh",
                format!(
                    "workspace {} is on shared capacity, where the service refuses enhanced refreshes",
                    group.name
                ),
                "remove `refresh` for a standard refresh, or move the workspace to a Premium / Fabric capacity",
            ));
        }
        if dataset.is_refreshable == Some(false) {
            tracing::warn!(
                "semantic model {} is marked not refreshable (DirectQuery or live connection, or never refreshed); trying anyway",
                dataset.name
            );
        }
        Ok(Model { pbi, info, body })
    }

    async fn history(&self) -> Result<Vec<Run>, Error> {
        let list = self
            .pbi
            .refresh_history(&self.info.workspace_id, &self.info.id, HISTORY)
            .await?;
        Ok(list.iter().filter_map(from_history).collect())
    }

    async fn details(&self, id: &str) -> Result<Option<Run>, Error> {
        let detail = self
            .pbi
            .refresh_details(&self.info.workspace_id, &self.info.id, id)
            .await?;
        Ok(detail.map(|d| from_detail(id, &d)))
    }
}

impl Refreshable for Model<'_> {
    fn info(&self) -> &ItemInfo {
        &self.info
    }

    fn runs(&self) -> Fut<'_, Vec<Run>> {
        Box::pin(self.history())
    }

    fn trigger(&self) -> Fut<'_, Triggered> {
        Box::pin(async move {
            let enhanced = matches!(self.body, RefreshBody::Enhanced(_));
            Ok(
                match self
                    .pbi
                    .trigger_refresh(&self.info.workspace_id, &self.info.id, &self.body)
                    .await?
                {
                    Trigger::Accepted(id) => Triggered::Accepted(Some(Run {
                        enhanced: Some(enhanced),
                        ..Run::seed(id)
                    })),
                    Trigger::AlreadyRunning(service) => Triggered::Busy(service),
                    Trigger::Ambiguous(why) => Triggered::Ambiguous(why),
                    Trigger::CapacityRejected(service) => Triggered::CapacityRejected(service),
                },
            )
        })
    }

    fn status<'a>(&'a self, run: &'a Run) -> Fut<'a, Option<Run>> {
        Box::pin(async move {
            // Enhanced refreshes answer by id even while the history lags; standard ones only
            // in the history. Unknown (a reattach): ask by id first.
            if run.enhanced != Some(false) {
                if let Some(view) = self.details(&run.id).await? {
                    return Ok(Some(view));
                }
                if run.enhanced == Some(true) {
                    return Ok(None);
                }
            }
            Ok(self.history().await?.into_iter().find(|r| r.id == run.id))
        })
    }

    fn cancel<'a>(&'a self, run: &'a Run) -> Fut<'a, bool> {
        Box::pin(async move {
            if run.enhanced != Some(true) {
                return Ok(false);
            }
            self.pbi
                .cancel_refresh(&self.info.workspace_id, &self.info.id, &run.id)
                .await?;
            Ok(true)
        })
    }

    fn refresh_type(&self, run: &Run) -> Option<&'static str> {
        run.enhanced
            .map(|e| if e { "Enhanced" } else { "Standard" })
    }
}

/// A history entry as a run (entries without a request id cannot be followed).
fn from_history(r: &Refresh) -> Option<Run> {
    let (error_code, error_message) = r
        .service_exception_json
        .as_deref()
        .map(wire::service_exception)
        .unwrap_or_default();
    let status = terminal_status(r.status.as_deref(), r.extended_status.as_deref());
    Some(Run {
        id: r.request_id.clone()?,
        status,
        service_status: r.extended_status.clone().or_else(|| r.status.clone()),
        start: r.start_time.as_deref().and_then(parse_time),
        began: r
            .refresh_attempts
            .iter()
            .filter_map(|a| a.start_time.as_deref().and_then(parse_time))
            .min(),
        end: r.end_time.as_deref().and_then(parse_time),
        error_code,
        error_message,
        objects: None,
        enhanced: Some(r.is_enhanced()),
        via_api: matches!(r.refresh_type.as_deref(), Some("ViaApi" | "ViaEnhancedApi")),
        retry_after: None,
        silent: false,
    })
}

/// An enhanced refresh's execution details as a run.
fn from_detail(id: &str, d: &RefreshDetail) -> Run {
    let attempt_error = d
        .refresh_attempts
        .iter()
        .rev()
        .find_map(|a| a.service_exception_json.as_deref())
        .map(wire::service_exception);
    let message = d
        .messages
        .iter()
        .find(|m| m.kind.as_deref() != Some("Warning"));
    let (code, description) = attempt_error.unwrap_or_default();
    Run {
        id: id.to_string(),
        status: terminal_status(d.status.as_deref(), d.extended_status.as_deref()),
        service_status: d.extended_status.clone().or_else(|| d.status.clone()),
        start: d.start_time.as_deref().and_then(parse_time),
        began: None,
        end: d.end_time.as_deref().and_then(parse_time),
        error_code: code.or_else(|| message.and_then(|m| m.code.clone())),
        error_message: message.and_then(|m| m.message.clone()).or(description),
        objects: (!d.objects.is_empty()).then(|| d.objects.clone()),
        enhanced: Some(true),
        via_api: true,
        retry_after: None,
        silent: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh::Outcome;

    #[test]
    fn an_ended_entry_s_first_attempt_tells_how_long_it_queued() {
        // The recorded shape: two attempts with the same id, `Data` then `Query`, 7-digit times.
        let body = r#"{"requestId":"r1","refreshType":"ViaApi","status":"Completed",
            "startTime":"2024-05-02T10:00:51.96Z","endTime":"2024-05-02T10:01:58.28Z",
            "refreshAttempts":[
              {"attemptId":1,"startTime":"2024-05-02T10:00:55.3365916Z","endTime":"2024-05-02T10:01:57.1Z","type":"Data"},
              {"attemptId":1,"startTime":"2024-05-02T10:01:57.2Z","endTime":"2024-05-02T10:01:58.2Z","type":"Query"}]}"#;
        let entry: Refresh = serde_json::from_str(body).expect("parses");
        let run = from_history(&entry).expect("a run");
        let queued = Outcome::of_run(&run).queued_seconds().expect("said");
        assert!((queued - 3.3765916).abs() < 1e-6, "{queued}");
        let running: Refresh = serde_json::from_str(
            r#"{"requestId":"r2","refreshType":"ViaApi","status":"Unknown","startTime":"2024-05-02T10:00:51.96Z"}"#,
        )
        .expect("parses");
        let run = from_history(&running).expect("a run");
        assert_eq!(
            Outcome::of_run(&run).queued_seconds(),
            None,
            "not said while it runs"
        );
    }
}
