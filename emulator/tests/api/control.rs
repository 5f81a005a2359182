//! The control API: faults, counts, the request log, reset, the clock and forced completion.

use crate::support::{Emu, entry};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_429_fault_answers_n_times_with_retry_after_then_the_route_works_again() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    let fault = emu
        .post(
            "/_emulator/faults",
            None,
            Some(json!({"route": "refresh.history", "status": 429, "retryAfter": 1, "times": 2})),
        )
        .await;
    assert_eq!(fault.json()["id"], 1);

    let mut statuses = vec![];
    for _ in 0..3 {
        let reply = emu.get(&format!("{model}/refreshes"), Some(&token)).await;
        if reply.status == 429 {
            assert_eq!(reply.header("retry-after"), Some("1"));
            assert_eq!(reply.code(), "TooManyRequests");
            assert!(reply.header("requestid").is_some());
        }
        statuses.push(reply.status);
    }

    assert_eq!(statuses, [429, 429, 200]);
    assert_eq!(
        emu.get("/_emulator/counts", None).await.json(),
        json!({"token": 1, "refresh.history": 3})
    );
    let log = emu.get("/_emulator/requests", None).await.json();
    let logged: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(logged, [429, 429, 200]);
}

#[tokio::test]
async fn apply_then_fail_starts_the_refresh_but_loses_the_answer() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    emu.post(
        "/_emulator/faults",
        None,
        Some(json!({"route": "refresh.post", "status": 503, "applyThenFail": true})),
    )
    .await;

    let first = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    assert_eq!(
        (first.status, first.code()),
        (503, "ServiceUnavailable".to_owned())
    );

    let history = emu.history(&model, &token).await;
    assert_eq!(history[0]["status"], "Unknown", "the refresh did start");
    let retry = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    assert_eq!(retry.status, 400, "a blind retry collides with it");
}

#[tokio::test]
async fn a_delay_fault_slows_a_route_without_changing_its_answer() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.post(
        "/_emulator/faults",
        None,
        Some(json!({"route": "*", "delayMs": 300})),
    )
    .await;
    let started = Instant::now();
    let reply = emu.get("/v1.0/myorg/groups", Some(&token)).await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_token_fault_gets_an_entra_shaped_body() {
    let emu = Emu::demo().await;
    emu.post(
        "/_emulator/faults",
        None,
        Some(json!({"route": "token", "status": 500})),
    )
    .await;
    let (id, secret, _) = emu.client("pbiops-demo");
    let reply = emu
        .token_request(
            crate::support::TENANT,
            &[("client_id", &id), ("client_secret", &secret)],
        )
        .await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn a_fault_with_a_bad_field_is_rejected_and_faults_can_be_cleared() {
    let emu = Emu::demo().await;
    let bad = emu
        .post(
            "/_emulator/faults",
            None,
            Some(json!({"route": "refresh.psot", "status": 429})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("route"));
    let typo = emu
        .post(
            "/_emulator/faults",
            None,
            Some(json!({"route": "groups", "status": 429, "retry_after": 1})),
        )
        .await;
    assert_eq!(typo.status, 400);
    assert!(typo.body.contains("retry_after"));

    emu.post(
        "/_emulator/faults",
        None,
        Some(json!({"route": "groups", "status": 500, "times": 5})),
    )
    .await;
    assert_eq!(
        emu.delete("/_emulator/faults", None).await.json()["removed"],
        1
    );
    let token = emu.token().await;
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        200
    );
}

#[tokio::test]
async fn reset_returns_to_the_scenario_and_clears_faults_log_and_counts() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    let id = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await
        .header("requestid")
        .unwrap()
        .to_owned();
    emu.post(
        "/_emulator/faults",
        None,
        Some(json!({"route": "groups", "status": 500})),
    )
    .await;

    let reset = emu.post("/_emulator/reset", None, None).await;
    assert_eq!(reset.status, 200);

    assert_eq!(emu.get("/_emulator/requests", None).await.json(), json!([]));
    assert_eq!(emu.get("/_emulator/counts", None).await.json(), json!({}));
    assert_eq!(emu.get("/_emulator/faults", None).await.json(), json!([]));
    assert!(
        !emu.get("/_emulator/refreshes", None)
            .await
            .body
            .contains(&id)
    );
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        200,
        "issued tokens survive a reset"
    );
    assert_eq!(
        emu.post(&format!("{model}/refreshes"), Some(&token), None)
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn advancing_the_clock_completes_a_refresh_with_a_duration() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.behave("Sales", "Orders", json!({"durationSeconds": 30}))
        .await;
    let model = emu.model("Sales", "Orders");
    let id = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await
        .header("requestid")
        .unwrap()
        .to_owned();
    assert_eq!(
        entry(&emu.history(&model, &token).await, &id).unwrap()["status"],
        "Unknown"
    );

    let advanced = emu
        .post(
            "/_emulator/clock/advance",
            None,
            Some(json!({"seconds": 31})),
        )
        .await;
    assert_eq!(advanced.status, 200);

    let history = emu.history(&model, &token).await;
    let done = entry(&history, &id).unwrap();
    assert_eq!(done["status"], "Completed");
    let start: jiff::Timestamp = done["startTime"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = done["endTime"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        end.duration_since(start),
        jiff::SignedDuration::from_secs(30)
    );
}

#[tokio::test]
async fn a_refresh_can_be_ended_through_the_control_api() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Inventory");
    let running = emu.history(&model, &token).await[0]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();

    let path = format!("/_emulator/refreshes/{running}/complete");
    let body = json!({"outcome": "Failed", "error": {"errorCode": "ModelRefresh_ShortMessage_ProcessingError"}});
    let done = emu.post(&path, None, Some(body)).await;
    assert_eq!(
        (done.status, done.json()["status"].as_str()),
        (200, Some("Failed"))
    );

    let history = emu.history(&model, &token).await;
    assert!(
        history[0]["serviceExceptionJson"]
            .as_str()
            .unwrap()
            .contains("ProcessingError")
    );
    assert_eq!(
        emu.post(&path, None, None).await.status,
        400,
        "already ended"
    );
}

#[tokio::test]
async fn the_control_api_lists_refreshes_and_logs_json_bodies_with_the_caller() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    let body = json!({"type": "Full", "retryCount": 1});
    let id = emu
        .post(
            &format!("{model}/refreshes"),
            Some(&token),
            Some(body.clone()),
        )
        .await
        .header("requestid")
        .unwrap()
        .to_owned();

    let all = emu.get("/_emulator/refreshes", None).await.json();
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["requestId"] == id.as_str())
        .unwrap();
    assert_eq!(mine["enhanced"], true);
    assert_eq!(mine["extendedStatus"], "NotStarted");
    assert_eq!(mine["observed"], 0);
    assert_eq!(mine["body"], body);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "Unknown" && r["refreshType"] == "Scheduled"),
        "seeded ones too"
    );

    let log = emu.get("/_emulator/requests", None).await.json();
    let post: &Value = &log[1];
    assert_eq!(post["route"], "refresh.post");
    assert_eq!(post["body"], body);
    assert_eq!(post["clientId"], emu.client("pbiops-demo").0.as_str());
    assert_eq!(post["seq"], 2);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_even_an_unknown_route() {
    let emu = Emu::demo().await;
    let health = emu.get("/_emulator/health", None).await;
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert!(health.header("requestid").is_some());
    let unknown = emu.get("/v1.0/myorg/reports", None).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.header("requestid").is_some());
    let log = emu.get("/_emulator/requests", None).await.json();
    assert_eq!(
        log[0]["route"],
        Value::Null,
        "unknown routes are logged without a route name"
    );
}
