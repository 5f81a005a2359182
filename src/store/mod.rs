//! The operation store over ODBC: token store, operation log, schema migrations, SQL dialects.
//!
//! Teams keep their tokens and their audit trail in their own database (SQL Server, usually), so
//! the store speaks ODBC and picks its SQL from the DBMS name the driver reports. One [`Store`]
//! holds one connection, and one thread of its own that runs every call in turn, because ODBC
//! blocks (the runtime's thread must not) and one connection serves one call at a time (a pool
//! of blocking threads would only queue on it, and wake more threads to do so). Every failure
//! is an [`Error::Store`] (exit 7) whose message never holds the connection string or a token.
//!
//! - [`dialect`]: every statement, per dialect;
//! - [`schema`]: the tables as data, and the migrations;
//! - [`crypto`]: AES-256-GCM for tokens at rest;
//! - `conn`: the connection, reconnect and retries; `values`: parameters and columns;
//! - `ddl`: the schema statements; `migrate`: bringing the schema up to date;
//! - `tokens`, `operations` and `history`: the API; `claims`, `slots` and `throttle`: what
//!   concurrent runs share (single flight, capacity slots, the pace a service tolerates).

mod claims;
mod conn;
pub mod crypto;
mod ddl;
pub mod dialect;
mod history;
mod migrate;
mod operations;
pub mod schema;
mod slots;
#[cfg(test)]
mod sql_text_tests;
mod throttle;
mod tokens;
mod values;

use std::sync::Arc;

use jiff::Timestamp;
use secrecy::SecretString;

use crate::error::Error;
pub use claims::Claim;
use conn::{DbError, Link, Session};
pub use crypto::TokenKey;
pub use dialect::{Dialect, validate_table_name};
pub use history::{HistoryFilter, OperationRow, TaskRun};
pub use operations::{ABANDONED, Finish, INTERRUPTED, NewOperation, RUNNING};
pub use slots::Slot;
pub use throttle::{BUDGET_TTL, SharedThrottle, Throttled};
pub use tokens::{NewToken, StoredToken, TokenInfo};
use values::Value;

/// The store: one connection, its dialect, and the key for tokens at rest.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    dialect: Dialect,
    key: Option<TokenKey>,
    connection_string: SecretString,
    /// Rows this process started and has not closed: what a signal marks `Interrupted`.
    open: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// The first row this process started: rows from before it are earlier attempts, rows from
    /// it on are this run's own (a fleet's other targets).
    first: std::sync::OnceLock<i64>,
    /// The store's thread: every call is a job queued to it.
    calls: std::sync::mpsc::Sender<Job>,
}

/// One call, run on the store's thread.
type Job = Box<dyn FnOnce() + Send>;

/// Starts the store's thread. It ends when the store is dropped (the queue closes); a job that
/// panics is reported to its caller (its answer never comes) and the thread goes on.
fn start_thread() -> Result<std::sync::mpsc::Sender<Job>, Error> {
    let (calls, jobs) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("pbiops-store".into())
        .spawn(move || {
            for job in jobs {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        .map_err(|e| Error::Store {
            action: "connect to the store".into(),
            message: format!("cannot start the store's thread: {e}"),
            help: None,
        })?;
    Ok(calls)
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.inner.dialect)
            .field("encrypted", &self.inner.key.is_some())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects (login timeout 10 s), detects the dialect and brings the schema up to date.
    /// Migrations are idempotent and serialized between processes, so any number of runners may
    /// open the same new database at once.
    pub async fn open(
        connection_string: &SecretString,
        token_key: Option<TokenKey>,
    ) -> Result<Store, Error> {
        let cs = connection_string.clone();
        let calls = start_thread()?;
        let opened = run_on(&calls, move || Link::open(cs))
            .await
            .ok_or_else(|| worker_failed("connect to the store"))?;
        let (link, dbms) =
            opened.map_err(|e| store_error("connect to the store", e, connection_string))?;
        let dialect = Dialect::from_dbms_name(&dbms).ok_or_else(|| Error::Store {
            action: "connect to the store".into(),
            message: format!(
                "the database reports itself as `{dbms}`, which pbiops does not support"
            ),
            help: Some(format!(
                "supported databases: {}; or set PBIOPS_ODBC=none to disable the store",
                dialect::SUPPORTED
            )),
        })?;
        let store = Store {
            inner: Arc::new(Inner {
                link,
                dialect,
                key: token_key,
                connection_string: connection_string.clone(),
                open: std::sync::Mutex::default(),
                first: std::sync::OnceLock::new(),
                calls,
            }),
        };
        store
            .call("create or update the store's tables", migrate::migrate)
            .await
            .map_err(|e| match e {
                Error::Store { action, message, .. } => Error::Store {
                    action,
                    message,
                    help: Some(
                        "the first run creates the pbiops_* tables: the login needs the right to create tables and indexes in its default schema"
                            .into(),
                    ),
                },
                other => other,
            })?;
        Ok(store)
    }

    /// The dialect of the connected database.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// Whether tokens are written encrypted.
    pub fn encrypts_tokens(&self) -> bool {
        self.inner.key.is_some()
    }

    /// Runs `body` on the connection, on the store's thread.
    async fn call<T: Send + 'static>(
        &self,
        action: &str,
        body: impl Fn(&Session<'_>) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, Error> {
        self.call_binding_secrets(action, &[], body).await
    }

    /// Like [`Store::call`], for statements that bind `secrets` (tokens): any fragment of them
    /// quoted by the driver is removed from the error message.
    async fn call_binding_secrets<T: Send + 'static>(
        &self,
        action: &str,
        secrets: &[&str],
        body: impl Fn(&Session<'_>) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, Error> {
        let inner = self.inner.clone();
        let result = run_on(&self.inner.calls, move || {
            inner.link.run(inner.dialect, body)
        })
        .await
        .ok_or_else(|| worker_failed(action))?;
        result.map_err(|mut e| {
            for secret in secrets {
                e.message = conn::redact_fragments(&e.message, secret);
            }
            store_error(action, e, &self.inner.connection_string)
        })
    }
}

fn store_error(action: &str, e: DbError, connection_string: &SecretString) -> Error {
    Error::Store {
        action: action.to_string(),
        message: conn::scrub(&e.message, connection_string),
        help: None,
    }
}

/// Runs `job` on the store's thread and waits for its answer; `None` when it never came (the job
/// panicked, or the thread is gone).
async fn run_on<T: Send + 'static>(
    calls: &std::sync::mpsc::Sender<Job>,
    job: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    calls
        .send(Box::new(move || {
            let _ = answer.send(job());
        }))
        .ok()?;
    answered.await.ok()
}

fn worker_failed(action: &str) -> Error {
    Error::Store {
        action: action.to_string(),
        message: "the database call did not finish (it panicked)".into(),
        help: Some("this is a pbiops or ODBC driver bug; please report it".into()),
    }
}

/// A bounded text value, cut to its column's size.
fn bounded(table: &schema::Table, column: &str, value: Option<&str>) -> Value {
    let limit = schema::text_limit(table, column).unwrap_or(usize::MAX);
    Value::Text(value.map(|v| schema::truncate(v, limit).to_string()))
}

/// The time bound for `updated_at` and similar columns.
fn now() -> Timestamp {
    Timestamp::now()
}
