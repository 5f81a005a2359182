//! Gen1 dataflows, their transactions, cancel, daily limits, lineage and reports.

use crate::support::Emu;
use serde_json::{Value, json};

const SALES: &str = "5f8f93c0-d0ae-4d84-9811-9834c9ff86f2";
const MARKETING_NAME: &str = "Marketing";
const STAGING: &str = "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d41";
const CUSTOMERS: &str = "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d42";
const CAMPAIGN: &str = "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d43";

fn group(emu: &Emu, name: &str) -> String {
    emu.scenario
        .workspaces
        .iter()
        .find(|w| w.name == name)
        .unwrap()
        .id
        .clone()
}

async fn transactions(emu: &Emu, token: &str, group: &str, dataflow: &str) -> Vec<Value> {
    let reply = emu
        .get(
            &format!("/v1.0/myorg/groups/{group}/dataflows/{dataflow}/transactions"),
            Some(token),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["value"].as_array().unwrap().clone()
}

#[tokio::test]
async fn dataflows_are_listed_with_object_ids() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let reply = emu
        .get(
            &format!("/v1.0/myorg/groups/{SALES}/dataflows"),
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, 200);
    let items = reply.json()["value"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["objectId"], STAGING);
    assert_eq!(items[1]["name"], "Sales Staging");
    for field in ["description", "modelUrl", "configuredBy"] {
        assert!(items[1][field].is_string(), "{field}");
    }
    assert!(items[1].get("id").is_none());
}

