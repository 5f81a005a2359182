//! Entra ID tokens, one per (profile, resource), for every way a profile can authenticate.
//!
//! Client credentials on the v2 endpoint with a secret, a certificate assertion or a federated
//! assertion; or a managed identity's local endpoint. A token request covers a single resource
//! (`powerbi-api.md` §1.3), so Power BI, Fabric and Power Automate tokens are cached apart. A
//! cached token is renewed shortly before it expires, so a wait of hours never polls with a dead
//! token; if the API still answers 401, the caller drops it with [`Auth::invalidate`] and retries.

mod assertion;
mod managed;
mod refused;
mod resource;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::Error;
use crate::http::{Http, Retry};
use crate::settings::{Credential, Profile};
use crate::store::{NewToken, Store};
use refused::refused;
pub use resource::Resource;

/// Renew when less than this remains (or a fifth of the lifetime, for short-lived tokens).
pub const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// A token and when it expires.
#[derive(Clone)]
pub struct Token {
    /// The access token.
    pub secret: SecretString,
    /// Its lifetime from the moment it was acquired.
    pub lifetime: Duration,
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This run's cache.
    Memory,
    /// The token store: another run acquired it and it stays valid long enough.
    Store,
    /// Entra ID (or the managed identity endpoint), just now.
    Acquired,
}

impl Source {
    /// The name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Source::Memory | Source::Store => "store",
            Source::Acquired => "acquired",
        }
    }
}

/// A usable token with its expiry and origin.
pub struct Issued {
    /// The token.
    pub secret: SecretString,
    /// When it expires.
    pub expires_at: jiff::Timestamp,
    /// Where it came from.
    pub source: Source,
}

struct Cached {
    token: SecretString,
    renew_at: Instant,
    expires_at: jiff::Timestamp,
}

/// Also append new Power BI tokens to the team's former table (`PBIOPS_LEGACY_TOKEN_TABLE`).
#[derive(Debug, Clone)]
pub struct LegacyTable {
    /// `schema.table`.
    pub table: String,
    /// Its `bearerToken` column size.
    pub max_length: usize,
}

