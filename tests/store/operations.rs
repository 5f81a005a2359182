//! The operation log: rows for success, failure and timeout; the earlier attempt a retried
//! run reattaches to; and the `history` filters.

use pbiops::store::{Finish, HistoryFilter, NewOperation, Store, TaskRun};

use crate::live;
use crate::support::{Backend, TestDb, at};

fn refresh(profile: &str, item: &str, started_minutes: i64) -> NewOperation {
    NewOperation {
        operation: "dataset.refresh".into(),
        profile: Some(profile.into()),
        started_at: at(started_minutes),
        kestra_execution_id: Some("exec-1".into()),
        kestra_taskrun_id: Some("run-1".into()),
        kestra_flow_id: Some("refresh-sales".into()),
        kestra_namespace: Some("company.bi".into()),
        pbiops_version: "0.1.0".into(),
        task_json: Some(format!(
            r#"{{"operation":"dataset.refresh","dataset":"{item}"}}"#
        )),
        ..NewOperation::default()
    }
}

fn resolved(item: &str, workspace: &str) -> Finish {
    Finish {
        status: "Running".into(),
        item_kind: Some("semanticModel".into()),
        workspace_id: Some(format!("ws-{workspace}")),
        workspace_name: Some(workspace.into()),
        item_id: Some(format!("id-{item}")),
        item_name: Some(item.into()),
        ..Finish::default()
    }
}

fn ended(status: &str, minutes: i64, exit_code: i32) -> Finish {
    Finish {
        status: status.into(),
        ended_at: Some(at(minutes)),
        exit_code: Some(exit_code),
        duration_seconds: Some(60.5),
        ..Finish::default()
    }
}

async fn the_log_records_success_failure_and_timeout(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");

    let ok = store
        .start_operation(&refresh("default", "Sales", 0))
        .await
        .expect("start");
    store
        .update_operation(ok, &resolved("Sales", "Finance"))
        .await
        .expect("progress");
    store
        .set_request_id(ok, "req-ok", false)
        .await
        .expect("request id");
    let mut f = ended("Completed", 1, 0);
    f.outputs_json = Some(r#"{"status":"Completed","attached":false}"#.into());
    store.update_operation(ok, &f).await.expect("finish");

    let failed = store
        .start_operation(&refresh("default", "Budget", 2))
        .await
        .expect("start");
    let long = format!("Grüße 日本 🚀 {}", "e".repeat(3000));
    let mut f = ended("Failed", 3, 1);
    f.error_code = Some("ModelRefreshFailed".into());
    f.error_message = Some(long.clone());
    f.request_id = Some("req-failed".into());
    store.update_operation(failed, &f).await.expect("finish");

    let timed_out = store
        .start_operation(&refresh("sales", "Stock", 4))
        .await
        .expect("start");
    store
        .set_request_id(timed_out, "req-slow", true)
        .await
        .expect("request id");
    let mut f = ended("TimedOut", 5, 5);
    f.error_code = Some("WaitTimeout".into());
    store.update_operation(timed_out, &f).await.expect("finish");

    assert!(
        ok < failed && failed < timed_out,
        "ids grow: {ok} {failed} {timed_out}"
    );
    let rows = store
        .operations(&HistoryFilter::default())
        .await
        .expect("history");
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, [timed_out, failed, ok], "newest first");

    let [t, f, o] = [&rows[0], &rows[1], &rows[2]];
    assert_eq!(
        (o.status.as_str(), o.exit_code, o.request_id.as_deref()),
        ("Completed", Some(0), Some("req-ok"))
    );
    assert_eq!(o.item_name.as_deref(), Some("Sales"));
    assert_eq!(o.workspace_id.as_deref(), Some("ws-Finance"));
    assert_eq!(o.item_kind.as_deref(), Some("semanticModel"));
    assert_eq!(
        (o.started_at, o.ended_at, o.duration_seconds),
        (at(0), Some(at(1)), Some(60.5))
    );
    assert_eq!(o.kestra_execution_id.as_deref(), Some("exec-1"));
    assert_eq!(o.kestra_namespace.as_deref(), Some("company.bi"));
    assert_eq!(o.pbiops_version, "0.1.0");
    assert!(!o.attached);

    assert_eq!((f.status.as_str(), f.exit_code), ("Failed", Some(1)));
    assert_eq!(f.error_code.as_deref(), Some("ModelRefreshFailed"));
    let message = f.error_message.as_deref().expect("message");
    assert!(message.starts_with("Grüße 日本 🚀 eee"), "unicode survives");
    assert_eq!(message.encode_utf16().count(), 2000, "cut to the column");
    assert_eq!(f.request_id.as_deref(), Some("req-failed"));
    assert_eq!(f.item_id, None);

    assert_eq!((t.status.as_str(), t.exit_code), ("TimedOut", Some(5)));
    assert_eq!(t.request_id.as_deref(), Some("req-slow"));
    assert!(t.attached);
    assert_eq!(t.profile.as_deref(), Some("sales"));

    let json = serde_json::to_value(&rows[2]).expect("json");
    assert_eq!(
        json["outputs"]["status"], "Completed",
        "stored JSON stays JSON: {json}"
    );
    assert_eq!(json["task"]["dataset"], "Sales");
    assert_eq!(json["startedAt"], "2033-05-18T03:33:20Z");
    assert_eq!(json["kestraExecutionId"], "exec-1");
}
live!(the_log_records_success_failure_and_timeout);

