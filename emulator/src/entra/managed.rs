//! Managed identity token endpoints: the Azure Instance Metadata Service form
//! (`GET /metadata/identity/oauth2/token`, header `Metadata: true`) and the App Service form
//! (`GET /msi/token`, header `X-IDENTITY-HEADER`), with the bodies Microsoft documents for each
//! ("How to use managed identities on an Azure VM to acquire an access token"; App Service
//! "Managed identities", REST protocol 2019-08-01). Their numbers are strings, unlike the v2
//! token endpoint's.
//!
//! The App Service header is a secret: it is compared in constant time and never logged.

use super::{audience_of_resource, issue, no_store};
use crate::state::{AppState, Principal};
use crate::wire::json_response;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// The header App Service checks against its `IDENTITY_HEADER`.
const IDENTITY_HEADER: &str = "x-identity-header";

/// A managed identity endpoint error: `{"error","error_description"}`.
fn mi_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(json_response(
        status,
        &json!({"error": error, "error_description": description}),
    ))
}

/// The IMDS success body, in the documented order.
#[derive(Serialize)]
struct ImdsToken {
    access_token: String,
    refresh_token: &'static str,
    expires_in: String,
    expires_on: String,
    not_before: String,
    resource: String,
    token_type: &'static str,
}

/// The App Service success body, in the documented order.
#[derive(Serialize)]
struct AppServiceToken {
    access_token: String,
    expires_on: String,
    not_before: String,
    resource: String,
    token_type: &'static str,
    client_id: String,
}

/// What both endpoints check once the caller is trusted: api-version, resource, identity.
struct Grant {
    token: String,
    lifetime: u64,
    not_before: i64,
    expires_on: i64,
    resource: String,
    client_id: String,
}

fn grant(
    state: &AppState,
    query: &HashMap<String, String>,
    min_version: &str,
) -> Result<Grant, Response> {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let bad = |text: &str| mi_error(StatusCode::BAD_REQUEST, "invalid_request", text);
    let version = param("api-version")
        .ok_or_else(|| bad("Required query variable 'api-version' is missing"))?;
    if version < min_version {
        return Err(bad(&format!(
            "api-version '{version}' is not supported; use {min_version} or later"
        )));
    }
    let resource =
        param("resource").ok_or_else(|| bad("Required query variable 'resource' is missing"))?;
    let identities = &state.scenario.managed_identities;
    let identity = match param("client_id") {
        Some(id) => identities
            .iter()
            .find(|m| m.client_id.eq_ignore_ascii_case(id))
            .ok_or_else(|| bad("Identity not found"))?,
        None => match identities.iter().find(|m| m.default) {
            Some(default) => default,
            None if identities.len() == 1 => &identities[0],
            None if identities.is_empty() => return Err(bad("Identity not found")),
            None => {
                return Err(bad(
                    "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
                ));
            }
        },
    };
    let audience = audience_of_resource(state.scenario.cloud, resource).ok_or_else(|| {
        mi_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            &format!(
                "AADSTS50001: The application named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                identity.tenant_id
            ),
        )
    })?;
    let mut world = state.world();
    let now = world.now();
    let (token, lifetime, expires_at) = issue(
        &mut world,
        &state.scenario,
        (&identity.tenant_id, &identity.client_id),
        audience,
        Principal::ManagedIdentity,
    );
    Ok(Grant {
        token,
        lifetime,
        not_before: now.as_second(),
        expires_on: expires_at.as_second(),
        resource: resource.to_owned(),
        client_id: identity.client_id.clone(),
    })
}

/// `GET /metadata/identity/oauth2/token` (IMDS).
pub(crate) async fn imds(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok());
    if metadata != Some("true") {
        return Err(mi_error(
            StatusCode::BAD_REQUEST,
            "bad_request_102",
            "Required metadata header not specified",
        ));
    }
    let grant = grant(&state, &query, "2018-02-01")?;
    Ok(no_store(json_response(
        StatusCode::OK,
        &ImdsToken {
            access_token: grant.token,
            refresh_token: "",
            expires_in: grant.lifetime.to_string(),
            expires_on: grant.expires_on.to_string(),
            not_before: grant.not_before.to_string(),
            resource: grant.resource,
            token_type: "Bearer",
        },
    )))
}

/// `GET /msi/token` (App Service `IDENTITY_ENDPOINT`).
pub(crate) async fn app_service(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let presented = headers
        .get(IDENTITY_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let expected = state
        .scenario
        .identity_header
        .as_deref()
        .unwrap_or_default();
    let trusted = !expected.is_empty() && bool::from(presented.ct_eq(expected.as_bytes()));
    if !trusted {
        return Err(mi_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER",
        ));
    }
    let grant = grant(&state, &query, "2019-08-01")?;
    Ok(no_store(json_response(
        StatusCode::OK,
        &AppServiceToken {
            access_token: grant.token,
            expires_on: grant.expires_on.to_string(),
            not_before: grant.not_before.to_string(),
            resource: grant.resource,
            token_type: "Bearer",
            client_id: grant.client_id,
        },
    )))
}
