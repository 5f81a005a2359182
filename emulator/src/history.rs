//! The refresh history a scenario starts with: its `history` entries, and the completed daily
//! refreshes that `historyCount` generates from the model's duration distribution, so a client
//! can learn a model's typical duration from `GET …/refreshes` on its first call.

use crate::random::{Purpose, Rng};
use crate::refresh::{Ended, Enhanced, Plan, Refresh};
use crate::scenario::{self, Dataset, HistoryEntry, HistoryStatus, Scenario, Workspace};
use jiff::{SignedDuration, Timestamp};

/// The first integer `id` given to a history entry.
const FIRST_REFRESH_NUMBER: u64 = 937_845_001;

/// Every seeded refresh, oldest first with its integer id, and the next integer id.
pub(crate) fn seed(scenario: &Scenario, start: Timestamp) -> (Vec<Refresh>, u64) {
    let mut refreshes = Vec::new();
    for ws in &scenario.workspaces {
        for ds in &ws.datasets {
            for entry in &ds.history {
                refreshes.push(from_entry(ws, ds, entry, start));
            }
            refreshes.extend(generated(scenario, ws, ds, start));
        }
    }
    // Older refreshes get smaller integer ids, as in the service.
    refreshes.sort_by_key(|r: &Refresh| r.start);
    let mut next_number = FIRST_REFRESH_NUMBER;
    for refresh in &mut refreshes {
        refresh.number = next_number;
        next_number += 1;
    }
    (refreshes, next_number)
}

/// A refresh of `ds` accepted at `start` (already begun); `number` is set by the caller.
pub(crate) fn new_refresh(
    ws: &Workspace,
    ds: &Dataset,
    request_id: String,
    refresh_type: &str,
    start: Timestamp,
    plan: Plan,
) -> Refresh {
    Refresh {
        request_id,
        number: 0,
        group_id: ws.id.clone(),
        dataset_id: ds.id.clone(),
        refresh_type: refresh_type.to_owned(),
        enhanced: None,
        body: None,
        start,
        began: Some(start),
        capacity: ws.capacity_id.as_deref().map(str::to_ascii_lowercase),
        end: None,
        ended: None,
        error: None,
        messages: Vec::new(),
        observed: 0,
        observed_at_begin: 0,
        hidden: Default::default(),
        plan,
    }
}

fn from_entry(ws: &Workspace, ds: &Dataset, entry: &HistoryEntry, start: Timestamp) -> Refresh {
    // Validated when the scenario was parsed; fall back to `start` regardless.
    let at = |text: &str| scenario::resolve_time(text, start).unwrap_or(start);
    let plan = Plan {
        polls: entry.polls,
        duration: entry.duration_seconds.map(scenario::seconds),
        outcome: entry.outcome,
        error: entry.error.clone(),
    };
    let begun = at(&entry.start_time);
    let mut refresh = new_refresh(
        ws,
        ds,
        entry.request_id.clone(),
        &entry.refresh_type,
        begun,
        plan,
    );
    refresh.enhanced = entry.enhanced.then(|| Enhanced {
        kind: "Full".to_owned(),
        commit_mode: "Transactional".to_owned(),
        objects: Vec::new(),
        engine_error: None,
    });
    let ended = match entry.status {
        HistoryStatus::Unknown => None,
        HistoryStatus::Completed => Some(Ended::Completed),
        HistoryStatus::Failed => Some(Ended::Failed),
        HistoryStatus::Cancelled => Some(Ended::Cancelled),
        HistoryStatus::Disabled => Some(Ended::Disabled),
    };
    if let (Some(ended), Some(end)) = (ended, &entry.end_time) {
        refresh.finish(ended, at(end), entry.error.clone());
    }
    refresh
}

/// `historyCount` completed scheduled refreshes, one a day before `start` (k days before for the
/// k-th), each lasting a draw of the model's `durationSeconds`.
fn generated<'a>(
    scenario: &'a Scenario,
    ws: &'a Workspace,
    ds: &'a Dataset,
    start: Timestamp,
) -> impl Iterator<Item = Refresh> + 'a {
    let spec = ds.refresh.duration_seconds.as_ref();
    (1..=ds.history_count).filter_map(move |k| {
        let spec = spec?;
        let index = u64::from(k);
        let begun = start
            .saturating_sub(SignedDuration::from_hours(24 * i64::from(k)))
            .unwrap_or(start);
        let seconds = spec.draw(scenario.seed, &ds.id, Purpose::History, index);
        // The request id comes from the same seed, so a rerun shows the same history.
        let request_id = Rng::stream(scenario.seed, &ds.id, Purpose::HistoryId, index).guid();
        let plan = Plan::from_behaviour(&ds.refresh, None);
        let mut refresh = new_refresh(ws, ds, request_id, "Scheduled", begun, plan);
        let end = begun
            .saturating_add(scenario::seconds(seconds))
            .unwrap_or(begun);
        refresh.finish(Ended::Completed, end, None);
        Some(refresh)
    })
}
