//! Fault classes a user's network and the real services produce: damaged answers (cut, stalled,
//! hung, empty, HTML, broken JSON), history lag after a trigger whose answer was lost, and the
//! `quirks` (403 for an expired token, `Message`, sparse Gen1 transactions, trimmed times) and
//! Fabric job pacing. Each is checked over a raw socket.

use crate::support::{Emu, FABRIC_SCOPE};
use pbiops_emulator::Scenario;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SALES: &str = "5f8f93c0-d0ae-4d84-9811-9834c9ff86f2";
const STAGING: &str = "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d41";
const GEN2: &str = "e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a601";

fn transactions_path() -> String {
    format!("/v1.0/myorg/groups/{SALES}/dataflows/{STAGING}/transactions")
}

fn jobs_path() -> String {
    format!("/v1/workspaces/{SALES}/items/{GEN2}/jobs/instances")
}

/// The demo scenario with `edit` applied to its JSON.
fn demo_with(edit: impl FnOnce(&mut Value)) -> Scenario {
    let mut value = serde_json::to_value(Scenario::demo()).unwrap();
    edit(&mut value);
    Scenario::from_json(&value.to_string()).unwrap()
}

/// The demo's Gen2 item (JSON of the scenario).
fn gen2(value: &mut Value) -> &mut Value {
    value["workspaces"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|w| w["items"].as_array_mut().unwrap().iter_mut())
        .find(|i| i["id"] == GEN2)
        .unwrap()
}

#[tokio::test]
async fn a_truncated_answer_declares_the_whole_body_sends_half_and_closes() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    emu.fault(json!({"route": "refresh.history", "answer": "truncated"}))
        .await;
    let cut = emu
        .raw("GET", &format!("{model}/refreshes"), Some(&token))
        .await;
    assert_eq!(cut.status(), 200);
    let declared: usize = cut.header("content-length").unwrap().parse().unwrap();
    assert!(
        !cut.body.is_empty() && cut.body.len() < declared,
        "{} of {declared} bytes",
        cut.body.len()
    );
    let whole = emu
        .raw("GET", &format!("{model}/refreshes"), Some(&token))
        .await;
    assert_eq!(
        whole.body.len(),
        whole
            .header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    let log = emu.get("/_emulator/requests", None).await.json();
    let statuses: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["status"])
        .collect();
    assert_eq!(statuses[1..], [&json!(200), &json!(200)]);
}

#[tokio::test]
async fn a_truncated_trigger_answer_still_starts_the_refresh() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    emu.fault(json!({"route": "refresh.post", "answer": "truncated"}))
        .await;
    let cut = emu
        .raw("POST", &format!("{model}/refreshes"), Some(&token))
        .await;
    assert_eq!(cut.status(), 202);
    assert!(
        cut.body.len()
            < cut
                .header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap()
    );
    let history = emu.history(&model, &token).await;
    assert_eq!(history[0]["status"], "Unknown", "the refresh runs");
}

#[tokio::test]
async fn a_slow_body_stalls_half_way_then_completes() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.fault(json!({"route": "groups", "answer": "slowBody", "delayMs": 400}))
        .await;
    let started = Instant::now();
    let slow = emu.raw("GET", "/v1.0/myorg/groups", Some(&token)).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(slow.status(), 200);
    let body: Value = serde_json::from_slice(&slow.body).unwrap();
    assert!(body["value"].is_array());
    let bad = emu
        .post(
            "/_emulator/faults",
            None,
            Some(json!({"route": "groups", "answer": "slowBody"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("delayMs"), "{}", bad.body);
}

#[tokio::test]
async fn a_hung_call_sends_nothing_is_logged_as_status_0_and_is_released_on_shutdown() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.fault(json!({"route": "groups", "answer": "hang"}))
        .await;
    let addr = emu.emulator.addr();
    let hung = {
        let emu = &emu;
        async move { emu.raw("GET", "/v1.0/myorg/groups", Some(&token)).await }
    };
    let nothing = tokio::time::timeout(Duration::from_millis(300), hung).await;
    assert!(nothing.is_err(), "a hung call answers nothing");
    let log = emu.get("/_emulator/requests", None).await.json();
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["route"].clone(), last["status"].clone()),
        (json!("groups"), json!(0))
    );
    // A second hung call, open while the emulator stops: the stop releases it.
    let token = emu.token().await;
    emu.fault(json!({"route": "groups", "answer": "hang"}))
        .await;
    let open = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "GET /v1.0/myorg/groups HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut out).await;
        out
    });
    while emu
        .get("/_emulator/requests", None)
        .await
        .json()
        .as_array()
        .unwrap()
        .len()
        < 3
    {
        tokio::task::yield_now().await;
    }
    let stopped = tokio::time::timeout(Duration::from_secs(10), emu.emulator.shutdown()).await;
    assert!(stopped.is_ok(), "the shutdown drains the hung call");
    let answer = String::from_utf8(open.await.unwrap()).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