async fn a_retried_run_finds_the_earlier_attempt_of_its_task_run(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let task_run = |profile: &'static str, taskrun: &'static str| TaskRun {
        operation: "dataset.refresh",
        profile,
        execution_id: "exec-1",
        taskrun_id: taskrun,
    };
    // Each attempt is its own process with its own connection: rows this process started are
    // never taken for an earlier attempt.
    let retry = Store::open(&db.secret(), None)
        .await
        .expect("open as the retry");
    let later = Store::open(&db.secret(), None)
        .await
        .expect("open as a later retry");
    let earlier = |store: &Store, run: TaskRun<'static>, current: Option<i64>| {
        let store = store.clone();
        async move {
            store
                .attempt_of_task_run(&run, "id-Sales", current)
                .await
                .expect("lookup")
                .map(|r| (r.id, r.status, r.request_id))
        }
    };
    assert_eq!(
        earlier(&store, task_run("default", "run-1"), None).await,
        None
    );
    let first = store
        .start_operation(&refresh("default", "Sales", 0))
        .await
        .expect("start");
    store
        .update_operation(first, &resolved("Sales", "Finance"))
        .await
        .expect("progress");
    store
        .set_request_id(first, "req-1", false)
        .await
        .expect("request id");
    assert_eq!(
        earlier(&store, task_run("default", "run-1"), None).await,
        None,
        "a process's own rows are not earlier attempts"
    );
    assert_eq!(
        earlier(&retry, task_run("default", "run-1"), None).await,
        Some((first, "Running".into(), Some("req-1".into())))
    );
    assert_eq!(
        earlier(&retry, task_run("default", "run-2"), None).await,
        None,
        "another task run's rows do not count"
    );
    assert_eq!(
        earlier(&retry, task_run("sales", "run-1"), None).await,
        None,
        "another profile's rows do not count"
    );

    let second = retry
        .start_operation(&refresh("default", "Sales", 2))
        .await
        .expect("start");
    retry
        .update_operation(second, &resolved("Sales", "Finance"))
        .await
        .expect("progress");
    assert_eq!(
        earlier(&retry, task_run("default", "run-1"), Some(second)).await,
        Some((first, "Running".into(), Some("req-1".into()))),
        "the current attempt's own row is not an earlier attempt"
    );
    store
        .abandon_operation(first, Some(second))
        .await
        .expect("abandon");
    store
        .update_operation(second, &ended("Completed", 3, 0))
        .await
        .expect("finish");
    assert_eq!(
        earlier(&later, task_run("default", "run-1"), None)
            .await
            .map(|(id, status, _)| (id, status)),
        Some((second, "Completed".into())),
        "the newest attempt, whatever its status"
    );

    store
        .abandon_operation(second, None)
        .await
        .expect("no-op on an ended row");
    let rows = store
        .operations(&HistoryFilter::default())
        .await
        .expect("history");
    let status = |id: i64| rows.iter().find(|r| r.id == id).map(|r| r.status.clone());
    assert_eq!(status(first).as_deref(), Some("Abandoned"));
    assert_eq!(status(second).as_deref(), Some("Completed"));
    let abandoned = rows.iter().find(|r| r.id == first).expect("row");
    assert!(abandoned.ended_at.is_some());
    assert!(
        abandoned
            .error_message
            .as_deref()
            .expect("message")
            .contains(&format!("operation {second} took over"))
    );
}
live!(a_retried_run_finds_the_earlier_attempt_of_its_task_run);

