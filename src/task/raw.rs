//! Stage one of reading a task: JSON text → [`RawTask`], strictly.
//!
//! Unknown fields are errors (a typo must not silently become a default), and anything that
//! looks like a secret is refused before deserialization, because Kestra stores the task in
//! plain text with the execution. Errors name the JSON path (`refresh.maxParallelism`), never
//! the offending value when it might be a secret.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// The task as written, before validation. Field names are the public JSON contract.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTask {
    /// The operation: dataset.refresh, dataset.cancel, dataset.status, dataflow.refresh, report.refresh, flow.trigger, inventory, token.get, token.refresh, credentials.check, history.
    pub operation: Option<String>,
    /// The profile (service principal) to use; `default` reads PBIOPS_TENANT_ID etc.
    pub profile: Option<String>,
    /// Workspace name (exact, case-insensitive) or id.
    pub workspace: Option<String>,
    /// Semantic model name or id.
    pub dataset: Option<String>,
    /// Follow the refresh to its end (default true); false exits 0 once triggered.
    pub wait: Option<bool>,
    /// How long to wait: ISO-8601 (PT2H) or seconds (default PT5H).
    pub timeout: Option<Value>,
    /// A refresh is already running: attach (default), skip or fail.
    pub if_running: Option<String>,
    /// When waiting times out: leave (default) or cancel.
    pub on_timeout: Option<String>,
    /// Standard refresh / Gen1 dataflow e-mail option.
    pub notify_option: Option<String>,
    /// Enhanced refresh options; any of them makes the refresh enhanced.
    pub refresh: Option<RawRefresh>,
    /// Bounds of the polling interval.
    pub poll: Option<RawPoll>,
    /// How long a new refresh may be missing from the service before it counts as dropped (default PT2M).
    pub grace: Option<Value>,
    /// dataset.cancel: the refresh to cancel (default: the running one).
    pub request_id: Option<String>,
    /// dataset.status: fail (exit 1) when the last successful refresh is older than this.
    pub max_age: Option<Value>,
    /// token.get: powerbi (default), fabric or flow.
    pub resource: Option<String>,
    /// token.refresh: which resources (default powerbi and fabric).
    pub resources: Option<Vec<String>>,
    /// token.refresh / credentials.check: which profiles (default: every configured one).
    pub profiles: Option<Vec<String>>,
    /// token.refresh: renew tokens expiring within this (default PT20M).
    pub within: Option<Value>,
    /// history: which operations.
    pub filter: Option<RawFilter>,
    /// history: at most this many rows, newest first (default 1000).
    pub limit: Option<u32>,
    /// Where the JSON file goes (history.json, inventory.json, cascade.json by default).
    pub output_file: Option<String>,
    /// dataflow.refresh: dataflow name or id.
    pub dataflow: Option<String>,
    /// dataflow.refresh: 1 (Power BI dataflow) or 2 (Fabric Dataflow Gen2); detected when absent.
    pub generation: Option<u8>,
    /// Gen1 dataflow: default or processFull.
    pub process_type: Option<String>,
    /// Dataflow Gen2: ApplyChangesIfNeeded or SkipApplyChanges.
    pub execute_option: Option<String>,
    /// dataflow.refresh: `downstream` also refreshes every semantic model that reads the dataflow.
    pub then: Option<String>,
    /// With then: downstream or targets, how many refreshes at a time (default 4, or 8 for targets).
    pub max_parallel: Option<usize>,
    /// flow.trigger: the flow name; its URL is PBIOPS_FLOW_<NAME>_URL.
    pub flow: Option<String>,
    /// flow.trigger: the JSON body to post.
    pub body: Option<Value>,
    /// flow.trigger: the Gen1 dataflow the flow refreshes, to report its real outcome.
    pub monitor: Option<RawMonitor>,
    /// report.refresh: report name or id.
    pub report: Option<String>,
    /// dataset.refresh: many models in one run, each with its own options (instead of
    /// workspace and dataset).
    pub targets: Option<Vec<RawTarget>>,
    /// With targets: at most this many refreshes at once per capacity.
    pub max_parallel_per_capacity: Option<usize>,
}

