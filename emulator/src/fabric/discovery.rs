//! `GET /v1/workspaces` and `GET /v1/workspaces/{ws}/items[?type=…]`. Models and reports appear
//! as `SemanticModel` and `Report` items next to the scenario's Fabric items, as in the service.

use super::{FabricCaller, caller, page, workspace as find_workspace};
use crate::powerbi::is_member;
use crate::scenario::{ReportType, Workspace};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceItem<'a> {
    id: &'a str,
    display_name: &'a str,
    description: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity_id: Option<&'a str>,
}

/// `GET /v1/workspaces`.
pub(crate) async fn workspaces(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let FabricCaller { caller, .. } = caller(&state.world(), &headers)?;
    let items: Vec<WorkspaceItem<'_>> = state
        .scenario
        .workspaces
        .iter()
        .filter(|w| is_member(w, &caller))
        .map(|w| WorkspaceItem {
            id: &w.id,
            display_name: &w.name,
            description: "",
            kind: "Workspace",
            capacity_id: w.capacity_id.as_deref().filter(|_| w.dedicated_capacity),
        })
        .collect();
    page(items, &uri, &headers, state.scenario.fabric_page_size)
}

/// An `Item`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub workspace_id: &'a str,
}

/// Every item of a workspace: models, reports, then the scenario's Fabric items.
pub(crate) fn items_of(workspace: &Workspace) -> Vec<Item<'_>> {
    let ws = workspace.id.as_str();
    let models = workspace.datasets.iter().map(move |d| Item {
        id: &d.id,
        display_name: &d.name,
        description: "",
        kind: "SemanticModel",
        workspace_id: ws,
    });
    let reports = workspace.reports.iter().map(move |r| Item {
        id: &r.id,
        display_name: &r.name,
        description: "",
        kind: match r.report_type {
            ReportType::PowerBIReport => "Report",
            ReportType::PaginatedReport => "PaginatedReport",
        },
        workspace_id: ws,
    });
    let items = workspace.items.iter().map(move |i| Item {
        id: &i.id,
        display_name: &i.display_name,
        description: &i.description,
        kind: &i.kind,
        workspace_id: ws,
    });
    models.chain(reports).chain(items).collect()
}

/// `GET /v1/workspaces/{workspaceId}/items[?type=…]`.
pub(crate) async fn items(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let workspace = find_workspace(&state, &caller, &workspace_id)?;
    let kind = query.get("type");
    let items: Vec<Item<'_>> = items_of(workspace)
        .into_iter()
        .filter(|i| kind.is_none_or(|k| k.eq_ignore_ascii_case(i.kind)))
        .collect();
    page(items, &uri, &headers, state.scenario.fabric_page_size)
}
