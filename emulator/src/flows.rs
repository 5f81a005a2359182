//! Power Automate / Logic Apps "When an HTTP request is received" triggers (reference §6): the
//! `sig` query parameter is the credential, compared in constant time and never logged (the
//! request log shows `sig=REDACTED`). A run answers 202 at once, whatever its action does: that
//! is the trap the emulator reproduces (a dataflow refresh that fails inside an accepted run).

use crate::powerbi::dataflows::{self, Refused};
use crate::scenario::DataflowRef;
use crate::state::{AppState, World};
use crate::wire;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// The Logic Apps error envelope `{"error":{"code","message"}}`.
fn flow_error(status: StatusCode, code: &str, message: &str) -> Response {
    wire::pbi_error(status, code, message)
}

/// `POST /workflows/{workflowId}/triggers/manual/paths/invoke` and its
/// `/powerautomate/automations/direct/…` form.
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Path(workflow_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let flow = state
        .scenario
        .flows
        .iter()
        .find(|f| f.enabled && f.workflow_id.eq_ignore_ascii_case(&workflow_id))
        .ok_or_else(|| {
            flow_error(
                StatusCode::NOT_FOUND,
                "WorkflowNotFound",
                &format!("The workflow '{workflow_id}' could not be found."),
            )
        })?;
    let sig = query.get("sig").filter(|s| !s.is_empty());
    if sig.is_some() && headers.contains_key(header::AUTHORIZATION) {
        return Err(flow_error(
            StatusCode::UNAUTHORIZED,
            "DirectApiRequestHasMoreThanOneAuthorization",
            "The request has both SAS authentication scheme and 'Bearer' authorization scheme. Only one scheme should be used.",
        ));
    }
    let Some(sig) = sig else {
        return Err(flow_error(
            StatusCode::UNAUTHORIZED,
            "DirectApiAuthorizationRequired",
            "The request must be authenticated only by Shared Access scheme.",
        ));
    };
    if !bool::from(sig.as_bytes().ct_eq(flow.sig.as_bytes())) {
        return Err(flow_error(
            StatusCode::UNAUTHORIZED,
            "DirectApiInvalidAuthorizationSignature",
            "The provided authorization signature is not valid.",
        ));
    }
    if let Some(action) = &flow.action {
        let mut world = state.world();
        if let Some(target) = &action.dataflow {
            run_refresh(&state, &mut world, target, false);
        }
        if let Some(target) = &action.fail_with_daily_limit {
            run_refresh(&state, &mut world, target, true);
        }
    }
    let mut response = StatusCode::ACCEPTED.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ms-workflow-run-id", run_id()),
        ("x-ms-correlation-id", wire::new_guid()),
        ("x-ms-workflow-id", flow.workflow_id.clone()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

/// The run's refresh action: a new transaction, or a failed one when refused for the daily limit
/// (a refresh already running makes the action fail without a new transaction).
fn run_refresh(state: &AppState, world: &mut World, target: &DataflowRef, fail: bool) {
    let Some(workspace) = state.workspace(&target.workspace_id) else {
        return;
    };
    let Some(dataflow) = workspace
        .dataflows
        .iter()
        .find(|d| d.id.eq_ignore_ascii_case(&target.dataflow_id))
    else {
        return;
    };
    if fail {
        dataflows::record_daily_limit_failure(world, workspace, dataflow);
        return;
    }
    if let Err(Refused::DailyLimit) = dataflows::start(world, workspace, dataflow, "flow") {
        dataflows::record_daily_limit_failure(world, workspace, dataflow);
    }
}

/// A Logic Apps run id: 29 digits, `CU`, two digits.
fn run_id() -> String {
    let digits: String = uuid::Uuid::new_v4()
        .as_u128()
        .to_string()
        .chars()
        .chain(std::iter::repeat('0'))
        .take(29)
        .collect();
    format!("0858{}CU00", &digits[4..])
}
