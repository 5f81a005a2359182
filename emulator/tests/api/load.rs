//! The load model for benchmarks: capacity concurrency (queued refreshes), the per-client rate
//! limit, seeded duration distributions and generated history, `timeScale`, and the generated
//! fleet. Time is driven with `/_emulator/clock/advance`, never by sleeping (one test sleeps a
//! few milliseconds only to check a lower bound of the scaled clock).

use crate::support::{Emu, POWERBI_SCOPE, TENANT};
use jiff::Timestamp;
use pbiops_emulator::Scenario;
use pbiops_emulator::scenario::{FLEET_CLIENT_ID, FLEET_SECRET};
use serde_json::{Value, json};

const WS: &str = "5a1e5000-0000-4000-8000-000000000001";
const CAP: &str = "CAFE0000-0000-4000-8000-000000000001";

/// One tenant (the demo's, so `Emu::token` works), one workspace on capacity `CAP`.
fn scenario(top: Value, datasets: Value, dataflows: Value) -> Scenario {
    let mut text = json!({
        "tenants": [{"id": "07386812-7c6c-4792-b407-a00c1a0852e2", "domain": TENANT,
            "clients": [{"clientId": FLEET_CLIENT_ID, "secret": FLEET_SECRET, "displayName": "pbiops-demo"}]}],
        "workspaces": [{"id": WS, "name": "Load", "capacityId": CAP,
            "datasets": datasets, "dataflows": dataflows}]
    });
    if let (Some(text), Some(top)) = (text.as_object_mut(), top.as_object()) {
        text.extend(top.clone());
    }
    Scenario::from_json(&text.to_string()).unwrap()
}

fn model(n: u32) -> String {
    format!("da7a0000-0000-4000-8000-00000000000{n}")
}

fn at(value: &Value) -> Timestamp {
    value.as_str().unwrap().parse().unwrap()
}

