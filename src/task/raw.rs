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
// Fields mirror the JSON task one to one; their meaning is documented on `Task` and in the README.
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTask {
    pub operation: Option<String>,
    pub profile: Option<String>,
    pub workspace: Option<String>,
    pub dataset: Option<String>,
    pub wait: Option<bool>,
    pub timeout: Option<Value>,
    pub if_running: Option<String>,
    pub on_timeout: Option<String>,
    pub notify_option: Option<String>,
    pub refresh: Option<RawRefresh>,
    pub poll: Option<RawPoll>,
    pub grace: Option<Value>,
    pub request_id: Option<String>,
    pub max_age: Option<Value>,
    pub resource: Option<String>,
    pub resources: Option<Vec<String>>,
    pub profiles: Option<Vec<String>>,
    pub within: Option<Value>,
    pub filter: Option<RawFilter>,
    pub limit: Option<u32>,
    pub output_file: Option<String>,
    pub dataflow: Option<String>,
    pub generation: Option<u8>,
    pub process_type: Option<String>,
    pub execute_option: Option<String>,
    pub then: Option<String>,
    pub max_parallel: Option<usize>,
    pub flow: Option<String>,
    pub body: Option<Value>,
    pub monitor: Option<RawMonitor>,
    pub report: Option<String>,
}

/// `flow.trigger`'s `monitor`: the Gen1 dataflow the flow refreshes.
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMonitor {
    pub workspace: String,
    pub dataflow: String,
}

/// `history`'s filter.
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawFilter {
    pub operation: Option<String>,
    pub status: Option<String>,
    pub profile: Option<String>,
    pub target: Option<String>,
    pub since: Option<Value>,
}

/// The enhanced refresh body as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawRefresh {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub commit_mode: Option<String>,
    pub max_parallelism: Option<u32>,
    pub retry_count: Option<u32>,
    pub objects: Option<Vec<RawObject>>,
    pub apply_refresh_policy: Option<bool>,
    pub effective_date: Option<String>,
    pub timeout: Option<Value>,
}

/// One table or partition of an enhanced refresh.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawObject {
    pub table: String,
    pub partition: Option<String>,
}

/// Bounds of the polling interval.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawPoll {
    pub min: Option<Value>,
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
