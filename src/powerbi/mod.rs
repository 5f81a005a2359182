//! The Power BI REST client: workspaces, semantic models, refreshes (`powerbi-api.md` §2).
//!
//! Every call carries a Power BI token for one profile. A 401 drops the token and retries once
//! (the token may have been revoked or expired early); a second refusal is reported with the
//! usual causes: the service principal is not a workspace member, or the tenant setting that
//! lets service principals use the APIs is off.

pub mod dataflows;
pub mod reports;
pub mod wire;

use reqwest::Method;
use secrecy::ExposeSecret;

use crate::auth::{Auth, Resource};
use crate::error::{Error, ServiceError};
use crate::http::{Http, Response, Retry};
use crate::settings::Profile;
use crate::task::RefreshBody;
use wire::{Dataset, Group, List, Refresh, RefreshDetail};

/// Why a refresh POST did not simply succeed.
#[derive(Debug)]
pub enum Trigger {
    /// Accepted, with the refresh id.
    Accepted(String),
    /// The service said another refresh of the model is running (400 or 409).
    AlreadyRunning(ServiceError),
    /// The outcome is unknown (5xx or a lost response): the refresh may or may not have started.
    Ambiguous(String),
    /// The capacity refused it (`CapacityLimitExceeded`: surge protection or an overload); nothing
    /// started.
    CapacityRejected(ServiceError),
}

/// One API call: what it is (for metrics and errors) and what to send.
struct Call<'c> {
    endpoint: &'static str,
    action: &'c str,
    retry: Retry,
    method: Method,
    path: &'c str,
    query: &'c [(&'c str, String)],
    body: Option<&'c serde_json::Value>,
}

/// A Power BI client acting as one profile.
#[derive(Clone)]
pub struct PowerBi<'a> {
    http: &'a Http,
    auth: &'a Auth<'a>,
    profile: &'a Profile,
    base: &'a str,
}

const ACCESS_HELP: &str = "add the service principal to the workspace as Member or Contributor, \
and check that the tenant setting \"Service principals can use Fabric APIs\" is on for it";

impl<'a> PowerBi<'a> {
    /// A client for `base` (e.g. `https://api.powerbi.com/v1.0/myorg`) acting as `profile`.
    pub fn new(http: &'a Http, auth: &'a Auth<'a>, profile: &'a Profile, base: &'a str) -> Self {
        PowerBi {
            http,
            auth,
            profile,
            // A profile in another cloud than the settings' carries its own hosts.
            base: profile
                .endpoints
                .as_ref()
                .map_or(base, |e| e.powerbi.as_str()),
        }
    }

