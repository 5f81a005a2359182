//! Preflight: each failure class refuses before any trigger (the emulator's request log shows
//! none), an inconclusive check only warns, `preflight: false` skips the checks, and a fleet
//! reports a refused item as a failed target while the others run.

use serde_json::{Value, json};

use crate::support::*;
use pbiops_emulator::Emulator;

const CAPACITY: &str = "ca000000-0000-4000-8000-000000000001";
const GATEWAY: &str = "9a000000-0000-4000-8000-000000000001";
const SOURCE: &str = "5d000000-0000-4000-8000-000000000001";

/// The test scenario with Sales on capacity `CAPACITY` in `state`.
fn on_capacity(state: &str, listed: bool) -> Value {
    let mut s = scenario();
    s["workspaces"][0]["capacityId"] = json!(CAPACITY);
    s["capacities"] =
        json!([{"id": CAPACITY, "concurrency": 10, "state": state, "listed": listed}]);
    s
}

/// Sales Model bound to one gateway data source answering as `source` says.
fn with_source(mut s: Value, source: Value) -> Value {
    let mut entry = json!({"datasourceType": "Sql",
        "connectionDetails": {"server": "sql01.contoso.com", "database": "sales"},
        "datasourceId": SOURCE, "gatewayId": GATEWAY});
    if let (Some(e), Some(extra)) = (entry.as_object_mut(), source.as_object()) {
        e.extend(extra.clone());
    }
    s["workspaces"][0]["datasets"][0]["datasources"] = json!([entry]);
    s
}

fn row<'a>(rows: &'a [Value], check: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no {check} row in {rows:?}"))
}

