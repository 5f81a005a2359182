//! Workspaces and models: membership, `$filter`, `$top`, `$skip`, and the item shapes.

use crate::support::{Emu, POWERBI_SCOPE};
use pbiops_emulator::Scenario;
use serde_json::Value;

fn names(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_client_sees_only_the_workspaces_it_is_a_member_of() {
    let emu = Emu::demo().await;
    let demo = emu.token().await;
    let marketing = emu.token_of("pbiops-marketing", POWERBI_SCOPE).await;

    let seen_by_demo = emu.get("/v1.0/myorg/groups", Some(&demo)).await;
    let seen_by_marketing = emu.get("/v1.0/myorg/groups", Some(&marketing)).await;

    assert_eq!(
        names(&seen_by_demo.json()),
        ["Sales", "Finance", "Marketing"]
    );
    assert_eq!(names(&seen_by_marketing.json()), ["Finance", "Marketing"]);
    let body = seen_by_demo.json();
    let context = body["@odata.context"].as_str().unwrap();
    assert_eq!(
        context,
        format!("{}/v1.0/myorg/$metadata#groups", emu.emulator.base_url())
    );
    let sales = &body["value"][0];
    assert_eq!(sales["isOnDedicatedCapacity"], true);
    assert_eq!(sales["isReadOnly"], false);
    assert_eq!(sales["type"], "Workspace");
    assert!(sales["capacityId"].is_string());
    assert_eq!(body["value"][2]["isOnDedicatedCapacity"], false);

    let sales_id = emu.scenario.workspaces[0].id.clone();
    let forbidden = emu
        .get(&format!("/v1.0/myorg/groups/{sales_id}"), Some(&marketing))
        .await;
    assert_eq!(
        (forbidden.status, forbidden.code()),
        (401, "PowerBINotAuthorizedException".to_owned())
    );
}

#[tokio::test]
async fn filter_supports_eq_contains_and_or() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let finance_id = emu.scenario.workspaces[1].id.clone();
    let cases = [
        ("name eq 'Sales'", vec!["Sales"]),
        ("name eq 'sales'", vec!["Sales"]),
        ("contains(name,'an')", vec!["Finance"]),
        (
            "contains(name,'ket') or name eq 'Sales'",
            vec!["Sales", "Marketing"],
        ),
        (&format!("id eq '{finance_id}'") as &str, vec!["Finance"]),
        ("name eq 'Nope'", vec![]),
    ];
    for (filter, expected) in cases {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("$filter", filter)
            .finish();
        let reply = emu
            .get(&format!("/v1.0/myorg/groups?{query}"), Some(&token))
            .await;
        assert_eq!(reply.status, 200, "{filter}: {}", reply.body);
        assert_eq!(names(&reply.json()), expected, "{filter}");
    }
}

#[tokio::test]
async fn a_doubled_quote_escapes_a_quote_in_a_filter() {
    let mut scenario = Scenario::demo();
    scenario.workspaces[1].name = "O'Brien's".to_owned();
    let emu = Emu::with(scenario).await;
    let token = emu.token().await;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("$filter", "name eq 'O''Brien''s'")
        .finish();
    let reply = emu
        .get(&format!("/v1.0/myorg/groups?{query}"), Some(&token))
        .await;
    assert_eq!(names(&reply.json()), ["O'Brien's"]);
}

#[tokio::test]
async fn a_filter_the_emulator_cannot_parse_is_a_400_naming_filter() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let reply = emu
        .get("/v1.0/myorg/groups?$filter=name%20eq%20Sales", Some(&token))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "InvalidRequest".to_owned())
    );
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("$filter")
    );
}

#[tokio::test]
async fn top_and_skip_page_the_workspaces() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let page = emu
        .get("/v1.0/myorg/groups?$top=1&$skip=1", Some(&token))
        .await;
    assert_eq!(names(&page.json()), ["Finance"]);
    let bad = emu.get("/v1.0/myorg/groups?$top=many", Some(&token)).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("$top"));
}

#[tokio::test]
async fn one_workspace_and_its_models_in_the_documented_shape() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let finance_id = emu.scenario.workspaces[1].id.clone();

    let group = emu
        .get(&format!("/v1.0/myorg/groups/{finance_id}"), Some(&token))
        .await;
    assert_eq!(group.json()["name"], "Finance");

    let datasets = emu
        .get(
            &format!("/v1.0/myorg/groups/{finance_id}/datasets"),
            Some(&token),
        )
        .await;
    let body = datasets.json();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#datasets")
    );
    let budgets = names(&body).iter().filter(|n| *n == "Budget").count();
    assert_eq!(budgets, 2, "two models share a name");
    let item = &body["value"][0];
    for field in [
        "id",
        "name",
        "webUrl",
        "addRowsAPIEnabled",
        "configuredBy",
        "isRefreshable",
        "isEffectiveIdentityRequired",
        "isEffectiveIdentityRolesRequired",
        "isOnPremGatewayRequired",
        "targetStorageMode",
        "createdDate",
    ] {
        assert!(!item[field].is_null(), "{field} in {item}");
    }

    let live = emu
        .get(
            &emu.model("Sales", "Live Sales (DirectQuery)"),
            Some(&token),
        )
        .await;
    assert_eq!(live.json()["isRefreshable"], false);
}

#[tokio::test]
async fn unknown_workspaces_and_models_are_item_not_found() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let finance_id = emu.scenario.workspaces[1].id.clone();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let group = emu
        .get(&format!("/v1.0/myorg/groups/{unknown}"), Some(&token))
        .await;
    let dataset = emu
        .get(
            &format!("/v1.0/myorg/groups/{finance_id}/datasets/{unknown}"),
            Some(&token),
        )
        .await;
    for reply in [group, dataset] {
        assert_eq!(
            (reply.status, reply.code()),
            (404, "ItemNotFound".to_owned())
        );
        assert!(reply.header("requestid").is_some());
    }
}
