//! Entra ID: refusals exit 3 with a hint people can act on; names resolve or exit 4.

use serde_json::json;

use crate::support::*;

async fn run_with(emu: &pbiops_emulator::Emulator, var: &str, value: &str) -> Run {
    let mut env = env(emu);
    env.retain(|(k, _)| k != var);
    env.push((var.to_string(), value.to_string()));
    run(Input::Env(refresh_task("Sales", "Sales Model")), &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secrets_id_instead_of_its_value_exits_3_with_the_hint() {
    let emu = emulator(scenario()).await;
    let run = run_with(&emu, "PBIOPS_CLIENT_SECRET", SECRET_ID).await;

    assert_eq!(run.code, 3);
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("AADSTS7000215"));
    assert!(
        run.log_text().contains(
            "help: the client secret is wrong: you may have passed the secret's ID, not its value"
        ),
        "{}",
        run.log_text()
    );
    assert!(run.log_text().contains(CLIENT), "names the client id");
    assert!(requests_to(&emu, "groups").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tenant_or_application_exits_3_naming_the_variable() {
    let emu = emulator(scenario()).await;
    let run = run_with(&emu, "PBIOPS_TENANT_ID", "nowhere.onmicrosoft.com").await;
    assert_eq!(run.code, 3);
    assert_eq!(run.outputs().error_code.as_deref(), Some("AADSTS90002"));
    assert!(run.log_text().contains("check PBIOPS_TENANT_ID"));

    let run = run_with(
        &emu,
        "PBIOPS_CLIENT_ID",
        "7d1c2b1e-0000-4000-8000-00000000ffff",
    )
    .await;
    assert_eq!(run.code, 3);
    assert_eq!(run.outputs().error_code.as_deref(), Some("AADSTS700016"));
    assert!(run.log_text().contains("check PBIOPS_CLIENT_ID"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_the_principal_is_not_a_member_of_is_not_found_with_a_hint() {
    let mut s = scenario();
    s["workspaces"][0]["members"] = json!(["someone-else"]);
    let emu = emulator(s).await;
    let run = run_task(&emu, refresh_task(WS_SALES, DS_SALES)).await;

    // Not visible in /groups: resolving by id finds nothing.
    assert_eq!(run.code, 4);
    assert!(
        run.log_text()
            .contains("workspace `a0000000-0000-4000-8000-000000000001` was not found"),
        "{}",
        run.log_text()
    );
    assert!(
        run.log_text()
            .contains("that the service principal can see it"),
        "{}",
        run.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_workspace_lists_the_closest_names() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, refresh_task("Sale", "Sales Model")).await;

    assert_eq!(run.code, 4);
    assert_eq!(run.outputs().error_code.as_deref(), Some("NotFound"));
    assert!(
        run.log_text()
            .contains("workspace `Sale` was not found; closest names: Sales"),
        "{}",
        run.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_model_name_lists_every_match_with_its_id() {
    let emu = emulator(scenario()).await;
    let run = run_task(&emu, refresh_task("finance", "BUDGET")).await;

    assert_eq!(run.code, 4);
    let out = run.outputs();
    assert_eq!(out.error_code.as_deref(), Some("Ambiguous"));
    assert_eq!(
        out.workspace_id.as_deref(),
        Some(WS_FINANCE),
        "what was resolved is still reported"
    );
    let text = run.log_text();
    assert!(
        text.contains(DS_BUDGET_A) && text.contains(DS_BUDGET_B),
        "{text}"
    );
    assert!(requests_to(&emu, "refresh.post").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_ids_resolve_to_the_same_model() {
    let emu = emulator(scenario()).await;
    let by_id = run_task(&emu, refresh_task(WS_FINANCE, DS_BUDGET_B)).await;
    assert_eq!(by_id.code, 0, "{}", by_id.stdout);
    assert_eq!(by_id.outputs().dataset_name.as_deref(), Some("budget"));
}
