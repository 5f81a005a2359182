//! The command line, for people at a terminal: `pbiops dataset refresh --workspace … --dataset …`.
//!
//! Subcommands build the same raw task a task file is read into and go through the same
//! validation, so the CLI can never accept what a task file would refuse, or the reverse.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::dataset::{
    RawDatasetCancel, RawDatasetRefresh, RawDatasetStatus, RawObject, RawRefresh, ServiceTimeout,
};
use super::fields::{Dur, Name, Profile};
use super::wait::RawPoll;
use super::words::{CommitMode, NotifyOption, RefreshType};
use super::{IfRunning, OnTimeout, RawTask};
use crate::error::Error;
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
    /// The raw task this command stands for (`None` for `schema`, which is not a task). Flag
    /// values are checked as the task file's fields are, and errors name the same fields.
    pub fn to_task(&self) -> Option<Result<RawTask, Error>> {
        let Command::Dataset(cmd) = self else {
            return None;
        };
        Some(match cmd {
            DatasetCommand::Refresh(a) => refresh(a).map(RawTask::DatasetRefresh),
            DatasetCommand::Cancel(a) => target(&a.target).and_then(|(profile, w, d)| {
                Ok(RawTask::DatasetCancel(RawDatasetCancel {
                    profile,
                    workspace: w,
                    dataset: d,
                    request_id: opt(&a.request_id, |t| Name::parse("requestId", t))?,
                }))
            }),
            DatasetCommand::Status(a) => target(&a.target).and_then(|(profile, w, d)| {
                Ok(RawTask::DatasetStatus(RawDatasetStatus {
                    profile,
                    workspace: w,
                    dataset: d,
                    max_age: opt(&a.max_age, |t| Dur::parse("maxAge", t))?,
                }))
            }),
        })
    }
}

fn opt<T>(
    value: &Option<String>,
    parse: impl FnOnce(&str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    value.as_deref().map(parse).transpose()
}

fn target(t: &TargetArgs) -> Result<(Option<Profile>, Name, Name), Error> {
    Ok((
        opt(&t.profile, |p| Profile::parse("profile", p))?,
        Name::parse("workspace", &t.workspace)?,
        Name::parse("dataset", &t.dataset)?,
    ))
}

fn refresh(a: &RefreshArgs) -> Result<RawDatasetRefresh, Error> {
    let (profile, workspace, dataset) = target(&a.target)?;
    let poll = RawPoll {
        min: opt(&a.poll_min, |t| Dur::parse("poll.min", t))?,
        max: opt(&a.poll_max, |t| Dur::parse("poll.max", t))?,
    };
    let objects = a
        .table
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (table, partition) = match t.split_once(':') {
                Some((table, partition)) => (table, Some(partition.to_string())),
                None => (t.as_str(), None),
            };
            Ok(RawObject {
                table: Name::parse(&format!("refresh.objects[{i}].table"), table)?,
                partition,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let enhanced = RawRefresh {
        kind: opt(&a.kind, |t| RefreshType::parse("refresh.type", t))?,
        commit_mode: opt(&a.commit_mode, |t| {
            CommitMode::parse("refresh.commitMode", t)
        })?,
        max_parallelism: a.max_parallelism,
        retry_count: a.retry_count,
        objects: (!objects.is_empty()).then_some(objects),
        apply_refresh_policy: a.apply_refresh_policy,
        effective_date: a.effective_date.clone(),
        timeout: opt(&a.refresh_timeout, |t| {
            ServiceTimeout::parse(&serde_json::Value::String(t.to_string()))
                .map_err(|(message, help)| Error::task("refresh.timeout", message, help))
        })?,
    };
    let given = serde_json::to_value(&enhanced)
        .ok()
        .and_then(|v| v.as_object().map(|m| m.values().any(|v| !v.is_null())))
        .unwrap_or(false);
    Ok(RawDatasetRefresh {
        profile,
        workspace: Some(workspace),
        dataset: Some(dataset),
        wait: a.no_wait.then_some(false),
        timeout: opt(&a.timeout, |t| Dur::parse("timeout", t))?,
        if_running: opt(&a.if_running, |t| IfRunning::parse("ifRunning", t))?,
        on_timeout: opt(&a.on_timeout, |t| OnTimeout::parse("onTimeout", t))?,
        poll: (poll.min.is_some() || poll.max.is_some()).then_some(poll),
        notify_option: opt(&a.notify_option, |t| NotifyOption::parse("notifyOption", t))?,
        refresh: given.then_some(enhanced),
        ..RawDatasetRefresh::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_flags_become_the_raw_task() {
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
        let task = cli
            .command
            .expect("command")
            .to_task()
            .expect("a task")
            .expect("valid flags");
        let same = RawTask::parse(
            r#"{"operation":"dataset.refresh","workspace":"Sales","dataset":"Sales Model","wait":false,
                "refresh":{"type":"Full","objects":[{"table":"Sales"},{"table":"Orders","partition":"2026"}]}}"#,
        )
        .expect("valid json");
        assert_eq!(task.to_json(), same.to_json());
        assert_eq!(
            task.validate().expect("valid"),
            same.validate().expect("valid")
        );
    }

    #[test]
    fn the_operation_log_gets_the_task_as_json() {
        let cli = Cli::try_parse_from([
            "pbiops",
            "dataset",
            "refresh",
            "--workspace",
            "Sales",
            "--dataset",
            "Sales Model",
            "--timeout",
            "7200",
            "--poll-min",
            "0.5",
            "--if-running",
            "SKIP",
        ])
        .expect("parses");
        let task = cli
            .command
            .expect("command")
            .to_task()
            .expect("a task")
            .expect("valid");
        assert_eq!(
            task.to_json(),
            r#"{"dataset":"Sales Model","ifRunning":"skip","operation":"dataset.refresh","poll":{"min":"PT0.5S"},"timeout":"PT2H","workspace":"Sales"}"#
        );
    }

    #[test]
    fn bad_flags_name_the_task_field() {
        let cli = Cli::try_parse_from([
            "pbiops",
            "dataset",
            "refresh",
            "--workspace",
            "w",
            "--dataset",
            "d",
            "--if-running",
            "queue",
        ])
        .expect("parses");
        let err = cli
            .command
            .expect("command")
            .to_task()
            .expect("a task")
            .expect_err("bad");
        assert!(err.to_string().contains("`ifRunning`"), "{err}");
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
