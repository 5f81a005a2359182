//! A capacity rejecting new refreshes (surge protection, overload): every trigger on it answers
//! 429 `CapacityLimitExceeded` in its API's envelope, with no `Retry-After`, while reads keep
//! working; the period is a scenario field or started through the control API, and ends on the
//! emulator's clock.

use crate::support::{Emu, FABRIC_SCOPE, TENANT};
use pbiops_emulator::Scenario;
use pbiops_emulator::scenario::{FLEET_CLIENT_ID, FLEET_SECRET};
use serde_json::{Value, json};

const WS: &str = "5e1e5000-0000-4000-8000-000000000001";
const CAP: &str = "CAFE0000-0000-4000-8000-00000000000A";
const MODEL: &str = "da7a0000-0000-4000-8000-0000000000a1";
const GEN1: &str = "df000000-0000-4000-8000-0000000000a1";
const GEN2: &str = "b0000000-0000-4000-8000-0000000000a1";
const MESSAGE: &str =
    "Your organization's Fabric compute capacity has exceeded its limits. Try again later.";

/// One workspace on `CAP` with a model, a Gen1 dataflow and a Dataflow Gen2; `capacities` as given.
fn scenario(capacities: Value) -> Scenario {
    let text = json!({
        "tenants": [{"id": "07386812-7c6c-4792-b407-a00c1a0852e2", "domain": TENANT,
            "clients": [{"clientId": FLEET_CLIENT_ID, "secret": FLEET_SECRET, "displayName": "pbiops-demo"}]}],
        "capacities": capacities,
        "workspaces": [{"id": WS, "name": "Surge", "capacityId": CAP,
            "datasets": [{"id": MODEL, "name": "M", "refresh": {"polls": 1}}],
            "dataflows": [{"id": GEN1, "name": "D1", "refresh": {"polls": 1}}],
            "items": [{"id": GEN2, "displayName": "D2", "type": "Dataflow", "refresh": {"polls": 1, "retryAfterSeconds": 0}}]}]
    });
    Scenario::from_json(&text.to_string()).unwrap()
}

fn model_path() -> String {
    format!("/v1.0/myorg/groups/{WS}/datasets/{MODEL}/refreshes")
}

fn gen1_path() -> String {
    format!("/v1.0/myorg/groups/{WS}/dataflows/{GEN1}/refreshes")
}

fn gen2_path() -> String {
    format!("/v1/workspaces/{WS}/items/{GEN2}/jobs/instances")
}

/// The capacity's entry in `GET /_emulator/capacities`.
async fn capacity(emu: &Emu) -> Value {
    let all = emu.get("/_emulator/capacities", None).await.json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"].as_str().unwrap().eq_ignore_ascii_case(CAP))
        .cloned()
        .unwrap()
}

/// Triggers each kind once; returns the three statuses.
async fn trigger_all(emu: &Emu, pbi: &str, fabric: &str) -> (u16, u16, u16) {
    let model = emu.post(&model_path(), Some(pbi), None).await.status;
    let body = json!({"notifyOption": "NoNotification"});
    let gen1 = emu.post(&gen1_path(), Some(pbi), Some(body)).await.status;
    let job = format!("{}?jobType=Refresh", gen2_path());
    let gen2 = emu.post(&job, Some(fabric), None).await.status;
    (model, gen1, gen2)
}

