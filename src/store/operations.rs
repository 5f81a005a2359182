//! The operation log: one row per operation, written at start, when the request id is known,
//! and at the end; read back for `history` and for reattaching to a refresh after a retry.
//!
//! A row answers "what ran, as whom, on what, and how did it end?". It holds the task (which the
//! task contract keeps free of secrets) and the outputs, never a token; error messages are cut
//! to their column's size rather than failing the record.

use jiff::Timestamp;
use serde::Serialize;

use super::conn::DbError;
use super::dialect::Cond;
use super::schema::OPERATIONS;
use super::values::Value;
use super::{Store, bounded, now};
use crate::error::Error;

/// The status of an operation that has not ended.
pub const RUNNING: &str = "Running";
/// The status of an operation whose run stopped and whose refresh another run took over.
pub const ABANDONED: &str = "Abandoned";
/// The status of a row whose run was stopped by a signal while its refresh went on: a retry of
/// the same task run follows that refresh.
pub const INTERRUPTED: &str = "Interrupted";

/// Which of the operations `ids` are still running (their row says `Running` and has no end):
/// a claim or a slot held by any other has lapsed. One statement per 500 ids (a capacity has at
/// most as many slots as its limit; old SQLite takes at most 999 parameters).
pub(super) fn running(
    s: &super::conn::Session<'_>,
    ids: &[i64],
) -> Result<std::collections::HashSet<i64>, DbError> {
    let mut live = std::collections::HashSet::new();
    for chunk in ids.chunks(500) {
        let sql = s.dialect.select(
            OPERATIONS.name,
            &["id", "status", "ended_at"],
            &[Cond::In("id", chunk.len())],
            &[],
            false,
        );
        let params: Vec<Value> = chunk.iter().map(|id| Value::Int(Some(*id))).collect();
        let rows = s.query(&sql, &params, |c| {
            Ok((c.int()?.unwrap_or_default(), c.required_text()?, c.time()?))
        })?;
        live.extend(
            rows.into_iter()
                .filter(|(_, status, ended)| status == RUNNING && ended.is_none())
                .map(|(id, _, _)| id),
        );
    }
    Ok(live)
}

/// An operation that starts.
#[derive(Debug, Clone, Default)]
pub struct NewOperation {
    /// The operation, e.g. `dataset.refresh`.
    pub operation: String,
    /// The profile it runs as; `None` for operations over every profile.
    pub profile: Option<String>,
    /// What it acts on, e.g. `semanticModel`; `None` for operations on no item.
    pub item_kind: Option<String>,
    /// The workspace id.
    pub workspace_id: Option<String>,
    /// The workspace name.
    pub workspace_name: Option<String>,
    /// The item id.
    pub item_id: Option<String>,
    /// The item name.
    pub item_name: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// `KESTRA_EXECUTION_ID`.
    pub kestra_execution_id: Option<String>,
    /// `KESTRA_TASKRUN_ID`.
    pub kestra_taskrun_id: Option<String>,
    /// `KESTRA_FLOW_ID`.
    pub kestra_flow_id: Option<String>,
    /// `KESTRA_NAMESPACE`.
    pub kestra_namespace: Option<String>,
    /// The version of pbiops that runs it.
    pub pbiops_version: String,
    /// The task, as JSON (free of secrets by contract).
    pub task_json: Option<String>,
}

/// What to record about an operation as it progresses and when it ends. Every `None` keeps
/// what the row already holds, so a progress update and the final write use the same type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finish {
    /// The status: `Running` while it runs; then e.g. `Completed`, `Failed`, `TimedOut`.
    pub status: String,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// The process exit code.
    pub exit_code: Option<i32>,
    /// What it acts on, once resolved.
    pub item_kind: Option<String>,
    /// The workspace id, once resolved.
    pub workspace_id: Option<String>,
    /// The workspace name, once resolved.
    pub workspace_name: Option<String>,
    /// The item id, once resolved.
    pub item_id: Option<String>,
    /// The item name, once resolved.
    pub item_name: Option<String>,
    /// The service's request id.
    pub request_id: Option<String>,
    /// Whether the run attached to a refresh an earlier run had started.
    pub attached: Option<bool>,
    /// How long the operation (or the refresh) took.
    pub duration_seconds: Option<f64>,
    /// The `errorCode` output.
    pub error_code: Option<String>,
    /// The error message (cut to 2000 characters).
    pub error_message: Option<String>,
    /// The outputs, as JSON.
    pub outputs_json: Option<String>,
}

