//! `dataset.cancel`: cancel an enhanced refresh, the given one or the one running now.
//!
//! The service can cancel enhanced refreshes only (`powerbi-api.md` §2.4); a standard or
//! scheduled refresh is refused here with that explanation rather than with a bare 404.

use super::outputs::{Outputs, Status};
use super::{Context, is_enhanced, resolve_target, running_refresh};
use crate::error::{Error, ExitCode, ServiceError};
use crate::settings::Profile;
use crate::task::CancelTask;

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &CancelTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let (group, dataset) = resolve_target(&pbi, &task.target, out).await?;
    let id = match &task.request_id {
        Some(id) => id.clone(),
        None => match running_refresh(&pbi, &group, &dataset).await? {
            None => {
                tracing::info!(
                    "no refresh of {} is running; nothing to cancel",
                    dataset.name
                );
                out.status = Some(Status::Skipped);
                return Ok(ExitCode::Success);
            }
            Some(r) if !is_enhanced(&r) => {
                out.request_id = r.request_id.clone();
                return Err(Error::Rejected {
                    action: format!("cancel the running refresh of semantic model {} ({})", dataset.name, dataset.id),
                    service: ServiceError {
                        code: Some("NotCancellable".into()),
                        message: Some(format!(
                            "refresh {} is a {} refresh; the service cancels enhanced refreshes only",
                            r.request_id.as_deref().unwrap_or("?"),
                            r.refresh_type.as_deref().unwrap_or("standard")
                        )),
                        ..Default::default()
                    },
                    help: Some("trigger refreshes with a `refresh` object (enhanced) to be able to cancel them".into()),
                });
            }
            Some(r) => r.request_id.unwrap_or_default(),
        },
    };
    out.request_id = Some(id.clone());
    pbi.cancel_refresh(&group.id, &dataset.id, &id).await?;
    tracing::info!(request_id = %id, "refresh cancelled");
    out.status = Some(Status::Cancelled);
    Ok(ExitCode::Success)
}
