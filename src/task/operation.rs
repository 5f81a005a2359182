//! The operations, and the one table that ties each to its raw type: [`Operation`] (the names),
//! [`RawTask`] (one raw type per operation, tagged by `operation`: the schema's shape), reading
//! a task value into it, and `pbiops schema`.
//!
//! Adding an operation is one line in the table below, its raw type with a `validate` method, and
//! its variant of [`Task`].

use serde::Serialize;
use serde_json::Value;

use super::admin::{RawCredentialsCheck, RawHistory, RawTokenGet, RawTokenRefresh};
use super::dataflow::RawDataflowRefresh;
use super::dataset::{RawDatasetCancel, RawDatasetRefresh, RawDatasetStatus};
use super::items::{RawFlowTrigger, RawInventory, RawReportRefresh};
use super::night::{RawPreflight, RawTimeline};
use super::words::words;
use super::{Task, json};
use crate::error::Error;

macro_rules! operations {
    ($($variant:ident = $name:literal => $raw:ty,)+) => {
        /// An operation, as written in tasks and outputs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $(#[doc = concat!("`", $name, "`")] $variant,)+
        }

        words!(Operation { $($variant = $name),+ });

        /// A task as written: one raw type per operation, tagged by `operation`.
        #[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
        #[serde(tag = "operation")]
        pub enum RawTask {
            $(#[doc = concat!("`", $name, "`")] #[serde(rename = $name)] $variant($raw),)+
        }

        impl RawTask {
            /// Reads `operation`'s fields from the task (without its `operation` key).
            fn read(operation: Operation, value: Value) -> Result<RawTask, Error> {
                Ok(match operation {
                    $(Operation::$variant => RawTask::$variant(json::deserialize(value, $name)?),)+
                })
            }

            /// Checks every rule and resolves every default.
            pub fn validate(self) -> Result<Task, Error> {
                match self {
                    $(RawTask::$variant(raw) => raw.validate(),)+
                }
            }
        }
    };
}

operations! {
    DatasetRefresh = "dataset.refresh" => RawDatasetRefresh,
    DatasetCancel = "dataset.cancel" => RawDatasetCancel,
    DatasetStatus = "dataset.status" => RawDatasetStatus,
    DataflowRefresh = "dataflow.refresh" => RawDataflowRefresh,
    ReportRefresh = "report.refresh" => RawReportRefresh,
    FlowTrigger = "flow.trigger" => RawFlowTrigger,
    Inventory = "inventory" => RawInventory,
    TokenGet = "token.get" => RawTokenGet,
    TokenRefresh = "token.refresh" => RawTokenRefresh,
    CredentialsCheck = "credentials.check" => RawCredentialsCheck,
    History = "history" => RawHistory,
    Preflight = "preflight" => RawPreflight,
    Timeline = "timeline" => RawTimeline,
}

impl RawTask {
    /// Parses task text: the strict JSON checks (size, duplicate keys, control characters, secrets), then [`RawTask::from_value`].
    pub fn parse(text: &str) -> Result<RawTask, Error> {
        Self::from_value(json::parse(text)?)
    }

    /// Reads a checked task value: its `operation`, then that operation's own fields (unknown
    /// ones refused, errors naming the path).
    pub fn from_value(mut value: Value) -> Result<RawTask, Error> {
        let help = || format!("one of: {}", names().join(", "));
        let given = value.as_object_mut().and_then(|m| m.remove("operation"));
        let operation = match given {
            None => return Err(Error::task("operation", "missing", help())),
            Some(Value::String(name)) => Operation::from_name(&name).ok_or_else(|| {
                Error::task(
                    "operation",
                    format!("`{name}` is not an operation of this build"),
                    help(),
                )
            })?,
            Some(_) => return Err(Error::task("operation", "must be a string", help())),
        };
        Self::read(operation, value)
    }

    /// The task as compact JSON without the fields left out, for the operation log.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        strip_nulls(&mut value);
        value.to_string()
    }
}

fn names() -> Vec<&'static str> {
    Operation::ALL.iter().map(|o| o.as_str()).collect()
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The task's JSON Schema: `operation` is an enum, and each operation has its own sub-schema
/// (`oneOf`, told apart by `operation`'s constant), with its own fields and no others.
pub fn schema() -> schemars::Schema {
    let mut schema = schemars::schema_for!(RawTask);
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".into(), "pbiops task".into());
        object.insert(
            "description".into(),
            "A pbiops task: one JSON object whose `operation` selects the fields that apply."
                .into(),
        );
        object.insert("type".into(), "object".into());
        object.insert(
            "properties".into(),
            serde_json::json!({"operation": {"$ref": "#/$defs/Operation"}}),
        );
        object.insert("required".into(), serde_json::json!(["operation"]));
        let mut generator = schemars::SchemaGenerator::default();
        let operation = <Operation as schemars::JsonSchema>::json_schema(&mut generator);
        if let Some(defs) = object.get_mut("$defs").and_then(Value::as_object_mut) {
            defs.insert("Operation".into(), operation.to_value());
        }
    }
    let mut value = schema.to_value();
    without_null(&mut value);
    schemars::Schema::try_from(value).unwrap_or_default()
}

/// An absent field takes its default: `null` is accepted too, but not advertised, so that an
/// editor offers the real values and a validator names them (`anyOf: [X, null]` → `X`).
fn without_null(value: &mut Value) {
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(without_null);
        }
        return;
    };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(any)) = map.get("anyOf") {
        let kept: Vec<Value> = any
            .iter()
            .filter(|s| s.get("type").is_none_or(|t| t != "null"))
            .cloned()
            .collect();
        if kept.len() == 1 && kept.len() < any.len() {
            map.remove("anyOf");
            if let Value::Object(inner) = &kept[0] {
                for (k, v) in inner {
                    map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    map.values_mut().for_each(without_null);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_advertised_without_null() {
        let text = schema().to_value().to_string();
        assert!(!text.contains("\"null\""), "{text}");
    }

    #[test]
    fn every_operation_has_one_sub_schema_and_the_enum_lists_them_all() {
        let schema = schema().to_value();
        let consts: Vec<&str> = schema["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .map(|s| {
                s["properties"]["operation"]["const"]
                    .as_str()
                    .expect("const")
            })
            .collect();
        assert_eq!(consts, names());
        assert_eq!(
            schema["$defs"]["Operation"]["enum"],
            serde_json::json!(names())
        );
    }
}
