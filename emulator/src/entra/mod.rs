//! Entra ID's v2 token endpoint for the client-credentials grant (reference §1.4–1.7), with a
//! client secret or a signed client assertion: the checks the real service makes, its error
//! bodies (`AADSTS` codes), and opaque tokens bound to a client, a resource and an expiry on the
//! emulator's clock. Managed identities get their tokens from [`managed`].
//!
//! The form body carries the client secret or assertion: it is parsed here and nowhere else, and
//! neither it nor the form is ever logged or recorded.

pub(crate) mod assertion;
pub(crate) mod managed;

use crate::scenario::{Cloud, Scenario};
use crate::state::{AppState, Principal, Token, World};
use crate::wire::{self, json_response};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// Audience of a Fabric token, the only one the Fabric routes accept (Fabric exists only in the
/// public cloud).
pub(crate) const FABRIC_AUDIENCE: &str = "https://api.fabric.microsoft.com";
/// Audience of a Power Automate token: issued in the public cloud, accepted by no emulated route.
pub(crate) const FLOW_AUDIENCE: &str = "https://service.flow.microsoft.com/";

/// Audience of a Power BI token in `cloud`, the only one the Power BI routes accept there
/// (reference: Microsoft's "Embed Power BI content ... for national/regional clouds").
pub(crate) fn powerbi_audience(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Public => "https://analysis.windows.net/powerbi/api",
        Cloud::Usgov => "https://analysis.usgovcloudapi.net/powerbi/api",
        Cloud::Usgovhigh => "https://high.analysis.usgovcloudapi.net/powerbi/api",
        Cloud::Dod => "https://mil.analysis.usgovcloudapi.net/powerbi/api",
        Cloud::China => "https://analysis.chinacloudapi.cn/powerbi/api",
    }
}

/// The audiences `cloud`'s token endpoint issues tokens for; a scope is one of them plus
/// `/.default` (Power Automate's keeps its trailing slash: `…com//.default`).
fn audiences(cloud: Cloud) -> Vec<&'static str> {
    let mut list = vec![powerbi_audience(cloud)];
    if cloud == Cloud::Public {
        list.extend([FABRIC_AUDIENCE, FLOW_AUDIENCE]);
    }
    list
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut world = state.world();
    let now = world.now();
    let fail = |status, error, code, text: String| aad_error(now, status, error, code, &text);
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());

    let lower = tenant.to_ascii_lowercase();
    if lower == "common" || lower == "consumers" {
        return fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9001023,
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.".to_owned(),
        );
    }
    let Some(grant_type) = field("grant_type") else {
        return missing(now, "grant_type");
    };
    if grant_type != "client_credentials" {
        return fail(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let Some(tenant_spec) = state.scenario.tenants.iter().find(|t| {
        t.id.eq_ignore_ascii_case(&tenant)
            || t.domain
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(&tenant))
    }) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    };
    let Some(client_id) = field("client_id") else {
        return missing(now, "client_id");
    };
    let Some(client) = tenant_spec
        .clients
        .iter()
        .find(|c| c.client_id.eq_ignore_ascii_case(client_id))
    else {
        return fail(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    };
    let secret = field("client_secret");
    let client_assertion = field("client_assertion");
    match (secret, client_assertion) {
        (Some(_), Some(_)) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                9002313,
                "Invalid request. Request is malformed or invalid: send either 'client_secret' or 'client_assertion', not both.".to_owned(),
            );
        }
        (None, None) => {
            return fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_owned(),
            );
        }
        (Some(secret), None) => {
            let matches = client
                .secret
                .as_deref()
                .is_some_and(|s| bool::from(s.as_bytes().ct_eq(secret.as_bytes())));
            if !matches {
                return fail(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                        client.client_id
                    ),
                );
            }
        }
        (None, Some(signed)) => {
            match field("client_assertion_type") {
                None => return missing(now, "client_assertion_type"),
                Some(kind) if kind != assertion::JWT_BEARER => {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        9002313,
                        format!(
                            "Invalid request. Request is malformed or invalid: client_assertion_type must be '{}'.",
                            assertion::JWT_BEARER
                        ),
                    );
                }
                Some(_) => {}
            }
            let audiences = token_endpoints(&headers, tenant_spec);
            if let Err(refusal) = assertion::verify(client, signed, &audiences, now) {
                return fail(refusal.status, refusal.error, refusal.code, refusal.text);
            }
        }
    }
    let Some(scope) = field("scope") else {
        return missing(now, "scope");
    };
    let cloud = state.scenario.cloud;
    let Some(audience) = audiences(cloud)
        .into_iter()
        .find(|a| scope.strip_suffix("/.default") == Some(*a))
    else {
        return fail(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        );
    };

    let (access_token, lifetime, _) = issue(
        &mut world,
        &state.scenario,
        (&tenant_spec.id, &client.client_id),
        audience,
        Principal::ServicePrincipal,
    );
    drop(world);
    no_store(json_response(
        StatusCode::OK,
        &TokenBody {
            token_type: "Bearer",
            expires_in: lifetime,
            ext_expires_in: lifetime,
            access_token,
        },
    ))
}