#[tokio::test]
async fn a_rejecting_capacity_refuses_every_trigger_in_its_apis_shape_and_reads_still_work() {
    let caps = json!([{"id": CAP, "concurrency": 4, "rejecting": {"seconds": 30}}]);
    let emu = Emu::with(scenario(caps)).await;
    let pbi = emu.token().await;
    let fabric = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;

    let model = emu.post(&model_path(), Some(&pbi), None).await;
    assert_eq!(model.status, 429, "{}", model.body);
    assert_eq!(
        model.json(),
        json!({"error": {"code": "CapacityLimitExceeded", "message": MESSAGE}})
    );
    assert_eq!(model.header("Retry-After"), None);
    assert!(model.header("RequestId").is_some());

    let gen1 = emu
        .post(
            &gen1_path(),
            Some(&pbi),
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(
        (gen1.status, gen1.code()),
        (429, "CapacityLimitExceeded".into())
    );
    assert_eq!(gen1.header("Retry-After"), None);

    let job = format!("{}?jobType=Refresh", gen2_path());
    let gen2 = emu.post(&job, Some(&fabric), None).await;
    assert_eq!(gen2.status, 429, "{}", gen2.body);
    let body = gen2.json();
    assert_eq!(
        (&body["errorCode"], &body["message"]),
        (&json!("CapacityLimitExceeded"), &json!(MESSAGE))
    );
    assert!(body["requestId"].is_string());
    assert_eq!(gen2.header("Retry-After"), None);

    // Reads keep working, and nothing was started.
    for (path, token) in [
        (model_path(), &pbi),
        (
            format!("/v1.0/myorg/groups/{WS}/dataflows/{GEN1}/transactions"),
            &pbi,
        ),
        (gen2_path(), &fabric),
    ] {
        let reply = emu.get(&path, Some(token)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.json()["value"], json!([]), "{path}");
    }
    let entry = capacity(&emu).await;
    assert_eq!(
        (&entry["rejecting"], &entry["rejected"]),
        (&json!(true), &json!(3))
    );
    assert!(entry["rejectingUntil"].is_string());

    // The period ends on the emulator's clock.
    emu.advance(30.0).await;
    assert_eq!(trigger_all(&emu, &pbi, &fabric).await, (202, 200, 202));
    let entry = capacity(&emu).await;
    assert_eq!(
        (
            &entry["rejecting"],
            &entry["rejected"],
            &entry["rejectingUntil"]
        ),
        (&json!(false), &json!(3), &Value::Null)
    );
}

#[tokio::test]
async fn a_period_may_begin_later_and_the_control_api_starts_or_ends_one_now() {
    let caps = json!([{"id": CAP, "concurrency": 4, "rejecting": {"from": 60, "seconds": 10}}]);
    let emu = Emu::with(scenario(caps)).await;
    let pbi = emu.token().await;
    assert_eq!(
        capacity(&emu).await["rejecting"],
        false,
        "not before `from`"
    );
    assert_eq!(emu.post(&model_path(), Some(&pbi), None).await.status, 202);
    emu.advance(60.0).await;
    assert_eq!(emu.post(&model_path(), Some(&pbi), None).await.status, 429);
    emu.advance(10.0).await;
    assert_eq!(capacity(&emu).await["rejecting"], false, "it lasted 10 s");

    let reject = |seconds: Value| json!({ "seconds": seconds });
    let path = format!("/_emulator/capacities/{}/reject", CAP.to_lowercase());
    let started = emu.post(&path, None, Some(reject(json!(5)))).await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.json()["rejecting"], true);
    let body = json!({"notifyOption": "NoNotification"});
    let gen1 = emu.post(&gen1_path(), Some(&pbi), Some(body)).await;
    assert_eq!(gen1.status, 429, "{}", gen1.body);
    emu.advance(5.0).await;
    assert_eq!(capacity(&emu).await["rejecting"], false, "it lasted 5 s");

    emu.post(&path, None, Some(reject(json!(100)))).await;
    let ended = emu.post(&path, None, Some(reject(json!(0)))).await;
    assert_eq!(ended.json()["rejecting"], false, "0 ends it now");
    let body = json!({"notifyOption": "NoNotification"});
    assert_eq!(
        emu.post(&gen1_path(), Some(&pbi), Some(body)).await.status,
        200
    );

    for (path, body, status) in [
        (path.clone(), reject(json!(-1)), 400),
        (path.clone(), json!({"secs": 1}), 400),
        (
            "/_emulator/capacities/unknown/reject".to_owned(),
            reject(json!(1)),
            404,
        ),
    ] {
        let reply = emu.post(&path, None, Some(body.clone())).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_capacity_only_named_by_a_workspace_can_reject_too() {
    let emu = Emu::with(scenario(json!([]))).await;
    let pbi = emu.token().await;
    let path = format!("/_emulator/capacities/{CAP}/reject");
    let reply = emu.post(&path, None, Some(json!({"seconds": 10}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["concurrency"], Value::Null);
    let body = json!({"notifyOption": "NoNotification"});
    assert_eq!(
        emu.post(&gen1_path(), Some(&pbi), Some(body)).await.status,
        429
    );
    assert_eq!(capacity(&emu).await["rejected"], 1);
}
