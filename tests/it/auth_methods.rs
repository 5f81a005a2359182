//! Every way a profile can authenticate, against the emulator's Entra ID: a certificate
//! assertion, a federated token file, a managed identity (IMDS and App Service), and each
//! misconfiguration with its exit code and the variable it names.

use serde_json::{Value, json};

use crate::support::*;

const CERT_APP: &str = "7d1c2b1e-0000-4000-8000-0000000000c2";
const FED_APP: &str = "7d1c2b1e-0000-4000-8000-0000000000c3";
const MI_CLIENT: &str = "7d1c2b1e-0000-4000-8000-0000000000c4";
const ISSUER: &str = "https://oidc.kestra.example.test";
const SUBJECT: &str = "system:serviceaccount:kestra:pbiops";
/// The App Service identity header is a secret too.
const ID_HEADER: &str = "CANARY-IDHEADER-51f0";

struct Keys {
    /// Certificate and private key, as a profile's PEM.
    cert_pem: String,
    /// A line of the private key's body: it must never be printed.
    key_line: String,
    /// The federated issuer's key pair.
    issuer: rcgen::KeyPair,
}

fn keys() -> (Keys, Value) {
    let cert_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("key");
    let cert = rcgen::CertificateParams::new(vec!["pbiops-test".into()])
        .expect("params")
        .self_signed(&cert_key)
        .expect("cert");
    let issuer = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("issuer key");
    let key_pem = cert_key.serialize_pem();
    let key_line = key_pem.lines().nth(3).expect("key body").to_string();
    let mut s = scenario();
    let clients = s["tenants"][0]["clients"].as_array_mut().expect("clients");
    clients.push(json!({"clientId": CERT_APP, "certificates": [{"pem": cert.pem()}]}));
    clients.push(json!({"clientId": FED_APP, "federatedCredentials": [
        {"issuer": ISSUER, "subject": SUBJECT, "publicKeyPem": issuer.public_key_pem()}]}));
    s["managedIdentities"] = json!([{"clientId": MI_CLIENT, "tenantId": TENANT, "default": true}]);
    s["identityHeader"] = json!(ID_HEADER);
    (
        Keys {
            cert_pem: format!("{}{key_pem}", cert.pem()),
            key_line,
            issuer,
        },
        s,
    )
}

/// A federated token from the test issuer, as AKS would project it.
fn federated_token(issuer: &rcgen::KeyPair, subject: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"iss": ISSUER, "sub": subject, "aud": "api://AzureADTokenExchange", "iat": now, "nbf": now, "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(issuer.serialize_pem().as_bytes())
        .expect("issuer key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign")
}

/// The emulator's endpoints without the default profile's secret.
fn base_env(emu: &pbiops_emulator::Emulator) -> Vec<(String, String)> {
    env(emu)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("PBIOPS_TENANT") && !k.starts_with("PBIOPS_CLIENT"))
        .collect()
}

