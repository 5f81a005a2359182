//! Certificate and federated client assertions on the token endpoint. Certificates are built at
//! test time with rcgen from the fixed RSA keys in `tests/api/keys` (test-only keys).

use crate::support::{Emu, POWERBI_SCOPE, TENANT};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pbiops_emulator::Scenario;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const KEY_A: &str = include_str!("keys/rsa-a.pem");
pub const KEY_B: &str = include_str!("keys/rsa-b.pem");
pub const KEY_C: &str = include_str!("keys/rsa-c.pem");
pub const CERT_APP: &str = "5b0c7e43-2b6e-4f1c-9f0e-6f2a0c1d0001";
pub const FED_APP: &str = "5b0c7e43-2b6e-4f1c-9f0e-6f2a0c1d0002";
pub const FED_ISSUER: &str = "https://oidc.prod-aks.azure.com/tenant/issuer/";
pub const FED_SUBJECT: &str = "system:serviceaccount:kestra:pbiops";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A self-signed certificate for `key_pem`: (PEM, DER).
pub fn certificate(key_pem: &str) -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::from_pem(key_pem).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["pbiops-test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), cert.der().to_vec())
}

/// The public key (SPKI PEM) of `key_pem`.
pub fn public_key(key_pem: &str) -> String {
    rcgen::KeyPair::from_pem(key_pem).unwrap().public_key_pem()
}

/// The demo scenario plus an app with certificate A and an app with a federated credential
/// whose issuer signs with key C.
pub fn scenario() -> Scenario {
    let mut scenario = Scenario::demo();
    let (cert_a, _) = certificate(KEY_A);
    let extra = json!([
        {"clientId": CERT_APP, "displayName": "cert-app", "certificates": [{"pem": cert_a}]},
        {"clientId": FED_APP, "displayName": "fed-app", "federatedCredentials": [
            {"issuer": FED_ISSUER, "subject": FED_SUBJECT, "publicKeyPem": public_key(KEY_C)}]}
    ]);
    let extra: Vec<pbiops_emulator::scenario::ClientApp> = serde_json::from_value(extra).unwrap();
    scenario.tenants[0].clients.extend(extra);
    // Both apps may use every workspace of the demo that has a members list.
    for ws in &mut scenario.workspaces {
        if let Some(members) = &mut ws.members {
            members.push(CERT_APP.to_owned());
            members.push(FED_APP.to_owned());
        }
    }
    Scenario::from_json(&serde_json::to_string(&scenario).unwrap()).unwrap()
}

pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A certificate assertion signed with `key_pem`, naming the certificate `cert_der`.
pub fn signed(alg: Algorithm, key_pem: &str, cert_der: &[u8], claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der)));
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Claims of a good certificate assertion for `emu`.
pub fn claims(emu: &Emu, client_id: &str) -> Value {
    let now = unix_now();
    json!({
        "aud": format!("{}/{TENANT}/oauth2/v2.0/token", emu.emulator.base_url()),
        "iss": client_id, "sub": client_id, "jti": uuid_like(), "nbf": now, "iat": now, "exp": now + 600
    })
}

fn uuid_like() -> String {
    format!("{:x}", Sha256::digest(unix_now().to_string()))[..32].to_owned()
}

/// A federated (external) token signed by `key_pem`.
pub fn external_token(key_pem: &str, subject: &str, exp_in: i64) -> String {
    let now = unix_now();
    let claims = json!({"iss": FED_ISSUER, "sub": subject, "aud": ["api://AzureADTokenExchange"],
                        "iat": now, "nbf": now, "exp": now + exp_in});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("issuer-key-1".to_owned());
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A token request with an assertion for `client_id`.
pub async fn with_assertion(emu: &Emu, client_id: &str, assertion: &str) -> crate::support::Reply {
    emu.token_request(
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", POWERBI_SCOPE),
        ],
    )
    .await
}

fn assert_aadsts(reply: &crate::support::Reply, status: u16, error: &str, code: u64) {
    let body = reply.json();
    assert_eq!(
        (reply.status, body["error"].as_str().unwrap_or_default()),
        (status, error),
        "{body}"
    );
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
}

#[tokio::test]
async fn a_certificate_assertion_signed_rs256_or_ps256_gets_a_power_bi_token() {
    let emu = Emu::with(scenario()).await;
    let (_, der) = certificate(KEY_A);
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let assertion = signed(alg, KEY_A, &der, &claims(&emu, CERT_APP));
        let reply = with_assertion(&emu, CERT_APP, &assertion).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let token = reply.json()["access_token"].as_str().unwrap().to_owned();
        let groups = emu.get("/v1.0/myorg/groups", Some(&token)).await;
        assert_eq!(groups.status, 200, "{}", groups.body);
    }
    // The log names the client but never holds the assertion.
    let log = emu.get("/_emulator/requests", None).await;
    assert!(!log.body.contains("client_assertion"));
    assert_eq!(log.json()[0]["clientId"], CERT_APP);
}

