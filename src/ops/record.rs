//! Recording each operation in the store: a row at start, the request id as soon as it is
//! known, the outcome at the end.
//!
//! The start row is written before any API call, so a store that is down stops the run (exit 7)
//! before anything happens in the service. The end row is retried with backoff; if the store is
//! still down, nothing is lost: the outputs are printed as usual and the whole record is logged
//! as one Kestra log line, and the run exits 7.

use std::sync::PoisonError;
use std::time::Duration;

use super::outputs::Outputs;
use crate::error::{Error, ExitCode};
use crate::settings::Settings;
use crate::store::{Finish, NewOperation, Store};
use crate::task::Task;

/// Attempts of the final write.
const FINISH_ATTEMPTS: u32 = 3;

/// Opens the store the settings name (creating the default SQLite file's directory), or
/// `None` when `PBIOPS_ODBC=none`.
pub async fn open_store(settings: &crate::settings::StoreSettings) -> Result<Option<Store>, Error> {
    let Some(connection) = &settings.connection else {
        return Ok(None);
    };
    let key = match &settings.token_key {
        Some(k) => {
            use secrecy::ExposeSecret;
            Some(
                crate::store::TokenKey::from_base64(k.expose_secret()).map_err(|e| {
                    Error::setting(
                        "PBIOPS_TOKEN_KEY",
                        e,
                        "generate one with `openssl rand -base64 32`; keep it in a Kestra secret",
                    )
                })?,
            )
        }
        None => None,
    };
    if let Some(dir) = &settings.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::Store {
            action: format!("create the store's directory {}", dir.display()),
            message: e.to_string(),
            help: Some("set PBIOPS_DATA_DIR to a writable directory, PBIOPS_ODBC to a database, or PBIOPS_ODBC=none".into()),
        })?;
    }
    Store::open(connection, key).await.map(Some)
}

/// The operation's row, when there is a store.
pub struct Recorder<'a> {
    store: Option<&'a Store>,
    id: Option<i64>,
    operation: &'static str,
    /// The progress the row holds already: the same progress again is not written.
    written: std::sync::Mutex<Option<Finish>>,
}

