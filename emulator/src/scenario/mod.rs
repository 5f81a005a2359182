//! The scenario file: the tenants, clients, workspaces, models and refresh history the emulator
//! starts with, and how each model's refreshes behave.
//!
//! The format is part of the emulator's contract (see the crate's README), so unknown fields are
//! rejected and every error names the offending field: a typo in a scenario must fail loudly
//! instead of silently running a different test.

mod duration;
mod fleet;
mod identity;
mod items;
mod quirks;
mod time;

pub use duration::DurationSpec;
pub use fleet::{
    Capacity, FLEET_CLIENT_ID, FLEET_SECRET, FLEET_TENANT, Fleet, RateLimit, Rejecting,
};
pub use identity::{Certificate, ClientApp, FederatedCredential, ManagedIdentity, Tenant};
pub use items::{
    Dataflow, DataflowBehaviour, DataflowRef, FabricItem, FailureReason, Flow, FlowAction,
    JobBehaviour, JobOutcome, Report, ReportType, SeededStatus, SeededTransaction,
    TransactionOutcome,
};
pub use quirks::Quirks;

/// A Microsoft cloud, as the scenario's `cloud` and `--cloud` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// The public cloud (the default).
    #[default]
    Public,
    /// US Government Community Cloud (GCC).
    Usgov,
    /// GCC High.
    Usgovhigh,
    /// US Department of Defense.
    Dod,
    /// China (21Vianet).
    China,
}

impl Cloud {
    /// Reads `public`, `usgov`, `usgovhigh`, `dod` or `china`.
    pub fn parse(name: &str) -> Option<Cloud> {
        serde_json::from_value(serde_json::Value::String(name.to_ascii_lowercase())).ok()
    }

    /// Whether this is the public cloud (the default, left out when serialized).
    pub fn is_public(&self) -> bool {
        *self == Cloud::Public
    }
}
pub(crate) use time::{check_duration, check_spec, resolve_time, seconds};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A whole emulator setup: identities, workspaces, models and their refresh behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// `expires_in` of every issued token, and its lifetime on the emulator's clock.
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    /// Start of every issued access token (the rest is random).
    #[serde(default = "default_token_prefix")]
    pub token_prefix: String,
    /// Entra ID tenants and their app registrations.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// Managed identities served by the IMDS and App Service token endpoints.
    #[serde(default)]
    pub managed_identities: Vec<ManagedIdentity>,
    /// The secret the App Service endpoint expects in `X-IDENTITY-HEADER`; absent: every call
    /// to that endpoint is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_header: Option<String>,
    /// Power BI workspaces (groups); the same workspaces in Fabric.
    #[serde(default)]
    pub workspaces: Vec<Workspace>,
    /// Power Automate flows with HTTP triggers.
    #[serde(default)]
    pub flows: Vec<Flow>,
    /// Fabric list page size (`continuationToken` paging).
    #[serde(default = "default_page_size")]
    pub fabric_page_size: usize,
    /// Fabric refuses service principals for Dataflow jobs (every tenant).
    #[serde(default)]
    pub refuse_service_principals_for_dataflow_jobs: bool,
    /// The Microsoft cloud emulated: its token endpoint issues tokens only for that cloud's
    /// scopes, and the APIs accept only that cloud's audiences (`--cloud` overrides it).
    #[serde(default, skip_serializing_if = "Cloud::is_public")]
    pub cloud: Cloud,
    /// Capacities with a refresh concurrency limit (workspaces name them by `capacityId`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacities: Vec<Capacity>,
    /// Per-client rate limit over the Power BI and Fabric routes; absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Seed of every random draw (durations, generated history).
    #[serde(default)]
    pub seed: u64,
    /// Emulator seconds per real second (benchmarks compress time); default 1.
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
    /// Real-service shapes the emulator produces only when asked.
    #[serde(default, skip_serializing_if = "is_default")]
    pub quirks: Quirks,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn default_time_scale() -> f64 {
    1.0
}

fn default_page_size() -> usize {
    100
}

fn default_token_lifetime() -> u64 {
    3599
}

fn default_token_prefix() -> String {
    "emu".to_owned()
}

/// A Power BI workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workspace {
    /// Workspace (group) GUID.
    pub id: String,
    /// Workspace name.
    pub name: String,
    /// `isOnDedicatedCapacity`; `false` means shared (Pro) capacity and its limits.
    #[serde(default = "default_true")]
    pub dedicated_capacity: bool,
    /// `capacityId` of a dedicated workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_id: Option<String>,
    /// `isReadOnly` as the caller sees it.
    #[serde(default)]
    pub is_read_only: bool,
    /// Client ids that are members; absent means every client is a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    /// Semantic models in the workspace.
    #[serde(default)]
    pub datasets: Vec<Dataset>,
    /// Power BI (Gen1) dataflows.
    #[serde(default)]
    pub dataflows: Vec<Dataflow>,
    /// Reports.
    #[serde(default)]
    pub reports: Vec<Report>,
    /// Fabric items other than models and reports (e.g. Dataflow Gen2).
    #[serde(default)]
    pub items: Vec<FabricItem>,
}

