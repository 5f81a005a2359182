//! The Power BI and Entra ID wire format, written from Microsoft's documentation
//! (`reference/powerbi-api.md` §1, §2) and never from the client's types, so a field-name mistake
//! on either side shows up as a failing test instead of being mirrored.

use crate::refresh::Refresh;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

/// `Content-Type` of every JSON answer, as the services send it.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The `RequestId` header: on every response, and the refresh id on a refresh POST.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("requestid");

/// A fresh GUID.
pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A JSON response with the services' content type.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        )],
        bytes,
    )
        .into_response()
}

/// The simple Power BI error envelope: `{"error":{"code","message"}}`.
pub(crate) fn pbi_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message: String = message.into();
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// 400 `InvalidRequest`.
pub(crate) fn invalid_request(message: impl Into<String>) -> Response {
    pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// 404 `ItemNotFound`.
pub(crate) fn item_not_found(message: impl Into<String>) -> Response {
    pbi_error(StatusCode::NOT_FOUND, "ItemNotFound", message)
}

/// 401 for a missing, unknown, expired or revoked token.
pub(crate) fn token_expired() -> Response {
    pbi_error(
        StatusCode::UNAUTHORIZED,
        "TokenExpired",
        "Access token has expired, resubmit with a new access token",
    )
}

/// 401 `PowerBINotAuthorizedException` in the `pbi.error` form (wrong audience, not a member).
pub(crate) fn not_authorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"error": {
            "code": "PowerBINotAuthorizedException",
            "pbi.error": {
                "code": "PowerBINotAuthorizedException",
                "parameters": {},
                "details": [],
                "exceptionCulprit": 1
            }
        }}),
    )
}

/// `http://<Host>`: absolute URLs always point back at the emulator.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let https = headers
        .get(SCHEME_HEADER)
        .is_some_and(|v| v.as_bytes() == b"https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// Set on every request the HTTPS listener hands over, so links use `https://`.
pub(crate) const SCHEME_HEADER: &str = "x-pbiops-emulator-scheme";

/// History timestamps: RFC 3339 UTC with milliseconds and `Z`.
pub(crate) fn history_time(at: Timestamp) -> String {
    format!("{}Z", detail_time(at))
}

/// History timestamps as recorded: up to 7 digits, trailing zeros (and a bare dot) trimmed,
/// `Z` (`…51.96Z`, `…51Z`), so text order is not time order (quirk `trimmedTimes`).
pub(crate) fn trimmed_time(at: Timestamp) -> String {
    let digits = format!("{:07}", at.subsec_nanosecond().max(0) / 100);
    let digits = digits.trim_end_matches('0');
    let dot = if digits.is_empty() { "" } else { "." };
    format!("{}{dot}{digits}Z", at.strftime("%Y-%m-%dT%H:%M:%S"))
}

/// Execution-details timestamps: like the service's examples, no offset.
pub(crate) fn detail_time(at: Timestamp) -> String {
    format!(
        "{}.{:03}",
        at.strftime("%Y-%m-%dT%H:%M:%S"),
        at.subsec_millisecond().max(0)
    )
}

/// Outer middleware: every response carries `RequestId` and exposes it, as the service does.
pub(crate) async fn common_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(&REQUEST_ID) {
        if let Ok(value) = HeaderValue::from_str(&new_guid()) {
            headers.insert(REQUEST_ID.clone(), value);
        }
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("RequestId"),
    );
    response
}

/// A `RefreshAttempt` (history and execution details).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefreshAttempt {
    attempt_id: u32,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_exception_json: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Its one attempt, started when it got a capacity slot (none while it waits in the queue, or if
/// it was cancelled there).
fn attempts(refresh: &Refresh, time: fn(Timestamp) -> String) -> Vec<RefreshAttempt> {
    let Some(began) = refresh.began else {
        return Vec::new();
    };
    vec![RefreshAttempt {
        attempt_id: 1,
        start_time: time(began),
        end_time: refresh.end.map(time),
        service_exception_json: refresh.service_exception_json(),
        kind: "Data",
    }]
}

/// A `Refresh` history entry.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryItem {
    request_id: String,
    id: u64,
    refresh_type: String,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_exception_json: Option<String>,
    /// Absent while the refresh runs (the real history's running entry has no such key).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_attempts: Option<Vec<RefreshAttempt>>,
}

