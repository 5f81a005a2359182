//! One full `dataset.refresh` in one process: wall time, CPU time and peak memory.
//!
//! ```text
//! cargo bench --bench one_refresh
//! ```
//!
//! Starts the emulator in-process, then runs the real `pbiops` binary N times (resolve the
//! workspace and model, check for a running refresh, trigger, poll until done, print outputs).
//! CPU and peak RSS come from `wait4`'s rusage of each child, so the emulator is not counted.
//! A benchmark, not a test: it prints a table and asserts nothing about speed.

// wait4 is the one way to read a single child's CPU time and peak RSS; it needs libc.
#![allow(unsafe_code)]

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

const RUNS: usize = 30;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let scenario = json!({
        "tenants": [{"id": "7d1c2b1e-0000-4000-8000-000000000001", "domain": "contoso.onmicrosoft.com",
                     "clients": [{"clientId": "7d1c2b1e-0000-4000-8000-0000000000c1", "secret": "bench-secret", "secretId": "7d1c2b1e-0000-4000-8000-0000000005e1"}]}],
        "workspaces": [{"id": "a0000000-0000-4000-8000-000000000001", "name": "Sales", "dedicatedCapacity": true,
                        "datasets": [{"id": "d0000000-0000-4000-8000-000000000001", "name": "Sales Model", "refresh": {"polls": 1}}]}]
    });
    let scenario = pbiops_emulator::Scenario::from_json(&scenario.to_string()).expect("scenario");
    let emulator = runtime
        .block_on(pbiops_emulator::spawn(scenario, "127.0.0.1:0"))
        .expect("emulator");
    let base = emulator.base_url();
    let task = json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": "Sales Model", "poll": {"min": 0.001, "max": 0.001}});

    let data_dir = tempfile::tempdir().expect("data dir");
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        // Reaped by `wait4` below, which also reads its resource usage.
        #[allow(clippy::zombie_processes)]
        let child = Command::new(env!("CARGO_BIN_EXE_pbiops"))
            .env_clear()
            .env("PBIOPS_TENANT_ID", "contoso.onmicrosoft.com")
            .env("PBIOPS_CLIENT_ID", "7d1c2b1e-0000-4000-8000-0000000000c1")
            .env("PBIOPS_CLIENT_SECRET", "bench-secret")
            .env("PBIOPS_AUTHORITY_URL", &base)
            .env("PBIOPS_POWERBI_URL", format!("{base}/v1.0/myorg"))
            .env("PBIOPS_TASK", task.to_string())
            // The embedded default store (SQLite): a run records its operation, as in production.
            .env("PBIOPS_DATA_DIR", data_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pbiops runs");
        let (status, usage) = wait4(child.id() as libc::pid_t);
        wall.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            status, 0,
            "the refresh must succeed for the numbers to mean anything"
        );
        let secs = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        cpu.push(secs(usage.ru_utime) + secs(usage.ru_stime));
        rss.push(usage.ru_maxrss as f64 / 1024.0);
    }

    println!("one dataset.refresh against the emulator, {RUNS} runs (release build)\n");
    println!("| measure | median | p90 | max | target |");
    println!("|---|---|---|---|---|");
    row("wall time (ms)", &mut wall, "—");
    row("CPU time, user+sys (ms)", &mut cpu, "< 20");
    row("peak RSS (MiB)", &mut rss, "< 15");
}

fn row(name: &str, values: &mut [f64], target: &str) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {target} |",
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

/// Waits for `pid` and returns its exit status and resource usage.
fn wait4(pid: libc::pid_t) -> (i32, libc::rusage) {
    // SAFETY-free alternative does not exist in std: rusage of one child needs wait4.
    let mut status = 0;
    // rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed");
    (libc::WEXITSTATUS(status), usage)
}
