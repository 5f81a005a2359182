//! Single flight across processes: two runs of different Kestra executions started together on
//! one item, sharing a store, trigger it once; the second attaches to the first's refresh. For
//! every kind of item.

use serde_json::{Value, json};

use crate::support::*;

/// Starts a first run whose trigger the emulator holds for a while (its claim taken, nothing
/// visible in the service yet), then a second run on the same item; ends the refresh with
/// `finish` once both follow it, and returns both runs.
async fn race(
    emu: &pbiops_emulator::Emulator,
    task: Value,
    (read_route, post_route): (&str, &str),
    finish: impl AsyncFnOnce(),
) -> (Run, Run) {
    let dir = tempfile::tempdir().expect("dir");
    // Create the store's tables first, so the two runs do not race to migrate.
    let setup = run(
        Input::Env(json!({"operation": "history"})),
        &kestra_store_env(emu, dir.path(), "setup"),
    )
    .await;
    assert_eq!(setup.code, 0, "{}", setup.stdout);
    fault(emu, json!({"route": post_route, "delayMs": 4000})).await;
    let first = {
        let (env, task) = (kestra_store_env(emu, dir.path(), "exec-a"), task.clone());
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    // Once the first run has read the item's runs, it claims the item and posts the trigger,
    // which the emulator holds: the second run finds nothing running in the service.
    until_requests(emu, "the first run's read of the item's runs", |log| {
        log.iter().any(|r| r["route"] == read_route)
    })
    .await;
    let second = {
        let (env, task) = (kestra_store_env(emu, dir.path(), "exec-b"), task.clone());
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    // Both follow the one refresh: wait until the reads go on well after the trigger answered.
    until_requests(emu, "the first run's trigger to be answered", |log| {
        log.iter().any(|r| r["route"] == post_route)
    })
    .await;
    let before = requests(emu).await.len();
    until_requests(emu, "both runs to follow the refresh", |log| {
        log.len() > before + 20
    })
    .await;
    finish().await;
    let (a, b) = (first.await.expect("first"), second.await.expect("second"));
    (a, b)
}

fn check(a: &Run, b: &Run) {
    assert_eq!((a.code, b.code), (0, 0), "{}\n---\n{}", a.stdout, b.stdout);
    let (oa, ob) = (a.outputs(), b.outputs());
    assert_eq!(oa.request_id, ob.request_id, "both report the one refresh");
    assert_eq!(
        (oa.attached, ob.attached),
        (Some(false), Some(true)),
        "the second attached"
    );
    assert!(
        b.log_text().contains("attaching to the refresh it starts"),
        "the second saw the first's claim before anything was visible in the service:\n{}",
        b.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_model_trigger_it_once() {
    let emu = emulator(scenario()).await;
    let (a, b) = race(
        &emu,
        refresh_task("Sales", "Slow Model"),
        ("refresh.history", "refresh.post"),
        async || {
            complete_refresh(&emu, DS_SLOW, "Completed").await;
        },
    )
    .await;
    check(&a, &b);
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_gen1_dataflow_trigger_it_once() {
    let emu = emulator(scenario()).await;
    let task = json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Slow Flow",
                      "poll": {"min": 0.01, "max": 0.05}, "grace": "PT10S", "timeout": "PT60S"});
    let (a, b) = race(
        &emu,
        task,
        ("dataflow.transactions", "dataflow.refresh"),
        async || {
            complete_transaction(&emu, DF_SLOW, "Success").await;
        },
    )
    .await;
    check(&a, &b);
    assert_eq!(requests_to(&emu, "dataflow.refresh").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_gen2_dataflow_start_one_job() {
    let emu = emulator(scenario()).await;
    let task = json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Slow Gen2",
                      "poll": {"min": 0.01, "max": 0.05}, "grace": "PT10S", "timeout": "PT60S"});
    let (a, b) = race(
        &emu,
        task,
        ("fabric.job.list", "fabric.job.run"),
        async || {
            complete_job(&emu, ITEM_GEN2_SLOW, "Completed").await;
        },
    )
    .await;
    check(&a, &b);
    assert_eq!(
        requests_to(&emu, "fabric.job.run").await.len(),
        1,
        "one job, none deduped"
    );
}

/// The emulator with a workspace "Pool" of `models` on capacity `cap-pool` (room for 8), and a
/// store whose tables exist already (so runs started together do not race to migrate).
async fn pool(models: Value) -> (pbiops_emulator::Emulator, tempfile::TempDir) {
    let mut s = scenario();
    s["capacities"] = json!([{"id": "cap-pool", "concurrency": 8}]);
    s["workspaces"]
        .as_array_mut()
        .expect("workspaces")
        .push(json!({
            "id": "a0000000-0000-4000-8000-0000000000c1", "name": "Pool", "dedicatedCapacity": true,
            "capacityId": "cap-pool", "datasets": models
        }));
    let emu = emulator(s).await;
    let dir = tempfile::tempdir().expect("dir");
    let setup = run(
        Input::Env(json!({"operation": "history"})),
        &kestra_store_env(&emu, dir.path(), "setup"),
    )
    .await;
    assert_eq!(setup.code, 0, "{}", setup.stdout);
    (emu, dir)
}

/// The most refreshes `cap-pool` ran at once.
async fn pool_peak(emu: &pbiops_emulator::Emulator) -> Value {
    let capacities = control(emu, "GET", "capacities", None).await;
    capacities
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["id"] == "cap-pool")
        .expect("cap-pool")["peak"]
        .clone()
}

/// Two runs sharing a store, each refreshing two models of one capacity with
/// `maxParallelPerCapacity: 1`: the capacity never runs two refreshes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_per_capacity_holds_across_processes_sharing_a_store() {
    let models: Vec<Value> = (1..=4)
        .map(|i| {
            json!({"id": format!("d0000000-0000-4000-8000-0000000001{i:02}"), "name": format!("Pool {i}"),
                   "refresh": {"durationSeconds": 0.4}})
        })
        .collect();
    let (emu, dir) = pool(json!(models)).await;
    let fleet = |a: &str, b: &str| {
        json!({"operation": "dataset.refresh", "maxParallelPerCapacity": 1,
               "poll": {"min": 0.02, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S",
               "targets": [{"workspace": "Pool", "dataset": a}, {"workspace": "Pool", "dataset": b}]})
    };
    let first = {
        let (env, task) = (
            kestra_store_env(&emu, dir.path(), "exec-a"),
            fleet("Pool 1", "Pool 2"),
        );
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    let second = {
        let (env, task) = (
            kestra_store_env(&emu, dir.path(), "exec-b"),
            fleet("Pool 3", "Pool 4"),
        );
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    let (a, b) = (first.await.expect("first"), second.await.expect("second"));
    assert_eq!((a.code, b.code), (0, 0), "{}\n---\n{}", a.stdout, b.stdout);
    assert_eq!(
        pool_peak(&emu).await,
        1,
        "one refresh at a time on the capacity"
    );
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 4);
}

/// A worker killed while its fleet target runs: the retry takes over the dead attempt's capacity
/// slot with the refresh it follows, so another worker waiting for the capacity does not start
/// a second refresh on it meanwhile (`maxParallelPerCapacity: 1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_keeps_the_capacity_slot_of_the_refresh_it_follows() {
    let (emu, dir) = pool(json!([
        {"id": "d0000000-0000-4000-8000-000000000201", "name": "Long", "refresh": {}},
        {"id": "d0000000-0000-4000-8000-000000000202", "name": "Short", "refresh": {"durationSeconds": 0.2}}
    ]))
    .await;
    let fleet = |model: &str| {
        json!({"operation": "dataset.refresh", "maxParallelPerCapacity": 1,
               "poll": {"min": 0.02, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S",
               "targets": [{"workspace": "Pool", "dataset": model}]})
    };
    let env_a = kestra_store_env(&emu, dir.path(), "exec-kill");
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_pbiops"))
        .env_clear()
        .envs(env_a.iter().cloned())
        .env("PBIOPS_TASK", fleet("Long").to_string())
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("first run");
    until_requests(&emu, "the first run to follow its refresh", |log| {
        log.iter()
            .filter(|r| r["route"] == "refresh.history")
            .count()
            > 3
    })
    .await;
    first.kill().await.expect("kill -9");
    let seen = requests(&emu).await.len();
    let retry = {
        let (env, task) = (env_a.clone(), fleet("Long"));
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    until_requests(&emu, "the retry to follow the refresh", |log| {
        log.len() > seen + 3
    })
    .await;
    let other = {
        let (env, task) = (kestra_store_env(&emu, dir.path(), "exec-b"), fleet("Short"));
        tokio::spawn(async move { run(Input::Env(task), &env).await })
    };
    // The other worker is waiting for the capacity, not triggering: the retry holds the slot.
    let seen = requests(&emu).await.len();
    until_requests(&emu, "both runs to look at the service a while", |log| {
        log.len() > seen + 10
    })
    .await;
    assert_eq!(
        requests_to(&emu, "refresh.post").await.len(),
        1,
        "no second refresh on the capacity while the followed one runs"
    );
    complete_refresh(&emu, "d0000000-0000-4000-8000-000000000201", "Completed").await;
    let (retry, other) = (retry.await.expect("retry"), other.await.expect("other"));
    assert_eq!(
        (retry.code, other.code),
        (0, 0),
        "{}\n---\n{}",
        retry.stdout,
        other.stdout
    );
    assert_eq!(requests_to(&emu, "refresh.post").await.len(), 2);
    assert_eq!(pool_peak(&emu).await, 1, "one refresh at a time");
}
