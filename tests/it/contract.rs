//! The task contract: every malformed task exits 2 with one error line and sends nothing; the
//! task arrives by CLI, stdin or `PBIOPS_TASK`; an idle stdin never hangs.

use serde_json::{Value, json};

use crate::support::*;

fn base() -> Value {
    json!({"operation": "dataset.refresh", "workspace": "Sales", "dataset": "Sales Model"})
}

fn with(field: &str, value: Value) -> Value {
    let mut task = base();
    task[field] = value;
    task
}

const MIB: usize = 1 << 20;

fn dataflow(name: &str) -> Value {
    json!({"workspace": "Sales", "dataflow": name})
}

fn model_after(name: &str, keys: &[&str]) -> Value {
    json!({"workspace": "Sales", "dataset": name, "dependsOn": keys})
}

/// A `dataflow.refresh` fleet of `targets`, with the task-level fields of `rest`.
fn fleet(targets: Value, rest: Value) -> Value {
    let mut task = json!({"operation": "dataflow.refresh", "targets": targets});
    for (k, v) in rest.as_object().into_iter().flatten() {
        task[k] = v.clone();
    }
    task
}

/// (task JSON text, the field the error must name)
fn malformed() -> Vec<(String, &'static str)> {
    let t = |v: Value| v.to_string();
    vec![
        ("not json".into(), "(task)"),
        ("[1,2]".into(), "(task)"),
        (
            t(json!({"workspace": "Sales", "dataset": "x"})),
            "operation",
        ),
        (t(with("operation", json!("dataset.explode"))), "operation"),
        (t(with("workspce", json!("Sales"))), "workspce"),
        (
            t(json!({"operation": "dataset.refresh", "dataset": "x"})),
            "workspace",
        ),
        (t(with("dataset", json!(""))), "dataset"),
        (t(with("wait", json!("yes"))), "wait"),
        (t(with("timeout", json!("2 hours"))), "timeout"),
        (t(with("timeout", json!(-5))), "timeout"),
        (t(with("ifRunning", json!("queue"))), "ifRunning"),
        (t(with("onTimeout", json!("cancel"))), "onTimeout"),
        (
            t(with("poll", json!({"min": "PT10S", "max": "PT1S"}))),
            "poll.max",
        ),
        (t(with("poll", json!({"min": 0}))), "poll.min"),
        (t(with("poll", json!({"every": "PT1S"}))), "poll.every"),
        (t(with("refresh", json!({}))), "refresh"),
        (t(with("refresh", json!({"type": "Add"}))), "refresh.type"),
        (
            t(with(
                "refresh",
                json!({"commitMode": "PartialBatch", "applyRefreshPolicy": true}),
            )),
            "refresh.applyRefreshPolicy",
        ),
        (
            t(with("refresh", json!({"timeout": "24:00:00"}))),
            "refresh.timeout",
        ),
        (
            t(with("refresh", json!({"maxParallelism": -1}))),
            "refresh.maxParallelism",
        ),
        (
            t(with("refresh", json!({"objects": [{"table": ""}]}))),
            "refresh.objects[0].table",
        ),
        (
            t(with("refresh", json!({"effectiveDate": "someday"}))),
            "refresh.effectiveDate",
        ),
        (t(with("notifyOption", json!("Always"))), "notifyOption"),
        (
            t(with("clientSecret", json!("hunter2-hunter2"))),
            "clientSecret",
        ),
        (
            t(with(
                "workspace",
                json!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
            )),
            "workspace",
        ),
        (t(with("profile", json!("sales-eu"))), "profile"),
        // Hostile input: no panic, no request, the field named.
        (t(with("timeout", json!(1e30))), "timeout"),
        (t(with("timeout", json!("1e30"))), "timeout"),
        (t(with("grace", json!(u64::MAX))), "grace"),
        (t(with("poll", json!({"max": "NaN"}))), "poll.max"),
        (
            r#"{"operation":"dataset.refresh","workspace":"Sales","workspace":"Sales","dataset":"x"}"#
                .into(),
            "workspace",
        ),
        (t(with("workspace", json!("Sa\u{0}les"))), "workspace"),
        (t(with("dataset", json!("Sales\r\nModel"))), "dataset"),
        (t(with("workspace", json!("x".repeat(1_000_000)))), "workspace"),
        (
            t(with("dataset", json!("x".repeat(MIB + 1)))),
            "(task)",
        ),
        (
            t(fleet(json!([dataflow("Staging")]), json!({"outputFile": "/nonexistent-dir/targets.json"}))),
            "outputFile",
        ),
        // Fleets of any item: the dependency graph is checked before anything is sent.
        (
            t(fleet(json!([dataflow("Staging"), model_after("Sales Model", &["Sales/Ghost"])]), json!({}))),
            "targets[1].dependsOn[0]",
        ),
        (
            t(fleet(json!([dataflow("Staging"), model_after("Sales Model", &["Sales/Sales Model"])]), json!({}))),
            "targets[1].dependsOn[0]",
        ),
        (
            t(fleet(json!([dataflow("Staging"), dataflow("Staging")]), json!({}))),
            "targets[1]",
        ),
        (
            t(fleet(
                json!([
                    {"workspace": "Sales", "dataflow": "Staging", "dependsOn": ["Sales/Sales Model"]},
                    model_after("Sales Model", &["Sales/Staging"])
                ]),
                json!({}),
            )),
            "targets[1].dependsOn",
        ),
        (
            t(fleet(json!([{"workspace": "Sales", "dataflow": "Staging", "refresh": {"type": "Full"}}]), json!({}))),
            "targets[0].refresh",
        ),
        (
            t(fleet(json!([dataflow("Staging")]), json!({"then": "downstream"}))),
            "then",
        ),
        (t(with("maxAge", json!("PT1H"))), "maxAge"),
        (
            t(
                json!({"operation": "dataset.status", "workspace": "Sales", "dataset": "x", "maxAge": "old"}),
            ),
            "maxAge",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tasks_exit_2_with_one_error_line_and_send_nothing() {
    let emu = emulator(scenario()).await;
    let cases = malformed();
    assert!(cases.len() >= 20);
    for (task, field) in cases {
        let run = run(Input::Stdin(task.clone()), &env(&emu)).await;
        assert_eq!(run.code, 2, "{task}: {}", run.stdout);
        assert!(
            run.stderr.is_empty(),
            "kestra format keeps stderr clean: {}",
            run.stderr
        );
        let errors: Vec<&(String, String)> = run
            .logs
            .iter()
            .filter(|(level, _)| level == "ERROR")
            .collect();
        assert_eq!(errors.len(), 1, "{task}");
        let message = &errors[0].1;
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "one error line and one help line: {message}"
        );
        assert!(
            lines[0].starts_with("error: invalid task: ")
                && lines[0].contains(&format!("`{field}`")),
            "{task}: {message}"
        );
        assert!(lines[1].starts_with("help: "), "{message}");
        assert!(
            !message.contains("hunter2") && !message.contains("eyJhbGci"),
            "the secret is not echoed: {message}"
        );
        assert_eq!(run.outputs().error_code.as_deref(), Some("InvalidTask"));
    }
    assert!(
        requests(&emu).await.is_empty(),
        "no request was sent for any malformed task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_exit_2_naming_the_variable_and_send_nothing() {
    let emu = emulator(scenario()).await;
    let cases = [
        (
            "PBIOPS_POWERBI_URL",
            "http://api.example.com/v1.0/myorg",
            "PBIOPS_POWERBI_URL",
        ),
        ("PBIOPS_CLIENT_SECRET", "", "PBIOPS_CLIENT_SECRET"),
        ("PBIOPS_LOG_LEVEL", "loud", "PBIOPS_LOG_LEVEL"),
        ("PBIOPS_HTTP_TIMEOUT", "forever", "PBIOPS_HTTP_TIMEOUT"),
        (
            "PBIOPS_PROFILE_FIN_CLIENT_SECRT",
            "x",
            "PBIOPS_PROFILE_FIN_CLIENT_SECRT",
        ),
    ];
    for (var, value, named) in cases {
        let mut env = env(&emu);
        env.retain(|(k, _)| k != var);
        env.push((var.to_string(), value.to_string()));
        let run = run(Input::Env(base()), &env).await;
        assert_eq!(run.code, 2, "{var}={value}");
        assert!(
            run.log_text().contains(&format!("`{named}`")),
            "{}",
            run.log_text()
        );
        assert!(run.log_text().contains("help: "));
    }
    let mut task = base();
    task["profile"] = json!("finance");
    let run = run(Input::Env(task), &env(&emu)).await;
    assert_eq!(run.code, 2);
    assert!(
        run.log_text().contains("PBIOPS_PROFILE_FINANCE_TENANT_ID"),
        "{}",
        run.log_text()
    );
    assert!(requests(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_can_come_from_cli_arguments_or_stdin() {
    let emu = emulator(scenario()).await;
    let args = vec![
        "dataset",
        "refresh",
        "--workspace",
        "Sales",
        "--dataset",
        "Sales Model",
        "--poll-min",
        "0.01",
        "--poll-max",
        "0.05",
    ];
    let by_args = run(Input::Args(args), &env(&emu)).await;
    assert_eq!(by_args.code, 0, "{}", by_args.stdout);
    assert_eq!(by_args.outputs().status.as_deref(), Some("Completed"));

    let by_stdin = run(
        Input::Stdin(refresh_task("Sales", "Sales Model").to_string()),
        &env(&emu),
    )
    .await;
    assert_eq!(by_stdin.code, 0, "{}", by_stdin.stdout);

    let mut env = env(&emu);
    env.push(("PBIOPS_TASK".into(), base().to_string()));
    let both = run(
        Input::Args(vec![
            "dataset",
            "status",
            "--workspace",
            "Sales",
            "--dataset",
            "Sales Model",
        ]),
        &env,
    )
    .await;
    assert_eq!(both.code, 2, "two tasks are refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stdin_pipe_exits_2_instead_of_hanging() {
    let emu = emulator(scenario()).await;
    let run = run(Input::IdleStdin, &env(&emu)).await;
    assert_eq!(run.code, 2);
    assert!(
        run.log_text().contains("no task arrived on stdin"),
        "{}",
        run.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_environment_variable() {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pbiops"));
    let out = cmd.arg("--help").env_clear().output().expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        help.lines().all(|l| l.len() <= 100),
        "help lines fit a terminal"
    );
    for var in [
        "PBIOPS_TASK",
        "PBIOPS_TENANT_ID",
        "PBIOPS_CLIENT_ID",
        "PBIOPS_CLIENT_SECRET",
        "PBIOPS_PROFILE_<NAME>_TENANT_ID",
        "PBIOPS_CERTIFICATE_PATH",
        "PBIOPS_FEDERATED_TOKEN_FILE",
        "PBIOPS_MANAGED_IDENTITY",
        "IDENTITY_ENDPOINT",
        "PBIOPS_ODBC",
        "PBIOPS_TOKEN_KEY",
        "PBIOPS_LEGACY_TOKEN_TABLE",
        "KESTRA_EXECUTION_ID",
        "PBIOPS_AUTHORITY_URL",
        "PBIOPS_POWERBI_URL",
        "PBIOPS_FABRIC_URL",
        "PBIOPS_LOG_FORMAT",
        "PBIOPS_LOG_LEVEL",
        "PBIOPS_HTTP_TIMEOUT",
        "PBIOPS_HTTP_RETRIES",
        "PBIOPS_HTTP_RETRY_BUDGET",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_writes_error_and_help_lines_to_stderr() {
    let emu = emulator(scenario()).await;
    let mut env = env(&emu);
    env.push(("PBIOPS_LOG_FORMAT".into(), "text".into()));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pbiops"));
    let out = cmd
        .env_clear()
        .envs(env)
        .env("PBIOPS_TASK", with("ifRunning", json!("queue")).to_string())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        vec![
            "error: invalid task: `ifRunning`: `queue` is not allowed",
            "help: one of: attach, skip, fail"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_cycle_between_targets_is_named_in_full_and_nothing_is_sent() {
    let emu = emulator(scenario()).await;
    let task = fleet(
        json!([
            {"workspace": "Sales", "dataflow": "Staging", "id": "staging", "dependsOn": ["model"]},
            {"workspace": "Sales", "dataflow": "Gen2 Flow", "id": "gen2", "generation": 2, "dependsOn": ["staging"]},
            {"workspace": "Sales", "dataset": "Sales Model", "id": "model", "dependsOn": ["gen2"]}
        ]),
        json!({}),
    );
    let run = run(Input::Stdin(task.to_string()), &env(&emu)).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    let errors: Vec<&String> = run
        .logs
        .iter()
        .filter(|(level, _)| level == "ERROR")
        .map(|(_, message)| message)
        .collect();
    assert_eq!(
        errors,
        [
            "error: invalid task: `targets[1].dependsOn`: forms a cycle: staging → model → gen2 → staging\n\
             help: each target in the cycle waits for the next; remove one of these dependsOn entries"
        ]
    );
    assert_eq!(run.outputs().operation.as_deref(), None);
    assert!(requests(&emu).await.is_empty(), "nothing was sent");
}
