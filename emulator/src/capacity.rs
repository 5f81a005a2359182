//! Capacity concurrency: a capacity runs at most `concurrency` model refreshes (and, in a separate
//! pool, `dataflowConcurrency` Gen1 dataflow transactions) at once. More are accepted as usual but
//! wait in the service's queue, first in first out, and their duration and polls count only from
//! when they get a slot.
//!
//! Still lazy and deterministic: [`settle`] replays, in time order on the emulator's clock, every
//! end that is due by now and hands each freed slot to the next waiting operation at the moment
//! it freed, so a refresh queued behind a 10-minute one begins exactly 10 minutes in, however
//! late anyone looks.

use crate::dataflow::Transaction;
use crate::refresh::{Ended, Refresh};
use jiff::Timestamp;
use std::collections::HashMap;

/// Concurrency per capacity id (lower case); a capacity not listed is unlimited.
pub(crate) type Limits = HashMap<String, usize>;

/// The most operations seen running at once, per capacity id (lower case).
pub(crate) type Peaks = HashMap<String, usize>;

/// An operation that may wait for a capacity slot (a model refresh, a dataflow transaction).
pub(crate) trait Slotted {
    /// Its capacity id (lower case), if its workspace has one.
    fn capacity(&self) -> Option<&str>;
    /// Not ended.
    fn running(&self) -> bool;
    /// Has a slot (or needs none).
    fn begun(&self) -> bool;
    /// When it ends, if by `now`.
    fn due(&self, now: Timestamp) -> Option<Timestamp>;
    /// Ends it as planned at `at`.
    fn end(&mut self, at: Timestamp);
    /// Gives it a slot at `at`.
    fn begin(&mut self, at: Timestamp);
}

impl Slotted for Refresh {
    fn capacity(&self) -> Option<&str> {
        self.capacity.as_deref()
    }
    fn running(&self) -> bool {
        Refresh::running(self)
    }
    fn begun(&self) -> bool {
        self.began.is_some()
    }
    fn due(&self, now: Timestamp) -> Option<Timestamp> {
        Refresh::due(self, now)
    }
    fn end(&mut self, at: Timestamp) {
        self.finish(Ended::from_outcome(self.plan.outcome), at, None);
    }
    fn begin(&mut self, at: Timestamp) {
        Refresh::begin(self, at);
    }
}

impl Slotted for Transaction {
    fn capacity(&self) -> Option<&str> {
        self.capacity.as_deref()
    }
    fn running(&self) -> bool {
        Transaction::running(self)
    }
    fn begun(&self) -> bool {
        self.began.is_some()
    }
    fn due(&self, now: Timestamp) -> Option<Timestamp> {
        Transaction::due(self, now)
    }
    fn end(&mut self, at: Timestamp) {
        self.finish(self.outcome, at, None);
    }
    fn begin(&mut self, at: Timestamp) {
        Transaction::begin(self, at);
    }
}

/// Ends everything due by `now`, in time order, admitting waiting operations as slots free.
/// `ops` is in acceptance order (which makes the queue FIFO).
pub(crate) fn settle<T: Slotted>(
    ops: &mut [T],
    limits: &Limits,
    peaks: &mut Peaks,
    now: Timestamp,
) {
    admit(ops, limits, peaks, now);
    loop {
        let next = ops
            .iter()
            .enumerate()
            .filter_map(|(index, op)| op.due(now).map(|at| (at, index)))
            .min();
        let Some((at, index)) = next else {
            return;
        };
        ops[index].end(at);
        admit(ops, limits, peaks, at);
    }
}

/// Gives free slots to waiting operations at `at`, first come first served, and records peaks.
pub(crate) fn admit<T: Slotted>(ops: &mut [T], limits: &Limits, peaks: &mut Peaks, at: Timestamp) {
    let mut active: HashMap<String, usize> = HashMap::new();
    for op in ops.iter().filter(|op| op.running() && op.begun()) {
        if let Some(capacity) = op.capacity() {
            *active.entry(capacity.to_owned()).or_default() += 1;
        }
    }
    for op in ops.iter_mut().filter(|op| op.running() && !op.begun()) {
        let Some(capacity) = op.capacity().map(str::to_owned) else {
            op.begin(at);
            continue;
        };
        let running = active.entry(capacity.clone()).or_default();
        if limits.get(&capacity).is_none_or(|limit| *running < *limit) {
            op.begin(at);
            *running += 1;
        }
    }
    for (capacity, running) in active {
        let peak = peaks.entry(capacity).or_default();
        *peak = (*peak).max(running);
    }
}

/// (running, queued) operations on `capacity` (lower case).
pub(crate) fn load<T: Slotted>(ops: &[T], capacity: &str) -> (usize, usize) {
    ops.iter()
        .filter(|op| op.running() && op.capacity() == Some(capacity))
        .fold((0, 0), |(running, queued), op| {
            if op.begun() {
                (running + 1, queued)
            } else {
                (running, queued + 1)
            }
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::progress::Timing;
    use crate::scenario::DataflowBehaviour;
    use jiff::SignedDuration;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH
            .checked_add(SignedDuration::from_secs(seconds))
            .unwrap()
    }

    fn tx(id: &str, accepted: i64, seconds: f64) -> Transaction {
        let behaviour = DataflowBehaviour::default();
        let mut tx =
            Transaction::start(id.into(), ("g", "d"), "api", at(accepted), &behaviour, None);
        tx.timing = Timing::new(None, Some(seconds));
        tx.capacity = Some("cap".into());
        tx.began = None;
        tx
    }

    #[test]
    fn a_full_capacity_queues_fifo_and_each_waiter_starts_when_a_slot_frees() {
        let limits = Limits::from([("cap".to_owned(), 2)]);
        let mut peaks = Peaks::new();
        let mut ops = vec![
            tx("a", 0, 10.0),
            tx("b", 0, 30.0),
            tx("c", 1, 10.0),
            tx("d", 2, 5.0),
        ];
        admit(&mut ops, &limits, &mut peaks, at(2));
        assert_eq!(load(&ops, "cap"), (2, 2));
        // Looked at only much later: the replay is exact.
        settle(&mut ops, &limits, &mut peaks, at(1000));
        let spans: Vec<_> = ops
            .iter()
            .map(|t| (t.began.unwrap().as_second(), t.end.unwrap().as_second()))
            .collect();
        assert_eq!(spans, [(2, 12), (2, 32), (12, 22), (22, 27)]);
        assert_eq!(peaks["cap"], 2);
        assert_eq!(load(&ops, "cap"), (0, 0));
    }

    #[test]
    fn an_unlimited_capacity_begins_everything_and_counts_the_peak() {
        let mut peaks = Peaks::new();
        let mut ops = vec![tx("a", 0, 10.0), tx("b", 0, 10.0), tx("c", 0, 10.0)];
        settle(&mut ops, &Limits::new(), &mut peaks, at(0));
        assert_eq!(load(&ops, "cap"), (3, 0));
        assert_eq!(peaks["cap"], 3);
    }
}
