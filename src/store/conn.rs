//! The one ODBC connection, and the plumbing every statement goes through.
//!
//! ODBC calls block, and a `Connection` is `Send` but not `Sync`: the connection lives behind a
//! mutex and is only touched on the store's thread. A call that fails because the connection
//! was lost reconnects once and runs again; a deadlock or serialization failure is retried a few
//! times on the same connection. Values are bound as parameters only ([`Value`]), and read back
//! column by column in order ([`Cols`]), as `SQLGetData` wants. No message built here ever holds
//! the connection string or its secrets.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use odbc_api::parameter::InputParameter;
use odbc_api::{Connection, ConnectionOptions, Cursor};
use secrecy::{ExposeSecret, SecretString};

use super::Dialect;
use super::values::{Cols, Value};

/// Seconds a login may take before the store counts as unreachable (`SQL_ATTR_LOGIN_TIMEOUT`:
/// honoured by psqlODBC, measured against a listener that never answers; MariaDB's driver
/// ignores it, see [`with_timeouts`]).
const LOGIN_TIMEOUT_SECONDS: u32 = 10;
/// Seconds a statement may run (`SQL_ATTR_QUERY_TIMEOUT`, honoured by PostgreSQL and SQL Server
/// drivers; MariaDB's gets socket read and write timeouts instead).
const QUERY_TIMEOUT_SECONDS: usize = 60;
/// Extra attempts after a deadlock or serialization failure.
const DEADLOCK_RETRIES: u32 = 8;

/// A failed database call: the driver's words, and whether the connection is gone.
#[derive(Debug)]
pub(crate) struct DbError {
    /// One line, without the connection string.
    pub message: String,
    /// SQLSTATE, when the driver gave one.
    pub state: Option<String>,
}

impl DbError {
    /// An error found in the data rather than reported by the driver.
    pub fn data(message: impl Into<String>) -> DbError {
        DbError {
            message: message.into(),
            state: None,
        }
    }

    fn connection_lost(&self) -> bool {
        self.state
            .as_deref()
            // 08xxx: connection exceptions; 57P01: PostgreSQL terminated the session.
            .is_some_and(|s| s.starts_with("08") || s == "HYT01" || s == "57P01")
    }

    fn deadlock(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s == "40001" || s == "40P01")
    }
}

impl From<odbc_api::Error> for DbError {
    fn from(e: odbc_api::Error) -> DbError {
        match e {
            odbc_api::Error::Diagnostics { record, function } => {
                let state = String::from_utf8_lossy(&record.state.0).into_owned();
                let text = String::from_utf8_lossy(&record.message);
                DbError {
                    message: format!(
                        "{} (SQLSTATE {state}, native error {}, in {function})",
                        one_line(&text),
                        record.native_error
                    ),
                    state: Some(state),
                }
            }
            other => DbError::data(one_line(&other.to_string())),
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One connection and its dialect, for the duration of one call.
pub(crate) struct Session<'a> {
    conn: &'a Connection<'static>,
    /// The dialect of the connected DBMS.
    pub dialect: Dialect,
}

impl Session<'_> {
    /// Runs a statement, discarding any result set.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        let bound: Vec<Box<dyn InputParameter>> =
            params.iter().map(|p| p.bind(self.dialect)).collect();
        self.conn
            .execute(sql, &bound[..], Some(QUERY_TIMEOUT_SECONDS))?;
        Ok(())
    }

    /// Runs a statement and returns how many rows it changed, when the driver says.
    pub fn execute_counted(&self, sql: &str, params: &[Value]) -> Result<Option<usize>, DbError> {
        let bound: Vec<Box<dyn InputParameter>> =
            params.iter().map(|p| p.bind(self.dialect)).collect();
        let mut statement = self.conn.preallocate()?;
        statement.set_query_timeout_sec(QUERY_TIMEOUT_SECONDS)?;
        statement.execute(sql, &bound[..])?;
        Ok(statement.row_count()?)
    }

    /// Runs a query and maps each row.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[Value],
        mut map: impl FnMut(&mut Cols<'_, '_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let bound: Vec<Box<dyn InputParameter>> =
            params.iter().map(|p| p.bind(self.dialect)).collect();
        let mut rows = Vec::new();
        if let Some(mut cursor) = self
            .conn
            .execute(sql, &bound[..], Some(QUERY_TIMEOUT_SECONDS))?
        {
            while let Some(mut row) = cursor.next_row()? {
                let mut cols = Cols::new(&mut row, self.dialect);
                rows.push(map(&mut cols)?);
            }
        }
        Ok(rows)
    }

