//! Entra ID tokens: client credentials on the v2 endpoint, one token per (profile, resource).
//!
//! A token request covers a single resource (`powerbi-api.md` §1.3), so Power BI and Fabric
//! tokens are cached apart. A cached token is renewed shortly before it expires, so a wait of
//! hours never polls with a dead token; if the API still answers 401, the caller drops the
//! token with [`Auth::invalidate`] and retries once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::{Error, ServiceError};
use crate::http::{Http, Retry};
use crate::settings::{Profile, profile_var};

/// The APIs a token can be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The Power BI REST API.
    PowerBi,
    /// The Fabric REST API.
    Fabric,
    /// Power Automate (`service.flow`).
    Flow,
}

impl Resource {
    /// The client-credentials `.default` scope of the resource.
    pub fn scope(self) -> &'static str {
        match self {
            Resource::PowerBi => "https://analysis.windows.net/powerbi/api/.default",
            Resource::Fabric => "https://api.fabric.microsoft.com/.default",
            // The double slash is deliberate: it keeps the audience's trailing slash.
            Resource::Flow => "https://service.flow.microsoft.com//.default",
        }
    }

    /// The name used in tasks and outputs.
    pub fn name(self) -> &'static str {
        match self {
            Resource::PowerBi => "powerbi",
            Resource::Fabric => "fabric",
            Resource::Flow => "flow",
        }
    }
}

/// Renew when less than this remains (or a fifth of the lifetime, for short-lived tokens).
const RENEW_BEFORE: Duration = Duration::from_secs(300);

struct Cached {
    token: SecretString,
    renew_at: Instant,
}

/// Acquires and caches tokens.
pub struct Auth<'a> {
    http: &'a Http,
    authority: String,
    cache: Mutex<HashMap<(String, Resource), Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(deserialize_with = "seconds")]
    expires_in: u64,
}

/// `expires_in` is a number on v2 and a string on v1; accept both.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

impl<'a> Auth<'a> {
    /// Tokens from `authority` (e.g. `https://login.microsoftonline.com`).
    pub fn new(http: &'a Http, authority: &str) -> Self {
        Auth {
            http,
            authority: authority.to_string(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A token for `resource` as `profile`, from the cache while it stays valid.
    pub async fn token(
        &self,
        profile: &Profile,
        resource: Resource,
    ) -> Result<SecretString, Error> {
        let key = (profile.name.clone(), resource);
        if let Some(c) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).map(|c| (c.token.clone(), c.renew_at)))
        {
            if Instant::now() < c.1 {
                return Ok(c.0);
            }
            tracing::info!(profile = %profile.name, resource = resource.name(), "renewing the access token before it expires");
        }
        let (token, lifetime) = self.acquire(profile, resource).await?;
        let margin = RENEW_BEFORE.min(lifetime / 5);
        let renew_at = Instant::now() + lifetime.saturating_sub(margin);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                key,
                Cached {
                    token: token.clone(),
                    renew_at,
                },
            );
        }
        Ok(token)
    }

    /// Drops the cached token, after the API refused it.
    pub fn invalidate(&self, profile: &Profile, resource: Resource) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&(profile.name.clone(), resource));
        }
    }

    async fn acquire(
        &self,
        profile: &Profile,
        resource: Resource,
    ) -> Result<(SecretString, Duration), Error> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority, profile.tenant_id);
        let action = format!(
            "get a {} token for profile `{}`",
            resource.name(),
            profile.name
        );
        let response = self
            .http
            .send("token", &action, Retry::Idempotent, || {
                self.http.client().post(&url).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", profile.client_id.as_str()),
                    ("client_secret", profile.client_secret.expose_secret()),
                    ("scope", resource.scope()),
                ])
            })
            .await?;
        if !response.is_success() {
            return Err(refused(
                profile,
                resource,
                response.service_error(),
                &response.body,
            ));
        }
        let body: TokenResponse = response.json(&action)?;
        tracing::debug!(profile = %profile.name, resource = resource.name(), expires_in = body.expires_in, "token acquired");
        Ok((body.access_token, Duration::from_secs(body.expires_in)))
    }
}

/// Builds the error for a refused token request, with a hint per AADSTS code.
fn refused(profile: &Profile, resource: Resource, mut service: ServiceError, body: &str) -> Error {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let aadsts = value["error_codes"][0].as_u64().or_else(|| {
        let desc = value["error_description"].as_str()?;
        let digits: String = desc
            .strip_prefix("AADSTS")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    if let Some(code) = aadsts {
        service.code = Some(format!("AADSTS{code}"));
    }
    let var = |field| profile_var(&profile.name, field);
    let help = match aadsts {
        Some(7000215) => Some(format!(
            "the client secret is wrong: you may have passed the secret's ID, not its value; copy the secret's Value (shown once, when it is created) into {}",
            var("CLIENT_SECRET")
        )),
        Some(7000222) => Some(format!(
            "the client secret has expired: create a new one and update {}",
            var("CLIENT_SECRET")
        )),
        Some(700016) => Some(format!(
            "no application with this id in the tenant: check {} and {} (the app must be registered in, or consented to, that tenant)",
            var("CLIENT_ID"),
            var("TENANT_ID")
        )),
        Some(90002) => Some(format!(
            "the tenant does not exist: check {} (a GUID, or a domain such as contoso.onmicrosoft.com)",
            var("TENANT_ID")
        )),
        Some(7000218) => Some(format!(
            "no client secret was sent: set {}",
            var("CLIENT_SECRET")
        )),
        Some(70011) => {
            Some("the scope was refused: the resource is not available to this tenant".into())
        }
        _ => None,
    };
    Error::TokenRefused {
        profile: profile.name.clone(),
        tenant: profile.tenant_id.clone(),
        client_id: profile.client_id.clone(),
        resource: resource.name().to_string(),
        service,
        help,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            name: "finance".into(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("s"),
        }
    }

    #[test]
    fn aadsts_codes_become_hints_that_name_the_variable() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        let err = refused(&profile(), Resource::PowerBi, ServiceError::default(), body);
        assert_eq!(err.code(), "AADSTS7000215");
        let hint = err.hint().expect("hint");
        assert!(
            hint.contains("secret's ID, not its value")
                && hint.contains("PBIOPS_PROFILE_FINANCE_CLIENT_SECRET")
        );
        assert_eq!(err.exit_code().code(), 3);

        let body = r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;
        let err = refused(&profile(), Resource::Fabric, ServiceError::default(), body);
        assert_eq!(err.code(), "AADSTS90002");
        assert!(
            err.hint()
                .expect("hint")
                .contains("PBIOPS_PROFILE_FINANCE_TENANT_ID")
        );
    }

    #[test]
    fn scopes_are_one_resource_each() {
        assert_ne!(Resource::PowerBi.scope(), Resource::Fabric.scope());
        assert!(Resource::Flow.scope().ends_with("//.default"));
    }
}
