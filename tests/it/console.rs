//! The console: a reader that stops reading stalls only the writing. The run goes on (its polls,
//! its slot renewals, its deadline), and every line arrives once the reader reads again.

use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::support::*;

/// Polls made while nobody reads: each logs one debug line of about 90 bytes, so together they
/// are well past what a pipe holds (64 KiB on Linux), where a write on the run's thread blocks.
const POLLS: usize = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_does_not_stall_the_run() {
    let emu = emulator(scenario()).await;
    let task = json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": DS_SLOW,
                      "poll": {"min": 0.002, "max": 0.002}, "timeout": "PT2M"});
    let mut env = env(&emu);
    env.push(("PBIOPS_LOG_LEVEL".into(), "debug".into()));
    let mut child = spawn(&env, &task);
    // Nobody reads stdout meanwhile.
    until_requests(
        &emu,
        "the run to keep polling while its output is not read",
        |log| {
            log.iter()
                .filter(|r| r["route"] == "refresh.history")
                .count()
                >= POLLS
        },
    )
    .await;
    complete_refresh(&emu, DS_SLOW, "Completed").await;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut bytes = Vec::new();
    let (read, status) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(stdout.read_to_end(&mut bytes), child.wait())
    })
    .await
    .expect("pbiops ends once its output is read");
    read.expect("stdout");
    let code = status.expect("status").code().unwrap_or(-1);
    let run = decode(code, bytes, Vec::new());
    assert_eq!(run.code, 0, "{}", run.log_text());
    assert_eq!(run.outputs().status.as_deref(), Some("Completed"));
    // Every poll's line arrived: nothing was dropped (the backlog is far from full).
    let history_lines = run
        .logs
        .iter()
        .filter(|(_, message)| message.contains("endpoint=refresh.history"))
        .count();
    let reads = requests_to(&emu, "refresh.history").await.len();
    assert!(reads >= POLLS);
    assert_eq!(history_lines, reads, "one log line per history read");
}
