//! Gen1 dataflow routes (reference §2.5): list, refresh (200, no body, no id), transactions,
//! cancel, and the lineage helpers. A refresh is found afterwards only through
//! `…/transactions`, which is why the emulator's transactions follow the same observation rules
//! as model refreshes.

use super::discovery::int_param;
use super::{caller, workspace as find_workspace};
use crate::dataflow::{self, DAILY_LIMIT_CODE, DAILY_LIMIT_MESSAGE, Transaction};
use crate::scenario::{Dataflow, TransactionOutcome, Workspace};
use crate::state::{AppState, World};
use crate::surge;
use crate::wire::{self, Collection, base_url, history_time, json_response};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Refreshes per dataflow per 24 hours on shared capacity.
const SHARED_DAILY_LIMIT: usize = 8;
/// The (UNVERIFIED) answer to a refresh while one is running.
pub(crate) const BUSY_CODE: &str = "DataflowRefreshAlreadyInProgress";

/// A dataflow of the workspace: 404 `ItemNotFound` otherwise.
pub(crate) fn find_dataflow<'a>(
    workspace: &'a Workspace,
    id: &str,
) -> Result<&'a Dataflow, Response> {
    workspace
        .dataflows
        .iter()
        .find(|d| d.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| {
            wire::item_not_found(format!(
                "Dataflow {id} is not found! please verify dataflowId is correct and user have sufficient permissions."
            ))
        })
}

/// Why a new transaction could not start.
pub(crate) enum Refused {
    Busy,
    DailyLimit,
}

impl Refused {
    /// The 400 the REST API answers.
    pub fn response(&self, dataflow_id: &str) -> Response {
        match self {
            Refused::Busy => wire::pbi_error(
                StatusCode::BAD_REQUEST,
                BUSY_CODE,
                format!("Another refresh of dataflow {dataflow_id} is already in progress"),
            ),
            Refused::DailyLimit => wire::pbi_error(
                StatusCode::BAD_REQUEST,
                DAILY_LIMIT_CODE,
                DAILY_LIMIT_MESSAGE,
            ),
        }
    }
}

/// Starts a transaction of `dataflow`, unless one is running or the daily limit is reached.
pub(crate) fn start(
    world: &mut World,
    workspace: &Workspace,
    dataflow: &Dataflow,
    source: &'static str,
) -> Result<(), Refused> {
    let now = world.settle_all();
    let mine = |t: &&Transaction| t.dataflow_id.eq_ignore_ascii_case(&dataflow.id);
    if world
        .transactions
        .iter()
        .filter(mine)
        .any(Transaction::running)
    {
        return Err(Refused::Busy);
    }
    if !workspace.dedicated_capacity {
        let since = now
            .saturating_sub(SignedDuration::from_hours(24))
            .unwrap_or(now);
        let recent = world
            .transactions
            .iter()
            .filter(mine)
            .filter(|t| t.start > since && t.error.as_deref() != Some(DAILY_LIMIT_CODE))
            .count();
        if recent >= SHARED_DAILY_LIMIT {
            return Err(Refused::DailyLimit);
        }
    }
    let behaviour = world
        .dataflow_behaviours
        .get(&dataflow.id.to_ascii_lowercase())
        .cloned()
        .unwrap_or_default();
    let number = world.take_transaction_number();
    let id = dataflow::transaction_id(now, number);
    let seconds = world.draw(&dataflow.id, behaviour.duration_seconds.as_ref());
    let ids = (workspace.id.as_str(), dataflow.id.as_str());
    let mut tx = Transaction::start(id, ids, source, now, &behaviour, seconds);
    tx.hidden = world.take_lag("dataflow.refresh");
    if let Some(capacity) = &workspace.capacity_id {
        // It waits for a slot if its capacity's dataflow pool is full.
        tx.capacity = Some(capacity.to_ascii_lowercase());
        tx.began = None;
    }
    world.transactions.push(tx);
    world.admit(now);
    Ok(())
}

/// Records a transaction that failed at once with `DailyDataflowRefreshLimitExceeded` (what a
/// Power Automate run leaves behind when its refresh action is refused).
pub(crate) fn record_daily_limit_failure(
    world: &mut World,
    workspace: &Workspace,
    dataflow: &Dataflow,
) {
    let now = world.now();
    let number = world.take_transaction_number();
    let id = dataflow::transaction_id(now, number);
    let ids = (workspace.id.as_str(), dataflow.id.as_str());
    let mut tx = Transaction::start(id, ids, "flow", now, &Default::default(), None);
    tx.finish(
        TransactionOutcome::Failed,
        now,
        Some(DAILY_LIMIT_CODE.to_owned()),
    );
    world.transactions.push(tx);
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataflowItem<'a> {
    object_id: &'a str,
    name: &'a str,
    description: &'a str,
    model_url: String,
    configured_by: &'a str,
    users: [Value; 0],
}