impl HistoryItem {
    /// The entry of `refresh`, its times written by `time`.
    pub fn new(refresh: &Refresh, time: fn(Timestamp) -> String) -> HistoryItem {
        HistoryItem {
            request_id: refresh.request_id.clone(),
            id: refresh.number,
            refresh_type: refresh.refresh_type.clone(),
            start_time: time(refresh.start),
            end_time: refresh.end.map(time),
            status: refresh.status(),
            extended_status: refresh.extended_status(),
            service_exception_json: refresh.service_exception_json(),
            refresh_attempts: refresh.end.map(|_| attempts(refresh, time)),
        }
    }
}

#[derive(Serialize)]
struct ObjectStatus {
    table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<String>,
    status: &'static str,
}

#[derive(Serialize)]
struct Message {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    message: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// A `DatasetRefreshDetail` (execution details of an enhanced refresh).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshDetail {
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    commit_mode: String,
    status: &'static str,
    extended_status: &'static str,
    current_refresh_type: String,
    number_of_attempts: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    objects: Vec<ObjectStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    messages: Vec<Message>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    refresh_attempts: Vec<RefreshAttempt>,
}

impl RefreshDetail {
    /// `None` for a standard refresh, which has no execution details.
    pub fn new(refresh: &Refresh) -> Option<RefreshDetail> {
        let enhanced = refresh.enhanced.as_ref()?;
        let extended = refresh.extended_status()?;
        let started = extended != "NotStarted";
        Some(RefreshDetail {
            start_time: detail_time(refresh.start),
            end_time: refresh.end.map(detail_time),
            kind: enhanced.kind.clone(),
            commit_mode: enhanced.commit_mode.clone(),
            status: refresh.status(),
            extended_status: extended,
            current_refresh_type: enhanced.kind.clone(),
            number_of_attempts: u32::from(started),
            objects: enhanced
                .objects
                .iter()
                .map(|(table, partition)| ObjectStatus {
                    table: table.clone(),
                    partition: partition.clone(),
                    status: extended,
                })
                .collect(),
            messages: refresh
                .messages
                .iter()
                .map(|m| Message {
                    code: m.code.clone(),
                    message: m.message.clone(),
                    kind: "Error",
                })
                .collect(),
            refresh_attempts: if started {
                attempts(refresh, detail_time)
            } else {
                Vec::new()
            },
        })
    }
}

/// An OData collection: `{"@odata.context": …, "@odata.count"?: …, "value": […]}`.
#[derive(Serialize)]
pub(crate) struct Collection<T> {
    #[serde(rename = "@odata.context")]
    pub context: String,
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    pub value: Vec<T>,
}

/// One OData entity: its fields after `"@odata.context"`.
#[derive(Serialize)]
pub(crate) struct Entity<T> {
    #[serde(rename = "@odata.context")]
    pub context: String,
    #[serde(flatten)]
    pub item: T,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_times_drop_trailing_zeros_and_a_bare_dot() {
        let at: Timestamp = "2026-11-24T03:21:25.9600000Z".parse().unwrap();
        assert_eq!(trimmed_time(at), "2026-11-24T03:21:25.96Z");
        let at: Timestamp = "2026-11-24T03:21:25Z".parse().unwrap();
        assert_eq!(trimmed_time(at), "2026-11-24T03:21:25Z");
        let at: Timestamp = "2026-11-24T03:21:25.3365916Z".parse().unwrap();
        assert_eq!(trimmed_time(at), "2026-11-24T03:21:25.3365916Z");
    }

    #[test]
    fn timestamps_have_milliseconds_and_only_history_has_z() {
        let at: Timestamp = "2026-11-24T03:21:25.1234Z".parse().unwrap();
        assert_eq!(history_time(at), "2026-11-24T03:21:25.123Z");
        assert_eq!(detail_time(at), "2026-11-24T03:21:25.123");
    }
}
