//! Reading the operation log back: `history`, and the running operation a retried run
//! reattaches to.
//!
//! Rows come newest first. Filters compare case-insensitively, and a target matches a workspace
//! or an item by id or by name, so people can ask with whatever they have at hand.

use serde::{Serialize, Serializer};

use super::Store;
use super::conn::DbError;
use super::dialect::Cond;
use super::schema::OPERATIONS;
use super::values::{Cols, Value};
use crate::error::Error;
use jiff::Timestamp;

/// Which operations [`Store::operations`] returns; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// The operation (case-insensitive).
    pub operation: Option<String>,
    /// The profile (case-insensitive).
    pub profile: Option<String>,
    /// The status (case-insensitive).
    pub status: Option<String>,
    /// A workspace or item, by id or name (case-insensitive).
    pub target: Option<String>,
    /// Only operations started at or after this instant.
    pub since: Option<Timestamp>,
    /// At most this many rows, newest first; `None` for all.
    pub limit: Option<u32>,
}

/// One Kestra task run's attempts at one operation, as the store keys them.
#[derive(Debug, Clone, Copy)]
pub struct TaskRun<'a> {
    /// The operation.
    pub operation: &'a str,
    /// The profile.
    pub profile: &'a str,
    /// `KESTRA_EXECUTION_ID`.
    pub execution_id: &'a str,
    /// `KESTRA_TASKRUN_ID`: the same across a task's retries.
    pub taskrun_id: &'a str,
}

/// One row of the operation log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationRow {
    /// The row id (the `operationId` output).
    pub id: i64,
    /// The operation.
    pub operation: String,
    /// The profile.
    pub profile: Option<String>,
    /// `Running`, or how it ended.
    pub status: String,
    /// What it acted on.
    pub item_kind: Option<String>,
    /// The workspace id.
    pub workspace_id: Option<String>,
    /// The workspace name.
    pub workspace_name: Option<String>,
    /// The item id.
    pub item_id: Option<String>,
    /// The item name.
    pub item_name: Option<String>,
    /// The service's request id (e.g. the refresh's).
    pub request_id: Option<String>,
    /// Whether the run attached to a refresh an earlier run had started.
    pub attached: bool,
    /// When it started.
    pub started_at: Timestamp,
    /// When the row was last written.
    pub updated_at: Timestamp,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// How long it took.
    pub duration_seconds: Option<f64>,
    /// The exit code.
    pub exit_code: Option<i32>,
    /// The error code.
    pub error_code: Option<String>,
    /// The error message.
    pub error_message: Option<String>,
    /// `KESTRA_EXECUTION_ID`.
    pub kestra_execution_id: Option<String>,
    /// `KESTRA_TASKRUN_ID`.
    pub kestra_taskrun_id: Option<String>,
    /// `KESTRA_FLOW_ID`.
    pub kestra_flow_id: Option<String>,
    /// `KESTRA_NAMESPACE`.
    pub kestra_namespace: Option<String>,
    /// The pbiops version that ran it.
    pub pbiops_version: String,
    /// The task (JSON in the output file).
    #[serde(serialize_with = "as_json")]
    pub task: Option<String>,
    /// The outputs (JSON in the output file).
    #[serde(serialize_with = "as_json")]
    pub outputs: Option<String>,
}

/// Writes stored JSON as JSON (or as a string, if it does not parse).
fn as_json<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        Some(Ok(json)) => json.serialize(s),
        _ => value.serialize(s),
    }
}

fn columns() -> Vec<&'static str> {
    OPERATIONS.columns.iter().map(|c| c.name).collect()
}

