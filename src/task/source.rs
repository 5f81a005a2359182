//! Where the one task of a run comes from: CLI, `--task-file`, `PBIOPS_TASK`, or stdin.
//!
//! Stdin is read only when it is not a terminal and nothing else named a task, and never waits
//! forever: Kestra's Process runner gives the child a pipe that nobody writes or closes, so when
//! no byte arrives within [`STDIN_FIRST_BYTE`], the run stops with exit 2 and a hint.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::json::{self, MAX_TASK_BYTES};
use super::{RawTask, Task};
use crate::error::Error;

/// How long stdin may stay silent before the run gives up on it.
pub const STDIN_FIRST_BYTE: Duration = Duration::from_secs(2);

/// The task's origin, for logs and errors.
#[derive(Debug, Clone)]
pub enum Source {
    /// Built from CLI arguments.
    Cli(Box<RawTask>),
    /// Read from a file.
    File(std::path::PathBuf),
    /// The `PBIOPS_TASK` environment variable.
    Env(String),
    /// Standard input.
    Stdin,
}

/// Picks the one source of the task; two sources are an error, since one would be ignored.
pub fn pick(
    cli: Option<Result<RawTask, Error>>,
    file: Option<std::path::PathBuf>,
    env_task: Option<String>,
) -> Result<Source, Error> {
    let given: Vec<&str> = [
        cli.is_some().then_some("CLI arguments"),
        file.is_some().then_some("--task-file"),
        env_task.is_some().then_some("PBIOPS_TASK"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(Error::task(
            "(task)",
            format!("several tasks were given ({})", given.join(" and ")),
            "give exactly one: CLI arguments, --task-file, PBIOPS_TASK or stdin",
        ));
    }
    Ok(match (cli, file, env_task) {
        (Some(raw), _, _) => Source::Cli(Box::new(raw?)),
        (_, Some(f), _) => Source::File(f),
        (_, _, Some(t)) => Source::Env(t),
        _ => Source::Stdin,
    })
}

/// Reads and validates the task, also returning it as compact JSON for the operation log
/// (a task never holds a secret: [`json`] refuses them).
pub fn load_with_json(source: Source) -> Result<(Task, String), Error> {
    let text = match source {
        Source::Cli(raw) => {
            // The same checks as a task file's: size, secrets, control characters.
            let compact = raw.to_json();
            json::parse(&compact)?;
            return Ok((raw.validate()?, compact));
        }
        Source::File(path) => read_file(&path)?,
        Source::Env(text) => text,
        Source::Stdin => read_stdin(STDIN_FIRST_BYTE)?,
    };
    let value = json::parse(&text)?;
    let compact = value.to_string();
    Ok((RawTask::from_value(value)?.validate()?, compact))
}

fn read_file(path: &Path) -> Result<String, Error> {
    let fail = |e: std::io::Error| {
        Error::task(
            "--task-file",
            format!("cannot read {}: {e}", path.display()),
            "pass the path of a JSON task file (in Kestra, an inputFiles entry)",
        )
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TASK_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(fail)?;
    json::size(bytes.len())?;
    String::from_utf8(bytes).map_err(|_| {
        Error::task(
            "--task-file",
            format!("{} is not UTF-8 text", path.display()),
            "save the task as UTF-8 JSON",
        )
    })
}

/// Refuses a task whose `outputFile` could not be written, before any request is sent: its
/// directory must exist and accept a new file.
pub fn check_output_file(task: &Task) -> Result<(), Error> {
    let Some(path) = task.output_file() else {
        return Ok(());
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let refuse = |message: String| {
        Error::task(
            "outputFile",
            message,
            "give a path in a writable directory (in Kestra, the task's working directory: a bare file name)",
        )
    };
    if path.is_dir() {
        return Err(refuse(format!("`{}` is a directory", path.display())));
    }
    if !dir.is_dir() {
        return Err(refuse(format!(
            "the directory of `{}` does not exist",
            path.display()
        )));
    }
    let probe = dir.join(format!(".pbiops-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(refuse(format!(
            "cannot write in the directory of `{}`: {e}",
            path.display()
        ))),
    }
}

const NO_TASK_HELP: &str = "pass a task: `pbiops dataset refresh --workspace … --dataset …`, \
`pbiops --task-file task.json`, `pbiops < task.json`, or PBIOPS_TASK; see `pbiops --help`";

fn read_stdin(first_byte: Duration) -> Result<String, Error> {
    if std::io::stdin().is_terminal() {
        return Err(Error::task("(task)", "no task was given", NO_TASK_HELP));
    }
    let (tx, rx) = mpsc::channel();
    // A plain thread, not tokio's blocking pool: if stdin never speaks, the process exits
    // without waiting for this read to return.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut first = [0u8; 1];
        let n = match stdin.read(&mut first) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut rest = Vec::new();
        let result = (&mut stdin)
            .take(MAX_TASK_BYTES as u64)
            .read_to_end(&mut rest)
            .map(|_| {
                let mut all = first[..n].to_vec();
                all.extend(rest);
                all
            });
        let _ = tx.send(result);
    });
    let bytes = match rx.recv_timeout(first_byte) {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return Err(Error::task(
                "(task)",
                format!("cannot read stdin: {e}"),
                NO_TASK_HELP,
            ));
        }
        Err(_) => {
            return Err(Error::task(
                "(task)",
                format!("no task arrived on stdin within {}s", first_byte.as_secs()),
                NO_TASK_HELP,
            ));
        }
    };
    json::size(bytes.len())?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::task("(task)", "stdin is not UTF-8 text", NO_TASK_HELP))?;
    if text.trim().is_empty() {
        return Err(Error::task("(task)", "stdin was empty", NO_TASK_HELP));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_source_is_accepted() {
        assert!(matches!(pick(None, None, None), Ok(Source::Stdin)));
        assert!(matches!(
            pick(None, None, Some("{}".into())),
            Ok(Source::Env(t)) if t == "{}"
        ));
        let cli = RawTask::parse(r#"{"operation":"token.get"}"#);
        let err = pick(Some(cli), None, Some("{}".into())).expect_err("two");
        assert!(err.to_string().contains("CLI arguments and PBIOPS_TASK"));
    }

    #[test]
    fn cli_values_get_the_checks_of_a_task_file() {
        use clap::Parser;
        for (flag, value) in [
            ("--workspace", "eyJhbGciOi.CANARYpayload.sig"),
            ("--table", "Sales:p\u{1}"),
            ("--effective-date", "https://x/?sig=abc"),
        ] {
            let mut args = vec![
                "pbiops",
                "dataset",
                "refresh",
                "--workspace",
                "w",
                "--dataset",
                "d",
            ];
            if flag == "--workspace" {
                args[4] = value;
            } else {
                args.extend([flag, value]);
            }
            let cli = super::super::cli::Cli::try_parse_from(args).expect("parses");
            let raw = cli.command.expect("command").to_task().expect("a task");
            let err = pick(Some(raw), None, None)
                .and_then(load_with_json)
                .expect_err(value);
            assert_eq!(err.exit_code().code(), 2, "{err}");
            assert!(!err.to_string().contains("CANARY"), "{err}");
        }
    }

    fn fleet_writing_to(path: &str) -> Task {
        let text = format!(
            r#"{{"operation":"dataset.refresh","targets":[{{"workspace":"w","dataset":"d"}}],"outputFile":"{path}"}}"#
        );
        RawTask::parse(&text)
            .and_then(RawTask::validate)
            .expect("valid")
    }

    #[test]
    fn an_output_file_that_cannot_be_written_is_refused() {
        let dir = std::env::temp_dir();
        let ok = dir.join("targets.json");
        assert!(check_output_file(&fleet_writing_to(&ok.display().to_string())).is_ok());
        for bad in [
            "/nonexistent-pbiops-dir/targets.json",
            "/proc/targets.json",
            "/",
        ] {
            let err = check_output_file(&fleet_writing_to(bad)).expect_err(bad);
            assert!(err.to_string().contains("`outputFile`"), "{err}");
        }
    }
}
