//! The one refresh engine: mixed fleets, dependency-ordered cascades across workspaces, skipped
//! dependents, cycles refused before any request, and exactly one trigger per item when a Kestra
//! retry follows a killed worker — for every kind of item.

use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::*;

const WS_LAKE: &str = "a0000000-0000-4000-8000-0000000000a1";
const WS_REPORTING: &str = "a0000000-0000-4000-8000-0000000000a2";
const DF_RAW: &str = "f0000000-0000-4000-8000-0000000000a1";
const DF_CURATED: &str = "f0000000-0000-4000-8000-0000000000a2";
const DF_SIDE: &str = "f0000000-0000-4000-8000-0000000000a3";
const DS_M1: &str = "d0000000-0000-4000-8000-0000000000a1";
const DS_M2: &str = "d0000000-0000-4000-8000-0000000000a2";
const DS_M3: &str = "d0000000-0000-4000-8000-0000000000a3";
const ITEM_LAKE_GEN2: &str = "b0000000-0000-4000-8000-0000000000a1";

/// The test scenario plus a lake: Raw (Gen1) ← Curated (Gen1, links to Raw) ← M1 (reads
/// Curated) and M2 (reads Raw and Curated) in another workspace; `curated` sets how Curated ends.
fn lake(curated: &str) -> Value {
    let mut s = scenario();
    let workspaces = s["workspaces"].as_array_mut().expect("workspaces");
    workspaces.push(json!({
        "id": WS_LAKE, "name": "Lake", "dedicatedCapacity": true,
        "dataflows": [
            {"id": DF_RAW, "name": "Raw", "refresh": {"polls": 2, "outcome": "Success"}},
            {"id": DF_CURATED, "name": "Curated", "refresh": {"polls": 2, "outcome": curated},
             "upstreamDataflows": [{"dataflowId": DF_RAW, "workspaceId": WS_LAKE}]},
            {"id": DF_SIDE, "name": "Side", "refresh": {"polls": 1, "outcome": "Success"}}
        ],
        "items": [
            {"id": ITEM_LAKE_GEN2, "displayName": "Lake Gen2", "type": "Dataflow", "refresh": {"polls": 1, "retryAfterSeconds": 0}}
        ]
    }));
    workspaces.push(json!({
        "id": WS_REPORTING, "name": "Reporting", "dedicatedCapacity": true,
        "datasets": [
            {"id": DS_M1, "name": "M1", "refresh": {"polls": 1},
             "upstreamDataflows": [{"dataflowId": DF_CURATED, "workspaceId": WS_LAKE}]},
            {"id": DS_M2, "name": "M2", "refresh": {"polls": 1},
             "upstreamDataflows": [{"dataflowId": DF_RAW, "workspaceId": WS_LAKE},
                                   {"dataflowId": DF_CURATED, "workspaceId": WS_LAKE}]},
            {"id": DS_M3, "name": "M3", "refresh": {"polls": 1}}
        ]
    }));
    s
}

fn cascade_task() -> Value {
    json!({"operation": "dataflow.refresh", "workspace": "Lake", "dataflow": "Raw",
           "then": "downstream", "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"})
}

/// Index in the log of the last request whose path contains `id` on `route`.
fn last(log: &[Value], route: &str, id: &str) -> usize {
    log.iter()
        .rposition(|r| r["route"] == route && r["path"].as_str().is_some_and(|p| p.contains(id)))
        .unwrap_or_else(|| panic!("no {route} request for {id}"))
}

/// Index in the log of the first request whose path contains `id` on `route`.
fn first(log: &[Value], route: &str, id: &str) -> usize {
    log.iter()
        .position(|r| r["route"] == route && r["path"].as_str().is_some_and(|p| p.contains(id)))
        .unwrap_or_else(|| panic!("no {route} request for {id}"))
}

fn posts_for(log: &[Value], route: &str, id: &str) -> usize {
    log.iter()
        .filter(|r| r["route"] == route && r["path"].as_str().is_some_and(|p| p.contains(id)))
        .count()
}

