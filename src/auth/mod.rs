//! Entra ID tokens, one per (profile, resource), for every way a profile can authenticate.
//!
//! Client credentials on the v2 endpoint with a secret, a certificate assertion or a federated
//! assertion; or a managed identity's local endpoint. A token request covers a single resource
//! (`powerbi-api.md` §1.3), so Power BI, Fabric and Power Automate tokens are cached apart. A
//! cached token is renewed shortly before it expires, so a wait of hours never polls with a dead
//! token; if the API still answers 401, the caller drops it with [`Auth::invalidate`] and retries.

mod assertion;
mod managed;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::{Error, ServiceError};
use crate::http::{Http, Retry};
use crate::settings::{Credential, Profile, profile_var};
use crate::store::{NewToken, Store};

/// The APIs a token can be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// The Power BI REST API.
    PowerBi,
    /// The Fabric REST API.
    Fabric,
    /// Power Automate (`service.flow`).
    Flow,
}

impl Resource {
    /// The resource URI (the token's audience) in `profile`'s cloud, as managed identity
    /// endpoints want it; a resource the cloud does not have is a setting error naming the
    /// cloud's variable, before anything is sent.
    pub fn uri(self, profile: &Profile) -> Result<&'static str, Error> {
        let cloud = profile.cloud;
        let found = match self {
            Resource::PowerBi => Some(cloud.powerbi_resource()),
            Resource::Fabric => cloud.fabric().map(|(_, resource)| resource),
            Resource::Flow => cloud.flow_resource(),
        };
        found.ok_or_else(|| {
            let (what, help) = match self {
                Resource::Fabric => (
                    "Microsoft Fabric is not available",
                    "Fabric (Dataflow Gen2 and other Fabric items) exists only in the public cloud: in this cloud refresh semantic models and Gen1 dataflows, or run the task with a public-cloud profile",
                ),
                _ => (
                    "pbiops does not know the Power Automate token scope",
                    "Power Automate tokens are supported in the public cloud only; flow.trigger needs no token (its URL is signed)",
                ),
            };
            Error::setting(
                &profile.cloud_variable,
                format!(
                    "{what} in cloud `{}` (profile `{}`); nothing was sent",
                    cloud.name(),
                    profile.name
                ),
                help,
            )
        })
    }

    /// The client-credentials `.default` scope of the resource in `profile`'s cloud.
    pub fn scope(self, profile: &Profile) -> Result<String, Error> {
        // For Power Automate the double slash is deliberate: it keeps the audience's trailing slash.
        Ok(format!("{}/.default", self.uri(profile)?))
    }

    /// The name used in tasks, outputs and the token store.
    pub fn name(self) -> &'static str {
        match self {
            Resource::PowerBi => "powerbi",
            Resource::Fabric => "fabric",
            Resource::Flow => "flow",
        }
    }
}

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
        Some(700024) if matches!(profile.credential, Credential::Federated { .. }) => {
            Some(format!(
                "the federated token has expired or is not yet valid: the platform rotates the file in {}; check that the projection is mounted and the clock is right",
                var("FEDERATED_TOKEN_FILE")
            ))
        }
        Some(700027) | Some(700023) | Some(700024) => Some(format!(
            "the certificate assertion was refused: upload this certificate (its public part) to the app registration's Certificates & secrets, and check the clock; the certificate comes from {}",
            var("CERTIFICATE_PATH")
        )),
        Some(700211) | Some(700212) => Some(format!(
            "no federated credential of the app matches this token's issuer or audience: in cloud `{}` the credential's audience is normally {} and the token in {} must carry it (AKS and managed identities issue it for the audience they are asked for)",
            profile.cloud.name(),
            profile.cloud.federated_audience(),
            var("FEDERATED_TOKEN_FILE")
        )),
        Some(70021) => Some(format!(
            "no federated credential of the app matches this token's issuer and subject: add one in the app registration (Certificates & secrets → Federated credentials) for the token in {}",
            var("FEDERATED_TOKEN_FILE")
        )),
        _ if matches!(profile.credential, Credential::ManagedIdentity { .. }) => Some(format!(
            "the managed identity could not get a token: check that the identity is assigned to this host and, for a user-assigned one, its client id in {}",
            var("MANAGED_IDENTITY")
        )),
        _ => None,
    };
    let (tenant, client_id) = match &profile.credential {
        Credential::ManagedIdentity { client_id, .. } => (
            "managed identity".to_string(),
            client_id
                .clone()
                .unwrap_or_else(|| "system-assigned".into()),
        ),
        _ => (profile.tenant_id.clone(), profile.client_id.clone()),
    };
    Error::TokenRefused {
        profile: profile.name.clone(),
        tenant,
        client_id,
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