/// One model of a fleet.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTarget {
    /// Workspace name or id.
    pub workspace: String,
    /// Semantic model name or id.
    pub dataset: String,
    /// Enhanced refresh options for this model.
    pub refresh: Option<RawRefresh>,
    /// Standard refresh e-mail option for this model.
    pub notify_option: Option<String>,
}

/// `flow.trigger`'s `monitor`: the Gen1 dataflow the flow refreshes.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMonitor {
    /// Workspace name or id.
    pub workspace: String,
    /// Gen1 dataflow name or id.
    pub dataflow: String,
}

/// `history`'s filter.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawFilter {
    /// Only this operation.
    pub operation: Option<String>,
    /// Only this normalized status.
    pub status: Option<String>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Only rows whose workspace or item id or name matches (case-insensitive).
    pub target: Option<String>,
    /// Only operations started within this long ago.
    pub since: Option<Value>,
}

/// The enhanced refresh body as written.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRefresh {
    /// Full, ClearValues, Calculate, DataOnly, Automatic or Defragment.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Transactional or PartialBatch.
    pub commit_mode: Option<String>,
    /// Maximum parallel processing threads.
    pub max_parallelism: Option<u32>,
    /// Retries inside the service.
    pub retry_count: Option<u32>,
    /// Tables (or a table's partition) to refresh; the whole model when absent.
    pub objects: Option<Vec<RawObject>>,
    /// Apply the incremental refresh policy.
    pub apply_refresh_policy: Option<bool>,
    /// The date the incremental policy is evaluated at.
    pub effective_date: Option<String>,
    /// The service's per-attempt timeout: hh:mm:ss or ISO-8601, under 24 hours.
    pub timeout: Option<Value>,
}

/// One table or partition of an enhanced refresh.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawObject {
    /// Table name.
    pub table: String,
    /// Partition name.
    pub partition: Option<String>,
}

/// Bounds of the polling interval.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    /// Shortest interval (default PT2S).
    pub min: Option<Value>,
    /// Longest interval (default PT2M).
    pub max: Option<Value>,
}

impl RawTask {
    /// The names of the top-level fields that were given, for per-operation checks.
    pub fn present_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        let mut add = |name, present: bool| {
            if present {
                fields.push(name)
            }
        };
        add("profile", self.profile.is_some());
        add("workspace", self.workspace.is_some());
        add("dataset", self.dataset.is_some());
        add("wait", self.wait.is_some());
        add("timeout", self.timeout.is_some());
        add("ifRunning", self.if_running.is_some());
        add("onTimeout", self.on_timeout.is_some());
        add("notifyOption", self.notify_option.is_some());
        add("refresh", self.refresh.is_some());
        add("poll", self.poll.is_some());
        add("grace", self.grace.is_some());
        add("requestId", self.request_id.is_some());
        add("maxAge", self.max_age.is_some());
        add("resource", self.resource.is_some());
        add("resources", self.resources.is_some());
        add("profiles", self.profiles.is_some());
        add("within", self.within.is_some());
        add("filter", self.filter.is_some());
        add("limit", self.limit.is_some());
        add("outputFile", self.output_file.is_some());
        add("dataflow", self.dataflow.is_some());
        add("generation", self.generation.is_some());
        add("processType", self.process_type.is_some());
        add("executeOption", self.execute_option.is_some());
        add("then", self.then.is_some());
        add("maxParallel", self.max_parallel.is_some());
        add("flow", self.flow.is_some());
        add("body", self.body.is_some());
        add("monitor", self.monitor.is_some());
        add("report", self.report.is_some());
        add("targets", self.targets.is_some());
        add(
            "maxParallelPerCapacity",
            self.max_parallel_per_capacity.is_some(),
        );
        fields
    }
}

const SECRET_HELP: &str = "secrets never travel in the task (Kestra stores it in plain text); \
set them in the environment, e.g. PBIOPS_CLIENT_SECRET or PBIOPS_PROFILE_<NAME>_CLIENT_SECRET from Kestra's secret()";

/// Parses task JSON text into a [`RawTask`].
pub fn parse(text: &str) -> Result<RawTask, Error> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::task(
            "(task)",
            format!("not valid JSON: {e}"),
            "the task is one JSON object, e.g. {\"operation\":\"dataset.refresh\",\"workspace\":\"Sales\",\"dataset\":\"Sales Model\"}",
        )
    })?;
    from_value(value)
}

