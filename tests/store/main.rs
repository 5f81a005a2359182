//! Live tests of the store over ODBC: SQLite, PostgreSQL and MariaDB, each test on a fresh
//! database of its own. SQL Server statements are unit-tested as text in `src/store`.

mod claims;
mod concurrency;
mod legacy;
mod operations;
mod schema;
mod support;
mod throttle;
mod tokens;

/// Generates one test per live backend for an `async fn(Backend)`.
#[macro_export]
macro_rules! live {
    ($name:ident) => {
        mod $name {
            use $crate::support::Backend;

            #[tokio::test]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }

            #[tokio::test]
            async fn mariadb() {
                super::$name(Backend::MariaDb).await
            }
        }
    };
}
