//! Throttling shared between runs: two processes acting as one service principal against the
//! emulator's per-client rate limit. With a shared store, the run started during the first one's
//! pause waits it out and gets no 429 of its own; without a store, it hits the limit itself; a
//! store that cannot share only costs a warning.

use std::time::Duration;

use pbiops_emulator::Emulator;
use serde_json::{Value, json};

use crate::support::*;

/// The emulator with a rate limit of 12 calls per 3 seconds per client: the first run's 13th
/// call is refused with `Retry-After: 3`, which leaves the second run ample time to start within
/// the pause; after it the window has room for both runs' remaining calls (about 5 + 3), even if
/// the first run's early calls were slow.
fn limited() -> Value {
    let mut s = scenario();
    s["rateLimit"] = json!({"requests": 12, "perSeconds": 3});
    // Sales Model takes 10 polls: the first run has calls left to make after its 429.
    s["workspaces"][0]["datasets"][0]["refresh"]["polls"] = json!(10);
    s
}

/// The rate limit's refusals so far.
async fn refused(emu: &Emulator) -> u64 {
    control(emu, "GET", "stats", None).await["rateLimited"]
        .as_u64()
        .expect("rateLimited")
}

/// Starts a refresh (13+ calls) with `env_a`; once it is throttled and `ready` says the second
/// may start, runs a status read (3 calls) with `env_b`; returns both runs.
async fn first_throttled_then_second(
    emu: &Emulator,
    env_a: Vec<(String, String)>,
    env_b: Vec<(String, String)>,
    ready: impl AsyncFn() -> bool,
) -> (Run, Run) {
    let first =
        tokio::spawn(
            async move { run(Input::Env(refresh_task("Sales", "Sales Model")), &env_a).await },
        );
    let mut waited = 0;
    while refused(emu).await == 0 || !ready().await {
        waited += 1;
        assert!(
            waited < 1000,
            "the first run was never throttled, or its 429 never reached the store"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status =
        json!({"operation": "dataset.status", "workspace": "Sales", "dataset": "Sales Model"});
    let second = run(Input::Env(status), &env_b).await;
    let first = first.await.expect("first run");
    for (name, r) in [("first", &first), ("second", &second)] {
        assert_eq!(r.code, 0, "{name} run:\n{}", r.stdout);
    }
    (first, second)
}

/// The store's connection string in `env`.
fn store_of(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "PBIOPS_ODBC")
        .map(|(_, v)| v.clone())
        .expect("a store")
}

fn throttled(r: &Run) -> f64 {
    r.counter("pbiops.api.throttled", None)
        .expect("pbiops.api.throttled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_starting_during_another_runs_pause_waits_it_out_through_the_store() {
    let emu = emulator(limited()).await;
    let dir = tempfile::tempdir().expect("dir");
    let (env_a, env_b) = (
        kestra_store_env(&emu, dir.path(), "exec-a"),
        kestra_store_env(&emu, dir.path(), "exec-b"),
    );
    let cs = secrecy::SecretString::from(store_of(&env_a));
    // The second run starts once the first one's 429 is in the store.
    let shared = async || match pbiops::store::Store::open(&cs, None).await {
        Ok(store) => store
            .throttles(&CLIENT.to_ascii_lowercase(), jiff::Timestamp::now())
            .await
            .is_ok_and(|rows| !rows.is_empty()),
        Err(_) => false,
    };
    let (first, second) = first_throttled_then_second(&emu, env_a, env_b, shared).await;

    assert_eq!(throttled(&first), 1.0, "{}", first.log_text());
    assert_eq!(
        throttled(&second),
        0.0,
        "the second run waited out the shared pause:\n{}",
        second.log_text()
    );
    assert!(
        second
            .log_text()
            .contains("another run as the same principal was throttled by 127.0.0.1:"),
        "{}",
        second.log_text()
    );
    assert_eq!(refused(&emu).await, 1, "one 429 in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_a_run_starting_during_another_runs_pause_hits_the_limit_itself() {
    let emu = emulator(limited()).await;
    let (first, second) =
        first_throttled_then_second(&emu, env(&emu), env(&emu), async || true).await;

    assert_eq!(throttled(&first), 1.0, "{}", first.log_text());
    assert_eq!(throttled(&second), 1.0, "{}", second.log_text());
    assert!(
        !second.log_text().contains("another run"),
        "{}",
        second.log_text()
    );
    assert_eq!(refused(&emu).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_share_throttling_only_warns_and_the_run_paces_itself() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "refresh.history", "status": 429, "retryAfter": 1, "times": 1}),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let env = kestra_store_env(&emu, dir.path(), "exec-a");
    let setup = run(Input::Env(json!({"operation": "history"})), &env).await;
    assert_eq!(setup.code, 0, "{}", setup.stdout);
    // The schema is current, but the table is gone: every read and write of it fails.
    odbc_api::Environment::new()
        .expect("odbc")
        .connect_with_connection_string(&store_of(&env), odbc_api::ConnectionOptions::default())
        .expect("sqlite")
        .execute("DROP TABLE pbiops_throttle", (), None)
        .expect("drop");

    let r = run(Input::Env(refresh_task("Sales", "Sales Model")), &env).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.outputs().status.as_deref(), Some("Completed"));
    assert_eq!(throttled(&r), 1.0, "throttled, paused and went on");
    let warnings: Vec<&(String, String)> = r
        .logs
        .iter()
        .filter(|(_, m)| m.contains("throttling is not shared with other runs"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, not one per read: {warnings:?}"
    );
    assert_eq!(warnings[0].0, "WARN");
    assert!(
        warnings[0].1.contains("pbiops_throttle"),
        "{}",
        warnings[0].1
    );
}

/// Another run as the same principal was throttled a moment ago and left the budget it learned
/// in the store: a fleet item nobody waits on looks first where nine in ten of its recent runs
/// had ended (frugal), not halfway there from the median (economy), without a 429 of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_another_run_learned_makes_a_fleet_frugal_at_once() {
    let mut s = scenario();
    // Eight recent runs of 1 s and two of 6 s: median 1 s, 90th percentile 6 s, so an
    // economical first look comes 3.5 s after the trigger, a frugal one 6 s after it.
    let history: Vec<Value> = (0..10)
        .map(|i| {
            let seconds = if i < 8 { 1 } else { 6 };
            json!({"requestId": format!("e0000000-0000-4000-8000-0000000003{i:02}"), "refreshType": "ViaApi",
                   "status": "Completed", "startTime": format!("-PT{}H", i + 1),
                   "endTime": format!("-PT{}H59M{}S", i, 60 - seconds)})
        })
        .collect();
    s["workspaces"].as_array_mut().expect("workspaces").push(json!({
        "id": "a0000000-0000-4000-8000-0000000000c3", "name": "Nightly", "dedicatedCapacity": true,
        "datasets": [{"id": "d0000000-0000-4000-8000-000000000301", "name": "Orders",
                      "refresh": {"durationSeconds": 0.2}, "history": history}]
    }));
    let emu = emulator(s).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = kestra_store_env(&emu, dir.path(), "exec-frugal");
    let store = pbiops::store::Store::open(&secrecy::SecretString::from(store_of(&env)), None)
        .await
        .expect("store");
    let now = jiff::Timestamp::now();
    let api = emu.base_url().trim_start_matches("http://").to_string();
    store
        .record_throttle(&pbiops::store::Throttled {
            principal: &CLIENT.to_ascii_lowercase(),
            api: &api,
            at: now,
            paused_until: now,
            budget: Some(600.0),
        })
        .await
        .expect("another run's 429");
    let task = json!({"operation": "dataset.refresh", "targets": [{"workspace": "Nightly", "dataset": "Orders"}],
                      "poll": {"min": 0.1, "max": 30}, "timeout": "PT60S"});
    let run = run(Input::Env(task), &env).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(throttled(&run), 0.0, "no 429 of its own");
    let log = requests(&emu).await;
    let at = |r: &Value| {
        r["at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .expect("time")
    };
    let post = log
        .iter()
        .position(|r| r["route"] == "refresh.post")
        .expect("triggered");
    let first_look = log[post..]
        .iter()
        .find(|r| r["route"] == "refresh.history")
        .expect("looked");
    let waited = at(first_look).duration_since(at(&log[post])).as_secs_f64();
    assert!(
        waited >= 5.0,
        "expected a frugal first look (about 6 s after the trigger), not an economical one (3.5 s): it came after {waited:.1} s"
    );
}
