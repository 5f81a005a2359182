//! Control routes for dataflow transactions and Fabric jobs, shaped like the ones for model
//! refreshes: list (settled, not observed), complete now, and replace the behaviour of later
//! runs.

use super::{ok, parse};
use crate::dataflow::Transaction;
use crate::fabric::fabric_time;
use crate::jobs::Job;
use crate::scenario::{
    DataflowBehaviour, FailureReason, JobBehaviour, JobOutcome, TransactionOutcome,
};
use crate::state::AppState;
use crate::wire::{self, history_time};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

fn transaction_view(tx: &Transaction) -> Value {
    json!({
        "id": tx.id,
        "dataflowId": tx.dataflow_id,
        "groupId": tx.group_id,
        "refreshType": tx.refresh_type,
        "source": tx.source,
        "status": tx.status(),
        "startTime": history_time(tx.start),
        "beganTime": tx.began.map(history_time),
        "endTime": tx.end.map(history_time),
        "capacityId": tx.capacity,
        "observed": tx.observed,
        "error": tx.error,
    })
}

fn job_view(job: &Job) -> Value {
    json!({
        "id": job.id,
        "itemId": job.item_id,
        "workspaceId": job.workspace_id,
        "jobType": job.job_type,
        "status": job.status(),
        "startTimeUtc": fabric_time(job.start),
        "endTimeUtc": job.end.map(fabric_time),
        "observed": job.observed,
        "failureReason": job.failure,
        "retryAfterSeconds": job.retry_after,
    })
}

/// `GET /_emulator/transactions`.
pub(crate) async fn transactions(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    world.settle_all();
    ok(&Value::Array(
        world.transactions.iter().map(transaction_view).collect(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CompleteTransaction {
    #[serde(default)]
    outcome: TransactionOutcome,
    #[serde(default)]
    error: Option<String>,
}

/// `POST /_emulator/transactions/{transactionId}/complete`.
pub(crate) async fn complete_transaction(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    let complete: CompleteTransaction = parse(&body)?;
    let mut world = state.world();
    let now = world.settle_all();
    let tx = world
        .transaction_mut(&id)
        .ok_or_else(|| wire::item_not_found(format!("No transaction {id}")))?;
    if !tx.running() {
        return Err(wire::invalid_request(format!(
            "Transaction {id} has already ended with status {}",
            tx.status()
        )));
    }
    tx.finish(complete.outcome, now, complete.error);
    let body = transaction_view(tx);
    world.admit(now);
    Ok(ok(&body))
}

/// `PUT /_emulator/dataflows/{dataflowId}/refresh`.
pub(crate) async fn set_dataflow_behaviour(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    let behaviour: DataflowBehaviour = parse(&body)?;
    behaviour.check().map_err(wire::invalid_request)?;
    let mut world = state.world();
    let slot = world
        .dataflow_behaviours
        .get_mut(&id.to_ascii_lowercase())
        .ok_or_else(|| wire::item_not_found(format!("No dataflow {id}")))?;
    *slot = behaviour;
    Ok(ok(&serde_json::to_value(&*slot).unwrap_or_default()))
}

/// `GET /_emulator/dataflows/{dataflowId}/refresh`.
pub(crate) async fn get_dataflow_behaviour(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let world = state.world();
    let behaviour = world
        .dataflow_behaviours
        .get(&id.to_ascii_lowercase())
        .ok_or_else(|| wire::item_not_found(format!("No dataflow {id}")))?;
    Ok(ok(&serde_json::to_value(behaviour).unwrap_or_default()))
}

/// `GET /_emulator/jobs`.
pub(crate) async fn jobs(State(state): State<AppState>) -> Response {
    let mut world = state.world();
    world.settle_all();
    ok(&Value::Array(world.jobs.iter().map(job_view).collect()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CompleteJob {
    #[serde(default)]
    outcome: JobOutcome,
    #[serde(default)]
    failure_reason: Option<FailureReason>,
}

/// `POST /_emulator/jobs/{jobInstanceId}/complete`.
pub(crate) async fn complete_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    let complete: CompleteJob = parse(&body)?;
    let mut world = state.world();
    let now = world.settle_all();
    let job = world
        .job_mut(&id)
        .ok_or_else(|| wire::item_not_found(format!("No job instance {id}")))?;
    if !job.running() {
        return Err(wire::invalid_request(format!(
            "Job instance {id} has already ended with status {}",
            job.status()
        )));
    }
    job.finish(complete.outcome, now, complete.failure_reason);
    Ok(ok(&job_view(job)))
}

/// `PUT /_emulator/items/{itemId}/refresh`.
pub(crate) async fn set_item_behaviour(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    let behaviour: JobBehaviour = parse(&body)?;
    behaviour.check().map_err(wire::invalid_request)?;
    let mut world = state.world();
    let slot = world
        .item_behaviours
        .get_mut(&id.to_ascii_lowercase())
        .ok_or_else(|| wire::item_not_found(format!("No Fabric item {id}")))?;
    *slot = behaviour;
    Ok(ok(&serde_json::to_value(&*slot).unwrap_or_default()))
}

/// `GET /_emulator/items/{itemId}/refresh`.
pub(crate) async fn get_item_behaviour(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let world = state.world();
    let behaviour = world
        .item_behaviours
        .get(&id.to_ascii_lowercase())
        .ok_or_else(|| wire::item_not_found(format!("No Fabric item {id}")))?;
    Ok(ok(&serde_json::to_value(behaviour).unwrap_or_default()))
}