impl<'a> Recorder<'a> {
    /// Writes the start row (status `Running`).
    pub async fn start(
        store: Option<&'a Store>,
        task: &Task,
        task_json: Option<String>,
        settings: &Settings,
    ) -> Result<Recorder<'a>, Error> {
        Recorder::begin(
            store,
            task.operation(),
            task.profile(),
            task_json,
            None,
            settings,
        )
        .await
    }

    /// Writes the start row of `operation` as `profile` (a fleet's or a cascade's items), naming
    /// the item when `item` (outputs that render it) is given, so the progress that names it
    /// before the trigger costs no second write.
    pub async fn begin(
        store: Option<&'a Store>,
        operation: &'static str,
        profile: Option<&str>,
        task_json: Option<String>,
        item: Option<&Outputs>,
        settings: &Settings,
    ) -> Result<Recorder<'a>, Error> {
        let Some(s) = store else {
            return Ok(Recorder {
                store,
                id: None,
                operation,
                written: std::sync::Mutex::default(),
            });
        };
        let named = item.map(|out| finish_of(out, None, None));
        let field = |f: fn(&Finish) -> &Option<String>| named.as_ref().and_then(|n| f(n).clone());
        let id = s
            .start_operation(&NewOperation {
                operation: operation.to_string(),
                profile: profile.map(String::from),
                item_kind: field(|n| &n.item_kind),
                workspace_id: field(|n| &n.workspace_id),
                workspace_name: field(|n| &n.workspace_name),
                item_id: field(|n| &n.item_id),
                item_name: field(|n| &n.item_name),
                started_at: jiff::Timestamp::now(),
                kestra_execution_id: settings.kestra.execution_id.clone(),
                kestra_taskrun_id: settings.kestra.taskrun_id.clone(),
                kestra_flow_id: settings.kestra.flow_id.clone(),
                kestra_namespace: settings.kestra.namespace.clone(),
                pbiops_version: env!("CARGO_PKG_VERSION").to_string(),
                // A configured secret typed into a task field never reaches the log.
                task_json: task_json.map(|t| crate::redact::scrub(&t)),
            })
            .await?;
        Ok(Recorder {
            store,
            id: Some(id),
            operation,
            // The progress that names the item is written already when the start row holds all
            // of it (the status it starts with, and the item).
            written: std::sync::Mutex::new(named.filter(|n| {
                *n == Finish {
                    status: crate::store::RUNNING.into(),
                    item_kind: n.item_kind.clone(),
                    workspace_id: n.workspace_id.clone(),
                    workspace_name: n.workspace_name.clone(),
                    item_id: n.item_id.clone(),
                    item_name: n.item_name.clone(),
                    ..Finish::default()
                }
            })),
        })
    }

    /// The operation recorded: a retry looks for the earlier attempt's row of the same one.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The row's id.
    pub fn id(&self) -> Option<i64> {
        self.id
    }

    /// Records the resolved item and the request id; a failure here is only a warning (the
    /// final write carries them again).
    pub async fn progress(&self, out: &Outputs) {
        let (Some(store), Some(id)) = (self.store, self.id) else {
            return;
        };
        let progress = finish_of(out, None, None);
        let written = || self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if written().as_ref() == Some(&progress) {
            return;
        }
        match store.update_operation(id, &progress).await {
            Ok(()) => *written() = Some(progress),
            Err(e) => tracing::warn!(
                "could not record progress in the store (the final write will retry): {e}"
            ),
        }
    }

    /// Writes the outcome, with bounded retries.
    pub async fn finish(
        &self,
        out: &Outputs,
        code: ExitCode,
        error: Option<&Error>,
    ) -> Result<(), Error> {
        let (Some(store), Some(id)) = (self.store, self.id) else {
            return Ok(());
        };
        let finish = finish_of(out, Some(code), error);
        let mut last = None;
        for attempt in 0..FINISH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            match store.update_operation(id, &finish).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(
                        "recording the outcome failed (attempt {} of {FINISH_ATTEMPTS}): {e}",
                        attempt + 1
                    );
                    last = Some(e);
                }
            }
        }
        let record = serde_json::to_string(&finish).unwrap_or_default();
        tracing::error!(
            "the operation record could not be written to the store; here it is in full: {record}"
        );
        Err(last.unwrap_or_else(|| Error::Store {
            action: "record the outcome".into(),
            message: "unknown".into(),
            help: None,
        }))
    }
}

/// The row's fields from the outputs (and the outcome, once known).
fn finish_of(out: &Outputs, code: Option<ExitCode>, error: Option<&Error>) -> Finish {
    let status = match (out.status, code) {
        (_, Some(ExitCode::Interrupted)) => crate::store::INTERRUPTED.into(),
        (Some(s), _) => format!("{s:?}"),
        (None, Some(ExitCode::Success)) => "Completed".into(),
        (None, Some(_)) => "Error".into(),
        (None, None) => "Running".into(),
    };
    Finish {
        status,
        ended_at: code.map(|_| jiff::Timestamp::now()),
        exit_code: code.map(ExitCode::code),
        item_kind: out.item_kind.map(String::from),
        workspace_id: out.workspace_id.clone(),
        workspace_name: out.workspace_name.clone(),
        item_id: out.dataset_id.clone().or_else(|| out.dataflow_id.clone()),
        item_name: out
            .dataset_name
            .clone()
            .or_else(|| out.dataflow_name.clone()),
        request_id: out.request_id.clone(),
        attached: out.attached,
        duration_seconds: out.duration_seconds,
        error_code: out.error_code.clone().or_else(|| error.map(Error::code)),
        error_message: out
            .error_message
            .clone()
            .or_else(|| error.map(|e| crate::redact::scrub(&e.to_string()))),
        outputs_json: code.map(|_| serde_json::Value::Object(out.to_map()).to_string()),
    }
}
