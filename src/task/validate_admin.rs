//! Stage two for the operations that manage tokens and read the log: `token.get`,
//! `token.refresh`, `credentials.check`, `history`.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawTask;
use super::validate::{only, profile_name};
use super::{CredentialsCheckTask, HistoryTask, Task, TokenGetTask, TokenRefreshTask, duration};
use crate::auth::Resource;
use crate::error::Error;

/// Default window of `token.refresh`: what the scheduled auth flow renews.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(20 * 60);
/// Default row limit of `history`.
pub const DEFAULT_LIMIT: u32 = 1000;

const STATUSES: &[&str] = &[
    "Running",
    "Completed",
    "Failed",
    "Cancelled",
    "TimedOut",
    "Triggered",
    "Skipped",
    "Disabled",
    "Error",
];

pub(super) fn validate(operation: &str, raw: RawTask) -> Result<Task, Error> {
    match operation {
        "token.get" => {
            only(operation, &raw, &["profile", "resource"])?;
            Ok(Task::TokenGet(TokenGetTask {
                profile: profile_name("profile", raw.profile.as_deref())?,
                resource: resource("resource", raw.resource.as_deref().unwrap_or("powerbi"))?,
            }))
        }
        "token.refresh" => {
            only(operation, &raw, &["profiles", "resources", "within"])?;
            let resources = match &raw.resources {
                None => vec![Resource::PowerBi, Resource::Fabric],
                Some(list) if list.is_empty() => {
                    return Err(Error::task(
                        "resources",
                        "is empty",
                        "omit it for powerbi and fabric",
                    ));
                }
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, r)| resource(&format!("resources[{i}]"), r))
                    .collect::<Result<_, _>>()?,
            };
            Ok(Task::TokenRefresh(TokenRefreshTask {
                within: raw
                    .within
                    .as_ref()
                    .map_or(Ok(DEFAULT_WITHIN), |w| duration::parse("within", w))?,
                resources,
                profiles: profiles(&raw)?,
            }))
        }
        "credentials.check" => {
            only(operation, &raw, &["profiles"])?;
            Ok(Task::CredentialsCheck(CredentialsCheckTask {
                profiles: profiles(&raw)?,
            }))
        }
        _ => {
            only(operation, &raw, &["filter", "limit", "outputFile"])?;
            let f = raw.filter.unwrap_or_default();
            if let Some(op) = &f.operation {
                if !super::OPERATIONS.contains(&op.as_str()) {
                    return Err(Error::task(
                        "filter.operation",
                        format!("`{op}` is not an operation"),
                        format!("one of: {}", super::OPERATIONS.join(", ")),
                    ));
                }
            }
            let status = f
                .status
                .map(|s| {
                    STATUSES
                        .iter()
                        .find(|k| k.eq_ignore_ascii_case(&s))
                        .map(|k| k.to_string())
                        .ok_or_else(|| {
                            Error::task(
                                "filter.status",
                                format!("`{s}` is not a status"),
                                format!("one of: {}", STATUSES.join(", ")),
                            )
                        })
                })
                .transpose()?;
            let limit = raw.limit.unwrap_or(DEFAULT_LIMIT);
            if limit == 0 {
                return Err(Error::task("limit", "must be at least 1", "e.g. 100"));
            }
            Ok(Task::History(HistoryTask {
                operation: f.operation,
                status,
                profile: f
                    .profile
                    .as_deref()
                    .map(|p| profile_name("filter.profile", Some(p)))
                    .transpose()?,
                target: f.target.filter(|t| !t.trim().is_empty()),
                since: f
                    .since
                    .as_ref()
                    .map(|s| duration::parse("filter.since", s))
                    .transpose()?,
                limit,
                output_file: PathBuf::from(
                    raw.output_file.unwrap_or_else(|| "history.json".into()),
                ),
            }))
        }
    }
}

fn resource(field: &str, name: &str) -> Result<Resource, Error> {
    Resource::parse(name).ok_or_else(|| {
        Error::task(
            field,
            format!("`{name}` is not a resource"),
            "one of: powerbi, fabric, flow",
        )
    })
}

fn profiles(raw: &RawTask) -> Result<Option<Vec<String>>, Error> {
    raw.profiles
        .as_ref()
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, p)| profile_name(&format!("profiles[{i}]"), Some(p)))
                .collect()
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::super::{raw, validate};
    use super::*;

    fn task(json: &str) -> Result<Task, Error> {
        validate(raw::parse(json)?)
    }

    #[test]
    fn token_tasks_get_their_defaults() {
        let Task::TokenGet(t) = task(r#"{"operation":"token.get"}"#).expect("valid") else {
            panic!("token.get")
        };
        assert_eq!(
            (t.profile.as_str(), t.resource),
            ("default", Resource::PowerBi)
        );
        let Task::TokenRefresh(t) =
            task(r#"{"operation":"token.refresh","within":"PT1H","profiles":["Sales"]}"#)
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
        let Task::History(h) = task(r#"{"operation":"history","filter":{"status":"failed","since":"P1D","target":"Sales"},"limit":5}"#).expect("valid") else {
            panic!("history")
        };
        assert_eq!(h.status.as_deref(), Some("Failed"));
        assert_eq!(h.since, Some(Duration::from_secs(86400)));
        assert_eq!(h.output_file, PathBuf::from("history.json"));
        for (json, field) in [
            (
                r#"{"operation":"history","filter":{"status":"meh"}}"#,
                "filter.status",
            ),
            (
                r#"{"operation":"history","filter":{"operation":"x"}}"#,
                "filter.operation",
            ),
            (r#"{"operation":"history","limit":0}"#, "limit"),
            (
                r#"{"operation":"token.get","resource":"graph"}"#,
                "resource",
            ),
            (
                r#"{"operation":"token.refresh","resources":[]}"#,
                "resources",
            ),
            (r#"{"operation":"token.get","workspace":"w"}"#, "workspace"),
        ] {
            let err = task(json).expect_err(json);
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{json}: {err}"
            );
        }
    }
}