fn read_row(c: &mut Cols<'_, '_>) -> Result<OperationRow, DbError> {
    Ok(OperationRow {
        id: c.int()?.unwrap_or_default(),
        operation: c.required_text()?,
        profile: c.text()?,
        status: c.required_text()?,
        item_kind: c.text()?,
        workspace_id: c.text()?,
        workspace_name: c.text()?,
        item_id: c.text()?,
        item_name: c.text()?,
        request_id: c.text()?,
        attached: c.int()?.unwrap_or_default() != 0,
        started_at: c.required_time()?,
        updated_at: c.required_time()?,
        ended_at: c.time()?,
        duration_seconds: c.float()?,
        exit_code: c.int()?.and_then(|v| i32::try_from(v).ok()),
        error_code: c.text()?,
        error_message: c.text()?,
        kestra_execution_id: c.text()?,
        kestra_taskrun_id: c.text()?,
        kestra_flow_id: c.text()?,
        kestra_namespace: c.text()?,
        pbiops_version: c.required_text()?,
        task: c.text()?,
        outputs: c.text()?,
    })
}

impl Store {
    /// The newest earlier attempt of one Kestra task run on `item_id` (any status, started by an
    /// earlier process, not this one: a fleet may list one item twice): what a retried run
    /// reattaches to or adopts instead of triggering again.
    pub async fn attempt_of_task_run(
        &self,
        task_run: &TaskRun<'_>,
        item_id: &str,
        current: Option<i64>,
    ) -> Result<Option<OperationRow>, Error> {
        let sql = self.dialect().select(
            OPERATIONS.name,
            &columns(),
            &[
                Cond::Eq("item_id"),
                Cond::Eq("operation"),
                Cond::Eq("profile"),
                Cond::Eq("kestra_execution_id"),
                Cond::Eq("kestra_taskrun_id"),
            ],
            &[("started_at", true), ("id", true)],
            true,
        );
        let params = vec![
            Value::text(item_id),
            Value::text(task_run.operation),
            Value::text(task_run.profile),
            Value::text(task_run.execution_id),
            Value::text(task_run.taskrun_id),
            // The row limit: this process's own rows may be among the newest.
            Value::Int(Some(50)),
        ];
        let action = format!(
            "look up an earlier attempt of {} on {item_id}",
            task_run.operation
        );
        let rows = self
            .call(&action, move |s| s.query(&sql, &params, read_row))
            .await?;
        let first = self.inner.first.get().copied();
        Ok(rows
            .into_iter()
            .filter(|r| first.is_none_or(|f| r.id < f))
            .find(|r| Some(r.id) != current))
    }

    /// One row of the operation log, by id.
    pub async fn operation(&self, id: i64) -> Result<Option<OperationRow>, Error> {
        let sql = self
            .dialect()
            .select(OPERATIONS.name, &columns(), &[Cond::Eq("id")], &[], false);
        let params = vec![Value::Int(Some(id))];
        let rows = self
            .call(&format!("read operation {id}"), move |s| {
                s.query(&sql, &params, read_row)
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The operation log, newest first, filtered.
    pub async fn operations(&self, filter: &HistoryFilter) -> Result<Vec<OperationRow>, Error> {
        const TARGETS: &[&str] = &["workspace_id", "workspace_name", "item_id", "item_name"];
        let mut conds = Vec::new();
        let mut params = Vec::new();
        for (column, value) in [
            ("operation", &filter.operation),
            ("profile", &filter.profile),
            ("status", &filter.status),
        ] {
            if let Some(value) = value {
                conds.push(Cond::EqNoCase(column));
                params.push(Value::text(value));
            }
        }
        if let Some(target) = &filter.target {
            conds.push(Cond::AnyEqNoCase(TARGETS));
            params.extend(TARGETS.iter().map(|_| Value::text(target)));
        }
        if let Some(since) = filter.since {
            conds.push(Cond::AtLeast("started_at"));
            params.push(Value::Time(Some(since)));
        }
        if let Some(limit) = filter.limit {
            params.push(Value::Int(Some(i64::from(limit))));
        }
        let sql = self.dialect().select(
            OPERATIONS.name,
            &columns(),
            &conds,
            &[("started_at", true), ("id", true)],
            filter.limit.is_some(),
        );
        self.call("read the operation history", move |s| {
            s.query(&sql, &params, read_row)
        })
        .await
    }
}
