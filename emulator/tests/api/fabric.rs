//! Fabric: workspaces and items with continuation paging, Job Scheduler runs, cancel, audiences and
//! the service-principal switch.

use crate::support::{Emu, FABRIC_SCOPE};
use pbiops_emulator::Scenario;
use serde_json::{Value, json};

const SALES: &str = "5f8f93c0-d0ae-4d84-9811-9834c9ff86f2";
const GEN2: &str = "e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a601";

fn jobs_path() -> String {
    format!("/v1/workspaces/{SALES}/items/{GEN2}/jobs/instances")
}

/// The path of a `Location` header.
fn path_of(location: &str) -> String {
    let rest = location.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_owned()
}

#[tokio::test]
async fn workspaces_page_with_continuation_tokens_and_only_fabric_tokens_work() {
    let mut scenario = Scenario::demo();
    scenario.fabric_page_size = 1;
    let emu = Emu::with(scenario).await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    let mut names = vec![];
    let mut path = "/v1/workspaces".to_owned();
    loop {
        let reply = emu.get(&path, Some(&token)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        names.push(body["value"][0]["displayName"].as_str().unwrap().to_owned());
        assert_eq!(body["value"][0]["type"], "Workspace");
        match body["continuationUri"].as_str() {
            Some(uri) => {
                assert!(uri.starts_with(&emu.emulator.base_url()));
                assert!(body["continuationToken"].is_string());
                path = path_of(uri);
            }
            None => {
                assert!(body.get("continuationToken").is_none());
                break;
            }
        }
    }
    assert_eq!(names, ["Sales", "Finance", "Marketing"]);

    let powerbi = emu.token().await;
    let refused = emu.get("/v1/workspaces", Some(&powerbi)).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["errorCode"], "Unauthorized");
    assert!(refused.json()["requestId"].is_string());
    assert_eq!(
        refused.header("x-ms-public-api-error-code"),
        Some("Unauthorized")
    );
    let none = emu.get("/v1/workspaces", None).await;
    assert_eq!(none.json()["errorCode"], "TokenExpired");
}

#[tokio::test]
async fn items_filter_by_type() {
    let emu = Emu::demo().await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    let all = emu
        .get(&format!("/v1/workspaces/{SALES}/items"), Some(&token))
        .await
        .json();
    assert!(all["value"].as_array().unwrap().len() > 1);
    let dataflows = emu
        .get(
            &format!("/v1/workspaces/{SALES}/items?type=Dataflow"),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(
        dataflows["value"],
        json!([{"id": GEN2, "displayName": "Sales Gen2", "description": "Dataflow Gen2 loading the sales lakehouse",
                "type": "Dataflow", "workspaceId": SALES}])
    );
}

#[tokio::test]
async fn a_job_runs_with_location_and_retry_after_then_completes() {
    let emu = Emu::demo().await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    let run = emu
        .post(
            &format!("{}?jobType=Refresh", jobs_path()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(run.status, 202, "{}", run.body);
    assert!(run.body.is_empty());
    assert_eq!(run.header("retry-after"), Some("1"));
    let location = run.header("location").unwrap().to_owned();
    assert!(location.starts_with(&format!(
        "{}/v1/workspaces/{SALES}/items/{GEN2}/jobs/instances/",
        emu.emulator.base_url()
    )));
    assert_eq!(
        Some(location.rsplit('/').next().unwrap()),
        run.header("x-ms-job-id")
    );

    let mut statuses = vec![];
    for _ in 0..4 {
        let reply = emu.get(&path_of(&location), Some(&token)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("retry-after"), Some("1"));
        let body = reply.json();
        statuses.push(body["status"].as_str().unwrap().to_owned());
        assert_eq!(body["jobType"], "Refresh");
        assert_eq!(body["invokeType"], "Manual");
        let start = body["startTimeUtc"].as_str().unwrap();
        assert!(
            !start.ends_with('Z') && start.split('.').nth(1).unwrap().len() == 7,
            "{start}"
        );
        assert!(body.get("failureReason").is_some());
    }
    assert_eq!(
        statuses,
        ["NotStarted", "InProgress", "Completed", "Completed"]
    );

    let list = emu.get(&jobs_path(), Some(&token)).await.json();
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let cancel = emu
        .post(
            &format!("{}/cancel", path_of(&location)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (cancel.status, cancel.json()["errorCode"].as_str()),
        (400, Some("JobAlreadyCompleted"))
    );
}

#[tokio::test]
async fn the_path_form_runs_too_and_cancel_answers_202_then_cancelled() {
    let emu = Emu::demo().await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    emu.put(
        &format!("/_emulator/items/{GEN2}/refresh"),
        json!({"retryAfterSeconds": 0}),
    )
    .await;
    let run = emu
        .post(
            &format!("/v1/workspaces/{SALES}/items/{GEN2}/jobs/Execute/instances"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(run.status, 202);
    assert_eq!(run.header("retry-after"), Some("0"));
    let location = path_of(run.header("location").unwrap());
    let cancel = emu
        .post(&format!("{location}/cancel"), Some(&token), None)
        .await;
    assert_eq!(cancel.status, 202);
    assert!(cancel.header("location").is_some());
    assert_eq!(
        emu.get(&location, Some(&token)).await.json()["status"],
        "Cancelled"
    );

    let bad = emu
        .post(
            &format!("{}?jobType=Explode", jobs_path()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(bad.json()["errorCode"], "InvalidJobType");
}

#[tokio::test]
async fn a_failing_job_carries_its_failure_reason_and_the_control_api_sees_it() {
    let emu = Emu::demo().await;
    let token = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    emu.put(
        &format!("/_emulator/items/{GEN2}/refresh"),
        json!({"polls": 0, "outcome": "Failed",
               "failureReason": {"errorCode": "DataflowExecutionFailed", "message": "Mashup error"}}),
    )
    .await;
    let run = emu
        .post(
            &format!("{}?jobType=Refresh", jobs_path()),
            Some(&token),
            None,
        )
        .await;
    let body = emu
        .get(&path_of(run.header("location").unwrap()), Some(&token))
        .await
        .json();
    assert_eq!(body["status"], "Failed");
    assert_eq!(
        body["failureReason"]["errorCode"],
        "DataflowExecutionFailed"
    );
    let jobs: Value = emu.get("/_emulator/jobs", None).await.json();
    assert_eq!(jobs[0]["status"], "Failed");
}

#[tokio::test]
async fn the_switch_refuses_service_principals_but_not_managed_identities() {
    let mut scenario = Scenario::demo();
    scenario.refuse_service_principals_for_dataflow_jobs = true;
    let emu = Emu::with(scenario).await;
    let sp = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    let refused = emu
        .post(&format!("{}?jobType=Refresh", jobs_path()), Some(&sp), None)
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["errorCode"], "PrincipalTypeNotSupported");
    assert_eq!(
        refused.header("x-ms-public-api-error-code"),
        Some("PrincipalTypeNotSupported")
    );

    let mi = emu
        .get_with(
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://api.fabric.microsoft.com",
            &[("Metadata", "true")],
        )
        .await;
    let mi = mi.json()["access_token"].as_str().unwrap().to_owned();
    let accepted = emu
        .post(&format!("{}?jobType=Refresh", jobs_path()), Some(&mi), None)
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
}
