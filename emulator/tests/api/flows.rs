//! Power Automate HTTP triggers: sig checks, 202 whatever the run does, and sig redaction.

use crate::support::Emu;
use serde_json::{Value, json};

const STAGING_FLOW: &str = "4c7d9e2f1a3b4c5d8e6f7a8b9c0d1e2f";
const STAGING_SIG: &str = "demo-sig-nightly";
const LIMIT_FLOW: &str = "9a8b7c6d5e4f4a3b2c1d0e9f8a7b6c5d";
const LIMIT_SIG: &str = "demo-sig-limited";
const OFF_FLOW: &str = "1e2d3c4b5a6f4e7d8c9b0a1f2e3d4c5b";

fn url(workflow: &str, sig: Option<&str>) -> String {
    let mut url = format!(
        "/workflows/{workflow}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
    );
    if let Some(sig) = sig {
        url.push_str(&format!("&sig={sig}"));
    }
    url
}

fn transactions_of(all: &Value, dataflow: &str) -> Vec<Value> {
    all.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["dataflowId"] == dataflow && t["source"] == "flow")
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_valid_sig_answers_202_and_starts_the_dataflow() {
    let emu = Emu::demo().await;
    let reply = emu
        .post(
            &url(STAGING_FLOW, Some(STAGING_SIG)),
            None,
            Some(json!({"reason": "test"})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert!(reply.body.is_empty());
    assert!(reply.header("x-ms-workflow-run-id").is_some());
    assert!(reply.header("x-ms-correlation-id").is_some());
    let all = emu.get("/_emulator/transactions", None).await.json();
    let started = transactions_of(&all, "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d41");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["status"], "InProgress");

    let direct = format!(
        "/powerautomate/automations/direct/workflows/{STAGING_FLOW}/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={STAGING_SIG}"
    );
    assert_eq!(emu.post(&direct, None, None).await.status, 202);
}

#[tokio::test]
async fn the_run_is_accepted_while_its_refresh_fails_for_the_daily_limit() {
    let emu = Emu::demo().await;
    let reply = emu
        .post(&url(LIMIT_FLOW, Some(LIMIT_SIG)), None, None)
        .await;
    assert_eq!(reply.status, 202);
    let all = emu.get("/_emulator/transactions", None).await.json();
    let failed = transactions_of(&all, "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d43");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], "Failed");
    assert_eq!(failed[0]["error"], "DailyDataflowRefreshLimitExceeded");
}

#[tokio::test]
async fn sig_mistakes_and_missing_flows_get_logic_apps_errors_and_sig_is_never_logged() {
    let emu = Emu::demo().await;
    let cases = [
        (
            url(STAGING_FLOW, None),
            401,
            "DirectApiAuthorizationRequired",
        ),
        (
            url(STAGING_FLOW, Some("wrong-signature")),
            401,
            "DirectApiInvalidAuthorizationSignature",
        ),
        (url(OFF_FLOW, Some("demo-sig-off")), 404, "WorkflowNotFound"),
        (
            url("00000000000000000000000000000000", Some(STAGING_SIG)),
            404,
            "WorkflowNotFound",
        ),
    ];
    for (path, status, code) in cases {
        let reply = emu.post(&path, None, None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code.to_owned()),
            "{path}"
        );
        assert!(reply.json()["error"]["message"].is_string());
    }
    let both = emu
        .post(
            &url(STAGING_FLOW, Some(STAGING_SIG)),
            Some("emu-token"),
            None,
        )
        .await;
    assert_eq!(both.status, 401);
    emu.post(&url(STAGING_FLOW, Some(STAGING_SIG)), None, None)
        .await;

    let log = emu.get("/_emulator/requests", None).await;
    assert!(!log.body.contains(STAGING_SIG));
    assert!(!log.body.contains("wrong-signature"));
    let entries = log.json();
    let last = entries.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["route"], "flow.trigger");
    assert!(last["query"].as_str().unwrap().ends_with("&sig=REDACTED"));
    assert_eq!(
        emu.get("/_emulator/counts", None).await.json(),
        json!({"flow.trigger": 6})
    );
}
