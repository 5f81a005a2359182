//! Where operations and tokens are recorded: `PBIOPS_ODBC`, the default SQLite file's directory,
//! the token key and the legacy token table.

use std::path::PathBuf;

use secrecy::SecretString;

use super::RawSettings;
use super::values::positive;
use crate::error::Error;

/// Where operations and tokens are recorded.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The ODBC connection string; `None` when `PBIOPS_ODBC=none`.
    pub connection: Option<SecretString>,
    /// The directory of the default SQLite file, to create before connecting.
    pub data_dir: Option<PathBuf>,
    /// `PBIOPS_TOKEN_KEY` (base64 of 32 bytes; decoded and checked when the store opens,
    /// before any request).
    pub token_key: Option<SecretString>,
    /// `PBIOPS_LEGACY_TOKEN_TABLE`.
    pub legacy_table: Option<String>,
    /// `PBIOPS_LEGACY_TOKEN_MAX_LENGTH`.
    pub legacy_max_length: usize,
}

/// The store's settings; without `PBIOPS_ODBC`, a SQLite file in the data directory.
pub(super) fn store_settings(
    raw: &RawSettings,
    foreign: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreSettings, Error> {
    let data_dir = raw
        .data_dir
        .clone()
        .map(PathBuf::from)
        .or_else(|| foreign("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("pbiops")))
        .or_else(|| foreign("HOME").map(|h| PathBuf::from(h).join(".local/share/pbiops")));
    let (connection, data_dir) = match raw.odbc.as_deref() {
        Some(s) if s.trim().eq_ignore_ascii_case("none") => (None, None),
        Some(s) => (Some(SecretString::from(s.to_string())), None),
        None => {
            let dir = data_dir.ok_or_else(|| {
                Error::setting(
                    "PBIOPS_DATA_DIR",
                    "no data directory for the default SQLite store (HOME is not set)",
                    "set PBIOPS_DATA_DIR, or PBIOPS_ODBC to a connection string (or `none`)",
                )
            })?;
            // Write-ahead logging, synced at checkpoints: a commit is an append instead of a
            // journal file created, synced and deleted, which is most of the CPU a fleet of
            // recorded items spends; it also lets readers (a timeline, a concurrent run) go on
            // while a run writes. A power cut may lose the last commits, never the database.
            let conn = format!(
                "Driver={{SQLite3}};Database={};JournalMode=WAL;SyncPragma=NORMAL;",
                dir.join("pbiops.db").display()
            );
            (Some(SecretString::from(conn)), Some(dir))
        }
    };
    let token_key = raw.token_key.clone().map(SecretString::from);
    if let Some(table) = &raw.legacy_token_table {
        crate::store::validate_table_name(table).map_err(|e| {
            Error::setting(
                "PBIOPS_LEGACY_TOKEN_TABLE",
                e,
                "a table name such as log.BearerTokens (letters, digits, underscores)",
            )
        })?;
    }
    Ok(StoreSettings {
        connection,
        data_dir,
        token_key,
        legacy_table: raw.legacy_token_table.clone(),
        legacy_max_length: positive(
            "PBIOPS_LEGACY_TOKEN_MAX_LENGTH",
            raw.legacy_token_max_length.as_deref(),
            1300,
        )?,
    })
}
