//! The route table: every emulated path, its route name (used by faults and counts), and the
//! axum router that wires them to handlers and middleware.
//!
//! Route names are a public contract (README "Control API"), so they are spelled out here once.

use crate::state::AppState;
use crate::{control, entra, fabric, faults, flows, powerbi, wire};
use axum::Router;
use axum::http::{Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{delete, get, post, put};

const TOKEN: &str = "/{tenant}/oauth2/v2.0/token";
const TOKEN_IMDS: &str = "/metadata/identity/oauth2/token";
const TOKEN_APP_SERVICE: &str = "/msi/token";
/// The casing of the App Service docs' raw HTTP example.
const TOKEN_APP_SERVICE_UPPER: &str = "/MSI/token";
const GROUPS: &str = "/v1.0/myorg/groups";
const GROUP: &str = "/v1.0/myorg/groups/{group_id}";
const DATASETS: &str = "/v1.0/myorg/groups/{group_id}/datasets";
const DATASET: &str = "/v1.0/myorg/groups/{group_id}/datasets/{dataset_id}";
const REFRESHES: &str = "/v1.0/myorg/groups/{group_id}/datasets/{dataset_id}/refreshes";
const REFRESH: &str = "/v1.0/myorg/groups/{group_id}/datasets/{dataset_id}/refreshes/{refresh_id}";
const DATASETS_UPSTREAM: &str = "/v1.0/myorg/groups/{group_id}/datasets/upstreamDataflows";
const DATAFLOWS: &str = "/v1.0/myorg/groups/{group_id}/dataflows";
const DATAFLOW_REFRESH: &str = "/v1.0/myorg/groups/{group_id}/dataflows/{dataflow_id}/refreshes";
const DATAFLOW_TRANSACTIONS: &str =
    "/v1.0/myorg/groups/{group_id}/dataflows/{dataflow_id}/transactions";
const DATAFLOW_UPSTREAM: &str =
    "/v1.0/myorg/groups/{group_id}/dataflows/{dataflow_id}/upstreamDataflows";
const DATAFLOW_CANCEL: &str =
    "/v1.0/myorg/groups/{group_id}/dataflows/transactions/{transaction_id}/cancel";
const REPORTS: &str = "/v1.0/myorg/groups/{group_id}/reports";
const CAPACITIES: &str = "/v1.0/myorg/capacities";
const DATASOURCES: &str = "/v1.0/myorg/groups/{group_id}/datasets/{dataset_id}/datasources";
const GATEWAY_DATASOURCE_STATUS: &str =
    "/v1.0/myorg/gateways/{gateway_id}/datasources/{datasource_id}/status";
const REPORT: &str = "/v1.0/myorg/groups/{group_id}/reports/{report_id}";
const FABRIC_WORKSPACES: &str = "/v1/workspaces";
const FABRIC_ITEMS: &str = "/v1/workspaces/{workspace_id}/items";
const FABRIC_JOBS: &str = "/v1/workspaces/{workspace_id}/items/{item_id}/jobs/instances";
const FABRIC_JOBS_TYPED: &str =
    "/v1/workspaces/{workspace_id}/items/{item_id}/jobs/{job_type}/instances";
const FABRIC_JOB: &str = "/v1/workspaces/{workspace_id}/items/{item_id}/jobs/instances/{job_id}";
const FABRIC_JOB_CANCEL: &str =
    "/v1/workspaces/{workspace_id}/items/{item_id}/jobs/instances/{job_id}/cancel";
const FLOW: &str = "/workflows/{workflow_id}/triggers/manual/paths/invoke";
const FLOW_DIRECT: &str =
    "/powerautomate/automations/direct/workflows/{workflow_id}/triggers/manual/paths/invoke";

/// Every route name a fault may target (besides `*`).
pub(crate) const ROUTE_NAMES: &[&str] = &[
    "token",
    "token.imds",
    "token.appservice",
    "groups",
    "group",
    "datasets",
    "dataset",
    "refresh.post",
    "refresh.history",
    "refresh.get",
    "refresh.delete",
    "datasets.upstream",
    "dataflows",
    "dataflow.refresh",
    "dataflow.transactions",
    "dataflow.upstream",
    "dataflow.cancel",
    "reports",
    "report",
    "fabric.workspaces",
    "fabric.items",
    "fabric.job.run",
    "fabric.job.list",
    "fabric.job.get",
    "fabric.job.cancel",
    "flow.trigger",
    "capacities",
    "datasources",
    "gateway.datasource.status",
];

/// The route name of a matched path and method; `None` for control routes and unknown calls.
pub(crate) fn route_name(method: &Method, matched: &str) -> Option<&'static str> {
    let name = match (matched, method.as_str()) {
        (TOKEN, "POST") => "token",
        (TOKEN_IMDS, "GET") => "token.imds",
        (TOKEN_APP_SERVICE | TOKEN_APP_SERVICE_UPPER, "GET") => "token.appservice",
        (GROUPS, "GET") => "groups",
        (GROUP, "GET") => "group",
        (DATASETS, "GET") => "datasets",
        (DATASET, "GET") => "dataset",
        (REFRESHES, "POST") => "refresh.post",
        (REFRESHES, "GET") => "refresh.history",
        (REFRESH, "GET") => "refresh.get",
        (REFRESH, "DELETE") => "refresh.delete",
        (DATASETS_UPSTREAM, "GET") => "datasets.upstream",
        (DATAFLOWS, "GET") => "dataflows",
        (DATAFLOW_REFRESH, "POST") => "dataflow.refresh",
        (DATAFLOW_TRANSACTIONS, "GET") => "dataflow.transactions",
        (DATAFLOW_UPSTREAM, "GET") => "dataflow.upstream",
        (DATAFLOW_CANCEL, "POST") => "dataflow.cancel",
        (REPORTS, "GET") => "reports",
        (REPORT, "GET") => "report",
        (FABRIC_WORKSPACES, "GET") => "fabric.workspaces",
        (FABRIC_ITEMS, "GET") => "fabric.items",
        (FABRIC_JOBS | FABRIC_JOBS_TYPED, "POST") => "fabric.job.run",
        (FABRIC_JOBS, "GET") => "fabric.job.list",
        (FABRIC_JOB, "GET") => "fabric.job.get",
        (FABRIC_JOB_CANCEL, "POST") => "fabric.job.cancel",
        (FLOW | FLOW_DIRECT, "POST") => "flow.trigger",
        (CAPACITIES, "GET") => "capacities",
        (DATASOURCES, "GET") => "datasources",
        (GATEWAY_DATASOURCE_STATUS, "GET") => "gateway.datasource.status",
        _ => return None,
    };
    Some(name)
}

