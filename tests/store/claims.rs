//! Claims, the arbiter of single flight across processes: exactly one holder, lapsing when the
//! holder's operation ends or its time runs out.

use std::time::Duration;

use pbiops::store::{Claim, Finish, NewOperation, Store};

use crate::live;
use crate::support::{Backend, TestDb, at};

async fn operation(store: &Store) -> i64 {
    store
        .start_operation(&NewOperation {
            operation: "dataset.refresh".into(),
            profile: Some("default".into()),
            started_at: at(0),
            pbiops_version: "0.1.0".into(),
            ..NewOperation::default()
        })
        .await
        .expect("start")
}

async fn one_holder_at_a_time(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let (a, b) = (operation(&store).await, operation(&store).await);
    let hour = Duration::from_secs(3600);
    assert_eq!(
        store
            .claim_item("SemanticModel:m1", a, hour)
            .await
            .expect("claim"),
        Claim::Ours
    );
    assert_eq!(
        store
            .claim_item("SemanticModel:m1", a, hour)
            .await
            .expect("again"),
        Claim::Ours,
        "a holder claiming again keeps it"
    );
    match store
        .claim_item("SemanticModel:m1", b, hour)
        .await
        .expect("claim")
    {
        Claim::Held { holder, .. } => assert_eq!(holder, a),
        other => panic!("expected Held, got {other:?}"),
    }
    assert_eq!(
        store
            .claim_item("Dataflow:m1", b, hour)
            .await
            .expect("other item"),
        Claim::Ours,
        "items are claimed one by one"
    );
    store
        .release_item("SemanticModel:m1", b)
        .await
        .expect("release by a non-holder");
    assert!(matches!(
        store
            .claim_item("SemanticModel:m1", b, hour)
            .await
            .expect("claim"),
        Claim::Held { .. }
    ));
    store
        .release_item("SemanticModel:m1", a)
        .await
        .expect("release");
    assert_eq!(
        store
            .claim_item("SemanticModel:m1", b, hour)
            .await
            .expect("claim"),
        Claim::Ours
    );
}
live!(one_holder_at_a_time);

async fn a_claim_lapses_when_its_holder_ends_or_expires(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let (a, b, c) = (
        operation(&store).await,
        operation(&store).await,
        operation(&store).await,
    );
    let hour = Duration::from_secs(3600);
    assert_eq!(
        store
            .claim_item("Dataflow:d1", a, hour)
            .await
            .expect("claim"),
        Claim::Ours
    );
    store
        .update_operation(
            a,
            &Finish {
                status: "Interrupted".into(),
                ended_at: Some(at(1)),
                ..Finish::default()
            },
        )
        .await
        .expect("end a");
    assert_eq!(
        store
            .claim_item("Dataflow:d1", b, Duration::ZERO)
            .await
            .expect("claim"),
        Claim::Ours,
        "the holder no longer runs"
    );
    assert_eq!(
        store
            .claim_item("Dataflow:d1", c, hour)
            .await
            .expect("claim"),
        Claim::Ours,
        "b's claim expired at once"
    );
}
live!(a_claim_lapses_when_its_holder_ends_or_expires);

