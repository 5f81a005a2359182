//! The Fabric Job Scheduler for workspace items (reference §3.1–3.4): run on demand (202 with
//! `Location` and `Retry-After`), get, list and cancel job instances.
//!
//! `refuseServicePrincipalsForDataflowJobs` (scenario or tenant) refuses app tokens for Dataflow
//! items with 400 `PrincipalTypeNotSupported`, as Fabric answers principal types an API does not
//! support; managed identity tokens are not refused.

use super::{FabricCaller, caller, fabric_error, fabric_time, page, workspace as find_workspace};
use crate::jobs::Job;
use crate::scenario::{FabricItem, JobOutcome, Workspace};
use crate::state::{AppState, Principal, real_seconds};
use crate::surge;
use crate::wire::{base_url, json_response};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Job types a Dataflow item runs (`Refresh` is an alias of `Execute`).
const DATAFLOW_JOB_TYPES: &[&str] = &["Refresh", "Execute", "ApplyChanges"];

/// A Fabric item of the workspace that runs jobs: 404 `ItemNotFound`, or 400 `InvalidJobType`
/// for a model or report.
fn find_item<'a>(workspace: &'a Workspace, item_id: &str) -> Result<&'a FabricItem, Response> {
    if let Some(item) = workspace
        .items
        .iter()
        .find(|i| i.id.eq_ignore_ascii_case(item_id))
    {
        return Ok(item);
    }
    let known = workspace
        .datasets
        .iter()
        .any(|d| d.id.eq_ignore_ascii_case(item_id))
        || workspace
            .reports
            .iter()
            .any(|r| r.id.eq_ignore_ascii_case(item_id));
    Err(if known {
        fabric_error(
            StatusCode::BAD_REQUEST,
            "InvalidJobType",
            "The item type does not support on-demand jobs in the emulator",
        )
    } else {
        fabric_error(
            StatusCode::NOT_FOUND,
            "ItemNotFound",
            format!("The requested item {item_id} was not found"),
        )
    })
}

fn location(headers: &HeaderMap, job: &Job) -> String {
    format!(
        "{}/v1/workspaces/{}/items/{}/jobs/instances/{}",
        base_url(headers),
        job.workspace_id,
        job.item_id,
        job.id
    )
}

fn insert(response: &mut Response, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// An `ItemJobInstance`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Instance {
    id: String,
    item_id: String,
    job_type: String,
    invoke_type: &'static str,
    status: String,
    root_activity_id: String,
    start_time_utc: String,
    end_time_utc: Option<String>,
    failure_reason: Option<Value>,
}

impl Instance {
    fn new(job: &Job, now: jiff::Timestamp) -> Instance {
        Instance {
            id: job.id.clone(),
            item_id: job.item_id.clone(),
            job_type: job.job_type.clone(),
            invoke_type: "Manual",
            status: job.status_at(now).to_owned(),
            root_activity_id: job.root_activity_id.clone(),
            start_time_utc: fabric_time(job.start),
            end_time_utc: job.end.map(fabric_time),
            failure_reason: job.failure.as_ref().map(|f| {
                json!({"requestId": job.root_activity_id, "errorCode": f.error_code, "message": f.message})
            }),
        }
    }
}

/// `POST …/items/{itemId}/jobs/instances?jobType=…` and `POST …/items/{itemId}/jobs/{jobType}/instances`.
pub(crate) async fn run(
    State(state): State<AppState>,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace_id = path.get("workspace_id").map_or("", String::as_str);
    let item_id = path.get("item_id").map_or("", String::as_str);
    let workspace = find_workspace(&state, &caller, workspace_id)?;
    let item = find_item(workspace, item_id)?;
    let requested = path
        .get("job_type")
        .or_else(|| query.get("jobType"))
        .map(String::as_str)
        .unwrap_or("");
    let is_dataflow = item.kind.eq_ignore_ascii_case("Dataflow");
    let job_type = if is_dataflow {
        DATAFLOW_JOB_TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(requested))
            .map(|t| (*t).to_owned())
    } else {
        Some(requested.to_owned()).filter(|t| !t.is_empty())
    }
    .ok_or_else(|| {
        fabric_error(
            StatusCode::BAD_REQUEST,
            "InvalidJobType",
            format!(
                "The job type '{requested}' is not valid for item type {}",
                item.kind
            ),
        )
    })?;
    if is_dataflow && refuses(&state, &caller) {
        return Err(fabric_error(
            StatusCode::BAD_REQUEST,
            "PrincipalTypeNotSupported",
            "The operation is not supported for the principal type",
        ));
    }
    let now = world.settle_all();
    if world.surge.rejects(workspace.capacity_id.as_deref(), now) {
        return Err(fabric_error(
            StatusCode::TOO_MANY_REQUESTS,
            surge::CODE,
            surge::MESSAGE,
        ));
    }
    let scale = world.clock.scale();
    let behaviour = world
        .item_behaviours
        .get(&item.id.to_ascii_lowercase())
        .cloned()
        .unwrap_or_default();
    let busy = world
        .jobs
        .iter()
        .any(|j| j.running() && j.item_id.eq_ignore_ascii_case(&item.id));
    let mut job = Job::start(&workspace.id, &item.id, &job_type, now, &behaviour);
    job.hidden = world.take_lag("fabric.job.run");
    if busy {
        job.finish(JobOutcome::Deduped, now, None);
    }
    let mut response = StatusCode::ACCEPTED.into_response();
    insert(&mut response, header::LOCATION, &location(&headers, &job));
    insert(
        &mut response,
        header::RETRY_AFTER,
        &real_seconds(job.retry_after as f64, scale).to_string(),
    );
    insert(
        &mut response,
        HeaderName::from_static("x-ms-job-id"),
        &job.id,
    );
    world.jobs.push(job);
    Ok(response)
}

