//! Stage two of reading a task: [`RawTask`] → [`Task`], with defaults and every rule.
//!
//! Rules come from the service's documentation (`powerbi-api.md` §2.1 and §4), so that a task the
//! service would refuse, or would accept and then fail, is refused here with a hint instead.

use std::time::Duration;

use super::raw::{RawRefresh, RawTask};
use super::{
    CancelTask, DatasetTarget, EnhancedRefresh, IfRunning, OPERATIONS, OnTimeout, RefreshBody,
    RefreshObject, RefreshTask, StatusTask, Task, WaitOptions, duration,
};
use crate::error::Error;

/// Default overall wait: the service's own default per-attempt timeout (five hours).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 3600);
/// Default shortest poll interval: fine enough to see a 2-minute refresh end within 2 %.
pub const DEFAULT_POLL_MIN: Duration = Duration::from_secs(2);
/// Default longest poll interval: the policy polls densely only where a refresh is expected to
/// end, so a long maximum saves calls on long refreshes without delaying their detection.
pub const DEFAULT_POLL_MAX: Duration = Duration::from_secs(120);
/// Default time a new refresh may stay invisible before it counts as dropped.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);

const REFRESH_TYPES: &[&str] = &[
    "Full",
    "ClearValues",
    "Calculate",
    "DataOnly",
    "Automatic",
    "Defragment",
];
const COMMIT_MODES: &[&str] = &["Transactional", "PartialBatch"];
const NOTIFY_OPTIONS: &[&str] = &["NoNotification", "MailOnFailure", "MailOnCompletion"];

/// Turns a raw task into a validated [`Task`].
pub fn validate(raw: RawTask) -> Result<Task, Error> {
    let operation = raw.operation.clone().ok_or_else(|| {
        Error::task(
            "operation",
            "missing",
            format!("one of: {}", OPERATIONS.join(", ")),
        )
    })?;
    let allowed: &[&str] = match operation.as_str() {
        "dataset.refresh" => &[
            "profile",
            "workspace",
            "dataset",
            "wait",
            "timeout",
            "ifRunning",
            "onTimeout",
            "notifyOption",
            "refresh",
            "poll",
            "grace",
            "targets",
            "maxParallel",
            "maxParallelPerCapacity",
            "outputFile",
        ],
        "dataset.cancel" => &["profile", "workspace", "dataset", "requestId"],
        "dataset.status" => &["profile", "workspace", "dataset", "maxAge"],
        "token.get" | "token.refresh" | "credentials.check" | "history" => {
            return super::validate_admin::validate(&operation, raw);
        }
        "dataflow.refresh" | "flow.trigger" | "report.refresh" | "inventory" => {
            return super::validate_items::validate(&operation, raw);
        }
        other => {
            return Err(Error::task(
                "operation",
                format!("`{other}` is not an operation of this build"),
                format!("one of: {}", OPERATIONS.join(", ")),
            ));
        }
    };
    only(&operation, &raw, allowed)?;
    if operation == "dataset.refresh" && raw.targets.is_some() {
        return fleet(raw);
    }
    if let Some(field) = ["maxParallel", "maxParallelPerCapacity", "outputFile"]
        .into_iter()
        .find(|f| raw.present_fields().contains(f))
    {
        if operation == "dataset.refresh" {
            return Err(Error::task(
                field,
                "applies with `targets` only",
                "give `targets: [...]` to refresh many models in one run",
            ));
        }
    }
    let target = target(&raw)?;
    Ok(match operation.as_str() {
        "dataset.refresh" => Task::DatasetRefresh(refresh_task(raw, target)?),
        "dataset.cancel" => Task::DatasetCancel(CancelTask {
            target,
            request_id: non_empty("requestId", raw.request_id)?,
        }),
        _ => Task::DatasetStatus(StatusTask {
            target,
            max_age: raw
                .max_age
                .as_ref()
                .map(|v| duration::parse("maxAge", v))
                .transpose()?,
        }),
    })
}

