//! `timeline`: a window of the operation log drawn as one self-contained HTML page (see
//! [`crate::timeline`]); a fleet or cascade with `timelineFile` draws its own run the same way.

use std::collections::HashMap;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use super::Context;
use super::outputs::{Outputs, secs};
use crate::error::{Error, ExitCode};
use crate::store::{HistoryFilter, OperationRow};
use crate::task::TimelineTask;
use crate::timeline::{Bar, Totals, render};

pub(super) async fn run(
    ctx: &Context<'_>,
    task: &TimelineTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let Some(store) = ctx.store else {
        return Err(Error::setting(
            "PBIOPS_ODBC",
            "is `none`: there is no operation log to draw",
            "point PBIOPS_ODBC at the store",
        ));
    };
    let now = Timestamp::now();
    let back = |d: std::time::Duration| now - SignedDuration::try_from(d).unwrap_or_default();
    let (start, end) = (back(task.since), task.until.map_or(now, back));
    let filter = HistoryFilter {
        operation: task.operation.clone(),
        status: task.status.clone(),
        profile: task.profile.clone(),
        target: task.target.clone(),
        since: Some(start),
        limit: Some(task.limit),
    };
    let rows: Vec<OperationRow> = store
        .operations(&filter)
        .await?
        .into_iter()
        .filter(|r| r.started_at <= end)
        .collect();
    let profile = task.profile.as_deref().unwrap_or("default");
    let capacities = if task.by_capacity {
        capacities(ctx, profile).await
    } else {
        HashMap::new()
    };
    draw(
        &rows,
        &capacities,
        &task.title,
        start,
        end,
        &task.output_file,
        out,
    )?;
    Ok(ExitCode::Success)
}

/// Workspace id (lower case) → capacity id, as `profile` sees the workspaces; empty (with a
/// warning) when they cannot be read.
pub(super) async fn capacities(ctx: &Context<'_>, profile: &str) -> HashMap<String, String> {
    let groups = match ctx.settings.profile(profile) {
        Ok(p) => ctx.powerbi(&p).groups(None).await,
        Err(e) => Err(e),
    };
    match groups {
        Ok(groups) => groups
            .into_iter()
            .filter_map(|g| Some((g.id.to_ascii_lowercase(), g.capacity_id?)))
            .collect(),
        Err(e) => {
            tracing::warn!(
                "the timeline's lanes are workspaces only: their capacities could not be read: {}",
                crate::redact::scrub(&e.to_string())
            );
            HashMap::new()
        }
    }
}

/// The group of the workspaces that name no capacity (shared capacity), when lanes are grouped.
const NO_CAPACITY: &str = "none (shared capacity)";

/// Draws `rows` into `file`, filling the outputs with the totals.
pub(super) fn draw(
    rows: &[OperationRow],
    capacities: &HashMap<String, String>,
    title: &str,
    start: Timestamp,
    end: Timestamp,
    file: &Path,
    out: &mut Outputs,
) -> Result<Totals, Error> {
    let mut bars: Vec<Bar> = rows.iter().filter_map(Bar::from_row).collect();
    for (bar, row) in bars
        .iter_mut()
        .zip(rows.iter().filter(|r| Bar::from_row(r).is_some()))
    {
        bar.capacity = row
            .workspace_id
            .as_deref()
            .and_then(|w| capacities.get(&w.to_ascii_lowercase()))
            .cloned()
            .or_else(|| (!capacities.is_empty()).then(|| NO_CAPACITY.to_string()));
    }
    let skipped = rows.len() - bars.len();
    let totals = Totals::of(&bars, end);
    let html = render(title, &bars, start, end, &totals);
    std::fs::write(file, html).map_err(|e| {
        Error::task(
            "outputFile",
            format!("cannot write {}: {e}", file.display()),
            "give a writable path (in Kestra, relative to the working directory)",
        )
    })?;
    tracing::info!(
        "timeline of {} operation(s) written to {}{}",
        bars.len(),
        file.display(),
        if skipped > 0 {
            format!(" ({skipped} without an item not drawn)")
        } else {
            String::new()
        }
    );
    out.count = Some(totals.count);
    out.by_status = Some(totals.by_status.clone());
    out.makespan_seconds = Some(secs(totals.makespan));
    out.longest_seconds = totals.longest.as_ref().map(|(_, s)| secs(*s));
    out.overruns = Some(totals.overruns);
    out.timeline_file = Some(file.display().to_string());
    Ok(totals)
}
