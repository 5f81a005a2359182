//! What the fleet benchmarks share: the emulator's `Fleet` night, the real `pbiops` binary as a
//! child, the emulator's control API, the request log's 429s, and a PostgreSQL store per run.
//! Each benchmark uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Command;

use pbiops_emulator::scenario::{
    DurationSpec, FLEET_CLIENT_ID, FLEET_SECRET, FLEET_TENANT, RateLimit,
};
use pbiops_emulator::{Emulator, Fleet, Scenario};
use serde_json::{Map, Value, json};

/// A single-threaded runtime for the in-process emulator (the benchmark's own process).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// An unsigned environment variable, or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The compressed night of `benches/fleet.rs`: `models` models on `capacities` capacities of
/// `concurrency`, lognormal durations (median 4 s, σ 0.5, 1–30 s), 10 past refreshes each.
pub fn night(models: usize, capacities: usize, concurrency: u32, rate: u32) -> Fleet {
    Fleet {
        models,
        capacities,
        concurrency,
        seed: 20261124,
        duration: DurationSpec::LogNormal {
            median: 4.0,
            sigma: 0.5,
            min: Some(1.0),
            max: Some(30.0),
        },
        history_count: 10,
        time_scale: 1.0,
        rate_limit: Some(RateLimit {
            requests: rate,
            per_seconds: 60.0,
        }),
    }
}

/// The scenario of `fleet`, and one `{"workspace", "dataset"}` target (ids) per model.
pub fn scenario_and_targets(fleet: &Fleet) -> (Scenario, Vec<Value>) {
    let scenario: Scenario = fleet.build().expect("fleet scenario");
    let json = serde_json::to_value(&scenario).expect("scenario json");
    let targets = json["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .flat_map(|w| {
            w["datasets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |d| json!({"workspace": w["id"], "dataset": d["id"]}))
        })
        .collect();
    (scenario, targets)
}

/// Starts the emulator with `scenario` on an ephemeral port.
pub fn emulator(runtime: &tokio::runtime::Runtime, scenario: Scenario) -> Emulator {
    runtime
        .block_on(pbiops_emulator::spawn(scenario, "127.0.0.1:0"))
        .expect("emulator")
}