/// Checks a task given as a JSON value (from text or from the CLI) and deserializes it.
pub fn from_value(value: Value) -> Result<RawTask, Error> {
    if !value.is_object() {
        return Err(Error::task(
            "(task)",
            "the task must be a JSON object",
            "write {\"operation\": \"dataset.refresh\", …}",
        ));
    }
    reject_secrets("", &value)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde_json appends "at line N column M" for text input only; the path says more.
        let message = inner
            .split(" at line ")
            .next()
            .unwrap_or(&inner)
            .to_string();
        if let Some(field) = unknown_field(&message) {
            // The path already ends with the unknown key; fall back to the key alone.
            let full = if path == "." || path.is_empty() {
                field.to_string()
            } else {
                path
            };
            return Error::task(
                full,
                "unknown field",
                "field names are camelCase; see the task contract in the README",
            );
        }
        Error::task(
            if path == "." {
                "(task)".to_string()
            } else {
                path
            },
            message,
            "see the task contract in the README for each field's type",
        )
    })
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Refuses keys named like secrets and values shaped like tokens, signed URLs or keys.
fn reject_secrets(path: &str, value: &Value) -> Result<(), Error> {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key_looks_secret(key) {
                    return Err(Error::task(here, "looks like a secret", SECRET_HELP));
                }
                reject_secrets(&here, v)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                reject_secrets(&format!("{path}[{i}]"), v)?;
            }
            Ok(())
        }
        Value::String(s) if value_looks_secret(s) => Err(Error::task(
            if path.is_empty() { "(task)" } else { path },
            "holds a value that looks like a secret (a token, a signed URL or a key)",
            SECRET_HELP,
        )),
        _ => Ok(()),
    }
}

fn key_looks_secret(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "apikey",
        "credential",
        "privatekey",
        "certificate",
        "bearer",
        "sig",
    ]
    .iter()
    .any(|needle| k == *needle || (needle.len() > 3 && k.contains(needle)))
}

fn value_looks_secret(s: &str) -> bool {
    let jwt = s.starts_with("eyJ") && s.matches('.').count() >= 2;
    let lower = s.to_ascii_lowercase();
    jwt || lower.starts_with("bearer ")
        || lower.contains("sig=")
        || lower.contains("client_secret=")
        || s.contains("-----BEGIN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let err = parse(r#"{"operation":"dataset.refresh","refresh":{"tpye":"Full"}}"#)
            .expect_err("fails");
        assert_eq!(
            err.to_string(),
            "invalid task: `refresh.tpye`: unknown field"
        );
        let err = parse(r#"{"operation":"dataset.refresh","wiat":true}"#).expect_err("fails");
        assert_eq!(err.to_string(), "invalid task: `wiat`: unknown field");
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = parse(r#"{"refresh":{"maxParallelism":"four"}}"#).expect_err("fails");
        assert!(
            err.to_string()
                .starts_with("invalid task: `refresh.maxParallelism`: invalid type"),
            "{err}"
        );
        let err = parse(r#"{"refresh":{"objects":[{"partition":"p"}]}}"#).expect_err("fails");
        assert!(err.to_string().contains("`refresh.objects[0]`"), "{err}");
    }

    #[test]
    fn secrets_are_refused_without_echoing_them() {
        let canary = "eyJhbGciOi.CANARYpayload.sig";
        for text in [
            r#"{"clientSecret":"x"}"#.to_string(),
            r#"{"profile":{"password":"x"}}"#.to_string(),
            format!(r#"{{"workspace":"{canary}"}}"#),
            r#"{"dataset":"https://x/y?sp=1&sig=abc"}"#.to_string(),
            r#"{"accessToken":"x"}"#.to_string(),
        ] {
            let err = parse(&text).expect_err("fails");
            assert!(err.to_string().contains("secret"), "{err}");
            assert!(!err.to_string().contains("CANARY"));
            assert_eq!(err.exit_code().code(), 2);
        }
    }

    #[test]
    fn ordinary_names_are_not_mistaken_for_secrets() {
        assert!(
            parse(
                r#"{"operation":"dataset.refresh","workspace":"Signals","dataset":"Token usage"}"#
            )
            .is_ok()
        );
    }
}
