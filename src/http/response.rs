//! A response read whole, and what the service said in it: its error envelopes, and whether a
//! refusal is the capacity's (surge protection, overload) rather than API throttling.

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use super::body;
use crate::error::{Error, ServiceError};

/// The code a capacity refuses new work with when it is overloaded or its surge protection is
/// active (Microsoft Learn, "Capacity limit exceeded" troubleshooting). Third-party Fabric clients
/// report it on HTTP 429, the status of API throttling too (`RequestBlocked`): only the body
/// tells them apart. UNVERIFIED: the status, and whether a `Retry-After` comes with it.
pub const CAPACITY_LIMIT_EXCEEDED: &str = "CapacityLimitExceeded";

/// A fully read response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    }

    /// The body as JSON, or an error saying which call returned what: a body that is not JSON
    /// at all is the network's or a proxy's doing (unavailable, exit 6); JSON of another shape
    /// is an API change or a pbiops bug.
    pub fn json<T: DeserializeOwned>(&self, action: &str) -> Result<T, Error> {
        serde_json::from_str(&self.body).map_err(|e| match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                Error::Unavailable {
                    action: action.to_string(),
                    attempts: 1,
                    last: format!(
                        "HTTP {}: the answer is not JSON ({})",
                        self.status,
                        body::describe_text(&self.body)
                    ),
                }
            }
            _ => Error::Rejected {
                action: action.to_string(),
                service: ServiceError {
                    status: Some(self.status),
                    code: Some("UnexpectedResponse".into()),
                    message: Some(format!("the response body could not be read: {e}")),
                    request_id: self.header("RequestId").map(String::from),
                },
                help: Some(
                    "this is a pbiops bug or an API change; please report it with the request id"
                        .into(),
                ),
            },
        })
    }

    /// Whether the capacity refused the request (`CapacityLimitExceeded` in either envelope, on
    /// any error status): no API budget is spent, so pausing every call or retrying within
    /// seconds would not help; the capacity needs minutes, and the caller decides.
    pub fn capacity_rejected(&self) -> bool {
        !self.is_success()
            && self
                .service_error()
                .code
                .is_some_and(|c| c.eq_ignore_ascii_case(CAPACITY_LIMIT_EXCEEDED))
    }

    /// What the service said, from any of its error envelopes.
    pub fn service_error(&self) -> ServiceError {
        let value: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        let text = |v: &serde_json::Value| v.as_str().map(String::from);
        // Power BI: {"error":{"code","message"}} or {"error":{"code","pbi.error":{details}}};
        // Fabric: {"errorCode","message","requestId"}; Entra ID: {"error","error_description"}.
        // `Message` (ASP.NET's casing, e.g. a 404 for an unknown route) is read like `message`.
        let err = &value["error"];
        let code = text(&err["code"])
            .or_else(|| text(&value["errorCode"]))
            .or_else(|| text(err));
        let message = text(&err["message"])
            .or_else(|| text(&err["Message"]))
            .or_else(|| text(&err["pbi.error"]["details"][0]["detail"]["value"]))
            .or_else(|| text(&value["message"]))
            .or_else(|| text(&value["Message"]))
            .or_else(|| text(&value["error_description"]))
            .or_else(|| {
                let body = self.body.trim();
                (!body.is_empty() && !body.starts_with('{'))
                    .then(|| body.chars().take(200).collect())
            })
            .map(|m| m.lines().next().unwrap_or_default().trim().to_string());
        ServiceError {
            status: Some(self.status),
            code,
            message,
            request_id: self
                .header("RequestId")
                .or_else(|| self.header("x-ms-request-id"))
                .map(String::from)
                .or_else(|| text(&value["requestId"]))
                .or_else(|| text(&value["correlation_id"])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().expect("header"));
        }
        Response {
            status,
            headers: map,
            body: body.into(),
        }
    }

    #[test]
    fn reads_every_error_envelope() {
        let pbi = response(
            400,
            r#"{"error":{"code":"InvalidRequest","message":"Another refresh request is already executing"}}"#,
            &[("RequestId", "r1")],
        );
        let e = pbi.service_error();
        assert_eq!(
            (e.code.as_deref(), e.request_id.as_deref()),
            (Some("InvalidRequest"), Some("r1"))
        );
        let pbi_error = response(
            401,
            r#"{"error":{"code":"PowerBINotAuthorizedException","pbi.error":{"code":"PowerBINotAuthorizedException","details":[{"code":"DetailsMessage","detail":{"type":1,"value":"not a member"}}]}}}"#,
            &[],
        );
        assert_eq!(
            pbi_error.service_error().message.as_deref(),
            Some("not a member")
        );
        let fabric = response(
            400,
            r#"{"requestId":"f1","errorCode":"BadRequest","message":"bad"}"#,
            &[],
        );
        let e = fabric.service_error();
        assert_eq!(
            (e.code.as_deref(), e.request_id.as_deref()),
            (Some("BadRequest"), Some("f1"))
        );
        let entra = response(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#,
            &[],
        );
        let e = entra.service_error();
        assert_eq!(e.code.as_deref(), Some("invalid_client"));
        assert_eq!(
            e.message.as_deref(),
            Some("AADSTS7000215: Invalid client secret provided.")
        );
        let html = response(502, "<html>Bad Gateway</html>", &[]);
        assert_eq!(
            html.service_error().message.as_deref(),
            Some("<html>Bad Gateway</html>")
        );
    }

    #[test]
    fn a_capacity_refusal_is_told_from_throttling_by_its_code_in_either_envelope() {
        let message =
            "Your organization's Fabric compute capacity has exceeded its limits. Try again later.";
        let pbi =
            format!(r#"{{"error":{{"code":"CapacityLimitExceeded","message":"{message}"}}}}"#);
        let fabric = format!(
            r#"{{"requestId":"r","errorCode":"CapacityLimitExceeded","message":"{message}"}}"#
        );
        assert!(response(429, &pbi, &[]).capacity_rejected());
        assert!(response(429, &fabric, &[]).capacity_rejected());
        assert!(response(400, &fabric, &[]).capacity_rejected());
        let blocked = r#"{"errorCode":"RequestBlocked","message":"Request is blocked"}"#;
        assert!(!response(429, blocked, &[("Retry-After", "5")]).capacity_rejected());
        assert!(!response(429, "", &[]).capacity_rejected());
    }
}
