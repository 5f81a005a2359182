//! Dataflows of every kind (Gen1 over REST, Gen2 through Fabric, Power Automate triggers),
//! report refresh, the inventory and the cascade into downstream models.

use serde_json::{Value, json};

use crate::support::*;

fn dataflow_task(workspace: &str, dataflow: &str) -> Value {
    json!({"operation": "dataflow.refresh", "workspace": workspace, "dataflow": dataflow,
           "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"})
}

fn flow_task(flow: &str, monitor: Option<(&str, &str)>) -> Value {
    let mut t = json!({"operation": "flow.trigger", "flow": flow, "body": {"reason": "nightly"}});
    if let Some((w, d)) = monitor {
        t["monitor"] = json!({"workspace": w, "dataflow": d});
        t["poll"] = json!({"min": 0.01, "max": 0.05});
        t["grace"] = json!("PT5S");
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gen1_dataflow_refresh_is_found_in_the_transactions_and_followed() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, dataflow_task("Sales", "Sales Staging")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert_eq!(out.service_status.as_deref(), Some("Success"));
    assert_eq!(
        (out.generation, out.item_kind.as_deref()),
        (Some(1), Some("Dataflow"))
    );
    assert_eq!(out.dataflow_id.as_deref(), Some(DF_STAGING));
    assert_eq!(out.dataflow_name.as_deref(), Some("Sales Staging"));
    assert!(out.request_id.expect("transaction id").contains('@'));
    let posts = requests_to(&emu, "dataflow.refresh").await;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["body"], json!({"notifyOption": "NoNotification"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gen1_refresh_exits_1_and_a_running_one_is_attached_or_skipped() {
    let emu = emulator(scenario()).await;
    let failed = run_task(&emu, dataflow_task("Sales", "Broken Flow")).await;
    assert_eq!(failed.code, 1);
    assert_eq!(failed.outputs().status.as_deref(), Some("Failed"));
    assert_eq!(
        failed.outputs().error_code.as_deref(),
        Some("DataflowRefreshFailed")
    );

    let mut skip = dataflow_task("Sales", "Busy Flow");
    skip["ifRunning"] = json!("skip");
    let skipped = run_task(&emu, skip).await;
    assert_eq!(skipped.code, 0);
    assert_eq!(skipped.outputs().status.as_deref(), Some("Skipped"));

    let attached = run_task(&emu, dataflow_task("Sales", "Busy Flow")).await;
    assert_eq!(attached.code, 0, "{}", attached.stdout);
    assert_eq!(attached.outputs().attached, Some(true));
    assert_eq!(attached.outputs().status.as_deref(), Some("Completed"));
    assert!(
        requests_to(&emu, "dataflow.refresh")
            .await
            .iter()
            .all(|r| r["path"].as_str().is_some_and(|p| !p.contains(DF_BUSY)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen1_throttling_is_ridden_out_and_a_timeout_cancels_the_transaction() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "dataflow.transactions", "status": 429, "retryAfter": 0, "times": 2}),
    )
    .await;
    fault(
        &emu,
        json!({"route": "dataflow.refresh", "status": 429, "retryAfter": 0, "times": 1}),
    )
    .await;
    let ok = run_task(&emu, dataflow_task("Sales", "Sales Staging")).await;
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert_eq!(ok.counter("pbiops.api.throttled", None), Some(3.0));

    let mut slow = dataflow_task("Sales", "Slow Flow");
    slow["timeout"] = json!(0.3);
    slow["onTimeout"] = json!("cancel");
    let run = run_task(&emu, slow).await;
    assert_eq!(run.code, 5);
    assert_eq!(run.outputs().status.as_deref(), Some("Cancelled"));
    let cancels = requests_to(&emu, "dataflow.cancel").await;
    assert_eq!(cancels.len(), 1);
    assert!(
        cancels[0]["path"].as_str().expect("path").contains("%24"),
        "the id is percent-encoded: {}",
        cancels[0]
    );
    let tx = control(&emu, "GET", "transactions", None).await;
    assert!(
        tx.as_array()
            .expect("list")
            .iter()
            .any(|t| t["dataflowId"] == DF_SLOW && t["status"] == "Cancelled"),
        "{tx}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_limit_on_shared_capacity_exits_1_saying_when_the_next_refresh_can_run() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, dataflow_task("Marketing", "Campaign Feed")).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.outputs().error_code.as_deref(),
        Some("DailyDataflowRefreshLimitExceeded")
    );
    assert!(
        run.log_text().contains("the next can run after"),
        "{}",
        run.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataflow_gen2_runs_as_a_fabric_job_with_a_fabric_token() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, dataflow_task("Sales", "Sales Gen2")).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(
        (out.generation, out.item_kind.as_deref()),
        (Some(2), Some("DataflowGen2"))
    );
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert_eq!(requests_to(&emu, "fabric.job.run").await.len(), 1);
    assert!(!requests_to(&emu, "fabric.job.get").await.is_empty());

    let failed = run_task(&emu, dataflow_task("Sales", "Failing Gen2")).await;
    assert_eq!(failed.code, 1);
    assert_eq!(
        failed.outputs().error_code.as_deref(),
        Some("MashupDataAccessError")
    );
    assert_eq!(
        failed.outputs().error_message.as_deref(),
        Some("The source table was not found.")
    );

    let mut slow = dataflow_task("Sales", "Slow Gen2");
    slow["timeout"] = json!(0.3);
    slow["onTimeout"] = json!("cancel");
    let cancelled = run_task(&emu, slow).await;
    assert_eq!(cancelled.code, 5);
    assert_eq!(cancelled.outputs().cancel_requested, Some(true));
    assert_eq!(requests_to(&emu, "fabric.job.cancel").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen2_refused_for_a_service_principal_says_so_with_the_workaround() {
    let mut s = scenario();
    s["refuseServicePrincipalsForDataflowJobs"] = json!(true);
    let emu = emulator(s).await;
    let run = run_task(&emu, dataflow_task("Sales", "Sales Gen2")).await;
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert!(
        run.log_text().contains("Fabric refuses service principals"),
        "{}",
        run.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generation_is_detected_and_a_name_in_both_apis_is_ambiguous() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, dataflow_task("Sales", "Shared Name")).await;
    assert_eq!(run.code, 4);
    let text = run.log_text();
    assert!(
        text.contains(DF_SHARED_NAME) && text.contains(ITEM_SHARED_NAME),
        "{text}"
    );

    let mut gen2 = dataflow_task("Sales", "Shared Name");
    gen2["generation"] = json!(2);
    let run = run_task(&emu, gen2).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().dataflow_id.as_deref(), Some(ITEM_SHARED_NAME));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_trigger_reports_the_dataflow_refresh_it_started() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, flow_task("daily", Some(("Sales", "Sales Staging")))).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert!(out.run_id.is_some());
    assert_eq!(out.flow.as_deref(), Some("daily"));
    let calls = requests_to(&emu, "flow.trigger").await;
    assert_eq!(calls[0]["body"], json!({"reason": "nightly"}));
    assert!(
        calls[0]["query"]
            .as_str()
            .expect("query")
            .contains("sig=REDACTED")
    );

    let fire_and_forget = run_task(&emu, flow_task("daily", None)).await;
    assert_eq!(fire_and_forget.code, 0);
    assert_eq!(
        fire_and_forget.outputs().status.as_deref(),
        Some("Triggered")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_that_answers_202_while_the_refresh_fails_exits_1_with_the_dataflows_error() {
    let emu = emulator(scenario()).await;
    let run = run_task(
        &emu,
        flow_task("limited", Some(("Marketing", "Campaign Feed"))),
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.outputs().error_code.as_deref(),
        Some("DailyDataflowRefreshLimitExceeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signature_exits_3_and_a_deleted_flow_exits_4() {
    let emu = emulator(scenario()).await;
    let mut env = env(&emu);
    let wrong = "CANARYSIGwrongwrongwrongwrong01";
    env.push((
        "PBIOPS_FLOW_DAILY_URL".into(),
        flow_url(&emu.base_url(), FLOW_DAILY, wrong),
    ));
    let run = run(Input::Env(flow_task("daily", None)), &env).await;
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert_eq!(
        run.outputs().error_code.as_deref(),
        Some("DirectApiInvalidAuthorizationSignature")
    );
    assert!(run.log_text().contains("regenerated"));
    assert!(!run.stdout.contains(wrong));

    let off = run_task(&emu, flow_task("off", None)).await;
    assert_eq!(off.code, 4, "{}", off.stdout);
    assert_eq!(
        off.outputs().error_code.as_deref(),
        Some("WorkflowNotFound")
    );

    let unknown = run_task(&emu, flow_task("weekly", None)).await;
    assert_eq!(unknown.code, 2);
    assert!(unknown.log_text().contains("PBIOPS_FLOW_WEEKLY_URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_refresh_refreshes_its_model_even_in_another_workspace() {
    let emu = emulator(scenario()).await;
    let task = |report: &str| json!({"operation": "report.refresh", "workspace": "Sales", "report": report, "poll": {"min": 0.01, "max": 0.05}});
    let run = run_task(&emu, task("Sales Overview")).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().report_id.as_deref(), Some(REPORT_SALES));
    assert_eq!(run.outputs().report_name.as_deref(), Some("Sales Overview"));
    assert_eq!(run.outputs().dataset_id.as_deref(), Some(DS_SALES));

    let cross = run_task(&emu, task("Budget Review")).await;
    assert_eq!(cross.code, 0, "{}", cross.stdout);
    assert_eq!(cross.outputs().workspace_id.as_deref(), Some(WS_FINANCE));
    assert_eq!(cross.outputs().dataset_id.as_deref(), Some(DS_BUDGET_A));

    let paginated = run_task(&emu, task("Invoice Print")).await;
    assert_eq!(paginated.code, 1);
    assert_eq!(
        paginated.outputs().error_code.as_deref(),
        Some("NoSemanticModel")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_lists_everything_with_its_lineage() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, json!({"operation": "inventory"})).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let counts = run.outputs().counts.expect("counts");
    assert_eq!(counts["workspaces"], 3);
    assert_eq!(counts["dataflows"], 6);
    assert_eq!(counts["dataflowsGen2"], 4);
    assert_eq!(counts["reports"], 3);
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(run.dir.join("inventory.json")).expect("file"),
    )
    .expect("json");
    let into_models = doc["lineage"]
        .as_array()
        .expect("lineage")
        .iter()
        .filter(|e| e["fromId"] == DF_STAGING && e["toKind"] == "semanticModel")
        .count();
    assert_eq!(into_models, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_refreshes_the_three_models_of_the_dataflow_in_two_workspaces() {
    let emu = emulator(scenario()).await;
    let mut task = dataflow_task("Sales", "Sales Staging");
    task["then"] = json!("downstream");
    task["maxParallel"] = json!(2);
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 1, "one model fails: {}", run.stdout);
    let out = run.outputs();
    assert_eq!(
        out.status.as_deref(),
        Some("Completed"),
        "the dataflow itself completed"
    );
    assert_eq!((out.count, out.failed), (Some(3), Some(1)));
    let targets = out.targets.expect("targets");
    let failed: Vec<&Value> = targets.iter().filter(|t| t["status"] == "Failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["datasetId"], DS_BROKEN);
    assert!(
        targets
            .iter()
            .any(|t| t["workspaceId"] == WS_FINANCE && t["status"] == "Completed")
    );
    let file: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("cascade.json")).expect("file"))
            .expect("json");
    assert_eq!(file.len(), 3);
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_a_gen1_refresh_ends_once_its_transaction_is_found() {
    let emu = emulator(scenario()).await;
    let mut task = dataflow_task("Sales", "Slow Flow");
    task["wait"] = json!(false);
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Triggered"));
    assert!(out.request_id.expect("the transaction id").contains('@'));
    let tx = control(&emu, "GET", "transactions", None).await;
    assert!(
        tx.as_array()
            .expect("list")
            .iter()
            .any(|t| t["dataflowId"] == DF_SLOW && t["status"] == "InProgress"),
        "still running: {tx}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gen1_refresh_follows_its_own_transaction_not_the_one_that_just_ended() {
    let emu = emulator(scenario()).await;
    let first = run_task(&emu, dataflow_task("Sales", "Sales Staging")).await;
    assert_eq!(first.code, 0, "{}", first.stdout);
    control(
        &emu,
        "PUT",
        &format!("dataflows/{DF_STAGING}/refresh"),
        Some(json!({"polls": 3, "outcome": "Failed"})),
    )
    .await;
    let second = run_task(&emu, dataflow_task("Sales", "Sales Staging")).await;
    assert_eq!(second.code, 1, "{}", second.stdout);
    assert_ne!(second.outputs().request_id, first.outputs().request_id);
    assert_eq!(second.outputs().status.as_deref(), Some("Failed"));
}
