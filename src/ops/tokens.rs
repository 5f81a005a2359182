//! `token.get` and `token.refresh`: tokens other jobs read from the store, kept fresh.
//!
//! `token.get` reuses a stored token of the same principal that stays valid for the renewal
//! margin, else acquires and stores one; it outputs the expiry, never the token. `token.refresh`
//! is what the scheduled auth flow runs: every profile × resource whose token is missing or
//! expires within `within` gets a new one, so readers of the table always find a live token.

use serde::Serialize;

use super::Context;
use super::outputs::Outputs;
use crate::auth::{Resource, Source};
use crate::error::{Error, ExitCode};
use crate::task::{TokenGetTask, TokenRefreshTask};

/// What `token.refresh` did for one (profile, resource).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResult {
    /// Profile name.
    pub profile: String,
    /// `powerbi`, `fabric` or `flow`.
    pub resource: &'static str,
    /// `renewed`, `valid` (left as it was), `unavailable` (the profile's cloud has no such
    /// service, e.g. Fabric in a sovereign cloud) or `failed`.
    pub action: &'static str,
    /// The stored token's expiry after the run (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    /// The failure's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The failure's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

pub(super) async fn get(
    ctx: &Context<'_>,
    task: &TokenGetTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let profile = ctx.settings.profile(&task.profile)?;
    let issued = ctx.auth.issue(&profile, task.resource).await?;
    out.resource = Some(task.resource.name());
    out.expires_on = Some(issued.expires_at.to_string());
    out.token_source = Some(issued.source.name());
    tracing::info!(
        "{} token for profile {}: {} (expires {})",
        task.resource.name(),
        profile.name,
        if issued.source == Source::Acquired {
            "acquired"
        } else {
            "reused from the store"
        },
        issued.expires_at
    );
    Ok(ExitCode::Success)
}

pub(super) async fn refresh(
    ctx: &Context<'_>,
    task: &TokenRefreshTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let Some(store) = ctx.store else {
        return Err(Error::setting(
            "PBIOPS_ODBC",
            "is `none`, and token.refresh renews the tokens kept in the store",
            "point PBIOPS_ODBC at the store the token readers use (or drop PBIOPS_ODBC for the default SQLite file)",
        ));
    };
    let names = task
        .profiles
        .clone()
        .unwrap_or_else(|| ctx.settings.profile_names());
    let deadline =
        jiff::Timestamp::now() + jiff::SignedDuration::try_from(task.within).unwrap_or_default();
    let mut results = Vec::new();
    for name in &names {
        for resource in &task.resources {
            results.push(refresh_one(ctx, store, name, *resource, deadline).await?);
        }
    }
    let renewed = results.iter().filter(|r| r.action == "renewed").count();
    let failed = results.iter().filter(|r| r.action == "failed").count();
    tracing::info!(
        "{renewed} token(s) renewed, {} still valid, {failed} failed",
        results.len() - renewed - failed
    );
    out.renewed = Some(renewed);
    out.failed = Some(failed);
    out.tokens = Some(results);
    Ok(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Auth
    })
}

/// Renews one token when it is missing or expires before `deadline`. Auth failures are
/// recorded in the result; store failures end the run (exit 7), since the table is the point.
async fn refresh_one(
    ctx: &Context<'_>,
    store: &crate::store::Store,
    name: &str,
    resource: Resource,
    deadline: jiff::Timestamp,
) -> Result<TokenResult, Error> {
    let mut result = TokenResult {
        profile: name.to_string(),
        resource: resource.name(),
        action: "valid",
        expires_on: None,
        error_code: None,
        error_message: None,
        hint: None,
    };
    let fail = |mut r: TokenResult, e: &Error| {
        tracing::error!("profile {name}, {}: {e}", resource.name());
        r.action = "failed";
        r.error_code = Some(e.code());
        r.error_message = Some(crate::redact::scrub(&e.to_string()));
        r.hint = e.hint();
        r
    };
    let profile = match ctx.settings.profile(name) {
        Ok(p) => p,
        Err(e) => return Ok(fail(result, &e)),
    };
    if let Err(e) = resource.uri(&profile) {
        // Not a failure of the profile: its cloud has no such service to hold a token for.
        tracing::info!("profile {name}: no {} token: {e}", resource.name());
        result.action = "unavailable";
        result.hint = e.hint();
        return Ok(result);
    }
    if let Some(row) = store.token(name, resource.name()).await? {
        let same_principal =
            row.client_id == profile.client_id && row.tenant_id == profile.tenant_id;
        if same_principal && row.expires_at > deadline {
            result.expires_on = Some(row.expires_at.to_string());
            return Ok(result);
        }
    }
    let token = match ctx.auth.acquire(&profile, resource).await {
        Ok(t) => t,
        Err(e) => return Ok(fail(result, &e)),
    };
    let issued = ctx.auth.keep(&profile, resource, &token).await?;
    result.action = "renewed";
    result.expires_on = Some(issued.expires_at.to_string());
    Ok(result)
}
