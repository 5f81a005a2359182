//! Test harness: an emulator per test on an ephemeral port, the real `pbiops` binary run against
//! it with a scrubbed environment, and strict decoding of every line it prints.
//!
//! Every run is checked for the canary secret and canary tokens, so any test that leaks a
//! secret fails, whatever it was testing.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use pbiops_emulator::{Emulator, Scenario};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

pub const TENANT: &str = "7d1c2b1e-0000-4000-8000-000000000001";
pub const CLIENT: &str = "7d1c2b1e-0000-4000-8000-0000000000c1";
/// The canary client secret: it must never appear in anything pbiops prints.
pub const SECRET: &str = "CANARY-SECRET-9f8e7d6c5b4a";
pub const SECRET_ID: &str = "7d1c2b1e-0000-4000-8000-0000000005e1";
/// Every token the emulator issues starts with this canary.
pub const TOKEN_PREFIX: &str = "CANARYTOKEN";

pub const WS_SALES: &str = "a0000000-0000-4000-8000-000000000001";
pub const WS_FINANCE: &str = "a0000000-0000-4000-8000-000000000002";
pub const WS_SHARED: &str = "a0000000-0000-4000-8000-000000000003";
pub const DS_SALES: &str = "d0000000-0000-4000-8000-000000000001";
pub const DS_BROKEN: &str = "d0000000-0000-4000-8000-000000000002";
pub const DS_BUSY: &str = "d0000000-0000-4000-8000-000000000003";
pub const DS_SLOW: &str = "d0000000-0000-4000-8000-000000000004";
pub const DS_BUDGET_A: &str = "d0000000-0000-4000-8000-000000000005";
pub const DS_BUDGET_B: &str = "d0000000-0000-4000-8000-000000000006";
pub const DS_SHARED: &str = "d0000000-0000-4000-8000-000000000007";
pub const RUNNING_ID: &str = "e0000000-0000-4000-8000-000000000001";
pub const DF_STAGING: &str = "f0000000-0000-4000-8000-000000000001";
pub const DF_BROKEN: &str = "f0000000-0000-4000-8000-000000000002";
pub const DF_SLOW: &str = "f0000000-0000-4000-8000-000000000003";
pub const DF_BUSY: &str = "f0000000-0000-4000-8000-000000000004";
pub const DF_SHARED_NAME: &str = "f0000000-0000-4000-8000-000000000005";
pub const DF_LIMITED: &str = "f0000000-0000-4000-8000-000000000006";
pub const ITEM_GEN2: &str = "b0000000-0000-4000-8000-000000000001";
pub const ITEM_GEN2_FAIL: &str = "b0000000-0000-4000-8000-000000000002";
pub const ITEM_GEN2_SLOW: &str = "b0000000-0000-4000-8000-000000000003";
pub const ITEM_SHARED_NAME: &str = "b0000000-0000-4000-8000-000000000004";
pub const REPORT_SALES: &str = "c0000000-0000-4000-8000-000000000001";
pub const REPORT_BUDGET: &str = "c0000000-0000-4000-8000-000000000002";
pub const REPORT_PAGINATED: &str = "c0000000-0000-4000-8000-000000000003";
pub const FLOW_DAILY: &str = "0a000000000000000000000000000001";
pub const FLOW_LIMITED: &str = "0a000000000000000000000000000002";
pub const FLOW_OFF: &str = "0a000000000000000000000000000003";
/// The canary signature of every flow URL: it must never be printed.
pub const SIG: &str = "CANARYSIG0vU3aXq9tL2mN8pR4sW6yZ1cE5gH7jK";

