//! Discovery routes: workspaces (`/groups`, with `$filter`, `$top`, `$skip`) and semantic models
//! (`/groups/{g}/datasets`), in the shapes of reference §2.6.
//!
//! A service principal sees only the workspaces it is a member of, so filtering by membership
//! happens before `$filter`, `$top` and `$skip`.

use super::filter::Filter;
use super::{caller, dataset as find_dataset, is_member, workspace as find_workspace};
use crate::scenario::{self, Dataset, Workspace};
use crate::state::AppState;
use crate::wire::{self, Collection, Entity, base_url, json_response};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// A `Group` item.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupItem<'a> {
    id: &'a str,
    is_read_only: bool,
    is_on_dedicated_capacity: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
}

impl<'a> GroupItem<'a> {
    fn new(workspace: &'a Workspace) -> GroupItem<'a> {
        GroupItem {
            id: &workspace.id,
            is_read_only: workspace.is_read_only,
            is_on_dedicated_capacity: workspace.dedicated_capacity,
            capacity_id: workspace
                .capacity_id
                .as_deref()
                .filter(|_| workspace.dedicated_capacity),
            kind: "Workspace",
            name: &workspace.name,
        }
    }
}

/// A `Dataset` item (camelCase on the wire, as the service sends it).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DatasetItem<'a> {
    id: &'a str,
    name: &'a str,
    web_url: String,
    #[serde(rename = "addRowsAPIEnabled")]
    add_rows_api_enabled: bool,
    configured_by: &'a str,
    is_refreshable: bool,
    is_effective_identity_required: bool,
    is_effective_identity_roles_required: bool,
    is_on_prem_gateway_required: bool,
    target_storage_mode: &'static str,
    created_date: String,
    upstream_datasets: [Value; 0],
    users: [Value; 0],
}

impl<'a> DatasetItem<'a> {
    fn new(workspace: &Workspace, dataset: &'a Dataset, start: Timestamp) -> DatasetItem<'a> {
        let created = dataset
            .created_date
            .as_deref()
            .and_then(|text| scenario::resolve_time(text, start).ok())
            .unwrap_or_else(|| {
                start
                    .saturating_sub(SignedDuration::from_hours(30 * 24))
                    .unwrap_or(start)
            });
        DatasetItem {
            id: &dataset.id,
            name: &dataset.name,
            // A link for people, not followed by clients; it names the real portal.
            web_url: format!(
                "https://app.powerbi.com/groups/{}/datasets/{}",
                workspace.id, dataset.id
            ),
            add_rows_api_enabled: false,
            configured_by: dataset.configured_by.as_deref().unwrap_or(""),
            is_refreshable: dataset.is_refreshable,
            is_effective_identity_required: false,
            is_effective_identity_roles_required: false,
            is_on_prem_gateway_required: false,
            target_storage_mode: "Abf",
            created_date: wire::history_time(created),
            upstream_datasets: [],
            users: [],
        }
    }
}

/// Parses an optional non-negative integer query parameter; 400 naming it otherwise.
pub(crate) fn int_param(
    query: &HashMap<String, String>,
    name: &str,
    min: u64,
) -> Result<Option<u64>, Response> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n >= min => Ok(Some(n)),
        _ => Err(wire::invalid_request(format!(
            "Invalid value '{text}' for query parameter {name}: expected an integer >= {min}"
        ))),
    }
}

/// `GET /v1.0/myorg/groups`.
pub(crate) async fn groups(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let filter = match query.get("$filter") {
        Some(text) => Some(
            Filter::parse(text)
                .map_err(|e| wire::invalid_request(format!("Invalid $filter '{text}': {e}")))?,
        ),
        None => None,
    };
    let top = int_param(&query, "$top", 1)?;
    let skip = int_param(&query, "$skip", 0)?.unwrap_or(0);
    let matching: Vec<&Workspace> = state
        .scenario
        .workspaces
        .iter()
        .filter(|w| is_member(w, &caller))
        .filter(|w| filter.as_ref().is_none_or(|f| f.matches(&w.id, &w.name)))
        .collect();
    let count = matching.len();
    let page: Vec<GroupItem<'_>> = matching
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(top.map_or(usize::MAX, |t| usize::try_from(t).unwrap_or(usize::MAX)))
        .map(GroupItem::new)
        .collect();
    let body = Collection {
        context: format!("{}/v1.0/myorg/$metadata#groups", base_url(&headers)),
        count: Some(count),
        value: page,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v1.0/myorg/groups/{groupId}`.
pub(crate) async fn group(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let body = Entity {
        context: format!("{}/v1.0/myorg/$metadata#groups/$entity", base_url(&headers)),
        item: GroupItem::new(workspace),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v1.0/myorg/groups/{groupId}/datasets`.
pub(crate) async fn datasets(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (caller, start) = {
        let world = state.world();
        (caller(&world, &headers)?, world.clock.start())
    };
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let items: Vec<DatasetItem<'_>> = workspace
        .datasets
        .iter()
        .map(|d| DatasetItem::new(workspace, d, start))
        .collect();
    let body = Collection {
        context: format!(
            "{}/v1.0/myorg/groups/{}/$metadata#datasets",
            base_url(&headers),
            workspace.id
        ),
        count: None,
        value: items,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v1.0/myorg/groups/{groupId}/datasets/{datasetId}`.
pub(crate) async fn dataset(
    State(state): State<AppState>,
    Path((group_id, dataset_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (caller, start) = {
        let world = state.world();
        (caller(&world, &headers)?, world.clock.start())
    };
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataset = find_dataset(workspace, &dataset_id)?;
    let body = Entity {
        context: format!(
            "{}/v1.0/myorg/groups/{}/$metadata#datasets/$entity",
            base_url(&headers),
            workspace.id
        ),
        item: DatasetItem::new(workspace, dataset, start),
    };
    Ok(json_response(StatusCode::OK, &body))
}