/// `GET /v1.0/myorg/groups/{groupId}/dataflows`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let base = base_url(&headers);
    let items = workspace
        .dataflows
        .iter()
        .map(|d| DataflowItem {
            object_id: &d.id,
            name: &d.name,
            description: &d.description,
            model_url: format!(
                "{base}/v1.0/myorg/groups/{}/dataflows/{}/model.json",
                workspace.id, d.id
            ),
            configured_by: d.configured_by.as_deref().unwrap_or(""),
            users: [],
        })
        .collect();
    let body = Collection {
        context: format!(
            "{base}/v1.0/myorg/groups/{}/$metadata#dataflows",
            workspace.id
        ),
        count: None,
        value: items,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// The required `{"notifyOption": "MailOnFailure" | "NoNotification"}` body.
fn check_body(body: &Bytes) -> Result<(), Response> {
    let bad =
        |why: String| wire::invalid_request(format!("Invalid dataflow refresh request: {why}"));
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the body {\"notifyOption\": …} is required".to_owned()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    let Some(map) = value.as_object() else {
        return Err(bad("the body must be a JSON object".to_owned()));
    };
    if let Some(unknown) = map.keys().find(|k| *k != "notifyOption") {
        return Err(bad(format!(
            "'{unknown}' is not a property; expected notifyOption"
        )));
    }
    match map.get("notifyOption").and_then(Value::as_str) {
        Some("MailOnFailure" | "NoNotification") => Ok(()),
        Some("MailOnCompletion") => Err(bad(
            "'notifyOption': MailOnCompletion isn't supported; use MailOnFailure or NoNotification"
                .to_owned(),
        )),
        Some(other) => Err(bad(format!(
            "'notifyOption': '{other}' is not one of MailOnFailure, NoNotification"
        ))),
        None => Err(bad("'notifyOption' is required".to_owned())),
    }
}

/// `POST …/dataflows/{dataflowId}/refreshes[?processType=default|processFull]`.
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Path((group_id, dataflow_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataflow = find_dataflow(workspace, &dataflow_id)?;
    check_body(&body)?;
    if let Some(kind) = query.get("processType") {
        if !["default", "processFull"]
            .iter()
            .any(|v| v.eq_ignore_ascii_case(kind))
        {
            return Err(wire::invalid_request(format!(
                "Invalid value '{kind}' for query parameter processType: expected default or processFull"
            )));
        }
    }
    let now = world.now();
    if world.surge.rejects(workspace.capacity_id.as_deref(), now) {
        return Err(surge::pbi_rejection());
    }
    start(&mut world, workspace, dataflow, "api").map_err(|r| r.response(&dataflow.id))?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionItem {
    id: String,
    refresh_type: String,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    status: &'static str,
}

/// `GET …/dataflows/{dataflowId}/transactions[?$top=N]`: newest first; each listed one is observed.
pub(crate) async fn transactions(
    State(state): State<AppState>,
    Path((group_id, dataflow_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataflow = find_dataflow(workspace, &dataflow_id)?;
    let top = int_param(&query, "$top", 1)?
        .map_or(usize::MAX, |t| usize::try_from(t).unwrap_or(usize::MAX));
    let now = world.settle_all();
    let mut mine: Vec<&mut Transaction> = world
        .transactions
        .iter_mut()
        .filter(|t| t.dataflow_id.eq_ignore_ascii_case(&dataflow.id))
        .filter_map(|t| (!t.hidden.misses(now)).then_some(t))
        .collect();
    mine.sort_by_key(|t| std::cmp::Reverse(t.start));
    let quirks = &state.scenario.quirks;
    let time = if quirks.trimmed_times {
        wire::trimmed_time
    } else {
        history_time
    };
    let items: Vec<Value> = mine
        .into_iter()
        .take(top)
        .enumerate()
        .map(|(index, tx)| {
            let item = if quirks.sample_transactions {
                // The documented sample: `id` only, or `id` and `refreshType`.
                if index % 2 == 0 {
                    json!({"id": tx.id})
                } else {
                    json!({"id": tx.id, "refreshType": tx.refresh_type})
                }
            } else {
                serde_json::to_value(TransactionItem {
                    id: tx.id.clone(),
                    refresh_type: tx.refresh_type.clone(),
                    start_time: time(tx.start),
                    end_time: tx.end.map(time),
                    status: tx.status(),
                })
                .unwrap_or_default()
            };
            tx.observed += 1;
            item
        })
        .collect();
    let body = Collection {
        context: format!(
            "{}/v1.0/myorg/groups/{}/$metadata#transactions",
            base_url(&headers),
            workspace.id
        ),
        count: None,
        value: items,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v1.0/myorg/groups/{groupId}/dataflows/transactions/{transactionId}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path((group_id, transaction_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let now = world.settle_all();
    let status = match world
        .transaction_mut(&transaction_id)
        .filter(|t| t.group_id.eq_ignore_ascii_case(&workspace.id))
    {
        None => "NotFound",
        Some(tx) if !tx.running() => "AlreadyConcluded",
        Some(tx) => {
            tx.finish(TransactionOutcome::Cancelled, now, None);
            world.admit(now);
            "SuccessfullyMarked"
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"transactionId": transaction_id, "status": status}),
    ))
}

/// `GET …/dataflows/{dataflowId}/upstreamDataflows`.
pub(crate) async fn upstream_of_dataflow(
    State(state): State<AppState>,
    Path((group_id, dataflow_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataflow = find_dataflow(workspace, &dataflow_id)?;
    let value: Vec<Value> = dataflow
        .upstream_dataflows
        .iter()
        .map(|r| json!({"targetDataflowId": r.dataflow_id, "groupId": r.workspace_id}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"value": value})))
}

/// `GET /v1.0/myorg/groups/{groupId}/datasets/upstreamDataflows`.
pub(crate) async fn upstream_of_datasets(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = caller(&state.world(), &headers)?;
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let value: Vec<Value> = workspace
        .datasets
        .iter()
        .flat_map(|d| {
            d.upstream_dataflows.iter().map(move |r| {
                json!({"datasetObjectId": d.id, "dataflowObjectId": r.dataflow_id, "workspaceObjectId": r.workspace_id})
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"value": value})))
}
