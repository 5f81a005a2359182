//! The demo: the bundled emulator scenario, and a morning of refreshes through the real binary.
//!
//! ```text
//! cargo build --release && cargo run --release --example demo
//! ```
//!
//! It starts `pbiops-emulator` in-process on a free port, runs `pbiops` (the binary built next to
//! this example) once per task, prints the Kestra lines each run writes, then a summary table.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Map, Value, json};

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT: &str = "22b699fd-9835-4700-842f-46f893b34330";
const SECRET: &str = "demo-secret-value";
/// The demo scenario's Power Automate flows: (name, workflow id, signature).
const FLOWS: &[(&str, &str, &str)] = &[
    (
        "NIGHTLY",
        "4c7d9e2f1a3b4c5d8e6f7a8b9c0d1e2f",
        "demo-sig-nightly",
    ),
    (
        "LIMITED",
        "9a8b7c6d5e4f4a3b2c1d0e9f8a7b6c5d",
        "demo-sig-limited",
    ),
];

fn pbiops_binary() -> PathBuf {
    // target/<profile>/examples/demo → target/<profile>/pbiops
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = dir.join(format!("pbiops{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release` first",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

fn tasks() -> Vec<(&'static str, Value)> {
    let poll = json!({"min": 0.5, "max": 2});
    vec![
        (
            "standard refresh",
            json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": "Sales Model", "poll": poll}),
        ),
        (
            "enhanced refresh of two tables",
            json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": "Orders", "poll": poll,
            "refresh": {"type": "Full", "commitMode": "Transactional", "objects": [{"table": "Orders"}, {"table": "Returns", "partition": "2026"}]}}),
        ),
        (
            "a refresh is already running: attach",
            json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": "Inventory", "poll": poll}),
        ),
        (
            "a refresh that fails",
            json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": "Customer Churn", "poll": poll}),
        ),
        (
            "freshness gate",
            json!({"operation": "dataset.status", "workspace": "Sales", "dataset": "Sales Model", "maxAge": "PT1H"}),
        ),
        (
            "an ambiguous name",
            json!({"operation": "dataset.refresh", "workspace": "Finance", "dataset": "Budget"}),
        ),
        (
            "dataflow, then the 3 models reading it",
            json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Sales Staging",
            "then": "downstream", "maxParallel": 3, "poll": poll, "outputFile": "/dev/null"}),
        ),
        (
            "Dataflow Gen2 (Fabric job)",
            json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Sales Gen2", "poll": poll}),
        ),
        (
            "Power Automate, monitored",
            json!({"operation": "flow.trigger", "flow": "nightly", "poll": poll,
            "monitor": {"workspace": "Sales", "dataflow": "Sales Staging"}}),
        ),
        (
            "shared capacity: the day's 8th refresh",
            json!({"operation": "dataflow.refresh", "workspace": "Marketing", "dataflow": "Campaign Feed", "poll": poll}),
        ),
        (
            "Power Automate 202, refresh refused",
            json!({"operation": "flow.trigger", "flow": "limited", "poll": poll,
            "monitor": {"workspace": "Marketing", "dataflow": "Campaign Feed"}}),
        ),
        (
            "a report's model, in another workspace",
            json!({"operation": "report.refresh", "workspace": "Finance", "report": "Sales Overview", "poll": poll}),
        ),
        (
            "the operation log",
            json!({"operation": "history", "outputFile": "/dev/null"}),
        ),
    ]
}

struct Row {
    title: &'static str,
    code: i32,
    outputs: Map<String, Value>,
}

fn main() {
    let bin = pbiops_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let emulator = runtime
        .block_on(pbiops_emulator::spawn(
            pbiops_emulator::Scenario::demo(),
            "127.0.0.1:0",
        ))
        .expect("emulator starts");
    let base = emulator.base_url();
    // The embedded default store (SQLite), in a directory of its own for the demo.
    let data_dir = tempfile::tempdir().expect("data dir");
    println!("pbiops-emulator listening on {base} (bundled demo scenario)\n");

    let mut rows = Vec::new();
    for (title, task) in tasks() {
        println!("── {title}: {task}");
        let mut cmd = Command::new(&bin);
        cmd.env_clear();
        for (name, workflow, sig) in FLOWS {
            let url = format!(
                "{base}/workflows/{workflow}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}"
            );
            cmd.env(format!("PBIOPS_FLOW_{name}_URL"), url);
        }
        let output = cmd
            .env("PBIOPS_TENANT_ID", TENANT)
            .env("PBIOPS_CLIENT_ID", CLIENT)
            .env("PBIOPS_CLIENT_SECRET", SECRET)
            .env("PBIOPS_AUTHORITY_URL", &base)
            .env("PBIOPS_POWERBI_URL", format!("{base}/v1.0/myorg"))
            .env("PBIOPS_FABRIC_URL", format!("{base}/v1"))
            .env("PBIOPS_LOG_FORMAT", "kestra")
            .env("PBIOPS_DATA_DIR", data_dir.path())
            .env("PBIOPS_TASK", task.to_string())
            .output()
            .expect("pbiops runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut outputs = Map::new();
        for line in stdout.lines() {
            println!("   {line}");
            let inner = line
                .strip_prefix("::")
                .and_then(|l| l.strip_suffix("::"))
                .unwrap_or_default();
            if let Ok(Value::Object(mut v)) = serde_json::from_str::<Value>(inner) {
                if let Some(Value::Object(o)) = v.remove("outputs") {
                    outputs.extend(o);
                }
            }
        }
        let code = output.status.code().unwrap_or(-1);
        println!("   exit code {code}\n");
        rows.push(Row {
            title,
            code,
            outputs,
        });
    }

    println!(
        "{:<38} {:>4}  {:<10} {:>9}  request id / error",
        "run", "exit", "status", "duration"
    );
    for row in &rows {
        let text = |k: &str| {
            row.outputs
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let duration = row
            .outputs
            .get("durationSeconds")
            .and_then(Value::as_f64)
            .map(|d| format!("{d:.1}s"))
            .unwrap_or_default();
        let count = row.outputs.get("count").and_then(Value::as_u64);
        let detail = if let Some(n) = count {
            let failed = row
                .outputs
                .get("failed")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            format!(
                "{n} downstream/logged, {failed} failed {}",
                text("requestId")
            )
        } else if row.code == 0 {
            text("requestId")
        } else {
            format!("{} {}", text("errorCode"), text("errorMessage"))
        };
        let detail: String = detail.chars().take(70).collect();
        println!(
            "{:<38} {:>4}  {:<10} {:>9}  {}",
            row.title,
            row.code,
            text("status"),
            duration,
            detail
        );
    }
}