async fn history_filters_combine(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let mut ids = Vec::new();
    for (i, (profile, item, workspace, status)) in [
        ("default", "Sales", "Finance", "Completed"),
        ("default", "Budget", "Finance", "Failed"),
        ("Sales", "Stock", "Ops", "Completed"),
        ("default", "Sales", "Finance", "Failed"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = store
            .start_operation(&refresh(profile, item, i as i64 * 10))
            .await
            .expect("start");
        store
            .update_operation(id, &resolved(item, workspace))
            .await
            .expect("progress");
        store
            .update_operation(id, &ended(status, i as i64 * 10 + 1, 0))
            .await
            .expect("finish");
        ids.push(id);
    }
    let mut token_op = refresh("default", "-", 50);
    token_op.operation = "token.refresh".into();
    token_op.profile = None;
    ids.push(store.start_operation(&token_op).await.expect("start"));

    let find = |filter: HistoryFilter| {
        let store = store.clone();
        async move {
            let rows = store.operations(&filter).await.expect("history");
            rows.iter().map(|r| r.id).collect::<Vec<i64>>()
        }
    };
    assert_eq!(find(HistoryFilter::default()).await.len(), 5);
    let f = |o: Option<&str>, p: Option<&str>, s: Option<&str>, t: Option<&str>| HistoryFilter {
        operation: o.map(String::from),
        profile: p.map(String::from),
        status: s.map(String::from),
        target: t.map(String::from),
        ..HistoryFilter::default()
    };
    assert_eq!(
        find(f(Some("token.refresh"), None, None, None)).await,
        [ids[4]]
    );
    assert_eq!(
        find(f(None, Some("SALES"), None, None)).await,
        [ids[2]],
        "case-insensitive profile"
    );
    assert_eq!(
        find(f(None, None, Some("failed"), None)).await,
        [ids[3], ids[1]]
    );
    assert_eq!(
        find(f(None, None, None, Some("finance"))).await,
        [ids[3], ids[1], ids[0]],
        "workspace name"
    );
    assert_eq!(
        find(f(None, None, None, Some("ID-SALES"))).await,
        [ids[3], ids[0]],
        "item id"
    );
    assert_eq!(
        find(f(None, None, None, Some("ws-Ops"))).await,
        [ids[2]],
        "workspace id"
    );
    assert_eq!(
        find(f(None, Some("default"), Some("Failed"), Some("Sales"))).await,
        [ids[3]]
    );
    let since = HistoryFilter {
        since: Some(at(20)),
        ..HistoryFilter::default()
    };
    assert_eq!(find(since).await, [ids[4], ids[3], ids[2]]);
    let limited = HistoryFilter {
        limit: Some(2),
        target: Some("Finance".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(find(limited).await, [ids[3], ids[1]]);
}
live!(history_filters_combine);