/// The URLs a certificate assertion may name as `aud`: this token endpoint (by tenant id or
/// domain, on the emulator's own host), or the tenant's v2 issuer.
fn token_endpoints(headers: &HeaderMap, tenant: &crate::scenario::Tenant) -> Vec<String> {
    let base = wire::base_url(headers);
    std::iter::once(&tenant.id)
        .chain(tenant.domain.as_ref())
        .flat_map(|t| {
            [
                format!("{base}/{t}/oauth2/v2.0/token"),
                format!("{base}/{t}/v2.0"),
            ]
        })
        .collect()
}

/// Issues a token for `(tenant id, client id)` and `audience`: (token, lifetime in seconds,
/// expiry).
pub(crate) fn issue(
    world: &mut World,
    scenario: &Scenario,
    (tenant_id, client_id): (&str, &str),
    audience: &'static str,
    principal: Principal,
) -> (String, u64, Timestamp) {
    let now = world.now();
    let lifetime = scenario.token_lifetime_seconds;
    let access_token = format!("{}{}", scenario.token_prefix, random_chars(40));
    // `lifetime` real seconds: under `timeScale` the token lives `lifetime × timeScale` on the
    // emulator's clock, so a client that caches it for `expires_in` never sees it die early.
    let on_clock = crate::scenario::seconds(lifetime as f64 * world.clock.scale());
    let expires_at = now.saturating_add(on_clock).unwrap_or(Timestamp::MAX);
    world.tokens.insert(
        access_token.clone(),
        Token {
            client_id: client_id.to_owned(),
            audience,
            expires_at,
            revoked: false,
            principal,
            tenant_id: tenant_id.to_owned(),
        },
    );
    (access_token, lifetime, expires_at)
}

/// The token success body (reference §1.5), in the service's field order.
#[derive(Serialize)]
struct TokenBody {
    token_type: &'static str,
    expires_in: u64,
    ext_expires_in: u64,
    access_token: String,
}

/// The audience a resource names in `cloud`, if that cloud has it.
pub(crate) fn audience_of_resource(cloud: Cloud, resource: &str) -> Option<&'static str> {
    let trimmed = resource.trim_end_matches('/');
    audiences(cloud)
        .into_iter()
        .find(|audience| audience.trim_end_matches('/') == trimmed)
}

/// The token error body (reference §1.6), in the service's field order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
    error_codes: [u32; 1],
    timestamp: String,
    trace_id: String,
    correlation_id: String,
}

/// `len` random alphanumeric characters.
fn random_chars(len: usize) -> String {
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(len);
    out
}

fn missing(now: Timestamp, name: &str) -> Response {
    aad_error(
        now,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// The default body of a fault injected on the token route.
pub(crate) fn fault_error(status: StatusCode, now: Timestamp) -> Response {
    let mut response = if status == StatusCode::TOO_MANY_REQUESTS {
        aad_error(
            now,
            status,
            "temporarily_unavailable",
            90055,
            "The number of requests to the tenant exceeded its limit (TenantThrottlingError).",
        )
    } else {
        aad_error(
            now,
            status,
            "temporarily_unavailable",
            50000,
            "There was an error issuing a token or an issue with our sign-in service.",
        )
    };
    *response.status_mut() = status;
    response
}

/// An Entra ID error body: `error`, `error_description` (`AADSTS<code>: …`), `error_codes`,
/// `timestamp`, `trace_id`, `correlation_id`.
pub(crate) fn aad_error(
    now: Timestamp,
    status: StatusCode,
    error: &str,
    code: u32,
    text: &str,
) -> Response {
    let trace_id = wire::new_guid();
    let correlation_id = wire::new_guid();
    let timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
    let description = format!(
        "AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
    );
    no_store(json_response(
        status,
        &ErrorBody {
            error,
            error_description: description,
            error_codes: [code],
            timestamp,
            trace_id,
            correlation_id,
        },
    ))
}

pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
