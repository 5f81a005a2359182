//! The refresh request body: standard (nothing, or `notifyOption` alone) or enhanced (anything
//! else), validated as reference §4 lists, from the raw JSON so that a misspelt field is caught
//! instead of silently dropped by a typed parse.

use crate::refresh::{Enhanced, PARTIAL_BATCH_MESSAGE};
use jiff::SignedDuration;
use jiff::civil::{Date, DateTime};
use serde_json::{Map, Value};

/// What a POST to `/refreshes` asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RefreshRequest {
    /// No body, or `notifyOption` only.
    Standard,
    /// Any other field.
    Enhanced(Enhanced),
}

const NOTIFY_OPTIONS: &[&str] = &["NoNotification", "MailOnFailure", "MailOnCompletion"];
const TYPES: &[&str] = &[
    "Full",
    "ClearValues",
    "Calculate",
    "DataOnly",
    "Automatic",
    "Defragment",
];
const COMMIT_MODES: &[&str] = &["Transactional", "PartialBatch"];
const FIELDS: &[&str] = &[
    "type",
    "commitMode",
    "maxParallelism",
    "retryCount",
    "objects",
    "applyRefreshPolicy",
    "effectiveDate",
    "timeout",
];

/// Classifies and validates a body; the error names the offending field.
pub(crate) fn parse(body: Option<&Map<String, Value>>) -> Result<RefreshRequest, String> {
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return Ok(RefreshRequest::Standard);
    };
    if body.len() == 1 {
        if let Some(notify) = body.get("notifyOption") {
            enum_value(notify, "notifyOption", NOTIFY_OPTIONS)?;
            return Ok(RefreshRequest::Standard);
        }
    }
    if body.contains_key("notifyOption") {
        return Err(
            "'notifyOption' must be excluded from the request body of an enhanced refresh"
                .to_owned(),
        );
    }
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "'{unknown}' is not a refresh request property; expected one of notifyOption, {}",
            FIELDS.join(", ")
        ));
    }
    let kind = match body.get("type") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("add") => {
            return Err("'type': the Add refresh type isn't supported".to_owned());
        }
        Some(value) => enum_value(value, "type", TYPES)?,
        None => "Automatic",
    };
    let commit_mode = match body.get("commitMode") {
        Some(value) => enum_value(value, "commitMode", COMMIT_MODES)?,
        None => "Transactional",
    };
    for name in ["maxParallelism", "retryCount"] {
        if let Some(value) = body.get(name) {
            if value.as_u64().is_none() {
                return Err(format!(
                    "'{name}' must be a non-negative integer, got {value}"
                ));
            }
        }
    }
    let retry_count = body.get("retryCount").and_then(Value::as_u64).unwrap_or(0);
    let objects = match body.get("objects") {
        Some(value) => objects(value)?,
        None => Vec::new(),
    };
    let apply_refresh_policy = match body.get("applyRefreshPolicy") {
        None => true,
        Some(Value::Bool(b)) => *b,
        // The swagger's own example sends the string.
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(format!(
                "'applyRefreshPolicy' must be a boolean, got {other}"
            ));
        }
    };
    if let Some(value) = body.get("effectiveDate") {
        let valid = value.as_str().is_some_and(|s| {
            s.parse::<Date>().is_ok()
                || s.parse::<DateTime>().is_ok()
                || s.parse::<jiff::Timestamp>().is_ok()
        });
        if !valid {
            return Err(format!(
                "'effectiveDate' must be a date or date-time, got {value}"
            ));
        }
    }
    if let Some(value) = body.get("timeout") {
        let timeout = value.as_str().and_then(timeout).ok_or_else(|| {
            format!("'timeout' must match hh:mm:ss (at most 23:59:59), got {value}")
        })?;
        let attempts = i32::try_from(retry_count.saturating_add(1)).unwrap_or(i32::MAX);
        let total = timeout.checked_mul(attempts);
        if total.is_none_or(|t| t > SignedDuration::from_hours(24)) {
            return Err(
                "'timeout' times (retryCount + 1) attempts must not exceed 24 hours".to_owned(),
            );
        }
    }
    let engine_error = (commit_mode == "PartialBatch" && apply_refresh_policy)
        .then(|| PARTIAL_BATCH_MESSAGE.to_owned());
    Ok(RefreshRequest::Enhanced(Enhanced {
        kind: kind.to_owned(),
        commit_mode: commit_mode.to_owned(),
        objects,
        engine_error,
    }))
}

