//! What every refresh operation does once it has ended: a fleet or cascade with `timelineFile`
//! draws its run, and a failed run with `alertFile` writes its alert payload.

use jiff::{SignedDuration, Timestamp};

use super::Context;
use super::outputs::Outputs;
use crate::alert::{self, Alert};
use crate::error::{Error, ExitCode};
use crate::store::HistoryFilter;
use crate::task::{Around, Task};

/// Runs the after-steps `around` asks for, given the run's `result`.
pub(super) async fn run(
    ctx: &Context<'_>,
    task: &Task,
    around: &Around,
    began: Timestamp,
    result: &Result<ExitCode, Error>,
    out: &mut Outputs,
) {
    if let Some(file) = &around.timeline_file {
        timeline(ctx, task, began, file, out).await;
    }
    let (exit, error) = match result {
        Ok(code) => (code.code(), None),
        Err(e) => (e.exit_code().code(), Some(e)),
    };
    if let Some((file, format)) = &around.alert
        && exit != 0
    {
        let alert = Alert::new(out, error, exit, &ctx.settings.kestra);
        if alert::write(file, *format, &alert) {
            out.alert_file = Some(file.display().to_string());
        }
    }
}

/// The run's own operations (its targets' rows), drawn into `file`.
async fn timeline(
    ctx: &Context<'_>,
    task: &Task,
    began: Timestamp,
    file: &std::path::Path,
    out: &mut Outputs,
) {
    let Some(store) = ctx.store else {
        tracing::warn!("timelineFile needs the operation log (PBIOPS_ODBC is none): not drawn");
        return;
    };
    let profile = task.profile().unwrap_or("default");
    let filter = HistoryFilter {
        profile: Some(profile.to_string()),
        since: began.checked_sub(SignedDuration::from_secs(1)).ok(),
        limit: Some(5000),
        ..HistoryFilter::default()
    };
    let rows = match store.operations(&filter).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("the timeline could not be drawn: {e}");
            return;
        }
    };
    let execution = ctx.settings.kestra.execution_id.as_deref();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| execution.is_none() || r.kestra_execution_id.as_deref() == execution)
        .collect();
    let capacities = super::timeline::capacities(ctx, profile).await;
    let mut scratch = Outputs::default();
    let title = format!(
        "{} — {}",
        task.operation(),
        began.strftime("%Y-%m-%d %H:%M UTC")
    );
    match super::timeline::draw(
        &rows,
        &capacities,
        &title,
        began,
        Timestamp::now(),
        file,
        &mut scratch,
    ) {
        Ok(_) => out.timeline_file = scratch.timeline_file,
        Err(e) => tracing::warn!("the timeline could not be written: {e}"),
    }
}
