//! `history`: query the operation log; counts in the outputs, the rows in a JSON file.
//!
//! The rows go to a file, not to the outputs, because Kestra stores outputs with the execution
//! and a history can be long; the flow picks the file up with `outputFiles`.

use std::collections::BTreeMap;

use super::Context;
use super::outputs::Outputs;
use crate::error::{Error, ExitCode};
use crate::store::HistoryFilter;
use crate::task::HistoryTask;

pub(super) async fn run(
    ctx: &Context<'_>,
    task: &HistoryTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let Some(store) = ctx.store else {
        return Err(Error::setting(
            "PBIOPS_ODBC",
            "is `none`: there is no operation log to read",
            "point PBIOPS_ODBC at the store",
        ));
    };
    let filter = HistoryFilter {
        operation: task.operation.clone(),
        status: task.status.clone(),
        profile: task.profile.clone(),
        target: task.target.clone(),
        since: task.since.map(|d| {
            jiff::Timestamp::now() - jiff::SignedDuration::try_from(d).unwrap_or_default()
        }),
        limit: Some(task.limit),
    };
    let rows = store.operations(&filter).await?;
    let mut by_status = BTreeMap::new();
    for row in &rows {
        *by_status.entry(row.status.clone()).or_insert(0) += 1;
    }
    let json = serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into());
    std::fs::write(&task.output_file, json).map_err(|e| {
        Error::task(
            "outputFile",
            format!("cannot write {}: {e}", task.output_file.display()),
            "give a writable path (in Kestra, relative to the working directory)",
        )
    })?;
    tracing::info!(
        "{} operation(s) written to {}",
        rows.len(),
        task.output_file.display()
    );
    out.count = Some(rows.len());
    out.by_status = Some(by_status);
    out.file = Some(task.output_file.display().to_string());
    Ok(ExitCode::Success)
}
