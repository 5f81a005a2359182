//! Power BI REST response bodies, as `powerbi-api.md` §2 documents them.
//!
//! Every field the service may omit is optional, and unknown fields are ignored: the service
//! adds fields over time (`modelAsExtensible` enums), and a new field must not break a refresh.

use serde::Deserialize;

/// `{"value": [...]}` list wrapper.
#[derive(Debug, Deserialize)]
pub struct List<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

/// A workspace (`GET /groups`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Workspace id.
    pub id: String,
    /// Workspace name.
    pub name: String,
    /// Whether it runs on Premium / Fabric capacity (enhanced refresh needs it).
    #[serde(default)]
    pub is_on_dedicated_capacity: Option<bool>,
    /// Its capacity.
    #[serde(default)]
    pub capacity_id: Option<String>,
}

/// A semantic model (`GET /groups/{id}/datasets`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    /// Model id.
    pub id: String,
    /// Model name (not unique within a workspace).
    pub name: String,
    /// False for DirectQuery / live-connection models (and for a never-refreshed import model).
    #[serde(default)]
    pub is_refreshable: Option<bool>,
}

/// One entry of the refresh history (`GET …/refreshes`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Refresh {
    /// The refresh id (not the integer `id`).
    #[serde(default)]
    pub request_id: Option<String>,
    /// `Scheduled`, `OnDemand`, `ViaApi`, `ViaEnhancedApi`, …
    #[serde(default)]
    pub refresh_type: Option<String>,
    /// Start time.
    #[serde(default)]
    pub start_time: Option<String>,
    /// End time; absent while running.
    #[serde(default)]
    pub end_time: Option<String>,
    /// `Unknown` while running, then `Completed`, `Failed`, `Cancelled`, `Disabled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Enhanced refreshes only.
    #[serde(default)]
    pub extended_status: Option<String>,
    /// A *string* holding JSON with `errorCode` / `errorDescription`.
    #[serde(default)]
    pub service_exception_json: Option<String>,
    /// Its attempts, once it ended (a running entry has no such key).
    #[serde(default)]
    pub refresh_attempts: Vec<RefreshAttempt>,
}

/// Execution details of an enhanced refresh (`GET …/refreshes/{id}`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RefreshDetail {
    /// Start time (often without `Z`).
    #[serde(default)]
    pub start_time: Option<String>,
    /// End time.
    #[serde(default)]
    pub end_time: Option<String>,
    /// Refresh type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `Unknown`, `Completed`, `Failed`, `Disabled`, `Cancelled`.
    #[serde(default)]
    pub status: Option<String>,
    /// `NotStarted`, `InProgress`, `Completed`, `TimedOut`, `Failed`, `Disabled`, `Cancelled`.
    #[serde(default)]
    pub extended_status: Option<String>,
    /// Per table / partition status.
    #[serde(default)]
    pub objects: Vec<RefreshObjectStatus>,
    /// Engine messages.
    #[serde(default)]
    pub messages: Vec<EngineMessage>,
    /// Attempts, each possibly with its `serviceExceptionJson`.
    #[serde(default)]
    pub refresh_attempts: Vec<RefreshAttempt>,
}

/// A table or partition of an enhanced refresh, with its status.
#[derive(
    Debug, Clone, Deserialize, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct RefreshObjectStatus {
    /// Table.
    #[serde(default)]
    pub table: Option<String>,
    /// Partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Status.
    #[serde(default)]
    pub status: Option<String>,
}

/// An engine message of an enhanced refresh.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EngineMessage {
    /// Hex code, e.g. `0xC11C0020`.
    #[serde(default)]
    pub code: Option<String>,
    /// Text.
    #[serde(default)]
    pub message: Option<String>,
    /// `Error` or `Warning`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// One attempt of a refresh.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RefreshAttempt {
    /// When the attempt began.
    #[serde(default)]
    pub start_time: Option<String>,
    /// A string holding JSON, on failure.
    #[serde(default)]
    pub service_exception_json: Option<String>,
}

impl Refresh {
    /// Whether it is an enhanced refresh: the only kind the API follows by id and can cancel.
    pub fn is_enhanced(&self) -> bool {
        matches!(
            self.refresh_type.as_deref(),
            Some("ViaEnhancedApi" | "ReliableProcessing")
        )
    }
}

/// `errorCode` and `errorDescription` from a `serviceExceptionJson` string.
pub fn service_exception(json: &str) -> (Option<String>, Option<String>) {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let text = |k: &str| value[k].as_str().map(String::from);
    (
        text("errorCode"),
        text("errorDescription").or_else(|| text("errorMessage")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_entries_parse_as_the_service_sends_them() {
        let body = r#"{"@odata.context":"x","value":[{"requestId":"9399bb89","id":1,"refreshType":"ViaApi",
            "startTime":"2017-06-13T09:25:43.153Z","status":"Failed","newField":1,
            "serviceExceptionJson":"{\"errorCode\":\"ModelRefreshFailed_CredentialsNotSpecified\"}"}]}"#;
        let list: List<Refresh> = serde_json::from_str(body).expect("parses");
        let r = &list.value[0];
        assert_eq!(r.request_id.as_deref(), Some("9399bb89"));
        assert_eq!(r.end_time, None);
        let (code, message) = service_exception(r.service_exception_json.as_deref().expect("json"));
        assert_eq!(
            code.as_deref(),
            Some("ModelRefreshFailed_CredentialsNotSpecified")
        );
        assert_eq!(message, None);
    }

    #[test]
    fn execution_details_parse_with_objects_and_messages() {
        let body = r#"{"startTime":"2021-12-10T08:39:28.517","endTime":"2021-12-10T08:39:30.04","type":"Full",
            "commitMode":"PartialBatch","status":"Failed","extendedStatus":"Failed","numberOfAttempts":0,
            "objects":[{"table":"Sales","partition":"2026","status":"Completed"}],
            "messages":[{"message":"RefreshApiRequest … must have the property 'CommitMode'","type":"Error"}]}"#;
        let d: RefreshDetail = serde_json::from_str(body).expect("parses");
        assert_eq!(d.extended_status.as_deref(), Some("Failed"));
        assert_eq!(d.objects[0].partition.as_deref(), Some("2026"));
        assert_eq!(d.messages[0].kind.as_deref(), Some("Error"));
    }
}
