//! The legacy token table of the team's Python scripts: rows their readers pick up, and the
//! refusal of a token their `NVARCHAR(1300)` column would cut.

use pbiops::store::Store;
use secrecy::SecretString;

use crate::live;
use crate::support::{Backend, CANARY, TestDb, assert_never_mentions, at};

/// A token of exactly `len` characters holding the canary.
fn token_of(len: usize, fill: char) -> SecretString {
    let head = format!("{CANARY}-");
    SecretString::from(format!(
        "{head}{}",
        fill.to_string().repeat(len - head.len())
    ))
}

/// Creates the legacy table the way the team declared it; returns its name and the readers'
/// query (the newest unexpired token of a type).
fn create_legacy_table(db: &TestDb) -> (String, String) {
    match db.backend {
        Backend::Sqlite => {
            db.exec("CREATE TABLE BearerTokens (bearerToken VARCHAR(1300) NOT NULL, dateRetrieved TIMESTAMP NOT NULL, expiresOn TIMESTAMP NOT NULL, token_type VARCHAR(50) NOT NULL)");
            (
                "BearerTokens".into(),
                "SELECT bearerToken, dateRetrieved FROM BearerTokens WHERE token_type = 'powerbi' AND expiresOn > datetime('now') ORDER BY dateRetrieved DESC LIMIT 1".into(),
            )
        }
        Backend::Postgres => {
            let t = format!("{}.\"BearerTokens\"", db.name);
            db.exec(&format!("CREATE TABLE {t} (\"bearerToken\" VARCHAR(1300) NOT NULL, \"dateRetrieved\" TIMESTAMP(3) NOT NULL, \"expiresOn\" TIMESTAMP(3) NOT NULL, token_type VARCHAR(50) NOT NULL)"));
            (
                format!("{}.BearerTokens", db.name),
                format!(
                    "SELECT \"bearerToken\", \"dateRetrieved\" FROM {t} WHERE token_type = 'powerbi' AND \"expiresOn\" > (now() AT TIME ZONE 'UTC') ORDER BY \"dateRetrieved\" DESC LIMIT 1"
                ),
            )
        }
        Backend::MariaDb => {
            let t = format!("{}.BearerTokens", db.name);
            db.exec(&format!("CREATE TABLE {t} (bearerToken VARCHAR(1300) NOT NULL, dateRetrieved DATETIME(3) NOT NULL, expiresOn DATETIME(3) NOT NULL, token_type VARCHAR(50) NOT NULL)"));
            (
                t.clone(),
                format!(
                    "SELECT bearerToken, dateRetrieved FROM {t} WHERE token_type = 'powerbi' AND expiresOn > UTC_TIMESTAMP() ORDER BY dateRetrieved DESC LIMIT 1"
                ),
            )
        }
    }
}

async fn legacy_readers_find_the_newest_token(backend: Backend) {
    let db = TestDb::new(backend);
    let (table, reader) = create_legacy_table(&db);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let older = token_of(1200, 'o');
    let newer = token_of(1300, 'n');
    store
        .append_legacy_token(&table, &older, at(0), at(60), "powerbi", 1300)
        .await
        .expect("append");
    store
        .append_legacy_token(&table, &newer, at(30), at(90), "powerbi", 1300)
        .await
        .expect("a token of exactly the column size fits");
    let rows = db.query(&reader);
    assert_eq!(rows.len(), 1);
    let got = rows[0][0].as_deref().expect("token");
    assert_eq!(got.len(), 1300);
    assert!(got.ends_with('n'), "the newest row");
    assert!(
        rows[0][1]
            .as_deref()
            .expect("date")
            .starts_with("2033-05-18 04:03:20"),
        "UTC: {:?}",
        rows[0][1]
    );

    let e = store
        .append_legacy_token(
            &table,
            &token_of(1301, 'z'),
            at(40),
            at(100),
            "powerbi",
            1300,
        )
        .await
        .expect_err("too long");
    assert_eq!(e.exit_code().code(), 7);
    let text = e.to_string();
    assert!(
        text.contains("1301 characters") && text.contains("at most 1300"),
        "{text}"
    );
    assert!(
        e.hint().expect("help").contains("NVARCHAR(MAX)"),
        "{:?}",
        e.hint()
    );
    assert_never_mentions(&e, CANARY);
    let total = db.query(&format!("SELECT COUNT(*) FROM {}", quoted(&db, &table)));
    assert_eq!(total[0][0].as_deref(), Some("2"), "nothing was written");

    for bad in ["log.Bearer Tokens", "a.b.c", "t;DROP TABLE pbiops_tokens"] {
        let e = store
            .append_legacy_token(bad, &older, at(0), at(60), "powerbi", 1300)
            .await
            .expect_err("invalid name");
        assert_eq!(e.exit_code().code(), 7);
        assert_never_mentions(&e, CANARY);
    }
}
live!(legacy_readers_find_the_newest_token);

fn quoted(db: &TestDb, table: &str) -> String {
    match db.backend {
        Backend::Postgres => table.replace("BearerTokens", "\"BearerTokens\""),
        _ => table.to_string(),
    }
}
