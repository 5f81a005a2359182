//! The statements as text, for every dialect, and above all for SQL Server, which cannot run on
//! the build machine: its T-SQL (locking hints included) is checked here, produced by the same
//! functions the live tests exercise on the other dialects.

use super::dialect::{Cond, Dialect, validate_table_name};
use super::schema::{OPERATIONS, SCHEMA_VERSION, THROTTLE, TOKENS};
use super::throttle::merge_throttle;

const TOKEN_COLUMNS: [&str; 9] = [
    "profile",
    "resource",
    "tenant_id",
    "client_id",
    "access_token",
    "token_format",
    "expires_at",
    "acquired_at",
    "updated_at",
];

const ALL: [Dialect; 4] = [
    Dialect::SqlServer,
    Dialect::Postgres,
    Dialect::MySql,
    Dialect::Sqlite,
];

fn params(sql: &str) -> usize {
    sql.matches('?').count()
}

#[test]
fn dialect_follows_the_dbms_name() {
    let d = Dialect::from_dbms_name;
    assert_eq!(d("Microsoft SQL Server"), Some(Dialect::SqlServer));
    assert_eq!(d("PostgreSQL"), Some(Dialect::Postgres));
    assert_eq!(d("MariaDB"), Some(Dialect::MySql));
    assert_eq!(d("MySQL"), Some(Dialect::MySql));
    assert_eq!(d("SQLite"), Some(Dialect::Sqlite));
    assert_eq!(d("Oracle"), None);
}

#[test]
fn sql_server_creates_tables_only_when_absent() {
    let statements = Dialect::SqlServer.create_table(&TOKENS);
    assert_eq!(
        statements,
        [
            "IF OBJECT_ID(N'pbiops_tokens', N'U') IS NULL CREATE TABLE [pbiops_tokens] (\
          [profile] NVARCHAR(128) NOT NULL, [resource] NVARCHAR(32) NOT NULL, \
          [tenant_id] NVARCHAR(128) NOT NULL, [client_id] NVARCHAR(128) NOT NULL, \
          [access_token] NVARCHAR(MAX) NOT NULL, [token_format] NVARCHAR(16) NOT NULL, \
          [expires_at] DATETIME2(6) NOT NULL, [acquired_at] DATETIME2(6) NOT NULL, \
          [updated_at] DATETIME2(6) NOT NULL, PRIMARY KEY ([profile], [resource]))"
        ]
    );
    let ops = Dialect::SqlServer.create_table(&OPERATIONS);
    assert_eq!(ops.len(), 3);
    assert!(ops[0].starts_with(
        "IF OBJECT_ID(N'pbiops_operations', N'U') IS NULL CREATE TABLE [pbiops_operations] (\
         [id] BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY, [operation] NVARCHAR(64) NOT NULL, "
    ));
    assert!(ops[0].contains("[attached] BIT NOT NULL"));
    assert!(ops[0].contains("[error_message] NVARCHAR(2000) NULL"));
    assert!(ops[0].contains("[task] NVARCHAR(MAX) NULL, [outputs] NVARCHAR(MAX) NULL)"));
    assert_eq!(
        ops[1],
        "IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'pbiops_operations_item_status' \
         AND object_id = OBJECT_ID(N'pbiops_operations')) CREATE INDEX [pbiops_operations_item_status] \
         ON [pbiops_operations] ([item_id], [status])"
    );
    assert!(ops[2].contains(
        "CREATE INDEX [pbiops_operations_started] ON [pbiops_operations] ([started_at])"
    ));
}

#[test]
fn sql_server_migrations_hold_a_session_application_lock() {
    let d = Dialect::SqlServer;
    assert!(d.transactional_ddl());
    let (lock, returns_flag) = d.migration_lock().expect("a lock");
    assert!(!returns_flag);
    assert!(lock.contains(
        "EXEC @r = sp_getapplock @Resource = N'pbiops_migrations', @LockMode = N'Exclusive', \
         @LockOwner = N'Session', @LockTimeout = 60000;"
    ));
    assert!(lock.ends_with("IF @r < 0 THROW 51000, N'timed out waiting for another pbiops process to migrate the store', 1;"));
    assert_eq!(
        d.migration_unlock(),
        Some("EXEC sp_releaseapplock @Resource = N'pbiops_migrations', @LockOwner = N'Session'")
    );
    assert_eq!(
        d.insert_version(),
        "INSERT INTO [pbiops_schema_version] ([version], [applied_at]) VALUES (?, ?)"
    );
    assert_eq!(
        d.select_version(),
        "SELECT MAX([version]) FROM [pbiops_schema_version]"
    );
}

