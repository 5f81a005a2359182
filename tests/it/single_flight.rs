//! Single flight: a refresh already running is attached to, skipped or refused, never doubled.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_waits_for_the_running_refresh_without_triggering_another() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, refresh_task("Sales", "Busy Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.attached, Some(true));
    assert_eq!(out.request_id.as_deref(), Some(RUNNING_ID));
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert!(requests_to(&emu, "refresh.post").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_exits_0_with_the_running_refresh_id() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Sales", "Busy Model");
    task["ifRunning"] = json!("skip");
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 0);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Skipped"));
    assert_eq!(out.request_id.as_deref(), Some(RUNNING_ID));
    assert!(requests_to(&emu, "refresh.post").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_exits_1_naming_the_running_refresh() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Sales", "Busy Model");
    task["ifRunning"] = json!("fail");
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 1);
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("RefreshAlreadyRunning"));
    assert_eq!(out.request_id.as_deref(), Some(RUNNING_ID));
    assert!(
        run.log_text().contains("help: use ifRunning: attach"),
        "{}",
        run.log_text()
    );
    assert!(requests_to(&emu, "refresh.post").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_executing_answer_to_the_post_goes_through_the_same_policy() {
    let emu = emulator(scenario()).await;
    // The service says "busy" although the history showed nothing running (a refresh that
    // started and ended in between): pbiops looks again and, finding nothing, triggers again.
    fault(&emu, json!({"route": "refresh.post", "status": 400, "times": 1,
        "body": {"error": {"code": "InvalidRequest", "message": "Invalid dataset refresh request. Another refresh request is already executing"}}})).await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().status.as_deref(), Some("Completed"));
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 2);
    assert_eq!(
        refreshes_of(&emu, DS_SALES).await.len(),
        2,
        "the seeded one and ours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_to_the_post_is_checked_in_the_history_not_retried_blindly() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "refresh.post", "status": 500, "times": 1, "applyThenFail": true}),
    )
    .await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert_eq!(
        requests_to(&emu, "refresh.post").await.len(),
        1,
        "no second POST"
    );
    let ours: Vec<_> = refreshes_of(&emu, DS_SALES)
        .await
        .into_iter()
        .filter(|r| r["requestId"] == json!(out.request_id))
        .collect();
    assert_eq!(ours.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_that_did_not_start_anything_is_retried_once_checked() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "refresh.post", "status": 503, "times": 1}),
    )
    .await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 2);
    assert_eq!(
        refreshes_of(&emu, DS_SALES).await.len(),
        2,
        "the seeded one and ours, no more"
    );
}
