//! `dataset.status`: the latest refresh and the age of the data; with `maxAge`, a freshness gate.
//!
//! Age counts from the end of the latest *successful* refresh, since that is when the data was
//! last replaced. A refresh running now does not fail the gate; a latest refresh that failed does,
//! because downstream work would read data the team believes was refreshed.

use jiff::Timestamp;

use super::outputs::{self, Outputs, Status};
use super::{Context, resolve_target};
use crate::error::{Error, ExitCode};
use crate::powerbi::wire;
use crate::settings::Profile;
use crate::task::StatusTask;

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &StatusTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let (group, dataset) = resolve_target(&pbi, &task.target, out).await?;
    let history = pbi.refresh_history(&group.id, &dataset.id, 60).await?;

    if let Some(latest) = history.first() {
        out.request_id = latest.request_id.clone();
        out.refresh_type = Some(if latest.is_enhanced() {
            "Enhanced"
        } else {
            "Standard"
        });
        out.service_status = latest
            .extended_status
            .clone()
            .or_else(|| latest.status.clone());
        out.status = Some(
            outputs::terminal_status(latest.status.as_deref(), latest.extended_status.as_deref())
                .unwrap_or(Status::Running),
        );
        out.start_time = latest.start_time.as_deref().map(outputs::utc);
        out.end_time = latest.end_time.as_deref().map(outputs::utc);
        if let (Some(a), Some(b)) = (&latest.start_time, &latest.end_time) {
            out.duration_seconds = outputs::seconds_between(a, b);
        }
        if let Some(json) = &latest.service_exception_json {
            let (code, message) = wire::service_exception(json);
            out.error_code = code;
            out.error_message = message;
        }
    }
    let last_success = history
        .iter()
        .filter(|r| {
            outputs::terminal_status(r.status.as_deref(), r.extended_status.as_deref())
                == Some(Status::Completed)
        })
        .filter_map(|r| r.end_time.as_deref().and_then(outputs::parse_time))
        .max();
    if let Some(end) = last_success {
        out.last_success_time = Some(end.to_string());
        out.age_seconds = Some(outputs::secs(
            Timestamp::now().duration_since(end).as_secs_f64(),
        ));
    }

    let Some(max_age) = task.max_age else {
        return Ok(ExitCode::Success);
    };
    let failed_latest =
        matches!(out.status, Some(s) if s != Status::Completed && s != Status::Running);
    let stale = out
        .age_seconds
        .is_none_or(|age| age > max_age.as_secs_f64());
    out.fresh = Some(!stale && !failed_latest);
    if failed_latest {
        tracing::error!(
            "the latest refresh of {} ended {:?}: {}",
            dataset.name,
            out.status.unwrap_or(Status::Failed),
            out.error_code.as_deref().unwrap_or("no error code")
        );
        if out.error_code.is_none() {
            out.error_code = Some("LatestRefreshFailed".into());
        }
        return Ok(ExitCode::Unsuccessful);
    }
    if stale {
        let age = out
            .age_seconds
            .map_or("no successful refresh in the history".to_string(), |a| {
                format!("the data is {a:.0}s old")
            });
        tracing::error!(
            "{} is stale: {age}, more than maxAge {}s",
            dataset.name,
            max_age.as_secs()
        );
        out.error_code = Some("Stale".into());
        out.error_message = Some(format!("{age}; maxAge is {}s", max_age.as_secs()));
        return Ok(ExitCode::Unsuccessful);
    }
    Ok(ExitCode::Success)
}
