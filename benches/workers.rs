//! A night split over four workers sharing a PostgreSQL store, against the same night in one
//! process: four `pbiops` children started together, each with 50 of the 200 targets of
//! `benches/fleet.rs`'s night (4 capacities of concurrency 4, lognormal durations, a per-client
//! rate limit), each with `maxParallelPerCapacity` N; then, on a fresh emulator and a fresh
//! store, one child with all 200.
//!
//! ```text
//! cargo bench --bench workers
//! ```
//!
//! The targets are dealt round-robin, so every worker has models on every capacity and the
//! limit can only hold if the workers share it. What is measured, per run: the makespan (first
//! child started to last child ended), the most refreshes the service held at once per capacity
//! (queued or running: what the shared limit bounds; from the emulator's record of each
//! refresh) and the most it ran (the emulator's `peak`, which its own concurrency caps), trigger
//! POSTs per model (single flight: 1), 429s, and calls per model. Needs PostgreSQL at
//! 127.0.0.1:5432 (database `test`, trust). A benchmark, not a test: it prints a table and
//! asserts nothing.
//!
//! `WORKERS_PER_CAPACITY` sets N (default 5: one refresh queued in the service per capacity, as
//! in `fleet`), `WORKERS_RATE` the rate limit (calls per minute, default 1200).

mod common;

use std::process::Child;
use std::time::Instant;

use serde_json::{Value, json};

const MODELS: usize = 200;
const WORKERS: usize = 4;
const CAPACITIES: usize = 4;
const CONCURRENCY: u32 = 4;

/// What one configuration (one process, or four) measured.
struct Night {
    makespan: f64,
    exit_codes: String,
    failed: u64,
    in_service: String,
    running: String,
    most_triggers: usize,
    triggers: usize,
    calls: u64,
    throttled: usize,
    repeat_429: usize,
    bound: f64,
}

fn main() {
    let per_capacity: usize = common::env_number("WORKERS_PER_CAPACITY", 5);
    let rate: u32 = common::env_number("WORKERS_RATE", 1200);
    let runtime = common::runtime();
    let four = run(&runtime, WORKERS, per_capacity, rate);
    let one = run(&runtime, 1, per_capacity, rate);

    println!(
        "workers: {MODELS} models, {CAPACITIES} capacities × {CONCURRENCY}, maxParallelPerCapacity {per_capacity}, rate limit {rate} calls/min, PostgreSQL store\n"
    );
    println!(
        "| run | makespan (s) | lower bound (s) | exit codes | failed | most in the service at once, per capacity (limit {per_capacity}) | most running, per capacity | trigger POSTs per model (max) | API calls per model | 429s | 429s within 60 s of another |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, n) in [
        ("4 workers × 50 models", &four),
        ("1 process × 200 models", &one),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {} | {} | {} | {} | {} ({} in all) | {:.1} | {} | {} |",
            n.makespan,
            n.bound,
            n.exit_codes,
            n.failed,
            n.in_service,
            n.running,
            n.most_triggers,
            n.triggers,
            n.calls as f64 / MODELS as f64,
            n.throttled,
            n.repeat_429
        );
    }
    println!(
        "\n4 workers / 1 process makespan: {:.2}",
        four.makespan / one.makespan
    );
}

/// The night on a fresh emulator and store, split over `workers` processes started together.
fn run(runtime: &tokio::runtime::Runtime, workers: usize, per_capacity: usize, rate: u32) -> Night {
    let fleet = common::night(MODELS, CAPACITIES, CONCURRENCY, rate);
    let (scenario, targets) = common::scenario_and_targets(&fleet);
    let emulator = common::emulator(runtime, scenario);
    let base = emulator.base_url();
    let store = common::PgStore::new(&format!("workers{workers}"));
    let dir = tempfile::tempdir().expect("dir");

    let started = Instant::now();
    let children: Vec<Child> = (0..workers)
        .map(|w| {
            let group: Vec<&Value> = targets.iter().skip(w).step_by(workers).collect();
            let task = json!({"operation": "dataset.refresh", "targets": group,
                              "maxParallel": per_capacity * CAPACITIES, "maxParallelPerCapacity": per_capacity,
                              "poll": {"min": 0.5, "max": 10}, "timeout": "PT30M",
                              "outputFile": dir.path().join(format!("targets-{w}.json"))});
            common::pbiops(&base)
                .env("PBIOPS_ODBC", store.odbc())
                .env("PBIOPS_TASK", task.to_string())
                .env("KESTRA_EXECUTION_ID", format!("bench-night-{w}"))
                .env("KESTRA_TASKRUN_ID", format!("bench-night-{w}-fleet"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("pbiops starts")
        })
        .collect();
    // Every child's output is read at once, each on its own thread: a child whose pipe nobody
    // reads blocks on its next log line when the pipe fills, and the night waits for it.
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let readers: Vec<_> = children
            .into_iter()
            .map(|child| scope.spawn(move || child.wait_with_output().expect("pbiops ends")))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("reader"))
            .collect()
    });
    let mut exit_codes = Vec::new();
    let mut failed = 0;
    for output in outputs {
        exit_codes.push(
            output
                .status
                .code()
                .map_or("signal".into(), |c| c.to_string()),
        );
        failed += common::outputs(&output.stdout)
            .get("failed")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX / 8);
    }
    let makespan = started.elapsed().as_secs_f64();

    let refreshes = common::get_json(runtime, &format!("{base}/_emulator/refreshes"));
    let stats = common::get_json(runtime, &format!("{base}/_emulator/stats"));
    let log = common::get_json(runtime, &format!("{base}/_emulator/requests"));
    let api = common::api_refreshes(&refreshes);
    let (work, longest, _) = common::work(&api);
    let in_service = common::in_service_text(&api);
    let (most_triggers, triggers) = common::triggers_per_model(&api);
    let (throttled, repeat_429) = common::throttled(&log);
    Night {
        makespan,
        exit_codes: exit_codes.join(" "),
        failed,
        in_service,
        running: common::peak(runtime, &base),
        most_triggers,
        triggers,
        calls: common::api_calls(&stats),
        throttled,
        repeat_429,
        bound: (work / (CAPACITIES as f64 * CONCURRENCY as f64)).max(longest),
    }
}
