//! What a refresh preflight reads: capacities (`GET /capacities`), a model's data sources
//! (`GET /groups/{g}/datasets/{d}/datasources`) and a gateway data source's status
//! (`GET /gateways/{gw}/datasources/{ds}/status`), in the shapes of Microsoft's REST reference
//! (see pbiops's `docs/preflight.md` for the sources).
//!
//! - capacities: every scenario capacity with `listed: true`, `state` as given (default
//!   `Active`); a capacity with `listed: false` is left out, as one the caller has no right on;
//! - data sources: the model's `datasources`, with `connectionDetails` as an object;
//! - status: 200 with an empty body when the data source is reachable, 400 with the Power BI
//!   error envelope and the scenario's `statusError` code otherwise, 403 for `statusForbidden`
//!   (the caller is not a gateway admin), 404 for a data source no model uses.

use super::{caller, dataset as find_dataset, workspace as find_workspace};
use crate::scenario::DataSource;
use crate::state::AppState;
use crate::wire::{self, Collection, base_url, json_response};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// One capacity as `GET /capacities` lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CapacityItem {
    id: String,
    display_name: String,
    admins: [String; 0],
    sku: &'static str,
    state: String,
    region: &'static str,
    capacity_user_access_right: &'static str,
}

/// `GET /v1.0/myorg/capacities`.
pub(crate) async fn capacities(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    {
        let world = state.world();
        caller(&world, &headers)?;
    }
    let value: Vec<CapacityItem> = state
        .scenario
        .capacities
        .iter()
        .filter(|c| c.listed)
        .map(|c| CapacityItem {
            id: c.id.clone(),
            display_name: format!("Capacity {}", &c.id[..c.id.len().min(8)]),
            admins: [],
            sku: "F64",
            state: c.state.clone().unwrap_or_else(|| "Active".to_owned()),
            region: "West Europe",
            capacity_user_access_right: "Assign",
        })
        .collect();
    let body = Collection {
        context: format!("{}/v1.0/myorg/$metadata#capacities", base_url(&headers)),
        count: None,
        value,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// One data source as `GET …/datasources` lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataSourceItem<'a> {
    datasource_type: &'a str,
    connection_details: &'a Value,
    datasource_id: &'a str,
    gateway_id: &'a str,
}

/// `GET /v1.0/myorg/groups/{g}/datasets/{d}/datasources`.
pub(crate) async fn datasources(
    State(state): State<AppState>,
    Path((group_id, dataset_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = {
        let world = state.world();
        caller(&world, &headers)?
    };
    let workspace = find_workspace(&state, &caller, &group_id)?;
    let dataset = find_dataset(workspace, &dataset_id)?;
    let value: Vec<DataSourceItem<'_>> = dataset
        .datasources
        .iter()
        .map(|d| DataSourceItem {
            datasource_type: &d.datasource_type,
            connection_details: &d.connection_details,
            datasource_id: &d.datasource_id,
            gateway_id: &d.gateway_id,
        })
        .collect();
    let body = Collection {
        context: format!(
            "{}/v1.0/myorg/groups/{}/$metadata#datasources",
            base_url(&headers),
            workspace.id
        ),
        count: None,
        value,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v1.0/myorg/gateways/{gw}/datasources/{ds}/status`.
pub(crate) async fn datasource_status(
    State(state): State<AppState>,
    Path((gateway_id, datasource_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    {
        let world = state.world();
        caller(&world, &headers)?;
    }
    let found: Option<&DataSource> = state
        .scenario
        .workspaces
        .iter()
        .flat_map(|w| &w.datasets)
        .flat_map(|d| &d.datasources)
        .find(|d| {
            d.gateway_id.eq_ignore_ascii_case(&gateway_id)
                && d.datasource_id.eq_ignore_ascii_case(&datasource_id)
        });
    let Some(source) = found else {
        return Err(wire::pbi_error(
            StatusCode::NOT_FOUND,
            "DMTS_DatasourceNotFoundError",
            format!("Data source {datasource_id} was not found on gateway {gateway_id}"),
        ));
    };
    if source.status_forbidden {
        return Err(wire::pbi_error(
            StatusCode::FORBIDDEN,
            "DMTS_UserNotFoundInADGraphError",
            "The caller is not an admin of the gateway",
        ));
    }
    Ok(match &source.status_error {
        None => StatusCode::OK.into_response(),
        Some(code) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": code, "pbi.error": {
                "code": code, "parameters": {}, "details": [], "exceptionCulprit": 1
            }}}),
        ),
    })
}
