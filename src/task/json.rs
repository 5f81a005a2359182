//! Stage one of reading a task: text → JSON value, strictly, then value → one operation's raw type.
//!
//! Before any field is read, the whole task is checked for what no field may hold: more than
//! [`MAX_TASK_BYTES`], a key given twice (JSON parsers keep the last one silently), control
//! characters (a NUL or a CR/LF in a name would be sent), and anything that looks like a secret,
//! because Kestra stores the task in plain text with the execution. Errors name the JSON path
//! (`targets[2].refresh.commitMode`), never a value that might be a secret.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::Error;

/// The largest task accepted, in bytes of JSON text: a task names items and options, and even a
/// fleet of a thousand targets stays far below this.
pub const MAX_TASK_BYTES: usize = 1 << 20;

/// Separates a message from its `help:` hint inside a serde error (serde errors are one string).
const HELP_SEP: char = '\u{1f}';

const SECRET_HELP: &str = "secrets never travel in the task (Kestra stores it in plain text); \
set them in the environment, e.g. PBIOPS_CLIENT_SECRET or PBIOPS_PROFILE_{NAME}_CLIENT_SECRET from Kestra's secret()";

/// A serde error carrying a message and its hint, split again by [`deserialize`].
pub(super) fn invalid<E: de::Error>(message: impl fmt::Display, help: impl fmt::Display) -> E {
    E::custom(format_args!("{message}{HELP_SEP}{help}"))
}

/// Puts an error's field under `prefix` (`timeout` in `targets[2]` → `targets[2].timeout`; an
/// empty field is the prefix itself).
pub(super) fn within(prefix: &str, e: Error) -> Error {
    match e {
        Error::InvalidTask {
            field,
            message,
            help,
        } => Error::InvalidTask {
            field: if field.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{field}")
            },
            message,
            help,
        },
        other => other,
    }
}

/// Parses task text: size cap, duplicate keys, then the checks of [`check`].
pub fn parse(text: &str) -> Result<Value, Error> {
    size(text.len())?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict { path: String::new() }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let text = e.to_string();
            match text.split_once(HELP_SEP) {
                Some((path, message)) => Error::task(
                    path,
                    message,
                    "give each key once: JSON readers disagree on which copy wins",
                ),
                None => Error::task(
                    "(task)",
                    format!("not valid JSON: {text}"),
                    "the task is one JSON object, e.g. {\"operation\":\"dataset.refresh\",\"workspace\":\"Sales\",\"dataset\":\"Sales Model\"}",
                ),
            }
        })?;
    check(&value)?;
    Ok(value)
}

/// Refuses a task over [`MAX_TASK_BYTES`].
pub fn size(bytes: usize) -> Result<(), Error> {
    if bytes > MAX_TASK_BYTES {
        return Err(Error::task(
            "(task)",
            format!("is {bytes} bytes, more than the limit of {MAX_TASK_BYTES} (1 MiB)"),
            "a task names items and options; split a larger fleet into several tasks",
        ));
    }
    Ok(())
}

/// Checks a task value: an object, no secret-looking key or value, no control characters
/// (except inside `flow.trigger`'s free-form `body`, whose strings are escaped when posted).
pub fn check(value: &Value) -> Result<(), Error> {
    let Value::Object(map) = value else {
        return Err(Error::task(
            "(task)",
            "the task must be a JSON object",
            "write {\"operation\": \"dataset.refresh\", …}",
        ));
    };
    for (key, v) in map {
        key_ok(key, key)?;
        walk(key, v, key != "body")?;
    }
    Ok(())
}

fn key_ok(path: &str, key: &str) -> Result<(), Error> {
    if key_looks_secret(key) {
        return Err(Error::task(path, "looks like a secret", SECRET_HELP));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::task(
            "(task)",
            "a key holds a control character",
            "keys are the camelCase field names of the task contract",
        ));
    }
    Ok(())
}