async fn capacity_slots_go_in_order_of_arrival_and_expire(backend: Backend) {
    use pbiops::store::Slot;
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let (a, b, c) = (
        operation(&store).await,
        operation(&store).await,
        operation(&store).await,
    );
    let minute = Duration::from_secs(60);
    assert_eq!(
        store.take_slot("cap", 1, a, minute).await.expect("a"),
        Slot::Taken(0)
    );
    assert_eq!(
        store.take_slot("cap", 1, b, minute).await.expect("b"),
        Slot::Queued { ahead: 0 }
    );
    assert_eq!(
        store.take_slot("cap", 1, c, minute).await.expect("c"),
        Slot::Queued { ahead: 1 },
        "c arrived after b"
    );
    store
        .release_slot("cap", Some(0), a)
        .await
        .expect("release");
    assert_eq!(
        store.take_slot("cap", 1, c, minute).await.expect("c again"),
        Slot::Queued { ahead: 1 },
        "the free slot is b's: b queued first"
    );
    let d = operation(&store).await;
    assert_eq!(
        store.take_slot("cap", 1, d, minute).await.expect("d"),
        Slot::Queued { ahead: 2 },
        "a newcomer never takes the slot a waiter is owed"
    );
    assert_eq!(
        store
            .take_slot("cap", 1, b, Duration::ZERO)
            .await
            .expect("b"),
        Slot::Taken(0)
    );
    // b's slot was taken for no time at all: it has expired, so c gets it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.take_slot("cap", 1, c, minute).await.expect("c"),
        Slot::Taken(0)
    );
    assert!(
        !store.renew_slot("cap", 0, b, minute).await.expect("renew"),
        "b learns that its lapsed slot is c's now"
    );
    assert!(store.renew_slot("cap", 0, c, minute).await.expect("renew"));
    assert_eq!(
        store
            .take_slot("other", 2, a, minute)
            .await
            .expect("another capacity"),
        Slot::Taken(0)
    );
}
live!(capacity_slots_go_in_order_of_arrival_and_expire);

/// Three slots held by three runs, two of which ended (a signal or a retry closed their rows):
/// their slots are free at once, the live run's is not; a newcomer takes a free slot only when
/// one is left over for every run waiting before it, and the slot and the claim of a run whose
/// refresh ended go back in one call.
async fn slots_of_ended_runs_are_free_and_newcomers_queue_behind_waiters(backend: Backend) {
    use pbiops::store::Slot;
    let db = TestDb::new(backend);
    let store = Store::open(&db.secret(), None).await.expect("open");
    let mut ops = Vec::new();
    for _ in 0..5 {
        ops.push(operation(&store).await);
    }
    let minute = Duration::from_secs(60);
    for (n, op) in ops[..3].iter().enumerate() {
        assert_eq!(
            store.take_slot("cap", 3, *op, minute).await.expect("take"),
            Slot::Taken(n as i64)
        );
    }
    assert_eq!(
        store.take_slot("cap", 3, ops[3], minute).await.expect("d"),
        Slot::Queued { ahead: 0 },
        "every slot held"
    );
    for ended in [ops[0], ops[2]] {
        let end = Finish {
            status: "Interrupted".into(),
            ended_at: Some(at(1)),
            ..Finish::default()
        };
        store.update_operation(ended, &end).await.expect("end");
    }
    assert_eq!(
        store.take_slot("cap", 3, ops[4], minute).await.expect("e"),
        Slot::Taken(0),
        "two slots are free and one run waits: the newcomer takes the other"
    );
    assert_eq!(
        store.take_slot("cap", 3, ops[3], minute).await.expect("d"),
        Slot::Taken(2),
        "the waiter gets the slot left"
    );
    let newcomer = operation(&store).await;
    assert_eq!(
        store
            .take_slot("cap", 3, newcomer, minute)
            .await
            .expect("f"),
        Slot::Queued { ahead: 0 },
        "the live run's slot stays its own"
    );
    assert!(
        store
            .renew_slot("cap", 1, ops[1], minute)
            .await
            .expect("renew")
    );
    // The live run's refresh ends: its slot and its claim go back in one call.
    let key = "SemanticModel:m9";
    let claimed = store.claim_item(key, ops[1], minute).await.expect("claim");
    assert_eq!(claimed, Claim::Ours);
    store
        .release("cap", Some(1), Some(key), ops[1])
        .await
        .expect("release both");
    assert_eq!(
        store
            .take_slot("cap", 3, newcomer, minute)
            .await
            .expect("f"),
        Slot::Taken(1),
        "its slot is free"
    );
    assert_eq!(
        store
            .claim_item(key, newcomer, minute)
            .await
            .expect("claim"),
        Claim::Ours,
        "and so is its claim"
    );
}
live!(slots_of_ended_runs_are_free_and_newcomers_queue_behind_waiters);
