//! Every SQL statement the store runs, for each dialect, in one place.
//!
//! The dialect comes from the DBMS name the driver reports. Statements take values only as `?`
//! parameters; the text holds identifiers (quoted per dialect) and constants, never a value. The
//! SQL Server statements cannot run on the build machine, so they are produced by the same
//! functions as the others and unit-tested as text (`sql_text_tests.rs`).

use super::schema::TOKENS;

/// The SQL dialects the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Microsoft SQL Server and Azure SQL (msodbcsql18 or FreeTDS).
    SqlServer,
    /// PostgreSQL (psqlODBC).
    Postgres,
    /// MariaDB or MySQL.
    MySql,
    /// SQLite (the SQLite3 ODBC driver).
    Sqlite,
}

/// The DBMS the store supports, for error hints.
pub const SUPPORTED: &str = "Microsoft SQL Server, PostgreSQL, MariaDB/MySQL, SQLite";

/// A condition of a `WHERE` clause; each takes its value(s) as parameters, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cond<'a> {
    /// `col = ?`
    Eq(&'a str),
    /// `LOWER(col) = LOWER(?)`
    EqNoCase(&'a str),
    /// `(LOWER(a) = LOWER(?) OR LOWER(b) = LOWER(?) …)`: one parameter per column.
    AnyEqNoCase(&'a [&'a str]),
    /// `col >= ?`
    AtLeast(&'a str),
    /// `col <= ?`
    AtMost(&'a str),
    /// `col IS NULL` (no parameter).
    IsNull(&'a str),
    /// `col IN (?, …)`: this many parameters (at least one).
    In(&'a str, usize),
}

impl Dialect {
    /// The dialect of the DBMS named by `SQLGetInfo(SQL_DBMS_NAME)`, if supported.
    pub fn from_dbms_name(name: &str) -> Option<Dialect> {
        let name = name.to_ascii_lowercase();
        if name.contains("sql server") {
            Some(Dialect::SqlServer)
        } else if name.contains("postgres") {
            Some(Dialect::Postgres)
        } else if name.contains("mariadb") || name.contains("mysql") {
            Some(Dialect::MySql)
        } else if name.contains("sqlite") {
            Some(Dialect::Sqlite)
        } else {
            None
        }
    }

    /// A human name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::SqlServer => "SQL Server",
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MariaDB/MySQL",
            Dialect::Sqlite => "SQLite",
        }
    }

    /// Whether times are bound and read as fixed-width ISO text (SQLite has no time type; the
    /// fixed width keeps text order equal to time order).
    pub(crate) fn times_as_text(self) -> bool {
        self == Dialect::Sqlite
    }

    /// Whether text is bound and read as UTF-16 (SQL Server's `NVARCHAR`, whatever the code page).
    pub(crate) fn wide_text(self) -> bool {
        self == Dialect::SqlServer
    }

    /// Quotes an identifier. Identifiers are constants of this crate or validated names.
    pub(crate) fn quote(self, ident: &str) -> String {
        match self {
            Dialect::SqlServer => format!("[{}]", ident.replace(']', "]]")),
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    pub(crate) fn quote_list(self, idents: &[&str]) -> String {
        let quoted: Vec<String> = idents.iter().map(|i| self.quote(i)).collect();
        quoted.join(", ")
    }

    /// `INSERT INTO table (cols) VALUES (?, …)`.
    pub(crate) fn insert(self, table: &str, cols: &[&str]) -> String {
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.quote(table),
            self.quote_list(cols),
            placeholders(cols.len())
        )
    }

    /// An insert that yields the new row's `id`: the statement, and the query to run right after
    /// it on the same connection when the insert itself returns nothing.
    pub(crate) fn insert_returning_id(
        self,
        table: &str,
        cols: &[&str],
    ) -> (String, Option<&'static str>) {
        let id = self.quote("id");
        match self {
            Dialect::Postgres => (format!("{} RETURNING {id}", self.insert(table, cols)), None),
            Dialect::SqlServer => (
                format!(
                    "INSERT INTO {} ({}) OUTPUT INSERTED.{id} VALUES ({})",
                    self.quote(table),
                    self.quote_list(cols),
                    placeholders(cols.len())
                ),
                None,
            ),
            Dialect::MySql => (self.insert(table, cols), Some("SELECT LAST_INSERT_ID()")),
            Dialect::Sqlite => (self.insert(table, cols), Some("SELECT last_insert_rowid()")),
        }
    }

    /// The token upsert, parameters in the order of `cols` (which must include `profile`,
    /// `resource` and `expires_at`). The existing row is replaced only when the new token expires
    /// no earlier, in one atomic statement: concurrent runners converge on the newest token and
    /// every column of the row comes from the same write.
    pub(crate) fn upsert_token(self, cols: &[&str]) -> String {
        let key = TOKENS.primary_key;
        let rest: Vec<&str> = cols.iter().copied().filter(|c| !key.contains(c)).collect();
        let t = self.quote(TOKENS.name);
        let exp = self.quote("expires_at");
        match self {
            Dialect::Postgres | Dialect::Sqlite => {
                let set: Vec<String> = rest
                    .iter()
                    .map(|c| format!("{0} = excluded.{0}", self.quote(c)))
                    .collect();
                format!(
                    "{} ON CONFLICT ({}) DO UPDATE SET {} WHERE excluded.{exp} >= {t}.{exp}",
                    self.insert(TOKENS.name, cols),
                    self.quote_list(key),
                    set.join(", ")
                )
            }
            Dialect::MySql => {
                // Assignments run left to right and see earlier ones, so `expires_at` goes last:
                // every condition compares against the row's old expiry.
                let mut ordered: Vec<&str> =
                    rest.into_iter().filter(|c| *c != "expires_at").collect();
                ordered.push("expires_at");
                let set: Vec<String> = ordered
                    .iter()
                    .map(|c| {
                        let c = self.quote(c);
                        format!("{c} = IF(VALUES({exp}) >= {exp}, VALUES({c}), {c})")
                    })
                    .collect();
                format!(
                    "{} ON DUPLICATE KEY UPDATE {}",
                    self.insert(TOKENS.name, cols),
                    set.join(", ")
                )
            }
            Dialect::SqlServer => {
                let on: Vec<String> = key
                    .iter()
                    .map(|c| format!("t.{0} = s.{0}", self.quote(c)))
                    .collect();
                let set: Vec<String> = rest
                    .iter()
                    .map(|c| format!("t.{0} = s.{0}", self.quote(c)))
                    .collect();
                let values: Vec<String> = cols
                    .iter()
                    .map(|c| format!("s.{}", self.quote(c)))
                    .collect();
                // HOLDLOCK (serializable) keeps the key range locked from the match to the
                // write, so two runners cannot both take the NOT MATCHED branch.
                format!(
                    "MERGE INTO {t} WITH (HOLDLOCK) AS t USING (VALUES ({})) AS s ({}) ON {} WHEN MATCHED AND s.{exp} >= t.{exp} THEN UPDATE SET {} WHEN NOT MATCHED THEN INSERT ({}) VALUES ({});",
                    placeholders(cols.len()),
                    self.quote_list(cols),
                    on.join(" AND "),
                    set.join(", "),
                    self.quote_list(cols),
                    values.join(", ")
                )
            }
        }
    }

    /// `UPDATE table SET a = ?, … WHERE …`: the `SET` values first, then the conditions'.
    pub(crate) fn delete(self, table: &str, conds: &[Cond<'_>]) -> String {
        let clauses: Vec<String> = conds.iter().map(|c| self.condition(*c)).collect();
        format!(
            "DELETE FROM {} WHERE {}",
            self.quote(table),
            clauses.join(" AND ")
        )
    }

    pub(crate) fn update(self, table: &str, set: &[&str], conds: &[Cond<'_>]) -> String {
        let set: Vec<String> = set
            .iter()
            .map(|c| format!("{} = ?", self.quote(c)))
            .collect();
        let clauses: Vec<String> = conds.iter().map(|c| self.condition(*c)).collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.quote(table),
            set.join(", "),
            clauses.join(" AND ")
        )
    }

    /// `SELECT cols FROM table WHERE … ORDER BY …`, with a row limit as the last parameter when
    /// `limited`. `order` lists columns, each sorted descending when paired with `true`.
    pub(crate) fn select(
        self,
        table: &str,
        cols: &[&str],
        conds: &[Cond<'_>],
        order: &[(&str, bool)],
        limited: bool,
    ) -> String {
        let mut sql = format!(
            "SELECT {} FROM {}",
            self.quote_list(cols),
            self.quote(table)
        );
        let clauses: Vec<String> = conds.iter().map(|c| self.condition(*c)).collect();
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        if !order.is_empty() {
            let keys: Vec<String> = order
                .iter()
                .map(|(c, desc)| format!("{}{}", self.quote(c), if *desc { " DESC" } else { "" }))
                .collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&keys.join(", "));
        }
        if limited {
            sql.push_str(match self {
                // OFFSET … FETCH keeps the limit the last parameter, as LIMIT does elsewhere.
                Dialect::SqlServer => " OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
                _ => " LIMIT ?",
            });
        }
        sql
    }

    fn condition(self, cond: Cond<'_>) -> String {
        match cond {
            Cond::Eq(c) => format!("{} = ?", self.quote(c)),
            Cond::EqNoCase(c) => format!("LOWER({}) = LOWER(?)", self.quote(c)),
            Cond::AnyEqNoCase(cols) => {
                let any: Vec<String> = cols
                    .iter()
                    .map(|c| self.condition(Cond::EqNoCase(c)))
                    .collect();
                format!("({})", any.join(" OR "))
            }
            Cond::AtLeast(c) => format!("{} >= ?", self.quote(c)),
            Cond::AtMost(c) => format!("{} <= ?", self.quote(c)),
            Cond::IsNull(c) => format!("{} IS NULL", self.quote(c)),
            Cond::In(c, n) => {
                debug_assert!(n > 0, "an empty IN list binds nothing");
                format!("{} IN ({})", self.quote(c), placeholders(n.max(1)))
            }
        }
    }

    /// The insert into a legacy token table (`schema.table` or `table`, validated), with the
    /// columns its readers expect.
    pub(crate) fn legacy_insert(self, table: &str) -> Result<String, String> {
        validate_table_name(table)?;
        let quoted: Vec<String> = table.split('.').map(|p| self.quote(p)).collect();
        let cols = ["bearerToken", "dateRetrieved", "expiresOn", "token_type"];
        Ok(format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quoted.join("."),
            self.quote_list(&cols),
            placeholders(cols.len())
        ))
    }
}

pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Checks a legacy table name: `schema.table` or `table`, each part letters, digits and
/// underscores, not starting with a digit, at most 128 characters.
pub fn validate_table_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    if parts.len() <= 2 && parts.iter().all(|p| valid_part(p)) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a table name: use `schema.table` or `table`, with letters, digits and underscores"
        ))
    }
}
