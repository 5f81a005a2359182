//! `preflight`: the checks a refresh runs before its trigger, for one item or many, without
//! triggering anything. One row per check with its verdict, in the outputs and a JSON file.
//!
//! Exit 0 when no check failed (warnings included: they never block), 1 when at least one item
//! would be refused; an item that does not resolve is reported with its own error and exit code.

use super::Context;
use super::outputs::Outputs;
use crate::error::{Error, ExitCode};
use crate::preflight::{Preflight, Verdict};
use crate::refresh::items::Catalog;
use crate::settings::Profile;
use crate::task::PreflightTask;

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &PreflightTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let catalog = Catalog::new(ctx, profile);
    if task.targets.len() > 1 {
        catalog.groups().await?;
    }
    let preflight = match task.targets.len() {
        1 => Preflight::new(ctx, profile),
        _ => Preflight::new(ctx, profile).summarized(),
    };
    let mut code = ExitCode::Success;
    let mut unresolved = Vec::new();
    for target in &task.targets {
        let item = match catalog.item(&target.refresh).await {
            Ok(item) => item,
            Err(e) if task.targets.len() == 1 => return Err(e),
            Err(e) => {
                tracing::error!("{}: {e}", target.key);
                unresolved.push(serde_json::json!({
                    "key": target.key, "errorCode": e.code(),
                    "errorMessage": crate::redact::scrub(&e.to_string()),
                }));
                code = worst(code, e.exit_code());
                continue;
            }
        };
        if preflight.item(&target.key, item.info()).await.is_some() {
            code = worst(code, ExitCode::Unsuccessful);
        }
    }
    let rows = preflight.rows();
    let failed = rows.iter().filter(|r| r.verdict == Verdict::Fail).count();
    let checked = task.targets.len() - unresolved.len();
    tracing::info!("{}", crate::preflight::summary(checked, &rows));
    let file = serde_json::json!({"checks": rows, "unresolved": unresolved});
    std::fs::write(
        &task.output_file,
        serde_json::to_string_pretty(&file).unwrap_or_default(),
    )
    .map_err(|e| {
        Error::task(
            "outputFile",
            format!("cannot write {}: {e}", task.output_file.display()),
            "give a writable path (in Kestra, relative to the working directory)",
        )
    })?;
    out.ready = Some(code == ExitCode::Success);
    out.failed = Some(failed);
    out.count = Some(rows.len());
    out.preflight = Some(rows);
    out.file = Some(task.output_file.display().to_string());
    Ok(code)
}

/// The exit code to report when `a` and `b` both happened: the larger one, so an unresolved
/// item (4) is not hidden behind a refused one (1).
fn worst(a: ExitCode, b: ExitCode) -> ExitCode {
    if b.code() > a.code() { b } else { a }
}
