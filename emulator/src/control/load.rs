//! Control routes for benchmarks: who called how often (and how many 429s they got), and how
//! busy each capacity is, so a fleet run can be checked against its concurrency limits.

use super::ok;
use crate::capacity::{self, Limits, Peaks, Slotted};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
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

/// `GET /_emulator/capacities`: every capacity of the scenario (listed ones first, then those
/// only named by a workspace, which are unlimited) with its model refresh pool's numbers at the
/// top level and its Gen1 dataflow pool's under `dataflows`.
pub(crate) async fn capacities(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    world.settle_all();
    let scenario = &state.scenario;
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
    let list: Vec<Value> = ids
        .iter()
        .map(|id| {
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
            if let Some(map) = entry.as_object_mut() {
                map.insert("id".to_owned(), json!(id));
                map.insert("workspaces".to_owned(), json!(workspaces));
                map.insert("dataflows".to_owned(), dataflows);
            }
            entry
        })
        .collect();
    ok(&Value::Array(list))
}
