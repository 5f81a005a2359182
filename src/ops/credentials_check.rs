//! `credentials.check`: every profile, end to end, before a schedule depends on it.
//!
//! For each profile: the settings are complete, a token is issued for Power BI and for Fabric
//! (fresh, never from a cache: the point is to prove the credential works now), Power BI answers
//! with the workspaces the principal can see, and so does Fabric. A failure on one profile is
//! recorded with its hint and the check goes on with the next.

use serde::Serialize;

use super::Context;
use super::outputs::Outputs;
use crate::auth::Resource;
use crate::error::{Error, ExitCode};
use crate::fabric::Fabric;
use crate::task::CredentialsCheckTask;

/// The result for one profile.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileCheck {
    /// Profile name.
    pub profile: String,
    /// Auth method (`secret`, `certificate`, `federated`, `managed-identity`), when the settings are complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// Whether every step passed.
    pub ok: bool,
    /// Workspaces visible through Power BI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub powerbi_workspaces: Option<usize>,
    /// Workspaces visible through Fabric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fabric_workspaces: Option<usize>,
    /// The first failure's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The first failure's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ProfileCheck {
    fn fail(&mut self, step: &str, e: &Error) {
        tracing::error!("profile {}: {step}: {e}", self.profile);
        if self.error_code.is_none() {
            self.error_code = Some(e.code());
            self.error_message = Some(format!("{step}: {}", crate::redact::scrub(&e.to_string())));
            self.hint = e.hint();
        }
        self.ok = false;
    }
}

pub(super) async fn run(
    ctx: &Context<'_>,
    task: &CredentialsCheckTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let names = task
        .profiles
        .clone()
        .unwrap_or_else(|| ctx.settings.profile_names());
    if names.is_empty() {
        return Err(Error::setting(
            "PBIOPS_TENANT_ID",
            "no profile is configured",
            "set PBIOPS_TENANT_ID, PBIOPS_CLIENT_ID and a credential, or PBIOPS_PROFILE_<NAME>_*",
        ));
    }
    let mut checks = Vec::new();
    for name in names {
        checks.push(check(ctx, &name).await);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    tracing::info!("{} profile(s) checked, {failed} failed", checks.len());
    out.checked = Some(checks.len());
    out.failed = Some(failed);
    out.profiles = Some(checks);
    Ok(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Auth
    })
}

async fn check(ctx: &Context<'_>, name: &str) -> ProfileCheck {
    let mut result = ProfileCheck {
        profile: name.to_string(),
        ok: true,
        ..Default::default()
    };
    let profile = match ctx.settings.profile(name) {
        Ok(p) => p,
        Err(e) => {
            result.fail("settings", &e);
            return result;
        }
    };
    result.method = Some(profile.method());
    for resource in [Resource::PowerBi, Resource::Fabric] {
        // Fabric does not exist in every cloud: nothing to check there.
        if let Err(e) = resource.uri(&profile) {
            tracing::info!("profile {name}: {} not checked: {e}", resource.name());
            continue;
        }
        match ctx.auth.acquire(&profile, resource).await {
            Ok(token) => ctx.auth.remember(&profile, resource, &token),
            Err(e) => {
                result.fail(&format!("{} token", resource.name()), &e);
                continue;
            }
        }
        let counted = match resource {
            Resource::PowerBi => ctx.powerbi(&profile).groups(None).await.map(|g| g.len()),
            _ => Fabric::new(ctx.http, ctx.auth, &profile, &ctx.settings.endpoints.fabric)
                .workspaces()
                .await
                .map(|w| w.len()),
        };
        match (resource, counted) {
            (Resource::PowerBi, Ok(n)) => result.powerbi_workspaces = Some(n),
            (_, Ok(n)) => result.fabric_workspaces = Some(n),
            (_, Err(e)) => result.fail(&format!("{} API", resource.name()), &e),
        }
    }
    if result.ok {
        tracing::info!(
            "profile {name} ({}): Power BI sees {} workspace(s), Fabric {}",
            profile.method(),
            result.powerbi_workspaces.unwrap_or_default(),
            result.fabric_workspaces.unwrap_or_default()
        );
    }
    result
}
