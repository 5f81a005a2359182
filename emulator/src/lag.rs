//! History lag: a refresh, dataflow transaction or job the service already runs but does not list
//! yet (Airflow #44618 saw a new refresh id missing from the history after its POST). A fault
//! with `applyThenFail` can give what its call started such a lag, counted in list reads or in
//! emulator seconds, so a client's "did my trigger take effect?" check meets it.

use jiff::Timestamp;

/// How long a started operation stays out of list answers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Hidden {
    /// List reads that still miss it.
    pub reads: u32,
    /// Hidden until this time on the emulator's clock.
    pub until: Option<Timestamp>,
}

impl Hidden {
    /// Whether a list read at `now` misses it; a missed read is counted.
    pub fn misses(&mut self, now: Timestamp) -> bool {
        let early = self.until.is_some_and(|until| now < until);
        if self.reads > 0 {
            self.reads -= 1;
            return true;
        }
        early
    }

    /// Whether it is hidden at `now`, without counting a read (reads by id).
    pub fn hides(&self, now: Timestamp) -> bool {
        self.reads > 0 || self.until.is_some_and(|until| now < until)
    }

    /// Adds a fault's lag, starting at `now`.
    pub fn add(&mut self, lag: Lag, now: Timestamp) {
        self.reads += lag.reads;
        if lag.seconds > 0.0 {
            let until = now
                .saturating_add(crate::scenario::seconds(lag.seconds))
                .unwrap_or(now);
            self.until = Some(self.until.map_or(until, |u| u.max(until)));
        }
    }
}

/// The lag a fault puts on what the next call of its route starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lag {
    pub route: &'static str,
    pub reads: u32,
    pub seconds: f64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn reads_and_seconds_both_hide() {
        let now: Timestamp = "2026-11-24T03:00:00Z".parse().unwrap();
        let mut hidden = Hidden::default();
        hidden.add(
            Lag {
                route: "refresh.post",
                reads: 1,
                seconds: 30.0,
            },
            now,
        );
        assert!(hidden.misses(now), "the read lag");
        assert!(hidden.misses(now), "the time lag");
        let later = now.checked_add(SignedDuration::from_secs(30)).unwrap();
        assert!(!hidden.misses(later));
    }
}