/// `dataset.refresh` with `targets`: one validated refresh per model, sharing the run's options.
fn fleet(raw: RawTask) -> Result<Task, Error> {
    for field in ["workspace", "dataset", "refresh", "notifyOption"] {
        if raw.present_fields().contains(&field) {
            return Err(Error::task(
                field,
                "cannot be combined with `targets`",
                "give it per target, inside `targets`",
            ));
        }
    }
    let targets = raw.targets.clone().unwrap_or_default();
    if targets.is_empty() {
        return Err(Error::task(
            "targets",
            "is empty",
            "list at least one {\"workspace\", \"dataset\"}",
        ));
    }
    let profile = profile_name("profile", raw.profile.as_deref())?;
    let refreshes = targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let one = RawTask {
                workspace: Some(t.workspace),
                dataset: Some(t.dataset),
                refresh: t.refresh,
                notify_option: t.notify_option,
                targets: None,
                ..raw.clone()
            };
            let target = self::target(&one)?;
            let key = format!("{}/{}", target.workspace, target.dataset);
            refresh_task(one, target)
                .map(|r| super::FleetTarget {
                    key,
                    refresh: super::ItemRefresh::Model(r),
                    depends_on: Vec::new(),
                })
                .map_err(|e| match e {
                    Error::InvalidTask {
                        field,
                        message,
                        help,
                    } => Error::InvalidTask {
                        field: format!("targets[{i}].{field}"),
                        message,
                        help,
                    },
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let positive = |field: &str, v: Option<usize>| match v {
        Some(0) => Err(Error::task(field, "must be at least 1", "e.g. 4")),
        other => Ok(other),
    };
    Ok(Task::Fleet(super::FleetTask {
        operation: "dataset.refresh",
        profile,
        targets: refreshes,
        max_parallel: positive("maxParallel", raw.max_parallel)?.unwrap_or(8),
        max_per_capacity: positive("maxParallelPerCapacity", raw.max_parallel_per_capacity)?,
        output_file: std::path::PathBuf::from(
            raw.output_file
                .clone()
                .unwrap_or_else(|| "targets.json".into()),
        ),
    }))
}

/// Checks a profile name and lowercases it.
pub(super) fn profile_name(field: &str, value: Option<&str>) -> Result<String, Error> {
    match value {
        None => Ok("default".to_string()),
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Ok(p.to_ascii_lowercase())
        }
        Some(_) => Err(Error::task(
            field,
            "must be letters, digits and underscores",
            "a profile `finance` reads PBIOPS_PROFILE_FINANCE_* from the environment",
        )),
    }
}

/// Rejects fields that do not apply to `operation`.
pub(super) fn only(operation: &str, raw: &RawTask, allowed: &[&str]) -> Result<(), Error> {
    match raw
        .present_fields()
        .into_iter()
        .find(|f| !allowed.contains(f))
    {
        Some(field) => Err(Error::task(
            field,
            format!("does not apply to {operation}"),
            format!("{operation} takes: {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn target(raw: &RawTask) -> Result<DatasetTarget, Error> {
    let profile = profile_name("profile", raw.profile.as_deref())?;
    let required = |field: &str, value: &Option<String>| {
        non_empty(field, value.clone())?
            .ok_or_else(|| Error::task(field, "missing", format!("give the {field}'s name or id")))
    };
    Ok(DatasetTarget {
        profile,
        workspace: required("workspace", &raw.workspace)?,
        dataset: required("dataset", &raw.dataset)?,
    })
}

pub(super) fn non_empty(field: &str, value: Option<String>) -> Result<Option<String>, Error> {
    match value {
        Some(v) if v.trim().is_empty() => {
            Err(Error::task(field, "is empty", "remove it or give a value"))
        }
        Some(v) => Ok(Some(v.trim().to_string())),
        None => Ok(None),
    }
}

/// `ifRunning` and `onTimeout`, shared by every refresh operation.
pub(super) fn policies(raw: &RawTask) -> Result<(IfRunning, OnTimeout), Error> {
    let if_running = match raw
        .if_running
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("attach") => IfRunning::Attach,
        Some("skip") => IfRunning::Skip,
        Some("fail") => IfRunning::Fail,
        Some(_) => {
            return Err(Error::task(
                "ifRunning",
                "unknown value",
                "one of: attach, skip, fail",
            ));
        }
    };
    let on_timeout = match raw
        .on_timeout
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("leave") => OnTimeout::Leave,
        Some("cancel") => OnTimeout::Cancel,
        Some(_) => {
            return Err(Error::task(
                "onTimeout",
                "unknown value",
                "one of: leave, cancel",
            ));
        }
    };
    Ok((if_running, on_timeout))
}

pub(super) fn refresh_task(raw: RawTask, target: DatasetTarget) -> Result<RefreshTask, Error> {
    let (if_running, on_timeout) = policies(&raw)?;
    let wait = wait_options(&raw)?;
    let body = match (raw.refresh, raw.notify_option) {
        (Some(_), Some(_)) => {
            return Err(Error::task(
                "notifyOption",
                "cannot be combined with `refresh`",
                "an enhanced refresh (`refresh`) sends no notification; drop notifyOption",
            ));
        }
        (Some(r), None) => RefreshBody::Enhanced(enhanced(r)?),
        (None, notify) => RefreshBody::Standard {
            notify_option: notify
                .map(|n| one_of("notifyOption", &n, NOTIFY_OPTIONS))
                .transpose()?,
        },
    };
    if matches!(body, RefreshBody::Standard { .. }) && on_timeout == OnTimeout::Cancel {
        return Err(Error::task(
            "onTimeout",
            "`cancel` needs an enhanced refresh; the service cannot cancel a standard one",
            "add a `refresh` object (e.g. {\"type\": \"Full\"}) or use onTimeout: leave",
        ));
    }
    Ok(RefreshTask {
        target,
        body,
        if_running,
        on_timeout,
        wait,
    })
}

pub(super) fn wait_options(raw: &RawTask) -> Result<WaitOptions, Error> {
    let opt = |field: &str, v: &Option<serde_json::Value>, default| {
        v.as_ref()
            .map_or(Ok(default), |v| duration::parse(field, v))
    };
    let poll = raw.poll.as_ref();
    let poll_min = opt(
        "poll.min",
        &poll.and_then(|p| p.min.clone()),
        DEFAULT_POLL_MIN,
    )?;
    let poll_max = opt(
        "poll.max",
        &poll.and_then(|p| p.max.clone()),
        DEFAULT_POLL_MAX.max(poll_min),
    )?;
    if poll_min.is_zero() {
        return Err(Error::task(
            "poll.min",
            "must be more than zero",
            "e.g. \"PT5S\"",
        ));
    }
    if poll_max < poll_min {
        return Err(Error::task(
            "poll.max",
            "is shorter than poll.min",
            "poll.max must be at least poll.min",
        ));
    }
    let timeout = opt("timeout", &raw.timeout, DEFAULT_TIMEOUT)?;
    if timeout.is_zero() {
        return Err(Error::task(
            "timeout",
            "must be more than zero",
            "use \"wait\": false to not wait at all",
        ));
    }
    Ok(WaitOptions {
        wait: raw.wait.unwrap_or(true),
        timeout,
        poll_min,
        poll_max,
        grace: opt("grace", &raw.grace, DEFAULT_GRACE)?,
    })
}

fn enhanced(r: RawRefresh) -> Result<EnhancedRefresh, Error> {
    let body = EnhancedRefresh {
        kind: r
            .kind
            .map(|k| one_of("refresh.type", &k, REFRESH_TYPES))
            .transpose()?,
        commit_mode: r
            .commit_mode
            .map(|c| one_of("refresh.commitMode", &c, COMMIT_MODES))
            .transpose()?,
        max_parallelism: r.max_parallelism,
        retry_count: r.retry_count,
        objects: r
            .objects
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                if o.table.trim().is_empty() {
                    return Err(Error::task(
                        format!("refresh.objects[{i}].table"),
                        "is empty",
                        "name the table",
                    ));
                }
                Ok(RefreshObject {
                    table: o.table,
                    partition: o.partition.filter(|p| !p.is_empty()),
                })
            })
            .collect::<Result<_, _>>()?,
        apply_refresh_policy: r.apply_refresh_policy,
        effective_date: r.effective_date.map(|d| effective_date(&d)).transpose()?,
        timeout: r.timeout.as_ref().map(service_timeout).transpose()?,
    };
    if body == EnhancedRefresh::default() {
        return Err(Error::task(
            "refresh",
            "is empty",
            "give at least one field (e.g. {\"type\": \"Full\"}), or omit `refresh` for a standard refresh",
        ));
    }
    if body.max_parallelism == Some(0) {
        return Err(Error::task(
            "refresh.maxParallelism",
            "must be at least 1",
            "the service's default is 10",
        ));
    }
    let partial = body.commit_mode.as_deref() == Some("PartialBatch");
    if partial && body.apply_refresh_policy == Some(true) {
        return Err(Error::task(
            "refresh.applyRefreshPolicy",
            "cannot be true with commitMode PartialBatch (the service fails such a refresh)",
            "set applyRefreshPolicy to false, or use commitMode Transactional",
        ));
    }
    // The service defaults applyRefreshPolicy to true, which it then refuses with PartialBatch.
    let apply_refresh_policy = if partial {
        Some(false)
    } else {
        body.apply_refresh_policy
    };
    Ok(EnhancedRefresh {
        apply_refresh_policy,
        ..body
    })
}

/// Matches `value` case-insensitively against `allowed`, returning the canonical spelling.
pub(super) fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, Error> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value))
        .map(|a| a.to_string())
        .ok_or_else(|| {
            Error::task(
                field,
                format!("`{value}` is not allowed"),
                format!("one of: {}", allowed.join(", ")),
            )
        })
}