pub(crate) fn default_true() -> bool {
    true
}

/// A semantic model (dataset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dataset {
    /// Dataset GUID, unique across the scenario.
    pub id: String,
    /// Model name; names need not be unique.
    pub name: String,
    /// `isRefreshable`; `false` for DirectQuery / LiveConnection models.
    #[serde(default = "default_true")]
    pub is_refreshable: bool,
    /// `configuredBy` of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_by: Option<String>,
    /// `createdDate` (absolute or relative time); defaults to 30 days before start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<String>,
    /// How refreshes triggered through the API behave.
    #[serde(default)]
    pub refresh: RefreshBehaviour,
    /// Refreshes that happened (or are running) before the emulator started.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Gen1 dataflows the model reads (`…/datasets/upstreamDataflows`).
    #[serde(default)]
    pub upstream_dataflows: Vec<DataflowRef>,
    /// Completed daily refreshes to generate before the emulator starts, their durations drawn
    /// from `refresh.durationSeconds` (which it then requires).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_count: u32,
    /// Its data sources (`GET …/datasets/{id}/datasources`) and their gateway status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasources: Vec<DataSource>,
}

/// A data source of a model, bound to a gateway data source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSource {
    /// `datasourceType`, e.g. `Sql`.
    #[serde(default = "default_datasource_type")]
    pub datasource_type: String,
    /// `connectionDetails` (an object, as the Get Datasources examples show it).
    #[serde(default)]
    pub connection_details: serde_json::Value,
    /// `datasourceId` of the gateway data source.
    pub datasource_id: String,
    /// `gatewayId`.
    pub gateway_id: String,
    /// What `GET /gateways/{g}/datasources/{d}/status` answers: absent = 200 (reachable);
    /// otherwise the error code it answers with (HTTP 400), e.g.
    /// `DM_GWPipeline_Client_GatewayUnreachable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_error: Option<String>,
    /// The status route answers 403 (the caller is not a gateway admin).
    #[serde(default)]
    pub status_forbidden: bool,
}

fn default_datasource_type() -> String {
    "Sql".to_owned()
}

pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How a refresh progresses and ends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshBehaviour {
    /// The refresh is shown running to this many observations, and ended to the next.
    #[serde(default)]
    pub polls: Option<u32>,
    /// The refresh ends this many seconds (emulator clock) after it started: a number or a
    /// distribution drawn from the scenario's `seed`.
    #[serde(default)]
    pub duration_seconds: Option<DurationSpec>,
    /// How the refresh ends.
    #[serde(default)]
    pub outcome: Outcome,
    /// The service error of a failed refresh (`serviceExceptionJson`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ServiceError>,
    /// A new refresh is missing from this many history reads.
    #[serde(default)]
    pub history_delay_polls: u32,
    /// Accept the request (202) but never record or run the refresh.
    #[serde(default)]
    pub drop: bool,
}

/// The end state of a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Status `Completed`.
    #[default]
    Completed,
    /// Status `Failed`, with the behaviour's `error`.
    Failed,
    /// Enhanced: status `Failed`, extendedStatus `TimedOut`; standard: status `Failed`.
    TimedOut,
    /// Status `Disabled`.
    Disabled,
    /// Status `Cancelled`.
    Cancelled,
}

/// The content of `serviceExceptionJson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceError {
    /// e.g. `ModelRefreshFailed_CredentialsNotSpecified`.
    pub error_code: String,
    /// Optional engine text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The `status` of a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryStatus {
    /// Running.
    Unknown,
    /// Ended successfully.
    Completed,
    /// Ended with an error.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Disabled by a selective refresh.
    Disabled,
}

/// A refresh that exists before the emulator starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryEntry {
    /// The refresh id (GUID).
    pub request_id: String,
    /// `refreshType`: `Scheduled`, `OnDemand`, `ViaApi`, `ViaEnhancedApi`, …
    #[serde(default = "default_refresh_type")]
    pub refresh_type: String,
    /// `Unknown` means still running when the emulator starts.
    pub status: HistoryStatus,
    /// Start (absolute or relative time).
    pub start_time: String,
    /// End (absolute or relative time); absent while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// An enhanced refresh (has `extendedStatus` and execution details).
    #[serde(default)]
    pub enhanced: bool,
    /// Running entry: observations before it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<u32>,
    /// Running entry: seconds after its start that it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Running entry: how it ends.
    #[serde(default)]
    pub outcome: Outcome,
    /// Failed entry (or failing running entry): its `serviceExceptionJson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ServiceError>,
}

