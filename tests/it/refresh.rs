//! `dataset.refresh`: standard and enhanced, success and failure, and what goes on the wire.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_refresh_is_triggered_followed_and_reported() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.operation.as_deref(), Some("dataset.refresh"));
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert_eq!(out.service_status.as_deref(), Some("Completed"));
    assert_eq!(out.workspace_id.as_deref(), Some(WS_SALES));
    assert_eq!(out.workspace_name.as_deref(), Some("Sales"));
    assert_eq!(out.dataset_id.as_deref(), Some(DS_SALES));
    assert_eq!(out.dataset_name.as_deref(), Some("Sales Model"));
    assert!(out.end_time.as_deref().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(out.item_kind.as_deref(), Some("SemanticModel"));
    assert_eq!(out.refresh_type.as_deref(), Some("Standard"));
    assert_eq!(out.attached, Some(false));
    assert_eq!(out.profile.as_deref(), Some("default"));
    assert!(out.start_time.as_deref().is_some_and(|t| t.ends_with('Z')));
    assert!(out.duration_seconds.is_some() && out.wait_seconds.is_some());
    assert_eq!(
        out.queued_seconds,
        Some(0.0),
        "its capacity had room: it began as it was requested"
    );

    // The request id is printed on its own as soon as it is known, before the wait.
    let first = &run.output_lines[0];
    assert_eq!(
        first["requestId"],
        json!(out.request_id.clone().expect("request id"))
    );
    assert!(first.get("status").is_none());

    let refreshes = refreshes_of(&emu, DS_SALES).await;
    assert_eq!(refreshes.len(), 2, "the seeded one and ours");
    let posts = requests_to(&emu, "refresh.post").await;
    assert_eq!(posts.len(), 1);
    assert!(
        posts[0]["body"].is_null(),
        "a standard refresh sends no body: {}",
        posts[0]
    );
    assert_eq!(
        run.counter("pbiops.api.calls", Some(("endpoint", "refresh.post"))),
        Some(1.0)
    );
    assert!(
        run.metrics
            .iter()
            .any(|m| m.name == "pbiops.refresh.duration" && m.kind == "timer")
    );
    assert!(
        run.metrics
            .iter()
            .any(|m| m.name == "pbiops.refresh.queued" && m.kind == "timer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enhanced_refresh_sends_the_documented_body_and_reports_each_object() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task(WS_SALES, DS_SALES);
    task["refresh"] = json!({"type": "full", "commitMode": "transactional", "maxParallelism": 4, "retryCount": 1,
                             "objects": [{"table": "Sales"}, {"table": "Orders", "partition": "2026"}], "timeout": "PT2H"});
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert_eq!(out.refresh_type.as_deref(), Some("Enhanced"));
    let objects = out.objects.expect("per-object status");
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1].table.as_deref(), Some("Orders"));
    assert_eq!(objects[1].partition.as_deref(), Some("2026"));
    assert!(
        objects
            .iter()
            .all(|o| o.status.as_deref() == Some("Completed"))
    );

    let posts = requests_to(&emu, "refresh.post").await;
    assert_eq!(
        posts[0]["body"],
        json!({"type": "Full", "commitMode": "Transactional", "maxParallelism": 4, "retryCount": 1,
               "objects": [{"table": "Sales"}, {"table": "Orders", "partition": "2026"}], "timeout": "02:00:00"})
    );
    // Waited by id through the execution details, never through "the latest" history entry.
    assert!(!requests_to(&emu, "refresh.get").await.is_empty());
    let id = out.request_id.expect("id");
    assert!(
        requests_to(&emu, "refresh.get")
            .await
            .iter()
            .all(|r| r["path"].as_str().is_some_and(|p| p.ends_with(&id)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_exits_1_with_the_services_error() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, refresh_task("Sales", "Broken Model")).await;

    assert_eq!(run.code, 1);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Failed"));
    assert_eq!(
        out.error_code.as_deref(),
        Some("ModelRefreshFailed_CredentialsNotSpecified")
    );
    assert_eq!(
        out.error_message.as_deref(),
        Some("The data source credentials are missing.")
    );
    assert!(
        run.logs.iter().any(|(level, m)| level == "ERROR"
            && m.contains("ModelRefreshFailed_CredentialsNotSpecified"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enhanced_refresh_that_times_out_in_the_service_is_reported_as_timed_out() {
    let emu = emulator(scenario()).await;
    control(
        &emu,
        "PUT",
        &format!("datasets/{DS_SALES}/refresh"),
        Some(json!({"polls": 1, "outcome": "TimedOut"})),
    )
    .await;
    let mut task = refresh_task("Sales", "Sales Model");
    task["refresh"] = json!({"type": "Full"});
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 1);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("TimedOut"));
    assert_eq!(out.service_status.as_deref(), Some("TimedOut"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_the_run_exits_0_as_soon_as_the_refresh_is_triggered() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Sales", "Slow Model");
    task["wait"] = json!(false);
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 0);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Triggered"));
    let id = out.request_id.expect("request id");
    let refreshes = refreshes_of(&emu, DS_SLOW).await;
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0]["requestId"], json!(id));
    assert!(
        requests_to(&emu, "refresh.history").await.len() <= 1,
        "no polling after the trigger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enhanced_refresh_on_shared_capacity_is_refused_before_it_is_sent() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Marketing", "Campaigns");
    task["refresh"] = json!({"type": "Full"});
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 2);
    assert!(
        run.log_text().contains("shared capacity"),
        "{}",
        run.log_text()
    );
    assert!(requests_to(&emu, "refresh.post").await.is_empty());
}