impl Store {
    /// Records an operation that starts (status `Running`); returns its row id.
    pub async fn start_operation(&self, op: &NewOperation) -> Result<i64, Error> {
        let t = &OPERATIONS;
        let text = |column: &str, v: &Option<String>| bounded(t, column, v.as_deref());
        let values = vec![
            ("operation", bounded(t, "operation", Some(&op.operation))),
            ("profile", text("profile", &op.profile)),
            ("status", Value::text(RUNNING)),
            ("item_kind", text("item_kind", &op.item_kind)),
            ("workspace_id", text("workspace_id", &op.workspace_id)),
            ("workspace_name", text("workspace_name", &op.workspace_name)),
            ("item_id", text("item_id", &op.item_id)),
            ("item_name", text("item_name", &op.item_name)),
            ("attached", Value::Int(Some(0))),
            ("started_at", Value::Time(Some(op.started_at))),
            ("updated_at", Value::Time(Some(now()))),
            (
                "kestra_execution_id",
                text("kestra_execution_id", &op.kestra_execution_id),
            ),
            (
                "kestra_taskrun_id",
                text("kestra_taskrun_id", &op.kestra_taskrun_id),
            ),
            ("kestra_flow_id", text("kestra_flow_id", &op.kestra_flow_id)),
            (
                "kestra_namespace",
                text("kestra_namespace", &op.kestra_namespace),
            ),
            (
                "pbiops_version",
                bounded(t, "pbiops_version", Some(&op.pbiops_version)),
            ),
            ("task", Value::Text(op.task_json.clone())),
        ];
        let cols: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
        let params: Vec<Value> = values.into_iter().map(|(_, v)| v).collect();
        let (insert, follow_up) = self.dialect().insert_returning_id(t.name, &cols);
        let action = format!("record the start of {}", op.operation);
        self.call(&action, move |s| {
            let ids = s.query(&insert, &params, |c| c.int())?;
            let id = match follow_up {
                Some(sql) => s.query(sql, &[], |c| c.int())?,
                None => ids,
            };
            id.into_iter()
                .flatten()
                .next()
                .ok_or_else(|| DbError::data("the database returned no id for the new row"))
        })
        .await
        .inspect(|id| {
            self.inner.first.get_or_init(|| *id);
            self.open_rows(|open| open.insert(*id));
        })
    }

