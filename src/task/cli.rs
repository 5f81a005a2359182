//! The command line, for people at a terminal: `pbiops dataset refresh --workspace … --dataset …`.
//!
//! Subcommands build the same JSON a task file holds and go through the same validation, so the
//! CLI can never accept what a task file would refuse, or the reverse.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::settings::ENV_HELP;

/// Operate Power BI and Fabric refreshes from an orchestrator.
#[derive(Debug, Parser)]
#[command(name = "pbiops", version, after_long_help = ENV_HELP, after_help = "Run `pbiops --help` for the environment variables.")]
pub struct Cli {
    /// Read the task from this JSON file.
    #[arg(long, global = true, value_name = "FILE")]
    pub task_file: Option<PathBuf>,
    /// Log format: kestra (marker lines on stdout), text (stderr) or json. Default: kestra when
    /// stdout is not a terminal, else text. Overrides PBIOPS_LOG_FORMAT.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// The operation; omit it to read a task from --task-file, PBIOPS_TASK or stdin.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operations.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Semantic models (datasets).
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Print the JSON Schema of the task (or, with --outputs, of the outputs) and exit.
    Schema {
        /// The outputs' schema instead of the task's.
        #[arg(long)]
        outputs: bool,
    },
}

/// Semantic model operations.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Trigger a refresh and wait for it (standard, or enhanced with any refresh option).
    Refresh(Box<RefreshArgs>),
    /// Cancel a running enhanced refresh.
    Cancel(CancelArgs),
    /// Show the latest refresh; with --max-age, fail when the data is stale.
    Status(StatusArgs),
}

/// The model and the profile.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Workspace name or id.
    #[arg(long)]
    pub workspace: String,
    /// Semantic model name or id.
    #[arg(long)]
    pub dataset: String,
    /// Profile (service principal) to use; default `default`.
    #[arg(long)]
    pub profile: Option<String>,
}

/// `dataset refresh` flags.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Trigger and exit without waiting.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait (ISO-8601 such as PT2H, or seconds). Default PT5H.
    #[arg(long)]
    timeout: Option<String>,
    /// When a refresh is already running: attach, skip or fail.
    #[arg(long)]
    if_running: Option<String>,
    /// When waiting times out: leave or cancel (enhanced refreshes only).
    #[arg(long)]
    on_timeout: Option<String>,
    /// Standard refresh e-mail option (NoNotification, MailOnFailure, MailOnCompletion).
    #[arg(long)]
    notify_option: Option<String>,
    /// Enhanced: refresh type (Full, ClearValues, Calculate, DataOnly, Automatic, Defragment).
    #[arg(long = "type")]
    kind: Option<String>,
    /// Enhanced: Transactional or PartialBatch.
    #[arg(long)]
    commit_mode: Option<String>,
    /// Enhanced: maximum parallel threads.
    #[arg(long)]
    max_parallelism: Option<u32>,
    /// Enhanced: retries inside the service.
    #[arg(long)]
    retry_count: Option<u32>,
    /// Enhanced: a table (`Sales`) or a partition (`Sales:2026`); repeat for several.
    #[arg(long, value_name = "TABLE[:PARTITION]")]
    table: Vec<String>,
    /// Enhanced: apply the incremental refresh policy (true or false).
    #[arg(long)]
    apply_refresh_policy: Option<bool>,
    /// Enhanced: the date the incremental policy is evaluated at.
    #[arg(long)]
    effective_date: Option<String>,
    /// Enhanced: the service's per-attempt timeout (hh:mm:ss or ISO-8601).
    #[arg(long)]
    refresh_timeout: Option<String>,
    /// Shortest interval between status polls.
    #[arg(long)]
    poll_min: Option<String>,
    /// Longest interval between status polls.
    #[arg(long)]
    poll_max: Option<String>,
}

/// `dataset cancel` flags.
#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The refresh to cancel; default: the one running.
    #[arg(long)]
    request_id: Option<String>,
}

