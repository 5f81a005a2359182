//! The binary with a real store: shared tokens, encryption at rest, the operation log, durable
//! reattach after a killed run, and store failures at start and at the end.
//!
//! SQLite here (a file per test); the store's own tests cover PostgreSQL and MariaDB, and the
//! end-of-run failure below uses PostgreSQL because dropping a schema mid-run is deterministic.

use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::*;

fn sqlite(dir: &std::path::Path) -> String {
    format!(
        "Driver={{SQLite3}};Database={};",
        dir.join("pbiops.db").display()
    )
}

fn with_store(
    emu: &pbiops_emulator::Emulator,
    conn: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env(emu)
        .into_iter()
        .filter(|(k, _)| k != "PBIOPS_ODBC")
        .collect();
    env.push(("PBIOPS_ODBC".into(), conn.into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn history(filter: Value) -> Value {
    json!({"operation": "history", "filter": filter})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_get_shares_one_token_through_the_store_and_never_prints_it() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = with_store(&emu, &sqlite(dir.path()), &[]);
    let first = run(Input::Env(json!({"operation": "token.get"})), &env).await;
    assert_eq!(first.code, 0, "{}", first.stdout);
    assert_eq!(first.outputs().token_source.as_deref(), Some("acquired"));
    assert!(first.outputs().expires_on.is_some());
    assert!(first.outputs().operation_id.is_some());
    let second = run(Input::Env(json!({"operation": "token.get"})), &env).await;
    assert_eq!(second.outputs().token_source.as_deref(), Some("store"));
    assert_eq!(
        requests_to(&emu, "token").await.len(),
        1,
        "the second run reused the stored token"
    );
    // Another resource is another token.
    let fabric = run(
        Input::Env(json!({"operation": "token.get", "resource": "fabric"})),
        &env,
    )
    .await;
    assert_eq!(fabric.outputs().token_source.as_deref(), Some("acquired"));
    assert_eq!(fabric.outputs().resource.as_deref(), Some("fabric"));
    // A refresh run uses the stored token too.
    let refresh = run(Input::Env(refresh_task("Sales", "Sales Model")), &env).await;
    assert_eq!(refresh.code, 0, "{}", refresh.stdout);
    assert_eq!(requests_to(&emu, "token").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_encrypted_at_rest_with_a_key_and_plain_without() {
    let emu = emulator(scenario()).await;
    let plain_dir = tempfile::tempdir().expect("dir");
    let run_plain = run(
        Input::Env(json!({"operation": "token.get"})),
        &with_store(&emu, &sqlite(plain_dir.path()), &[]),
    )
    .await;
    assert_eq!(run_plain.code, 0);
    let plain = std::fs::read(plain_dir.path().join("pbiops.db")).expect("db");
    assert!(
        contains(&plain, TOKEN_PREFIX.as_bytes()),
        "without a key the token is stored as-is"
    );

    let key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="; // 32 bytes, base64
    let enc_dir = tempfile::tempdir().expect("dir");
    let env = with_store(&emu, &sqlite(enc_dir.path()), &[("PBIOPS_TOKEN_KEY", key)]);
    let run_enc = run(Input::Env(json!({"operation": "token.get"})), &env).await;
    assert_eq!(run_enc.code, 0, "{}", run_enc.stdout);
    let encrypted = std::fs::read(enc_dir.path().join("pbiops.db")).expect("db");
    assert!(
        !contains(&encrypted, TOKEN_PREFIX.as_bytes()),
        "with a key the token is encrypted"
    );
    let again = run(Input::Env(json!({"operation": "token.get"})), &env).await;
    assert_eq!(
        again.outputs().token_source.as_deref(),
        Some("store"),
        "and it decrypts"
    );

    let wrong = with_store(
        &emu,
        &sqlite(enc_dir.path()),
        &[(
            "PBIOPS_TOKEN_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )],
    );
    let refused = run(Input::Env(json!({"operation": "token.get"})), &wrong).await;
    assert_eq!(refused.code, 7, "{}", refused.stdout);
    assert!(refused.log_text().contains("PBIOPS_TOKEN_KEY"));
    let bad = with_store(
        &emu,
        &sqlite(enc_dir.path()),
        &[("PBIOPS_TOKEN_KEY", "short")],
    );
    assert_eq!(
        run(Input::Env(json!({"operation": "token.get"})), &bad)
            .await
            .code,
        2
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_renews_what_expires_soon_and_leaves_the_rest() {
    let mut s = scenario();
    s["tokenLifetimeSeconds"] = json!(900);
    let emu = emulator(s).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = with_store(&emu, &sqlite(dir.path()), &[]);
    let task = json!({"operation": "token.refresh", "within": "PT10M"});
    let first = run(Input::Env(task.clone()), &env).await;
    assert_eq!(first.code, 0, "{}", first.stdout);
    assert_eq!(
        (first.outputs().renewed, first.outputs().failed),
        (Some(2), Some(0)),
        "powerbi and fabric for the default profile"
    );
    let second = run(Input::Env(task), &env).await;
    assert_eq!(
        second.outputs().renewed,
        Some(0),
        "15-minute tokens are not within 10 minutes of expiry"
    );
    let third = run(
        Input::Env(json!({"operation": "token.refresh", "within": "PT20M"})),
        &env,
    )
    .await;
    assert_eq!(third.outputs().renewed, Some(2));
    let tokens = third.outputs().tokens.expect("tokens");
    assert!(
        tokens
            .iter()
            .all(|t| t["action"] == "renewed" && t["expiresOn"].is_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_check_reports_each_profile_and_fails_on_any() {
    let emu = emulator(scenario()).await;
    let mut env = env(&emu);
    env.extend([
        (
            "PBIOPS_PROFILE_BROKEN_TENANT_ID".to_string(),
            TENANT.to_string(),
        ),
        (
            "PBIOPS_PROFILE_BROKEN_CLIENT_ID".to_string(),
            CLIENT.to_string(),
        ),
        (
            "PBIOPS_PROFILE_BROKEN_CLIENT_SECRET".to_string(),
            SECRET_ID.to_string(),
        ),
    ]);
    let run = run(Input::Env(json!({"operation": "credentials.check"})), &env).await;
    assert_eq!(run.code, 3, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!((out.checked, out.failed), (Some(2), Some(1)));
    let profiles = out.profiles.expect("profiles");
    let ok = profiles
        .iter()
        .find(|p| p["profile"] == "default")
        .expect("default");
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["powerbiWorkspaces"], 3);
    assert_eq!(ok["fabricWorkspaces"], 3);
    let broken = profiles
        .iter()
        .find(|p| p["profile"] == "broken")
        .expect("broken");
    assert_eq!(broken["errorCode"], "AADSTS7000215");
    assert!(
        broken["hint"]
            .as_str()
            .expect("hint")
            .contains("secret's ID")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_recorded_and_history_queries_the_log() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = with_store(
        &emu,
        &sqlite(dir.path()),
        &[
            ("KESTRA_EXECUTION_ID", "exec-42"),
            ("KESTRA_TASKRUN_ID", "taskrun-7"),
        ],
    );
    assert_eq!(
        run(Input::Env(refresh_task("Sales", "Sales Model")), &env)
            .await
            .code,
        0
    );
    assert_eq!(
        run(Input::Env(refresh_task("Sales", "Broken Model")), &env)
            .await
            .code,
        1
    );
    let mut slow = refresh_task("Sales", "Slow Model");
    slow["timeout"] = json!(0.2);
    assert_eq!(run(Input::Env(slow), &env).await.code, 5);

    let all = run(
        Input::Env(history(json!({"operation": "dataset.refresh"}))),
        &env,
    )
    .await;
    assert_eq!(all.code, 0, "{}", all.stdout);
    let out = all.outputs();
    assert_eq!(out.count, Some(3));
    assert_eq!(out.file.as_deref(), Some("history.json"));
    let by_status = out.by_status.expect("by status");
    assert_eq!(
        (
            by_status["Completed"],
            by_status["Failed"],
            by_status["Running"]
        ),
        (1, 1, 1)
    );
    let rows: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(all.dir.join("history.json")).expect("file"))
            .expect("json");
    let failed = rows
        .iter()
        .find(|r| r["status"] == "Failed")
        .expect("failed row");
    assert_eq!(
        failed["errorCode"],
        "ModelRefreshFailed_CredentialsNotSpecified"
    );
    assert_eq!(failed["itemId"], DS_BROKEN);
    assert_eq!(failed["kestraExecutionId"], "exec-42");
    assert!(failed["requestId"].is_string());
    let timed_out = rows
        .iter()
        .find(|r| r["status"] == "Running")
        .expect("timed-out row");
    assert_eq!(timed_out["errorCode"], "WaitTimedOut");
    assert_eq!(timed_out["exitCode"], 5);

    let by_target = run(Input::Env(history(json!({"target": "broken model"}))), &env).await;
    assert_eq!(by_target.outputs().count, Some(1));
    for row in &rows {
        assert!(
            !row.to_string().contains(SECRET) && !row.to_string().contains(TOKEN_PREFIX),
            "no secret in the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_killed_run_reattaches_instead_of_triggering_again() {
    let emu = emulator(scenario()).await;
    // The history never shows this refresh: only the operation log knows it is running.
    control(
        &emu,
        "PUT",
        &format!("datasets/{DS_SLOW}/refresh"),
        Some(json!({"historyDelayPolls": 100000})),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    // A Kestra retry: the same execution and task run.
    let env = with_store(
        &emu,
        &sqlite(dir.path()),
        &[
            ("KESTRA_EXECUTION_ID", "exec-1"),
            ("KESTRA_TASKRUN_ID", "taskrun-1"),
        ],
    );
    let mut task = refresh_task("Sales", "Slow Model");
    task["refresh"] = json!({"type": "Full"});

    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_pbiops"))
        .env_clear()
        .envs(env.iter().cloned())
        .env("PBIOPS_TASK", task.to_string())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("first run");
    // Once it polls, its row holds the request id: kill it as a dead worker would stop.
    until_requests(&emu, "the first run to poll", |log| {
        log.iter().any(|r| r["route"] == "refresh.get")
    })
    .await;
    first.kill().await.expect("kill");
    let polled = requests_to(&emu, "refresh.get").await.len();
    let id = refreshes_of(&emu, DS_SLOW).await[0]["requestId"]
        .as_str()
        .expect("id")
        .to_string();

    let rerun = {
        let (env, task) = (env.clone(), task.clone());
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    until_requests(&emu, "the rerun to poll the same refresh", |log| {
        log.iter().filter(|r| r["route"] == "refresh.get").count() > polled + 1
    })
    .await;
    control(
        &emu,
        "POST",
        &format!("refreshes/{id}/complete"),
        Some(json!({"outcome": "Completed"})),
    )
    .await;
    let rerun = rerun.await.expect("rerun");
    assert_eq!(rerun.code, 0, "{}", rerun.stdout);
    let out = rerun.outputs();
    assert_eq!(out.attached, Some(true));
    assert_eq!(out.request_id.as_deref(), Some(id.as_str()));
    assert_eq!(out.status.as_deref(), Some("Completed"));
    assert_eq!(
        requests_to(&emu, "refresh.post").await.len(),
        1,
        "exactly one refresh was triggered"
    );

    let log = run(
        Input::Env(history(json!({"operation": "dataset.refresh"}))),
        &env,
    )
    .await;
    assert_eq!(
        log.outputs().by_status.expect("statuses").get("Abandoned"),
        Some(&1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_run_on_a_model_being_waited_on_goes_through_if_running_not_reattach() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let first_env = with_store(
        &emu,
        &sqlite(dir.path()),
        &[
            ("KESTRA_EXECUTION_ID", "exec-1"),
            ("KESTRA_TASKRUN_ID", "taskrun-1"),
        ],
    );
    let mut task = refresh_task("Sales", "Slow Model");
    task["refresh"] = json!({"type": "Full"});
    let first = {
        let (env, task) = (first_env.clone(), task.clone());
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    until_requests(&emu, "the first run to poll", |log| {
        log.iter().any(|r| r["route"] == "refresh.get")
    })
    .await;
    let other_env = with_store(
        &emu,
        &sqlite(dir.path()),
        &[
            ("KESTRA_EXECUTION_ID", "exec-2"),
            ("KESTRA_TASKRUN_ID", "taskrun-9"),
        ],
    );
    let mut refuse = task.clone();
    refuse["ifRunning"] = json!("fail");
    let second = run(Input::Env(refuse), &other_env).await;
    assert_eq!(second.code, 1, "{}", second.stdout);
    assert_eq!(
        second.outputs().error_code.as_deref(),
        Some("RefreshAlreadyRunning")
    );
    let id = refreshes_of(&emu, DS_SLOW).await[0]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    control(
        &emu,
        "POST",
        &format!("refreshes/{id}/complete"),
        Some(json!({"outcome": "Completed"})),
    )
    .await;
    assert_eq!(
        first.await.expect("first").code,
        0,
        "the first run still owns its row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_in_the_store_is_replaced_not_reused() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = with_store(&emu, &sqlite(dir.path()), &[]);
    assert_eq!(
        run(Input::Env(json!({"operation": "token.get"})), &env)
            .await
            .code,
        0
    );
    control(&emu, "POST", "tokens/revoke", None).await;
    let status =
        json!({"operation": "dataset.status", "workspace": "Sales", "dataset": "Sales Model"});
    let after = run(Input::Env(status.clone()), &env).await;
    assert_eq!(
        after.code, 0,
        "the stored token is refused once, then replaced: {}",
        after.stdout
    );
    let again = run(Input::Env(status), &env).await;
    assert_eq!(again.code, 0);
    assert_eq!(
        requests_to(&emu, "token").await.len(),
        2,
        "one new token, stored and reused by the next run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_down_at_start_exits_7_before_any_request() {
    let emu = emulator(scenario()).await;
    let conn = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=test;Uid=postgres;Pwd=CANARY-DBPASS;";
    let run = run(
        Input::Env(refresh_task("Sales", "Sales Model")),
        &with_store(&emu, conn, &[]),
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stdout);
    assert_eq!(run.outputs().error_code.as_deref(), Some("StoreFailure"));
    assert!(
        !run.stdout.contains("CANARY-DBPASS"),
        "the connection string's password is never printed"
    );
    assert!(
        requests(&emu).await.is_empty(),
        "no request before the store works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_lost_mid_run_still_prints_the_outputs_and_logs_the_record() {
    let emu = emulator(scenario()).await;
    let schema = format!(
        "pbiops_it_{}",
        std::process::id() as u64 * 1000 + fastrand_like()
    );
    pg_exec(&format!("CREATE SCHEMA {schema}"));
    let conn = format!(
        "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;Pwd=;ConnSettings=SET search_path TO {schema};"
    );
    let env = with_store(&emu, &conn, &[]);
    let runner = {
        let env = env.clone();
        tokio::spawn(
            async move { run(Input::Env(refresh_task("Sales", "Slow Model")), &env).await },
        )
    };
    until_requests(&emu, "the refresh to be polled", |log| {
        log.iter()
            .filter(|r| r["route"] == "refresh.history")
            .count()
            >= 2
    })
    .await;
    pg_exec(&format!("DROP SCHEMA {schema} CASCADE"));
    let id = refreshes_of(&emu, DS_SLOW).await[0]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    control(
        &emu,
        "POST",
        &format!("refreshes/{id}/complete"),
        Some(json!({"outcome": "Completed"})),
    )
    .await;
    let run = runner.await.expect("run");

    assert_eq!(run.code, 7, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(
        out.status.as_deref(),
        Some("Completed"),
        "the outputs are still printed"
    );
    assert_eq!(out.request_id.as_deref(), Some(id.as_str()));
    assert!(
        run.logs.iter().any(|(level, m)| level == "ERROR"
            && m.contains("here it is in full")
            && m.contains(&id)),
        "{}",
        run.log_text()
    );
}

fn fastrand_like() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 % 1000)
        .unwrap_or(0)
}

fn pg_exec(sql: &str) {
    let env = odbc_api::Environment::new().expect("odbc");
    let conn = env
        .connect_with_connection_string("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;Pwd=;", odbc_api::ConnectionOptions::default())
        .expect("postgres is reachable");
    conn.execute(sql, (), None).expect("sql");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_power_bi_tokens_are_appended_to_the_legacy_table_and_too_long_ones_refused() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let conn = sqlite(dir.path());
    {
        let env = odbc_api::Environment::new().expect("odbc");
        let c = env
            .connect_with_connection_string(&conn, odbc_api::ConnectionOptions::default())
            .expect("sqlite");
        c.execute("CREATE TABLE BearerTokens (bearerToken TEXT, dateRetrieved TEXT, expiresOn TEXT, token_type TEXT)", (), None)
            .expect("legacy table");
    }
    let env = with_store(
        &emu,
        &conn,
        &[("PBIOPS_LEGACY_TOKEN_TABLE", "BearerTokens")],
    );
    let run_ok = run(Input::Env(json!({"operation": "token.get"})), &env).await;
    assert_eq!(run_ok.code, 0, "{}", run_ok.stdout);
    let fabric = run(
        Input::Env(json!({"operation": "token.get", "resource": "fabric"})),
        &env,
    )
    .await;
    assert_eq!(fabric.code, 0);
    {
        let env = odbc_api::Environment::new().expect("odbc");
        let c = env
            .connect_with_connection_string(&conn, odbc_api::ConnectionOptions::default())
            .expect("sqlite");
        let mut cursor = c
            .execute(
                "SELECT COUNT(*), MIN(token_type) FROM BearerTokens",
                (),
                None,
            )
            .expect("query")
            .expect("cursor");
        let mut row = odbc_api::Cursor::next_row(&mut cursor)
            .expect("row")
            .expect("one row");
        let mut count = Vec::new();
        row.get_text(1, &mut count).expect("count");
        let mut kind = Vec::new();
        row.get_text(2, &mut kind).expect("type");
        assert_eq!(
            String::from_utf8(count).expect("utf-8"),
            "1",
            "only the Power BI token goes to the legacy table"
        );
        assert_eq!(String::from_utf8(kind).expect("utf-8"), "powerbi");
    }
    let short = with_store(
        &emu,
        &sqlite(tempfile::tempdir().expect("dir").keep().as_path()),
        &[
            ("PBIOPS_LEGACY_TOKEN_TABLE", "BearerTokens"),
            ("PBIOPS_LEGACY_TOKEN_MAX_LENGTH", "10"),
        ],
    );
    let refused = run(Input::Env(json!({"operation": "token.get"})), &short).await;
    assert_eq!(refused.code, 7, "{}", refused.stdout);
    assert!(
        refused
            .log_text()
            .contains("bearerToken column holds at most 10"),
        "{}",
        refused.log_text()
    );
    assert!(
        refused.log_text().contains("NVARCHAR(MAX)"),
        "the hint says how to fix it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_secret_typed_into_a_task_field_is_not_stored() {
    let emu = emulator(scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = with_store(&emu, &sqlite(dir.path()), &[]);
    let run = run(Input::Env(refresh_task(SECRET, "Sales Model")), &env).await;
    assert_eq!(run.code, 4, "{}", run.stdout);
    let db = std::fs::read(dir.path().join("pbiops.db")).expect("db");
    assert!(
        !contains(&db, SECRET.as_bytes()),
        "the secret is in the store file"
    );
    assert!(
        contains(&db, b"REDACTED"),
        "the task row is there, scrubbed"
    );
}
