//! The scenario's load model, for benchmarks of many refreshes at once: capacities with a
//! refresh concurrency, a per-client rate limit, and [`Fleet`], which generates a scenario of N
//! models on M capacities in code (a JSON file of 200 models would be unreadable).

use super::{ClientApp, Dataset, DurationSpec, RefreshBehaviour, Scenario, Tenant, Workspace};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A capacity (Premium / Fabric SKU) and how many refreshes it runs at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capacity {
    /// The `capacityId` workspaces name (compared case-insensitively).
    pub id: String,
    /// Semantic model refreshes running at once; more wait in the service's queue.
    pub concurrency: u32,
    /// Gen1 dataflow transactions running at once (a separate pool); absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataflow_concurrency: Option<u32>,
    /// `state` in `GET /capacities` (`Active`, `Suspended`, …); default `Active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Listed by `GET /capacities` (false: the caller has no access to it, so it is not listed).
    #[serde(default = "super::default_true")]
    pub listed: bool,
    /// A period when the capacity rejects every new refresh (surge protection, or an overload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejecting: Option<Rejecting>,
}

/// When a capacity rejects new background operations: from `from` seconds after the emulator
/// starts, for `seconds` (both on the emulator's clock).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rejecting {
    /// Emulator seconds after the start when it begins (default 0: at once).
    #[serde(default)]
    pub from: f64,
    /// How many emulator seconds it lasts (> 0).
    pub seconds: f64,
}

/// At most `requests` accepted calls per client id in any `perSeconds` of the emulator's clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Calls allowed in the window (≥ 1).
    pub requests: u32,
    /// The window, in emulator seconds (> 0).
    pub per_seconds: f64,
}

/// Checks capacities, the rate limit and the time scale.
pub(super) fn validate(scenario: &Scenario) -> Result<(), String> {
    let mut ids = HashSet::new();
    for (c, capacity) in scenario.capacities.iter().enumerate() {
        let at = format!("capacities[{c}]");
        if !ids.insert(capacity.id.to_ascii_lowercase()) {
            return Err(format!("{at}.id: duplicate '{}'", capacity.id));
        }
        if capacity.concurrency == 0 {
            return Err(format!("{at}.concurrency: must be at least 1"));
        }
        if capacity.dataflow_concurrency == Some(0) {
            return Err(format!("{at}.dataflowConcurrency: must be at least 1"));
        }
        if let Some(r) = &capacity.rejecting {
            if !(r.from.is_finite() && r.from >= 0.0) {
                return Err(format!(
                    "{at}.rejecting.from: must be a non-negative number"
                ));
            }
            if !(r.seconds.is_finite() && r.seconds > 0.0) {
                return Err(format!("{at}.rejecting.seconds: must be a positive number"));
            }
        }
    }
    if let Some(limit) = &scenario.rate_limit {
        if limit.requests == 0 {
            return Err("rateLimit.requests: must be at least 1".to_owned());
        }
        if !(limit.per_seconds.is_finite() && limit.per_seconds > 0.0) {
            return Err("rateLimit.perSeconds: must be a positive number".to_owned());
        }
    }
    let scale = scenario.time_scale;
    if !(scale.is_finite() && scale > 0.0 && scale <= 1e6) {
        return Err(format!(
            "timeScale: must be a positive number (at most 1e6), got {scale}"
        ));
    }
    Ok(())
}

/// The tenant of a [`Fleet`] scenario (the demo's).
pub const FLEET_TENANT: &str = "07386812-7c6c-4792-b407-a00c1a0852e2";
/// The client id of a [`Fleet`] scenario's only app registration (the demo's `pbiops-demo`).
pub const FLEET_CLIENT_ID: &str = "22b699fd-9835-4700-842f-46f893b34330";
/// Its client secret.
pub const FLEET_SECRET: &str = "demo-secret-value";

/// A generated benchmark scenario: `models` semantic models spread round-robin over
/// `capacities` capacities, one workspace per capacity, each capacity running `concurrency`
/// refreshes at once.
///
/// Ids are fixed patterns (`ca9ac170-0000-4000-8000-<n>` capacities, `f1ee7000-…` workspaces,
/// `da7a5e70-…` models, n from 1), names `Fleet 1…` and `Model 001…`; the tenant, client and
/// secret are [`FLEET_TENANT`], [`FLEET_CLIENT_ID`] and [`FLEET_SECRET`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Number of semantic models.
    pub models: usize,
    /// Number of capacities (and workspaces).
    pub capacities: usize,
    /// Concurrent refreshes per capacity.
    pub concurrency: u32,
    /// The scenario's `seed`.
    pub seed: u64,
    /// Every model's `refresh.durationSeconds`.
    pub duration: DurationSpec,
    /// Every model's `historyCount`.
    pub history_count: u32,
    /// The scenario's `timeScale`.
    pub time_scale: f64,
    /// The scenario's `rateLimit`.
    pub rate_limit: Option<RateLimit>,
}

impl Default for Fleet {
    /// 200 models on 4 capacities of concurrency 4, lognormal durations (median 10 min,
    /// sigma 0.5, between 30 s and 2 h), 10 past refreshes each, real time, no rate limit.
    fn default() -> Fleet {
        Fleet {
            models: 200,
            capacities: 4,
            concurrency: 4,
            seed: 0,
            duration: DurationSpec::LogNormal {
                median: 600.0,
                sigma: 0.5,
                min: Some(30.0),
                max: Some(7200.0),
            },
            history_count: 10,
            time_scale: 1.0,
            rate_limit: None,
        }
    }
}