/// `pbiops` with nothing but the fleet scenario's credentials and the emulator's endpoints;
/// the caller adds the store and the task.
///
/// `FLEET_PROFILER` runs it under a profiler (e.g. `perf record -g -o /tmp/fleet.data`); the CPU
/// and memory read from rusage then include the profiler's.
pub fn pbiops(base: &str) -> Command {
    let profiler = std::env::var("FLEET_PROFILER").unwrap_or_default();
    let mut words = profiler.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(env!("CARGO_BIN_EXE_pbiops"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_pbiops")),
    };
    command
        .env_clear()
        .env("PBIOPS_TENANT_ID", FLEET_TENANT)
        .env("PBIOPS_CLIENT_ID", FLEET_CLIENT_ID)
        .env("PBIOPS_CLIENT_SECRET", FLEET_SECRET)
        .env("PBIOPS_AUTHORITY_URL", base)
        .env("PBIOPS_POWERBI_URL", format!("{base}/v1.0/myorg"));
    command
}

/// The `outputs` of every Kestra line a run printed, merged as Kestra merges them.
pub fn outputs(stdout: &[u8]) -> Map<String, Value> {
    let stdout = String::from_utf8_lossy(stdout);
    let mut outputs = Map::new();
    for line in stdout.lines() {
        if let Some(Value::Object(mut v)) = line
            .strip_prefix("::")
            .and_then(|l| l.strip_suffix("::"))
            .and_then(|l| serde_json::from_str(l).ok())
        {
            if let Some(Value::Object(o)) = v.remove("outputs") {
                outputs.extend(o);
            }
        }
    }
    outputs
}

/// A GET on the emulator's control API, on the benchmark's runtime.
pub fn get_json(runtime: &tokio::runtime::Runtime, url: &str) -> Value {
    runtime.block_on(async {
        let text = reqwest::get(url)
            .await
            .expect("control call")
            .text()
            .await
            .expect("body");
        serde_json::from_str(&text).unwrap_or_default()
    })
}

/// An RFC 3339 time in seconds since the epoch.
pub fn seconds(text: &str) -> Option<f64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

/// The most refreshes the service ran at once on each capacity (the emulator's `peak`).
pub fn peak(runtime: &tokio::runtime::Runtime, base: &str) -> String {
    let caps = get_json(runtime, &format!("{base}/_emulator/capacities"));
    caps.as_array()
        .into_iter()
        .flatten()
        .map(|c| c["peak"].to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refreshes triggered through the API (not the scenario's past ones).
pub fn api_refreshes(refreshes: &Value) -> Vec<&Value> {
    refreshes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["refreshType"] == "ViaApi")
        .collect()
}

/// Per capacity, the most API refreshes the service held at once, queued or running (from each
/// one's submission to its end): what `maxParallelPerCapacity` bounds, since a run gives its
/// slot back only after it has seen its refresh end. Refreshes still going count until `now`.
pub fn in_service_peaks(refreshes: &[&Value], now: f64) -> BTreeMap<String, usize> {
    let mut events: BTreeMap<String, Vec<(f64, i32)>> = BTreeMap::new();
    for r in refreshes {
        let capacity = r["capacityId"].as_str().unwrap_or("shared").to_string();
        let Some(start) = r["startTime"].as_str().and_then(seconds) else {
            continue;
        };
        let end = r["endTime"].as_str().and_then(seconds).unwrap_or(now);
        let list = events.entry(capacity).or_default();
        list.push((start, 1));
        list.push((end, -1));
    }
    events
        .into_iter()
        .map(|(capacity, mut list)| {
            // Ends before starts at the same instant: a slot handed over is not two at once.
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let (mut now, mut most) = (0i32, 0i32);
            for (_, delta) in list {
                now += delta;
                most = most.max(now);
            }
            (capacity, most as usize)
        })
        .collect()
}

/// [`in_service_peaks`] until now, as a list (`3, 5, 5, 4`).
pub fn in_service_text(refreshes: &[&Value]) -> String {
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    in_service_peaks(refreshes, now)
        .values()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Trigger POSTs the service accepted, per model: (most for one model, total).
pub fn triggers_per_model(refreshes: &[&Value]) -> (usize, usize) {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for r in refreshes {
        *per.entry(r["datasetId"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    (per.values().copied().max().unwrap_or(0), per.values().sum())
}

/// Work and bounds of the API refreshes: (total work, longest, first start to last end).
pub fn work(refreshes: &[&Value]) -> (f64, f64, f64) {
    let (mut work, mut longest, mut first, mut last) = (0.0f64, 0.0f64, f64::INFINITY, 0.0f64);
    for r in refreshes {
        let began = r["beganTime"].as_str().and_then(seconds);
        let end = r["endTime"].as_str().and_then(seconds);
        if let (Some(b), Some(e)) = (began, end) {
            work += e - b;
            longest = longest.max(e - b);
            first = first.min(b);
            last = last.max(e);
        }
    }
    (work, longest, last - first)
}

/// The request log's 429s: (how many, how many within 60 s of an earlier one).
pub fn throttled(log: &Value) -> (usize, usize) {
    let times: Vec<f64> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == 429)
        .filter_map(|r| r["at"].as_str().and_then(seconds))
        .collect();
    let repeats = times
        .iter()
        .enumerate()
        .filter(|(i, t)| times[..*i].iter().any(|p| *t - p < 60.0))
        .count();
    (times.len(), repeats)
}

/// Every call the emulator answered, all routes.
pub fn api_calls(stats: &Value) -> u64 {
    stats["routes"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>())
}

/// A schema of its own in the local PostgreSQL (`test`, trust), dropped when this goes away:
/// one fresh store per run, shared by every process of that run.
pub struct PgStore {
    schema: String,
}

const PG: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;Pwd=;";

impl PgStore {
    /// Creates the schema `pbiops_bench_<name>_<pid>`.
    pub fn new(name: &str) -> PgStore {
        let schema = format!("pbiops_bench_{name}_{}", std::process::id());
        pg_exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        pg_exec(&format!("CREATE SCHEMA {schema}"));
        PgStore { schema }
    }

    /// The ODBC connection string (`PBIOPS_ODBC`) of the schema.
    pub fn odbc(&self) -> String {
        format!("{PG}ConnSettings=SET search_path TO {};", self.schema)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        pg_exec(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

fn pg_exec(sql: &str) {
    let env = odbc_api::Environment::new().expect("odbc");
    let conn = env
        .connect_with_connection_string(PG, odbc_api::ConnectionOptions::default())
        .expect("PostgreSQL at 127.0.0.1:5432 (db test, trust) is reachable");
    conn.execute(sql, (), None).expect("sql");
}

/// Where the history reads of a night went, per API refresh: (queued in the service first?,
/// reads while queued, reads while running, reads after the end). The read that finds the end
/// is the one after it; a read before the trigger (planning, single flight) is not counted.
pub fn polls(refreshes: &[&Value], log: &Value) -> Vec<(bool, usize, usize, usize)> {
    let reads: Vec<(f64, &str)> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["route"] == "refresh.history" && r["status"] == 200)
        .filter_map(|r| Some((r["at"].as_str().and_then(seconds)?, r["path"].as_str()?)))
        .collect();
    refreshes
        .iter()
        .filter_map(|r| {
            let dataset = r["datasetId"].as_str()?;
            let start = r["startTime"].as_str().and_then(seconds)?;
            let began = r["beganTime"].as_str().and_then(seconds)?;
            let end = r["endTime"].as_str().and_then(seconds)?;
            let mut counts = (began - start > 0.25, 0, 0, 0);
            for (at, path) in &reads {
                if *at < start || !path.contains(dataset) {
                    continue;
                }
                if *at < began {
                    counts.1 += 1;
                } else if *at < end {
                    counts.2 += 1;
                } else {
                    counts.3 += 1;
                }
            }
            Some(counts)
        })
        .collect()
}

/// Prints [`polls`] as table rows: for refreshes queued first and for the others, how many,
/// and the mean reads while queued, while running and after the end.
pub fn print_polls(refreshes: &[&Value], log: &Value) {
    let all = polls(refreshes, log);
    for queued in [true, false] {
        let group: Vec<_> = all.iter().filter(|p| p.0 == queued).collect();
        let n = group.len().max(1) as f64;
        let mean = |f: fn(&(bool, usize, usize, usize)) -> usize| {
            group.iter().map(|p| f(p)).sum::<usize>() as f64 / n
        };
        println!(
            "| polls per refresh {} ({}): while queued, while running, after the end | {:.2}, {:.2}, {:.2} |",
            if queued {
                "queued in the service first"
            } else {
                "started at once"
            },
            group.len(),
            mean(|p| p.1),
            mean(|p| p.2),
            mean(|p| p.3),
        );
    }
}