#[tokio::test]
async fn a_refresh_needs_notify_option_answers_200_and_shows_up_as_a_transaction() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let path = format!("/v1.0/myorg/groups/{SALES}/dataflows/{STAGING}/refreshes");
    let empty = emu.post(&path, Some(&token), None).await;
    assert_eq!(
        (empty.status, empty.code()),
        (400, "InvalidRequest".to_owned())
    );
    let completion = emu
        .post(
            &path,
            Some(&token),
            Some(json!({"notifyOption": "MailOnCompletion"})),
        )
        .await;
    assert_eq!(completion.status, 400);
    let bad_type = emu
        .post(
            &format!("{path}?processType=partial"),
            Some(&token),
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(bad_type.status, 400);

    let ok = emu
        .post(
            &format!("{path}?processType=default"),
            Some(&token),
            Some(json!({"notifyOption": "NoNotification"})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.is_empty());
    assert!(ok.header("location").is_none());

    let busy = emu
        .post(
            &path,
            Some(&token),
            Some(json!({"notifyOption": "MailOnFailure"})),
        )
        .await;
    assert_eq!(
        (busy.status, busy.code()),
        (400, "DataflowRefreshAlreadyInProgress".to_owned())
    );

    // polls 2: two reads show InProgress, the third its end.
    let mut seen = vec![];
    for _ in 0..3 {
        let list = transactions(&emu, &token, SALES, STAGING).await;
        let newest = &list[0];
        seen.push(newest["status"].as_str().unwrap().to_owned());
        let id = newest["id"].as_str().unwrap();
        let (stamp, rest) = id.split_once('@').unwrap();
        assert_eq!(stamp.len(), "2026-11-24T03:21:25.1234567Z".len(), "{id}");
        assert!(rest.contains('$'), "{id}");
        assert_eq!(newest["refreshType"], "OnDemand");
    }
    assert_eq!(seen, ["InProgress", "InProgress", "Success"]);
    let list = transactions(&emu, &token, SALES, STAGING).await;
    assert_eq!(list.len(), 3);
    assert!(list[0]["endTime"].is_string());
    assert_eq!(list[1]["status"], "Failed");
}

#[tokio::test]
async fn a_running_transaction_can_be_cancelled_once_by_its_encoded_id() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let refresh = format!("/v1.0/myorg/groups/{SALES}/dataflows/{STAGING}/refreshes");
    emu.put(
        &format!("/_emulator/dataflows/{STAGING}/refresh"),
        json!({}),
    )
    .await;
    emu.post(
        &refresh,
        Some(&token),
        Some(json!({"notifyOption": "NoNotification"})),
    )
    .await;
    let id = transactions(&emu, &token, SALES, STAGING).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let cancel = format!("/v1.0/myorg/groups/{SALES}/dataflows/transactions/{encoded}/cancel");
    let first = emu.post(&cancel, Some(&token), None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        first.json(),
        json!({"transactionId": id, "status": "SuccessfullyMarked"})
    );
    let again = emu.post(&cancel, Some(&token), None).await;
    assert_eq!(again.json()["status"], "AlreadyConcluded");
    let unknown = emu
        .post(
            &format!("/v1.0/myorg/groups/{SALES}/dataflows/transactions/nope/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(unknown.json()["status"], "NotFound");
    assert_eq!(
        transactions(&emu, &token, SALES, STAGING).await[0]["status"],
        "Cancelled"
    );
}

#[tokio::test]
async fn shared_capacity_allows_eight_refreshes_a_day() {
    let emu = Emu::demo().await;
    let token = emu
        .token_of("pbiops-marketing", crate::support::POWERBI_SCOPE)
        .await;
    let marketing = group(&emu, MARKETING_NAME);
    let path = format!("/v1.0/myorg/groups/{marketing}/dataflows/{CAMPAIGN}/refreshes");
    let body = Some(json!({"notifyOption": "NoNotification"}));
    // Seven seeded in the last 24 h: one more is allowed (polls 1: one read ends it).
    assert_eq!(
        emu.post(&path, Some(&token), body.clone()).await.status,
        200
    );
    transactions(&emu, &token, &marketing, CAMPAIGN).await;
    transactions(&emu, &token, &marketing, CAMPAIGN).await;
    let refused = emu.post(&path, Some(&token), body).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json(),
        json!({"error": {"code": "DailyDataflowRefreshLimitExceeded",
            "message": "Skipping dataflow refresh as number of auto refreshes in last 24 hours (8) exceeded allowed limit 8"}})
    );
}

#[tokio::test]
async fn lineage_links_one_dataflow_to_three_models_in_two_workspaces() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let finance = group(&emu, "Finance");
    let mut readers = vec![];
    for ws in [SALES, finance.as_str()] {
        let reply = emu
            .get(
                &format!("/v1.0/myorg/groups/{ws}/datasets/upstreamDataflows"),
                Some(&token),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        for link in reply.json()["value"].as_array().unwrap() {
            assert_eq!(link["workspaceObjectId"], SALES);
            if link["dataflowObjectId"] == STAGING {
                readers.push(link["datasetObjectId"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(readers.len(), 3);
    let upstream = emu
        .get(
            &format!("/v1.0/myorg/groups/{SALES}/dataflows/{STAGING}/upstreamDataflows"),
            Some(&token),
        )
        .await;
    assert_eq!(
        upstream.json(),
        json!({"value": [{"targetDataflowId": CUSTOMERS, "groupId": SALES}]})
    );
}

#[tokio::test]
async fn reports_name_their_model_and_its_workspace() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let finance = group(&emu, "Finance");
    let reply = emu
        .get(
            &format!("/v1.0/myorg/groups/{finance}/reports"),
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, 200);
    let reports = reply.json()["value"].as_array().unwrap().clone();
    assert_eq!(reports[0]["reportType"], "PowerBIReport");
    assert_eq!(reports[0]["datasetWorkspaceId"], SALES);
    assert_eq!(
        reports[0]["datasetId"],
        emu.dataset_id("Sales", "Sales Model")
    );
    for field in ["id", "name", "webUrl", "embedUrl"] {
        assert!(reports[0][field].is_string(), "{field}");
    }
    assert_eq!(reports[1]["reportType"], "PaginatedReport");
    assert!(reports[1].get("datasetId").is_none());
    let id = reports[1]["id"].as_str().unwrap();
    let one = emu
        .get(
            &format!("/v1.0/myorg/groups/{finance}/reports/{id}"),
            Some(&token),
        )
        .await;
    assert_eq!(one.json()["name"], "Invoice Print");
    assert!(
        one.json()["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#reports/$entity")
    );
    let missing = emu
        .get(
            &format!("/v1.0/myorg/groups/{finance}/reports/{SALES}"),
            Some(&token),
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "ItemNotFound".to_owned())
    );
}

#[tokio::test]
async fn the_control_api_lists_and_completes_transactions() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.put(
        &format!("/_emulator/dataflows/{STAGING}/refresh"),
        json!({}),
    )
    .await;
    emu.post(
        &format!("/v1.0/myorg/groups/{SALES}/dataflows/{STAGING}/refreshes"),
        Some(&token),
        Some(json!({"notifyOption": "NoNotification"})),
    )
    .await;
    let all = emu.get("/_emulator/transactions", None).await.json();
    let running: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "InProgress")
        .collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["source"], "api");
    let id = running[0]["id"].as_str().unwrap();
    let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let done = emu
        .post(
            &format!("/_emulator/transactions/{encoded}/complete"),
            None,
            Some(json!({"outcome": "Failed", "error": "boom"})),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        (
            done.json()["status"].as_str(),
            done.json()["error"].as_str()
        ),
        (Some("Failed"), Some("boom"))
    );
    let again = emu
        .post(
            &format!("/_emulator/transactions/{encoded}/complete"),
            None,
            None,
        )
        .await;
    assert_eq!(again.status, 400);
}
