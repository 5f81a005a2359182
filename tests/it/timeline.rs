//! The picture of a night: a seeded operation log (36 operations, 3 capacities, every outcome)
//! drawn by the `timeline` operation and opened in headless Chromium: the page loads with no
//! network request, holds one bar per operation, and a screenshot is taken.
//!
//! Chromium is Debian's `chromium` package. Without it the browser half is skipped, loudly;
//! with `PBIOPS_WRITE_SCREENSHOT=1` the screenshot also replaces `docs/images/timeline.png`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pbiops::store::{Finish, NewOperation, Store};
use secrecy::SecretString;
use serde_json::json;

use crate::support::*;

const CAP_A: &str = "ca000000-0000-4000-8000-00000000000a";
const CAP_B: &str = "ca000000-0000-4000-8000-00000000000b";
const CAP_C: &str = "ca000000-0000-4000-8000-00000000000c";
const WS_OPS: &str = "a0000000-0000-4000-8000-000000000009";

const STATUSES: [&str; 12] = [
    "Completed",
    "Completed",
    "Failed",
    "Completed",
    "Cancelled",
    "TimedOut",
    "Skipped",
    "Completed",
    "Running",
    "Triggered",
    "Interrupted",
    "Completed",
];

/// Three workspaces on three capacities, one on shared capacity.
fn night_scenario() -> serde_json::Value {
    let mut s = scenario();
    s["workspaces"][0]["capacityId"] = json!(CAP_A);
    s["workspaces"][1]["capacityId"] = json!(CAP_B);
    s["workspaces"]
        .as_array_mut()
        .expect("workspaces")
        .push(json!({"id": WS_OPS, "name": "Operations", "capacityId": CAP_C}));
    s
}

/// Writes 36 operations of the last nine hours into the store at `conn`.
async fn seed(conn: &str) -> usize {
    let store = Store::open(&SecretString::from(conn.to_string()), None)
        .await
        .expect("the store opens");
    let workspaces = [
        (WS_SALES, "Sales"),
        (WS_FINANCE, "Finance"),
        (WS_OPS, "Operations"),
        (WS_SHARED, "Marketing"),
    ];
    let base = Timestamp::now() - SignedDuration::from_hours(9);
    let count = 36;
    for i in 0..count {
        let (ws, ws_name) = workspaces[i % 4];
        let status = STATUSES[i % STATUSES.len()];
        let start = base + SignedDuration::from_mins(12 * i as i64);
        let minutes = 15 + (i as i64 * 7) % 50;
        let end = match status {
            "Running" => None,
            "Skipped" => Some(start),
            _ => Some(start + SignedDuration::from_mins(minutes)),
        };
        let expected = (minutes as f64) * 60.0 * if i % 3 == 0 { 0.6 } else { 1.1 };
        let overran = end.is_some() && (minutes as f64) * 60.0 > expected * 1.2;
        let attached = i % 7 == 0;
        let id = store
            .start_operation(&NewOperation {
                operation: if i % 5 == 4 {
                    "dataflow.refresh"
                } else {
                    "dataset.refresh"
                }
                .into(),
                profile: Some("default".into()),
                item_kind: Some("SemanticModel".into()),
                workspace_id: Some(ws.into()),
                workspace_name: Some(ws_name.into()),
                item_id: Some(format!("d1000000-0000-4000-8000-{i:012}")),
                item_name: Some(format!("{ws_name} model {i:02}")),
                started_at: start,
                kestra_execution_id: Some("5hQx2nightly".into()),
                pbiops_version: "test".into(),
                ..NewOperation::default()
            })
            .await
            .expect("a row");
        let failed = matches!(status, "Failed" | "TimedOut");
        let outputs = json!({"expectedSeconds": expected, "overran": overran, "attached": attached,
                             "cancelRequested": status == "Cancelled"});
        store
            .update_operation(
                id,
                &Finish {
                    status: status.into(),
                    ended_at: end,
                    exit_code: Some(if failed { 1 } else { 0 }),
                    attached: Some(attached),
                    duration_seconds: end.map(|e| (e - start).as_secs_f64()),
                    error_code: failed.then(|| "ModelRefreshFailed_CredentialsNotSpecified".into()),
                    error_message: failed
                        .then(|| "The data source credentials are missing.".into()),
                    request_id: Some(format!("e1000000-0000-4000-8000-{i:012}")),
                    outputs_json: Some(outputs.to_string()),
                    ..Finish::default()
                },
            )
            .await
            .expect("the row is finished");
    }
    count
}

/// The http(s)/ws URLs requested on behalf of a `file://` page, from a Chromium network log
/// (Chromium's own background requests carry another network isolation key).
fn page_requests(netlog: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(netlog).unwrap_or_default();
    let log: serde_json::Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))))
        .expect("chromium wrote a JSON network log");
    let mut urls = Vec::new();
    let mut by_source: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    for event in log["events"].as_array().into_iter().flatten() {
        let source = event["source"]["id"].as_i64().unwrap_or(-1);
        let params = &event["params"];
        if let Some(url) = params["url"].as_str() {
            by_source.insert(source, url.to_string());
        }
        let page = params["network_isolation_key"]
            .as_str()
            .is_some_and(|k| k.contains("file://"));
        if page {
            if let Some(url) = by_source.get(&source) {
                if ["http:", "https:", "ws:", "wss:"]
                    .iter()
                    .any(|s| url.starts_with(s))
                {
                    urls.push(url.clone());
                }
            }
        }
    }
    urls
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