async fn assert_refused(emu: &Emulator, run: &Run, code: i32, error_code: &str) {
    assert_eq!(run.code, code, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(
        out.error_code.as_deref(),
        Some(error_code),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("help") || run.log_text().contains("help"),
        "a help line: {}",
        run.stdout
    );
    for route in ["refresh.post", "dataflow.refresh", "fabric.job.run"] {
        assert!(
            requests_to(emu, route).await.is_empty(),
            "no trigger may be sent ({route})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_capacity_refuses_the_refresh_before_any_trigger() {
    let emu = emulator(on_capacity("Suspended", true)).await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;
    assert_refused(&emu, &run, 1, "PreflightCapacityNotActive").await;
    let rows = run.outputs().preflight.expect("preflight rows");
    assert_eq!(row(&rows, "capacity")["verdict"], "fail");
    assert!(run.log_text().contains("Suspended"), "{}", run.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_source_without_credentials_refuses_the_refresh() {
    let s = with_source(
        on_capacity("Active", true),
        json!({"statusError": "DM_GWPipeline_Gateway_InvalidConnectionCredentials"}),
    );
    let emu = emulator(s).await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;
    assert_refused(&emu, &run, 1, "PreflightDataSourceCredentials").await;
    let rows = run.outputs().preflight.expect("rows");
    assert_eq!(row(&rows, "capacity")["verdict"], "pass");
    let source = row(&rows, "dataSource");
    assert_eq!(source["verdict"], "fail");
    assert!(
        source["subject"]
            .as_str()
            .is_some_and(|s| s.contains("sql01.contoso.com")),
        "{source}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_data_source_in_error_refuses_the_refresh() {
    let s = with_source(
        on_capacity("Active", true),
        json!({"statusError": "DM_GWPipeline_Client_GatewayUnreachable"}),
    );
    let emu = emulator(s).await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;
    assert_refused(&emu, &run, 1, "PreflightGatewayDataSourceError").await;
    assert!(run.log_text().contains("GatewayUnreachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_daily_budget_refuses_with_the_time_the_next_refresh_can_run() {
    let mut s = scenario();
    s["workspaces"][2]["datasets"][0]["history"] = json!(
        (1..=8)
            .map(
                |h| json!({"requestId": format!("e1000000-0000-4000-8000-00000000000{h}"),
            "refreshType": if h % 2 == 0 { "Scheduled" } else { "ViaApi" }, "status": "Completed",
            "startTime": format!("-PT{h}H"), "endTime": format!("-PT{}H50M", h - 1)})
            )
            .collect::<Vec<_>>()
    );
    let emu = emulator(s).await;
    let run = run_task(&emu, refresh_task("Marketing", "Campaigns")).await;
    assert_refused(&emu, &run, 1, "PreflightDailyLimitReached").await;
    let rows = run.outputs().preflight.expect("rows");
    let budget = row(&rows, "dailyBudget");
    let next: jiff::Timestamp = budget["nextRunAt"]
        .as_str()
        .expect("nextRunAt")
        .parse()
        .expect("a timestamp");
    // The oldest of the eight started 8 hours ago: the next can run 16 hours from now.
    let hours = (next - jiff::Timestamp::now()).as_secs_f64() / 3600.0;
    assert!((15.9..16.1).contains(&hours), "{hours}");
    assert_eq!(row(&rows, "capacity")["verdict"], "skip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_not_refreshable_is_refused() {
    let mut s = scenario();
    s["workspaces"][0]["datasets"][0]["isRefreshable"] = json!(false);
    let emu = emulator(s).await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;
    assert_refused(&emu, &run, 1, "PreflightModelNotRefreshable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gen2_dataflow_the_service_refused_for_this_principal_is_not_tried_again() {
    let mut s = scenario();
    s["refuseServicePrincipalsForDataflowJobs"] = json!(true);
    let emu = emulator(s).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut env = env(&emu);
    env.retain(|(k, _)| k != "PBIOPS_ODBC");
    env.push((
        "PBIOPS_ODBC".into(),
        format!(
            "Driver={{SQLite3}};Database={};",
            dir.path().join("ops.db").display()
        ),
    ));
    let task = json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Sales Gen2",
        "poll": {"min": 0.01, "max": 0.05}, "timeout": "PT30S"});
    let first = run(Input::Env(task.clone()), &env).await;
    assert_eq!(first.code, 3, "{}", first.stdout);
    assert_eq!(requests_to(&emu, "fabric.job.run").await.len(), 1);

    let second = run(Input::Env(task.clone()), &env).await;
    assert_eq!(second.code, 3, "{}", second.stdout);
    assert_eq!(
        second.outputs().error_code.as_deref(),
        Some("PreflightPrincipalNotSupported")
    );
    assert!(
        second
            .log_text()
            .contains("Fabric refuses service principals")
    );
    assert_eq!(
        requests_to(&emu, "fabric.job.run").await.len(),
        1,
        "the second run sends no trigger"
    );

    // preflight: false tries again.
    let mut anyway = task;
    anyway["preflight"] = json!(false);
    let third = run(Input::Env(anyway), &env).await;
    assert_eq!(third.code, 3, "{}", third.stdout);
    assert_eq!(requests_to(&emu, "fabric.job.run").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconclusive_check_only_warns_and_the_refresh_runs() {
    let s = with_source(
        on_capacity("Active", false),
        json!({"statusForbidden": true}),
    );
    let emu = emulator(s).await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Completed"));
    let rows = out.preflight.expect("rows");
    assert_eq!(row(&rows, "capacity")["verdict"], "warn");
    assert_eq!(row(&rows, "dataSource")["verdict"], "warn");
    assert_eq!(row(&rows, "refreshable")["verdict"], "pass");
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 1);
    assert!(
        run.logs
            .iter()
            .any(|(level, m)| level == "WARN" && m.contains("preflight capacity")),
        "{}",
        run.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_false_skips_the_checks() {
    let emu = emulator(on_capacity("Suspended", true)).await;
    let mut task = refresh_task("Sales", "Sales Model");
    task["preflight"] = json!(false);
    let run = run_task(&emu, task).await;
    assert!(run.outputs().preflight.is_none());
    assert_eq!(requests_to(&emu, "capacities").await.len(), 0);
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_reads_each_capacity_once_and_reports_a_refused_item_as_failed() {
    let mut s = on_capacity("Suspended", true);
    s["workspaces"][1]["capacityId"] = json!("ca000000-0000-4000-8000-000000000002");
    s["capacities"]
        .as_array_mut()
        .expect("capacities")
        .push(json!({"id": "ca000000-0000-4000-8000-000000000002", "concurrency": 10}));
    let emu = emulator(s).await;
    let task = json!({"operation": "dataset.refresh", "poll": {"min": 0.01, "max": 0.05},
    "timeout": "PT60S", "targets": [
        {"workspace": "Sales", "dataset": "Sales Model"},
        {"workspace": "Sales", "dataset": "Slow Model"},
        {"workspace": "Finance", "dataset": DS_BUDGET_A}
    ]});
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.outputs();
    let targets = out.targets.expect("targets");
    assert_eq!(targets[0]["errorCode"], "PreflightCapacityNotActive");
    assert_eq!(targets[1]["errorCode"], "PreflightCapacityNotActive");
    assert_eq!(targets[2]["status"], "Completed");
    assert_eq!(requests_to(&emu, "capacities").await.len(), 1);
    let posts = requests_to(&emu, "refresh.post").await;
    assert_eq!(posts.len(), 1, "only the model on the active capacity");
    let rows = out.preflight.expect("rows");
    let suspended = rows
        .iter()
        .find(|r| r["check"] == "capacity" && r["verdict"] == "fail")
        .expect("the suspended capacity's row");
    assert_eq!(suspended["items"].as_array().map(Vec::len), Some(2));
    // Failures are logged per item; passes only count in one summary line.
    let log = run.log_text();
    assert_eq!(
        log.matches("preflight capacity of").count(),
        2,
        "one failure line per refused item, no pass line:\n{log}"
    );
    let passed = rows.iter().filter(|r| r["verdict"] == "pass").count();
    let failed = rows.iter().filter(|r| r["verdict"] == "fail").count();
    assert!(
        log.contains(&format!(
            "preflight of 3 item(s): {passed} check(s) passed, 0 warned, {failed} failed"
        )),
        "{log}"
    );
}