/// The whole emulator as one router.
pub(crate) fn build(state: AppState) -> Router {
    Router::new()
        .route(TOKEN, post(entra::token))
        .route(TOKEN_IMDS, get(entra::managed::imds))
        .route(TOKEN_APP_SERVICE, get(entra::managed::app_service))
        .route(TOKEN_APP_SERVICE_UPPER, get(entra::managed::app_service))
        .route(GROUPS, get(powerbi::discovery::groups))
        .route(GROUP, get(powerbi::discovery::group))
        .route(DATASETS, get(powerbi::discovery::datasets))
        .route(DATASET, get(powerbi::discovery::dataset))
        .route(
            REFRESHES,
            post(powerbi::refreshes::trigger).get(powerbi::refreshes::history),
        )
        .route(
            REFRESH,
            get(powerbi::refreshes::details).delete(powerbi::refreshes::cancel),
        )
        .route(
            DATASETS_UPSTREAM,
            get(powerbi::dataflows::upstream_of_datasets),
        )
        .route(DATAFLOWS, get(powerbi::dataflows::list))
        .route(DATAFLOW_REFRESH, post(powerbi::dataflows::refresh))
        .route(DATAFLOW_TRANSACTIONS, get(powerbi::dataflows::transactions))
        .route(
            DATAFLOW_UPSTREAM,
            get(powerbi::dataflows::upstream_of_dataflow),
        )
        .route(DATAFLOW_CANCEL, post(powerbi::dataflows::cancel))
        .route(REPORTS, get(powerbi::reports::list))
        .route(REPORT, get(powerbi::reports::get))
        .route(FABRIC_WORKSPACES, get(fabric::discovery::workspaces))
        .route(FABRIC_ITEMS, get(fabric::discovery::items))
        .route(FABRIC_JOBS, post(fabric::jobs::run).get(fabric::jobs::list))
        .route(FABRIC_JOBS_TYPED, post(fabric::jobs::run))
        .route(FABRIC_JOB, get(fabric::jobs::get))
        .route(FABRIC_JOB_CANCEL, post(fabric::jobs::cancel))
        .route(FLOW, post(flows::trigger))
        .route(FLOW_DIRECT, post(flows::trigger))
        .route(CAPACITIES, get(powerbi::preflight::capacities))
        .route(DATASOURCES, get(powerbi::preflight::datasources))
        .route(
            GATEWAY_DATASOURCE_STATUS,
            get(powerbi::preflight::datasource_status),
        )
        .route("/_emulator/health", get(control::health))
        .route("/_emulator/reset", post(control::reset))
        .route("/_emulator/requests", get(control::requests))
        .route("/_emulator/counts", get(control::counts))
        .route("/_emulator/stats", get(control::load::stats))
        .route("/_emulator/capacities", get(control::load::capacities))
        .route(
            "/_emulator/capacities/{capacity_id}/reject",
            post(control::load::reject),
        )
        .route(
            "/_emulator/faults",
            post(control::add_fault)
                .get(control::list_faults)
                .delete(control::clear_faults),
        )
        .route("/_emulator/clock", get(control::clock))
        .route("/_emulator/clock/advance", post(control::advance_clock))
        .route("/_emulator/tokens/revoke", post(control::revoke_tokens))
        .route("/_emulator/refreshes", get(control::refreshes))
        .route(
            "/_emulator/refreshes/{request_id}/complete",
            post(control::complete_refresh),
        )
        .route(
            "/_emulator/datasets/{dataset_id}/refresh",
            put(control::set_behaviour).get(control::get_behaviour),
        )
        .route("/_emulator/log", delete(control::clear_log))
        .route("/_emulator/transactions", get(control::items::transactions))
        .route(
            "/_emulator/transactions/{transaction_id}/complete",
            post(control::items::complete_transaction),
        )
        .route(
            "/_emulator/dataflows/{dataflow_id}/refresh",
            put(control::items::set_dataflow_behaviour).get(control::items::get_dataflow_behaviour),
        )
        .route("/_emulator/jobs", get(control::items::jobs))
        .route(
            "/_emulator/jobs/{job_id}/complete",
            post(control::items::complete_job),
        )
        .route(
            "/_emulator/items/{item_id}/refresh",
            put(control::items::set_item_behaviour).get(control::items::get_item_behaviour),
        )
        .fallback(unknown_route)
        .layer(from_fn_with_state(state.clone(), faults::middleware))
        .layer(from_fn(wire::common_headers))
        .with_state(state)
}

async fn unknown_route(
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    if uri.path().starts_with("/v1.0/myorg/") {
        // ASP.NET's answer, as pasted from the real service: `Message`, no `error` envelope.
        let message = format!(
            "No HTTP resource was found that matches the request URI '{}{}'.",
            wire::base_url(&headers),
            uri.path()
        );
        return wire::json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "Message": message }),
        );
    }
    wire::pbi_error(
        StatusCode::NOT_FOUND,
        "NoSuchRoute",
        format!("The emulator serves no route {method} {}", uri.path()),
    )
}
