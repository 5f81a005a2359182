//! The reads a preflight makes, each documented by Microsoft (see `docs/preflight.md`): the
//! capacities the profile can see, a model (for `isRefreshable`), a model's data sources, and a
//! gateway data source's status. Every answer is classified, never turned into an error: a
//! preflight that cannot read something warns and lets the refresh go.

use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::auth::Resource;
use crate::error::ServiceError;
use crate::http::{Response, Retry};
use crate::ops::Context;
use crate::settings::Profile;

/// How a read ended.
pub(crate) enum Answer {
    /// 2xx.
    Ok(Response),
    /// 401 or 403 with a fresh token: the profile may not read this (admin-only, or no rights).
    Refused(ServiceError),
    /// 404: the route or the object is unknown.
    Missing(ServiceError),
    /// Any other error answer.
    Error(ServiceError),
    /// No answer (network, 5xx or throttling beyond the retry budget, no token).
    Unreachable(String),
}

/// `GET {powerbi}{path}` as `profile`, renewing the token once on 401.
pub(crate) async fn get(
    ctx: &Context<'_>,
    profile: &Profile,
    endpoint: &'static str,
    action: &str,
    path: &str,
) -> Answer {
    let url = format!("{}{path}", ctx.settings.endpoints.powerbi);
    for attempt in 0..2 {
        let token = match ctx.auth.token(profile, Resource::PowerBi).await {
            Ok(t) => t,
            Err(e) => return Answer::Unreachable(crate::redact::scrub(&e.to_string())),
        };
        let sent = ctx
            .http
            .send(endpoint, action, Retry::Idempotent, || {
                ctx.http
                    .client()
                    .request(Method::GET, &url)
                    .bearer_auth(token.expose_secret())
            })
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Answer::Unreachable(crate::redact::scrub(&e.to_string())),
        };
        match response.status {
            401 if attempt == 0 => ctx.auth.invalidate(profile, Resource::PowerBi),
            401 | 403 => return Answer::Refused(response.service_error()),
            404 => return Answer::Missing(response.service_error()),
            s if (200..300).contains(&s) => return Answer::Ok(response),
            _ => return Answer::Error(response.service_error()),
        }
    }
    Answer::Unreachable("no answer".into())
}

/// An OData list.
#[derive(Deserialize)]
pub(crate) struct List<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

/// A capacity (`GET /capacities`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Capacity {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
}

/// A model (`GET /groups/{g}/datasets/{d}`), for `isRefreshable`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Model {
    #[serde(default)]
    pub is_refreshable: Option<bool>,
}

/// A data source of a model (`GET /groups/{g}/datasets/{d}/datasources`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DataSource {
    #[serde(default)]
    pub datasource_type: Option<String>,
    #[serde(default)]
    pub datasource_id: Option<String>,
    #[serde(default)]
    pub gateway_id: Option<String>,
    /// An object in the current reference, a JSON string in older answers.
    #[serde(default)]
    pub connection_details: Option<serde_json::Value>,
}

impl DataSource {
    /// `Sql MyServer/MyDatabase`: the type and the connection's main parts (never a password:
    /// connection details carry none).
    pub(crate) fn describe(&self) -> String {
        let details = match &self.connection_details {
            Some(serde_json::Value::String(text)) => serde_json::from_str(text).ok(),
            other => other.clone(),
        };
        let parts: Vec<String> = details
            .as_ref()
            .and_then(|d| d.as_object())
            .map(|o| {
                ["server", "database", "url", "path", "domain", "account"]
                    .iter()
                    .filter_map(|k| o.get(*k).and_then(|v| v.as_str()).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let kind = self.datasource_type.as_deref().unwrap_or("data source");
        if parts.is_empty() {
            kind.to_string()
        } else {
            format!("{kind} {}", parts.join("/"))
        }
    }
}
