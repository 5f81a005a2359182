//! pbiops: operate Power BI and Microsoft Fabric refreshes from an orchestrator.
//!
//! One run performs one operation, read from the task contract, and prints Kestra's
//! `::{...}::` lines. The modules follow the domain, not layers:
//!
//! - `task`: the task contract (CLI, task file, stdin, `PBIOPS_TASK`) and its validation;
//! - `settings`: the environment (`PBIOPS_*`), the only place it is read;
//! - `http`: the one HTTP client, with bounded retries and `Retry-After`;
//! - `auth`: Entra ID tokens, one per (profile, resource), renewed before expiry;
//! - `powerbi`, `fabric`, `flow_trigger`: the Power BI, Fabric and Power Automate clients;
//! - `resolve`: names or ids → workspaces and models, with close matches;
//! - `refresh`: the one refresh engine for every kind of item, fleets and cascades;
//! - [`wait`]: the polling policy;
//! - `ops`: one module per operation;
//! - [`store`]: the token store and the operation log over ODBC;
//! - `kestra`: outputs, metrics and logs in Kestra's stdout protocol; `console`: the thread
//!   that writes them, so a slow reader never stalls the run;
//! - [`error`]: the error type, its exit codes and hints;
//! - [`redact`]: keeping secrets out of everything printed.
//!
//! Only what the binary, the store tests and the benchmarks use is public; the rest is private
//! to the crate, so the compiler sees dead code.

pub(crate) mod alert;
pub(crate) mod auth;
mod console;
pub mod error;
pub(crate) mod fabric;
pub(crate) mod flow_trigger;
pub(crate) mod http;
pub(crate) mod kestra;
pub(crate) mod ops;
pub(crate) mod powerbi;
pub(crate) mod preflight;
pub mod redact;
pub(crate) mod refresh;
pub(crate) mod resolve;
pub(crate) mod settings;
mod signals;
pub mod store;
pub(crate) mod task;
pub(crate) mod timeline;

/// The task contract's first stage, for the documentation test that checks every task in the
/// docs against the parser.
pub use task::RawTask;

/// The process environment as text (for `main`).
pub use settings::environ::environment;
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
    if let Some(task::cli::Command::Schema { outputs }) = &cli.command {
        let schema = if *outputs {
            schemars::schema_for!(ops::Outputs)
        } else {
            task::operation::schema()
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&schema).unwrap_or_default()
        );
        return ExitCode::Success.code();
    }
    let settings = Settings::from_vars(env);
    let format = log_format(&cli, settings.as_ref().ok());
    let level = settings
        .as_ref()
        .map(|s| s.log_level)
        .unwrap_or(tracing::Level::INFO);
    kestra::init_logging(format, level);
    let reporter = Reporter::new(format);
    let mut out = Outputs::default();

    let (code, stats) = match settings {
        Ok(settings) => {
            redact::register(settings.secret_values());
            for notice in &settings.notices {
                tracing::warn!("{notice}");
            }
            execute(&cli, &settings, reporter, &mut out).await
        }
        Err(e) => (report(&e, &mut out, reporter), None),
    };
    if let Some(stats) = stats {
        reporter.metrics(&metrics(&stats, &out));
    }
    reporter.outputs(&out.to_map());
    // Everything printed is queued to the console's thread; the process exits right after this.
    console::flush();
    code.code()
}

/// Runs the task; returns the exit code and, once HTTP was set up, its counters.
async fn execute(
    cli: &Cli,
    settings: &Settings,
    reporter: Reporter,
    out: &mut Outputs,
) -> (ExitCode, Option<http::Stats>) {
    // Everything that can be refused before any request: the task, the profile, the store.
    let source = task::source::pick(
        cli.command.as_ref().and_then(|c| c.to_task()),
        cli.task_file.clone(),
        settings.task.clone(),
    );
    let loaded = match source.and_then(task::load_with_json) {
        Ok(loaded) => loaded,
        Err(e) => return (report(&e, out, reporter), None),
    };
    let (task, task_json) = loaded;
    out.operation = Some(task.operation());
    out.profile = task.profile().map(String::from);
    if let Err(e) = task::check_output_file(&task) {
        return (report(&e, out, reporter), None);
    }
    if let Some(name) = task.profile() {
        if let Err(e) = settings.profile(name) {
            return (report(&e, out, reporter), None);
        }
    }
    let store = match ops::record::open_store(&settings.store).await {
        Ok(store) => store,
        Err(e) => return (report(&e, out, reporter), None),
    };
    let recorder =
        match ops::Recorder::start(store.as_ref(), &task, Some(task_json), settings).await {
            Ok(r) => r,
            Err(e) => return (report(&e, out, reporter), None),
        };
    out.operation_id = recorder.id();
    let http = match http::Http::with_network(settings.http, &settings.network) {
        Ok(h) => h,
        Err(e) => return (report(&e, out, reporter), None),
    };
    let legacy = settings
        .store
        .legacy_table
        .clone()
        .map(|table| auth::LegacyTable {
            table,
            max_length: settings.store.legacy_max_length,
        });
    let auth = auth::Auth::new(&http, &settings.endpoints.authority, store.as_ref(), legacy);
    let ctx = ops::Context {
        settings,
        http: &http,
        auth: &auth,
        reporter,
        store: store.as_ref(),
        recorder: &recorder,
    };

    // With a store, runs acting as the same principal pause and pace together.
    let principal = task
        .profile()
        .and_then(|name| settings.profile(name).ok())
        .map(|profile| http::pace::principal(&profile));
    let work = http::pace::shared(
        http.pace(),
        store.as_ref(),
        principal,
        ops::run(&ctx, &task, out),
    );
    let result = tokio::select! {
        result = work => result,
        signal = signals::stopped() => Ok(signals::interrupted(signal, store.as_ref(), &settings.kestra, out).await),
    };
    let (mut code, error) = match result {
        Ok(code) => (code, None),
        Err(e) => (report(&e, out, reporter), Some(e)),
    };
    if let Err(e) = recorder.finish(out, code, error.as_ref()).await {
        reporter.error(&redact::scrub(&e.to_string()), e.hint().as_deref());
        code = ExitCode::Store;
    }
    (code, Some(http.stats()))
}

/// Reports an error once: the error line with its hint, and the error outputs.
fn report(e: &Error, out: &mut Outputs, reporter: Reporter) -> ExitCode {
    let message = redact::scrub(&e.to_string());
    out.error_code = Some(e.code());
    out.error_message = Some(message.clone());
    reporter.error(&message, e.hint().as_deref());
    e.exit_code()
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
    if let Some(queued) = out.queued_seconds {
        list.push(Metric::Timer {
            name: "pbiops.refresh.queued",
            seconds: queued,
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