    /// Runs `body` in a transaction: committed when it succeeds, rolled back otherwise.
    pub fn transaction<T>(
        &self,
        body: impl FnOnce(&Session<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.conn.set_autocommit(false)?;
        let result = body(self).and_then(|value| {
            self.conn.commit()?;
            Ok(value)
        });
        if result.is_err() {
            let _ = self.conn.rollback();
        }
        self.conn.set_autocommit(true)?;
        result
    }
}

/// The connection string, the open connection (if any) and the dialect it speaks.
pub(crate) struct Link {
    connection_string: SecretString,
    conn: Mutex<Option<Connection<'static>>>,
}

impl Link {
    /// Connects and reports the DBMS name. Blocking.
    pub fn open(connection_string: SecretString) -> Result<(Link, String), DbError> {
        let conn = connect(&connection_string)?;
        let name = conn.database_management_system_name()?;
        let link = Link {
            connection_string,
            conn: Mutex::new(Some(conn)),
        };
        Ok((link, name))
    }

    /// Runs `body` on the connection (reconnecting first if an earlier call lost it). Blocking.
    pub fn run<T>(
        &self,
        dialect: Dialect,
        body: impl Fn(&Session<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reconnected = false;
        let mut deadlocks = 0;
        loop {
            let conn = match slot.take() {
                Some(conn) => conn,
                None => {
                    reconnected = true;
                    connect(&self.connection_string)?
                }
            };
            let result = body(&Session {
                conn: &conn,
                dialect,
            });
            match result {
                Err(e) if e.deadlock() && deadlocks < DEADLOCK_RETRIES => {
                    deadlocks += 1;
                    *slot = Some(conn);
                    std::thread::sleep(Duration::from_millis(5 * u64::from(deadlocks)));
                }
                Err(e)
                    if !reconnected && (e.connection_lost() || conn.is_dead().unwrap_or(false)) =>
                {
                    tracing::warn!(
                        "the store connection was lost ({}); reconnecting",
                        e.message
                    );
                    discard(conn);
                }
                other => {
                    *slot = Some(conn);
                    return other;
                }
            }
        }
    }
}

fn connect(connection_string: &SecretString) -> Result<Connection<'static>, DbError> {
    let env = odbc_api::environment()?;
    let conn = env.connect_with_connection_string(
        &with_timeouts(connection_string.expose_secret()),
        ConnectionOptions {
            login_timeout_sec: Some(LOGIN_TIMEOUT_SECONDS),
            packet_size: None,
        },
    )?;
    Ok(conn)
}

/// The connection string with the timeouts its driver needs as attributes. MariaDB Connector/ODBC
/// ignores `SQL_ATTR_LOGIN_TIMEOUT` (measured with 3.1.15: a server that accepts and never
/// answers hangs the login forever) but honours `CONN_TIMEOUT` (the login then fails after it),
/// and takes `READ_TIMEOUT`/`WRITE_TIMEOUT` for each socket read and write of a statement. An
/// attribute the user set is kept; other drivers, and DSNs, are left as they are.
fn with_timeouts(cs: &str) -> String {
    let attributes = attributes(cs);
    let mariadb = attributes.iter().any(|(key, value)| {
        let value = value.to_ascii_lowercase();
        key.eq_ignore_ascii_case("driver")
            && ["maria", "mysql", "maodbc", "myodbc"]
                .iter()
                .any(|name| value.contains(name))
    });
    if !mariadb {
        return cs.to_string();
    }
    let mut out = cs.trim_end().to_string();
    for (key, seconds) in [
        ("CONN_TIMEOUT", LOGIN_TIMEOUT_SECONDS as usize),
        ("READ_TIMEOUT", QUERY_TIMEOUT_SECONDS),
        ("WRITE_TIMEOUT", QUERY_TIMEOUT_SECONDS),
    ] {
        if !attributes.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            if !out.is_empty() && !out.ends_with(';') {
                out.push(';');
            }
            out.push_str(&format!("{key}={seconds};"));
        }
    }
    out
}

/// Closes a lost connection. Dropping a `Connection` panics when the disconnect fails, which is
/// expected here; a handle that cannot be disconnected is leaked instead (at most one per call).
fn discard(conn: Connection<'static>) {
    let mut handle = conn.into_handle();
    if handle.disconnect().is_err() {
        std::mem::forget(handle);
    }
}

/// Removes the connection string and its secret attributes (`PWD=…`, …) from `message`.
pub(crate) fn scrub(message: &str, connection_string: &SecretString) -> String {
    let cs = connection_string.expose_secret();
    let mut out = message.to_string();
    if !cs.is_empty() {
        out = out.replace(cs, "***");
    }
    for (key, value) in attributes(cs) {
        let key = key.to_ascii_lowercase();
        let secret = ["pwd", "password", "secret", "token", "key"]
            .iter()
            .any(|k| key.contains(k));
        if secret && value.len() >= 3 {
            out = out.replace(&value, "***");
        }
    }
    out
}

