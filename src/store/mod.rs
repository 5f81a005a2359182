//! The operation store over ODBC: token store, operation log, schema migrations, SQL dialects.
//!
//! Teams keep their tokens and their audit trail in their own database (SQL Server, usually), so
//! the store speaks ODBC and picks its SQL from the DBMS name the driver reports. One [`Store`]
//! holds one connection; every call runs on `spawn_blocking`, because ODBC blocks. Every failure
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
        let opened = tokio::task::spawn_blocking(move || Link::open(cs))
            .await
            .map_err(|e| worker_failed("connect to the store", &e))?;
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

    /// Runs `body` on the connection, on a blocking thread.
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
        let result = tokio::task::spawn_blocking(move || inner.link.run(inner.dialect, body))
            .await
            .map_err(|e| worker_failed(action, &e))?;
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

fn worker_failed(action: &str, e: &tokio::task::JoinError) -> Error {
    Error::Store {
        action: action.to_string(),
        message: format!(
            "the database call did not finish ({})",
            if e.is_panic() {
                "it panicked"
            } else {
                "it was cancelled"
            }
        ),
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
