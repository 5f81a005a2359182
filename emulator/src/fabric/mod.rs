//! The Fabric REST routes (`/v1/…`, reference §3): workspaces and items (the same workspaces as
//! Power BI's groups), and the Job Scheduler that runs Dataflow Gen2 refreshes. This file holds
//! what they share: the Fabric token check, the flat Fabric error shape and `continuationToken`
//! paging.

pub(crate) mod discovery;
pub(crate) mod jobs;

use crate::entra::FABRIC_AUDIENCE;
use crate::faults::bearer;
use crate::powerbi::{Caller, is_member};
use crate::scenario::Workspace;
use crate::state::{Principal, Shared, World};
use crate::wire::{self, REQUEST_ID, json_response};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;

/// The header Fabric repeats the error code in.
static ERROR_CODE_HEADER: HeaderName = HeaderName::from_static("x-ms-public-api-error-code");

/// A Fabric `ErrorResponse`: `{"requestId","errorCode","message","isRetriable"}`, with the same
/// request id in the `RequestId` header and the code in `x-ms-public-api-error-code`.
pub(crate) fn fabric_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let request_id = wire::new_guid();
    let message: String = message.into();
    let mut response = json_response(
        status,
        &json!({"requestId": request_id, "errorCode": code, "message": message, "isRetriable": false}),
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID.clone(), value);
    }
    if let Ok(value) = HeaderValue::from_str(code) {
        headers.insert(ERROR_CODE_HEADER.clone(), value);
    }
    response
}

/// The caller of a Fabric route.
pub(crate) struct FabricCaller {
    pub caller: Caller,
    pub principal: Principal,
    pub tenant_id: String,
}

/// Checks the bearer token: live, not revoked, and issued for Fabric.
pub(crate) fn caller(world: &World, headers: &HeaderMap) -> Result<FabricCaller, Response> {
    let expired = || {
        fabric_error(
            StatusCode::UNAUTHORIZED,
            "TokenExpired",
            "Access token has expired, resubmit with a new access token",
        )
    };
    let token = bearer(headers).ok_or_else(expired)?;
    let token = world.tokens.get(token).ok_or_else(expired)?;
    if token.revoked || world.now() >= token.expires_at {
        return Err(expired());
    }
    if token.audience != FABRIC_AUDIENCE {
        return Err(fabric_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The caller is not authenticated to access this resource: the access token's audience is not https://api.fabric.microsoft.com",
        ));
    }
    Ok(FabricCaller {
        caller: Caller {
            client_id: token.client_id.clone(),
        },
        principal: token.principal,
        tenant_id: token.tenant_id.clone(),
    })
}

/// A workspace the caller may use: 404 `WorkspaceNotFound`, or 403 for a non-member.
pub(crate) fn workspace<'a>(
    shared: &'a Shared,
    caller: &FabricCaller,
    id: &str,
) -> Result<&'a Workspace, Response> {
    let workspace = shared.workspace(id).ok_or_else(|| {
        fabric_error(
            StatusCode::NOT_FOUND,
            "WorkspaceNotFound",
            format!("The requested workspace {id} was not found"),
        )
    })?;
    if !is_member(workspace, &caller.caller) {
        return Err(fabric_error(
            StatusCode::FORBIDDEN,
            "InsufficientPrivileges",
            "The caller does not have sufficient permissions to access the requested resource",
        ));
    }
    Ok(workspace)
}

/// A page of a Fabric list.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    value: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_uri: Option<String>,
}

/// Answers one page of `items`, reading `continuationToken` from `uri` and building the next
/// page's absolute `continuationUri` (other query parameters kept) from the request's host.
pub(crate) fn page<T: Serialize>(
    items: Vec<T>,
    uri: &Uri,
    headers: &HeaderMap,
    page_size: usize,
) -> Result<Response, Response> {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let offset = match params.iter().find(|(k, _)| k == "continuationToken") {
        None => 0,
        Some((_, token)) => decode_token(token).ok_or_else(|| {
            fabric_error(
                StatusCode::BAD_REQUEST,
                "InvalidContinuationToken",
                "The continuation token is not valid",
            )
        })?,
    };
    let total = items.len();
    let value: Vec<T> = items.into_iter().skip(offset).take(page_size).collect();
    let next = offset.saturating_add(page_size);
    let (token, next_uri) = if next < total {
        let token = URL_SAFE_NO_PAD.encode(format!("emulator-offset:{next}"));
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "continuationToken") {
            query.append_pair(k, v);
        }
        query.append_pair("continuationToken", &token);
        let next_uri = format!(
            "{}{}?{}",
            wire::base_url(headers),
            uri.path(),
            query.finish()
        );
        (Some(token), Some(next_uri))
    } else {
        (None, None)
    };
    Ok(json_response(
        StatusCode::OK,
        &Page {
            value,
            continuation_token: token,
            continuation_uri: next_uri,
        },
    ))
}

fn decode_token(token: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("emulator-offset:")?
        .parse()
        .ok()
}

/// Fabric job timestamps: UTC, seven fractional digits, no offset.
pub(crate) fn fabric_time(at: jiff::Timestamp) -> String {
    format!(
        "{}.{:07}",
        at.strftime("%Y-%m-%dT%H:%M:%S"),
        at.subsec_nanosecond().max(0) / 100
    )
}
