//! Ready-to-post alerts: when a refresh operation fails and the task names an `alertFile`, the
//! payload a chat webhook takes is written there, for the flow's `errors` handler to post as is.
//!
//! - `teams`: a message with one Adaptive Card attachment (card version [`CARD_VERSION`], only
//!   TextBlock, FactSet and Container elements), the shape a Teams workflow started by "When a
//!   Teams webhook request is received" posts to a channel;
//! - `slack`: a message with Block Kit blocks (`header`, `section` with text and fields,
//!   `context`) and a plain `text` fallback, as an incoming webhook takes it.
//!
//! What it says: what failed (operation, item, workspace, with ids), the service's code and
//! words, the `help:` line, the failed targets of a fleet, and the Kestra execution. Every text
//! goes through [`crate::redact::scrub`]: no secret reaches the file.

mod slack;
mod teams;

use serde_json::Value;

use crate::error::Error;
use crate::ops::outputs::Outputs;
use crate::settings::KestraIds;
use crate::task::words::AlertFormat;

/// The Adaptive Card version the Teams payload declares.
pub const CARD_VERSION: &str = "1.4";

/// What an alert says, gathered once for either format.
#[derive(Debug, Clone, Default)]
pub(crate) struct Alert {
    /// One line: what failed.
    pub title: String,
    /// The service's words (or pbiops's).
    pub message: Option<String>,
    /// The `help:` line.
    pub help: Option<String>,
    /// Label → value, in order.
    pub facts: Vec<(String, String)>,
    /// Failed targets of a fleet or cascade: `key: code — message`.
    pub targets: Vec<String>,
}

impl Alert {
    /// The alert for a run that ended with `exit` (and `error`, when it ended in one).
    pub(crate) fn new(
        out: &Outputs,
        error: Option<&Error>,
        exit: i32,
        kestra: &KestraIds,
    ) -> Alert {
        let scrub = |s: &str| crate::redact::scrub(s);
        let item = out
            .dataset_name
            .as_deref()
            .or(out.dataflow_name.as_deref())
            .or(out.report_name.as_deref());
        let item_id = out.dataset_id.as_deref().or(out.dataflow_id.as_deref());
        let operation = out.operation.unwrap_or("pbiops");
        let outcome = out
            .status
            .map(|s| format!("{s:?}"))
            .unwrap_or_else(|| "failed".into());
        let title = match item {
            Some(name) => format!("{operation} {outcome}: {name}"),
            None => format!("{operation} {outcome}"),
        };
        let mut facts = Vec::new();
        let mut fact = |label: &str, value: Option<String>| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                facts.push((label.to_string(), scrub(&v)));
            }
        };
        fact(
            "Item",
            item.map(|n| {
                let kind = out.item_kind.unwrap_or("item");
                match item_id {
                    Some(id) => format!("{kind} {n} ({id})"),
                    None => format!("{kind} {n}"),
                }
            }),
        );
        fact(
            "Workspace",
            out.workspace_name
                .as_ref()
                .map(|n| match &out.workspace_id {
                    Some(id) => format!("{n} ({id})"),
                    None => n.clone(),
                }),
        );
        fact("Status", out.status.map(|s| format!("{s:?}")));
        fact("Exit code", Some(exit.to_string()));
        let code = error.map(Error::code).or_else(|| out.error_code.clone());
        fact("Error code", code);
        fact(
            "Request id",
            out.request_id
                .clone()
                .or_else(|| error.and_then(|e| e.request_id().map(String::from))),
        );
        fact("Profile", out.profile.clone());
        fact("Operation id", out.operation_id.map(|i| i.to_string()));
        let execution = kestra.execution_id.as_ref().map(|id| {
            let flow = match (&kestra.namespace, &kestra.flow_id) {
                (Some(ns), Some(flow)) => format!("{ns}.{flow} "),
                (None, Some(flow)) => format!("{flow} "),
                _ => String::new(),
            };
            format!("{flow}{id}")
        });
        fact("Kestra execution", execution);
        fact("Kestra task run", kestra.taskrun_id.clone());
        let message = error
            .map(|e| e.to_string())
            .or_else(|| out.error_message.clone())
            .map(|m| scrub(&m));
        let help = error.and_then(Error::hint).map(|h| scrub(&h));
        let targets = out
            .targets
            .iter()
            .flatten()
            .filter(|t| t.exit_code != 0 || t.error_code.is_some())
            .map(|t| {
                let code = t.error_code.as_deref().unwrap_or("Failed");
                let words = t.error_message.as_deref().unwrap_or("");
                scrub(format!("{}: {code} {words}", t.key).trim())
            })
            .collect();
        Alert {
            title: scrub(&title),
            message,
            help,
            facts,
            targets,
        }
    }

    /// The payload in `format`.
    pub(crate) fn payload(&self, format: AlertFormat) -> Value {
        match format {
            AlertFormat::Teams => teams::payload(self),
            AlertFormat::Slack => slack::payload(self),
        }
    }
}

/// Writes the alert payload for a failed run to `path`; a failure to write is logged, never
/// turned into the run's outcome (the refresh's exit code matters more).
pub(crate) fn write(path: &std::path::Path, format: AlertFormat, alert: &Alert) -> bool {
    let text = serde_json::to_string_pretty(&alert.payload(format)).unwrap_or_default();
    // A last pass, in case a secret hid in a place no field scrubbed.
    let text = crate::redact::scrub(&text);
    match std::fs::write(path, text) {
        Ok(()) => {
            tracing::info!("alert payload ({format:?}) written to {}", path.display());
            true
        }
        Err(e) => {
            tracing::warn!(
                "could not write the alert payload to {}: {e}",
                path.display()
            );
            false
        }
    }
}

#[cfg(test)]
mod tests;