/// Acquires and caches tokens, sharing them with other runs through the store.
pub struct Auth<'a> {
    http: &'a Http,
    authority: String,
    store: Option<&'a Store>,
    legacy: Option<LegacyTable>,
    cache: Mutex<HashMap<(String, Resource), Cached>>,
    /// Tokens the API refused in this run: the stored copy is not offered again.
    refused: Mutex<std::collections::HashSet<(String, Resource)>>,
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
    /// Tokens from `authority` (e.g. `https://login.microsoftonline.com`), shared through `store`.
    pub fn new(
        http: &'a Http,
        authority: &str,
        store: Option<&'a Store>,
        legacy: Option<LegacyTable>,
    ) -> Self {
        Auth {
            http,
            authority: authority.to_string(),
            store,
            legacy,
            cache: Mutex::new(HashMap::new()),
            refused: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// A token for `resource` as `profile`: from this run's cache or the store while it stays
    /// valid for [`RENEW_BEFORE`], else a new one (which is then stored).
    pub async fn token(
        &self,
        profile: &Profile,
        resource: Resource,
    ) -> Result<SecretString, Error> {
        Ok(self.issue(profile, resource).await?.secret)
    }

    /// Like [`Auth::token`], with the expiry and where the token came from.
    pub async fn issue(&self, profile: &Profile, resource: Resource) -> Result<Issued, Error> {
        // A resource the profile's cloud does not have is refused before the cache or the store.
        resource.uri(profile)?;
        let key = (profile.name.clone(), resource);
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(&key)
                .map(|c| (c.token.clone(), c.renew_at, c.expires_at))
        });
        match cached {
            Some((secret, renew_at, expires_at)) if Instant::now() < renew_at => {
                return Ok(Issued {
                    secret,
                    expires_at,
                    source: Source::Memory,
                });
            }
            Some(_) => {
                tracing::info!(profile = %profile.name, resource = resource.name(), "renewing the access token before it expires")
            }
            None => {
                if let Some(issued) = self.stored(profile, resource).await? {
                    return Ok(issued);
                }
            }
        }
        let token = self.acquire(profile, resource).await?;
        self.keep(profile, resource, &token).await
    }

    /// A stored token of this very principal that stays valid long enough.
    async fn stored(&self, profile: &Profile, resource: Resource) -> Result<Option<Issued>, Error> {
        let Some(store) = self.store else {
            return Ok(None);
        };
        let key = (profile.name.clone(), resource);
        if self
            .refused
            .lock()
            .map(|r| r.contains(&key))
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let Some(row) = store.token(&profile.name, resource.name()).await? else {
            return Ok(None);
        };
        // A row written under other credentials (the profile was re-pointed) is not ours.
        if row.client_id != profile.client_id || row.tenant_id != profile.tenant_id {
            return Ok(None);
        }
        let remaining = row.expires_at.duration_since(jiff::Timestamp::now());
        let Ok(remaining) = Duration::try_from(remaining) else {
            return Ok(None);
        };
        if remaining <= RENEW_BEFORE {
            return Ok(None);
        }
        let token = Token {
            secret: row.access_token,
            lifetime: remaining,
        };
        self.remember(profile, resource, &token);
        Ok(Some(Issued {
            secret: token.secret,
            expires_at: row.expires_at,
            source: Source::Store,
        }))
    }

    /// Caches a new token, writes it to the store (and the legacy table for Power BI).
    pub async fn keep(
        &self,
        profile: &Profile,
        resource: Resource,
        token: &Token,
    ) -> Result<Issued, Error> {
        let acquired_at = jiff::Timestamp::now();
        let expires_at =
            acquired_at + jiff::SignedDuration::try_from(token.lifetime).unwrap_or_default();
        self.remember(profile, resource, token);
        if let Some(store) = self.store {
            // The legacy table first: if it refuses the token, the token is not kept either, so
            // the next run tries again rather than reusing a token the legacy readers never got.
            if let (Some(legacy), Resource::PowerBi) = (&self.legacy, resource) {
                store
                    .append_legacy_token(
                        &legacy.table,
                        &token.secret,
                        acquired_at,
                        expires_at,
                        "powerbi",
                        legacy.max_length,
                    )
                    .await?;
            }
            store
                .put_token(&NewToken {
                    profile: profile.name.clone(),
                    resource: resource.name().to_string(),
                    tenant_id: profile.tenant_id.clone(),
                    client_id: profile.client_id.clone(),
                    access_token: token.secret.clone(),
                    expires_at,
                    acquired_at,
                })
                .await?;
        }
        Ok(Issued {
            secret: token.secret.clone(),
            expires_at,
            source: Source::Acquired,
        })
    }

    /// Puts a token in this run's cache.
    pub fn remember(&self, profile: &Profile, resource: Resource, token: &Token) {
        let margin = RENEW_BEFORE.min(token.lifetime / 5);
        let renew_at = Instant::now() + token.lifetime.saturating_sub(margin);
        let expires_at = jiff::Timestamp::now()
            + jiff::SignedDuration::try_from(token.lifetime).unwrap_or_default();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                (profile.name.clone(), resource),
                Cached {
                    token: token.secret.clone(),
                    renew_at,
                    expires_at,
                },
            );
        }
    }

    /// Drops the cached token, after the API refused it.
    pub fn invalidate(&self, profile: &Profile, resource: Resource) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&(profile.name.clone(), resource));
        }
        // The store may hold the same token (revoked early): the next one must be new, and it
        // then replaces the stored row, which it outlives.
        if let Ok(mut refused) = self.refused.lock() {
            refused.insert((profile.name.clone(), resource));
        }
    }

    /// Acquires a new token from Entra ID (or the managed identity endpoint), bypassing the cache.
    pub async fn acquire(&self, profile: &Profile, resource: Resource) -> Result<Token, Error> {
        let action = format!(
            "get a {} token for profile `{}`",
            resource.name(),
            profile.name
        );
        let scope = resource.scope(profile)?;
        let authority = profile
            .endpoints
            .as_ref()
            .map_or(self.authority.as_str(), |e| e.authority.as_str());
        let token_url = format!("{authority}/{}/oauth2/v2.0/token", profile.tenant_id);
        let assertion = match &profile.credential {
            Credential::Secret(_) => None,
            Credential::Certificate { pem, variable } => Some(assertion::certificate(
                pem,
                variable,
                &profile.client_id,
                &token_url,
            )?),
            Credential::Federated { path, variable } => {
                let jwt = assertion::federated(path, variable)?;
                let expected = profile.cloud.federated_audience();
                if let Some(aud) =
                    assertion::audiences(&jwt).filter(|a| !a.iter().any(|a| a == expected))
                {
                    tracing::warn!(
                        "the federated token in {variable} is for audience {}, not {expected} (the usual one in cloud `{}`): Entra ID accepts it only if the app's federated credential names that audience",
                        aud.join(", "),
                        profile.cloud.name()
                    );
                }
                Some(jwt)
            }
            Credential::ManagedIdentity {
                client_id,
                endpoint,
            } => {
                return match managed::token(
                    self.http,
                    endpoint,
                    client_id.as_deref(),
                    resource.uri(profile)?,
                    &action,
                )
                .await?
                {
                    Ok((secret, lifetime)) => Ok(Token { secret, lifetime }),
                    Err(service) => Err(refused(profile, resource, service, "")),
                };
            }
        };
        let response = self
            .http
            .send("token", &action, Retry::Idempotent, || {
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", profile.client_id.as_str()),
                    ("scope", scope.as_str()),
                ];
                match (&profile.credential, &assertion) {
                    (Credential::Secret(secret), _) => {
                        form.push(("client_secret", secret.expose_secret()))
                    }
                    (_, Some(jwt)) => {
                        form.push((
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ));
                        form.push(("client_assertion", jwt.expose_secret()));
                    }
                    _ => {}
                }
                self.http.client().post(&token_url).form(&form)
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
        Ok(Token {
            secret: body.access_token,
            lifetime: Duration::from_secs(body.expires_in),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServiceError;

    fn profile() -> Profile {
        Profile {
            name: "finance".into(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            credential: Credential::Secret(SecretString::from("s")),
            cloud: crate::settings::Cloud::Public,
            cloud_variable: "PBIOPS_CLOUD".into(),
            endpoints: None,
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
    fn resources_are_one_each_and_follow_the_cloud() {
        let public = profile();
        let scope = |r: Resource, p: &Profile| r.scope(p).expect("scope");
        assert_eq!(
            scope(Resource::PowerBi, &public),
            "https://analysis.windows.net/powerbi/api/.default"
        );
        assert_eq!(
            scope(Resource::Fabric, &public),
            "https://api.fabric.microsoft.com/.default"
        );
        assert!(scope(Resource::Flow, &public).ends_with("//.default"));
        let dod = Profile {
            cloud: crate::settings::Cloud::Dod,
            ..profile()
        };
        assert_eq!(
            scope(Resource::PowerBi, &dod),
            "https://mil.analysis.usgovcloudapi.net/powerbi/api/.default"
        );
        let err = Resource::Fabric.scope(&dod).expect_err("no Fabric");
        assert_eq!(err.exit_code().code(), 2);
        assert!(err.to_string().contains("`PBIOPS_CLOUD`") && err.to_string().contains("`dod`"));
        assert!(Resource::Flow.uri(&dod).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_token_is_renewed_before_it_expires() {
        let http = Http::new(crate::settings::HttpBudget {
            timeout: Duration::from_secs(1),
            attempts: 1,
            budget: Duration::from_secs(1),
        })
        .expect("client");
        let auth = Auth::new(&http, "http://127.0.0.1:9", None, None);
        let p = profile();
        auth.remember(
            &p,
            Resource::PowerBi,
            &Token {
                secret: SecretString::from("t1"),
                lifetime: Duration::from_secs(3600),
            },
        );
        assert_eq!(
            auth.token(&p, Resource::PowerBi)
                .await
                .expect("cached")
                .expose_secret(),
            "t1"
        );
        tokio::time::advance(Duration::from_secs(3600 - 301)).await;
        assert_eq!(
            auth.token(&p, Resource::PowerBi)
                .await
                .expect("still cached")
                .expose_secret(),
            "t1"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        // Within five minutes of expiry: a new token is requested (and here refused: no server).
        assert!(auth.token(&p, Resource::PowerBi).await.is_err());
    }
}
