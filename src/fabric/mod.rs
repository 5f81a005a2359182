//! The Fabric REST client (`powerbi-api.md` §3): workspaces and items, with its own token.
//!
//! Fabric wants a Fabric-audience token, never a Power BI one; its errors are flat
//! (`{"errorCode","message","requestId"}`) and its lists page with `continuationUri`, an
//! absolute URL that is followed as given (the emulator rewrites it to itself).

use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::{Auth, Resource};
use crate::error::Error;
use crate::http::{Http, Response, Retry};
use crate::settings::Profile;

pub mod jobs;

/// A Fabric list page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(default)]
    continuation_uri: Option<String>,
}

/// A Fabric workspace.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Workspace id (the same as the Power BI group id).
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Capacity, when on one.
    #[serde(default)]
    pub capacity_id: Option<String>,
}

/// Pages are bounded so a misbehaving `continuationUri` cannot loop forever.
const MAX_PAGES: usize = 1000;

/// A Fabric client acting as one profile.
#[derive(Clone)]
pub struct Fabric<'a> {
    http: &'a Http,
    auth: &'a Auth<'a>,
    profile: &'a Profile,
    base: &'a str,
}

impl<'a> Fabric<'a> {
    /// A client for `base` (e.g. `https://api.fabric.microsoft.com/v1`) acting as `profile`.
    pub fn new(http: &'a Http, auth: &'a Auth<'a>, profile: &'a Profile, base: &'a str) -> Self {
        Fabric {
            http,
            auth,
            profile,
            // A profile in another cloud than the settings' carries its own hosts.
            base: profile
                .endpoints
                .as_ref()
                .map_or(base, |e| e.fabric.as_str()),
        }
    }

    /// Sends one call with a Fabric token; a 401 drops the token and retries once.
    async fn send(
        &self,
        body: Option<&serde_json::Value>,
        endpoint: &'static str,
        action: &str,
        retry: Retry,
        method: Method,
        url: &str,
    ) -> Result<Response, Error> {
        for attempt in 0..2 {
            let token = self.auth.token(self.profile, Resource::Fabric).await?;
            let response = self
                .http
                .send(endpoint, action, retry, || {
                    let req = self
                        .http
                        .client()
                        .request(method.clone(), url)
                        .bearer_auth(token.expose_secret());
                    match body {
                        Some(b) => req.json(b),
                        None => req,
                    }
                })
                .await?;
            match response.status {
                // An expired token may come back as 403 as well as 401: renew it once either way.
                401 | 403 if attempt == 0 => self.auth.invalidate(self.profile, Resource::Fabric),
                401 | 403 => {
                    return Err(Error::AccessRefused {
                        action: action.to_string(),
                        service: response.service_error(),
                        help: "enable the tenant setting \"Service principals can use Fabric APIs\" for this principal, and give it a workspace role (Member or higher to run jobs)".into(),
                    });
                }
                _ => return Ok(response),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// All pages of a list.
    async fn list<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        action: &str,
        path: &str,
    ) -> Result<Vec<T>, Error> {
        let mut url = format!("{}{path}", self.base);
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = self
                .send(None, endpoint, action, Retry::Idempotent, Method::GET, &url)
                .await?;
            if !response.is_success() {
                return Err(Error::Rejected {
                    action: action.to_string(),
                    service: response.service_error(),
                    help: None,
                });
            }
            let page: Page<T> = response.json(action)?;
            items.extend(page.value);
            match page.continuation_uri {
                Some(next) if !next.is_empty() => url = next,
                _ => return Ok(items),
            }
        }
        Ok(items)
    }

    /// The workspaces the profile can see.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>, Error> {
        self.list("fabric.workspaces", "list Fabric workspaces", "/workspaces")
            .await
    }
}
