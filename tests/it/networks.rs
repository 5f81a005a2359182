//! Enterprise networks and sovereign clouds (issue 12): each cloud's scopes against an emulator
//! in that cloud, a CONNECT proxy on loopback (what it saw, what bypassed it, its 407), the
//! emulator over TLS with and without `PBIOPS_CA_FILE`, and Fabric refused where it does not
//! exist. Only loopback is ever contacted: the fake host names below exist only in the test
//! proxy, which maps every CONNECT to the emulator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use pbiops_emulator::{Emulator, Scenario, Tls};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self, DS_SALES, Input, Run, WS_SALES};

/// The proxy password: it must never appear in anything pbiops prints.
const PROXY_PASSWORD: &str = "CANARY-PROXY-PASSWORD-51d2";
/// Names only the test proxy resolves (to the emulator).
const API_HOST: &str = "api.pbiops.test";
const LOGIN_HOST: &str = "login.pbiops.test";
const MI_CLIENT: &str = "7d1c2b1e-0000-4000-8000-0000000000m1";

/// What the test proxy does with a CONNECT.
#[derive(Clone, Copy)]
enum Mode {
    /// Tunnel to the emulator, whatever the host asked for.
    Tunnel(SocketAddr),
    /// Answer 407 Proxy Authentication Required and close.
    Refuse,
}

/// A request head the proxy received: its first line and its `Proxy-Authorization`, if any.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    authorization: Option<String>,
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1.
struct Proxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    async fn start(mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, mode, log.clone()));
            }
        });
        Proxy { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("proxy log").clone()
    }
}

