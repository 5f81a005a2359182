//! Control routes for benchmarks: who called how often (and how many 429s they got), and how
//! busy each capacity is, so a fleet run can be checked against its concurrency limits; and the
//! switch that makes a capacity reject new refreshes for a while (surge protection).

use super::{ok, parse};
use crate::capacity::{self, Limits, Peaks, Slotted};
use crate::scenario::Scenario;
use crate::state::{AppState, World};
use crate::wire;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

/// `GET /_emulator/stats`: per-route and per-client counts and 429 totals (cleared with the log).
pub(crate) async fn stats(State(state): State<AppState>) -> Response {
    let world = state.world();
    let stats = serde_json::to_value(&world.stats).unwrap_or_default();
    let mut body = json!({"routes": world.counts});
    if let (Some(body), Value::Object(stats)) = (body.as_object_mut(), stats) {
        body.extend(stats);
    }
    ok(&body)
}

/// One pool of a capacity: its limit, what runs and waits now, and the most seen running.
fn pool<T: Slotted>(ops: &[T], id: &str, limits: &Limits, peaks: &Peaks) -> Value {
    let (running, queued) = capacity::load(ops, id);
    json!({
        "concurrency": limits.get(id),
        "running": running,
        "queued": queued,
        "peak": peaks.get(id).copied().unwrap_or(0),
    })
}

/// Every capacity of the scenario: listed ones first, then those only named by a workspace
/// (which are unlimited), each once, as first spelled.
fn capacity_ids(scenario: &Scenario) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let named = scenario.capacities.iter().map(|c| c.id.as_str());
    let used = scenario
        .workspaces
        .iter()
        .filter_map(|w| w.capacity_id.as_deref());
    for id in named.chain(used) {
        if !ids.iter().any(|known| known.eq_ignore_ascii_case(id)) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// One capacity's entry: its model refresh pool's numbers at the top level, its Gen1 dataflow
/// pool's under `dataflows`, its workspaces, and whether it rejects new refreshes.
fn capacity_view(scenario: &Scenario, world: &World, id: &str) -> Value {
    let key = id.to_ascii_lowercase();
    let mut entry = pool(&world.refreshes, &key, &world.capacity_limits, &world.peaks);
    let dataflows = pool(
        &world.transactions,
        &key,
        &world.dataflow_limits,
        &world.dataflow_peaks,
    );
    let workspaces: Vec<&str> = scenario
        .workspaces
        .iter()
        .filter(|w| {
            w.capacity_id
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(id))
        })
        .map(|w| w.id.as_str())
        .collect();
    if let (Some(map), Value::Object(surge)) =
        (entry.as_object_mut(), world.surge.view(id, world.now()))
    {
        map.insert("id".to_owned(), json!(id));
        map.insert("workspaces".to_owned(), json!(workspaces));
        map.insert("dataflows".to_owned(), dataflows);
        map.extend(surge);
    }
    entry
}

/// `GET /_emulator/capacities`: every capacity of the scenario (see [`capacity_view`]).
pub(crate) async fn capacities(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    world.settle_all();
    let list: Vec<Value> = capacity_ids(&state.scenario)
        .iter()
        .map(|id| capacity_view(&state.scenario, &world, id))
        .collect();
    ok(&Value::Array(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reject {
    seconds: f64,
}

/// `POST /_emulator/capacities/{capacityId}/reject` `{"seconds": N}`: the capacity rejects every
/// new refresh from now for N emulator seconds (0 ends a period now); answers its entry.
pub(crate) async fn reject(
    State(state): State<AppState>,
    Path(capacity_id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    let reject: Reject = parse(&body)?;
    if !(reject.seconds.is_finite() && reject.seconds >= 0.0) {
        return Err(wire::invalid_request(
            "seconds: must be a non-negative number",
        ));
    }
    let id = capacity_ids(&state.scenario)
        .into_iter()
        .find(|id| id.eq_ignore_ascii_case(&capacity_id))
        .ok_or_else(|| wire::item_not_found(format!("No capacity {capacity_id}")))?;
    let mut world = state.world();
    let now = world.settle_all();
    world.surge.start(&id, now, reject.seconds);
    Ok(ok(&capacity_view(&state.scenario, &world, &id)))
}