/// The scenario every test starts from.
pub fn scenario() -> Value {
    json!({
        "tokenPrefix": TOKEN_PREFIX,
        "tenants": [{"id": TENANT, "domain": "contoso.onmicrosoft.com",
                     "clients": [{"clientId": CLIENT, "secret": SECRET, "secretId": SECRET_ID, "displayName": "pbiops-test"}]}],
        "workspaces": [
            {"id": WS_SALES, "name": "Sales", "dedicatedCapacity": true,
             "dataflows": [
                {"id": DF_STAGING, "name": "Sales Staging", "refresh": {"polls": 2, "outcome": "Success"}},
                {"id": DF_BROKEN, "name": "Broken Flow", "refresh": {"polls": 1, "outcome": "Failed"}},
                {"id": DF_SLOW, "name": "Slow Flow", "refresh": {}},
                {"id": DF_BUSY, "name": "Busy Flow", "refresh": {"polls": 1, "outcome": "Success"},
                 "transactions": [{"status": "InProgress", "startTime": "-PT2M", "polls": 2, "outcome": "Success"}]},
                {"id": DF_SHARED_NAME, "name": "Shared Name", "refresh": {"polls": 1, "outcome": "Success"}}
             ],
             "items": [
                {"id": ITEM_GEN2, "displayName": "Sales Gen2", "type": "Dataflow", "refresh": {"polls": 2, "retryAfterSeconds": 0}},
                {"id": ITEM_GEN2_FAIL, "displayName": "Failing Gen2", "type": "Dataflow", "refresh": {"polls": 1, "outcome": "Failed", "retryAfterSeconds": 0,
                    "failureReason": {"errorCode": "MashupDataAccessError", "message": "The source table was not found."}}},
                {"id": ITEM_GEN2_SLOW, "displayName": "Slow Gen2", "type": "Dataflow", "refresh": {"retryAfterSeconds": 0}},
                {"id": ITEM_SHARED_NAME, "displayName": "Shared Name", "type": "Dataflow", "refresh": {"polls": 1, "retryAfterSeconds": 0}}
             ],
             "reports": [
                {"id": REPORT_SALES, "name": "Sales Overview", "datasetId": DS_SALES},
                {"id": REPORT_BUDGET, "name": "Budget Review", "datasetId": DS_BUDGET_A, "datasetWorkspaceId": WS_FINANCE},
                {"id": REPORT_PAGINATED, "name": "Invoice Print", "reportType": "PaginatedReport"}
             ],
             "datasets": [
                {"id": DS_SALES, "name": "Sales Model", "refresh": {"polls": 2},
                 "upstreamDataflows": [{"dataflowId": DF_STAGING, "workspaceId": WS_SALES}],
                 "history": [{"requestId": "e0000000-0000-4000-8000-0000000000a1", "refreshType": "Scheduled", "status": "Completed",
                              "startTime": "-PT1H", "endTime": "-PT50M"}]},
                {"id": DS_BROKEN, "name": "Broken Model", "upstreamDataflows": [{"dataflowId": DF_STAGING, "workspaceId": WS_SALES}],
                 "refresh": {"polls": 1, "outcome": "Failed",
                    "error": {"errorCode": "ModelRefreshFailed_CredentialsNotSpecified", "errorDescription": "The data source credentials are missing."}}},
                {"id": DS_BUSY, "name": "Busy Model", "refresh": {"polls": 1},
                 "history": [{"requestId": RUNNING_ID, "refreshType": "ViaApi", "status": "Unknown", "startTime": "-PT5M", "polls": 2}]},
                {"id": DS_SLOW, "name": "Slow Model", "refresh": {}}
            ]},
            {"id": WS_FINANCE, "name": "Finance", "dedicatedCapacity": true, "datasets": [
                {"id": DS_BUDGET_A, "name": "Budget", "refresh": {"polls": 1},
                 "upstreamDataflows": [{"dataflowId": DF_STAGING, "workspaceId": WS_SALES}]},
                {"id": DS_BUDGET_B, "name": "budget", "refresh": {"polls": 1}}
            ]},
            {"id": WS_SHARED, "name": "Marketing", "dedicatedCapacity": false, "datasets": [
                {"id": DS_SHARED, "name": "Campaigns", "refresh": {"polls": 1}}
             ],
             "dataflows": [
                {"id": DF_LIMITED, "name": "Campaign Feed", "refresh": {"polls": 1, "outcome": "Success"},
                 "transactions": (1..=8).map(|h| json!({"status": "Success", "startTime": format!("-PT{h}H"), "endTime": format!("-PT{}H50M", h - 1)})).collect::<Vec<_>>()}
             ]}
        ],
        "flows": [
            {"workflowId": FLOW_DAILY, "sig": SIG, "action": {"dataflow": {"workspaceId": WS_SALES, "dataflowId": DF_STAGING}}},
            {"workflowId": FLOW_LIMITED, "sig": SIG, "action": {"failWithDailyLimit": {"workspaceId": WS_SHARED, "dataflowId": DF_LIMITED}}},
            {"workflowId": FLOW_OFF, "sig": SIG, "enabled": false}
        ]
    })
}

/// Starts an emulator with `scenario` on an ephemeral port.
pub async fn emulator(scenario: Value) -> Emulator {
    let scenario = Scenario::from_json(&scenario.to_string()).expect("valid scenario");
    pbiops_emulator::spawn(scenario, "127.0.0.1:0")
        .await
        .expect("emulator starts")
}

