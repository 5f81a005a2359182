//! The Entra ID token endpoint and how Power BI routes check tokens.

use crate::support::{Emu, FABRIC_SCOPE, POWERBI_SCOPE, TENANT};
use pbiops_emulator::Scenario;
use serde_json::json;

#[tokio::test]
async fn a_valid_request_gets_a_bearer_token_with_the_scenario_lifetime() {
    let emu = Emu::demo().await;
    let (id, secret, _) = emu.client("pbiops-demo");

    let reply = emu
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", POWERBI_SCOPE),
            ],
        )
        .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("emu") && token.len() == 43, "{token}");
    assert!(token[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(reply.header("cache-control"), Some("no-store, no-cache"));
    assert!(reply.header("requestid").is_some());
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn the_tenant_may_be_its_guid() {
    let emu = Emu::demo().await;
    let (id, secret, _) = emu.client("pbiops-demo");
    let tenant_id = emu.scenario.tenants[0].id.clone();
    let reply = emu
        .token_request(
            &tenant_id,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", POWERBI_SCOPE),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn each_documented_mistake_gets_its_aadsts_error() {
    let emu = Emu::demo().await;
    let (id, secret, secret_id) = emu.client("pbiops-demo");
    let unknown_client = "00000000-1111-4222-8333-444444444444";
    // (tenant, form fields, HTTP status, `error`, AADSTS code)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str, u64);
    let cases: Vec<Case> = vec![
        (
            "fabrikam.onmicrosoft.com",
            vec![
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", POWERBI_SCOPE),
            ],
            400,
            "invalid_request",
            90002,
        ),
        (
            TENANT,
            vec![
                ("client_id", unknown_client),
                ("client_secret", &secret),
                ("scope", POWERBI_SCOPE),
            ],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            TENANT,
            vec![
                ("client_id", &id),
                ("client_secret", "wrong"),
                ("scope", POWERBI_SCOPE),
            ],
            401,
            "invalid_client",
            7000215,
        ),
        (
            TENANT,
            vec![
                ("client_id", &id),
                ("client_secret", &secret_id),
                ("scope", POWERBI_SCOPE),
            ],
            401,
            "invalid_client",
            7000215,
        ),
        (
            TENANT,
            vec![
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", "https://analysis.windows.net/powerbi/api"),
            ],
            400,
            "invalid_scope",
            70011,
        ),
        (
            TENANT,
            vec![("client_id", &id), ("scope", POWERBI_SCOPE)],
            401,
            "invalid_client",
            7000218,
        ),
    ];
    for (tenant, mut fields, status, error, code) in cases {
        fields.push(("grant_type", "client_credentials"));
        let reply = emu.token_request(tenant, &fields).await;
        let body = reply.json();
        assert_eq!(
            (reply.status, body["error"].as_str().unwrap()),
            (status, error),
            "{body}"
        );
        assert_eq!(body["error_codes"], json!([code]));
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{description}"
        );
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(body[field].is_string(), "{field} in {body}");
        }
        assert!(!reply.body.contains(&secret), "the secret never comes back");
    }
}

#[tokio::test]
async fn a_wrong_grant_type_is_rejected() {
    let emu = Emu::demo().await;
    let (id, secret, _) = emu.client("pbiops-demo");
    let reply = emu
        .token_request(
            TENANT,
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", POWERBI_SCOPE),
            ],
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str().unwrap()),
        (400, "unsupported_grant_type")
    );
}

#[tokio::test]
async fn power_bi_routes_need_a_live_power_bi_token() {
    let emu = Emu::demo().await;
    let fabric = emu.token_of("pbiops-demo", FABRIC_SCOPE).await;

    let none = emu.get("/v1.0/myorg/groups", None).await;
    let unknown = emu.get("/v1.0/myorg/groups", Some("emu-not-a-token")).await;
    let wrong_audience = emu.get("/v1.0/myorg/groups", Some(&fabric)).await;

    for reply in [&none, &unknown] {
        assert_eq!(
            (reply.status, reply.code()),
            (401, "TokenExpired".to_owned())
        );
        assert_eq!(
            reply.json()["error"]["message"],
            "Access token has expired, resubmit with a new access token"
        );
    }
    assert_eq!(
        (wrong_audience.status, wrong_audience.code()),
        (401, "PowerBINotAuthorizedException".to_owned())
    );
    assert_eq!(
        wrong_audience.json()["error"]["pbi.error"]["code"],
        "PowerBINotAuthorizedException"
    );
    assert!(wrong_audience.header("requestid").is_some());
}

#[tokio::test]
async fn revoked_tokens_stop_working_and_new_ones_work() {
    let emu = Emu::demo().await;
    let old = emu.token().await;
    assert_eq!(emu.get("/v1.0/myorg/groups", Some(&old)).await.status, 200);

    let revoke = emu.post("/_emulator/tokens/revoke", None, None).await;
    assert_eq!(revoke.json()["revoked"], 1);

    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&old)).await.code(),
        "TokenExpired"
    );
    let new = emu.token().await;
    assert_eq!(emu.get("/v1.0/myorg/groups", Some(&new)).await.status, 200);
}

#[tokio::test]
async fn tokens_expire_on_the_emulator_clock() {
    let mut scenario = Scenario::demo();
    scenario.token_lifetime_seconds = 60;
    let emu = Emu::with(scenario).await;
    let token = emu.token().await;
    emu.post(
        "/_emulator/clock/advance",
        None,
        Some(json!({"seconds": 61})),
    )
    .await;
    let reply = emu.get("/v1.0/myorg/groups", Some(&token)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "TokenExpired".to_owned())
    );
}

#[tokio::test]
async fn the_request_log_names_the_client_but_never_records_the_secret() {
    let emu = Emu::demo().await;
    let (id, secret, _) = emu.client("pbiops-demo");
    let token = emu.token().await;
    emu.get("/v1.0/myorg/groups", Some(&token)).await;

    let log = emu.get("/_emulator/requests", None).await;
    assert!(!log.body.contains(&secret));
    assert!(!log.body.contains("client_secret"));
    let entries = log.json();
    assert_eq!(entries[0]["route"], "token");
    assert_eq!(entries[0]["clientId"], id.as_str());
    assert_eq!(entries[0]["body"], json!(null));
    assert_eq!(entries[1]["route"], "groups");
    assert_eq!(entries[1]["clientId"], id.as_str());
    assert_eq!(entries[1]["status"], 200);
}