/// Shortest run of a secret's characters that counts as a fragment of it.
const FRAGMENT: usize = 12;

/// Removes every fragment of `secret` (a run of at least a dozen of its characters) from
/// `message`: SQL Server's "String or binary data would be truncated … Truncated value: '…'"
/// quotes the start of the value it refused, which may be a token.
pub(crate) fn redact_fragments(message: &str, secret: &str) -> String {
    if secret.len() < FRAGMENT {
        return message.replace(secret, "***");
    }
    let mut out = String::with_capacity(message.len());
    let mut at = 0;
    while at < message.len() {
        let rest = &message[at..];
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            let candidate = &rest[..i + c.len_utf8()];
            if candidate.len() >= FRAGMENT && !secret.contains(candidate) {
                break;
            }
            end = i + c.len_utf8();
        }
        if end >= FRAGMENT && secret.contains(&rest[..end]) {
            out.push_str("***");
            at += end;
        } else {
            let c = rest.chars().next().map_or(1, char::len_utf8);
            out.push_str(&rest[..c]);
            at += c;
        }
    }
    out
}

/// The `key=value` pairs of a connection string; a value in braces may hold `;` (and `}}`).
fn attributes(cs: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = cs;
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (value, next) = if let Some(braced) = after.strip_prefix('{') {
            let mut value = String::new();
            let mut chars = braced.char_indices().peekable();
            let mut end = braced.len();
            while let Some((at, c)) = chars.next() {
                if c == '}' {
                    if chars.peek().is_some_and(|(_, n)| *n == '}') {
                        value.push('}');
                        chars.next();
                        continue;
                    }
                    end = at + 1;
                    break;
                }
                value.push(c);
            }
            let tail = &braced[end.min(braced.len())..];
            (value, tail.split_once(';').map_or("", |(_, t)| t))
        } else {
            match after.split_once(';') {
                Some((v, t)) => (v.trim().to_string(), t),
                None => (after.trim().to_string(), ""),
            }
        };
        pairs.push((key.trim().to_string(), value));
        rest = next;
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gets_socket_timeouts_and_others_are_left_alone() {
        assert_eq!(
            with_timeouts("Driver={MariaDB Unicode};Server=db;Pwd={a;b}"),
            "Driver={MariaDB Unicode};Server=db;Pwd={a;b};CONN_TIMEOUT=10;READ_TIMEOUT=60;WRITE_TIMEOUT=60;"
        );
        assert_eq!(
            with_timeouts("DRIVER=/usr/lib/libmaodbc.so;conn_timeout=3;"),
            "DRIVER=/usr/lib/libmaodbc.so;conn_timeout=3;READ_TIMEOUT=60;WRITE_TIMEOUT=60;"
        );
        let postgres = "Driver={PostgreSQL Unicode};Server=db;";
        assert_eq!(with_timeouts(postgres), postgres);
        assert_eq!(with_timeouts("DSN=store"), "DSN=store");
    }

    #[test]
    fn scrub_removes_the_connection_string_and_its_secrets() {
        let cs = SecretString::from("Driver={X};Server=h;Uid=u;Pwd={CANARYPW;x};");
        let msg = "login failed for Driver={X};Server=h;Uid=u;Pwd={CANARYPW;x}; (CANARYPW;x)";
        let out = scrub(msg, &cs);
        assert_eq!(out, "login failed for *** (***)");
        assert_eq!(
            attributes("A=1; B = {x;}}y} ;C=z"),
            [("A", "1"), ("B", "x;}y"), ("C", "z")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let cs = SecretString::from("Driver={X};Password=CANARYPW2");
        assert_eq!(scrub("bad CANARYPW2", &cs), "bad ***");
    }

    #[test]
    fn fragments_of_a_secret_are_redacted() {
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.CANARYTOKEN.sig";
        let msg = "String or binary data would be truncated in table 'log.BearerTokens', column \
                   'bearerToken'. Truncated value: 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1'. (SQLSTATE 22001)";
        let out = redact_fragments(msg, token);
        assert!(!out.contains("eyJ0eXAiOiJKV1Qi"), "{out}");
        assert!(out.contains("Truncated value: '***'"), "{out}");
        assert!(
            out.contains("column 'bearerToken'"),
            "short common words survive: {out}"
        );
        assert_eq!(redact_fragments("x CANARYTOKEN.sig y", token), "x *** y");
        assert_eq!(redact_fragments("short abc", "abc"), "short ***");
    }

    #[test]
    fn sqlstates_decide_retries() {
        let e = |s: &str| DbError {
            message: String::new(),
            state: Some(s.into()),
        };
        assert!(e("08S01").connection_lost());
        assert!(e("40001").deadlock());
        assert!(!e("23000").connection_lost() && !e("23000").deadlock());
    }
}