async fn advance(emu: &Emu, seconds: f64) {
    let reply = emu
        .post(
            "/_emulator/clock/advance",
            None,
            Some(json!({"seconds": seconds})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn control_refresh(emu: &Emu, dataset: &str) -> Value {
    let all = emu.get("/_emulator/refreshes", None).await.json();
    all.as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["datasetId"] == dataset)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn refreshes_beyond_a_capacity_queue_fifo_and_start_when_a_slot_frees() {
    let datasets = json!([
        {"id": model(1), "name": "A", "refresh": {"durationSeconds": 10}},
        {"id": model(2), "name": "B", "refresh": {"durationSeconds": 10, "polls": 1}},
        {"id": model(3), "name": "C", "refresh": {"durationSeconds": 10}}
    ]);
    let top = json!({"capacities": [{"id": CAP.to_lowercase(), "concurrency": 1}]});
    let emu = Emu::with(scenario(top, datasets, json!([]))).await;
    let token = emu.token().await;
    let path = |n| format!("/v1.0/myorg/groups/{WS}/datasets/{}/refreshes", model(n));
    assert_eq!(emu.post(&path(1), Some(&token), None).await.status, 202);
    let enhanced = json!({"type": "Full"});
    let b = emu.post(&path(2), Some(&token), Some(enhanced)).await;
    assert_eq!(b.status, 202, "a queued refresh is accepted as usual");
    assert_eq!(emu.post(&path(3), Some(&token), None).await.status, 202);
    let busy = emu.post(&path(2), Some(&token), None).await;
    assert_eq!(busy.status, 400, "a queued refresh counts as executing");

    // B waits: running in the history, NotStarted however often it is polled.
    for _ in 0..3 {
        let reply = emu.get(&path(2), Some(&token)).await.json();
        let entry = &reply["value"][0];
        assert_eq!(
            (&entry["status"], &entry["extendedStatus"]),
            (&json!("Unknown"), &json!("NotStarted"))
        );
        assert!(
            entry.get("refreshAttempts").is_none(),
            "a running entry has no attempts key, as recorded: {entry}"
        );
    }
    let caps = emu.get("/_emulator/capacities", None).await.json();
    assert_eq!(caps[0]["id"], CAP.to_lowercase());
    assert_eq!(
        (&caps[0]["running"], &caps[0]["queued"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(caps[0]["concurrency"], 1);
    assert_eq!(caps[0]["workspaces"], json!([WS]));

    // Looked at only after 15 s: A ended at 10 s, B began then, C waits behind B.
    advance(&emu, 15.0).await;
    let (a, b, c) = (
        control_refresh(&emu, &model(1)).await,
        control_refresh(&emu, &model(2)).await,
        control_refresh(&emu, &model(3)).await,
    );
    assert_eq!(a["status"], "Completed");
    assert_eq!(
        at(&b["beganTime"]),
        at(&a["endTime"]),
        "B got A's slot when it freed"
    );
    assert!(
        at(&b["startTime"]) < at(&b["beganTime"]),
        "startTime is when it was accepted"
    );
    assert_eq!(
        b["status"], "Unknown",
        "its duration counts from when it began"
    );
    assert_eq!(c["beganTime"], Value::Null);

    // B's polls count from when it began too: one observation while running, then it ends.
    let first = emu.get(&path(2), Some(&token)).await.json();
    assert_eq!(first["value"][0]["extendedStatus"], "NotStarted");
    let second = emu.get(&path(2), Some(&token)).await.json();
    assert_eq!(second["value"][0]["status"], "Completed");
    let c = control_refresh(&emu, &model(3)).await;
    assert!(c["beganTime"].is_string(), "C began as B ended");

    advance(&emu, 10.0).await;
    let caps = emu.get("/_emulator/capacities", None).await.json();
    assert_eq!(
        (&caps[0]["running"], &caps[0]["queued"], &caps[0]["peak"]),
        (&json!(0), &json!(0), &json!(1))
    );
}

#[tokio::test]
async fn cancelling_a_running_refresh_hands_its_slot_to_the_next() {
    let datasets = json!([
        {"id": model(1), "name": "A", "refresh": {}},
        {"id": model(2), "name": "B", "refresh": {"durationSeconds": 60}}
    ]);
    let top = json!({"capacities": [{"id": CAP, "concurrency": 1}]});
    let emu = Emu::with(scenario(top, datasets, json!([]))).await;
    let token = emu.token().await;
    let path = |n| format!("/v1.0/myorg/groups/{WS}/datasets/{}/refreshes", model(n));
    let a = emu
        .post(&path(1), Some(&token), Some(json!({"type": "Full"})))
        .await;
    emu.post(&path(2), Some(&token), None).await;
    let id = a.header("x-ms-request-id").unwrap().to_owned();
    assert_eq!(
        emu.delete(&format!("{}/{id}", path(1)), Some(&token))
            .await
            .status,
        200
    );
    let b = control_refresh(&emu, &model(2)).await;
    assert!(b["beganTime"].is_string(), "{b}");
}

#[tokio::test]
async fn gen1_dataflows_queue_in_their_own_pool() {
    let dataflows = json!([
        {"id": "df000000-0000-4000-8000-000000000001", "name": "X", "refresh": {"durationSeconds": 5}},
        {"id": "df000000-0000-4000-8000-000000000002", "name": "Y", "refresh": {"durationSeconds": 5}}
    ]);
    let top = json!({"capacities": [{"id": CAP, "concurrency": 4, "dataflowConcurrency": 1}]});
    let emu = Emu::with(scenario(top, json!([]), dataflows)).await;
    let token = emu.token().await;
    for n in 1..=2 {
        let path = format!(
            "/v1.0/myorg/groups/{WS}/dataflows/df000000-0000-4000-8000-00000000000{n}/refreshes"
        );
        let reply = emu
            .post(
                &path,
                Some(&token),
                Some(json!({"notifyOption": "NoNotification"})),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let caps = emu.get("/_emulator/capacities", None).await.json();
    assert_eq!(
        caps[0]["dataflows"],
        json!({"concurrency": 1, "running": 1, "queued": 1, "peak": 1})
    );
    assert_eq!(caps[0]["running"], 0);
    advance(&emu, 7.0).await;
    let txs = emu.get("/_emulator/transactions", None).await.json();
    assert_eq!(
        (&txs[0]["status"], &txs[1]["status"]),
        (&json!("Success"), &json!("InProgress"))
    );
    assert_eq!(txs[1]["beganTime"], txs[0]["endTime"]);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_per_client_and_is_counted() {
    let top = json!({"rateLimit": {"requests": 3, "perSeconds": 60}});
    let emu = Emu::with(scenario(top, json!([]), json!([]))).await;
    let token = emu.token().await;
    for _ in 0..3 {
        assert_eq!(
            emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
            200
        );
    }
    let refused = emu.get("/v1.0/myorg/groups", Some(&token)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.code(), "TooManyRequests");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&wait), "{wait}");
    // The token endpoint is not limited; a Fabric call is, with Fabric's error shape.
    let fabric = emu
        .token_of("pbiops-demo", crate::support::FABRIC_SCOPE)
        .await;
    let reply = emu.get("/v1/workspaces", Some(&fabric)).await;
    assert_eq!(
        (reply.status, reply.json()["errorCode"].as_str()),
        (429, Some("TooManyRequests"))
    );

    let stats = emu.get("/_emulator/stats", None).await.json();
    assert_eq!(stats["rateLimited"], 2);
    assert_eq!(stats["tooManyRequests"], 2);
    let me = &stats["clients"][FLEET_CLIENT_ID];
    assert_eq!(
        (&me["requests"], &me["rateLimited"]),
        (&json!(7), &json!(2))
    );
    assert_eq!(
        me["routes"],
        json!({"token": 2, "groups": 4, "fabric.workspaces": 1})
    );
    assert_eq!(stats["routes"]["groups"], 4);

    advance(&emu, 60.0).await;
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        200
    );
    emu.delete("/_emulator/log", None).await;
    let stats = emu.get("/_emulator/stats", None).await.json();
    assert_eq!(
        stats,
        json!({"routes": {}, "tooManyRequests": 0, "rateLimited": 0, "clients": {}})
    );
}

#[tokio::test]
async fn with_a_time_scale_retry_after_is_in_real_seconds_and_tokens_live_in_real_time() {
    let top = json!({"timeScale": 60, "rateLimit": {"requests": 1, "perSeconds": 630}});
    let emu = Emu::with(scenario(top, json!([]), json!([]))).await;
    let token = emu.token().await;
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        200
    );
    let refused = emu.get("/v1.0/myorg/groups", Some(&token)).await;
    // 630 emulator seconds are 10.5 real ones, rounded up (10 if the test took over half a second).
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((10..=11).contains(&wait), "{wait}");
    assert_eq!(
        emu.get("/_emulator/clock", None).await.json()["timeScale"],
        60.0
    );

    // expires_in 3599 real seconds = 3599 × 60 on the emulator's clock.
    advance(&emu, 3600.0).await;
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        200
    );
    advance(&emu, 3599.0 * 60.0).await;
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        401
    );
}

#[tokio::test]
async fn the_scaled_clock_runs_time_scale_times_faster() {
    let emu = Emu::with(scenario(json!({"timeScale": 3600}), json!([]), json!([]))).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let clock = emu.get("/_emulator/clock", None).await.json();
    let ran = at(&clock["start"]).duration_until(at(&clock["now"]));
    assert!(ran.as_secs_f64() >= 72.0, "{ran:?}");
}

fn seeded(seed: u64) -> Scenario {
    let datasets = json!([
        {"id": model(1), "name": "A", "historyCount": 5,
         "refresh": {"durationSeconds": {"distribution": "lognormal", "median": 600, "sigma": 0.5, "min": 300, "max": 1200}}},
        {"id": model(2), "name": "B", "refresh": {"durationSeconds": {"uniform": [100, 200]}}}
    ]);
    scenario(json!({"seed": seed}), datasets, json!([]))
}

/// (requestId, seconds) of a model's history.
async fn durations(emu: &Emu, token: &str, n: u32) -> Vec<(String, f64)> {
    let path = format!("/v1.0/myorg/groups/{WS}/datasets/{}", model(n));
    emu.history(&path, token)
        .await
        .iter()
        .filter(|e| e["endTime"].is_string())
        .map(|e| {
            let seconds = at(&e["startTime"])
                .duration_until(at(&e["endTime"]))
                .as_secs_f64();
            (e["requestId"].as_str().unwrap().to_owned(), seconds)
        })
        .collect()
}

#[tokio::test]
async fn seeded_history_and_drawn_durations_are_reproducible() {
    let one = Emu::with(seeded(42)).await;
    let token = one.token().await;
    let history = durations(&one, &token, 1).await;
    assert_eq!(history.len(), 5);
    assert!(
        history.iter().all(|(_, s)| (300.0..=1200.0).contains(s)),
        "{history:?}"
    );
    let distinct: std::collections::HashSet<u64> =
        history.iter().map(|(_, s)| s.to_bits()).collect();
    assert!(distinct.len() > 1, "drawn, not fixed: {history:?}");

    let two = Emu::with(seeded(42)).await;
    let token_two = two.token().await;
    assert_eq!(
        durations(&two, &token_two, 1).await,
        history,
        "same seed, same history"
    );
    let other = Emu::with(seeded(43)).await;
    let token_other = other.token().await;
    assert_ne!(durations(&other, &token_other, 1).await, history);

    // API refreshes draw from the model's own stream: the same in both runs.
    let mut drawn = vec![];
    for (emu, token) in [(&one, &token), (&two, &token_two)] {
        let path = format!("/v1.0/myorg/groups/{WS}/datasets/{}/refreshes", model(2));
        assert_eq!(emu.post(&path, Some(token), None).await.status, 202);
        advance(emu, 300.0).await;
        drawn.push(durations(emu, token, 2).await[0].1);
    }
    assert!((100.0..=200.0).contains(&drawn[0]), "{drawn:?}");
    assert_eq!(drawn[0], drawn[1]);
}

#[tokio::test]
async fn a_generated_fleet_refreshes_within_its_capacities() {
    let emu = Emu::with(Scenario::fleet(8, 2, 2, 1).unwrap()).await;
    let reply = emu
        .token_request(
            TENANT,
            &[
                ("client_id", FLEET_CLIENT_ID),
                ("client_secret", FLEET_SECRET),
                ("scope", POWERBI_SCOPE),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let groups = emu.get("/v1.0/myorg/groups", Some(&token)).await.json();
    for group in groups["value"].as_array().unwrap() {
        let id = group["id"].as_str().unwrap();
        let models = emu
            .get(&format!("/v1.0/myorg/groups/{id}/datasets"), Some(&token))
            .await
            .json();
        for ds in models["value"].as_array().unwrap() {
            let path = format!(
                "/v1.0/myorg/groups/{id}/datasets/{}/refreshes",
                ds["id"].as_str().unwrap()
            );
            let history = emu.get(&path, Some(&token)).await.json();
            assert_eq!(
                history["value"].as_array().unwrap().len(),
                10,
                "historyCount 10"
            );
            assert_eq!(emu.post(&path, Some(&token), None).await.status, 202);
        }
    }
    let caps = emu.get("/_emulator/capacities", None).await.json();
    for cap in caps.as_array().unwrap() {
        assert_eq!(
            (&cap["running"], &cap["queued"]),
            (&json!(2), &json!(2)),
            "{cap}"
        );
    }
    advance(&emu, 8.0 * 7200.0).await;
    let caps = emu.get("/_emulator/capacities", None).await.json();
    for cap in caps.as_array().unwrap() {
        assert_eq!(
            (&cap["running"], &cap["queued"], &cap["peak"]),
            (&json!(0), &json!(0), &json!(2))
        );
    }
}