fn with(mut env: Vec<(String, String)>, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn assert_no_leak(run: &Run, needles: &[&str]) {
    for needle in needles {
        assert!(
            !run.stdout.contains(needle) && !run.stderr.contains(needle),
            "{needle} leaked"
        );
    }
}

fn task(profile: &str) -> Value {
    let mut t = refresh_task("Sales", "Sales Model");
    t["profile"] = json!(profile);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_profile_signs_its_assertion_and_refreshes() {
    let (keys, s) = keys();
    let emu = emulator(s).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pbiops.pem");
    std::fs::write(&path, &keys.cert_pem).expect("pem");
    let env = with(
        base_env(&emu),
        &[
            ("PBIOPS_PROFILE_CERT_TENANT_ID", TENANT),
            ("PBIOPS_PROFILE_CERT_CLIENT_ID", CERT_APP),
            (
                "PBIOPS_PROFILE_CERT_CERTIFICATE_PATH",
                path.to_str().expect("path"),
            ),
        ],
    );
    let refreshed = run(Input::Env(task("cert")), &env).await;
    assert_eq!(refreshed.code, 0, "{}", refreshed.stdout);
    assert_eq!(refreshed.outputs().status.as_deref(), Some("Completed"));
    assert_no_leak(&refreshed, &[&keys.key_line]);
    let tokens = requests_to(&emu, "token").await;
    assert_eq!(tokens[0]["clientId"], json!(CERT_APP));

    // The same PEM, base64-encoded in the variable itself.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&keys.cert_pem);
    let env = with(
        base_env(&emu),
        &[
            ("PBIOPS_PROFILE_CERT_TENANT_ID", TENANT),
            ("PBIOPS_PROFILE_CERT_CLIENT_ID", CERT_APP),
            ("PBIOPS_PROFILE_CERT_CERTIFICATE", &b64),
        ],
    );
    let got = run(
        Input::Env(json!({"operation": "token.get", "profile": "cert"})),
        &env,
    )
    .await;
    assert_eq!(got.code, 0, "{}", got.stdout);
    assert_no_leak(&got, &[&keys.key_line, &b64[..40]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_app_does_not_know_exits_3_with_the_upload_hint() {
    let (_, s) = keys();
    let (other, _) = keys();
    let emu = emulator(s).await;
    let env = with(
        base_env(&emu),
        &[
            ("PBIOPS_TENANT_ID", TENANT),
            ("PBIOPS_CLIENT_ID", CERT_APP),
            ("PBIOPS_CERTIFICATE", &other.cert_pem),
        ],
    );
    let run = run(Input::Env(refresh_task("Sales", "Sales Model")), &env).await;
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert!(
        run.outputs()
            .error_code
            .expect("code")
            .starts_with("AADSTS7000"),
        "{}",
        run.log_text()
    );
    assert!(
        run.log_text().contains("upload this certificate"),
        "{}",
        run.log_text()
    );
    assert_no_leak(&run, &[&other.key_line]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_file_is_exchanged_and_a_stranger_is_refused() {
    let (keys, s) = keys();
    let emu = emulator(s).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    std::fs::write(&file, federated_token(&keys.issuer, SUBJECT)).expect("token file");
    // As AKS workload identity sets it up: the AZURE_* variables fill the default profile.
    let env = with(
        base_env(&emu),
        &[
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", FED_APP),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().expect("path")),
        ],
    );
    let ok = run(Input::Env(refresh_task("Sales", "Sales Model")), &env).await;
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert!(
        ok.logs
            .iter()
            .any(|(level, m)| level == "WARN" && m.contains("AZURE_FEDERATED_TOKEN_FILE"))
    );

    std::fs::write(
        &file,
        federated_token(&keys.issuer, "system:serviceaccount:other:job"),
    )
    .expect("token file");
    let refused = run(Input::Env(refresh_task("Sales", "Sales Model")), &env).await;
    assert_eq!(refused.code, 3);
    assert_eq!(refused.outputs().error_code.as_deref(), Some("AADSTS70021"));
    assert!(
        refused.log_text().contains("Federated credentials"),
        "{}",
        refused.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identities_get_tokens_from_imds_and_app_service() {
    let (_, s) = keys();
    let emu = emulator(s).await;
    let base = emu.base_url();
    let imds = with(
        base_env(&emu),
        &[
            ("PBIOPS_MANAGED_IDENTITY", "system"),
            (
                "PBIOPS_IMDS_URL",
                &format!("{base}/metadata/identity/oauth2/token"),
            ),
        ],
    );
    let run_imds = run(Input::Env(refresh_task("Sales", "Sales Model")), &imds).await;
    assert_eq!(run_imds.code, 0, "{}", run_imds.stdout);
    assert_eq!(requests_to(&emu, "token.imds").await.len(), 1);

    let app_service = with(
        base_env(&emu),
        &[
            ("PBIOPS_MANAGED_IDENTITY", MI_CLIENT),
            ("IDENTITY_ENDPOINT", &format!("{base}/msi/token")),
            ("IDENTITY_HEADER", ID_HEADER),
        ],
    );
    let run_app = run(
        Input::Env(refresh_task("Sales", "Sales Model")),
        &app_service,
    )
    .await;
    assert_eq!(run_app.code, 0, "{}", run_app.stdout);
    assert_no_leak(&run_app, &[ID_HEADER]);

    let wrong = with(
        base_env(&emu),
        &[
            ("PBIOPS_MANAGED_IDENTITY", "system"),
            ("IDENTITY_ENDPOINT", &format!("{base}/msi/token")),
            ("IDENTITY_HEADER", "CANARY-wrong-header"),
        ],
    );
    let refused = run(Input::Env(refresh_task("Sales", "Sales Model")), &wrong).await;
    assert_eq!(refused.code, 3, "{}", refused.stdout);
    assert!(
        refused.log_text().contains("managed identity"),
        "{}",
        refused.log_text()
    );
    assert_no_leak(&refused, &["CANARY-wrong-header"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_misconfigurations_exit_2_naming_the_variable_before_any_request() {
    let (_, s) = keys();
    let emu = emulator(s).await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("PBIOPS_PROFILE_FIN_TENANT_ID", TENANT),
                ("PBIOPS_PROFILE_FIN_CLIENT_ID", CLIENT),
            ],
            "PBIOPS_PROFILE_FIN_CLIENT_SECRET",
        ),
        (
            vec![
                ("PBIOPS_PROFILE_FIN_TENANT_ID", TENANT),
                ("PBIOPS_PROFILE_FIN_CLIENT_ID", CLIENT),
                ("PBIOPS_PROFILE_FIN_CLIENT_SECRET", SECRET),
                ("PBIOPS_PROFILE_FIN_MANAGED_IDENTITY", "system"),
            ],
            "PBIOPS_PROFILE_FIN_MANAGED_IDENTITY",
        ),
        (
            vec![
                ("PBIOPS_PROFILE_FIN_TENANT_ID", TENANT),
                ("PBIOPS_PROFILE_FIN_CLIENT_ID", CLIENT),
                (
                    "PBIOPS_PROFILE_FIN_CERTIFICATE_PATH",
                    "/nonexistent/cert.pem",
                ),
            ],
            "PBIOPS_PROFILE_FIN_CERTIFICATE_PATH",
        ),
        (
            vec![
                ("PBIOPS_PROFILE_FIN_TENANT_ID", TENANT),
                ("PBIOPS_PROFILE_FIN_CLIENT_ID", CLIENT),
                ("PBIOPS_PROFILE_FIN_AUTH", "certificate"),
            ],
            "PBIOPS_PROFILE_FIN_CERTIFICATE_PATH",
        ),
        (
            vec![
                ("PBIOPS_PROFILE_FIN_CLIENT_ID", CLIENT),
                ("PBIOPS_PROFILE_FIN_CLIENT_SECRET", SECRET),
            ],
            "PBIOPS_PROFILE_FIN_TENANT_ID",
        ),
        (
            vec![
                ("PBIOPS_PROFILE_FIN_MANAGED_IDENTITY", "system"),
                ("PBIOPS_PROFILE_FIN_AUTH", "kerberos"),
            ],
            "PBIOPS_PROFILE_FIN_AUTH",
        ),
    ];
    for (vars, named) in cases {
        let env = with(base_env(&emu), &vars);
        let run = run(Input::Env(task("fin")), &env).await;
        assert_eq!(run.code, 2, "{vars:?}: {}", run.stdout);
        assert!(
            run.log_text().contains(named),
            "{vars:?}: {}",
            run.log_text()
        );
    }
    assert!(
        requests(&emu).await.is_empty(),
        "no request for a misconfigured profile"
    );
}