/// The environment pointing the default profile at `emu`.
pub fn env(emu: &Emulator) -> Vec<(String, String)> {
    let base = emu.base_url();
    [
        ("PBIOPS_TENANT_ID", TENANT.to_string()),
        ("PBIOPS_CLIENT_ID", CLIENT.to_string()),
        ("PBIOPS_CLIENT_SECRET", SECRET.to_string()),
        ("PBIOPS_AUTHORITY_URL", base.clone()),
        ("PBIOPS_POWERBI_URL", format!("{base}/v1.0/myorg")),
        ("PBIOPS_HTTP_RETRIES", "4".to_string()),
        ("PBIOPS_ODBC", "none".to_string()),
        ("PBIOPS_FABRIC_URL", format!("{base}/v1")),
        ("PBIOPS_FLOW_DAILY_URL", flow_url(&base, FLOW_DAILY, SIG)),
        (
            "PBIOPS_FLOW_LIMITED_URL",
            flow_url(&base, FLOW_LIMITED, SIG),
        ),
        ("PBIOPS_FLOW_OFF_URL", flow_url(&base, FLOW_OFF, SIG)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A Power Automate trigger URL on the emulator.
pub fn flow_url(base: &str, workflow: &str, sig: &str) -> String {
    format!(
        "{base}/workflows/{workflow}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}"
    )
}

/// A refresh task for `dataset` in `workspace` with tiny poll bounds.
pub fn refresh_task(workspace: &str, dataset: &str) -> Value {
    json!({"operation": "dataset.refresh", "workspace": workspace, "dataset": dataset,
           "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"})
}

/// What one run printed, decoded.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    /// The run's working directory (files it wrote, e.g. `inventory.json`).
    pub dir: std::path::PathBuf,
    pub stdout: String,
    pub stderr: String,
    /// Every outputs line, in order.
    pub output_lines: Vec<Map<String, Value>>,
    /// Every log line: (level, message).
    pub logs: Vec<(String, String)>,
    /// Every metric.
    pub metrics: Vec<Metric>,
}

impl Run {
    /// The outputs merged as Kestra merges them (later keys win), decoded strictly.
    pub fn outputs(&self) -> Outputs {
        let mut merged = Map::new();
        for line in &self.output_lines {
            merged.extend(line.clone());
        }
        serde_json::from_value(Value::Object(merged)).expect("outputs match the contract exactly")
    }

    /// All log messages, joined.
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|(l, m)| format!("{l} {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The value of a counter metric with the given tag, if any.
    pub fn counter(&self, name: &str, tag: Option<(&str, &str)>) -> Option<f64> {
        self.metrics
            .iter()
            .filter(|m| m.name == name && m.kind == "counter")
            .find(|m| tag.is_none_or(|(k, v)| m.tags.get(k).map(String::as_str) == Some(v)))
            .map(|m| m.value)
    }
}

/// The output contract, as the README documents it. Unknown keys fail the decoding.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outputs {
    pub operation: Option<String>,
    pub status: Option<String>,
    pub service_status: Option<String>,
    pub profile: Option<String>,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub item_kind: Option<String>,
    pub dataset_id: Option<String>,
    pub dataset_name: Option<String>,
    pub request_id: Option<String>,
    pub refresh_type: Option<String>,
    pub attached: Option<bool>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub duration_seconds: Option<f64>,
    pub wait_seconds: Option<f64>,
    pub queued_seconds: Option<f64>,
    pub capacity_wait_seconds: Option<f64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub objects: Option<Vec<ObjectStatus>>,
    pub cancel_requested: Option<bool>,
    pub expected_seconds: Option<f64>,
    pub overran: Option<bool>,
    pub last_success_time: Option<String>,
    pub age_seconds: Option<f64>,
    pub fresh: Option<bool>,
    pub resource: Option<String>,
    pub expires_on: Option<String>,
    pub token_source: Option<String>,
    pub tokens: Option<Vec<Value>>,
    pub profiles: Option<Vec<Value>>,
    pub renewed: Option<usize>,
    pub checked: Option<usize>,
    pub failed: Option<usize>,
    pub count: Option<usize>,
    pub by_status: Option<BTreeMap<String, usize>>,
    pub file: Option<String>,
    pub generation: Option<u8>,
    pub dataflow_id: Option<String>,
    pub dataflow_name: Option<String>,
    pub report_id: Option<String>,
    pub report_name: Option<String>,
    pub flow: Option<String>,
    pub run_id: Option<String>,
    pub targets: Option<Vec<Value>>,
    pub counts: Option<BTreeMap<String, usize>>,
    pub operation_id: Option<i64>,
    pub makespan_seconds: Option<f64>,
    pub capacity_hold_seconds: Option<BTreeMap<String, f64>>,
    pub preflight: Option<Vec<Value>>,
    pub ready: Option<bool>,
    pub alert_file: Option<String>,
    pub timeline_file: Option<String>,
    pub longest_seconds: Option<f64>,
    pub overruns: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStatus {
    pub table: Option<String>,
    pub partition: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: f64,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLine {
    level: String,
    message: String,
}

/// How to hand the task to the binary.
pub enum Input {
    /// `PBIOPS_TASK`.
    Env(Value),
    /// A JSON text on stdin.
    Stdin(String),
    /// Command-line arguments.
    Args(Vec<&'static str>),
    /// A stdin pipe that nobody writes or closes.
    IdleStdin,
}

/// Runs the real binary with exactly `env` (nothing inherited) and decodes its output.
pub async fn run(input: Input, env: &[(String, String)]) -> Run {
    let dir = tempfile::tempdir().expect("working dir").keep();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pbiops"));
    cmd.current_dir(&dir);
    cmd.env_clear()
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut stdin_text = None;
    match input {
        Input::Env(task) => {
            cmd.env("PBIOPS_TASK", task.to_string())
                .stdin(Stdio::null());
        }
        Input::Stdin(text) => {
            cmd.stdin(Stdio::piped());
            stdin_text = Some(text);
        }
        Input::Args(args) => {
            cmd.args(args).stdin(Stdio::null());
        }
        Input::IdleStdin => {
            cmd.stdin(Stdio::piped());
        }
    }
    let mut child = cmd.spawn().expect("pbiops starts");
    // Keep an idle pipe open (and unwritten) for the whole run.
    let _idle = match stdin_text {
        Some(text) => {
            let mut stdin = child.stdin.take().expect("stdin");
            // The binary may exit before reading (e.g. on bad settings): a broken pipe is fine.
            let _ = stdin.write_all(text.as_bytes()).await;
            drop(stdin);
            None
        }
        None => child.stdin.take(),
    };
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("pbiops finishes")
        .expect("pbiops output");
    let mut run = decode(
        output.status.code().unwrap_or(-1),
        output.stdout,
        output.stderr,
    );
    run.dir = dir;
    run
}

/// Starts the binary on `task` with exactly `env`, its stdout piped (and not read yet).
pub fn spawn(env: &[(String, String)], task: &Value) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pbiops"))
        .env_clear()
        .envs(env.iter().cloned())
        .env("PBIOPS_TASK", task.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("pbiops starts")
}

/// Runs a task given as `PBIOPS_TASK` against `emu`.
pub async fn run_task(emu: &Emulator, task: Value) -> Run {
    run(Input::Env(task), &env(emu)).await
}

/// Decodes what a run printed, checking every line against Kestra's protocol and for leaks.
pub fn decode(code: i32, stdout: Vec<u8>, stderr: Vec<u8>) -> Run {
    let stdout = String::from_utf8(stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(stderr).expect("stderr is UTF-8");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SECRET), "the client secret leaked:\n{text}");
        assert!(!text.contains(TOKEN_PREFIX), "a token leaked:\n{text}");
        assert!(!text.contains(SIG), "a trigger signature leaked:\n{text}");
    }
    let mut run = Run {
        code,
        dir: std::path::PathBuf::new(),
        stdout: stdout.clone(),
        stderr,
        output_lines: vec![],
        logs: vec![],
        metrics: vec![],
    };
    for line in stdout.lines() {
        let inner = line
            .strip_prefix("::")
            .and_then(|l| l.strip_suffix("::"))
            .unwrap_or_else(|| panic!("not a Kestra line: {line:?}"));
        assert!(
            !line.contains(['\u{2028}', '\u{2029}', '\u{85}']),
            "raw line separator in {line:?}"
        );
        let value: Map<String, Value> =
            serde_json::from_str(inner).unwrap_or_else(|e| panic!("invalid JSON in {line:?}: {e}"));
        assert_eq!(value.len(), 1, "one kind per line: {line}");
        let (kind, body) = value.into_iter().next().expect("one key");
        match kind.as_str() {
            "outputs" => run
                .output_lines
                .push(serde_json::from_value(body).expect("outputs object")),
            "logs" => {
                let logs: Vec<LogLine> = serde_json::from_value(body).expect("logs array");
                for log in logs {
                    assert!(
                        ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&log.level.as_str()),
                        "level {}",
                        log.level
                    );
                    run.logs.push((log.level, log.message));
                }
            }
            "metrics" => {
                let metrics: Vec<Metric> = serde_json::from_value(body).expect("metrics array");
                for m in &metrics {
                    assert!(
                        m.kind == "counter" || m.kind == "timer",
                        "metric type {}",
                        m.kind
                    );
                    assert!(m.name.starts_with("pbiops."), "metric name {}", m.name);
                }
                run.metrics.extend(metrics);
            }
            other => panic!("unexpected key {other} in {line}"),
        }
    }
    run
}

/// Calls the emulator's control API.
pub async fn control(emu: &Emulator, method: &str, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let url = format!("{}/_emulator/{path}", emu.base_url());
    let req = match method {
        "GET" => client.get(&url),
        "PUT" => client.put(&url),
        "DELETE" => client.delete(&url),
        _ => client.post(&url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.expect("control call");
    assert!(
        resp.status().is_success(),
        "control {path}: {}",
        resp.status()
    );
    let text = resp.text().await.expect("control body");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The emulator's request log, control calls excluded.
pub async fn requests(emu: &Emulator) -> Vec<Value> {
    match control(emu, "GET", "requests", None).await {
        Value::Array(items) => items,
        other => panic!("request log: {other}"),
    }
}

/// Requests to `route` in the log.
pub async fn requests_to(emu: &Emulator, route: &str) -> Vec<Value> {
    requests(emu)
        .await
        .into_iter()
        .filter(|r| r["route"] == route)
        .collect()
}

/// The emulator's refreshes of `dataset`.
pub async fn refreshes_of(emu: &Emulator, dataset: &str) -> Vec<Value> {
    match control(emu, "GET", "refreshes", None).await {
        Value::Array(items) => items
            .into_iter()
            .filter(|r| r["datasetId"] == dataset)
            .collect(),
        other => panic!("refreshes: {other}"),
    }
}

/// Adds a fault.
pub async fn fault(emu: &Emulator, fault: Value) {
    control(emu, "POST", "faults", Some(fault)).await;
}

/// Waits (event-driven, bounded) until the request log satisfies `pred`.
pub async fn until_requests(emu: &Emulator, what: &str, pred: impl Fn(&[Value]) -> bool) {
    for _ in 0..2000 {
        if pred(&requests(emu).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

/// The environment with a SQLite store in `dir`, as one Kestra task run (`execution`) sees it.
pub fn kestra_store_env(
    emu: &Emulator,
    dir: &std::path::Path,
    execution: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env(emu)
        .into_iter()
        .filter(|(k, _)| k != "PBIOPS_ODBC")
        .collect();
    env.push((
        "PBIOPS_ODBC".into(),
        format!(
            "Driver={{SQLite3}};Database={};",
            dir.join("pbiops.db").display()
        ),
    ));
    env.push(("KESTRA_EXECUTION_ID".into(), execution.into()));
    env.push(("KESTRA_TASKRUN_ID".into(), format!("{execution}-task")));
    env
}

/// Ends the newest refresh of `dataset` (one that was not seeded) with `outcome`.
pub async fn complete_refresh(emu: &Emulator, dataset: &str, outcome: &str) -> String {
    let id = refreshes_of(emu, dataset)
        .await
        .iter()
        .rev()
        .filter_map(|r| r["requestId"].as_str())
        .find(|id| !id.starts_with("e0000000"))
        .expect("a refresh to complete")
        .to_string();
    control(
        emu,
        "POST",
        &format!("refreshes/{id}/complete"),
        Some(json!({"outcome": outcome})),
    )
    .await;
    id
}

/// Ends the running transaction of Gen1 dataflow `dataflow` with `outcome`; returns its id.
pub async fn complete_transaction(emu: &Emulator, dataflow: &str, outcome: &str) -> String {
    let tx = control(emu, "GET", "transactions", None).await;
    let id = tx
        .as_array()
        .expect("transactions")
        .iter()
        .rev()
        .find(|t| t["dataflowId"] == dataflow)
        .and_then(|t| t["id"].as_str())
        .expect("a transaction to complete")
        .to_string();
    let path = id
        .replace('@', "%40")
        .replace('$', "%24")
        .replace(':', "%3A");
    control(
        emu,
        "POST",
        &format!("transactions/{path}/complete"),
        Some(json!({"outcome": outcome})),
    )
    .await;
    id
}

/// Ends the job instance of Fabric item `item` with `outcome`; returns its id.
pub async fn complete_job(emu: &Emulator, item: &str, outcome: &str) -> String {
    let jobs = control(emu, "GET", "jobs", None).await;
    let id = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .rev()
        .find(|j| j["itemId"] == item)
        .and_then(|j| j["id"].as_str())
        .expect("a job to complete")
        .to_string();
    control(
        emu,
        "POST",
        &format!("jobs/{id}/complete"),
        Some(json!({"outcome": outcome})),
    )
    .await;
    id
}
