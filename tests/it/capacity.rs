//! A capacity rejecting new refreshes (surge protection, overload): the item waits for it and
//! completes, or ends `CapacityRejected` (exit 5) when the timeout passes first, with nothing
//! started; a fleet holds the rejecting capacity while items on other capacities run.
//!
//! The rejecting period is long on the emulator's clock, and each test ends it by advancing that
//! clock once the emulator has rejected a trigger, so no test depends on how fast pbiops starts.

use serde_json::{Value, json};

use crate::support::*;

const CAP_SALES: &str = "ca9ac17e-0000-4000-8000-00000000000a";
const CAP_FINANCE: &str = "ca9ac17e-0000-4000-8000-00000000000b";
/// A second model on the Sales capacity.
const DS_EXTRA: &str = "d0000000-0000-4000-8000-0000000000e1";
/// The rejecting period, in emulator seconds.
const PERIOD: f64 = 600.0;

/// The test scenario with Sales on `CAP_SALES`, rejecting for [`PERIOD`] from the start, and
/// Finance on `CAP_FINANCE`.
fn rejecting() -> Value {
    let mut s = scenario();
    s["workspaces"][0]["capacityId"] = json!(CAP_SALES);
    s["workspaces"][1]["capacityId"] = json!(CAP_FINANCE);
    s["capacities"] =
        json!([{"id": CAP_SALES, "concurrency": 8, "rejecting": {"seconds": PERIOD}}]);
    s
}

