//! The route table: every emulated path, its route name (used by faults and counts), and the
//! axum router that wires them to handlers and middleware.
//!
//! Route names are a public contract (README "Control API"), so they are spelled out here once.

use crate::state::AppState;
use crate::{control, entra, faults, powerbi, wire};
use axum::Router;
use axum::http::{Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{delete, get, post, put};

const TOKEN: &str = "/{tenant}/oauth2/v2.0/token";
const GROUPS: &str = "/v1.0/myorg/groups";
const GROUP: &str = "/v1.0/myorg/groups/{group_id}";
const DATASETS: &str = "/v1.0/myorg/groups/{group_id}/datasets";
const DATASET: &str = "/v1.0/myorg/groups/{group_id}/datasets/{dataset_id}";
const REFRESHES: &str = "/v1.0/myorg/groups/{group_id}/datasets/{dataset_id}/refreshes";
const REFRESH: &str = "/v1.0/myorg/groups/{group_id}/datasets/{dataset_id}/refreshes/{refresh_id}";

/// Every route name a fault may target (besides `*`).
pub(crate) const ROUTE_NAMES: &[&str] = &[
    "token",
    "groups",
    "group",
    "datasets",
    "dataset",
    "refresh.post",
    "refresh.history",
    "refresh.get",
    "refresh.delete",
];

/// The route name of a matched path and method; `None` for control routes and unknown calls.
pub(crate) fn route_name(method: &Method, matched: &str) -> Option<&'static str> {
    let name = match (matched, method.as_str()) {
        (TOKEN, "POST") => "token",
        (GROUPS, "GET") => "groups",
        (GROUP, "GET") => "group",
        (DATASETS, "GET") => "datasets",
        (DATASET, "GET") => "dataset",
        (REFRESHES, "POST") => "refresh.post",
        (REFRESHES, "GET") => "refresh.history",
        (REFRESH, "GET") => "refresh.get",
        (REFRESH, "DELETE") => "refresh.delete",
        _ => return None,
    };
    Some(name)
}

/// The whole emulator as one router.
pub(crate) fn build(state: AppState) -> Router {
    Router::new()
        .route(TOKEN, post(entra::token))
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
        .route("/_emulator/health", get(control::health))
        .route("/_emulator/reset", post(control::reset))
        .route("/_emulator/requests", get(control::requests))
        .route("/_emulator/counts", get(control::counts))
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
        .fallback(unknown_route)
        .layer(from_fn_with_state(state.clone(), faults::middleware))
        .layer(from_fn(wire::common_headers))
        .with_state(state)
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> Response {
    wire::pbi_error(
        StatusCode::NOT_FOUND,
        "NoSuchRoute",
        format!("The emulator serves no route {method} {}", uri.path()),
    )
}
