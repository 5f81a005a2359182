//! The token store: read-back, encryption at rest, and the newest token winning.

use pbiops::store::{NewToken, Store, TokenKey};
use secrecy::{ExposeSecret, SecretString};

use crate::live;
use crate::support::{Backend, CANARY, TestDb, assert_never_mentions, at};

/// A realistic, long token (real ones run past 2000 characters) holding the canary.
pub fn token_value(tag: &str) -> String {
    format!("{CANARY}-{tag}-{}", "x".repeat(2400))
}

fn new_token(profile: &str, resource: &str, tag: &str, expires_minutes: i64) -> NewToken {
    NewToken {
        profile: profile.into(),
        resource: resource.into(),
        tenant_id: format!("tenant-{tag}"),
        client_id: format!("client-{tag}"),
        access_token: SecretString::from(token_value(tag)),
        expires_at: at(expires_minutes),
        acquired_at: at(expires_minutes - 60),
    }
}

fn key(byte: u8) -> TokenKey {
    TokenKey::from_bytes([byte; 32])
}

async fn tokens_are_stored_and_read_back(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    assert!(
        store
            .token("default", "powerbi")
            .await
            .expect("read")
            .is_none()
    );

    let mut t = new_token("default", "powerbi", "a", 60);
    t.expires_at = "2033-05-18T04:33:20.123456Z".parse().expect("time");
    store.put_token(&t).await.expect("put");
    store
        .put_token(&new_token("default", "fabric", "b", 30))
        .await
        .expect("put");
    let mut managed = new_token("sales", "powerbi", "c", 45);
    managed.tenant_id = String::new(); // a managed identity has neither
    managed.client_id = String::new();
    store.put_token(&managed).await.expect("put");

    let got = store
        .token("default", "powerbi")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(got.access_token.expose_secret(), token_value("a"));
    assert_eq!(got.tenant_id, "tenant-a");
    assert_eq!(got.client_id, "client-a");
    assert_eq!(got.expires_at, t.expires_at, "microseconds survive");
    assert_eq!(got.acquired_at, at(0));

    let rows = db.query("SELECT token_format, access_token FROM pbiops_tokens WHERE profile = 'default' AND resource = 'powerbi'");
    assert_eq!(rows[0][0].as_deref(), Some("plain"));
    assert_eq!(rows[0][1].as_deref(), Some(token_value("a").as_str()));

    let listed = store.tokens().await.expect("list");
    let keys: Vec<(&str, &str)> = listed
        .iter()
        .map(|i| (i.profile.as_str(), i.resource.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("default", "fabric"),
            ("default", "powerbi"),
            ("sales", "powerbi")
        ]
    );
    assert_eq!(listed[2].expires_at, at(45));
    assert_eq!(listed[2].token_format, "plain");
    assert_eq!(
        (listed[2].tenant_id.as_str(), listed[2].client_id.as_str()),
        ("", "")
    );
    let json = serde_json::to_string(&listed).expect("json");
    assert!(
        json.contains("\"expiresAt\":\"2033-05-18T04:18:20Z\""),
        "{json}"
    );
    assert!(!json.contains(CANARY));
}
live!(tokens_are_stored_and_read_back);

async fn tokens_are_encrypted_at_rest(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), Some(key(1))).await.expect("open");
    assert!(store.encrypts_tokens());
    store
        .put_token(&new_token("default", "powerbi", "secret", 60))
        .await
        .expect("put");
    store
        .put_token(&new_token("other", "powerbi", "other", 60))
        .await
        .expect("put");

    let rows =
        db.query("SELECT token_format, access_token FROM pbiops_tokens WHERE profile = 'default'");
    assert_eq!(rows[0][0].as_deref(), Some("aes256gcm-v1"));
    let stored = rows[0][1].clone().expect("ciphertext");
    assert_ne!(stored, token_value("secret"));
    assert!(!stored.contains(CANARY), "the row holds ciphertext only");

    let got = store
        .token("default", "powerbi")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(got.access_token.expose_secret(), token_value("secret"));

    for wrong in [Some(key(2)), None] {
        let other = Store::open(&db.secret(), wrong).await.expect("open");
        let e = other
            .token("default", "powerbi")
            .await
            .expect_err("cannot decrypt");
        assert_eq!(e.exit_code().code(), 7);
        assert!(
            e.hint()
                .expect("help")
                .contains("PBIOPS_TOKEN_KEY must be the key"),
            "{:?}",
            e.hint()
        );
        assert_never_mentions(&e, CANARY);
        assert_never_mentions(&e, &stored);
    }

    // A ciphertext copied into another profile's row does not decrypt there.
    db.exec(&format!(
        "UPDATE pbiops_tokens SET access_token = '{stored}' WHERE profile = 'other'"
    ));
    let e = store
        .token("other", "powerbi")
        .await
        .expect_err("bound to its row");
    assert_never_mentions(&e, CANARY);

    // A plain token written before the key was set is still read.
    let plain = Store::open(&db.secret(), None).await.expect("open");
    plain
        .put_token(&new_token("legacy", "fabric", "plain", 60))
        .await
        .expect("put");
    let got = store
        .token("legacy", "fabric")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(got.access_token.expose_secret(), token_value("plain"));
}
live!(tokens_are_encrypted_at_rest);

async fn the_token_that_expires_last_wins(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), Some(key(3))).await.expect("open");
    let read = || async {
        let t = store
            .token("p", "powerbi")
            .await
            .expect("read")
            .expect("stored");
        (
            t.access_token.expose_secret().to_string(),
            t.expires_at,
            t.tenant_id,
        )
    };
    store
        .put_token(&new_token("p", "powerbi", "sixty", 60))
        .await
        .expect("put");
    store
        .put_token(&new_token("p", "powerbi", "thirty", 30))
        .await
        .expect("an older token is not an error");
    assert_eq!(
        read().await,
        (token_value("sixty"), at(60), "tenant-sixty".into())
    );
    store
        .put_token(&new_token("p", "powerbi", "ninety", 90))
        .await
        .expect("put");
    assert_eq!(
        read().await,
        (token_value("ninety"), at(90), "tenant-ninety".into())
    );
    store
        .put_token(&new_token("p", "powerbi", "again", 90))
        .await
        .expect("put");
    assert_eq!(
        read().await,
        (token_value("again"), at(90), "tenant-again".into()),
        "an equal expiry replaces"
    );
    let count = db.query("SELECT COUNT(*) FROM pbiops_tokens");
    assert_eq!(count[0][0].as_deref(), Some("1"));
}
live!(the_token_that_expires_last_wins);