/// The three kinds on the Sales capacity: (task, trigger route).
fn kinds() -> [(Value, &'static str); 3] {
    let task = |mut t: Value| {
        t["poll"] = json!({"min": 0.01, "max": 0.05});
        t["grace"] = json!("PT5S");
        t["timeout"] = json!("PT60S");
        t
    };
    [
        (
            task(
                json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": "Sales Model"}),
            ),
            "refresh.post",
        ),
        (
            task(
                json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Sales Staging"}),
            ),
            "dataflow.refresh",
        ),
        (
            task(
                json!({"operation": "dataflow.refresh", "workspace": "Sales", "dataflow": "Sales Gen2"}),
            ),
            "fabric.job.run",
        ),
    ]
}

/// How many triggers the emulator rejected on `capacity`.
async fn rejected(emu: &pbiops_emulator::Emulator, capacity: &str) -> u64 {
    let all = control(emu, "GET", "capacities", None).await;
    all.as_array()
        .expect("capacities")
        .iter()
        .find(|c| c["id"] == capacity)
        .and_then(|c| c["rejected"].as_u64())
        .expect("the capacity is listed")
}

/// Ends the rejecting period (advancing the emulator's clock past it) once `ready` holds of the
/// request log.
async fn end_period_when(emu: &pbiops_emulator::Emulator, ready: impl Fn(&[Value]) -> bool) {
    until_requests(emu, "the moment to end the rejecting period", ready).await;
    control(
        emu,
        "POST",
        "clock/advance",
        Some(json!({"seconds": PERIOD})),
    )
    .await;
}

fn rejected_posts(log: &[Value], route: &str) -> usize {
    log.iter()
        .filter(|r| r["route"] == route && r["status"] == 429)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_waits_for_a_rejecting_capacity_then_completes() {
    for (task, route) in kinds() {
        let emu = emulator(rejecting()).await;
        let (run, ()) = tokio::join!(
            run_task(&emu, task),
            end_period_when(&emu, |log| rejected_posts(log, route) >= 2)
        );
        assert_eq!(run.code, 0, "{route}: {}", run.stdout);
        let out = run.outputs();
        assert_eq!(out.status.as_deref(), Some("Completed"), "{route}");
        let waited = out.capacity_wait_seconds.expect("the wait is reported");
        assert!(waited > 0.0, "{route}: {waited}");
        let posts = requests_to(&emu, route).await;
        let refused = rejected(&emu, CAP_SALES).await;
        assert!(refused >= 2, "{route}");
        assert_eq!(
            posts.len() as u64,
            refused + 1,
            "{route}: retried until accepted"
        );
        assert!(
            posts[..posts.len() - 1].iter().all(|p| p["status"] == 429),
            "{route}: only the last trigger was accepted"
        );
        assert_eq!(
            run.counter("pbiops.api.throttled", None),
            Some(0.0),
            "{route}: a capacity refusal is not API throttling"
        );
        assert!(
            run.log_text().contains(CAP_SALES),
            "{route}: the capacity is named"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_rejecting_past_the_timeout_ends_capacity_rejected_with_nothing_started() {
    for (mut task, route) in kinds() {
        task["timeout"] = json!(1);
        let emu = emulator(rejecting()).await;
        let run = run_task(&emu, task).await;
        assert_eq!(run.code, 5, "{route}: {}", run.stdout);
        let out = run.outputs();
        assert_eq!(
            (out.status.as_deref(), out.error_code.as_deref()),
            (Some("Skipped"), Some("CapacityRejected")),
            "{route}"
        );
        let message = out.error_message.unwrap_or_default();
        assert!(
            message.contains(CAP_SALES) && message.contains("CapacityLimitExceeded"),
            "{route}: {message}"
        );
        assert!(
            out.capacity_wait_seconds.is_some_and(|w| w > 0.5),
            "{route}"
        );
        assert!(
            run.log_text().contains("Capacity Metrics"),
            "{route}: the help says what to do: {}",
            run.log_text()
        );
        let posts = requests_to(&emu, route).await;
        assert!(posts.len() >= 2, "{route}: retried with a back-off");
        assert_eq!(
            posts.len() as u64,
            rejected(&emu, CAP_SALES).await,
            "{route}"
        );
        assert_eq!(out.request_id, None, "{route}: nothing started");
        let (list, key, id) = match route {
            "refresh.post" => ("refreshes", "datasetId", DS_SALES),
            "dataflow.refresh" => ("transactions", "dataflowId", DF_STAGING),
            _ => ("jobs", "itemId", ITEM_GEN2),
        };
        let started = control(&emu, "GET", list, None).await;
        let ours = started
            .as_array()
            .expect("list")
            .iter()
            .filter(|r| r[key] == id && r["refreshType"] != "Scheduled")
            .count();
        assert_eq!(ours, 0, "{route}: {started}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_holds_the_rejecting_capacity_and_runs_the_other_meanwhile() {
    let mut scenario = rejecting();
    // One earlier run of `minutes`, for the expected duration that orders a fleet.
    let history = |n: u32, minutes: u32| {
        json!([{"requestId": format!("e0000000-0000-4000-8000-0000000001{n:02}"),
                "refreshType": "Scheduled", "status": "Completed",
                "startTime": "-PT1H", "endTime": format!("-PT{}M", 60 - minutes)}])
    };
    scenario["workspaces"][0]["datasets"]
        .as_array_mut()
        .expect("test value")
        .push(json!({"id": DS_EXTRA, "name": "Sales Extra", "refresh": {"polls": 1}, "history": history(0, 10)}));
    // Finance's models are expected shorter: the Sales ones go first, and with two at a time
    // Finance's start only once a Sales one came back rejected.
    let finance = scenario["workspaces"][1]["datasets"]
        .as_array_mut()
        .expect("test value");
    for (n, d) in (1..).zip(finance.iter_mut()) {
        d["history"] = history(n, 1);
    }
    let emu = emulator(scenario).await;
    let task = json!({"operation": "dataset.refresh", "poll": {"min": 0.01, "max": 0.05},
    "grace": "PT5S", "timeout": "PT60S", "maxParallel": 2, "targets": [
        {"workspace": "Sales", "dataset": DS_SALES},
        {"workspace": "Sales", "dataset": DS_EXTRA},
        {"workspace": "Finance", "dataset": DS_BUDGET_A},
        {"workspace": "Finance", "dataset": DS_BUDGET_B}
    ]});
    let (run, ()) = tokio::join!(run_task(&emu, task), async {
        // Finance's refreshes complete while Sales's capacity is held.
        for d in [DS_BUDGET_A, DS_BUDGET_B] {
            until_completed(&emu, d).await;
        }
        control(
            &emu,
            "POST",
            "clock/advance",
            Some(json!({"seconds": PERIOD})),
        )
        .await;
    });
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.failed, Some(0));
    assert_eq!(out.by_status.expect("by status")["Completed"], 4);
    let holds = out.capacity_hold_seconds.expect("the hold is reported");
    assert!(holds[CAP_SALES] > 0.0, "{holds:?}");
    assert!(!holds.contains_key(CAP_FINANCE), "{holds:?}");
    let targets = out.targets.expect("targets");
    for t in &targets {
        let held = t["workspaceName"] == "Sales";
        assert_eq!(
            t["capacityWaitSeconds"].as_f64().is_some_and(|w| w > 0.0),
            held,
            "{t}"
        );
    }

    // Order in the log: Sales rejected first, Finance accepted meanwhile, Sales accepted last.
    let posts = requests_to(&emu, "refresh.post").await;
    let seq = |pred: &dyn Fn(&Value) -> bool| -> Vec<u64> {
        posts
            .iter()
            .filter(|p| pred(p))
            .filter_map(|p| p["seq"].as_u64())
            .collect()
    };
    let on = |d: &'static str| move |p: &Value| p["path"].as_str().is_some_and(|x| x.contains(d));
    let sales = |p: &Value| on(DS_SALES)(p) || on(DS_EXTRA)(p);
    let first_rejection = seq(&|p| sales(p) && p["status"] == 429)[0];
    let finance = seq(&|p| !sales(p));
    let sales_accepted = seq(&|p| sales(p) && p["status"] == 202);
    assert_eq!((finance.len(), sales_accepted.len()), (2, 2));
    assert!(
        finance
            .iter()
            .all(|f| *f > first_rejection && *f < sales_accepted[0]),
        "{posts:?}"
    );
    let refused = rejected(&emu, CAP_SALES).await;
    assert_eq!(seq(&|p| sales(p)).len() as u64, refused + 2);
}

/// Waits until the emulator reports `dataset`'s refresh completed.
async fn until_completed(emu: &pbiops_emulator::Emulator, dataset: &str) {
    for _ in 0..2000 {
        if refreshes_of(emu, dataset)
            .await
            .iter()
            .any(|r| r["refreshType"] == "ViaApi" && r["status"] == "Completed")
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{dataset} never completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_items_whose_capacity_rejects_past_the_timeout_end_capacity_rejected_and_recorded() {
    let emu = emulator(rejecting()).await;
    let dir = tempfile::tempdir().expect("dir");
    let env = kestra_store_env(&emu, dir.path(), "surge-fleet");
    // Slow Model and Budget (no history) go first; Slow Model is rejected, and probes again each
    // time the hold ends (it comes first): Sales Model never tries, it only waits for its held
    // capacity until its own, shorter, timeout.
    let task = json!({"operation": "dataset.refresh", "poll": {"min": 0.01, "max": 0.05},
    "grace": "PT5S", "timeout": 1, "maxParallel": 2, "targets": [
        {"workspace": "Sales", "dataset": DS_SLOW},
        {"workspace": "Sales", "dataset": DS_SALES, "timeout": 0.6},
        {"workspace": "Finance", "dataset": DS_BUDGET_A}
    ]});
    let run = run(Input::Env(task), &env).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.failed, Some(2));
    let targets = out.targets.expect("targets");
    for t in &targets {
        if t["workspaceName"] == "Sales" {
            assert_eq!(
                (&t["status"], &t["errorCode"], &t["exitCode"]),
                (&json!("Skipped"), &json!("CapacityRejected"), &json!(5)),
                "{t}"
            );
            assert!(
                t["capacityWaitSeconds"].as_f64().is_some_and(|w| w >= 0.5),
                "{t}"
            );
        } else {
            assert_eq!(t["status"], "Completed", "{t}");
        }
    }
    assert!(out.capacity_hold_seconds.expect("holds")[CAP_SALES] > 0.5);
    let posts = requests_to(&emu, "refresh.post").await;
    let to = |d: &'static str| {
        posts
            .iter()
            .filter(move |p| p["path"].as_str().is_some_and(|x| x.contains(d)))
    };
    assert_eq!(to(DS_SALES).count(), 0, "Sales Model waited without trying");
    assert!(to(DS_SLOW).all(|p| p["status"] == 429));
    assert_eq!(to(DS_BUDGET_A).count(), 1);
    // Each item's row records the outcome and, in its outputs, the wait.
    let rows = operation_rows(&dir.path().join("pbiops.db"));
    let sales: Vec<&(String, String, String)> =
        rows.iter().filter(|r| r.1 == "CapacityRejected").collect();
    assert_eq!(sales.len(), 2, "{rows:?}");
    for (status, _, outputs) in sales {
        assert_eq!(status, "Skipped");
        let outputs: Value = serde_json::from_str(outputs).expect("outputs JSON");
        assert!(
            outputs["capacityWaitSeconds"]
                .as_f64()
                .is_some_and(|w| w >= 0.5),
            "{outputs}"
        );
    }
}

/// `(status, error_code, outputs)` of every `dataset.refresh` row of a SQLite store.
fn operation_rows(db: &std::path::Path) -> Vec<(String, String, String)> {
    let env = odbc_api::Environment::new().expect("odbc");
    let conn = env
        .connect_with_connection_string(
            &format!("Driver={{SQLite3}};Database={};", db.display()),
            odbc_api::ConnectionOptions::default(),
        )
        .expect("sqlite");
    let mut cursor = conn
        .execute(
            "SELECT status, COALESCE(error_code, ''), COALESCE(outputs, '') FROM pbiops_operations WHERE operation = 'dataset.refresh' AND item_id IS NOT NULL",
            (),
            None,
        )
        .expect("query")
        .expect("cursor");
    let mut rows = Vec::new();
    while let Some(mut row) = odbc_api::Cursor::next_row(&mut cursor).expect("row") {
        let mut text = |col| {
            let mut buf = Vec::new();
            row.get_text(col, &mut buf).expect("text");
            String::from_utf8(buf).expect("utf-8")
        };
        rows.push((text(1), text(2), text(3)));
    }
    rows
}