fn walk(path: &str, value: &Value, plain: bool) -> Result<(), Error> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(key, v)| {
            let here = format!("{path}.{key}");
            key_ok(&here, key)?;
            walk(&here, v, plain)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| walk(&format!("{path}[{i}]"), v, plain)),
        Value::String(s) if value_looks_secret(s) => Err(Error::task(
            path,
            "holds a value that looks like a secret (a token, a signed URL or a key)",
            SECRET_HELP,
        )),
        Value::String(s) if plain && s.chars().any(char::is_control) => Err(Error::task(
            path,
            "holds a control character (a NUL, a line break, a tab…)",
            "names, ids and options are one line of printable text",
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

/// Deserializes one operation's raw type from the task (without its `operation` key), turning
/// serde's errors into task errors that name the path and carry a hint.
pub fn deserialize<T: DeserializeOwned>(value: Value, operation: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." || p.is_empty() => String::new(),
            p => p,
        };
        let inner = e.into_inner().to_string();
        if let Some((message, help)) = inner.split_once(HELP_SEP) {
            return Error::task(or_task(&path), message, help);
        }
        if let Some(rest) = inner.strip_prefix("unknown field `") {
            return unknown_field(&path, rest, operation);
        }
        if let Some(rest) = inner.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or_default();
            let full = if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            return Error::task(full, "missing", format!("{operation} needs `{field}`"));
        }
        Error::task(
            or_task(&path),
            inner,
            "see `pbiops schema` or the README's task contract for each field's type",
        )
    })
}

fn or_task(path: &str) -> &str {
    if path.is_empty() { "(task)" } else { path }
}

/// `unknown field `x`, expected one of `a`, `b`` → the path of `x`, with the fields that exist
/// (and the closest one) in the hint.
fn unknown_field(path: &str, rest: &str, operation: &str) -> Error {
    let mut ticked = rest.split('`').step_by(2);
    let field = ticked.next().unwrap_or_default();
    let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
    // serde's path already ends with the unknown key.
    let full = if path.is_empty() { field } else { path };
    let closest = expected
        .iter()
        .map(|e| (strsim::jaro_winkler(e, field), *e))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, e)| format!("did you mean `{e}`? "))
        .unwrap_or_default();
    let top = !full.contains(['.', '[']);
    let message = if top {
        format!("is not a field of {operation}")
    } else {
        "unknown field".to_string()
    };
    let takes = if expected.is_empty() {
        "no fields".to_string()
    } else {
        expected.join(", ")
    };
    let whose = if top { operation } else { "this object" };
    Error::task(full, message, format!("{closest}{whose} takes: {takes}"))
}

/// A JSON value read with every key path tracked, refusing a key given twice.
struct Strict {
    path: String,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict {
            path: format!("{}[{}]", self.path, items.len()),
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "{path}{HELP_SEP}is given twice"
                )));
            }
            let value = map.next_value_seed(Strict { path })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        for (text, field) in [
            (r#"{"workspace":"a","workspace":"b"}"#, "`workspace`"),
            (
                r#"{"refresh":{"type":"Full","type":"Calculate"}}"#,
                "`refresh.type`",
            ),
            (r#"{"targets":[{},{"id":"a","id":"b"}]}"#, "`targets[1].id`"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.to_string().contains(field), "{err}");
            assert!(err.to_string().contains("twice"), "{err}");
        }
    }

    #[test]
    fn control_characters_are_refused_outside_a_flow_body() {
        for text in [
            "{\"workspace\":\"Sa\\u0000les\"}",
            "{\"dataset\":\"a\\r\\nb\"}",
            "{\"targets\":[{\"dataset\":\"a\\tb\"}]}",
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.to_string().contains("control character"), "{err}");
        }
        assert!(parse("{\"body\":{\"note\":\"line 1\\nline 2\"}}").is_ok());
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
        assert!(parse(r#"{"workspace":"Signals","dataset":"Token usage"}"#).is_ok());
    }

    #[test]
    fn oversized_and_malformed_tasks_are_refused() {
        let big = format!(r#"{{"workspace":"{}"}}"#, "x".repeat(MAX_TASK_BYTES));
        assert!(parse(&big).expect_err("big").to_string().contains("1 MiB"));
        assert!(parse("[1]").is_err());
        assert!(parse("{} {}").is_err());
        assert!(parse(r#"{"timeout":1e400}"#).is_err());
    }
}