fn effective_date(text: &str) -> Result<String, Error> {
    let ok = text.parse::<jiff::civil::Date>().is_ok()
        || text.parse::<jiff::civil::DateTime>().is_ok()
        || text.parse::<jiff::Timestamp>().is_ok();
    if ok {
        Ok(text.to_string())
    } else {
        Err(Error::task(
            "refresh.effectiveDate",
            format!("`{text}` is not a date"),
            "e.g. \"2026-11-24\"",
        ))
    }
}

/// The service wants `hh:mm:ss` up to 23:59:59; accept that or any duration below 24 h.
fn service_timeout(value: &serde_json::Value) -> Result<String, Error> {
    const HELP: &str = "\"hh:mm:ss\" (e.g. \"02:00:00\") or an ISO-8601 duration under 24 hours; it applies to each attempt";
    if let Some(text) = value.as_str() {
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() == 3 {
            let nums: Vec<Option<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
            return match nums.as_slice() {
                [Some(h), Some(m), Some(s)]
                    if *h < 24
                        && *m < 60
                        && *s < 60
                        && parts[1].len() == 2
                        && parts[2].len() == 2 =>
                {
                    Ok(duration::to_hms(Duration::from_secs(h * 3600 + m * 60 + s)))
                }
                _ => Err(Error::task(
                    "refresh.timeout",
                    format!("`{text}` is not a valid hh:mm:ss"),
                    HELP,
                )),
            };
        }
    }
    let d = duration::parse("refresh.timeout", value)?;
    if d >= Duration::from_secs(24 * 3600) || d < Duration::from_secs(1) {
        return Err(Error::task(
            "refresh.timeout",
            "must be between one second and 23:59:59",
            HELP,
        ));
    }
    Ok(duration::to_hms(d))
}

