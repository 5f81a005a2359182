//! The control API (`/_emulator/…`): what tests and demos use to inspect and steer the emulator
//! (reset, request log, counts, faults, clock, token revocation, refreshes, model behaviour;
//! dataflow transactions and Fabric jobs in [`items`]; per-client stats and capacities, for
//! benchmarks, in [`load`]).
//!
//! Control calls are never faulted, counted or logged, so observing the emulator does not change
//! what it records.

pub(crate) mod items;
pub(crate) mod load;

use crate::faults::{Fault, FaultSpec};
use crate::refresh::{Ended, Refresh};
use crate::scenario::{self, Outcome, RefreshBehaviour, ServiceError};
use crate::state::AppState;
use crate::wire::{self, history_time, json_response};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// Parses a control body; empty means `{}`. The error names the offending field.
fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Response> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| wire::invalid_request("body is not UTF-8"))?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        };
        wire::invalid_request(message)
    })
}

/// `GET /_emulator/health`.
pub(crate) async fn health() -> Response {
    ok(&json!({"status": "ok"}))
}

/// `POST /_emulator/reset`.
pub(crate) async fn reset(State(state): State<AppState>) -> Response {
    state.reset();
    ok(&json!({"status": "ok"}))
}

/// `GET /_emulator/requests`.
pub(crate) async fn requests(State(state): State<AppState>) -> Response {
    let log = state.world().log.clone();
    json_response(StatusCode::OK, &log)
}

/// `DELETE /_emulator/log`: clears the request log and counts, keeping everything else.
pub(crate) async fn clear_log(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    world.log.clear();
    world.counts.clear();
    world.stats = Default::default();
    ok(&json!({"status": "ok"}))
}

/// `GET /_emulator/counts`.
pub(crate) async fn counts(State(state): State<AppState>) -> Response {
    let counts = state.world().counts.clone();
    json_response(StatusCode::OK, &counts)
}

/// `POST /_emulator/faults`.
pub(crate) async fn add_fault(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, Response> {
    let spec: FaultSpec = parse(&body)?;
    spec.check().map_err(wire::invalid_request)?;
    let mut world = state.world();
    let id = world.next_fault_id;
    world.next_fault_id += 1;
    world.faults.push(Fault {
        id,
        remaining: spec.times,
        spec,
    });
    Ok(ok(&json!({"id": id})))
}

/// `GET /_emulator/faults`: the faults still pending.
pub(crate) async fn list_faults(State(state): State<AppState>) -> Response {
    let faults = state.world().faults.clone();
    json_response(StatusCode::OK, &faults)
}

/// `DELETE /_emulator/faults`.
pub(crate) async fn clear_faults(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    let removed = world.faults.len();
    world.faults.clear();
    ok(&json!({"removed": removed}))
}

/// `GET /_emulator/clock`.
pub(crate) async fn clock(State(state): State<AppState>) -> Response {
    let world = state.world();
    ok(&json!({
        "now": history_time(world.now()),
        "start": history_time(world.clock.start()),
        "timeScale": world.clock.scale(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

/// `POST /_emulator/clock/advance`.
pub(crate) async fn advance_clock(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, Response> {
    let advance: Advance = parse(&body)?;
    if !advance.seconds.is_finite() || advance.seconds < 0.0 {
        return Err(wire::invalid_request(
            "seconds: must be a non-negative number",
        ));
    }
    let mut world = state.world();
    world.clock.advance(scenario::seconds(advance.seconds));
    Ok(ok(&json!({"now": history_time(world.now())})))
}

/// `POST /_emulator/tokens/revoke`.
pub(crate) async fn revoke_tokens(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    let mut revoked = 0;
    for token in world.tokens.values_mut().filter(|t| !t.revoked) {
        token.revoked = true;
        revoked += 1;
    }
    ok(&json!({"revoked": revoked}))
}

fn view(refresh: &Refresh) -> Value {
    json!({
        "requestId": refresh.request_id,
        "datasetId": refresh.dataset_id,
        "groupId": refresh.group_id,
        "refreshType": refresh.refresh_type,
        "enhanced": refresh.enhanced.is_some(),
        "status": refresh.status(),
        "extendedStatus": refresh.extended_status(),
        "startTime": history_time(refresh.start),
        "beganTime": refresh.began.map(history_time),
        "endTime": refresh.end.map(history_time),
        "capacityId": refresh.capacity,
        "observed": refresh.observed,
        "body": refresh.body,
    })
}

/// `GET /_emulator/refreshes`: every refresh, seeded ones included (settled, not observed).
pub(crate) async fn refreshes(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    world.settle_all();
    let all: Vec<Value> = world.refreshes.iter().map(view).collect();
    ok(&Value::Array(all))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Complete {
    #[serde(default)]
    outcome: Outcome,
    #[serde(default)]
    error: Option<ServiceError>,
}

/// `POST /_emulator/refreshes/{requestId}/complete`: ends a running refresh now.
pub(crate) async fn complete_refresh(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    let complete: Complete = parse(&body)?;
    let mut world = state.world();
    let now = world.settle_all();
    let refresh = world
        .refresh_mut(&request_id)
        .ok_or_else(|| wire::item_not_found(format!("No refresh {request_id}")))?;
    if !refresh.running() {
        return Err(wire::invalid_request(format!(
            "Refresh {request_id} has already ended with status {}",
            refresh.status()
        )));
    }
    refresh.finish(Ended::from_outcome(complete.outcome), now, complete.error);
    let body = view(refresh);
    world.admit(now);
    Ok(ok(&body))
}

/// `PUT /_emulator/datasets/{datasetId}/refresh`: replaces a model's refresh behaviour (for
/// refreshes started from now on).
pub(crate) async fn set_behaviour(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    let behaviour: RefreshBehaviour = parse(&body)?;
    behaviour.check().map_err(wire::invalid_request)?;
    let key = dataset_id.to_ascii_lowercase();
    let mut world = state.world();
    let slot = world
        .behaviours
        .get_mut(&key)
        .ok_or_else(|| wire::item_not_found(format!("No dataset {dataset_id}")))?;
    *slot = behaviour;
    let value = serde_json::to_value(&*slot).unwrap_or_default();
    Ok(ok(&value))
}

/// `GET /_emulator/datasets/{datasetId}/refresh`: a model's current refresh behaviour.
pub(crate) async fn get_behaviour(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
) -> Result<Response, Response> {
    let world = state.world();
    let behaviour = world
        .behaviours
        .get(&dataset_id.to_ascii_lowercase())
        .ok_or_else(|| wire::item_not_found(format!("No dataset {dataset_id}")))?;
    Ok(ok(&serde_json::to_value(behaviour).unwrap_or_default()))
}
