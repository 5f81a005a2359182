//! `inventory`: what the profile can see — workspaces, semantic models, Gen1 and Gen2 dataflows,
//! reports — and the lineage between them (dataflow → dataflow, dataflow → model, model → report).
//!
//! Counts go to the outputs; everything goes to `inventory.json` for Kestra's `outputFiles`.
//! Fabric is asked for Gen2 dataflows when it answers; a tenant without Fabric API access still
//! gets the Power BI part, with a warning.

use serde::Serialize;
use serde_json::{Value, json};

use super::Context;
use super::outputs::Outputs;
use crate::error::{Error, ExitCode};
use crate::fabric::Fabric;
use crate::resolve;
use crate::settings::Profile;
use crate::task::InventoryTask;

/// One lineage edge.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Edge {
    from_kind: &'static str,
    from_id: String,
    to_kind: &'static str,
    to_id: String,
    workspace_id: String,
}

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &InventoryTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let fabric = Fabric::new(ctx.http, ctx.auth, profile, &ctx.settings.endpoints.fabric);
    let groups = match &task.workspace {
        Some(w) => vec![resolve::workspace(&pbi, w).await?],
        None => pbi.groups(None).await?,
    };
    let mut workspaces = Vec::new();
    let mut edges = Vec::new();
    let mut fabric_ok = true;
    let (mut n_datasets, mut n_dataflows, mut n_gen2, mut n_reports) = (0, 0, 0, 0);
    for g in &groups {
        let datasets = pbi.datasets(g).await?;
        let dataflows = pbi.dataflows(&g.id).await?;
        let reports = pbi.reports(&g.id).await?;
        let gen2 = if fabric_ok {
            match fabric.items(&g.id, Some("Dataflow")).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(
                        "Fabric did not list Dataflow Gen2 items ({e}); the inventory covers Power BI only"
                    );
                    fabric_ok = false;
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        for link in pbi.datasets_upstream_dataflows(&g.id).await? {
            edges.push(Edge {
                from_kind: "dataflow",
                from_id: link.dataflow_object_id,
                to_kind: "semanticModel",
                to_id: link.dataset_object_id,
                workspace_id: g.id.clone(),
            });
        }
        for df in &dataflows {
            for up in pbi.upstream_dataflows(&g.id, &df.object_id).await? {
                edges.push(Edge {
                    from_kind: "dataflow",
                    from_id: up.target_dataflow_id,
                    to_kind: "dataflow",
                    to_id: df.object_id.clone(),
                    workspace_id: g.id.clone(),
                });
            }
        }
        for r in &reports {
            if let Some(ds) = &r.dataset_id {
                edges.push(Edge {
                    from_kind: "semanticModel",
                    from_id: ds.clone(),
                    to_kind: "report",
                    to_id: r.id.clone(),
                    workspace_id: g.id.clone(),
                });
            }
        }
        n_datasets += datasets.len();
        n_dataflows += dataflows.len();
        n_gen2 += gen2.len();
        n_reports += reports.len();
        workspaces.push(json!({
            "id": g.id, "name": g.name, "isOnDedicatedCapacity": g.is_on_dedicated_capacity, "capacityId": g.capacity_id,
            "semanticModels": datasets.iter().map(|d| json!({"id": d.id, "name": d.name, "isRefreshable": d.is_refreshable})).collect::<Vec<_>>(),
            "dataflows": dataflows.iter().map(|d| json!({"id": d.object_id, "name": d.name, "generation": 1})).collect::<Vec<_>>(),
            "dataflowsGen2": gen2.iter().map(|i| json!({"id": i.id, "name": i.display_name, "generation": 2})).collect::<Vec<_>>(),
            "reports": reports.iter().map(|r| json!({"id": r.id, "name": r.name, "reportType": r.report_type, "datasetId": r.dataset_id, "datasetWorkspaceId": r.dataset_workspace_id})).collect::<Vec<_>>(),
        }));
    }
    let doc = json!({"generatedAt": jiff::Timestamp::now().to_string(), "profile": profile.name, "workspaces": workspaces, "lineage": edges});
    std::fs::write(
        &task.output_file,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| {
        Error::task(
            "outputFile",
            format!("cannot write {}: {e}", task.output_file.display()),
            "give a writable path",
        )
    })?;
    let counts = [
        ("workspaces", groups.len()),
        ("semanticModels", n_datasets),
        ("dataflows", n_dataflows),
        ("dataflowsGen2", n_gen2),
        ("reports", n_reports),
        ("lineage", edges.len()),
    ];
    if ctx.reporter.format() == crate::kestra::LogFormat::Text {
        print_table(&workspaces);
    }
    tracing::info!("inventory written to {}", task.output_file.display());
    out.counts = Some(counts.iter().map(|(k, v)| (k.to_string(), *v)).collect());
    out.file = Some(task.output_file.display().to_string());
    Ok(ExitCode::Success)
}

/// A readable table for people at a terminal.
fn print_table(workspaces: &[Value]) {
    let print = |line: String| crate::console::line(crate::console::Stream::Out, &line);
    print(format!(
        "{:<30} {:<14} {:<40} id",
        "workspace", "kind", "name"
    ));
    for w in workspaces {
        let ws = w["name"].as_str().unwrap_or_default();
        for (key, kind) in [
            ("semanticModels", "model"),
            ("dataflows", "dataflow"),
            ("dataflowsGen2", "dataflow gen2"),
            ("reports", "report"),
        ] {
            for item in w[key].as_array().into_iter().flatten() {
                print(format!(
                    "{:<30} {:<14} {:<40} {}",
                    ws,
                    kind,
                    item["name"].as_str().unwrap_or_default(),
                    item["id"].as_str().unwrap_or_default()
                ));
            }
        }
    }
}