#[tokio::test]
async fn empty_html_and_malformed_answers_replace_a_200() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    for (answer, content_type) in [
        ("empty", "application/json; charset=utf-8"),
        ("html", "text/html; charset=utf-8"),
        ("malformedJson", "application/json; charset=utf-8"),
    ] {
        emu.fault(json!({"route": "groups", "answer": answer}))
            .await;
        let reply = emu.raw("GET", "/v1.0/myorg/groups", Some(&token)).await;
        assert_eq!(reply.status(), 200, "{answer}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{answer}");
        assert!(!reply.reset);
        let text = String::from_utf8(reply.body).unwrap();
        match answer {
            "empty" => assert!(text.is_empty()),
            "html" => assert!(text.starts_with("<!DOCTYPE html>")),
            _ => assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}"),
        }
    }
}

#[tokio::test]
async fn an_html_answer_to_an_applied_trigger_hides_nothing_but_the_answer() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    emu.fault(json!({"route": "refresh.post", "answer": "html", "applyThenFail": true}))
        .await;
    let reply = emu
        .raw("POST", &format!("{model}/refreshes"), Some(&token))
        .await;
    assert_eq!(reply.status(), 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let history = emu.history(&model, &token).await;
    assert_eq!(history[0]["status"], "Unknown", "the refresh started");
}

#[tokio::test]
async fn a_lost_trigger_answer_can_leave_the_refresh_out_of_the_history_for_some_reads() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    emu.fault(
        json!({"route": "refresh.post", "status": 503, "applyThenFail": true, "hiddenReads": 2}),
    )
    .await;
    let lost = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    assert_eq!(lost.status, 503);
    let running = |h: &[Value]| h.iter().any(|e| e["status"] == "Unknown");
    assert!(!running(&emu.history(&model, &token).await));
    assert!(!running(&emu.history(&model, &token).await));
    let retry = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    assert_eq!(
        retry.status, 400,
        "the service knows it runs: {}",
        retry.body
    );
    assert!(
        running(&emu.history(&model, &token).await),
        "visible on the third read"
    );
}

#[tokio::test]
async fn a_lost_dataflow_trigger_can_lag_in_emulator_seconds() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.fault(json!({"route": "dataflow.refresh", "status": 500, "applyThenFail": true, "hiddenSeconds": 30}))
        .await;
    let path = format!("/v1.0/myorg/groups/{SALES}/dataflows/{STAGING}/refreshes");
    let lost = emu
        .post(
            &path,
            Some(&token),
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(lost.status, 500);
    let count = |reply: crate::support::Reply| reply.json()["value"].as_array().unwrap().len();
    let before = count(emu.get(&transactions_path(), Some(&token)).await);
    assert_eq!(
        count(emu.get(&transactions_path(), Some(&token)).await),
        before
    );
    emu.advance(30.0).await;
    assert_eq!(
        count(emu.get(&transactions_path(), Some(&token)).await),
        before + 1
    );
}

