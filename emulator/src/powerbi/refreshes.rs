//! The dataset refresh routes (reference §2.1–2.4): trigger, history, execution details and
//! cancel. The rules of the service that a client must cope with live here: one refresh per
//! model, shared-capacity limits, the history's visibility lag and dropped requests.

use super::discovery::int_param;
use super::enhanced::{self, RefreshRequest};
use super::{caller, dataset as find_dataset, workspace as find_workspace};
use crate::history::new_refresh;
use crate::refresh::{Ended, Plan};
use crate::state::AppState;
use crate::surge;
use crate::wire::{
    self, Collection, HistoryItem, REQUEST_ID, RefreshDetail, base_url, json_response,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Refreshes per model per 24 hours on shared capacity (scheduled and API combined).
const SHARED_DAILY_LIMIT: usize = 8;
/// History entries returned without `$top`.
const DEFAULT_TOP: u64 = 60;

const BUSY: &str = "Invalid dataset refresh request. Another refresh request is already executing";
const DAILY_LIMIT: &str =
    "Invalid dataset refresh request. Number of refresh requests in last 24 hours exceeded limit";

/// `POST …/datasets/{datasetId}/refreshes`.
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Path((group_id, dataset_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataset = find_dataset(workspace, &dataset_id)?;
    if !dataset.is_refreshable {
        return Err(wire::invalid_request(format!(
            "Invalid dataset refresh request. Dataset {} is not refreshable (DirectQuery or LiveConnection models cannot be refreshed)",
            dataset.id
        )));
    }
    let body = json_object(&body)?;
    let request = enhanced::parse(body.as_ref())
        .map_err(|e| wire::invalid_request(format!("Invalid refresh request: {e}")))?;
    if matches!(request, RefreshRequest::Enhanced(_)) && !workspace.dedicated_capacity {
        return Err(wire::invalid_request(
            "Enhanced refresh is not supported on shared capacity",
        ));
    }
    let now = world.now();
    // Surge protection rejects new background operations before anything else about them.
    if world.surge.rejects(workspace.capacity_id.as_deref(), now) {
        return Err(surge::pbi_rejection());
    }
    if world.running_refresh(&dataset.id).is_some() {
        return Err(wire::invalid_request(BUSY));
    }
    if !workspace.dedicated_capacity {
        let since = now
            .saturating_sub(SignedDuration::from_hours(24))
            .unwrap_or(now);
        let recent = world
            .refreshes
            .iter()
            .filter(|r| r.dataset_id.eq_ignore_ascii_case(&dataset.id) && r.start > since)
            .count();
        if recent >= SHARED_DAILY_LIMIT {
            return Err(wire::invalid_request(DAILY_LIMIT));
        }
    }

    let behaviour = world.behaviour(&dataset.id);
    let request_id = wire::new_guid();
    let (refresh_type, enhanced) = match request {
        RefreshRequest::Standard => ("ViaApi", None),
        RefreshRequest::Enhanced(e) => ("ViaEnhancedApi", Some(e)),
    };
    let is_enhanced = enhanced.is_some();
    if !behaviour.drop {
        let number = world.take_number();
        let seconds = world.draw(&dataset.id, behaviour.duration_seconds.as_ref());
        let plan = Plan::from_behaviour(&behaviour, seconds);
        let mut refresh = new_refresh(
            workspace,
            dataset,
            request_id.clone(),
            refresh_type,
            now,
            plan,
        );
        refresh.number = number;
        refresh.enhanced = enhanced;
        refresh.body = body.map(Value::Object);
        refresh.hidden = world.take_lag("refresh.post");
        refresh.hidden.reads += behaviour.history_delay_polls;
        if refresh.capacity.is_some() {
            // It waits for a slot if its capacity is full.
            refresh.began = None;
        }
        world.refreshes.push(refresh);
        world.admit(now);
    }
    drop(world);

    let mut response = StatusCode::ACCEPTED.into_response();
    let response_headers = response.headers_mut();
    insert(response_headers, REQUEST_ID.clone(), &request_id);
    if is_enhanced {
        let location = format!(
            "{}/v1.0/myorg/groups/{}/datasets/{}/refreshes/{request_id}",
            base_url(&headers),
            workspace.id,
            dataset.id
        );
        insert(response_headers, header::LOCATION, &location);
        insert(
            response_headers,
            HeaderName::from_static("x-ms-request-id"),
            &request_id,
        );
    }
    Ok(response)
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The body as a JSON object; no body (or `null`) is `None`.
fn json_object(body: &Bytes) -> Result<Option<Map<String, Value>>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => Err(wire::invalid_request(format!(
            "Invalid refresh request: the body must be a JSON object, got {other}"
        ))),
        Err(e) => Err(wire::invalid_request(format!(
            "Invalid refresh request: the body is not valid JSON: {e}"
        ))),
    }
}

/// `GET …/datasets/{datasetId}/refreshes[?$top=N]`: newest first; each listed refresh is observed.
pub(crate) async fn history(
    State(state): State<AppState>,
    Path((group_id, dataset_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataset = find_dataset(workspace, &dataset_id)?;
    let top = int_param(&query, "$top", 1)?.unwrap_or(DEFAULT_TOP);
    let now = world.settle_all();

    let mut visible: Vec<usize> = Vec::new();
    for (index, refresh) in world.refreshes.iter_mut().enumerate() {
        if refresh.dataset_id.eq_ignore_ascii_case(&dataset.id) && !refresh.hidden.misses(now) {
            visible.push(index);
        }
    }
    visible.sort_by(|&a, &b| {
        let (a, b) = (&world.refreshes[a], &world.refreshes[b]);
        (b.start, b.number).cmp(&(a.start, a.number))
    });
    visible.truncate(usize::try_from(top).unwrap_or(usize::MAX));
    let time = if state.scenario.quirks.trimmed_times {
        wire::trimmed_time
    } else {
        wire::history_time
    };
    let items: Vec<HistoryItem> = visible
        .into_iter()
        .map(|index| {
            let refresh = &mut world.refreshes[index];
            let item = HistoryItem::new(refresh, time);
            refresh.observed += 1;
            item
        })
        .collect();
    drop(world);

    let body = Collection {
        context: format!(
            "{}/v1.0/myorg/groups/{}/$metadata#refreshes",
            base_url(&headers),
            workspace.id
        ),
        count: None,
        value: items,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET …/refreshes/{refreshId}`: execution details of an enhanced refresh (202 while running).
pub(crate) async fn details(
    State(state): State<AppState>,
    Path((group_id, dataset_id, refresh_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataset = find_dataset(workspace, &dataset_id)?;
    world.settle_all();
    let refresh = world
        .refresh_mut(&refresh_id)
        .filter(|r| r.dataset_id.eq_ignore_ascii_case(&dataset.id) && r.enhanced.is_some())
        .ok_or_else(|| refresh_not_found(&refresh_id))?;
    let detail = RefreshDetail::new(refresh).ok_or_else(|| refresh_not_found(&refresh_id))?;
    let status = if refresh.running() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    refresh.observed += 1;
    Ok(json_response(status, &detail))
}

/// `DELETE …/refreshes/{refreshId}`: cancels a running enhanced refresh.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path((group_id, dataset_id, refresh_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataset = find_dataset(workspace, &dataset_id)?;
    let now = world.settle_all();
    let refresh = world
        .refresh_mut(&refresh_id)
        .filter(|r| r.dataset_id.eq_ignore_ascii_case(&dataset.id) && r.enhanced.is_some())
        .ok_or_else(|| refresh_not_found(&refresh_id))?;
    if !refresh.running() {
        return Err(wire::invalid_request(format!(
            "Refresh {} has already ended with status {}; only a running refresh can be cancelled",
            refresh.request_id,
            refresh.status()
        )));
    }
    refresh.finish(Ended::Cancelled, now, None);
    world.admit(now);
    Ok(StatusCode::OK.into_response())
}

fn refresh_not_found(refresh_id: &str) -> Response {
    wire::item_not_found(format!(
        "Refresh {refresh_id} is not found. Only enhanced refreshes have execution details and can be cancelled."
    ))
}