fn target<'a>(targets: &'a [Value], id: &str) -> &'a Value {
    targets
        .iter()
        .find(|t| t["datasetId"] == id || t["dataflowId"] == id)
        .unwrap_or_else(|| panic!("no target {id} in {targets:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_follows_lineage_across_workspaces_each_item_after_all_its_upstream_items() {
    let emu = emulator(lake("Success")).await;
    let run = run_task(&emu, cascade_task()).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.dataflow_id.as_deref(), Some(DF_RAW));
    assert_eq!(out.status.as_deref(), Some("Completed"));
    let targets = out.targets.expect("targets");
    assert_eq!(targets.len(), 3, "Curated, M1 and M2: {targets:?}");
    for id in [DF_CURATED, DS_M1, DS_M2] {
        assert_eq!(target(&targets, id)["status"], "Completed");
    }
    assert_eq!(
        target(&targets, DS_M2)["dependsOn"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let log = requests(&emu).await;
    // Curated starts only once Raw has ended (Raw's transactions are not read after its end).
    assert!(
        last(&log, "dataflow.transactions", DF_RAW) < first(&log, "dataflow.refresh", DF_CURATED)
    );
    // M2 reads Raw and Curated: it starts only once Curated has ended; M1 likewise.
    let curated_end = last(&log, "dataflow.transactions", DF_CURATED);
    assert!(curated_end < first(&log, "refresh.post", DS_M2));
    assert!(curated_end < first(&log, "refresh.post", DS_M1));
    // Exactly one trigger per item; nothing outside the lineage.
    for (route, id) in [
        ("dataflow.refresh", DF_RAW),
        ("dataflow.refresh", DF_CURATED),
        ("refresh.post", DS_M1),
        ("refresh.post", DS_M2),
    ] {
        assert_eq!(posts_for(&log, route, id), 1, "{route} {id}");
    }
    assert_eq!(posts_for(&log, "refresh.post", DS_M3), 0);
    assert_eq!(posts_for(&log, "dataflow.refresh", DF_SIDE), 0);
    let file: Vec<Value> =
        serde_json::from_slice(&std::fs::read(run.dir.join("cascade.json")).expect("cascade.json"))
            .expect("json");
    assert_eq!(file.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_skips_what_depends_on_it_and_the_summary_says_why() {
    let emu = emulator(lake("Failed")).await;
    let run = run_task(&emu, cascade_task()).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(
        out.status.as_deref(),
        Some("Completed"),
        "Raw itself completed"
    );
    assert_eq!(out.failed, Some(1));
    let targets = out.targets.expect("targets");
    assert_eq!(target(&targets, DF_CURATED)["status"], "Failed");
    for id in [DS_M1, DS_M2] {
        let t = target(&targets, id);
        assert_eq!(t["status"], "Skipped", "{t}");
        assert_eq!(t["errorCode"], "UpstreamNotCompleted");
        let why = t["errorMessage"].as_str().expect("message");
        assert!(why.contains("Curated") && why.contains("Failed"), "{why}");
    }
    let log = requests(&emu).await;
    assert_eq!(posts_for(&log, "refresh.post", DS_M1), 0);
    assert_eq!(posts_for(&log, "refresh.post", DS_M2), 0);
    assert_eq!(out.by_status.expect("byStatus").get("Skipped"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_root_skips_the_whole_cascade() {
    let emu = emulator(scenario()).await;
    let mut task = cascade_task();
    task["workspace"] = json!("Sales");
    task["dataflow"] = json!("Broken Flow");
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.outputs().status.as_deref(), Some("Failed"));
    assert!(requests_to(&emu, "refresh.post").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_of_gen1_gen2_and_models_runs_each_once_in_dependency_order() {
    let emu = emulator(lake("Success")).await;
    let task = json!({"operation": "dataset.refresh", "poll": {"min": 0.01, "max": 0.05},
    "grace": "PT5S", "timeout": "PT60S", "maxParallel": 3,
    "targets": [
        {"id": "raw", "workspace": "Lake", "dataflow": "Raw", "generation": 1},
        {"id": "side", "workspace": "Lake", "dataflow": "Side"},
        {"id": "gen2", "workspace": "Lake", "dataflow": "Lake Gen2", "executeOption": "ApplyChangesIfNeeded"},
        {"workspace": "Reporting", "dataset": "M1", "dependsOn": ["raw", "gen2"]},
        {"workspace": "Reporting", "dataset": "M3", "refresh": {"type": "Full"}},
        {"workspace": "Sales", "dataset": "Sales Model", "dependsOn": ["side"]}
    ]});
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!((out.count, out.failed), (Some(6), Some(0)));
    let targets = out.targets.expect("targets");
    let kinds: Vec<&str> = targets
        .iter()
        .filter_map(|t| t["itemKind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "Dataflow",
            "Dataflow",
            "DataflowGen2",
            "SemanticModel",
            "SemanticModel",
            "SemanticModel"
        ]
    );
    assert!(
        targets.iter().all(|t| t["status"] == "Completed"),
        "{targets:?}"
    );
    let log = requests(&emu).await;
    for (route, id) in [
        ("dataflow.refresh", DF_RAW),
        ("dataflow.refresh", DF_SIDE),
        ("fabric.job.run", ITEM_LAKE_GEN2),
        ("refresh.post", DS_M1),
        ("refresh.post", DS_M3),
        ("refresh.post", DS_SALES),
    ] {
        assert_eq!(posts_for(&log, route, id), 1, "{route} {id}");
    }
    let m1 = first(&log, "refresh.post", DS_M1);
    assert!(last(&log, "dataflow.transactions", DF_RAW) < m1);
    assert!(last(&log, "fabric.job.get", ITEM_LAKE_GEN2) < m1);
    assert!(last(&log, "dataflow.transactions", DF_SIDE) < first(&log, "refresh.post", DS_SALES));
    // One resolution pass: one workspace list for the whole fleet.
    assert_eq!(log.iter().filter(|r| r["route"] == "groups").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_a_dependency_cycle_is_refused_before_any_request() {
    let emu = emulator(lake("Success")).await;
    let task = json!({"operation": "dataset.refresh", "targets": [
        {"id": "a", "workspace": "Lake", "dataflow": "Raw", "dependsOn": ["c"]},
        {"id": "b", "workspace": "Lake", "dataflow": "Curated", "dependsOn": ["a"]},
        {"id": "c", "workspace": "Reporting", "dataset": "M1", "dependsOn": ["b"]}
    ]});
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    let text = run.log_text();
    assert!(text.contains("cycle") && text.contains('→'), "{text}");
    assert!(requests(&emu).await.is_empty(), "nothing was sent");
}

/// Runs `task`, kills it (as a dead worker stops) once `started` holds of the request log, then
/// reruns it as Kestra's retry of the same task run and lets `finish` end what is running.
async fn kill_and_rerun(
    emu: &pbiops_emulator::Emulator,
    task: Value,
    started: impl Fn(&[Value]) -> bool,
    finish: impl AsyncFnOnce(),
) -> Run {
    let dir = tempfile::tempdir().expect("dir");
    let env = kestra_store_env(emu, dir.path(), "exec-kill");
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_pbiops"))
        .env_clear()
        .envs(env.iter().cloned())
        .env("PBIOPS_TASK", task.to_string())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("first run");
    until_requests(emu, "the first run to follow its refresh", started).await;
    first.kill().await.expect("kill -9");
    let polls_before = requests(emu).await.len();
    let rerun = {
        let (env, task) = (env.clone(), task.clone());
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    until_requests(emu, "the rerun to look at the service", |log| {
        log.len() > polls_before + 3
    })
    .await;
    finish().await;
    let rerun = rerun.await.expect("rerun");
    drop(dir);
    rerun
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gen1_refresh_is_reattached_by_the_retry_with_one_trigger() {
    let emu = emulator(scenario()).await;
    let task = json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Slow Flow",
                      "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"});
    let rerun = kill_and_rerun(
        &emu,
        task,
        |log| {
            log.iter()
                .filter(|r| r["route"] == "dataflow.transactions")
                .count()
                > 3
        },
        async || {
            complete_transaction(&emu, DF_SLOW, "Success").await;
        },
    )
    .await;
    assert_eq!(rerun.code, 0, "{}", rerun.stdout);
    assert_eq!(rerun.outputs().attached, Some(true));
    assert_eq!(
        requests_to(&emu, "dataflow.refresh").await.len(),
        1,
        "one trigger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gen2_refresh_is_reattached_by_the_retry_with_one_job() {
    let emu = emulator(scenario()).await;
    let task = json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Slow Gen2",
                      "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"});
    let rerun = kill_and_rerun(
        &emu,
        task,
        |log| {
            log.iter()
                .filter(|r| r["route"] == "fabric.job.get")
                .count()
                > 2
        },
        async || {
            complete_job(&emu, ITEM_GEN2_SLOW, "Completed").await;
        },
    )
    .await;
    assert_eq!(rerun.code, 0, "{}", rerun.stdout);
    assert_eq!(rerun.outputs().attached, Some(true));
    assert_eq!(
        requests_to(&emu, "fabric.job.run").await.len(),
        1,
        "one job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cascade_is_resumed_by_the_retry_with_one_trigger_per_item() {
    let mut s = lake("Success");
    // Curated runs until it is completed by hand, so the cascade is killed in its middle.
    s["workspaces"][3]["dataflows"][1]["refresh"] = json!({});
    let emu = emulator(s).await;
    let rerun = kill_and_rerun(
        &emu,
        cascade_task(),
        |log| {
            log.iter()
                .filter(|r| {
                    r["route"] == "dataflow.transactions"
                        && r["path"].as_str().is_some_and(|p| p.contains(DF_CURATED))
                })
                .count()
                > 3
        },
        async || {
            complete_transaction(&emu, DF_CURATED, "Success").await;
        },
    )
    .await;
    assert_eq!(rerun.code, 0, "{}", rerun.stdout);
    let log = requests(&emu).await;
    for (route, id) in [
        ("dataflow.refresh", DF_RAW),
        ("dataflow.refresh", DF_CURATED),
        ("refresh.post", DS_M1),
        ("refresh.post", DS_M2),
    ] {
        assert_eq!(
            posts_for(&log, route, id),
            1,
            "{route} {id}: exactly one trigger"
        );
    }
    let out = rerun.outputs();
    assert_eq!(
        out.attached,
        Some(true),
        "Raw's outcome comes from the first attempt"
    );
    let targets = out.targets.expect("targets");
    assert_eq!(target(&targets, DF_CURATED)["attached"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_report_refresh_is_reattached_by_the_retry_with_one_trigger() {
    // The report's model never ends on its own, and the history never shows its refresh:
    // only the operation log knows it is running.
    let mut s = scenario();
    s["workspaces"][0]["reports"][0]["datasetId"] = json!(DS_SLOW);
    let emu = emulator(s).await;
    control(
        &emu,
        "PUT",
        &format!("datasets/{DS_SLOW}/refresh"),
        Some(json!({"historyDelayPolls": 100000})),
    )
    .await;
    let task = json!({"operation": "report.refresh", "workspace": "Sales", "report": "Sales Overview",
                      "refresh": {"type": "Full"},
                      "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"});
    let rerun = kill_and_rerun(
        &emu,
        task,
        |log| log.iter().any(|r| r["route"] == "refresh.get"),
        async || {
            complete_refresh(&emu, DS_SLOW, "Completed").await;
        },
    )
    .await;
    assert_eq!(rerun.code, 0, "{}", rerun.stdout);
    assert_eq!(rerun.outputs().attached, Some(true));
    assert_eq!(
        requests_to(&emu, "refresh.post").await.len(),
        1,
        "one trigger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_monitored_flow_trigger_never_calls_the_flow_again() {
    let mut s = scenario();
    let slow_flow = "0a000000000000000000000000000009";
    s["flows"]
        .as_array_mut()
        .expect("flows")
        .push(json!({"workflowId": slow_flow, "sig": SIG,
                     "action": {"dataflow": {"workspaceId": WS_SALES, "dataflowId": DF_SLOW}}}));
    let emu = emulator(s).await;
    let task = json!({"operation": "flow.trigger", "flow": "slow", "body": {},
                      "monitor": {"workspace": "Sales", "dataflow": "Slow Flow"},
                      "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"});
    let dir = tempfile::tempdir().expect("dir");
    let mut env = kestra_store_env(&emu, dir.path(), "exec-kill");
    env.push((
        "PBIOPS_FLOW_SLOW_URL".into(),
        flow_url(&emu.base_url(), slow_flow, SIG),
    ));
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_pbiops"))
        .env_clear()
        .envs(env.iter().cloned())
        .env("PBIOPS_TASK", task.to_string())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("first run");
    until_requests(&emu, "the first run to follow the flow's refresh", |log| {
        log.iter()
            .filter(|r| r["route"] == "dataflow.transactions")
            .count()
            > 3
    })
    .await;
    first.kill().await.expect("kill -9");
    let seen = requests(&emu).await.len();
    let rerun = {
        let (env, task) = (env.clone(), task.clone());
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    until_requests(&emu, "the rerun to poll", |log| log.len() > seen + 3).await;
    let id = complete_transaction(&emu, DF_SLOW, "Success").await;
    let rerun = rerun.await.expect("rerun");
    assert_eq!(rerun.code, 0, "{}", rerun.stdout);
    assert_eq!(rerun.outputs().request_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        requests_to(&emu, "flow.trigger").await.len(),
        1,
        "the flow was called once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expected_duration_comes_from_history_and_an_overrun_is_reported() {
    let mut s = scenario();
    // Slow Model usually takes one second.
    s["workspaces"][0]["datasets"][3]["history"] = json!([
        {"requestId": "e0000000-0000-4000-8000-0000000000b1", "refreshType": "Scheduled", "status": "Completed",
         "startTime": "-PT2H", "endTime": "-PT1H59M59S"},
        {"requestId": "e0000000-0000-4000-8000-0000000000b2", "refreshType": "Scheduled", "status": "Completed",
         "startTime": "-PT1H", "endTime": "-PT59M59S"}
    ]);
    let emu = emulator(s).await;
    let mut task = refresh_task("Sales", "Slow Model");
    task["refresh"] = json!({"type": "Full"});
    let running = tokio::spawn({
        let env = env(&emu);
        async move { run(Input::Env(task), &env).await }
    });
    until_requests(&emu, "the run to poll", |log| {
        log.iter().any(|r| r["route"] == "refresh.get")
    })
    .await;
    // Let it run past what nine in ten earlier runs took.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    complete_refresh(&emu, DS_SLOW, "Completed").await;
    let run = running.await.expect("run");
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.expected_seconds, Some(1.0));
    assert_eq!(out.overran, Some(true));
    let text = run.log_text();
    assert!(text.contains("usually takes 1s"), "{text}");
    assert!(text.contains("its median of 1s"), "{text}");

    // A model without history has no expectation to judge by.
    let fresh = run_task(&emu, refresh_task("Sales", "Busy Model")).await;
    assert_eq!(fresh.outputs().expected_seconds, None);
    assert_eq!(fresh.outputs().overran, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_overrun_ends_the_wait_early_and_applies_on_timeout() {
    let mut s = scenario();
    s["workspaces"][0]["datasets"][3]["history"] = json!([
        {"requestId": "e0000000-0000-4000-8000-0000000000b1", "refreshType": "Scheduled", "status": "Completed",
         "startTime": "-PT1H", "endTime": "-PT59M59.5S"}
    ]);
    let emu = emulator(s).await;
    let mut task = refresh_task("Sales", "Slow Model");
    task["refresh"] = json!({"type": "Full"});
    task["maxOverrun"] = json!(2);
    task["onTimeout"] = json!("cancel");
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 5, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("OverrunLimit"));
    assert_eq!(out.status.as_deref(), Some("Cancelled"));
    assert_eq!(out.overran, Some(true));
    assert!(
        out.wait_seconds.expect("waited") >= 1.0,
        "2 × the 0.5 s p90"
    );
    assert_eq!(requests_to(&emu, "refresh.delete").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_error_quoting_a_configured_secret_is_scrubbed_from_the_outputs() {
    let mut s = scenario();
    s["workspaces"][0]["datasets"][1]["refresh"]["error"]["errorDescription"] =
        json!(format!("login failed with password {SECRET}"));
    let emu = emulator(s).await;
    // The harness fails any run whose output holds the secret.
    let run = run_task(&emu, refresh_task("Sales", "Broken Model")).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let message = run.outputs().error_message.expect("message");
    assert!(message.contains("REDACTED"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_listing_one_model_twice_refreshes_it_twice_in_order() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = kestra_store_env(&emu, dir.path(), "exec-twice");
    let task = json!({"operation": "dataset.refresh", "poll": {"min": 0.01, "max": 0.05},
    "grace": "PT5S", "timeout": "PT60S", "targets": [
        {"id": "facts", "workspace": "Sales", "dataset": "Sales Model", "refresh": {"objects": [{"table": "Facts"}]}},
        {"id": "dims", "workspace": "Sales", "dataset": "Sales Model", "refresh": {"objects": [{"table": "Dims"}]},
         "dependsOn": ["facts"]}
    ]});
    let run = run(Input::Env(task), &env).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let posts = requests_to(&emu, "refresh.post").await;
    assert_eq!(posts.len(), 2, "each target refreshed: {posts:?}");
    assert_eq!(posts[1]["body"]["objects"][0]["table"], "Dims");
    let targets = run.outputs().targets.expect("targets");
    assert!(
        targets.iter().all(|t| t["attached"] == false),
        "{targets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lineage_leading_back_to_the_refreshed_dataflow_is_refused_before_any_trigger() {
    let mut s = lake("Success");
    s["workspaces"][3]["dataflows"][0]["upstreamDataflows"] =
        json!([{"dataflowId": DF_CURATED, "workspaceId": WS_LAKE}]);
    let emu = emulator(s).await;
    let run = run_task(&emu, cascade_task()).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.log_text().contains("leads back to it"),
        "{}",
        run.log_text()
    );
    let log = requests(&emu).await;
    assert_eq!(posts_for(&log, "dataflow.refresh", DF_RAW), 0);
    assert_eq!(posts_for(&log, "dataflow.refresh", DF_CURATED), 0);
}
