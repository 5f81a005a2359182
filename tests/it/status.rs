//! `dataset.status` (a freshness gate) and `dataset.cancel`.

use serde_json::json;

use crate::support::*;

fn status_task(max_age: Option<&str>) -> serde_json::Value {
    let mut task =
        json!({"operation": "dataset.status", "workspace": "Sales", "dataset": "Sales Model"});
    if let Some(age) = max_age {
        task["maxAge"] = json!(age);
    }
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_data_passes_the_gate() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, status_task(Some("PT2H"))).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.fresh, Some(true));
    assert_eq!(out.status.as_deref(), Some("Completed"));
    let age = out.age_seconds.expect("age");
    assert!(
        (2900.0..3100.0).contains(&age),
        "ended 50 minutes ago: {age}"
    );
    assert!(out.last_success_time.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_fails_the_gate() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, status_task(Some("PT10M"))).await;

    assert_eq!(run.code, 1);
    let out = run.outputs();
    assert_eq!(out.fresh, Some(false));
    assert_eq!(out.error_code.as_deref(), Some("Stale"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_latest_refresh_fails_the_gate_and_without_max_age_status_only_reports() {
    let emu = emulator(scenario()).await;
    let refresh = run_task(&emu, refresh_task("Sales", "Broken Model")).await;
    assert_eq!(refresh.code, 1);

    let mut task = status_task(Some("P1D"));
    task["dataset"] = json!("Broken Model");
    let gate = run_task(&emu, task.clone()).await;
    assert_eq!(gate.code, 1);
    assert_eq!(
        gate.outputs().error_code.as_deref(),
        Some("ModelRefreshFailed_CredentialsNotSpecified")
    );

    task.as_object_mut().expect("object").remove("maxAge");
    let report = run_task(&emu, task).await;
    assert_eq!(report.code, 0);
    assert_eq!(report.outputs().status.as_deref(), Some("Failed"));
    assert_eq!(report.outputs().fresh, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_running_enhanced_refresh_and_refuses_a_standard_one() {
    let emu = emulator(scenario()).await;
    let mut start = refresh_task("Sales", "Slow Model");
    start["wait"] = json!(false);
    start["refresh"] = json!({"type": "Full"});
    let started = run_task(&emu, start).await;
    assert_eq!(started.code, 0);
    let id = started.outputs().request_id.expect("id");

    let cancel =
        json!({"operation": "dataset.cancel", "workspace": "Sales", "dataset": "Slow Model"});
    let run = run_task(&emu, cancel.clone()).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().status.as_deref(), Some("Cancelled"));
    assert_eq!(run.outputs().request_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        refreshes_of(&emu, DS_SLOW).await[0]["extendedStatus"],
        json!("Cancelled")
    );

    let nothing = run_task(&emu, cancel).await;
    assert_eq!(nothing.code, 0);
    assert_eq!(nothing.outputs().status.as_deref(), Some("Skipped"));

    let standard = run_task(
        &emu,
        json!({"operation": "dataset.cancel", "workspace": "Sales", "dataset": "Busy Model"}),
    )
    .await;
    assert_eq!(standard.code, 1);
    assert_eq!(
        standard.outputs().error_code.as_deref(),
        Some("NotCancellable")
    );
}
