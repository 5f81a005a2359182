//! Signals and deadlines: SIGTERM (how Kestra and `docker stop` end a task) leaves the refresh
//! running, closes every open row as `Interrupted` with its refresh id, prints the outputs and
//! exits 8, and the retry follows the refresh; `timeout` bounds a run even when the service
//! never lets a call finish.
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::support::*;

/// Starts the binary on `task`, waits until `ready` holds of the request log, sends SIGTERM, and
/// returns what it printed, its exit code and how long it took to stop.
async fn terminate(
    emu: &pbiops_emulator::Emulator,
    env: &[(String, String)],
    task: &Value,
    ready: impl Fn(&[Value]) -> bool,
) -> (i32, String, std::time::Duration) {
    let mut child = spawn(env, task);
    until_requests(emu, "the run to wait on its refresh", ready).await;
    let pid = child.id().expect("pid") as i32;
    let sent = std::time::Instant::now();
    assert_eq!(unsafe_free_kill(pid, libc::SIGTERM), 0);
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("pbiops stops")
        .expect("status");
    let took = sent.elapsed();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .await
        .expect("read");
    (status.code().unwrap_or(-1), stdout, took)
}

/// `kill(2)` without an `unsafe` block in the test crate: through the `kill` command.
fn unsafe_free_kill(pid: i32, signal: i32) -> i32 {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    status.code().unwrap_or(-1)
}

fn outputs_of(stdout: &str) -> serde_json::Map<String, Value> {
    let mut merged = serde_json::Map::new();
    for line in stdout.lines() {
        let inner = line
            .strip_prefix("::")
            .and_then(|l| l.strip_suffix("::"))
            .expect("kestra line");
        let value: Value = serde_json::from_str(inner).expect("json");
        if let Some(Value::Object(o)) = value.get("outputs") {
            merged.extend(o.clone());
        }
    }
    merged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_refresh_running_records_it_and_the_retry_follows_it() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = kestra_store_env(&emu, dir.path(), "exec-sig");
    let mut task = refresh_task("Sales", "Slow Model");
    task["refresh"] = json!({"type": "Full"});
    let (code, stdout, took) = terminate(&emu, &env, &task, |log| {
        log.iter().any(|r| r["route"] == "refresh.get")
    })
    .await;
    assert_eq!(code, 8, "{stdout}");
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "stopped in {took:?}"
    );
    assert!(!stdout.contains(SECRET) && !stdout.contains(TOKEN_PREFIX));
    let out = outputs_of(&stdout);
    let id = refreshes_of(&emu, DS_SLOW).await[0]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(out["requestId"], json!(id));
    assert_eq!(out["status"], "Running");
    assert_eq!(out["errorCode"], "Interrupted");
    assert!(
        requests_to(&emu, "refresh.delete").await.is_empty(),
        "left running"
    );

    let history = run(
        Input::Env(json!({"operation": "history", "filter": {"operation": "dataset.refresh"}})),
        &env,
    )
    .await;
    assert_eq!(
        history
            .outputs()
            .by_status
            .expect("statuses")
            .get("Interrupted"),
        Some(&1)
    );

    let rerun = {
        let (env, task) = (env.clone(), task.clone());
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    let polled = requests_to(&emu, "refresh.get").await.len();
    until_requests(&emu, "the retry to follow the refresh", |log| {
        log.iter().filter(|r| r["route"] == "refresh.get").count() > polled + 1
    })
    .await;
    complete_refresh(&emu, DS_SLOW, "Completed").await;
    let rerun = rerun.await.expect("rerun");
    assert_eq!(rerun.code, 0, "{}", rerun.stdout);
    assert_eq!(rerun.outputs().attached, Some(true));
    assert_eq!(
        requests_to(&emu, "refresh.post").await.len(),
        1,
        "one trigger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_open_row_of_a_fleet() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = kestra_store_env(&emu, dir.path(), "exec-sig");
    let task = json!({"operation": "dataset.refresh", "poll": {"min": 0.01, "max": 0.05},
    "grace": "PT5S", "timeout": "PT60S", "targets": [
        {"workspace": "Sales", "dataset": "Slow Model"},
        {"workspace": "Sales", "dataflow": "Slow Flow"},
        {"workspace": "Sales", "dataflow": "Slow Gen2"}
    ]});
    let (code, stdout, _) = terminate(&emu, &env, &task, |log| {
        log.iter().any(|r| r["route"] == "refresh.history")
            && log.iter().any(|r| r["route"] == "fabric.job.get")
            && log
                .iter()
                .filter(|r| r["route"] == "dataflow.transactions")
                .count()
                > 2
    })
    .await;
    assert_eq!(code, 8, "{stdout}");
    let history = run(Input::Env(json!({"operation": "history"})), &env).await;
    let statuses = history.outputs().by_status.expect("statuses");
    assert_eq!(
        statuses.get("Interrupted"),
        Some(&4),
        "three items and the fleet: {statuses:?}"
    );
    assert_eq!(
        statuses.get("Running"),
        Some(&1),
        "only the history query's own row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_bounds_a_run_whose_status_reads_are_throttled_for_an_hour() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "refresh.get", "status": 429, "retryAfter": 3600, "times": 1000}),
    )
    .await;
    let mut task = refresh_task("Sales", "Slow Model");
    task["refresh"] = json!({"type": "Full"});
    task["timeout"] = json!(1);
    let began = std::time::Instant::now();
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 5, "{}", run.stdout);
    assert!(began.elapsed() < std::time::Duration::from_secs(30));
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Running"));
    assert_eq!(out.error_code.as_deref(), Some("WaitTimedOut"));
}