fn guid(prefix: &str, n: usize) -> String {
    format!("{prefix}-0000-4000-8000-{n:012}")
}

impl Fleet {
    /// The scenario, checked like a parsed one.
    pub fn build(&self) -> Result<Scenario, String> {
        if self.capacities == 0 {
            return Err("capacities: a fleet needs at least one".to_owned());
        }
        let width = self.models.to_string().len().max(3);
        let mut workspaces: Vec<Workspace> = (1..=self.capacities)
            .map(|c| Workspace {
                id: guid("f1ee7000", c),
                name: format!("Fleet {c}"),
                dedicated_capacity: true,
                capacity_id: Some(guid("ca9ac170", c)),
                is_read_only: false,
                members: None,
                datasets: Vec::new(),
                dataflows: Vec::new(),
                reports: Vec::new(),
                items: Vec::new(),
            })
            .collect();
        for m in 1..=self.models {
            workspaces[(m - 1) % self.capacities]
                .datasets
                .push(Dataset {
                    id: guid("da7a5e70", m),
                    name: format!("Model {m:0width$}"),
                    is_refreshable: true,
                    configured_by: None,
                    created_date: None,
                    refresh: RefreshBehaviour {
                        duration_seconds: Some(self.duration.clone()),
                        ..RefreshBehaviour::default()
                    },
                    history: Vec::new(),
                    upstream_dataflows: Vec::new(),
                    history_count: self.history_count,
                    datasources: Vec::new(),
                });
        }
        let scenario = Scenario {
            cloud: super::Cloud::Public,
            token_lifetime_seconds: 3599,
            token_prefix: "emu".to_owned(),
            tenants: vec![Tenant {
                id: FLEET_TENANT.to_owned(),
                domain: Some("contoso.onmicrosoft.com".to_owned()),
                refuse_service_principals_for_dataflow_jobs: false,
                clients: vec![ClientApp {
                    client_id: FLEET_CLIENT_ID.to_owned(),
                    secret: Some(FLEET_SECRET.to_owned()),
                    secret_id: None,
                    display_name: Some("pbiops-fleet".to_owned()),
                    certificates: Vec::new(),
                    federated_credentials: Vec::new(),
                }],
            }],
            managed_identities: Vec::new(),
            identity_header: None,
            workspaces,
            flows: Vec::new(),
            fabric_page_size: 100,
            refuse_service_principals_for_dataflow_jobs: false,
            capacities: (1..=self.capacities)
                .map(|c| Capacity {
                    id: guid("ca9ac170", c),
                    concurrency: self.concurrency,
                    dataflow_concurrency: None,
                    state: None,
                    listed: true,
                    rejecting: None,
                })
                .collect(),
            rate_limit: self.rate_limit,
            seed: self.seed,
            time_scale: self.time_scale,
            quirks: Default::default(),
        };
        scenario.validate()?;
        Ok(scenario)
    }
}

impl Scenario {
    /// A fleet of `models` models on `capacities` capacities of `concurrency`, durations drawn
    /// from `seed`; every other setting is [`Fleet::default`]'s (use [`Fleet`] to change them).
    pub fn fleet(
        models: usize,
        capacities: usize,
        concurrency: u32,
        seed: u64,
    ) -> Result<Scenario, String> {
        Fleet {
            models,
            capacities,
            concurrency,
            seed,
            ..Fleet::default()
        }
        .build()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_spreads_models_over_capacities_and_round_trips_as_json() {
        let scenario = Scenario::fleet(10, 4, 2, 7).unwrap();
        let per: Vec<usize> = scenario
            .workspaces
            .iter()
            .map(|w| w.datasets.len())
            .collect();
        assert_eq!(per, [3, 3, 2, 2]);
        assert_eq!(scenario.capacities[0].concurrency, 2);
        assert_eq!(scenario.workspaces[1].datasets[0].name, "Model 002");
        let text = serde_json::to_string(&scenario).unwrap();
        assert_eq!(Scenario::from_json(&text).unwrap(), scenario);
        assert!(Scenario::fleet(1, 0, 1, 0).is_err());
        assert!(
            Scenario::fleet(1, 1, 0, 0)
                .unwrap_err()
                .contains("concurrency")
        );
    }

    #[test]
    fn load_settings_are_checked_by_name() {
        let cases = [
            (
                r#"{"capacities":[{"id":"c","concurrency":0}]}"#,
                "capacities[0].concurrency",
            ),
            (
                r#"{"capacities":[{"id":"c","concurrency":1},{"id":"C","concurrency":1}]}"#,
                "capacities[1].id",
            ),
            (
                r#"{"rateLimit":{"requests":0,"perSeconds":1}}"#,
                "rateLimit.requests",
            ),
            (
                r#"{"rateLimit":{"requests":1,"perSeconds":0}}"#,
                "rateLimit.perSeconds",
            ),
            (r#"{"timeScale":0}"#, "timeScale"),
            (
                r#"{"capacities":[{"id":"c","concurrency":1,"rejecting":{"seconds":0}}]}"#,
                "capacities[0].rejecting.seconds",
            ),
            (
                r#"{"capacities":[{"id":"c","concurrency":1,"rejecting":{"from":-1,"seconds":5}}]}"#,
                "capacities[0].rejecting.from",
            ),
            (
                r#"{"workspaces":[{"id":"w","name":"W","datasets":[{"id":"d","name":"D","historyCount":3}]}]}"#,
                "workspaces[0].datasets[0].historyCount",
            ),
        ];
        for (text, want) in cases {
            let err = Scenario::from_json(text).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }
}
