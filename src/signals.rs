//! SIGTERM and SIGINT: how Kestra (and `docker stop`) end a task.
//!
//! pbiops does not die with the signal: it stops waiting at once, leaves the refreshes running in
//! the service (they are not ours to kill: a retry will follow them), closes every operation row
//! it had open as `Interrupted` with its refresh id, prints the outputs it has, and exits 8. A
//! Kestra retry of the same task run then reattaches to each refresh instead of triggering again.

use tokio::signal::unix::{SignalKind, signal};

use crate::error::ExitCode;
use crate::ops::outputs::{Outputs, Status};
use crate::store::Store;

/// Resolves with the signal's name when SIGTERM or SIGINT arrives (never, if neither can be
/// listened to).
pub(crate) async fn stopped() -> &'static str {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Records the interruption and returns its exit code.
pub(crate) async fn interrupted(
    signal: &'static str,
    store: Option<&Store>,
    kestra: &crate::settings::KestraIds,
    out: &mut Outputs,
) -> ExitCode {
    let running = out
        .request_id
        .as_deref()
        .map(|id| format!("refresh {id} is left running"))
        .unwrap_or_else(|| "what was started is left running".into());
    let message = format!(
        "stopped by {signal}: {running}; a retry of this task run follows it instead of triggering again"
    );
    tracing::warn!("{message}");
    if out.request_id.is_some() && out.status.is_none() {
        out.status = Some(Status::Running);
    }
    out.error_code = Some("Interrupted".into());
    out.error_message = Some(message.clone());
    if let Some(store) = store {
        let task_run = kestra
            .execution_id
            .as_deref()
            .zip(kestra.taskrun_id.as_deref());
        match store.interrupt_open_operations(&message, task_run).await {
            Ok(n) if n > 1 => tracing::info!("{n} operation rows closed as Interrupted"),
            Ok(_) => {}
            Err(e) => tracing::error!("could not record the interruption: {e}"),
        }
    }
    ExitCode::Interrupted
}