#[tokio::test]
async fn a_lost_job_trigger_hides_the_job_from_list_and_get() {
    let emu = Emu::demo().await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    emu.fault(json!({"route": "fabric.job.run", "status": 502, "applyThenFail": true, "hiddenReads": 1, "hiddenSeconds": 10}))
        .await;
    let lost = emu
        .post(
            &format!("{}?jobType=Refresh", jobs_path()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(lost.status, 502);
    let jobs = emu.get("/_emulator/jobs", None).await.json();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    let listed = emu.get(&jobs_path(), Some(&token)).await.json();
    assert_eq!(listed["value"], json!([]));
    let by_id = emu
        .get(&format!("{}/{id}", jobs_path()), Some(&token))
        .await;
    assert_eq!(by_id.status, 404);
    emu.advance(10.0).await;
    let listed = emu.get(&jobs_path(), Some(&token)).await.json();
    assert_eq!(listed["value"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_lag_needs_a_starting_route_and_work_that_happens() {
    let emu = Emu::demo().await;
    for (fault, field) in [
        (
            json!({"route": "groups", "status": 500, "applyThenFail": true, "hiddenReads": 1}),
            "hiddenReads",
        ),
        (
            json!({"route": "refresh.post", "status": 500, "hiddenReads": 1}),
            "hiddenReads",
        ),
        (
            json!({"route": "refresh.post", "answer": "hang", "status": 200}),
            "status",
        ),
        (
            json!({"route": "refresh.post", "status": 500, "applyThenFail": true, "hiddenSeconds": -1}),
            "hiddenSeconds",
        ),
    ] {
        let reply = emu
            .post("/_emulator/faults", None, Some(fault.clone()))
            .await;
        assert_eq!(reply.status, 400, "{fault}");
        assert!(reply.body.contains(field), "{fault}: {}", reply.body);
    }
}

#[tokio::test]
async fn expired_tokens_can_be_answered_403_by_power_bi_and_fabric() {
    let emu = Emu::with(demo_with(|v| {
        v["quirks"] = json!({"expiredTokenStatus": 403})
    }))
    .await;
    let powerbi = emu.token().await;
    let fabric = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&powerbi)).await.status,
        200
    );
    emu.post("/_emulator/tokens/revoke", None, None).await;
    let refused = emu.get("/v1.0/myorg/groups", Some(&powerbi)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "TokenExpired".to_owned())
    );
    let refused = emu.get("/v1/workspaces", Some(&fabric)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["errorCode"], "TokenExpired");
    let other = emu.get("/v1/workspaces", Some(&powerbi)).await;
    assert_eq!(
        other.status, 403,
        "a revoked token of the wrong audience is expired first"
    );
    let bad = Scenario::from_json(r#"{"quirks":{"expiredTokenStatus":500}}"#).unwrap_err();
    assert!(bad.starts_with("quirks.expiredTokenStatus"), "{bad}");
}

#[tokio::test]
async fn error_messages_can_be_spelled_message_with_a_capital() {
    let emu = Emu::with(demo_with(|v| {
        v["quirks"] = json!({"pascalCaseMessages": true})
    }))
    .await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    emu.post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    let busy = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    assert_eq!(busy.status, 400);
    let error = &busy.json()["error"];
    assert!(error.get("message").is_none());
    assert!(
        error["Message"]
            .as_str()
            .unwrap()
            .contains("already executing")
    );
    let fabric = emu.get("/v1/workspaces", None).await.json();
    assert!(fabric["Message"].is_string() && fabric.get("message").is_none());
    let route = Emu::demo().await;
    let unknown = route
        .get("/v1.0/myorg/groups/x/dataflows/y/refreshs", None)
        .await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.json()["Message"]
            .as_str()
            .unwrap()
            .starts_with("No HTTP resource was found")
    );
}

#[tokio::test]
async fn sample_transactions_carry_only_an_id_starting_with_the_start_time() {
    let emu = Emu::with(demo_with(|v| {
        v["quirks"] = json!({"sampleTransactions": true})
    }))
    .await;
    let token = emu.token().await;
    let path = format!("/v1.0/myorg/groups/{SALES}/dataflows/{STAGING}/refreshes");
    let started = emu
        .post(
            &path,
            Some(&token),
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(started.status, 200);
    let list = emu.get(&transactions_path(), Some(&token)).await.json();
    let entries = list["value"].as_array().unwrap();
    assert!(entries.len() >= 2, "{list}");
    for (index, entry) in entries.iter().enumerate() {
        let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        let expected: &[&str] = if index % 2 == 0 {
            &["id"]
        } else {
            &["id", "refreshType"]
        };
        assert_eq!(keys, expected, "{entry}");
        let id = entry["id"].as_str().unwrap();
        let (start, _) = id.split_once('@').unwrap();
        assert!(start.parse::<jiff::Timestamp>().is_ok(), "{id}");
    }
    let now: jiff::Timestamp = emu.get("/_emulator/clock", None).await.json()["now"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let newest: jiff::Timestamp = entries[0]["id"]
        .as_str()
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The clock answers in milliseconds and the id in 100 ns: a transaction that started in the
    // clock's last millisecond reads as up to 1 ms after it.
    let ahead = newest.duration_since(now);
    assert!(
        ahead < jiff::SignedDuration::from_millis(1) && now.duration_since(newest).as_secs() < 60,
        "newest transaction {newest}, emulator clock {now}"
    );
}

#[tokio::test]
async fn trimmed_times_in_one_second_sort_wrongly_as_text() {
    let emu = Emu::with(demo_with(|v| {
        v["quirks"] = json!({"trimmedTimes": true, "frozenClock": true})
    }))
    .await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    let first = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    let first = first.header("requestid").unwrap().to_owned();
    let done = emu
        .post(
            &format!("/_emulator/refreshes/{first}/complete"),
            None,
            None,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    emu.advance(0.5).await;
    let second = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    let second = second.header("requestid").unwrap().to_owned();
    let history = emu.history(&model, &token).await;
    assert_eq!(history[0]["requestId"], second.as_str(), "newest first");
    assert_eq!(history[1]["requestId"], first.as_str());
    let (newer, older) = (
        history[0]["startTime"].as_str().unwrap(),
        history[1]["startTime"].as_str().unwrap(),
    );
    assert!(
        older.ends_with(":00Z") || !older.contains('.'),
        "a whole second: {older}"
    );
    assert!(newer.ends_with(".5Z"), "{newer}");
    assert!(older > newer, "as text the older one sorts last-is-newest");
    let clock = emu.get("/_emulator/clock", None).await.json();
    let again = emu.get("/_emulator/clock", None).await.json();
    assert_eq!(
        clock["now"], again["now"],
        "a frozen clock moves only when advanced"
    );
}

#[tokio::test]
async fn a_job_can_end_with_a_status_outside_the_documented_ones() {
    let emu = Emu::with(demo_with(|v| {
        gen2(v)["refresh"] = json!({"polls": 1, "endStatus": "DeadLettered"});
    }))
    .await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    let run = emu
        .post(
            &format!("{}?jobType=Refresh", jobs_path()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(run.status, 202);
    let id = run.header("x-ms-job-id").unwrap().to_owned();
    let path = format!("{}/{id}", jobs_path());
    let statuses: Vec<Value> = [
        emu.get(&path, Some(&token)).await.json(),
        emu.get(&path, Some(&token)).await.json(),
    ]
    .into_iter()
    .map(|b| b["status"].clone())
    .collect();
    assert_eq!(statuses, [json!("NotStarted"), json!("DeadLettered")]);
}

#[tokio::test]
async fn real_gen2_pacing_retry_after_60_a_countdown_and_a_status_lag() {
    let emu = Emu::with(demo_with(|v| {
        v["quirks"] = json!({"frozenClock": true});
        gen2(v)["refresh"] = json!({"durationSeconds": 53, "retryAfterSeconds": 60,
                                    "countdownRetryAfter": true, "statusLagSeconds": 110});
    }))
    .await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    let run = emu
        .post(
            &format!("{}?jobType=Refresh", jobs_path()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((run.status, run.header("retry-after")), (202, Some("60")));
    let path = format!(
        "{}/{id}",
        jobs_path(),
        id = run.header("x-ms-job-id").unwrap()
    );
    emu.advance(8.0).await;
    let read = emu.get(&path, Some(&token)).await;
    assert_eq!(
        read.header("retry-after"),
        Some("45"),
        "counts down to the end"
    );
    emu.advance(45.0).await;
    let ended = emu.get(&path, Some(&token)).await;
    assert_eq!(ended.json()["status"], "InProgress", "{}", ended.body);
    assert!(
        ended.json()["endTimeUtc"].is_string(),
        "the end is already stamped"
    );
    assert_eq!(ended.header("retry-after"), Some("110"));
    emu.advance(109.0).await;
    assert_eq!(
        emu.get(&path, Some(&token)).await.json()["status"],
        "InProgress"
    );
    emu.advance(1.0).await;
    let done = emu.get(&path, Some(&token)).await;
    assert_eq!(done.json()["status"], "Completed");
    assert_eq!(
        done.header("retry-after"),
        None,
        "no Retry-After on a terminal read"
    );
}

#[tokio::test]
async fn a_padded_answer_is_the_real_json_grown_by_a_padding_string() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.fault(json!({"route": "groups", "padBytes": 100000}))
        .await;
    let big = emu.get("/v1.0/myorg/groups", Some(&token)).await.json();
    assert_eq!(big["padding"].as_str().unwrap().len(), 100_000);
    assert_eq!(big["value"].as_array().unwrap().len(), 3);
    let bad = emu
        .post(
            "/_emulator/faults",
            None,
            Some(json!({"route": "groups", "padBytes": 10, "status": 500})),
        )
        .await;
    assert!(bad.body.contains("padBytes"), "{}", bad.body);
}

#[tokio::test]
async fn an_error_can_echo_the_callers_token() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.fault(json!({"route": "groups", "status": 400, "echoToken": true}))
        .await;
    let echoed = emu.get("/v1.0/myorg/groups", Some(&token)).await;
    assert_eq!(echoed.status, 400);
    assert!(
        echoed.body.contains(&format!("Bearer {token}")),
        "{}",
        echoed.body
    );
}