    async fn call(&self, call: Call<'_>) -> Result<Response, Error> {
        let Call {
            endpoint,
            action,
            retry,
            method,
            path,
            query,
            body,
        } = call;
        let url = format!("{}{path}", self.base);
        for attempt in 0..2 {
            let token = self.auth.token(self.profile, Resource::PowerBi).await?;
            let response = self
                .http
                .send(endpoint, action, retry, || {
                    let mut req = self
                        .http
                        .client()
                        .request(method.clone(), &url)
                        .bearer_auth(token.expose_secret());
                    if !query.is_empty() {
                        req = req.query(query);
                    }
                    match body {
                        Some(b) => req.json(b),
                        // An explicit empty body: some gateways refuse a POST without Content-Length.
                        None if method == Method::POST => req.header("Content-Length", "0"),
                        None => req,
                    }
                })
                .await?;
            match response.status {
                // An expired token may come back as 403 as well as 401: renew it once either way.
                401 | 403 if attempt == 0 => {
                    tracing::info!(
                        endpoint,
                        "access token refused (HTTP {}); acquiring a new one and retrying once",
                        response.status
                    );
                    self.auth.invalidate(self.profile, Resource::PowerBi);
                }
                401 | 403 => {
                    return Err(Error::AccessRefused {
                        action: action.to_string(),
                        service: response.service_error(),
                        help: ACCESS_HELP.into(),
                    });
                }
                _ => return Ok(response),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        action: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        let response = self
            .call(Call {
                endpoint,
                action,
                retry: Retry::Idempotent,
                method: Method::GET,
                path,
                query,
                body: None,
            })
            .await?;
        if !response.is_success() {
            return Err(failure(action, &response));
        }
        response.json(action)
    }

    /// Workspaces the profile can see, optionally filtered with OData `$filter`.
    pub async fn groups(&self, filter: Option<&str>) -> Result<Vec<Group>, Error> {
        let mut query = vec![("$top", "5000".to_string())];
        if let Some(f) = filter {
            query.push(("$filter", f.to_string()));
        }
        let list: List<Group> = self
            .get("groups", "list workspaces", "/groups", &query)
            .await?;
        Ok(list.value)
    }

    /// The semantic models of a workspace.
    pub async fn datasets(&self, group: &Group) -> Result<Vec<Dataset>, Error> {
        let action = format!(
            "list the semantic models of workspace {} ({})",
            group.name, group.id
        );
        let list: List<Dataset> = self
            .get(
                "datasets",
                &action,
                &format!("/groups/{}/datasets", group.id),
                &[],
            )
            .await?;
        Ok(list.value)
    }

    /// Triggers a refresh. Retried only on 429: anything ambiguous is the caller's to check.
    pub async fn trigger_refresh(
        &self,
        group_id: &str,
        dataset_id: &str,
        body: &RefreshBody,
    ) -> Result<Trigger, Error> {
        let action =
            format!("trigger a refresh of semantic model {dataset_id} in workspace {group_id}");
        let json = match body {
            RefreshBody::Standard {
                notify_option: None,
            } => None,
            RefreshBody::Standard {
                notify_option: Some(n),
            } => Some(serde_json::json!({ "notifyOption": n })),
            RefreshBody::Enhanced(e) => Some(serde_json::to_value(e).unwrap_or_default()),
        };
        let path = format!("/groups/{group_id}/datasets/{dataset_id}/refreshes");
        let response = match self
            .call(Call {
                endpoint: "refresh.post",
                action: &action,
                retry: Retry::ThrottleOnly,
                method: Method::POST,
                path: &path,
                query: &[],
                body: json.as_ref(),
            })
            .await
        {
            Err(Error::Unavailable { last, .. }) => return Ok(Trigger::Ambiguous(last)),
            other => other?,
        };
        if response.is_success() {
            // The refresh id: last segment of Location, else x-ms-request-id, else RequestId.
            let id = response
                .header("Location")
                .and_then(|l| l.trim_end_matches('/').rsplit('/').next().map(String::from))
                .or_else(|| response.header("x-ms-request-id").map(String::from))
                .or_else(|| response.header("RequestId").map(String::from));
            return match id {
                Some(id) => Ok(Trigger::Accepted(id)),
                None => Ok(Trigger::Ambiguous(
                    "the service accepted the refresh but returned no id".into(),
                )),
            };
        }
        if response.capacity_rejected() {
            return Ok(Trigger::CapacityRejected(response.service_error()));
        }
        if response.status >= 500 {
            return Ok(Trigger::Ambiguous(response.service_error().to_string()));
        }
        let service = response.service_error();
        let busy = response.status == 409
            || (response.status == 400
                && service
                    .message
                    .as_deref()
                    .is_some_and(|m| m.to_ascii_lowercase().contains("already executing")));
        if busy {
            return Ok(Trigger::AlreadyRunning(service));
        }
        Err(failure(&action, &response))
    }

    /// The refresh history, newest first (the service keeps 20–60 entries).
    pub async fn refresh_history(
        &self,
        group_id: &str,
        dataset_id: &str,
        top: u32,
    ) -> Result<Vec<Refresh>, Error> {
        let action = format!(
            "read the refresh history of semantic model {dataset_id} in workspace {group_id}"
        );
        let path = format!("/groups/{group_id}/datasets/{dataset_id}/refreshes");
        let list: List<Refresh> = self
            .get(
                "refresh.history",
                &action,
                &path,
                &[("$top", top.to_string())],
            )
            .await?;
        let mut refreshes = list.value;
        // Newest first is observed, not documented: sort rather than trust the order.
        refreshes.sort_by(|a, b| b.start_time.cmp(&a.start_time));
        Ok(refreshes)
    }

    /// Execution details of an enhanced refresh; `None` when the service does not know the id.
    pub async fn refresh_details(
        &self,
        group_id: &str,
        dataset_id: &str,
        refresh_id: &str,
    ) -> Result<Option<RefreshDetail>, Error> {
        let action = format!("read enhanced refresh {refresh_id} of semantic model {dataset_id}");
        let path = format!("/groups/{group_id}/datasets/{dataset_id}/refreshes/{refresh_id}");
        let response = self
            .call(Call {
                endpoint: "refresh.get",
                action: &action,
                retry: Retry::Idempotent,
                method: Method::GET,
                path: &path,
                query: &[],
                body: None,
            })
            .await?;
        match response.status {
            404 => Ok(None),
            s if (200..300).contains(&s) => response.json(&action).map(Some),
            _ => Err(failure(&action, &response)),
        }
    }

    /// Cancels an enhanced refresh.
    pub async fn cancel_refresh(
        &self,
        group_id: &str,
        dataset_id: &str,
        refresh_id: &str,
    ) -> Result<(), Error> {
        let action = format!(
            "cancel refresh {refresh_id} of semantic model {dataset_id} in workspace {group_id}"
        );
        let path = format!("/groups/{group_id}/datasets/{dataset_id}/refreshes/{refresh_id}");
        // Cancelling twice is harmless, so the DELETE may be retried like a read.
        let response = self
            .call(Call {
                endpoint: "refresh.delete",
                action: &action,
                retry: Retry::Idempotent,
                method: Method::DELETE,
                path: &path,
                query: &[],
                body: None,
            })
            .await?;
        if response.is_success() {
            Ok(())
        } else {
            Err(failure(&action, &response))
        }
    }
}

/// Maps a non-success response to an error, with hints for the documented causes.
fn failure(action: &str, response: &Response) -> Error {
    let service = response.service_error();
    if response.status == 404 {
        return Error::Gone {
            action: action.to_string(),
            service,
        };
    }
    let message = service
        .message
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let help = if message.contains("exceeded limit") || message.contains("24 hours") {
        Some("shared-capacity models allow 8 refreshes per day, scheduled ones included; wait for the oldest of them to be 24 hours old, or move the workspace to a Premium / Fabric capacity".to_string())
    } else if response.status == 400 && message.contains("refreshable") {
        Some("DirectQuery and live-connection models cannot be refreshed".to_string())
    } else {
        None
    };
    Error::Rejected {
        action: action.to_string(),
        service,
        help,
    }
}
