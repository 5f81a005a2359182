//! Report routes (reference §2.6): the shape a client needs to go from a report to its model,
//! including a model in another workspace (`datasetWorkspaceId`) and paginated reports, which
//! have no model.

use super::{caller, workspace as find_workspace};
use crate::scenario::{Report, ReportType, Workspace};
use crate::state::AppState;
use crate::wire::{self, Collection, Entity, base_url, json_response};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

/// A `Report` item.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportItem<'a> {
    id: &'a str,
    report_type: ReportType,
    name: &'a str,
    web_url: String,
    embed_url: String,
    is_from_pbix: bool,
    is_owned_by_me: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_workspace_id: Option<&'a str>,
    users: [Value; 0],
    subscriptions: [Value; 0],
}

impl<'a> ReportItem<'a> {
    fn new(workspace: &'a Workspace, report: &'a Report) -> ReportItem<'a> {
        let paginated = report.report_type == ReportType::PaginatedReport;
        ReportItem {
            id: &report.id,
            report_type: report.report_type,
            name: &report.name,
            // Links for people; they name the real portal.
            web_url: format!(
                "https://app.powerbi.com/groups/{}/{}/{}",
                workspace.id,
                if paginated { "rdlreports" } else { "reports" },
                report.id
            ),
            embed_url: format!(
                "https://app.powerbi.com/reportEmbed?reportId={}&groupId={}",
                report.id, workspace.id
            ),
            is_from_pbix: !paginated,
            is_owned_by_me: false,
            dataset_id: report.dataset_id.as_deref(),
            dataset_workspace_id: report.dataset_id.as_ref().map(|_| {
                report
                    .dataset_workspace_id
                    .as_deref()
                    .unwrap_or(&workspace.id)
            }),
            users: [],
            subscriptions: [],
        }
    }
}

/// `GET /v1.0/myorg/groups/{groupId}/reports`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let body = Collection {
        context: format!(
            "{}/v1.0/myorg/groups/{}/$metadata#reports",
            base_url(&headers),
            workspace.id
        ),
        count: None,
        value: workspace
            .reports
            .iter()
            .map(|r| ReportItem::new(workspace, r))
            .collect(),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v1.0/myorg/groups/{groupId}/reports/{reportId}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((group_id, report_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let report = workspace
        .reports
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(&report_id))
        .ok_or_else(|| {
            wire::item_not_found(format!(
                "Report {report_id} is not found! please verify reportId is correct and user have sufficient permissions."
            ))
        })?;
    let body = Entity {
        context: format!(
            "{}/v1.0/myorg/groups/{}/$metadata#reports/$entity",
            base_url(&headers),
            workspace.id
        ),
        item: ReportItem::new(workspace, report),
    };
    Ok(json_response(StatusCode::OK, &body))
}
