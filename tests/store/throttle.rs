//! Throttling shared between runs: a 429 merges into its principal's row for the API (the later
//! pause, the smaller live budget), readers see it, and a budget lapses after ten minutes.

use std::time::Duration;

use jiff::Timestamp;
use pbiops::store::{BUDGET_TTL, SharedThrottle, Store, Throttled};

use crate::live;
use crate::support::{Backend, TestDb, at};

const APP: &str = "7d1c2b1e-0000-4000-8000-0000000000c1";
const PBI: &str = "api.powerbi.com";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).expect("time")
}

/// A 429 of `APP` on Power BI written at `when`, pausing `pause` from then.
fn throttled(when: Timestamp, pause: u64, budget: Option<f64>) -> Throttled<'static> {
    Throttled {
        principal: APP,
        api: PBI,
        at: when,
        paused_until: plus(when, secs(pause)),
        budget,
    }
}

async fn a_429_merges_the_latest_pause_and_the_smallest_budget(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let t0 = at(0);
    assert!(store.throttles(APP, t0).await.expect("read").is_empty());

    let first = store
        .record_throttle(&throttled(t0, 30, Some(40.0)))
        .await
        .expect("first 429");
    assert_eq!(
        first,
        SharedThrottle {
            api: PBI.into(),
            paused_until: plus(t0, secs(30)),
            budget: Some(40.0),
            updated_at: t0,
        }
    );
    // An earlier end and a smaller budget: the pause stays, the budget tightens.
    let t1 = plus(t0, secs(5));
    let merged = store
        .record_throttle(&throttled(t1, 10, Some(25.5)))
        .await
        .expect("merge");
    assert_eq!(
        (merged.paused_until, merged.budget, merged.updated_at),
        (plus(t0, secs(30)), Some(25.5), t1)
    );
    // A later end with a looser budget, then one without a budget: the later pause, the budget kept.
    let t2 = plus(t0, secs(10));
    store
        .record_throttle(&throttled(t2, 60, Some(90.0)))
        .await
        .expect("merge");
    let merged = store
        .record_throttle(&throttled(t2, 1, None))
        .await
        .expect("merge");
    assert_eq!(
        (merged.paused_until, merged.budget),
        (plus(t2, secs(60)), Some(25.5))
    );

    // Another principal, another API: rows of their own, and readers see only their principal's.
    let fabric = Throttled {
        api: "api.fabric.microsoft.com",
        ..throttled(t2, 20, None)
    };
    store.record_throttle(&fabric).await.expect("fabric");
    let other = Throttled {
        principal: "0f000000-0000-4000-8000-000000000000",
        ..throttled(t2, 500, Some(1.0))
    };
    store
        .record_throttle(&other)
        .await
        .expect("other principal");
    let mut rows = store.throttles(APP, t2).await.expect("read");
    rows.sort_by(|a, b| a.api.cmp(&b.api));
    let seen: Vec<(&str, Timestamp, Option<f64>)> = rows
        .iter()
        .map(|r| (r.api.as_str(), r.paused_until, r.budget))
        .collect();
    assert_eq!(
        seen,
        [
            ("api.fabric.microsoft.com", plus(t2, secs(20)), None),
            (PBI, plus(t2, secs(60)), Some(25.5)),
        ]
    );
    let stored = db.query("SELECT principal FROM pbiops_throttle ORDER BY principal");
    assert_eq!(stored.len(), 3, "one row per principal and API: {stored:?}");
}
live!(a_429_merges_the_latest_pause_and_the_smallest_budget);

async fn a_budget_lapses_ten_minutes_after_the_last_429(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let t0 = at(0);
    store
        .record_throttle(&throttled(t0, 30, Some(20.0)))
        .await
        .expect("429");
    let read = |when| {
        let store = store.clone();
        async move { store.throttles(APP, when).await.expect("read") }
    };
    assert_eq!(read(at(9)).await[0].budget, Some(20.0), "still live");
    assert!(
        read(plus(t0, BUDGET_TTL + secs(1))).await.is_empty(),
        "the pause is over and the budget lapsed: nothing to apply"
    );
    // A 429 after the lapse starts afresh: its budget replaces the old one, even a larger one.
    let later = plus(t0, BUDGET_TTL + secs(60));
    let merged = store
        .record_throttle(&throttled(later, 5, Some(45.0)))
        .await
        .expect("429");
    assert_eq!(merged.budget, Some(45.0));
    // A 429 without a budget after the next lapse clears it, and keeps only its pause.
    let much_later = plus(later, BUDGET_TTL + secs(60));
    let merged = store
        .record_throttle(&throttled(much_later, 5, None))
        .await
        .expect("429");
    assert_eq!(
        (merged.paused_until, merged.budget),
        (plus(much_later, secs(5)), None)
    );
    let rows = read(much_later).await;
    assert_eq!(rows.len(), 1, "paused: still shared");
}
live!(a_budget_lapses_ten_minutes_after_the_last_429);

async fn concurrent_429s_converge_on_one_row(backend: Backend) {
    let db = TestDb::new(backend);
    let t0 = at(0);
    let mut writers = tokio::task::JoinSet::new();
    for n in 0..6u32 {
        let cs = db.secret();
        writers.spawn(async move {
            let store = Store::open(&cs, None).await.expect("open");
            let event = throttled(t0, 10 + u64::from(n), Some(50.0 + f64::from(n)));
            store.record_throttle(&event).await.map(|_| ())
        });
    }
    while let Some(written) = writers.join_next().await {
        written.expect("task").expect("every writer succeeds");
    }
    let store = Store::open(&db.secret(), None).await.expect("open");
    let rows = store.throttles(APP, t0).await.expect("read");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].paused_until, rows[0].budget),
        (plus(t0, secs(15)), Some(50.0)),
        "the latest pause and the smallest budget, whatever the order"
    );
}
live!(concurrent_429s_converge_on_one_row);
