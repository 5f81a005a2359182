//! When a running operation (a dataflow transaction, a Fabric job) ends: after it has been
//! observed `polls` times, or `duration` after its start on the emulator's clock, whichever comes
//! first. The same rule as model refreshes (`refresh.rs`), so tests count polls, never sleep.

use jiff::{SignedDuration, Timestamp};

/// The end condition of an operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timing {
    pub polls: Option<u32>,
    pub duration: Option<SignedDuration>,
}

impl Timing {
    /// From scenario values.
    pub fn new(polls: Option<u32>, duration_seconds: Option<f64>) -> Timing {
        Timing {
            polls,
            duration: duration_seconds.map(crate::scenario::seconds),
        }
    }

    /// The end time, if the operation started at `start` and observed `observed` times is due.
    pub fn due(&self, start: Timestamp, observed: u32, now: Timestamp) -> Option<Timestamp> {
        if let Some(duration) = self.duration {
            let due = start.saturating_add(duration).unwrap_or(start);
            if now >= due {
                return Some(due);
            }
        }
        match self.polls {
            Some(polls) if observed >= polls => Some(now.max(start)),
            _ => None,
        }
    }
}
