//! The operations that manage tokens and read the log: `token.get`, `token.refresh`,
//! `credentials.check`, `history`.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fields::{Dur, Name, Profile};
use super::operation::Operation;
use super::words::{ResourceName, StatusName};
use super::{CredentialsCheckTask, HistoryTask, Task, TokenGetTask, TokenRefreshTask};
use crate::error::Error;

/// Default window of `token.refresh`: what the scheduled auth flow renews.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(20 * 60);
/// Default row limit of `history`.
pub const DEFAULT_LIMIT: u32 = 1000;

/// `token.get`: a token for one profile and resource (from the store while it stays valid).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTokenGet {
    /// The profile (service principal) to use.
    pub profile: Option<Profile>,
    /// The API the token is for (default powerbi).
    pub resource: Option<ResourceName>,
}

/// `token.refresh`: renew every stored or configured token expiring soon.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTokenRefresh {
    /// Which profiles (default: every configured one).
    pub profiles: Option<Vec<Profile>>,
    /// Which resources (default powerbi and fabric).
    #[schemars(length(min = 1))]
    pub resources: Option<Vec<ResourceName>>,
    /// Renew tokens expiring within this (default PT20M).
    pub within: Option<Dur>,
}

/// `credentials.check`: check every profile end to end.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCredentialsCheck {
    /// Which profiles (default: every configured one).
    pub profiles: Option<Vec<Profile>>,
}

/// `history`: query the operation log into a JSON file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawHistory {
    /// Which operations.
    pub filter: Option<RawFilter>,
    /// At most this many rows, newest first (default 1000).
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    /// Where the JSON file goes (default history.json).
    pub output_file: Option<Name>,
}

/// `history`'s filter.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawFilter {
    /// Only this operation.
    pub operation: Option<Operation>,
    /// Only this normalized status.
    pub status: Option<StatusName>,
    /// Only this profile.
    pub profile: Option<Profile>,
    /// Only rows whose workspace or item id or name matches (case-insensitive).
    pub target: Option<String>,
    /// Only operations started within this long ago.
    pub since: Option<Dur>,
}

impl RawTokenGet {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        Ok(Task::TokenGet(TokenGetTask {
            profile: Profile::name(self.profile),
            resource: self.resource.unwrap_or(ResourceName::PowerBi).resource(),
        }))
    }
}

impl RawTokenRefresh {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        let resources = match self.resources {
            None => vec![ResourceName::PowerBi, ResourceName::Fabric],
            Some(list) if list.is_empty() => {
                return Err(Error::task(
                    "resources",
                    "is empty",
                    "omit it for powerbi and fabric",
                ));
            }
            Some(list) => list,
        };
        Ok(Task::TokenRefresh(TokenRefreshTask {
            within: self.within.map_or(DEFAULT_WITHIN, |d| d.0),
            resources: resources.into_iter().map(ResourceName::resource).collect(),
            profiles: profiles(self.profiles),
        }))
    }
}

impl RawCredentialsCheck {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        Ok(Task::CredentialsCheck(CredentialsCheckTask {
            profiles: profiles(self.profiles),
        }))
    }
}

impl RawHistory {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        let f = self.filter.unwrap_or_default();
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 {
            return Err(Error::task("limit", "must be at least 1", "e.g. 100"));
        }
        Ok(Task::History(HistoryTask {
            operation: f.operation.map(|o| o.as_str().to_string()),
            status: f.status.map(|s| s.as_str().to_string()),
            profile: f.profile.map(|p| p.0),
            target: f.target.filter(|t| !t.trim().is_empty()),
            since: f.since.map(|d| d.0),
            limit,
            output_file: PathBuf::from(
                self.output_file
                    .map_or_else(|| "history.json".into(), |n| n.0),
            ),
        }))
    }
}

fn profiles(list: Option<Vec<Profile>>) -> Option<Vec<String>> {
    list.map(|l| l.into_iter().map(|p| p.0).collect())
}

#[cfg(test)]
mod tests {
    use super::super::{assert_refused, parse_task};
    use super::*;
    use crate::auth::Resource;

    #[test]
    fn token_tasks_get_their_defaults() {
        let Task::TokenGet(t) = parse_task(r#"{"operation":"token.get"}"#).expect("valid") else {
            panic!("token.get")
        };
        assert_eq!(
            (t.profile.as_str(), t.resource),
            ("default", Resource::PowerBi)
        );
        let Task::TokenRefresh(t) =
            parse_task(r#"{"operation":"token.refresh","within":"PT1H","profiles":["Sales"]}"#)
                .expect("valid")
        else {
            panic!("token.refresh")
        };
        assert_eq!(t.within, Duration::from_secs(3600));
        assert_eq!(t.resources, vec![Resource::PowerBi, Resource::Fabric]);
        assert_eq!(t.profiles, Some(vec!["sales".to_string()]));
    }

    #[test]
    fn history_filters_are_checked() {
        let Task::History(h) = parse_task(
            r#"{"operation":"history","filter":{"status":"failed","since":"P1D","target":"Sales","operation":"dataset.refresh"},"limit":5}"#,
        )
        .expect("valid") else {
            panic!("history")
        };
        assert_eq!(h.status.as_deref(), Some("Failed"));
        assert_eq!(h.operation.as_deref(), Some("dataset.refresh"));
        assert_eq!(h.since, Some(Duration::from_secs(86400)));
        assert_eq!(h.output_file, PathBuf::from("history.json"));
        assert_refused(&[
            (
                r#"{"operation":"history","filter":{"status":"meh"}}"#,
                "filter.status",
            ),
            (
                r#"{"operation":"history","filter":{"operation":"x"}}"#,
                "filter.operation",
            ),
            (
                r#"{"operation":"history","filter":{"since":1e30}}"#,
                "filter.since",
            ),
            (r#"{"operation":"history","limit":0}"#, "limit"),
            (r#"{"operation":"history","limit":4294967296}"#, "limit"),
            (
                r#"{"operation":"token.get","resource":"graph"}"#,
                "resource",
            ),
            (
                r#"{"operation":"token.refresh","resources":[]}"#,
                "resources",
            ),
            (
                r#"{"operation":"token.refresh","resources":["powerbi","graph"]}"#,
                "resources[1]",
            ),
            (
                r#"{"operation":"token.refresh","within":"P400D"}"#,
                "within",
            ),
            (
                r#"{"operation":"credentials.check","profiles":["a-b"]}"#,
                "profiles[0]",
            ),
            (r#"{"operation":"token.get","workspace":"w"}"#, "workspace"),
        ]);
    }
}
