//! Managed identity token endpoints (IMDS and App Service) and how each audience is enforced.

use crate::support::{Emu, FABRIC_SCOPE};
use serde_json::json;

const MI_DEFAULT: &str = "8d4a2f6e-3c1b-4e5a-9f7d-2b6c8e0a1f35";
const MI_USER: &str = "c2e9b7a1-5d3f-4b8e-a6c4-7f1e9d2b3a80";
const POWERBI: &str = "https%3A%2F%2Fanalysis.windows.net%2Fpowerbi%2Fapi";
const FABRIC: &str = "https%3A%2F%2Fapi.fabric.microsoft.com";
const FLOW: &str = "https%3A%2F%2Fservice.flow.microsoft.com%2F";

fn imds(resource: &str, client_id: Option<&str>) -> String {
    let mut path =
        format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}");
    if let Some(id) = client_id {
        path.push_str(&format!("&client_id={id}"));
    }
    path
}

#[tokio::test]
async fn imds_needs_the_metadata_header_and_answers_string_numbers() {
    let emu = Emu::demo().await;
    let missing = emu.get(&imds(POWERBI, None), None).await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!({"error": "bad_request_102", "error_description": "Required metadata header not specified"})
    );
    let wrong = emu
        .get_with(&imds(POWERBI, None), &[("Metadata", "True")])
        .await;
    assert_eq!(wrong.status, 400);

    let reply = emu
        .get_with(&imds(POWERBI, None), &[("Metadata", "true")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "expires_on",
            "not_before",
            "refresh_token",
            "resource",
            "token_type"
        ]
    );
    assert!(
        reply.body.starts_with("{\"access_token\":"),
        "documented order"
    );
    assert_eq!(body["expires_in"], "3599");
    assert_eq!(body["refresh_token"], "");
    assert_eq!(body["resource"], "https://analysis.windows.net/powerbi/api");
    assert_eq!(body["token_type"], "Bearer");
    let on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    let before: i64 = body["not_before"].as_str().unwrap().parse().unwrap();
    assert_eq!(on - before, 3599);

    // The default identity is a member of Sales.
    let token = body["access_token"].as_str().unwrap();
    let groups = emu.get("/v1.0/myorg/groups", Some(token)).await;
    assert_eq!(groups.status, 200);
    assert!(groups.body.contains("\"Sales\""));
}

#[tokio::test]
async fn imds_selects_identities_by_client_id_and_knows_three_resources() {
    let emu = Emu::demo().await;
    let metadata = [("Metadata", "true")];
    let user = emu.get_with(&imds(FABRIC, Some(MI_USER)), &metadata).await;
    assert_eq!(user.status, 200, "{}", user.body);
    let flow = emu.get_with(&imds(FLOW, None), &metadata).await;
    assert_eq!(flow.status, 200, "{}", flow.body);

    let unknown = emu
        .get_with(
            &imds(POWERBI, Some("00000000-0000-0000-0000-000000000000")),
            &metadata,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.json()["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
    assert_eq!(unknown.json()["error_description"], "Identity not found");
    let resource = emu
        .get_with(&imds("https%3A%2F%2Fvault.azure.net", None), &metadata)
        .await;
    assert_eq!(resource.json()["error"], "invalid_resource");

    // Only Power BI tokens work on Power BI routes; flow tokens work nowhere.
    for reply in [&user, &flow] {
        let token = reply.json()["access_token"].as_str().unwrap().to_owned();
        let groups = emu.get("/v1.0/myorg/groups", Some(&token)).await;
        assert_eq!(
            (groups.status, groups.code()),
            (401, "PowerBINotAuthorizedException".to_owned())
        );
    }
    let log = emu.get("/_emulator/requests", None).await.json();
    assert_eq!(log[0]["route"], "token.imds");
    assert_eq!(log[0]["clientId"], MI_USER);
    assert_eq!(log[1]["clientId"], serde_json::Value::Null);
}

#[tokio::test]
async fn app_service_checks_the_identity_header() {
    let emu = Emu::demo().await;
    let path = format!("/msi/token?api-version=2019-08-01&resource={POWERBI}");
    let none = emu.get(&path, None).await;
    let wrong = emu
        .get_with(&path, &[("X-IDENTITY-HEADER", "not-the-header")])
        .await;
    for reply in [&none, &wrong] {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(!reply.body.contains("demo-identity-header"));
    }
    let reply = emu
        .get_with(&path, &[("X-IDENTITY-HEADER", "demo-identity-header")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "client_id",
            "expires_on",
            "not_before",
            "resource",
            "token_type"
        ]
    );
    assert!(
        reply
            .body
            .ends_with("\"client_id\":\"8d4a2f6e-3c1b-4e5a-9f7d-2b6c8e0a1f35\"}")
    );
    assert_eq!(body["client_id"], MI_DEFAULT);
    assert!(body["expires_on"].is_string());

    let old = emu
        .get_with(
            &format!("/msi/token?api-version=2017-09-01&resource={POWERBI}"),
            &[("X-IDENTITY-HEADER", "demo-identity-header")],
        )
        .await;
    assert_eq!(old.status, 400);
    let counts = emu.get("/_emulator/counts", None).await.json();
    assert_eq!(counts, json!({"token.appservice": 4}));
}

#[tokio::test]
async fn a_fabric_token_is_refused_by_power_bi_and_faults_reach_the_new_routes() {
    let emu = Emu::demo().await;
    let fabric = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;
    let reply = emu.get("/v1.0/myorg/groups", Some(&fabric)).await;
    assert_eq!(reply.status, 401);

    emu.post(
        "/_emulator/faults",
        None,
        Some(json!({"route": "token.imds", "status": 503})),
    )
    .await;
    let faulted = emu
        .get_with(&imds(POWERBI, None), &[("Metadata", "true")])
        .await;
    assert_eq!(faulted.status, 503);
    assert_eq!(faulted.json()["error"], "temporarily_unavailable");
}