#[test]
fn sql_server_token_upsert_is_a_merge_with_holdlock() {
    let sql = Dialect::SqlServer.upsert_token(&TOKEN_COLUMNS);
    assert_eq!(
        sql,
        "MERGE INTO [pbiops_tokens] WITH (HOLDLOCK) AS t \
         USING (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)) AS s ([profile], [resource], [tenant_id], [client_id], \
         [access_token], [token_format], [expires_at], [acquired_at], [updated_at]) \
         ON t.[profile] = s.[profile] AND t.[resource] = s.[resource] \
         WHEN MATCHED AND s.[expires_at] >= t.[expires_at] THEN UPDATE SET \
         t.[tenant_id] = s.[tenant_id], t.[client_id] = s.[client_id], t.[access_token] = s.[access_token], \
         t.[token_format] = s.[token_format], t.[expires_at] = s.[expires_at], \
         t.[acquired_at] = s.[acquired_at], t.[updated_at] = s.[updated_at] \
         WHEN NOT MATCHED THEN INSERT ([profile], [resource], [tenant_id], [client_id], [access_token], \
         [token_format], [expires_at], [acquired_at], [updated_at]) VALUES (s.[profile], s.[resource], \
         s.[tenant_id], s.[client_id], s.[access_token], s.[token_format], s.[expires_at], \
         s.[acquired_at], s.[updated_at]);"
    );
}

#[test]
fn sql_server_inserts_return_the_id_and_selects_limit_with_fetch() {
    let d = Dialect::SqlServer;
    let (insert, follow_up) = d.insert_returning_id(OPERATIONS.name, &["operation", "status"]);
    assert_eq!(
        insert,
        "INSERT INTO [pbiops_operations] ([operation], [status]) OUTPUT INSERTED.[id] VALUES (?, ?)"
    );
    assert_eq!(follow_up, None);
    let select = d.select(
        OPERATIONS.name,
        &["id", "status"],
        &[
            Cond::Eq("item_id"),
            Cond::AnyEqNoCase(&["workspace_name", "item_name"]),
            Cond::AtLeast("started_at"),
        ],
        &[("started_at", true), ("id", true)],
        true,
    );
    assert_eq!(
        select,
        "SELECT [id], [status] FROM [pbiops_operations] WHERE [item_id] = ? AND \
         (LOWER([workspace_name]) = LOWER(?) OR LOWER([item_name]) = LOWER(?)) AND [started_at] >= ? \
         ORDER BY [started_at] DESC, [id] DESC OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY"
    );
    assert_eq!(
        d.update(
            OPERATIONS.name,
            &["status", "ended_at"],
            &[Cond::Eq("id"), Cond::Eq("status")]
        ),
        "UPDATE [pbiops_operations] SET [status] = ?, [ended_at] = ? WHERE [id] = ? AND [status] = ?"
    );
}

#[test]
fn legacy_table_names_are_validated_and_quoted() {
    assert_eq!(
        Dialect::SqlServer
            .legacy_insert("log.BearerTokens")
            .expect("valid"),
        "INSERT INTO [log].[BearerTokens] ([bearerToken], [dateRetrieved], [expiresOn], [token_type]) VALUES (?, ?, ?, ?)"
    );
    assert_eq!(
        Dialect::Postgres
            .legacy_insert("BearerTokens")
            .expect("valid"),
        "INSERT INTO \"BearerTokens\" (\"bearerToken\", \"dateRetrieved\", \"expiresOn\", \"token_type\") VALUES (?, ?, ?, ?)"
    );
    assert!(
        Dialect::MySql
            .legacy_insert("log.Bearer_Tokens2")
            .expect("valid")
            .starts_with("INSERT INTO `log`.`Bearer_Tokens2`")
    );
    for bad in [
        "",
        "a.b.c",
        "log.Bearer Tokens",
        "x;DROP TABLE y",
        "[log].[t]",
        "1abc",
        "a.",
        "t--",
        "\"t\"",
    ] {
        assert!(validate_table_name(bad).is_err(), "{bad}");
        assert!(Dialect::SqlServer.legacy_insert(bad).is_err(), "{bad}");
    }
}

#[test]
fn other_dialects_upsert_atomically_keeping_the_latest_expiry() {
    let pg = Dialect::Postgres.upsert_token(&TOKEN_COLUMNS);
    assert!(pg.starts_with("INSERT INTO \"pbiops_tokens\" (\"profile\", "));
    assert!(pg.contains(" ON CONFLICT (\"profile\", \"resource\") DO UPDATE SET \"tenant_id\" = excluded.\"tenant_id\", "));
    assert!(pg.ends_with(" WHERE excluded.\"expires_at\" >= \"pbiops_tokens\".\"expires_at\""));
    assert_eq!(pg, Dialect::Sqlite.upsert_token(&TOKEN_COLUMNS));

    let my = Dialect::MySql.upsert_token(&TOKEN_COLUMNS);
    let update = my
        .split(" ON DUPLICATE KEY UPDATE ")
        .nth(1)
        .expect("update part");
    assert_eq!(
        update.matches(" = IF(").count(),
        7,
        "every column but the key: {update}"
    );
    assert!(
        update.ends_with("`expires_at` = IF(VALUES(`expires_at`) >= `expires_at`, VALUES(`expires_at`), `expires_at`)"),
        "expires_at is assigned last, so every IF compares with the old expiry: {update}"
    );
    assert!(update.starts_with(
        "`tenant_id` = IF(VALUES(`expires_at`) >= `expires_at`, VALUES(`tenant_id`), `tenant_id`)"
    ));
}