#[cfg(test)]
mod tests {
    use super::super::raw;
    use super::*;

    fn task(json: &str) -> Result<Task, Error> {
        validate(raw::parse(json)?)
    }

    #[test]
    fn a_minimal_refresh_gets_every_default() {
        let t =
            task(r#"{"operation":"dataset.refresh","workspace":"Sales","dataset":"Sales Model"}"#)
                .expect("valid");
        let Task::DatasetRefresh(r) = t else {
            panic!("refresh")
        };
        assert_eq!(r.target.profile, "default");
        assert_eq!(
            r.body,
            RefreshBody::Standard {
                notify_option: None
            }
        );
        assert_eq!(r.if_running, IfRunning::Attach);
        assert_eq!(r.wait.timeout, DEFAULT_TIMEOUT);
        assert!(r.wait.wait);
    }

    #[test]
    fn enhanced_bodies_are_canonicalised() {
        let t = task(
            r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","profile":"Finance",
                "refresh":{"type":"full","commitMode":"partialbatch","objects":[{"table":"Sales","partition":"2026"}],"timeout":"PT2H"}}"#,
        )
        .expect("valid");
        let Task::DatasetRefresh(r) = t else {
            panic!("refresh")
        };
        assert_eq!(r.target.profile, "finance");
        let RefreshBody::Enhanced(e) = r.body else {
            panic!("enhanced")
        };
        assert_eq!(e.kind.as_deref(), Some("Full"));
        assert_eq!(e.commit_mode.as_deref(), Some("PartialBatch"));
        assert_eq!(e.apply_refresh_policy, Some(false));
        assert_eq!(e.timeout.as_deref(), Some("02:00:00"));
        let wire = serde_json::to_value(&e).expect("json");
        assert_eq!(
            wire,
            serde_json::json!({"type":"Full","commitMode":"PartialBatch","applyRefreshPolicy":false,
                               "objects":[{"table":"Sales","partition":"2026"}],"timeout":"02:00:00"})
        );
    }

    #[test]
    fn rule_violations_name_their_field() {
        let cases = [
            (r#"{"workspace":"w","dataset":"d"}"#, "operation"),
            (
                r#"{"operation":"dataset.refreshh","workspace":"w","dataset":"d"}"#,
                "operation",
            ),
            (
                r#"{"operation":"dataset.refresh","dataset":"d"}"#,
                "workspace",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":" ","dataset":"d"}"#,
                "workspace",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","ifRunning":"wait"}"#,
                "ifRunning",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","onTimeout":"cancel"}"#,
                "onTimeout",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","refresh":{}}"#,
                "refresh",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","refresh":{"type":"Add"}}"#,
                "refresh.type",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","refresh":{"commitMode":"PartialBatch","applyRefreshPolicy":true}}"#,
                "refresh.applyRefreshPolicy",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","refresh":{"timeout":"25:00:00"}}"#,
                "refresh.timeout",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","refresh":{"effectiveDate":"yesterday"}}"#,
                "refresh.effectiveDate",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","poll":{"min":"PT10S","max":"PT5S"}}"#,
                "poll.max",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","notifyOption":"Always"}"#,
                "notifyOption",
            ),
            (
                r#"{"operation":"dataset.status","workspace":"w","dataset":"d","refresh":{"type":"Full"}}"#,
                "refresh",
            ),
            (
                r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","profile":"my-profile"}"#,
                "profile",
            ),
        ];
        for (json, field) in cases {
            let err = task(json).expect_err(json);
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{json}: {err}"
            );
            assert_eq!(err.exit_code().code(), 2);
        }
    }
}
