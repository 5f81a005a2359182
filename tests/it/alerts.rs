//! Ready-to-post alerts: a failed refresh with `alertFile` leaves a Teams or Slack payload with
//! the service's code and words, the help line and the Kestra execution, and no secret; a
//! successful one leaves none. And the `preflight` operation: rows and a file, no trigger.

use serde_json::{Value, json};

use crate::support::*;

fn read_json(run: &Run, name: &str) -> Value {
    let text = std::fs::read_to_string(run.dir.join(name)).expect("the file was written");
    for canary in [SECRET, TOKEN_PREFIX, SIG] {
        assert!(!text.contains(canary), "a secret reached {name}:\n{text}");
    }
    serde_json::from_str(&text).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_writes_a_teams_card_with_the_reason_and_no_secret() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Sales", "Broken Model");
    task["alertFile"] = json!("alert.json");
    let mut env = env(&emu);
    env.push(("KESTRA_EXECUTION_ID".into(), "5hQx2nightly".into()));
    env.push(("KESTRA_FLOW_ID".into(), "nightly".into()));
    env.push(("KESTRA_NAMESPACE".into(), "company.bi".into()));
    let run = run(Input::Env(task), &env).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.outputs().alert_file.as_deref(), Some("alert.json"));
    let payload = read_json(&run, "alert.json");
    assert_eq!(payload["type"], "message");
    let card = &payload["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    let text = card.to_string();
    for needle in [
        "Broken Model",
        DS_BROKEN,
        WS_SALES,
        "ModelRefreshFailed_CredentialsNotSpecified",
        "company.bi.nightly 5hQx2nightly",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_preflight_writes_a_slack_message_with_the_help_line() {
    let mut s = scenario();
    s["workspaces"][0]["datasets"][0]["isRefreshable"] = json!(false);
    let emu = emulator(s).await;
    let mut task = refresh_task("Sales", "Sales Model");
    task["alertFile"] = json!("slack.json");
    task["alertFormat"] = json!("slack");
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let payload = read_json(&run, "slack.json");
    assert!(payload["text"].as_str().is_some_and(|t| !t.is_empty()));
    let blocks = payload["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    let text = payload.to_string();
    assert!(text.contains("PreflightModelNotRefreshable"), "{text}");
    assert!(text.contains("*help:*"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_refresh_writes_no_alert() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Sales", "Sales Model");
    task["alertFile"] = json!("alert.json");
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.outputs().alert_file.is_none());
    assert!(!run.dir.join("alert.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_operation_lists_every_check_and_triggers_nothing() {
    let mut s = scenario();
    s["workspaces"][0]["datasets"][0]["isRefreshable"] = json!(false);
    let emu = emulator(s).await;
    let task = json!({"operation": "preflight", "targets": [
        {"workspace": "Sales", "dataset": "Sales Model"},
        {"workspace": "Finance", "dataset": DS_BUDGET_A},
        {"workspace": "Marketing", "dataset": "Campaigns"},
        {"workspace": "Sales", "dataflow": "Sales Gen2"}
    ]});
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.ready, Some(false));
    assert_eq!(out.failed, Some(1));
    let rows = out.preflight.expect("rows");
    let checks: Vec<&str> = rows.iter().filter_map(|r| r["check"].as_str()).collect();
    for check in [
        "capacity",
        "refreshable",
        "dataSource",
        "dailyBudget",
        "principal",
    ] {
        assert!(checks.contains(&check), "{check} in {checks:?}");
    }
    let file = read_json(&run, "preflight.json");
    assert_eq!(file["checks"].as_array().map(Vec::len), Some(rows.len()));
    for route in ["refresh.post", "dataflow.refresh", "fabric.job.run"] {
        assert!(requests_to(&emu, route).await.is_empty(), "{route}");
    }

    let ok = run_task(
        &emu,
        json!({"operation": "preflight", "workspace": "Finance", "dataset": "Budget"}),
    )
    .await;
    // "Budget" matches two models by name (case-insensitive): not found or ambiguous is exit 4.
    assert_eq!(ok.code, 4, "{}", ok.stdout);
    let ok = run_task(
        &emu,
        json!({"operation": "preflight", "workspace": "Finance", "dataset": DS_BUDGET_B}),
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert_eq!(ok.outputs().ready, Some(true));
}
