//! Where the one task of a run comes from: CLI, `--task-file`, `PBIOPS_TASK`, or stdin.
//!
//! Stdin is read only when it is not a terminal and nothing else named a task, and never waits
//! forever: Kestra's Process runner gives the child a pipe that nobody writes or closes, so when
//! no byte arrives within [`STDIN_FIRST_BYTE`], the run stops with exit 2 and a hint.

use std::io::{IsTerminal, Read};
use std::sync::mpsc;
use std::time::Duration;

use super::{Task, raw, validate};
use crate::error::Error;

/// How long stdin may stay silent before the run gives up on it.
pub const STDIN_FIRST_BYTE: Duration = Duration::from_secs(2);

/// The task's origin, for logs and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built from CLI arguments.
    Cli(serde_json::Value),
    /// Read from a file.
    File(std::path::PathBuf),
    /// The `PBIOPS_TASK` environment variable.
    Env(String),
    /// Standard input.
    Stdin,
}

/// Picks the one source of the task; two sources are an error, since one would be ignored.
pub fn pick(
    cli: Option<serde_json::Value>,
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
        (Some(v), _, _) => Source::Cli(v),
        (_, Some(f), _) => Source::File(f),
        (_, _, Some(t)) => Source::Env(t),
        _ => Source::Stdin,
    })
}

/// Reads and validates the task, also returning it as compact JSON for the operation log
/// (a task never holds a secret: [`raw`] refuses them).
pub fn load_with_json(source: Source) -> Result<(Task, String), Error> {
    let text = match source {
        Source::Cli(value) => value.to_string(),
        Source::File(path) => std::fs::read_to_string(&path).map_err(|e| {
            Error::task(
                "--task-file",
                format!("cannot read {}: {e}", path.display()),
                "pass the path of a JSON task file (in Kestra, an inputFiles entry)",
            )
        })?,
        Source::Env(text) => text,
        Source::Stdin => read_stdin(STDIN_FIRST_BYTE)?,
    };
    let raw = raw::parse(&text)?;
    let compact = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| v.to_string())
        .unwrap_or(text);
    Ok((validate(raw)?, compact))
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
        let result = stdin.read_to_end(&mut rest).map(|_| {
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
        assert_eq!(pick(None, None, None).ok(), Some(Source::Stdin));
        assert_eq!(
            pick(None, None, Some("{}".into())).ok(),
            Some(Source::Env("{}".into()))
        );
        let err = pick(Some(serde_json::json!({})), None, Some("{}".into())).expect_err("two");
        assert!(err.to_string().contains("CLI arguments and PBIOPS_TASK"));
    }
}
