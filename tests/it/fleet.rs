//! Many models in one run: per-target options, resolution failures that do not stop the rest,
//! capacity limits, longest expected first, and one shared pace under throttling.

use serde_json::{Value, json};

use crate::support::*;

fn fleet(targets: Value) -> Value {
    json!({"operation": "dataset.refresh", "targets": targets, "poll": {"min": 0.01, "max": 0.05}, "grace": "PT5S", "timeout": "PT60S"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_refreshes_every_target_and_reports_each() {
    let emu = emulator(scenario()).await;
    let task = fleet(json!([
        {"workspace": "Sales", "dataset": "Sales Model", "refresh": {"type": "Full"}},
        {"workspace": "Sales", "dataset": "Broken Model"},
        {"workspace": "Finance", "dataset": DS_BUDGET_A},
        {"workspace": "Nowhere", "dataset": "Ghost"}
    ]));
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!((out.count, out.failed), (Some(4), Some(2)));
    let by_status = out.by_status.expect("by status");
    assert_eq!(
        (
            by_status["Completed"],
            by_status["Failed"],
            by_status["Error"]
        ),
        (2, 1, 1)
    );
    assert!(out.makespan_seconds.is_some());
    let targets = out.targets.expect("targets");
    let ghost = targets
        .iter()
        .find(|t| t["datasetId"] == "Ghost")
        .expect("ghost");
    assert_eq!(
        (ghost["exitCode"].as_i64(), ghost["errorCode"].as_str()),
        (Some(4), Some("NotFound"))
    );
    let posts = requests_to(&emu, "refresh.post").await;
    assert_eq!(posts.len(), 3);
    assert!(
        posts.iter().any(|p| p["body"] == json!({"type": "Full"})),
        "per-target options are sent"
    );
    let file: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("targets.json")).expect("file"))
            .expect("json");
    assert_eq!(file.len(), 4);
    assert_eq!(
        requests_to(&emu, "groups").await.len(),
        1,
        "one workspace list for the whole fleet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_fleet_slows_down_and_nothing_fails() {
    let emu = emulator(scenario()).await;
    fault(
        &emu,
        json!({"route": "refresh.history", "status": 429, "retryAfter": 1, "times": 2}),
    )
    .await;
    let task = fleet(json!([
        {"workspace": "Sales", "dataset": "Sales Model"},
        {"workspace": "Finance", "dataset": DS_BUDGET_A},
        {"workspace": "Finance", "dataset": DS_BUDGET_B}
    ]));
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.outputs().failed, Some(0));
    assert_eq!(run.counter("pbiops.api.throttled", None), Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_options_are_checked_per_target() {
    let emu = emulator(scenario()).await;
    for (task, field) in [
        (fleet(json!([])), "targets"),
        (
            fleet(json!([{"workspace": "Sales", "dataset": "x", "refresh": {"type": "Add"}}])),
            "targets[0].refresh.type",
        ),
        (fleet(json!([{"workspace": "Sales"}])), "targets[0]"),
        (
            {
                let mut t = fleet(json!([{"workspace": "w", "dataset": "d"}]));
                t["workspace"] = json!("w");
                t
            },
            "workspace",
        ),
        (
            {
                let mut t = fleet(json!([{"workspace": "w", "dataset": "d"}]));
                t["maxParallelPerCapacity"] = json!(0);
                t
            },
            "maxParallelPerCapacity",
        ),
        (
            json!({"operation": "dataset.refresh", "workspace": "w", "dataset": "d", "maxParallel": 2}),
            "maxParallel",
        ),
    ] {
        let run = run_task(&emu, task.clone()).await;
        assert_eq!(run.code, 2, "{task}: {}", run.stdout);
        assert!(
            run.log_text().contains(&format!("`{field}`")),
            "{task}: {}",
            run.log_text()
        );
    }
    assert!(requests(&emu).await.is_empty());
}

/// Two models on a capacity that runs one refresh at a time, triggered together: the second
/// waits in the service's queue until the first ends, and its entry says how long (from its
/// history's first attempt); the first did not queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_queued_in_the_service_reports_how_long() {
    let mut s = scenario();
    s["capacities"] = json!([{"id": "cap-one", "concurrency": 1}]);
    let model = |i: u32| {
        json!({"id": format!("d0000000-0000-4000-8000-0000000002{i:02}"), "name": format!("Queued {i}"),
               "refresh": {"durationSeconds": 1}})
    };
    s["workspaces"]
        .as_array_mut()
        .expect("workspaces")
        .push(json!({"id": "a0000000-0000-4000-8000-0000000000c2", "name": "One", "dedicatedCapacity": true,
                     "capacityId": "cap-one", "datasets": [model(1), model(2)]}));
    let emu = emulator(s).await;
    let task = json!({"operation": "dataset.refresh", "maxParallelPerCapacity": 2,
                      "poll": {"min": 0.05, "max": 0.2}, "timeout": "PT60S",
                      "targets": [{"workspace": "One", "dataset": "Queued 1"}, {"workspace": "One", "dataset": "Queued 2"}]});
    let run = run_task(&emu, task).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let targets = run.outputs().targets.expect("targets");
    let mut queued: Vec<f64> = targets
        .iter()
        .map(|t| t["queuedSeconds"].as_f64().expect("each entry says"))
        .collect();
    queued.sort_by(f64::total_cmp);
    assert!(queued[0] < 0.5, "the first began at once: {queued:?}");
    assert!(
        queued[1] >= 0.9,
        "the second waited for the first (1 s): {queued:?}"
    );
}
