//! A worker killed mid-fleet, while another worker waits for the same capacity: how long until
//! the other worker gets the dead one's slots, whether the killed task's retry (same Kestra
//! execution and task run) reattaches to the refreshes it had started instead of triggering
//! them again, and how many refreshes the capacity holds meanwhile.
//!
//! ```text
//! cargo bench --bench worker_killed
//! ```
//!
//! One capacity of concurrency 4, eight models of a fixed duration, a PostgreSQL store, and
//! `maxParallelPerCapacity` 2 shared by every process. Worker A (models 1–4) starts and takes
//! both slots; worker B (models 5–8) starts and queues; A is killed with SIGKILL (no chance to
//! give anything back) and at once run again with the same `KESTRA_EXECUTION_ID` and
//! `KESTRA_TASKRUN_ID`, as Kestra does with a task whose worker died: once B has taken over the
//! dead worker's slots (they lapse after the slot lease, `PBIOPS_SLOT_LEASE`, shortened here; the
//! default is two minutes), then, in a second episode on a fresh emulator and store, at once
//! (the retry closes the dead attempt's operation, which frees its slots). About three minutes.
//! Needs PostgreSQL at 127.0.0.1:5432 (database `test`, trust). A benchmark, not a test: it
//! prints a table and asserts nothing.
//!
//! `KILLED_LEASE` (default `PT15S`) and `KILLED_DURATION` (seconds per refresh, default 25)
//! change the lease and the refreshes' length.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pbiops_emulator::Fleet;
use pbiops_emulator::scenario::DurationSpec;
use serde_json::{Value, json};

const MODELS: usize = 8;
const PER_CAPACITY: usize = 2;

/// What one episode measured.
struct Episode {
    killed_after: f64,
    started_at_kill: usize,
    takeover: f64,
    b: (String, String),
    retry: (String, String, usize),
    most_a: usize,
    total_a: usize,
    in_service: String,
    done_after: f64,
}

fn main() {
    let lease = std::env::var("KILLED_LEASE").unwrap_or_else(|_| "PT15S".into());
    let duration: f64 = common::env_number("KILLED_DURATION", 25.0);
    let runtime = common::runtime();
    let late = episode(&runtime, &lease, duration, false);
    let early = episode(&runtime, &lease, duration, true);

    println!(
        "worker_killed: {MODELS} models of {duration} s on one capacity of concurrency 4, maxParallelPerCapacity {PER_CAPACITY}, slot lease {lease}, PostgreSQL store\n"
    );
    println!("| measure | retry after worker B took over | retry at once |");
    println!("|---|---|---|");
    let row = |name: &str, f: &dyn Fn(&Episode) -> String| {
        println!("| {name} | {} | {} |", f(&late), f(&early));
    };
    row(
        "worker A killed (SIGKILL) after (s), refreshes it had started",
        &|e| format!("{:.1}, {}", e.killed_after, e.started_at_kill),
    );
    row("worker B's first trigger after the kill (s)", &|e| {
        format!("{:.1}", e.takeover)
    });
    row("worker B: exit code, failed", &|e| {
        format!("{}, {}", e.b.0, e.b.1)
    });
    row(
        "worker A's retry: exit code, failed, targets attached to A's refreshes",
        &|e| format!("{}, {}, {}", e.retry.0, e.retry.1, e.retry.2),
    );
    row(
        "trigger POSTs per model of worker A: max (total, 4 models)",
        &|e| format!("{} ({})", e.most_a, e.total_a),
    );
    row(
        &format!("most refreshes in the service at once on the capacity (limit {PER_CAPACITY})"),
        &|e| e.in_service.clone(),
    );
    row("everything done after (s)", &|e| {
        format!("{:.1}", e.done_after)
    });
}