async fn handle(mut client: TcpStream, mode: Mode, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_string();
    let authorization = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_string())
    });
    let connect = line.starts_with("CONNECT ");
    seen.lock().expect("proxy log").push(Seen {
        line,
        authorization,
    });
    match (mode, connect) {
        (Mode::Tunnel(target), true) => {
            let Ok(mut upstream) = TcpStream::connect(target).await else {
                return;
            };
            if client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_ok()
            {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }
        (Mode::Refuse, _) => {
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        }
        (Mode::Tunnel(_), false) => {
            let _ = client
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    }
}

/// The suite's scenario in `cloud`, with a system-assigned managed identity.
fn scenario_in(cloud: &str) -> Value {
    let mut s = support::scenario();
    s["cloud"] = json!(cloud);
    s["managedIdentities"] =
        json!([{"clientId": MI_CLIENT, "tenantId": support::TENANT, "default": true}]);
    s
}

fn parse(scenario: &Value) -> Scenario {
    Scenario::from_json(&scenario.to_string()).expect("valid scenario")
}

/// An emulator over TLS whose certificate also covers the test proxy's fake hosts; its CA is
/// written to a file in a fresh directory.
async fn tls_emulator(scenario: &Value) -> (Emulator, std::path::PathBuf) {
    let tls = Tls::generate(&[API_HOST.into(), LOGIN_HOST.into()]).expect("certificates");
    let ca = tempfile::tempdir().expect("dir").keep().join("ca.pem");
    std::fs::write(&ca, tls.ca_pem()).expect("CA file");
    let emu = pbiops_emulator::spawn_tls(parse(scenario), "127.0.0.1:0", tls)
        .await
        .expect("emulator starts");
    (emu, ca)
}

fn set(env: &mut Vec<(String, String)>, name: &str, value: impl Into<String>) {
    env.retain(|(k, _)| k != name);
    env.push((name.to_string(), value.into()));
}

fn refresh() -> Value {
    support::refresh_task(WS_SALES, DS_SALES)
}

/// Asserts the run printed nothing of the proxy's credentials.
fn assert_no_proxy_secret(run: &Run) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("svc:{PROXY_PASSWORD}"));
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(PROXY_PASSWORD),
            "the proxy password leaked:\n{text}"
        );
        assert!(
            !text.contains(&encoded),
            "the proxy credentials leaked:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cloud_asks_for_its_own_scope_and_the_emulator_in_that_cloud_accepts_the_run() {
    for cloud in ["public", "usgov", "usgovhigh", "dod", "china"] {
        let emu = support::emulator(scenario_in(cloud)).await;
        let mut env = support::env(&emu);
        set(&mut env, "PBIOPS_CLOUD", cloud);
        let run = support::run(Input::Env(refresh()), &env).await;
        assert_eq!(run.code, 0, "{cloud}: {}", run.log_text());
        assert_eq!(
            support::requests_to(&emu, "token").await.len(),
            1,
            "{cloud}: one token request"
        );
        assert_eq!(
            support::refreshes_of(&emu, DS_SALES).await.len(),
            2,
            "{cloud}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_s_emulator_refuses_another_cloud_s_scope_and_a_profile_can_name_its_cloud() {
    let emu = support::emulator(scenario_in("usgovhigh")).await;
    // The settings say public: the GCC High token endpoint refuses the public scope.
    let run = support::run_task(&emu, refresh()).await;
    assert_eq!(run.code, 3, "{}", run.log_text());
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("AADSTS70011"));
    assert!(
        out.error_message
            .as_deref()
            .is_some_and(|m| m.contains("analysis.windows.net")),
        "{:?}",
        out.error_message
    );
    assert!(
        support::refreshes_of(&emu, DS_SALES).await.len() < 2,
        "no refresh was triggered"
    );

    // The same profile, named and put in GCC High on its own, is accepted.
    let mut env: Vec<(String, String)> = support::env(&emu)
        .into_iter()
        .map(|(k, v)| match k.strip_prefix("PBIOPS_") {
            Some(f @ ("TENANT_ID" | "CLIENT_ID" | "CLIENT_SECRET")) => {
                (format!("PBIOPS_PROFILE_GOV_{f}"), v)
            }
            _ => (k, v),
        })
        .collect();
    set(&mut env, "PBIOPS_PROFILE_GOV_CLOUD", "usgovhigh");
    let mut task = refresh();
    task["profile"] = json!("gov");
    let run = support::run(Input::Env(task), &env).await;
    assert_eq!(run.code, 0, "{}", run.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_is_refused_before_anything_is_sent_in_a_cloud_without_it() {
    let emu = support::emulator(scenario_in("china")).await;
    let mut env = support::env(&emu);
    set(&mut env, "PBIOPS_CLOUD", "china");
    let run = support::run(
        Input::Env(json!({"operation": "token.get", "resource": "fabric"})),
        &env,
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.log_text());
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("InvalidSettings"));
    let message = out.error_message.unwrap_or_default();
    assert!(
        message.contains("`PBIOPS_CLOUD`")
            && message.contains("Fabric")
            && message.contains("`china`"),
        "{message}"
    );
    assert!(support::requests(&emu).await.is_empty(), "nothing was sent");
    // A Dataflow Gen2 refresh: the same refusal, and nothing reaches Fabric.
    let run = support::run(
        Input::Env(
            json!({"operation": "dataflow.refresh", "workspace": WS_SALES,
                          "dataflow": support::ITEM_GEN2, "generation": 2,
                          "poll": {"min": 0.01, "max": 0.05}, "timeout": "PT60S"}),
        ),
        &env,
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.log_text());
    assert_eq!(run.outputs().error_code.as_deref(), Some("InvalidSettings"));
    let fabric: Vec<Value> = support::requests(&emu)
        .await
        .into_iter()
        .filter(|r| {
            r["route"]
                .as_str()
                .is_some_and(|r| r.starts_with("fabric."))
        })
        .collect();
    assert!(fabric.is_empty(), "nothing reached Fabric: {fabric:?}");
    // Power BI works in the same cloud.
    let run = support::run(Input::Env(refresh()), &env).await;
    assert_eq!(run.code, 0, "{}", run.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_emulator_s_ca_in_pbiops_ca_file_works() {
    let (emu, ca) = tls_emulator(&scenario_in("public")).await;
    let mut env = support::env(&emu);
    assert!(emu.base_url().starts_with("https://127.0.0.1:"));
    set(&mut env, "PBIOPS_CA_FILE", ca.display().to_string());
    let run = support::run(Input::Env(refresh()), &env).await;
    assert_eq!(run.code, 0, "{}", run.log_text());
    assert_eq!(run.outputs().status.as_deref(), Some("Completed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_at_once_naming_the_host_without_retrying() {
    let (emu, _ca) = tls_emulator(&scenario_in("public")).await;
    let mut env = support::env(&emu);
    set(&mut env, "PBIOPS_HTTP_RETRIES", "6");
    let started = Instant::now();
    let run = support::run(Input::Env(refresh()), &env).await;
    let elapsed = started.elapsed();
    println!("untrusted certificate: exit {} after {elapsed:?}", run.code);
    assert_eq!(run.code, 9, "{}", run.log_text());
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("UntrustedCertificate"));
    let message = out.error_message.unwrap_or_default();
    assert!(
        message.contains("certificate of 127.0.0.1") && message.contains("unknown issuer"),
        "{message}"
    );
    let log = run.log_text();
    assert!(
        log.contains("PBIOPS_CA_FILE") && log.contains("update-ca-certificates"),
        "{log}"
    );
    assert_eq!(emu.tls_handshakes(), Some(1), "one attempt, no retry");

    // A CA file that does not hold the signing root: the same code, and the hint says so.
    let other = Tls::generate(&[]).expect("another CA");
    let path = tempfile::tempdir().expect("dir").keep().join("other.pem");
    std::fs::write(&path, other.ca_pem()).expect("write");
    set(&mut env, "PBIOPS_CA_FILE", path.display().to_string());
    let run = support::run(Input::Env(refresh()), &env).await;
    assert_eq!(run.code, 9, "{}", run.log_text());
    assert!(
        run.log_text().contains("is set but does not hold"),
        "{}",
        run.log_text()
    );
    assert_eq!(emu.tls_handshakes(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_goes_through_the_proxy_while_loopback_and_the_identity_endpoint_bypass_it() {
    let (emu, ca) = tls_emulator(&scenario_in("public")).await;
    let proxy = Proxy::start(Mode::Tunnel(emu.addr())).await;
    let port = emu.addr().port();
    let proxy_url = format!("http://{}", proxy.addr);
    let env: Vec<(String, String)> = [
        ("PBIOPS_MANAGED_IDENTITY", "system".to_string()),
        (
            "PBIOPS_IMDS_URL",
            format!("https://127.0.0.1:{port}/metadata/identity/oauth2/token"),
        ),
        (
            "PBIOPS_AUTHORITY_URL",
            format!("https://{LOGIN_HOST}:{port}"),
        ),
        (
            "PBIOPS_POWERBI_URL",
            format!("https://{API_HOST}:{port}/v1.0/myorg"),
        ),
        ("PBIOPS_CA_FILE", ca.display().to_string()),
        ("PBIOPS_ODBC", "none".to_string()),
        ("HTTPS_PROXY", proxy_url.clone()),
        ("http_proxy", proxy_url),
        // Names neither loopback nor the identity endpoint: they bypass the proxy anyway.
        ("NO_PROXY", "example.com".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let run = support::run(Input::Env(refresh()), &env).await;
    assert_eq!(run.code, 0, "{}", run.log_text());
    let seen = proxy.seen();
    assert!(
        !seen.is_empty(),
        "the Power BI calls went through the proxy"
    );
    for s in &seen {
        assert_eq!(
            s.line,
            format!("CONNECT {API_HOST}:{port} HTTP/1.1"),
            "{seen:?}"
        );
    }
    let imds = requests_over_tls(&emu, &ca).await;
    assert_eq!(
        imds.iter().filter(|r| r["route"] == "token.imds").count(),
        1,
        "the identity endpoint was reached directly: {imds:?}"
    );

    // A service principal: the token request goes through the proxy too.
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| !k.starts_with("PBIOPS_MANAGED") && k != "PBIOPS_IMDS_URL")
        .collect();
    set(&mut env, "PBIOPS_TENANT_ID", support::TENANT);
    set(&mut env, "PBIOPS_CLIENT_ID", support::CLIENT);
    set(&mut env, "PBIOPS_CLIENT_SECRET", support::SECRET);
    let before = proxy.seen().len();
    let run = support::run(Input::Env(refresh()), &env).await;
    assert_eq!(run.code, 0, "{}", run.log_text());
    let lines: Vec<String> = proxy.seen()[before..]
        .iter()
        .map(|s| s.line.clone())
        .collect();
    assert_eq!(
        lines.first().map(String::as_str),
        Some(format!("CONNECT {LOGIN_HOST}:{port} HTTP/1.1").as_str()),
        "{lines:?}"
    );
    assert!(lines[1..].iter().all(|l| l.contains(API_HOST)), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_asking_for_credentials_is_a_configuration_error_with_one_attempt() {
    let proxy = Proxy::start(Mode::Refuse).await;
    let env: Vec<(String, String)> = [
        ("PBIOPS_TENANT_ID", support::TENANT.to_string()),
        ("PBIOPS_CLIENT_ID", support::CLIENT.to_string()),
        ("PBIOPS_CLIENT_SECRET", support::SECRET.to_string()),
        ("PBIOPS_AUTHORITY_URL", format!("https://{LOGIN_HOST}:443")),
        (
            "PBIOPS_POWERBI_URL",
            format!("https://{API_HOST}/v1.0/myorg"),
        ),
        ("PBIOPS_ODBC", "none".to_string()),
        ("PBIOPS_HTTP_RETRIES", "6".to_string()),
        (
            "HTTPS_PROXY",
            format!("http://svc:{PROXY_PASSWORD}@{}", proxy.addr),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let run = support::run(Input::Env(refresh()), &env).await;
    assert_no_proxy_secret(&run);
    assert_eq!(run.code, 9, "{}", run.log_text());
    let out = run.outputs();
    assert_eq!(
        out.error_code.as_deref(),
        Some("ProxyAuthenticationRequired")
    );
    let message = out.error_message.unwrap_or_default();
    assert!(
        message.contains(LOGIN_HOST) && message.contains(&format!("http://{}", proxy.addr)),
        "{message}"
    );
    assert!(
        run.log_text()
            .contains("refused the credentials in HTTPS_PROXY")
    );
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "one attempt, no retry: {seen:?}");
    assert_eq!(seen[0].line, format!("CONNECT {LOGIN_HOST}:443 HTTP/1.1"));
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("svc:{PROXY_PASSWORD}"));
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Basic {expected}").as_str()),
        "the credentials of the proxy URL were offered"
    );
}

/// The request log of a TLS emulator (the suite's helper speaks plain HTTP).
async fn requests_over_tls(emu: &Emulator, ca: &std::path::Path) -> Vec<Value> {
    let pem = std::fs::read(ca).expect("CA");
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("CA parses"))
        .build()
        .expect("client");
    let text = client
        .get(format!("{}/_emulator/requests", emu.base_url()))
        .send()
        .await
        .expect("control call")
        .text()
        .await
        .expect("body");
    match serde_json::from_str(&text).expect("JSON") {
        Value::Array(items) => items,
        other => panic!("request log: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cloud_without_fabric_the_checks_and_renewals_leave_fabric_out_and_detection_finds_gen1()
 {
    let emu = support::emulator(scenario_in("china")).await;
    let mut env = support::env(&emu);
    set(&mut env, "PBIOPS_CLOUD", "china");
    let check = support::run(Input::Env(json!({"operation": "credentials.check"})), &env).await;
    assert_eq!(check.code, 0, "{}", check.log_text());
    // A dataflow named without its generation: found among Power BI's, Fabric never asked.
    let refresh = support::run(
        Input::Env(
            json!({"operation": "dataflow.refresh", "workspace": "Sales",
                          "dataflow": "Sales Staging", "poll": {"min": 0.01, "max": 0.05},
                          "timeout": "PT60S"}),
        ),
        &env,
    )
    .await;
    assert_eq!(refresh.code, 0, "{}", refresh.log_text());
    assert_eq!(refresh.outputs().generation, Some(1));
    let dir = tempfile::tempdir().expect("dir");
    set(
        &mut env,
        "PBIOPS_ODBC",
        format!(
            "Driver={{SQLite3}};Database={};",
            dir.path().join("pbiops.db").display()
        ),
    );
    let renew = support::run(Input::Env(json!({"operation": "token.refresh"})), &env).await;
    assert_eq!(renew.code, 0, "{}", renew.log_text());
    let tokens = renew.outputs().tokens.expect("tokens");
    let fabric = tokens
        .iter()
        .find(|t| t["resource"] == "fabric")
        .expect("fabric entry");
    assert_eq!(fabric["action"], "unavailable");
    let fabric_calls: Vec<Value> = support::requests(&emu)
        .await
        .into_iter()
        .filter(|r| {
            r["route"]
                .as_str()
                .is_some_and(|r| r.starts_with("fabric."))
        })
        .collect();
    assert!(fabric_calls.is_empty(), "{fabric_calls:?}");
}
