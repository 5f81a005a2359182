//! The tables, as data: one definition that every dialect renders, and the numbered migrations.
//!
//! Column sizes live here and nowhere else; values longer than a bounded column are cut to fit
//! (see [`truncate`]) rather than failing the record of an operation. Migrations only ever add:
//! each one is idempotent, numbered, and recorded in `pbiops_schema_version`.

/// A column's logical type; each dialect renders it as its own column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A generated 64-bit row id, the primary key.
    Id,
    /// Text of at most this many characters (UTF-16 code units, as SQL Server counts them).
    Text(usize),
    /// Text of any length.
    LongText,
    /// A 32-bit integer.
    Int,
    /// A double-precision number.
    Float,
    /// A UTC instant, stored without zone to the microsecond.
    Time,
    /// A flag stored as 0 or 1.
    Flag,
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The column name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// One table with its keys and indexes.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table name (with the `pbiops_` prefix).
    pub name: &'static str,
    /// The columns, in order.
    pub columns: &'static [Column],
    /// The primary key, when it is not an [`Kind::Id`] column.
    pub primary_key: &'static [&'static str],
    /// Secondary indexes: name and columns.
    pub indexes: &'static [(&'static str, &'static [&'static str])],
}

impl Table {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: false,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: true,
    }
}

/// Applied migrations.
pub const SCHEMA_VERSION: Table = Table {
    name: "pbiops_schema_version",
    columns: &[col("version", Kind::Int), col("applied_at", Kind::Time)],
    primary_key: &["version"],
    indexes: &[],
};

/// One current token per (profile, resource).
pub const TOKENS: Table = Table {
    name: "pbiops_tokens",
    columns: &[
        col("profile", Kind::Text(128)),
        col("resource", Kind::Text(32)),
        col("tenant_id", Kind::Text(128)),
        col("client_id", Kind::Text(128)),
        col("access_token", Kind::LongText),
        col("token_format", Kind::Text(16)),
        col("expires_at", Kind::Time),
        col("acquired_at", Kind::Time),
        col("updated_at", Kind::Time),
    ],
    primary_key: &["profile", "resource"],
    indexes: &[],
};

/// One row per operation.
pub const OPERATIONS: Table = Table {
    name: "pbiops_operations",
    columns: &[
        col("id", Kind::Id),
        col("operation", Kind::Text(64)),
        opt("profile", Kind::Text(128)),
        col("status", Kind::Text(32)),
        opt("item_kind", Kind::Text(64)),
        opt("workspace_id", Kind::Text(64)),
        opt("workspace_name", Kind::Text(256)),
        opt("item_id", Kind::Text(64)),
        opt("item_name", Kind::Text(256)),
        opt("request_id", Kind::Text(128)),
        col("attached", Kind::Flag),
        col("started_at", Kind::Time),
        col("updated_at", Kind::Time),
        opt("ended_at", Kind::Time),
        opt("duration_seconds", Kind::Float),
        opt("exit_code", Kind::Int),
        opt("error_code", Kind::Text(128)),
        opt("error_message", Kind::Text(2000)),
        opt("kestra_execution_id", Kind::Text(128)),
        opt("kestra_taskrun_id", Kind::Text(128)),
        opt("kestra_flow_id", Kind::Text(256)),
        opt("kestra_namespace", Kind::Text(256)),
        col("pbiops_version", Kind::Text(32)),
        opt("task", Kind::LongText),
        opt("outputs", Kind::LongText),
    ],
    primary_key: &[],
    indexes: &[
        ("pbiops_operations_item_status", &["item_id", "status"]),
        ("pbiops_operations_started", &["started_at"]),
    ],
};

/// One row per item a run is about to trigger: the arbiter of single flight across processes
/// (a primary-key insert succeeds for exactly one of them).
pub const CLAIMS: Table = Table {
    name: "pbiops_claims",
    columns: &[
        col("item_key", Kind::Text(200)),
        col("holder", Kind::Text(32)),
        col("claimed_at", Kind::Time),
        col("expires_at", Kind::Time),
    ],
    primary_key: &["item_key"],
    indexes: &[],
};

/// One row per capacity slot held: `maxParallelPerCapacity` across every process using the
/// store (the primary key lets one holder take a slot number).
pub const SLOTS: Table = Table {
    name: "pbiops_slots",
    columns: &[
        col("capacity", Kind::Text(200)),
        col("slot", Kind::Int),
        col("holder", Kind::Text(32)),
        col("acquired_at", Kind::Time),
        col("expires_at", Kind::Time),
    ],
    primary_key: &["capacity", "slot"],
    indexes: &[],
};

/// The runs waiting for a capacity slot, in order of arrival.
pub const SLOT_QUEUE: Table = Table {
    name: "pbiops_slot_queue",
    columns: &[
        col("capacity", Kind::Text(200)),
        col("holder", Kind::Text(32)),
        col("arrived_at", Kind::Time),
        col("expires_at", Kind::Time),
    ],
    primary_key: &["capacity", "holder"],
    indexes: &[],
};

/// Throttling shared by the runs acting as one principal: per API host, the pause the latest
/// 429 asked for and the smallest budget per minute a run learned (`store::throttle`). No
/// secret: the principal is a client id (or a profile name), the API a host.
pub const THROTTLE: Table = Table {
    name: "pbiops_throttle",
    columns: &[
        col("principal", Kind::Text(200)),
        col("api", Kind::Text(200)),
        col("paused_until", Kind::Time),
        opt("budget", Kind::Float),
        col("updated_at", Kind::Time),
    ],
    primary_key: &["principal", "api"],
    indexes: &[],
};

/// A numbered schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number, recorded in `pbiops_schema_version`.
    pub version: i64,
    /// The tables it creates (with their indexes), when absent.
    pub creates: &'static [Table],
}

/// Every migration, in order. Add new ones at the end; never change a shipped one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        creates: &[TOKENS, OPERATIONS],
    },
    Migration {
        version: 2,
        creates: &[CLAIMS],
    },
    Migration {
        version: 3,
        creates: &[SLOTS, SLOT_QUEUE],
    },
    Migration {
        version: 4,
        creates: &[THROTTLE],
    },
];

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Cuts `text` to at most `limit` UTF-16 code units, on a character boundary.
pub fn truncate(text: &str, limit: usize) -> &str {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        units += c.len_utf16();
        if units > limit {
            return &text[..at];
        }
    }
    text
}

/// The size of a bounded text column of `table`, for [`truncate`].
pub fn text_limit(table: &Table, column: &str) -> Option<usize> {
    match table.column(column)?.kind {
        Kind::Text(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_utf16_units_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("é日本", 2), "é日");
        // An astral character takes two units: it does not fit in one.
        assert_eq!(truncate("a🚀", 2), "a");
        assert_eq!(truncate("a🚀", 3), "a🚀");
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
        assert_eq!(latest_version(), 4);
        assert_eq!(text_limit(&OPERATIONS, "error_message"), Some(2000));
    }
}