fn refuses(state: &AppState, caller: &FabricCaller) -> bool {
    if caller.principal != Principal::ServicePrincipal {
        return false;
    }
    state.scenario.refuse_service_principals_for_dataflow_jobs
        || state
            .scenario
            .tenants
            .iter()
            .any(|t| t.id == caller.tenant_id && t.refuse_service_principals_for_dataflow_jobs)
}

/// `GET …/items/{itemId}/jobs/instances/{jobInstanceId}`: observes the instance.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((workspace_id, item_id, job_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &workspace_id)?;
    let item = find_item(workspace, &item_id)?;
    let now = world.settle_all();
    if world.surge.rejects(workspace.capacity_id.as_deref(), now) {
        return Err(fabric_error(
            StatusCode::TOO_MANY_REQUESTS,
            surge::CODE,
            surge::MESSAGE,
        ));
    }
    let scale = world.clock.scale();
    let job = world
        .job_mut(&job_id)
        .filter(|j| j.item_id.eq_ignore_ascii_case(&item.id) && !j.hidden.hides(now))
        .ok_or_else(|| job_not_found(&job_id))?;
    let body = Instance::new(job, now);
    job.observed += 1;
    let retry_after = job.retry_after_at(now).map(|s| real_seconds(s, scale));
    let mut response = json_response(StatusCode::OK, &body);
    if let Some(seconds) = retry_after {
        insert(&mut response, header::RETRY_AFTER, &seconds.to_string());
    }
    Ok(response)
}

fn job_not_found(id: &str) -> Response {
    fabric_error(
        StatusCode::NOT_FOUND,
        "ItemNotFound",
        format!("The requested job instance {id} was not found"),
    )
}

/// `GET …/items/{itemId}/jobs/instances`: newest first, paged; each listed instance is observed.
pub(crate) async fn list(
    State(state): State<AppState>,
    Path((workspace_id, item_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &workspace_id)?;
    let item = find_item(workspace, &item_id)?;
    let now = world.settle_all();
    let mut mine: Vec<&mut Job> = world
        .jobs
        .iter_mut()
        .filter(|j| j.item_id.eq_ignore_ascii_case(&item.id))
        .filter_map(|j| (!j.hidden.misses(now)).then_some(j))
        .collect();
    mine.reverse();
    let instances: Vec<Instance> = mine
        .into_iter()
        .map(|job| {
            let instance = Instance::new(job, now);
            job.observed += 1;
            instance
        })
        .collect();
    page(instances, &uri, &headers, state.scenario.fabric_page_size)
}

/// `POST …/items/{itemId}/jobs/instances/{jobInstanceId}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path((workspace_id, item_id, job_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut world = state.world();
    let caller = caller(&world, &headers)?;
    let workspace = find_workspace(&state, &caller, &workspace_id)?;
    let item = find_item(workspace, &item_id)?;
    let now = world.settle_all();
    if world.surge.rejects(workspace.capacity_id.as_deref(), now) {
        return Err(fabric_error(
            StatusCode::TOO_MANY_REQUESTS,
            surge::CODE,
            surge::MESSAGE,
        ));
    }
    let scale = world.clock.scale();
    let job = world
        .job_mut(&job_id)
        .filter(|j| j.item_id.eq_ignore_ascii_case(&item.id))
        .ok_or_else(|| job_not_found(&job_id))?;
    if !job.running() {
        return Err(fabric_error(
            StatusCode::BAD_REQUEST,
            "JobAlreadyCompleted",
            format!("The job instance {} run has completed", job.id),
        ));
    }
    job.finish(JobOutcome::Cancelled, now, None);
    let mut response = StatusCode::ACCEPTED.into_response();
    insert(&mut response, header::LOCATION, &location(&headers, job));
    insert(
        &mut response,
        header::RETRY_AFTER,
        &real_seconds(job.retry_after as f64, scale).to_string(),
    );
    Ok(response)
}
