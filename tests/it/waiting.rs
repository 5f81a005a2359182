//! Waiting: id lag, dropped requests, throttling, 5xx, token expiry, and our own timeout.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_missing_from_the_history_at_first_is_waited_for() {
    let emu = emulator(scenario()).await;
    control(
        &emu,
        "PUT",
        &format!("datasets/{DS_SALES}/refresh"),
        Some(json!({"polls": 2, "historyDelayPolls": 3})),
    )
    .await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().status.as_deref(), Some("Completed"));
}

/// A refresh of the Sales model that the service drops, run with `task` changed by `adjust`;
/// the run and the trigger POSTs the emulator saw.
async fn dropped_refresh(adjust: impl FnOnce(&mut serde_json::Value)) -> (Run, usize) {
    let emu = emulator(scenario()).await;
    control(
        &emu,
        "PUT",
        &format!("datasets/{DS_SALES}/refresh"),
        Some(json!({"drop": true})),
    )
    .await;
    let mut task = refresh_task("Sales", "Sales Model");
    adjust(&mut task);
    let run = run_task(&emu, task).await;
    let posts = requests_to(&emu, "refresh.post").await.len();
    (run, posts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_the_service_dropped_fails_after_the_grace_period() {
    let (run, _) = dropped_refresh(|task| task["grace"] = json!(0.2)).await;

    assert_eq!(run.code, 1);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Failed"));
    assert_eq!(out.error_code.as_deref(), Some("RefreshDropped"));
    assert!(out.error_message.expect("message").contains("dropped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_refresh_is_called_dropped_at_its_grace_not_at_the_first_planned_look() {
    // The model's history (10 minutes) puts the first look far off, capped here at 30 s; a
    // refresh the service never shows is read again when the grace (0.3 s) ends instead.
    let (run, posts) = dropped_refresh(|task| {
        task["grace"] = json!(0.3);
        task["poll"] = json!({"min": 0.01, "max": 30});
    })
    .await;

    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("RefreshDropped"));
    let message = out.error_message.expect("message");
    assert!(message.contains("within 0.3s"), "{message}");
    let waited = out.wait_seconds.expect("waitSeconds");
    assert!(waited < 15.0, "dropped after {waited} s, not at the grace");
    assert_eq!(posts, 1, "one trigger POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_ridden_out_honouring_retry_after() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "refresh.history", "status": 429, "retryAfter": 0, "times": 3}),
    )
    .await;
    fault(
        &emu,
        json!({"route": "refresh.post", "status": 429, "retryAfter": 1, "times": 1}),
    )
    .await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().status.as_deref(), Some("Completed"));
    assert_eq!(run.counter("pbiops.api.throttled", None), Some(4.0));
    assert_eq!(
        refreshes_of(&emu, DS_SALES).await.len(),
        2,
        "a throttled POST is retried, and only once starts a refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_5xx_on_reads_are_retried() {
    let emu = emulator(scenario()).await;
    fault(&emu, json!({"route": "groups", "status": 503, "times": 2})).await;
    fault(
        &emu,
        json!({"route": "refresh.history", "status": 500, "times": 2}),
    )
    .await;
    let run = run_task(&emu, refresh_task("Sales", "Sales Model")).await;

    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.logs
            .iter()
            .any(|(level, m)| level == "WARN" && m.contains("retrying"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_stays_down_exits_6_after_the_retry_budget() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "datasets", "status": 503, "times": 50}),
    )
    .await;
    let mut env = env(&emu);
    env.push(("PBIOPS_HTTP_RETRIES".into(), "2".into()));
    let run = run(Input::Env(refresh_task("Sales", "Sales Model")), &env).await;

    assert_eq!(run.code, 6);
    assert_eq!(
        run.outputs().error_code.as_deref(),
        Some("ServiceUnavailable")
    );
    assert_eq!(requests_to(&emu, "datasets").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_mid_wait_is_renewed_and_the_wait_goes_on() {
    let emu = emulator(scenario()).await;
    let task = refresh_task("Sales", "Slow Model");
    let runner = {
        let env = env(&emu);
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    until_requests(&emu, "the refresh to be triggered", |log| {
        log.iter().any(|r| r["route"] == "refresh.post")
    })
    .await;
    control(&emu, "POST", "tokens/revoke", None).await;
    until_requests(&emu, "a refused poll", |log| {
        log.iter().any(|r| r["status"] == 401)
    })
    .await;
    let id = refreshes_of(&emu, DS_SLOW).await[0]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    control(
        &emu,
        "POST",
        &format!("refreshes/{id}/complete"),
        Some(json!({"outcome": "Completed"})),
    )
    .await;
    let run = runner.await.expect("run");

    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().status.as_deref(), Some("Completed"));
    assert_eq!(
        requests_to(&emu, "token").await.len(),
        2,
        "one token, then one renewal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_timeout_exits_5_and_leaves_the_refresh_running() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Sales", "Slow Model");
    task["timeout"] = json!(0.3);
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 5);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Running"));
    assert_eq!(out.error_code.as_deref(), Some("WaitTimedOut"));
    assert_eq!(out.cancel_requested, None);
    assert!(requests_to(&emu, "refresh.delete").await.is_empty());
    assert_eq!(
        refreshes_of(&emu, DS_SLOW).await[0]["status"],
        json!("Unknown")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_timeout_with_on_timeout_cancel_cancels_an_enhanced_refresh() {
    let emu = emulator(scenario()).await;
    let mut task = refresh_task("Sales", "Slow Model");
    task["timeout"] = json!(0.3);
    task["onTimeout"] = json!("cancel");
    task["refresh"] = json!({"type": "Full"});
    let run = run_task(&emu, task).await;

    assert_eq!(run.code, 5);
    let out = run.outputs();
    assert_eq!(out.status.as_deref(), Some("Cancelled"));
    assert_eq!(out.cancel_requested, Some(true));
    assert_eq!(requests_to(&emu, "refresh.delete").await.len(), 1);
    assert_eq!(
        refreshes_of(&emu, DS_SLOW).await[0]["extendedStatus"],
        json!("Cancelled")
    );
}
