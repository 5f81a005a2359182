//! Bringing a database's schema up to date, safely when several runners start at once.
//!
//! The common case (already current) costs one query and takes no lock. Otherwise the migration
//! lock is taken (a session-level advisory lock on PostgreSQL, `GET_LOCK` on MariaDB/MySQL,
//! `sp_getapplock` on SQL Server; SQLite serializes writers on its file lock), the version is read
//! again, and each missing migration runs its idempotent statements and records its number, in
//! one transaction where DDL is transactional (PostgreSQL, SQL Server).

use super::conn::{DbError, Session};
use super::schema::{MIGRATIONS, SCHEMA_VERSION, latest_version};
use super::values::Value;

/// Runs every migration the database lacks. Blocking.
pub(crate) fn migrate(s: &Session<'_>) -> Result<(), DbError> {
    // The table may not exist yet: a failed query just means "not current".
    if current_version(s).is_ok_and(|v| v >= latest_version()) {
        return Ok(());
    }
    lock(s)?;
    let result = if s.dialect.transactional_ddl() {
        s.transaction(apply)
    } else {
        apply(s)
    };
    if let Some(unlock) = s.dialect.migration_unlock() {
        // A failed release is harmless: the lock goes with the session.
        let _ = s.query(unlock, &[], |_| Ok(()));
    }
    result
}

fn current_version(s: &Session<'_>) -> Result<i64, DbError> {
    let rows = s.query(&s.dialect.select_version(), &[], |c| c.int())?;
    Ok(rows.into_iter().flatten().next().unwrap_or(0))
}

fn lock(s: &Session<'_>) -> Result<(), DbError> {
    let Some((sql, returns_flag)) = s.dialect.migration_lock() else {
        return Ok(());
    };
    if returns_flag {
        let got = s.query(sql, &[], |c| c.int())?;
        if got.first().copied().flatten() != Some(1) {
            return Err(DbError::data(
                "timed out waiting for another pbiops process to migrate the store",
            ));
        }
    } else {
        s.query(sql, &[], |_| Ok(()))?;
    }
    Ok(())
}

fn apply(s: &Session<'_>) -> Result<(), DbError> {
    for statement in s.dialect.create_table(&SCHEMA_VERSION) {
        s.execute(&statement, &[])?;
    }
    let current = current_version(s)?;
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        for table in migration.creates {
            for statement in s.dialect.create_table(table) {
                s.execute(&statement, &[])?;
            }
        }
        s.execute(
            &s.dialect.insert_version(),
            &[
                Value::Int(Some(migration.version)),
                Value::Time(Some(super::now())),
            ],
        )?;
    }
    Ok(())
}