/// A case-insensitive enum value, returned in the service's PascalCase.
fn enum_value(value: &Value, name: &str, allowed: &[&'static str]) -> Result<&'static str, String> {
    value
        .as_str()
        .and_then(|s| allowed.iter().find(|a| a.eq_ignore_ascii_case(s)).copied())
        .ok_or_else(|| {
            format!(
                "'{name}' must be one of {}, got {value}",
                allowed.join(", ")
            )
        })
}

fn objects(value: &Value) -> Result<Vec<(String, Option<String>)>, String> {
    let Some(items) = value.as_array() else {
        return Err(format!("'objects' must be an array, got {value}"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Some(object) = item.as_object() else {
                return Err(format!("'objects[{i}]' must be an object with a table"));
            };
            if let Some(key) = object.keys().find(|k| *k != "table" && *k != "partition") {
                return Err(format!(
                    "'objects[{i}].{key}' is not an object property; expected table, partition"
                ));
            }
            let table = match object.get("table") {
                Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
                _ => {
                    return Err(format!(
                        "'objects[{i}].table' is required and must be a non-empty string"
                    ));
                }
            };
            let partition = match object.get("partition") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if !p.trim().is_empty() => Some(p.clone()),
                Some(other) => {
                    return Err(format!(
                        "'objects[{i}].partition' must be a non-empty string, got {other}"
                    ));
                }
            };
            Ok((table, partition))
        })
        .collect()
}

/// `^([0-1]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$` as a duration.
fn timeout(text: &str) -> Option<SignedDuration> {
    let mut parts = text.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.is_empty() || h.len() > 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !(digits(h) && digits(m) && digits(s)) {
        return None;
    }
    let (h, m, s): (i64, i64, i64) = (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?);
    (h <= 23 && m <= 59 && s <= 59).then(|| SignedDuration::from_secs(h * 3600 + m * 60 + s))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(body: Value) -> Result<RefreshRequest, String> {
        parse(body.as_object())
    }

    #[test]
    fn notify_option_alone_is_standard() {
        assert_eq!(run(json!({})), Ok(RefreshRequest::Standard));
        assert_eq!(
            run(json!({"notifyOption": "nonotification"})),
            Ok(RefreshRequest::Standard)
        );
        assert!(
            run(json!({"notifyOption": "Always"}))
                .unwrap_err()
                .contains("notifyOption")
        );
    }

    #[test]
    fn enums_are_case_insensitive_and_echoed_in_pascal_case() {
        let Ok(RefreshRequest::Enhanced(e)) =
            run(json!({"type": "full", "commitMode": "transactional"}))
        else {
            panic!("expected enhanced");
        };
        assert_eq!(
            (e.kind.as_str(), e.commit_mode.as_str()),
            ("Full", "Transactional")
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (
                json!({"type": "Full", "notifyOption": "NoNotification"}),
                "notifyOption",
            ),
            (json!({"type": "Add"}), "type"),
            (json!({"commitMode": "Atomic"}), "commitMode"),
            (json!({"maxParallelism": -1}), "maxParallelism"),
            (json!({"retryCount": 1.5}), "retryCount"),
            (json!({"objects": [{"partition": "p"}]}), "objects[0].table"),
            (
                json!({"objects": [{"table": "t", "tabel": "x"}]}),
                "objects[0].tabel",
            ),
            (json!({"timeout": "24:00:00"}), "timeout"),
            (json!({"timeout": "12:00:00", "retryCount": 2}), "timeout"),
            (json!({"effectiveDate": "soon"}), "effectiveDate"),
            (json!({"applyRefreshPolicy": 1}), "applyRefreshPolicy"),
            (json!({"Type": "Full"}), "Type"),
        ];
        for (body, field) in cases {
            let err = run(body.clone()).unwrap_err();
            assert!(err.contains(field), "{body} -> {err}");
        }
    }

    #[test]
    fn partial_batch_with_a_policy_is_accepted_but_doomed() {
        let Ok(RefreshRequest::Enhanced(e)) = run(json!({"commitMode": "partialBatch"})) else {
            panic!("expected enhanced");
        };
        assert_eq!(e.engine_error.as_deref(), Some(PARTIAL_BATCH_MESSAGE));
        let Ok(RefreshRequest::Enhanced(e)) = run(
            json!({"commitMode": "PartialBatch", "applyRefreshPolicy": "false", "timeout": "2:30:00"}),
        ) else {
            panic!("expected enhanced");
        };
        assert_eq!(e.engine_error, None);
    }
}
