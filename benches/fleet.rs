//! A fleet night: 200 semantic models on 4 capacities of concurrency 4, under a rate limit, in
//! one `pbiops` run against the emulator — makespan vs the lower bound, calls, 429s, failures.
//!
//! ```text
//! cargo bench --bench fleet
//! ```
//!
//! Durations are compressed (lognormal, median 4 s, σ 0.5, 1–30 s: a night in about a minute)
//! rather than time-scaled, so the refreshes' own timestamps, which pbiops learns expected
//! durations from, stay in real seconds. Each model has 10 past refreshes drawn from the same
//! distribution. The capacity bound is max(total work / total concurrency, longest refresh), with
//! "work" measured from the emulator's own start and end of each refresh; the API-budget bound is
//! the fewest calls the night needs divided by the rate limit; the makespan is compared with the
//! larger of the two. A benchmark, not a test: it prints a table and asserts nothing.
//!
//! `FLEET_MODELS` changes the number of models (e.g. 1000, for pbiops's own memory and CPU, which
//! the table reports from the child's rusage: the emulator runs in the benchmark's process and is
//! not counted). `FLEET_PROFILER` runs pbiops under a profiler (`perf record -g -o FILE`); the
//! CPU and memory it reports then include the profiler's. `FLEET_DUMP=DIR` writes the emulator's
//! refreshes and request log there (`refreshes.json`, `log.json`), and pbiops's output
//! (`stdout.txt`), for a closer look.

// getrusage is the one way to read a finished child's CPU time and peak RSS; it needs libc.
#![allow(unsafe_code)]

mod common;

use std::time::Instant;

use serde_json::{Value, json};

/// Models in the fleet (`FLEET_MODELS` overrides).
fn models() -> usize {
    common::env_number("FLEET_MODELS", 200)
}
const CAPACITIES: usize = 4;
const CONCURRENCY: u32 = 4;
/// Calls per client and minute before the emulator answers 429 (`FLEET_RATE` overrides).
fn rate() -> u32 {
    common::env_number("FLEET_RATE", 1200)
}

/// Refreshes queued in the service per capacity (`FLEET_QUEUE` overrides).
fn queued() -> u32 {
    std::env::var("FLEET_QUEUE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

fn main() {
    let runtime = common::runtime();
    let fleet = common::night(models(), CAPACITIES, CONCURRENCY, rate());
    let (scenario, targets) = common::scenario_and_targets(&fleet);
    let emulator = common::emulator(&runtime, scenario);
    let base = emulator.base_url();
    let data_dir = tempfile::tempdir().expect("data dir");
    // Refreshes queued in the service per capacity (`FLEET_QUEUE`, default 3): a slot freed in
    // the service is used at once, instead of after pbiops has seen the previous refresh end.
    let per_capacity = CONCURRENCY + queued();
    let task = json!({"operation": "dataset.refresh", "targets": targets, "maxParallel": per_capacity as usize * CAPACITIES,
                      "maxParallelPerCapacity": per_capacity, "poll": {"min": 0.5, "max": 10}, "timeout": "PT30M",
                      "outputFile": data_dir.path().join("targets.json")});

    let started = Instant::now();
    let output = common::pbiops(&base)
        .env("PBIOPS_DATA_DIR", data_dir.path())
        .env("PBIOPS_TASK", task.to_string())
        .output()
        .expect("pbiops runs");
    let wall = started.elapsed().as_secs_f64();
    let outputs = common::outputs(&output.stdout);

    let refreshes = common::get_json(&runtime, &format!("{base}/_emulator/refreshes"));
    let stats = common::get_json(&runtime, &format!("{base}/_emulator/stats"));
    let log = common::get_json(&runtime, &format!("{base}/_emulator/requests"));
    if let Ok(dir) = std::env::var("FLEET_DUMP") {
        std::fs::write(format!("{dir}/refreshes.json"), refreshes.to_string()).expect("dump");
        std::fs::write(format!("{dir}/log.json"), log.to_string()).expect("dump");
        std::fs::write(format!("{dir}/stdout.txt"), &output.stdout).expect("dump");
    }
    let (work, longest, service_span) = common::work(&common::api_refreshes(&refreshes));
    let bound = (work / (CAPACITIES as f64 * CONCURRENCY as f64)).max(longest);
    let makespan = outputs
        .get("makespanSeconds")
        .and_then(Value::as_f64)
        .unwrap_or(wall);
    let (throttled, repeat_429) = common::throttled(&log);
    println!(
        "fleet: {} models, {CAPACITIES} capacities × {CONCURRENCY}, {} queued in the service per capacity, rate limit {} calls/min, exit code {:?}\n",
        models(),
        queued(),
        rate(),
        output.status.code()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| makespan (s) | {makespan:.1} |");
    // The fewest calls this night needs: every call but the history reads as made (resolution,
    // preflight, one trigger per model), plus two history reads per model (the planning read and
    // one poll that finds it ended); at the rate limit, they take at least this long.
    let calls = |route: &str| stats["routes"][route].as_f64().unwrap_or_default();
    let all: f64 = stats["routes"]
        .as_object()
        .map_or(0.0, |m| m.values().filter_map(Value::as_f64).sum());
    let fewest = all - calls("refresh.history") + 2.0 * models() as f64;
    let budget_bound = fewest / (f64::from(rate()) / 60.0);
    let lower = bound.max(budget_bound);
    println!("| capacity bound: max(work / concurrency, longest) (s) | {bound:.1} |");
    println!(
        "| API-budget bound: fewest calls ({fewest:.0}) / rate limit (s) | {budget_bound:.1} |"
    );
    println!(
        "| makespan / max(capacity bound, API-budget bound) | {:.3} |",
        makespan / lower
    );
    println!("| refreshes run by the service, first start to last end (s) | {service_span:.1} |");
    println!(
        "| failed targets | {} |",
        outputs
            .get("failed")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX)
    );
    println!("| API calls (all routes) | {} |", common::api_calls(&stats));
    if let Some(routes) = stats["routes"].as_object() {
        for (route, n) in routes {
            let n = n.as_f64().unwrap_or_default();
            println!("| calls per model: {route} | {:.2} |", n / models() as f64);
        }
    }
    common::print_polls(&common::api_refreshes(&refreshes), &log);
    println!("| 429 responses | {throttled} |");
    println!("| 429s within 60 s of an earlier 429 | {repeat_429} |");
    println!(
        "| peak concurrency per capacity | {} |",
        common::peak(&runtime, &base)
    );
    let (cpu, rss_mib) = child_usage();
    println!("| pbiops CPU time, user + system (s) | {cpu:.2} |");
    println!("| pbiops peak RSS (MiB) | {rss_mib:.1} |");
}

/// CPU seconds and peak RSS (MiB) of the finished children: the one pbiops run.
fn child_usage() -> (f64, f64) {
    // rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(usage.ru_utime) + secs(usage.ru_stime),
        usage.ru_maxrss as f64 / 1024.0,
    )
}
