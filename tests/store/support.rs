//! A fresh, empty database per test, on each live backend, so tests run in parallel.
//!
//! SQLite gets a new file; PostgreSQL a new schema (selected through psqlODBC's `ConnSettings`);
//! MariaDB a new database. Administration goes through odbc-api directly, not through the store
//! under test. PostgreSQL and MariaDB must be reachable: a test fails, never skips, without them.

use std::sync::atomic::{AtomicU32, Ordering};

use odbc_api::{ConnectionOptions, Cursor, ResultSetMetadata};
use secrecy::SecretString;

/// A token value that must never appear in a message.
pub const CANARY: &str = "CANARYTOKEN";

/// The live databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

fn postgres_base() -> String {
    std::env::var("STORE_TEST_POSTGRES").unwrap_or_else(|_| {
        "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;Pwd=;"
            .into()
    })
}

fn mariadb_base() -> String {
    std::env::var("STORE_TEST_MARIADB").unwrap_or_else(|_| {
        "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root;Pwd=;".into()
    })
}

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    pub backend: Backend,
    /// The connection string the store under test uses.
    pub cs: String,
    /// The schema (PostgreSQL) or database (MariaDB) name; the file stem for SQLite.
    pub name: String,
    _dir: Option<tempfile::TempDir>,
}

fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "pbiops_t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        let name = unique_name();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join(format!("{name}.db"));
                TestDb {
                    backend,
                    cs: format!("Driver={{SQLite3}};Database={};", path.display()),
                    name,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base = postgres_base();
                exec(&base, &format!("CREATE SCHEMA {name}"));
                TestDb {
                    backend,
                    cs: format!(
                        "{base}ConnSettings=SET search_path TO {name};pqopt={{application_name={name}}};"
                    ),
                    name,
                    _dir: None,
                }
            }
            Backend::MariaDb => {
                let base = mariadb_base();
                exec(&base, &format!("CREATE DATABASE {name}"));
                TestDb {
                    backend,
                    cs: base.replace("Database=test;", &format!("Database={name};")),
                    name,
                    _dir: None,
                }
            }
        }
    }

    pub fn secret(&self) -> SecretString {
        SecretString::from(self.cs.clone())
    }

    /// Runs a statement on this database, outside the store.
    pub fn exec(&self, sql: &str) {
        exec(&self.cs, sql);
    }

    /// Runs a query on this database and returns every column as text.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        query(&self.cs, sql)
    }

    /// Cuts the store's connection(s) to this database from the server side.
    pub fn kill_connections(&self) {
        match self.backend {
            Backend::Sqlite => panic!("SQLite has no server connection to kill"),
            Backend::Postgres => {
                let rows = query(
                    &postgres_base(),
                    &format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
                        self.name
                    ),
                );
                assert!(!rows.is_empty(), "no connection to kill");
            }
            Backend::MariaDb => {
                let base = mariadb_base();
                let ids = query(
                    &base,
                    &format!(
                        "SELECT id FROM information_schema.processlist WHERE db = '{}'",
                        self.name
                    ),
                );
                assert!(!ids.is_empty(), "no connection to kill");
                for id in ids {
                    let id: u64 = id[0].as_deref().expect("id").parse().expect("numeric id");
                    exec(&base, &format!("KILL CONNECTION {id}"));
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort: a leftover schema only costs space in the test database.
        let cleanup = match self.backend {
            Backend::Sqlite => return,
            Backend::Postgres => (
                postgres_base(),
                format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ),
            Backend::MariaDb => (
                mariadb_base(),
                format!("DROP DATABASE IF EXISTS {}", self.name),
            ),
        };
        let _ = std::panic::catch_unwind(|| exec(&cleanup.0, &cleanup.1));
    }
}

fn connect(cs: &str) -> odbc_api::Connection<'static> {
    let env = odbc_api::environment().expect("ODBC environment");
    env.connect_with_connection_string(
        cs,
        ConnectionOptions {
            login_timeout_sec: Some(10),
            packet_size: None,
        },
    )
    .unwrap_or_else(|e| panic!("the test database must be reachable (CI provides it): {e}"))
}

pub fn exec(cs: &str, sql: &str) {
    let conn = connect(cs);
    conn.execute(sql, (), None)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn query(cs: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let conn = connect(cs);
    let mut rows = Vec::new();
    let Some(mut cursor) = conn
        .execute(sql, (), None)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    else {
        return rows;
    };
    let cols = cursor.num_result_cols().expect("columns") as u16;
    while let Some(mut row) = cursor.next_row().expect("row") {
        let mut values = Vec::new();
        for col in 1..=cols {
            let mut buf = Vec::new();
            let present = row.get_text(col, &mut buf).expect("text");
            values.push(present.then(|| String::from_utf8_lossy(&buf).into_owned()));
        }
        rows.push(values);
    }
    rows
}

/// A whole-second UTC instant `minutes` after a fixed origin.
pub fn at(minutes: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(2_000_000_000 + minutes * 60).expect("time")
}

/// Asserts that no message of `e` (display, hint, debug) contains `needle`.
pub fn assert_never_mentions(e: &pbiops::error::Error, needle: &str) {
    let all = format!("{e} {:?} {:?}", e.hint(), e);
    assert!(!all.contains(needle), "an error mentions {needle}: {all}");
}
