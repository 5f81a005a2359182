//! 8 processes × 50 updates of the same token row, on each live database, starting on a
//! database that none of them has migrated yet.
//!
//! The processes are this test binary itself, re-run with `--exact concurrency::worker` and the
//! job in environment variables. Every worker opens (and migrates) the store, says `ready`, and
//! waits for a line on its stdin: the test releases them all at once, with no timing involved,
//! so their updates overlap as much as the machine allows. Half the workers write expiries in rising order and half in
//! falling order, so newer and older tokens keep crossing. Afterwards the row must hold exactly
//! the token with the latest expiry anyone wrote, decrypt, and be consistent (every column from
//! that same write).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use pbiops::store::{NewToken, Store, TokenKey};
use secrecy::{ExposeSecret, SecretString};

use crate::live;
use crate::support::{Backend, TestDb, at};

const WORKERS: i64 = 8;
const UPDATES: i64 = 50;
const KEY: [u8; 32] = [42; 32];

fn token(worker: i64, update: i64) -> NewToken {
    let expiry = update * WORKERS + worker;
    NewToken {
        profile: "shared".into(),
        resource: "powerbi".into(),
        tenant_id: format!("tenant-w{worker}-u{update}"),
        client_id: format!("client-{expiry}"),
        access_token: SecretString::from(format!(
            "CANARYTOKEN-w{worker}-u{update}-{}",
            "t".repeat(1800)
        )),
        expires_at: at(expiry),
        acquired_at: at(expiry - 60),
    }
}

/// The worker: does nothing unless started by [`eight_processes_never_lose_the_newest_token`].
#[test]
#[ignore = "run by the concurrency tests as a separate process"]
fn worker() {
    let (Ok(cs), Ok(index)) = (
        std::env::var("STORE_WORKER_CS"),
        std::env::var("STORE_WORKER_INDEX"),
    ) else {
        return;
    };
    let w: i64 = index.parse().expect("worker index");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(&SecretString::from(cs), Some(TokenKey::from_bytes(KEY)))
            .await
            .expect("open (and migrate) concurrently");
        println!("STORE-WORKER-READY");
        std::io::stdout().flush().expect("flush");
        let mut go = String::new();
        std::io::stdin()
            .read_line(&mut go)
            .expect("wait for the start");
        for i in 0..UPDATES {
            let update = if w % 2 == 0 { i } else { UPDATES - 1 - i };
            store.put_token(&token(w, update)).await.expect("put");
            if i % 10 == 0 {
                // Readers run alongside the writers and must always see a whole row.
                let t = store
                    .token("shared", "powerbi")
                    .await
                    .expect("read")
                    .expect("row");
                assert!(t.access_token.expose_secret().starts_with("CANARYTOKEN-w"));
            }
        }
    });
}

async fn eight_processes_never_lose_the_newest_token(backend: Backend) {
    let db = TestDb::new(backend);
    let exe = std::env::current_exe().expect("test binary");
    let mut children: Vec<_> = (0..WORKERS)
        .map(|w| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "concurrency::worker",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("STORE_WORKER_CS", &db.cs)
                .env("STORE_WORKER_INDEX", w.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    // Wait until every worker has opened the store, then release them together.
    let mut outputs = Vec::new();
    for child in &mut children {
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read") == 0
                || line.contains("STORE-WORKER-READY")
            {
                break;
            }
            seen.push_str(&line);
        }
        outputs.push((reader, seen));
    }
    for child in &mut children {
        // A worker that died before `ready` is reported below, with its output.
        let _ = child.stdin.as_mut().expect("stdin").write_all(b"go\n");
    }
    for (w, (child, (mut reader, mut seen))) in children.into_iter().zip(outputs).enumerate() {
        reader.read_to_string(&mut seen).expect("read");
        let out = child.wait_with_output().expect("worker");
        assert!(
            out.status.success() && seen.contains("1 passed"),
            "worker {w} failed:\n{seen}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let store = Store::open(&db.secret(), Some(TokenKey::from_bytes(KEY)))
        .await
        .expect("open");
    let got = store
        .token("shared", "powerbi")
        .await
        .expect("readable")
        .expect("row");
    // The latest expiry: the last update of the last worker (who wrote it first, falling).
    let (w, u) = (WORKERS - 1, UPDATES - 1);
    let want = token(w, u);
    assert_eq!(got.expires_at, want.expires_at);
    assert_eq!(
        got.access_token.expose_secret(),
        want.access_token.expose_secret()
    );
    assert_eq!(
        (got.tenant_id, got.client_id),
        (want.tenant_id, want.client_id),
        "one write's columns"
    );
    assert_eq!(got.acquired_at, want.acquired_at);
    let rows = db.query("SELECT COUNT(*) FROM pbiops_tokens");
    assert_eq!(rows[0][0].as_deref(), Some("1"));
    let versions = db.query("SELECT COUNT(*) FROM pbiops_schema_version");
    let latest = pbiops::store::schema::latest_version().to_string();
    assert_eq!(
        versions[0][0].as_deref(),
        Some(latest.as_str()),
        "each migration once"
    );
}
live!(eight_processes_never_lose_the_newest_token);