#[test]
fn every_statement_has_one_placeholder_per_value() {
    for d in ALL {
        assert_eq!(
            params(&d.upsert_token(&TOKEN_COLUMNS)),
            TOKEN_COLUMNS.len(),
            "{d:?}"
        );
        assert_eq!(params(&d.insert_version()), 2, "{d:?}");
        assert_eq!(params(&d.legacy_insert("t").expect("valid")), 4, "{d:?}");
        for table in [SCHEMA_VERSION, TOKENS, OPERATIONS] {
            for statement in d.create_table(&table) {
                assert_eq!(params(&statement), 0, "{d:?}: {statement}");
            }
        }
        let (insert, _) = d.insert_returning_id(OPERATIONS.name, &["a", "b", "c"]);
        assert_eq!(params(&insert), 3, "{d:?}");
        let select = d.select(
            "t",
            &["a"],
            &[Cond::AnyEqNoCase(&["a", "b"]), Cond::Eq("c")],
            &[("a", true)],
            true,
        );
        assert_eq!(params(&select), 4, "{d:?}: {select}");
        let listed = d.select("t", &["a"], &[Cond::In("id", 3)], &[], false);
        assert_eq!(params(&listed), 3, "{d:?}: {listed}");
    }
}

#[test]
fn identifiers_are_quoted_and_escaped_per_dialect() {
    assert_eq!(Dialect::SqlServer.quote("a]b"), "[a]]b]");
    assert_eq!(Dialect::MySql.quote("a`b"), "`a``b`");
    assert_eq!(Dialect::Postgres.quote("a\"b"), "\"a\"\"b\"");
    assert_eq!(Dialect::Sqlite.quote("x"), "\"x\"");
}

#[test]
fn mysql_tables_carry_their_indexes_and_a_binary_collation() {
    let ops = Dialect::MySql.create_table(&OPERATIONS);
    assert_eq!(ops.len(), 1);
    assert!(ops[0].starts_with("CREATE TABLE IF NOT EXISTS `pbiops_operations` (`id` BIGINT AUTO_INCREMENT NOT NULL PRIMARY KEY, "));
    assert!(ops[0].contains("INDEX `pbiops_operations_item_status` (`item_id`, `status`), INDEX `pbiops_operations_started` (`started_at`)"));
    assert!(ops[0].ends_with("ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"));
    let pg = Dialect::Postgres.create_table(&OPERATIONS);
    assert!(pg[0].contains("\"id\" BIGINT GENERATED BY DEFAULT AS IDENTITY NOT NULL PRIMARY KEY"));
    assert!(pg[0].contains("\"started_at\" TIMESTAMP(6) NOT NULL"));
    let lite = Dialect::Sqlite.create_table(&OPERATIONS);
    assert!(lite[0].contains("\"id\" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT"));
    assert_eq!(
        lite[2],
        "CREATE INDEX IF NOT EXISTS \"pbiops_operations_started\" ON \"pbiops_operations\" (\"started_at\")"
    );
}

#[test]
fn sql_server_merges_a_429_in_one_update_keeping_the_latest_pause_and_smallest_budget() {
    assert_eq!(
        Dialect::SqlServer.create_table(&THROTTLE),
        [
            "IF OBJECT_ID(N'pbiops_throttle', N'U') IS NULL CREATE TABLE [pbiops_throttle] (\
          [principal] NVARCHAR(200) NOT NULL, [api] NVARCHAR(200) NOT NULL, \
          [paused_until] DATETIME2(6) NOT NULL, [budget] FLOAT NULL, \
          [updated_at] DATETIME2(6) NOT NULL, PRIMARY KEY ([principal], [api]))"
        ]
    );
    assert_eq!(
        merge_throttle(Dialect::SqlServer, true),
        "UPDATE [pbiops_throttle] SET \
         [paused_until] = CASE WHEN [paused_until] < ? THEN ? ELSE [paused_until] END, \
         [budget] = CASE WHEN [budget] IS NULL OR [budget] > ? OR [updated_at] < ? THEN ? ELSE [budget] END, \
         [updated_at] = CASE WHEN [updated_at] < ? THEN ? ELSE [updated_at] END \
         WHERE [principal] = ? AND [api] = ?"
    );
    let without = merge_throttle(Dialect::SqlServer, false);
    assert!(
        without.contains("[budget] = CASE WHEN [updated_at] < ? THEN NULL ELSE [budget] END, "),
        "{without}"
    );
    for d in ALL {
        assert_eq!(params(&merge_throttle(d, true)), 9, "{d:?}");
        assert_eq!(params(&merge_throttle(d, false)), 7, "{d:?}");
        let merge = merge_throttle(d, true);
        assert!(
            merge.find(&d.quote("budget"))
                < merge.find(&format!("{} = CASE", d.quote("updated_at"))),
            "updated_at is assigned last (MySQL assignments see the earlier ones): {merge}"
        );
    }
}
