//! Opening the store: dialect detection, migrations (repeated and concurrent), unreachable
//! databases, and reconnecting after the server dropped the connection.

use pbiops::store::{Dialect, Store};
use secrecy::SecretString;

use crate::live;
use crate::support::{Backend, TestDb};

fn expected_dialect(backend: Backend) -> Dialect {
    match backend {
        Backend::Sqlite => Dialect::Sqlite,
        Backend::Postgres => Dialect::Postgres,
        Backend::MariaDb => Dialect::MySql,
    }
}

/// One row per migration, each recorded once.
fn every_version() -> Vec<Vec<Option<String>>> {
    (1..=pbiops::store::schema::latest_version())
        .map(|v| vec![Some(v.to_string())])
        .collect()
}

fn versions(db: &TestDb) -> Vec<Vec<Option<String>>> {
    db.query("SELECT version FROM pbiops_schema_version ORDER BY version")
}

async fn migrations_run_twice(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("first open");
    assert_eq!(store.dialect(), expected_dialect(backend));
    drop(store);
    let store = Store::open(&db.secret(), None).await.expect("second open");
    assert_eq!(versions(&db), every_version());
    for table in ["pbiops_tokens", "pbiops_operations", "pbiops_claims"] {
        let rows = db.query(&format!("SELECT COUNT(*) FROM {table}"));
        assert_eq!(rows[0][0].as_deref(), Some("0"), "{table}");
    }
    assert!(store.tokens().await.expect("tokens").is_empty());
}
live!(migrations_run_twice);

async fn migrations_run_concurrently(backend: Backend) {
    let db = TestDb::new(backend);
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let cs = db.secret();
        opens.spawn(async move { Store::open(&cs, None).await.map(|s| s.dialect()) });
    }
    while let Some(opened) = opens.join_next().await {
        let dialect = opened
            .expect("task")
            .expect("every concurrent open succeeds");
        assert_eq!(dialect, expected_dialect(backend));
    }
    assert_eq!(versions(&db), every_version());
}
live!(migrations_run_concurrently);

async fn reconnects_after_the_server_dropped_the_connection(backend: Backend) {
    if backend == Backend::Sqlite {
        return; // a file has no connection to lose
    }
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    db.kill_connections();
    let listed = store
        .tokens()
        .await
        .expect("the call reconnects once and succeeds");
    assert!(listed.is_empty());
}
live!(reconnects_after_the_server_dropped_the_connection);

#[tokio::test]
async fn an_unreachable_store_fails_with_exit_7_without_leaking_the_connection_string() {
    let cs = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=test;Uid=postgres;Pwd=CANARYPASSWORD;";
    let e = Store::open(&SecretString::from(cs), None)
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(e.exit_code().code(), 7, "{e}");
    assert!(
        e.to_string().starts_with("store: connect to the store: "),
        "{e}"
    );
    crate::support::assert_never_mentions(&e, "CANARYPASSWORD");
    crate::support::assert_never_mentions(&e, "Port=1");

    let cs = "Driver={No Such Driver};Pwd={CANARY;PASSWORD};";
    let e = Store::open(&SecretString::from(cs), None)
        .await
        .expect_err("no driver");
    assert_eq!(e.exit_code().code(), 7);
    crate::support::assert_never_mentions(&e, "CANARY;PASSWORD");
}