async fn browse(chromium: &Path, profile: &Path, args: &[String]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium ends within two minutes")
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_night_is_drawn_and_opens_in_a_browser_with_no_network_request() {
    let emu = emulator(night_scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let conn = format!(
        "Driver={{SQLite3}};Database={};",
        dir.path().join("ops.db").display()
    );
    let seeded = seed(&conn).await;
    let mut env = env(&emu);
    env.retain(|(k, _)| k != "PBIOPS_ODBC");
    env.push(("PBIOPS_ODBC".into(), conn));
    let task = json!({"operation": "timeline", "filter": {"since": "PT10H"}, "byCapacity": true,
                      "title": "Nightly refreshes"});
    let run = run(Input::Env(task), &env).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.count, Some(seeded));
    assert_eq!(out.timeline_file.as_deref(), Some("timeline.html"));
    assert!(out.overruns.is_some_and(|n| n > 0));
    assert!(out.longest_seconds.is_some_and(|s| s > 0.0));
    let by_status = out.by_status.expect("byStatus");
    for status in [
        "Completed",
        "Failed",
        "Cancelled",
        "TimedOut",
        "Skipped",
        "Running",
    ] {
        assert!(by_status.contains_key(status), "{status} in {by_status:?}");
    }
    let page = run.dir.join("timeline.html");
    let html = std::fs::read_to_string(&page).expect("the page");
    assert_eq!(html.matches("<rect class=\"bar").count(), seeded);
    for capacity in [CAP_A, CAP_B, CAP_C] {
        assert!(html.contains(&format!("capacity {capacity}")), "{capacity}");
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script") && !html.contains("src="));

    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED the browser half of this test: chromium is not installed \
             (Debian: apt-get install -y chromium)"
        );
        return;
    };
    let profile = tempfile::tempdir().expect("profile");
    let netlog = dir.path().join("net.json");
    let url = format!("file://{}", page.display());
    let dom = browse(
        &chromium,
        profile.path(),
        &[
            format!("--log-net-log={}", netlog.display()),
            "--dump-dom".into(),
            url.clone(),
        ],
    )
    .await;
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<rect class=\"bar").count(),
        seeded,
        "one bar per operation in the loaded page"
    );
    let requests = page_requests(&netlog);
    assert!(
        requests.is_empty(),
        "the page made network requests: {requests:?}"
    );
    // The detector itself: a page that fetches an image is caught.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><img src=\"http://127.0.0.1:9/x.png\">",
    )
    .expect("control");
    let control_log = dir.path().join("control-net.json");
    browse(
        &chromium,
        tempfile::tempdir().expect("profile").path(),
        &[
            format!("--log-net-log={}", control_log.display()),
            "--dump-dom".into(),
            format!("file://{}", control.display()),
        ],
    )
    .await;
    assert!(
        !page_requests(&control_log).is_empty(),
        "the network log shows a page's own request"
    );

    let png = dir.path().join("timeline.png");
    let shot = browse(
        &chromium,
        tempfile::tempdir().expect("profile").path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1330,1250".into(),
            url,
        ],
    )
    .await;
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|_| panic!("a screenshot: {}", String::from_utf8_lossy(&shot.stderr)));
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    if std::env::var_os("PBIOPS_WRITE_SCREENSHOT").is_some() {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images/timeline.png");
        std::fs::create_dir_all(target.parent().expect("docs/images")).expect("docs/images");
        std::fs::copy(&png, &target).expect("the screenshot is copied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_draws_its_own_run_with_timeline_file() {
    let emu = emulator(night_scenario()).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut env = env(&emu);
    env.retain(|(k, _)| k != "PBIOPS_ODBC");
    env.push((
        "PBIOPS_ODBC".into(),
        format!(
            "Driver={{SQLite3}};Database={};",
            dir.path().join("ops.db").display()
        ),
    ));
    let task = json!({"operation": "dataset.refresh", "poll": {"min": 0.01, "max": 0.05},
    "timeout": "PT60S", "timelineFile": "night.html", "targets": [
        {"workspace": "Sales", "dataset": "Sales Model"},
        {"workspace": "Sales", "dataset": "Broken Model"},
        {"workspace": "Finance", "dataset": DS_BUDGET_A}
    ]});
    let run = run(Input::Env(task), &env).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.outputs();
    assert_eq!(out.timeline_file.as_deref(), Some("night.html"));
    assert_eq!(out.count, Some(3), "the fleet's own outputs are kept");
    let html = std::fs::read_to_string(run.dir.join("night.html")).expect("the page");
    assert_eq!(
        html.matches("<rect class=\"bar").count(),
        3,
        "one bar per target"
    );
    assert!(html.contains(&format!("capacity {CAP_A}")));
    assert!(html.contains("Broken Model"));
}