    fn open_rows<T>(&self, f: impl FnOnce(&mut std::collections::BTreeSet<i64>) -> T) -> T {
        let mut open = match self.inner.open.lock() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut open)
    }

    /// Closes every row this process opened and has not closed as `Interrupted` (a signal
    /// stopped the run; the refreshes go on, and a retry of the same task run follows them).
    /// Returns how many rows it closed.
    pub async fn interrupt_open_operations(
        &self,
        message: &str,
        task_run: Option<(&str, &str)>,
    ) -> Result<usize, Error> {
        let ids: Vec<i64> = self.open_rows(|open| std::mem::take(open).into_iter().collect());
        for id in &ids {
            let finish = Finish {
                status: INTERRUPTED.into(),
                ended_at: Some(now()),
                exit_code: Some(8),
                error_code: Some(INTERRUPTED.into()),
                error_message: Some(message.to_string()),
                ..Finish::default()
            };
            self.update_operation(*id, &finish).await?;
        }
        // A row whose insert was still on its way when the signal came is not in the set: this
        // task run's rows from this process that are still open are closed too.
        if let (Some((execution, taskrun)), Some(first)) = (task_run, self.inner.first.get()) {
            let d = self.dialect();
            let sql = format!(
                "{} AND {} >= ?",
                d.update(
                    OPERATIONS.name,
                    &[
                        "status",
                        "ended_at",
                        "updated_at",
                        "exit_code",
                        "error_code",
                        "error_message"
                    ],
                    &[
                        Cond::Eq("status"),
                        Cond::IsNull("ended_at"),
                        Cond::Eq("kestra_execution_id"),
                        Cond::Eq("kestra_taskrun_id"),
                    ],
                ),
                d.quote("id")
            );
            let now = now();
            let params = vec![
                Value::text(INTERRUPTED),
                Value::Time(Some(now)),
                Value::Time(Some(now)),
                Value::Int(Some(8)),
                Value::text(INTERRUPTED),
                bounded(&OPERATIONS, "error_message", Some(message)),
                Value::text(RUNNING),
                Value::text(execution),
                Value::text(taskrun),
                Value::Int(Some(*first)),
            ];
            self.call("close this run's open rows", move |s| {
                s.execute(&sql, &params)
            })
            .await?;
        }
        Ok(ids.len())
    }

    /// Records the request id of a running operation, and whether the run attached to it.
    pub async fn set_request_id(
        &self,
        id: i64,
        request_id: &str,
        attached: bool,
    ) -> Result<(), Error> {
        let sql = self.dialect().update(
            OPERATIONS.name,
            &["request_id", "attached", "updated_at"],
            &[Cond::Eq("id")],
        );
        let params = vec![
            bounded(&OPERATIONS, "request_id", Some(request_id)),
            Value::Int(Some(i64::from(attached))),
            Value::Time(Some(now())),
            Value::Int(Some(id)),
        ];
        let action = format!("record the request id of operation {id}");
        self.call(&action, move |s| s.execute(&sql, &params)).await
    }

    /// Records what is known about an operation: its resolved item and request id while it
    /// runs, its outcome at the end. Fields left `None` keep their stored values.
    pub async fn update_operation(&self, id: i64, f: &Finish) -> Result<(), Error> {
        let t = &OPERATIONS;
        let mut values = vec![
            ("status", bounded(t, "status", Some(&f.status))),
            ("updated_at", Value::Time(Some(now()))),
        ];
        let texts = [
            ("item_kind", &f.item_kind),
            ("workspace_id", &f.workspace_id),
            ("workspace_name", &f.workspace_name),
            ("item_id", &f.item_id),
            ("item_name", &f.item_name),
            ("request_id", &f.request_id),
            ("error_code", &f.error_code),
            ("error_message", &f.error_message),
        ];
        for (column, value) in texts {
            if value.is_some() {
                values.push((column, bounded(t, column, value.as_deref())));
            }
        }
        if let Some(ended_at) = f.ended_at {
            values.push(("ended_at", Value::Time(Some(ended_at))));
        }
        if let Some(exit_code) = f.exit_code {
            values.push(("exit_code", Value::Int(Some(i64::from(exit_code)))));
        }
        if let Some(attached) = f.attached {
            values.push(("attached", Value::Int(Some(i64::from(attached)))));
        }
        if let Some(duration) = f.duration_seconds {
            values.push(("duration_seconds", Value::Float(Some(duration))));
        }
        if let Some(outputs) = &f.outputs_json {
            values.push(("outputs", Value::Text(Some(outputs.clone()))));
        }
        let cols: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
        let ended = f.ended_at.is_some();
        // Progress never reopens a row that has ended (a signal may close it while a progress
        // write is on its way).
        let conds: &[Cond<'_>] = if ended {
            &[Cond::Eq("id")]
        } else {
            &[Cond::Eq("id"), Cond::IsNull("ended_at")]
        };
        let sql = self.dialect().update(t.name, &cols, conds);
        let mut params: Vec<Value> = values.into_iter().map(|(_, v)| v).collect();
        params.push(Value::Int(Some(id)));
        let action = format!("record the state of operation {id}");
        self.call(&action, move |s| s.execute(&sql, &params))
            .await
            .inspect(|()| {
                if ended {
                    self.open_rows(|open| open.remove(&id));
                }
            })
    }

    /// Closes a `Running` row whose run stopped (its worker died) as `Abandoned`, pointing at
    /// the operation that took over; a row that is no longer running is left alone.
    pub async fn abandon_operation(&self, id: i64, successor: Option<i64>) -> Result<(), Error> {
        let cols = [
            "status",
            "ended_at",
            "updated_at",
            "error_code",
            "error_message",
        ];
        let sql = self.dialect().update(
            OPERATIONS.name,
            &cols,
            &[Cond::Eq("id"), Cond::Eq("status")],
        );
        let message = match successor {
            Some(next) => format!("the run stopped before the end; operation {next} took over"),
            None => "the run stopped before the end".to_string(),
        };
        let now = now();
        let params = vec![
            Value::text(ABANDONED),
            Value::Time(Some(now)),
            Value::Time(Some(now)),
            Value::text(ABANDONED),
            Value::Text(Some(message)),
            Value::Int(Some(id)),
            Value::text(RUNNING),
        ];
        let action = format!("close operation {id} as abandoned");
        self.call(&action, move |s| s.execute(&sql, &params)).await
    }
}
