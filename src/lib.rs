//! pbiops: operate Power BI and Microsoft Fabric refreshes from an orchestrator.
//!
//! One run performs one operation, read from the task contract, and prints Kestra's
//! `::{...}::` lines. The modules follow the domain, not layers:
//!
//! - [`task`]: the task contract (CLI, task file, stdin, `PBIOPS_TASK`) and its validation;
//! - [`settings`]: the environment (`PBIOPS_*`), the only place it is read;
//! - [`http`]: the one HTTP client, with bounded retries and `Retry-After`;
//! - [`auth`]: Entra ID tokens, one per (profile, resource), renewed before expiry;
//! - [`powerbi`]: the Power BI REST client;
//! - [`resolve`]: names or ids → workspaces and models, with close matches;
//! - [`wait`]: the polling policy;
//! - [`ops`]: one module per operation;
//! - [`kestra`]: outputs, metrics and logs in Kestra's stdout protocol;
//! - [`error`]: the error type, its exit codes and hints;
//! - [`redact`]: keeping secrets out of everything printed.

pub mod auth;
pub mod error;
pub mod http;
pub mod kestra;
pub mod ops;
pub mod powerbi;
pub mod redact;
pub mod resolve;
pub mod settings;
pub mod store;
pub mod task;
pub mod wait;

use std::ffi::OsString;
use std::io::IsTerminal;

use clap::Parser;

use error::{Error, ExitCode};
use kestra::{LogFormat, Metric, Reporter};
use ops::Outputs;
use settings::Settings;
use task::cli::Cli;

/// Runs one invocation: `args` as from the command line, `env` as the process environment.
/// Returns the process exit code.
pub async fn run(args: Vec<OsString>, env: Vec<(String, String)>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Invalid.code()
            } else {
                ExitCode::Success.code()
            };
            let _ = e.print();
            return code;
        }
    };
    let settings = Settings::from_vars(env);
    let format = log_format(&cli, settings.as_ref().ok());
    let level = settings
        .as_ref()
        .map(|s| s.log_level)
        .unwrap_or(tracing::Level::INFO);
    kestra::init_logging(format, level);
    let reporter = Reporter::new(format);
    let mut out = Outputs::default();

    let result = match settings {
        Ok(settings) => execute(&cli, &settings, reporter, &mut out).await,
        Err(e) => Err((e, None)),
    };
    let code = match result {
        Ok(code) => code,
        Err((e, stats)) => {
            out.error_code = Some(e.code());
            out.error_message = Some(redact::scrub(&e.to_string()));
            if out.request_id.is_none() {
                out.request_id = e.request_id().map(String::from).filter(|_| {
                    out.operation.is_some()
                        && !matches!(e, Error::Rejected { .. } | Error::Gone { .. })
                });
            }
            reporter.error(&redact::scrub(&e.to_string()), e.hint().as_deref());
            if let Some(stats) = stats {
                reporter.metrics(&metrics(&stats, &out));
            }
            reporter.outputs(&out.to_map());
            return e.exit_code().code();
        }
    };
    code.code()
}

type Failure = (Error, Option<http::Stats>);

async fn execute(
    cli: &Cli,
    settings: &Settings,
    reporter: Reporter,
    out: &mut Outputs,
) -> Result<ExitCode, Failure> {
    let source = task::source::pick(
        cli.command.as_ref().map(|c| c.to_task()),
        cli.task_file.clone(),
        settings.task.clone(),
    )
    .map_err(|e| (e, None))?;
    let task = task::load(source).map_err(|e| (e, None))?;
    out.operation = Some(task.operation());
    out.profile = Some(task.profile().to_string());
    let profile = settings.profile(task.profile()).map_err(|e| (e, None))?;
    redact::register(settings.secret_values());

    let http = http::Http::new(settings.http).map_err(|e| (e, None))?;
    let auth = auth::Auth::new(&http, &settings.endpoints.authority);
    let ctx = ops::Context {
        settings,
        http: &http,
        auth: &auth,
        reporter,
    };
    let result = ops::run(&ctx, &task, &profile, out).await;
    let stats = http.stats();
    match result {
        Ok(code) => {
            reporter.metrics(&metrics(&stats, out));
            reporter.outputs(&out.to_map());
            Ok(code)
        }
        Err(e) => Err((e, Some(stats))),
    }
}

fn log_format(cli: &Cli, settings: Option<&Settings>) -> LogFormat {
    cli.log_format
        .as_deref()
        .and_then(|f| settings::parse_log_format("--log-format", f).ok())
        .or_else(|| settings.and_then(|s| s.log_format))
        .unwrap_or(if std::io::stdout().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Kestra
        })
}

fn metrics(stats: &http::Stats, out: &Outputs) -> Vec<Metric> {
    let operation = out.operation.unwrap_or("unknown").to_string();
    let mut list: Vec<Metric> = stats
        .calls
        .iter()
        .map(|(endpoint, n)| Metric::Counter {
            name: "pbiops.api.calls",
            value: *n as f64,
            tags: vec![
                ("endpoint", (*endpoint).to_string()),
                ("operation", operation.clone()),
            ],
        })
        .collect();
    list.push(Metric::Counter {
        name: "pbiops.api.throttled",
        value: stats.throttled as f64,
        tags: vec![("operation", operation.clone())],
    });
    if let Some(wait) = out.wait_seconds {
        list.push(Metric::Timer {
            name: "pbiops.wait.time",
            seconds: wait,
            tags: vec![("operation", operation.clone())],
        });
    }
    if let Some(duration) = out.duration_seconds {
        list.push(Metric::Timer {
            name: "pbiops.refresh.duration",
            seconds: duration,
            tags: vec![("operation", operation)],
        });
    }
    list
}