/// `dataset status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Freshness gate: fail when the last successful refresh is older (ISO-8601 or seconds).
    #[arg(long)]
    max_age: Option<String>,
}

impl Command {
    /// The task JSON this command stands for (`None` for `schema`, which is not a task).
    pub fn to_task(&self) -> Option<Value> {
        let Command::Dataset(cmd) = self else {
            return None;
        };
        let (operation, target) = match cmd {
            DatasetCommand::Refresh(a) => ("dataset.refresh", &a.target),
            DatasetCommand::Cancel(a) => ("dataset.cancel", &a.target),
            DatasetCommand::Status(a) => ("dataset.status", &a.target),
        };
        let mut task = Map::new();
        task.insert("operation".into(), json!(operation));
        task.insert("workspace".into(), json!(target.workspace));
        task.insert("dataset".into(), json!(target.dataset));
        put(&mut task, "profile", &target.profile);
        match cmd {
            DatasetCommand::Refresh(a) => refresh_fields(&mut task, a),
            DatasetCommand::Cancel(a) => put(&mut task, "requestId", &a.request_id),
            DatasetCommand::Status(a) => put(&mut task, "maxAge", &a.max_age),
        }
        Some(Value::Object(task))
    }
}

fn refresh_fields(task: &mut Map<String, Value>, a: &RefreshArgs) {
    if a.no_wait {
        task.insert("wait".into(), json!(false));
    }
    put(task, "timeout", &a.timeout);
    put(task, "ifRunning", &a.if_running);
    put(task, "onTimeout", &a.on_timeout);
    put(task, "notifyOption", &a.notify_option);
    let mut poll = Map::new();
    put(&mut poll, "min", &a.poll_min);
    put(&mut poll, "max", &a.poll_max);
    if !poll.is_empty() {
        task.insert("poll".into(), Value::Object(poll));
    }
    let mut refresh = Map::new();
    put(&mut refresh, "type", &a.kind);
    put(&mut refresh, "commitMode", &a.commit_mode);
    put(&mut refresh, "maxParallelism", &a.max_parallelism);
    put(&mut refresh, "retryCount", &a.retry_count);
    put(&mut refresh, "applyRefreshPolicy", &a.apply_refresh_policy);
    put(&mut refresh, "effectiveDate", &a.effective_date);
    put(&mut refresh, "timeout", &a.refresh_timeout);
    if !a.table.is_empty() {
        let objects: Vec<Value> = a
            .table
            .iter()
            .map(|t| match t.split_once(':') {
                Some((table, partition)) => json!({"table": table, "partition": partition}),
                None => json!({"table": t}),
            })
            .collect();
        refresh.insert("objects".into(), Value::Array(objects));
    }
    if !refresh.is_empty() {
        task.insert("refresh".into(), Value::Object(refresh));
    }
}

fn put<T: serde::Serialize>(map: &mut Map<String, Value>, key: &str, value: &Option<T>) {
    if let Some(v) = value {
        map.insert(key.into(), json!(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_flags_become_the_task_json() {
        let cli = Cli::try_parse_from([
            "pbiops",
            "dataset",
            "refresh",
            "--workspace",
            "Sales",
            "--dataset",
            "Sales Model",
            "--type",
            "Full",
            "--table",
            "Sales",
            "--table",
            "Orders:2026",
            "--no-wait",
        ])
        .expect("parses");
        let task = cli.command.expect("command").to_task().expect("a task");
        assert_eq!(
            task,
            json!({"operation":"dataset.refresh","workspace":"Sales","dataset":"Sales Model","wait":false,
                   "refresh":{"type":"Full","objects":[{"table":"Sales"},{"table":"Orders","partition":"2026"}]}})
        );
    }

    #[test]
    fn help_lists_the_environment_variables() {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let help = cmd.render_long_help().to_string();
        for var in [
            "PBIOPS_TENANT_ID",
            "PBIOPS_CLIENT_SECRET",
            "PBIOPS_POWERBI_URL",
            "PBIOPS_TASK",
            "PBIOPS_LOG_FORMAT",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
    }
}
