//! The Power BI REST routes (`/v1.0/myorg/...`): discovery of workspaces and models, and the
//! dataset refresh API. This file holds what every route shares: who the caller is (a live token
//! for the Power BI audience) and which workspaces and models that caller may reach.

pub(crate) mod dataflows;
pub(crate) mod discovery;
pub(crate) mod enhanced;
pub(crate) mod filter;
pub(crate) mod preflight;
pub(crate) mod refreshes;
pub(crate) mod reports;

use crate::entra::powerbi_audience;
use crate::faults::bearer;
use crate::scenario::{Dataset, Workspace};
use crate::state::{Shared, World};
use crate::wire;
use axum::http::HeaderMap;
use axum::response::Response;

/// The authenticated client behind a Power BI call.
pub(crate) struct Caller {
    pub client_id: String,
}

/// Checks the bearer token: live, not revoked, and issued for Power BI.
pub(crate) fn caller(world: &World, headers: &HeaderMap) -> Result<Caller, Response> {
    let token = bearer(headers).ok_or_else(wire::token_expired)?;
    let token = world.tokens.get(token).ok_or_else(wire::token_expired)?;
    if token.revoked || world.now() >= token.expires_at {
        return Err(wire::token_expired());
    }
    if token.audience != powerbi_audience(world.cloud) {
        return Err(wire::not_authorized());
    }
    Ok(Caller {
        client_id: token.client_id.clone(),
    })
}

/// Whether the caller is a member of the workspace (no `members` list: everyone is).
pub(crate) fn is_member(workspace: &Workspace, caller: &Caller) -> bool {
    workspace.members.as_ref().is_none_or(|members| {
        members
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&caller.client_id))
    })
}

/// A workspace the caller may use: 404 if unknown, 401 if the caller is not a member.
pub(crate) fn workspace<'a>(
    shared: &'a Shared,
    caller: &Caller,
    group_id: &str,
) -> Result<&'a Workspace, Response> {
    let workspace = shared.workspace(group_id).ok_or_else(|| {
        wire::item_not_found(format!(
            "Workspace {group_id} is not found! please verify groupId is correct and user have sufficient permissions."
        ))
    })?;
    if !is_member(workspace, caller) {
        return Err(wire::not_authorized());
    }
    Ok(workspace)
}

/// A model of the workspace: 404 `ItemNotFound` otherwise.
pub(crate) fn dataset<'a>(
    workspace: &'a Workspace,
    dataset_id: &str,
) -> Result<&'a Dataset, Response> {
    workspace
        .datasets
        .iter()
        .find(|d| d.id.eq_ignore_ascii_case(dataset_id))
        .ok_or_else(|| {
            wire::item_not_found(format!(
                "Dataset {dataset_id} is not found! please verify datasetId is correct and user have sufficient permissions."
            ))
        })
}
