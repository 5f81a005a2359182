//! `report.refresh`: the report → its semantic model (and that model's workspace, which may be
//! another one) → the full `dataset.refresh` behaviour.

use super::Context;
use super::outputs::Outputs;
use crate::error::{Error, ExitCode, ServiceError};
use crate::resolve;
use crate::settings::Profile;
use crate::task::ReportRefreshTask;

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &ReportRefreshTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let group = resolve::workspace(&pbi, &task.refresh.target.workspace).await?;
    let reports = pbi.reports(&group.id).await?;
    let scope = Some(format!("workspace {} ({})", group.name, group.id));
    let report = resolve::pick(
        &reports,
        &task.report,
        "report",
        scope,
        |r| &r.id,
        |r| &r.name,
    )?;
    out.report_id = Some(report.id.clone());
    out.report_name = Some(report.name.clone());
    let Some(dataset) = report.dataset_id.clone() else {
        return Err(Error::Rejected {
            action: format!(
                "find the semantic model of report {} ({})",
                report.name, report.id
            ),
            service: ServiceError {
                code: Some("NoSemanticModel".into()),
                message: Some(format!(
                    "report {} is a {} without a semantic model",
                    report.name,
                    report.report_type.as_deref().unwrap_or("report")
                )),
                ..Default::default()
            },
            help: Some(
                "paginated reports query their sources directly: refresh those sources instead"
                    .into(),
            ),
        });
    };
    let workspace = report
        .dataset_workspace_id
        .clone()
        .unwrap_or_else(|| group.id.clone());
    if workspace != group.id {
        tracing::info!(
            "report {} reads semantic model {dataset} in workspace {workspace}",
            report.name
        );
    }
    let mut refresh = task.refresh.clone();
    refresh.target.workspace = workspace;
    refresh.target.dataset = dataset;
    super::refresh::model(ctx, profile, &refresh, out).await
}
