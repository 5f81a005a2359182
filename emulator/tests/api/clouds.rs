//! Cloud mode: the token endpoint issues tokens only for the emulated cloud's scopes, and the
//! APIs accept only that cloud's audiences.

use crate::support::{Emu, FABRIC_SCOPE, POWERBI_SCOPE, TENANT};
use pbiops_emulator::{Cloud, Scenario};

const GCC_HIGH_SCOPE: &str = "https://high.analysis.usgovcloudapi.net/powerbi/api/.default";

async fn in_cloud(cloud: Cloud) -> Emu {
    let mut scenario = Scenario::demo();
    scenario.cloud = cloud;
    Emu::with(scenario).await
}

async fn token(emu: &Emu, scope: &str) -> (u16, String) {
    let (id, secret, _) = emu.client("pbiops-demo");
    let reply = emu
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", scope),
            ],
        )
        .await;
    let body = reply.json();
    let token = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (
        reply.status,
        if reply.status == 200 {
            token
        } else {
            body["error"].to_string()
        },
    )
}

#[tokio::test]
async fn a_sovereign_cloud_issues_only_its_own_scopes() {
    let emu = in_cloud(Cloud::Usgovhigh).await;
    for refused in [POWERBI_SCOPE, FABRIC_SCOPE] {
        let (status, error) = token(&emu, refused).await;
        assert_eq!(
            (status, error.as_str()),
            (400, "\"invalid_scope\""),
            "{refused}"
        );
    }
    let (status, token) = token(&emu, GCC_HIGH_SCOPE).await;
    assert_eq!(status, 200);
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        200
    );
    // Fabric accepts only a Fabric audience (and GCC High has none).
    assert_eq!(emu.get("/v1/workspaces", Some(&token)).await.status, 401);
}

#[tokio::test]
async fn the_public_cloud_refuses_a_sovereign_scope_and_its_apis_a_sovereign_audience() {
    let emu = in_cloud(Cloud::Public).await;
    let (status, _) = token(&emu, GCC_HIGH_SCOPE).await;
    assert_eq!(status, 400);
    let (_, fabric) = token(&emu, FABRIC_SCOPE).await;
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&fabric)).await.status,
        401
    );
    assert_eq!(Cloud::parse("DoD"), Some(Cloud::Dod));
    assert_eq!(Cloud::parse("mars"), None);
}

#[tokio::test]
async fn managed_identities_answer_for_the_cloud_s_resource_only() {
    let mut scenario = Scenario::demo();
    scenario.cloud = Cloud::China;
    assert!(
        !scenario.managed_identities.is_empty(),
        "the demo has an identity"
    );
    let emu = Emu::with(scenario).await;
    let ask = |resource: &str| {
        format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}")
    };
    let china = emu
        .get_with(
            &ask("https://analysis.chinacloudapi.cn/powerbi/api"),
            &[("Metadata", "true")],
        )
        .await;
    assert_eq!(china.status, 200, "{}", china.body);
    let public = emu
        .get_with(
            &ask("https://analysis.windows.net/powerbi/api"),
            &[("Metadata", "true")],
        )
        .await;
    assert_eq!(public.status, 400, "{}", public.body);
}