/// Worker A takes both slots and is killed while worker B waits; A's task runs again at once
/// (`retry_at_once`) or only once B has taken over the dead worker's slots.
fn episode(
    runtime: &tokio::runtime::Runtime,
    lease: &str,
    duration: f64,
    retry_at_once: bool,
) -> Episode {
    let fleet = Fleet {
        models: MODELS,
        capacities: 1,
        concurrency: 4,
        seed: 20261124,
        duration: DurationSpec::Fixed(duration),
        history_count: 10,
        time_scale: 1.0,
        rate_limit: None,
    };
    let (scenario, targets) = common::scenario_and_targets(&fleet);
    let emulator = common::emulator(runtime, scenario);
    let base = emulator.base_url();
    let store = common::PgStore::new(if retry_at_once {
        "killed_early"
    } else {
        "killed_late"
    });
    let (group_a, group_b) = targets.split_at(MODELS / 2);
    let models_of = |group: &[Value]| -> BTreeSet<String> {
        group
            .iter()
            .filter_map(|t| t["dataset"].as_str().map(str::to_string))
            .collect()
    };
    let worker = |group: &[Value], execution: &str| -> Command {
        let task = json!({"operation": "dataset.refresh", "targets": group, "maxParallel": 4,
                          "maxParallelPerCapacity": PER_CAPACITY, "poll": {"min": 0.5, "max": 5},
                          "timeout": "PT10M", "outputFile": std::env::temp_dir().join(format!("pbiops-bench-{execution}.json"))});
        let mut command = common::pbiops(&base);
        command
            .env("PBIOPS_ODBC", store.odbc())
            .env("PBIOPS_SLOT_LEASE", lease)
            .env("PBIOPS_TASK", task.to_string())
            .env("KESTRA_EXECUTION_ID", execution)
            .env("KESTRA_TASKRUN_ID", format!("{execution}-fleet"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command
    };
    let api_count = |models: &BTreeSet<String>| {
        let refreshes = common::get_json(runtime, &format!("{base}/_emulator/refreshes"));
        common::api_refreshes(&refreshes)
            .iter()
            .filter(|r| r["datasetId"].as_str().is_some_and(|d| models.contains(d)))
            .count()
    };
    let (models_a, models_b) = (models_of(group_a), models_of(group_b));

    let started = Instant::now();
    let mut a = worker(group_a, "bench-killed-a").spawn().expect("worker A");
    wait_until("worker A to trigger on both slots", || {
        api_count(&models_a) >= PER_CAPACITY
    });
    let b = worker(group_b, "bench-killed-b").spawn().expect("worker B");
    // B resolves its targets, reads their histories and queues for a slot in well under this.
    std::thread::sleep(Duration::from_secs(3));
    a.kill().expect("SIGKILL worker A");
    a.wait().expect("worker A is gone");
    let killed_at = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let killed_after = started.elapsed().as_secs_f64();
    let started_at_kill = api_count(&models_a);
    if !retry_at_once {
        wait_until("worker B to take the dead worker's slots", || {
            api_count(&models_b) > 0
        });
    }
    // Kestra runs the task again, on another worker, with the same execution and task run.
    let retry = worker(group_a, "bench-killed-a")
        .spawn()
        .expect("worker A again");
    // Both outputs are read at once: a child whose pipe nobody reads blocks when it fills.
    let (b, retry) = std::thread::scope(|scope| {
        let b = scope.spawn(move || finish(b));
        let retry = scope.spawn(move || finish(retry));
        (b.join().expect("B"), retry.join().expect("retry"))
    });

    let refreshes = common::get_json(runtime, &format!("{base}/_emulator/refreshes"));
    let api = common::api_refreshes(&refreshes);
    let first_b = api
        .iter()
        .filter(|r| {
            r["datasetId"]
                .as_str()
                .is_some_and(|d| models_b.contains(d))
        })
        .filter_map(|r| r["startTime"].as_str().and_then(common::seconds))
        .fold(f64::INFINITY, f64::min);
    let a_api: Vec<&Value> = api
        .iter()
        .copied()
        .filter(|r| {
            r["datasetId"]
                .as_str()
                .is_some_and(|d| models_a.contains(d))
        })
        .collect();
    let (most_a, total_a) = common::triggers_per_model(&a_api);
    let attached = retry.1["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["attached"] == true)
        .count();
    let in_service = common::in_service_text(&api);
    Episode {
        killed_after,
        started_at_kill,
        takeover: first_b - killed_at,
        b: (b.0, failed(&b.1)),
        retry: (retry.0, failed(&retry.1), attached),
        most_a,
        total_a,
        in_service,
        done_after: started.elapsed().as_secs_f64(),
    }
}

/// Polls `done` (every 50 ms, for at most three minutes: the default lease is two).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a child: its exit code and outputs.
fn finish(child: Child) -> (String, serde_json::Map<String, Value>) {
    let output = child.wait_with_output().expect("pbiops ends");
    let code = output
        .status
        .code()
        .map_or_else(|| "signal".into(), |c| c.to_string());
    (code, common::outputs(&output.stdout))
}

fn failed(outputs: &serde_json::Map<String, Value>) -> String {
    outputs
        .get("failed")
        .map_or_else(|| "-".into(), Value::to_string)
}