fn default_refresh_type() -> String {
    "Scheduled".to_owned()
}

impl Scenario {
    /// Parses and checks a scenario; the error names the offending field.
    pub fn from_json(text: &str) -> Result<Scenario, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let scenario: Scenario = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        })?;
        de.end().map_err(|e| e.to_string())?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The bundled demo scenario (`scenarios/demo.json`).
    pub fn demo() -> Scenario {
        Scenario::from_json(include_str!("../../scenarios/demo.json"))
            .expect("the bundled demo scenario is valid")
    }

    fn validate(&self) -> Result<(), String> {
        let now = Timestamp::now();
        if self.token_prefix.chars().any(|c| !c.is_ascii_graphic()) {
            return Err("tokenPrefix: must be printable ASCII without spaces".to_owned());
        }
        identity::validate(self)?;
        self.quirks.check().map_err(|e| format!("quirks.{e}"))?;
        let mut workspace_ids = HashSet::new();
        let mut dataset_ids = HashSet::new();
        let mut request_ids = HashSet::new();
        for (w, ws) in self.workspaces.iter().enumerate() {
            if !workspace_ids.insert(ws.id.to_ascii_lowercase()) {
                return Err(format!("workspaces[{w}].id: duplicate '{}'", ws.id));
            }
            for (d, ds) in ws.datasets.iter().enumerate() {
                let at = format!("workspaces[{w}].datasets[{d}]");
                if !dataset_ids.insert(ds.id.to_ascii_lowercase()) {
                    return Err(format!("{at}.id: duplicate '{}'", ds.id));
                }
                if let Some(created) = &ds.created_date {
                    resolve_time(created, now).map_err(|e| format!("{at}.createdDate: {e}"))?;
                }
                ds.refresh
                    .check()
                    .map_err(|e| format!("{at}.refresh.{e}"))?;
                if ds.history_count > 0 && ds.refresh.duration_seconds.is_none() {
                    return Err(format!(
                        "{at}.historyCount: needs refresh.durationSeconds to draw durations from"
                    ));
                }
                let mut running = 0;
                for (h, entry) in ds.history.iter().enumerate() {
                    let at = format!("{at}.history[{h}]");
                    if !request_ids.insert(entry.request_id.to_ascii_lowercase()) {
                        return Err(format!("{at}.requestId: duplicate '{}'", entry.request_id));
                    }
                    resolve_time(&entry.start_time, now)
                        .map_err(|e| format!("{at}.startTime: {e}"))?;
                    match (&entry.end_time, entry.status) {
                        (Some(_), HistoryStatus::Unknown) => {
                            return Err(format!("{at}.endTime: a running entry has no end"));
                        }
                        (None, HistoryStatus::Unknown) => running += 1,
                        (None, _) => {
                            return Err(format!(
                                "{at}.endTime: required when status is not Unknown"
                            ));
                        }
                        (Some(end), _) => {
                            resolve_time(end, now).map_err(|e| format!("{at}.endTime: {e}"))?;
                        }
                    }
                    check_duration(entry.duration_seconds)
                        .map_err(|e| format!("{at}.durationSeconds: {e}"))?;
                }
                if running > 1 {
                    return Err(format!(
                        "{at}.history: at most one entry may be running (Unknown)"
                    ));
                }
            }
        }
        items::validate(self, now)?;
        fleet::validate(self)
    }
}

impl RefreshBehaviour {
    /// Checks the values serde cannot; the error starts with the field name.
    pub(crate) fn check(&self) -> Result<(), String> {
        check_spec(self.duration_seconds.as_ref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_scenario_parses() {
        let demo = Scenario::demo();
        assert!(!demo.workspaces.is_empty());
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = Scenario::from_json(r#"{"tokenPrefx":"x"}"#).unwrap_err();
        assert!(err.contains("tokenPrefx"), "{err}");
    }

    #[test]
    fn a_wrongly_typed_nested_field_is_named_by_path() {
        let text = r#"{"workspaces":[{"id":"w","name":"W","datasets":[{"id":"d","name":"D","refresh":{"polls":"three"}}]}]}"#;
        let err = Scenario::from_json(text).unwrap_err();
        assert!(
            err.starts_with("workspaces[0].datasets[0].refresh.polls:"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_time_is_named_by_path() {
        let text = r#"{"workspaces":[{"id":"w","name":"W","datasets":[{"id":"d","name":"D","history":[{"requestId":"r","status":"Unknown","startTime":"yesterday"}]}]}]}"#;
        let err = Scenario::from_json(text).unwrap_err();
        assert!(
            err.starts_with("workspaces[0].datasets[0].history[0].startTime:"),
            "{err}"
        );
    }
}
