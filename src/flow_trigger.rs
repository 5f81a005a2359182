//! Power Automate / Logic Apps "When an HTTP request is received" triggers (`powerbi-api.md` §6).
//!
//! The URL is a credential: its `sig` query parameter is the only authorization, so it comes from
//! the environment (`PBIOPS_FLOW_<NAME>_URL`), never from the task, and is never printed — errors
//! name the flow, not the URL. A trigger is not idempotent: a 5xx or a lost response is reported
//! as ambiguous to the caller, never retried blindly.

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, ServiceError};
use crate::http::{Http, Retry};

/// What the trigger call returned.
#[derive(Debug)]
pub enum Fired {
    /// 200 or 202: the flow run started.
    Accepted {
        /// `x-ms-workflow-run-id`, when the service sent one.
        run_id: Option<String>,
        /// The HTTP status (flows answer 202, or 200 with a Response action).
        status: u16,
    },
    /// 5xx or no response: the run may or may not have started.
    Ambiguous(String),
}

/// Posts `body` to flow `name`'s trigger URL.
pub async fn fire(
    http: &Http,
    name: &str,
    url: &SecretString,
    variable: &str,
    body: &serde_json::Value,
) -> Result<Fired, Error> {
    let action = format!("trigger flow `{name}`");
    let response = match http
        .send("flow.trigger", &action, Retry::ThrottleOnly, || {
            http.client().post(url.expose_secret()).json(body)
        })
        .await
    {
        Err(Error::Unavailable { last, .. }) => return Ok(Fired::Ambiguous(last)),
        other => other?,
    };
    if response.is_success() {
        return Ok(Fired::Accepted {
            run_id: response.header("x-ms-workflow-run-id").map(String::from),
            status: response.status,
        });
    }
    if response.status >= 500 {
        return Ok(Fired::Ambiguous(response.service_error().to_string()));
    }
    let mut service = response.service_error();
    if service.request_id.is_none() {
        service.request_id = response
            .header("x-ms-correlation-id")
            .or_else(|| response.header("x-ms-request-id"))
            .map(String::from);
    }
    Err(refusal(action, service, response.status, variable))
}

fn refusal(action: String, service: ServiceError, status: u16, variable: &str) -> Error {
    match (status, service.code.as_deref()) {
        (401, Some("DirectApiInvalidAuthorizationSignature")) | (401, None) => {
            Error::AccessRefused {
                action,
                service,
                help: format!(
                    "the URL's signature (sig) is not valid: the trigger URL was regenerated or mistyped; copy the HTTP POST URL from the flow's trigger into {variable}"
                ),
            }
        }
        (401, Some("DirectApiAuthorizationRequired")) => Error::AccessRefused {
            action,
            service,
            help: format!(
                "the URL carries no signature: copy the whole HTTP POST URL (with its sp, sv and sig parameters) into {variable}"
            ),
        },
        (401 | 403, _) => Error::AccessRefused {
            action,
            service,
            help: format!("the flow refused the call; check the URL in {variable}"),
        },
        (404, _) => Error::Gone { action, service },
        _ => Error::Rejected {
            action,
            service,
            help: Some("the flow refused the request body; check the trigger's JSON schema".into()),
        },
    }
}