#[tokio::test]
async fn each_certificate_mistake_gets_its_aadsts_code() {
    let emu = Emu::with(scenario()).await;
    let (_, der_a) = certificate(KEY_A);
    let (_, der_b) = certificate(KEY_B);
    let good = claims(&emu, CERT_APP);
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let now = unix_now();
    // (assertion, HTTP status, error, AADSTS code)
    let cases = [
        // An unregistered certificate.
        (
            signed(Algorithm::RS256, KEY_B, &der_b, &good),
            401,
            "invalid_client",
            700027,
        ),
        // The registered certificate's thumbprint, signed by another key.
        (
            signed(Algorithm::RS256, KEY_B, &der_a, &good),
            401,
            "invalid_client",
            700027,
        ),
        // Wrong audience (the real login host instead of the emulator's).
        (
            signed(
                Algorithm::RS256,
                KEY_A,
                &der_a,
                &with(
                    "aud",
                    json!(format!(
                        "https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
                    )),
                ),
            ),
            401,
            "invalid_client",
            700023,
        ),
        // iss/sub not the client id.
        (
            signed(
                Algorithm::RS256,
                KEY_A,
                &der_a,
                &with("iss", json!("someone-else")),
            ),
            401,
            "invalid_client",
            700021,
        ),
        // Expired, and not yet valid.
        (
            signed(
                Algorithm::RS256,
                KEY_A,
                &der_a,
                &with("exp", json!(now - 10)),
            ),
            401,
            "invalid_client",
            700024,
        ),
        (
            signed(
                Algorithm::RS256,
                KEY_A,
                &der_a,
                &with("nbf", json!(now + 3600)),
            ),
            401,
            "invalid_client",
            700024,
        ),
        // No jti.
        (
            signed(Algorithm::RS256, KEY_A, &der_a, &{
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("jti");
                c
            }),
            400,
            "invalid_request",
            50027,
        ),
        // Not a JWT at all.
        ("not-a-jwt".to_owned(), 400, "invalid_request", 50027),
    ];
    for (assertion, status, error, code) in cases {
        let reply = with_assertion(&emu, CERT_APP, &assertion).await;
        assert_aadsts(&reply, status, error, code);
        assert!(
            !reply.body.contains(&assertion),
            "the assertion never comes back"
        );
    }
}

#[tokio::test]
async fn an_assertion_expires_on_the_emulator_clock() {
    let emu = Emu::with(scenario()).await;
    let (_, der) = certificate(KEY_A);
    let assertion = signed(Algorithm::RS256, KEY_A, &der, &claims(&emu, CERT_APP));
    assert_eq!(with_assertion(&emu, CERT_APP, &assertion).await.status, 200);
    emu.post(
        "/_emulator/clock/advance",
        None,
        Some(json!({"seconds": 601})),
    )
    .await;
    let reply = with_assertion(&emu, CERT_APP, &assertion).await;
    assert_aadsts(&reply, 401, "invalid_client", 700024);
}

#[tokio::test]
async fn secret_and_assertion_together_or_a_missing_assertion_type_are_refused() {
    let emu = Emu::with(scenario()).await;
    let (id, secret, _) = emu.client("pbiops-demo");
    let both = emu
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", "a.b.c"),
                ("scope", POWERBI_SCOPE),
            ],
        )
        .await;
    assert_aadsts(&both, 400, "invalid_request", 9002313);
    let no_type = emu
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CERT_APP),
                ("client_assertion", "a.b.c"),
                ("scope", POWERBI_SCOPE),
            ],
        )
        .await;
    assert_aadsts(&no_type, 400, "invalid_request", 900144);
    // An app with only a certificate cannot use a secret.
    let secret_for_cert_app = emu
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CERT_APP),
                ("client_secret", "anything"),
                ("scope", POWERBI_SCOPE),
            ],
        )
        .await;
    assert_aadsts(&secret_for_cert_app, 401, "invalid_client", 7000215);
}

#[tokio::test]
async fn a_federated_token_from_the_registered_issuer_is_exchanged() {
    let emu = Emu::with(scenario()).await;
    let reply = with_assertion(&emu, FED_APP, &external_token(KEY_C, FED_SUBJECT, 600)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        emu.get("/v1.0/myorg/groups", Some(&token)).await.status,
        200
    );

    let other_subject = external_token(KEY_C, "system:serviceaccount:other:sa", 600);
    let reply = with_assertion(&emu, FED_APP, &other_subject).await;
    assert_aadsts(&reply, 400, "invalid_request", 70021);
    assert!(
        reply.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("No matching federated identity record found for presented assertion")
    );

    let forged = external_token(KEY_B, FED_SUBJECT, 600);
    assert_aadsts(
        &with_assertion(&emu, FED_APP, &forged).await,
        400,
        "invalid_request",
        70021,
    );

    let expired = external_token(KEY_C, FED_SUBJECT, -5);
    assert_aadsts(
        &with_assertion(&emu, FED_APP, &expired).await,
        401,
        "invalid_client",
        700024,
    );
}

#[tokio::test]
async fn a_scenario_certificate_must_be_a_public_certificate() {
    let text = json!({"tenants": [{"id": "t", "clients": [
        {"clientId": "c", "certificates": [{"pem": KEY_A}]}]}]})
    .to_string();
    let err = Scenario::from_json(&text).unwrap_err();
    assert!(
        err.starts_with("tenants[0].clients[0].certificates[0].pem:"),
        "{err}"
    );
    let text = json!({"tenants": [{"id": "t", "clients": [
        {"clientId": "c", "federatedCredentials": [{"issuer": "i", "subject": "s", "publicKeyPem": "nope"}]}]}]})
    .to_string();
    let err = Scenario::from_json(&text).unwrap_err();
    assert!(
        err.starts_with("tenants[0].clients[0].federatedCredentials[0].publicKeyPem:"),
        "{err}"
    );
}
