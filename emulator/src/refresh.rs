//! The dataset refresh state machine, kept apart from HTTP so its rules (when a refresh ends, what
//! it shows while running, what a failure carries) live in one place.
//!
//! A refresh ends lazily: whenever it is looked at, [`Refresh::due`] checks its duration on the
//! emulator's clock and how often it has been observed. Nothing runs in the background, so a test
//! that counts polls is exactly reproducible. A refresh accepted while its capacity is full waits
//! (`began` is `None`) until `capacity` gives it a slot; its duration and polls count from then.

use crate::scenario::{Outcome, ServiceError};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// The engine's answer to `commitMode: PartialBatch` with a refresh policy (reference §4.4).
pub(crate) const PARTIAL_BATCH_MESSAGE: &str = "RefreshApiRequest for table refresh using refresh policy must have the property 'CommitMode' = 'Transactional' instead of 'PartialBatch'.";

/// When and how a refresh ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub polls: Option<u32>,
    pub duration: Option<SignedDuration>,
    pub outcome: Outcome,
    pub error: Option<ServiceError>,
}

/// The validated options of an enhanced refresh, PascalCase as the service echoes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Enhanced {
    pub kind: String,
    pub commit_mode: String,
    pub objects: Vec<(String, Option<String>)>,
    /// Set when the engine rejects the request after accepting it.
    pub engine_error: Option<String>,
}

/// `status` of a refresh (history), plus the enhanced-only `extendedStatus` of an ended one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Completed,
    Failed,
    TimedOut,
    Disabled,
    Cancelled,
}

impl Ended {
    /// The end state a behaviour's outcome leads to.
    pub fn from_outcome(outcome: Outcome) -> Ended {
        match outcome {
            Outcome::Completed => Ended::Completed,
            Outcome::Failed => Ended::Failed,
            Outcome::TimedOut => Ended::TimedOut,
            Outcome::Disabled => Ended::Disabled,
            Outcome::Cancelled => Ended::Cancelled,
        }
    }

    /// The history `status`.
    pub fn status(self) -> &'static str {
        match self {
            Ended::Completed => "Completed",
            Ended::Failed | Ended::TimedOut => "Failed",
            Ended::Disabled => "Disabled",
            Ended::Cancelled => "Cancelled",
        }
    }

    /// The enhanced `extendedStatus`.
    pub fn extended(self) -> &'static str {
        match self {
            Ended::Completed => "Completed",
            Ended::Failed => "Failed",
            Ended::TimedOut => "TimedOut",
            Ended::Disabled => "Disabled",
            Ended::Cancelled => "Cancelled",
        }
    }
}

/// One message of the execution details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EngineMessage {
    pub code: Option<String>,
    pub message: String,
}

/// A refresh the emulator knows: seeded from the scenario or triggered through the API.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub request_id: String,
    /// The integer `id` of the history entry.
    pub number: u64,
    pub group_id: String,
    pub dataset_id: String,
    pub refresh_type: String,
    pub enhanced: Option<Enhanced>,
    /// The JSON body of the POST that started it.
    pub body: Option<Value>,
    /// When the service accepted it: the `startTime` it shows.
    pub start: Timestamp,
    /// When it got a capacity slot and began to run; `None` while queued.
    pub began: Option<Timestamp>,
    /// Its workspace's capacity id (lower case), if any.
    pub capacity: Option<String>,
    pub end: Option<Timestamp>,
    pub ended: Option<Ended>,
    pub error: Option<ServiceError>,
    pub messages: Vec<EngineMessage>,
    /// Times it appeared in a history response or was read by id.
    pub observed: u32,
    /// `observed` when it began: only later observations count towards `polls`.
    pub observed_at_begin: u32,
    /// History reads (or emulator time) it is still hidden from.
    pub hidden: crate::lag::Hidden,
    pub plan: Plan,
}

impl Refresh {
    /// Whether it is still running.
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }

    /// When it ends, if that is by `now`: `duration` after it began, or now once it has been
    /// observed `polls` times since it began. A queued refresh is never due.
    pub fn due(&self, now: Timestamp) -> Option<Timestamp> {
        let began = self.began.filter(|_| self.running())?;
        if let Some(duration) = self.plan.duration {
            let due = began.saturating_add(duration).unwrap_or(began);
            if now >= due {
                return Some(due);
            }
        }
        match self.plan.polls {
            Some(polls) if self.observed - self.observed_at_begin >= polls => Some(now.max(began)),
            _ => None,
        }
    }

    /// Ends it as planned if it is due (the world settles through `capacity::settle`).
    #[cfg(test)]
    pub fn settle(&mut self, now: Timestamp) {
        if let Some(at) = self.due(now) {
            self.finish(Ended::from_outcome(self.plan.outcome), at, None);
        }
    }

    /// It gets a capacity slot at `at`.
    pub fn begin(&mut self, at: Timestamp) {
        self.began = Some(at.max(self.start));
        self.observed_at_begin = self.observed;
    }

    /// Ends it now with `outcome`; `error` overrides the plan's error for a failure.
    pub fn finish(&mut self, ended: Ended, at: Timestamp, error: Option<ServiceError>) {
        // The engine rejected the request: whatever the model's behaviour, it fails.
        let engine_error = self.enhanced.as_ref().and_then(|e| e.engine_error.clone());
        let ended = match (&engine_error, ended) {
            (Some(_), Ended::Completed) => Ended::Failed,
            _ => ended,
        };
        self.ended = Some(ended);
        self.end = Some(at.max(self.start));
        match ended {
            Ended::Failed | Ended::TimedOut => {
                let error = error.or_else(|| self.plan.error.clone());
                let error = match (engine_error, error) {
                    (Some(text), _) => ServiceError {
                        error_code: "ModelRefresh_ShortMessage_ProcessingError".to_owned(),
                        error_description: Some(text),
                    },
                    (None, Some(error)) => error,
                    (None, None) if ended == Ended::TimedOut => ServiceError {
                        error_code: "ModelRefresh_ShortMessage_TimedOut".to_owned(),
                        error_description: Some("The refresh operation timed out.".to_owned()),
                    },
                    (None, None) => ServiceError {
                        error_code: "ModelRefresh_ShortMessage_ProcessingError".to_owned(),
                        error_description: None,
                    },
                };
                self.messages = vec![EngineMessage {
                    code: None,
                    message: error
                        .error_description
                        .clone()
                        .unwrap_or_else(|| error.error_code.clone()),
                }];
                self.error = Some(error);
            }
            _ => {
                self.error = None;
                self.messages.clear();
            }
        }
    }

    /// The history `status`.
    pub fn status(&self) -> &'static str {
        self.ended.map_or("Unknown", Ended::status)
    }

    /// The `extendedStatus` (enhanced refreshes only): `NotStarted` while queued and until first
    /// observed after it began.
    pub fn extended_status(&self) -> Option<&'static str> {
        self.enhanced.as_ref()?;
        Some(match self.ended {
            Some(ended) => ended.extended(),
            None if self.began.is_none() || self.observed == self.observed_at_begin => "NotStarted",
            None => "InProgress",
        })
    }

    /// `serviceExceptionJson`: a string holding JSON, on failure only.
    pub fn service_exception_json(&self) -> Option<String> {
        self.error
            .as_ref()
            .and_then(|e| serde_json::to_string(e).ok())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refresh(plan: Plan, enhanced: bool) -> Refresh {
        Refresh {
            request_id: "r".into(),
            number: 1,
            group_id: "g".into(),
            dataset_id: "d".into(),
            refresh_type: "ViaApi".into(),
            enhanced: enhanced.then(|| Enhanced {
                kind: "Full".into(),
                commit_mode: "Transactional".into(),
                objects: vec![],
                engine_error: None,
            }),
            body: None,
            start: "2026-11-24T03:00:00Z".parse().unwrap(),
            began: Some("2026-11-24T03:00:00Z".parse().unwrap()),
            capacity: None,
            end: None,
            ended: None,
            error: None,
            messages: vec![],
            observed: 0,
            observed_at_begin: 0,
            hidden: Default::default(),
            plan,
        }
    }

    fn plan(polls: Option<u32>, secs: Option<i64>, outcome: Outcome) -> Plan {
        Plan {
            polls,
            duration: secs.map(SignedDuration::from_secs),
            outcome,
            error: None,
        }
    }

    #[test]
    fn polls_count_the_observations_that_show_it_running() {
        let mut r = refresh(plan(Some(2), None, Outcome::Completed), true);
        let now = r.start;
        let mut seen = vec![];
        for _ in 0..3 {
            r.settle(now);
            seen.push(r.extended_status().unwrap());
            r.observed += 1;
        }
        assert_eq!(seen, ["NotStarted", "InProgress", "Completed"]);
    }

    #[test]
    fn a_duration_ends_it_at_start_plus_duration() {
        let mut r = refresh(plan(None, Some(4), Outcome::Failed), false);
        r.settle(r.start.checked_add(SignedDuration::from_secs(3)).unwrap());
        assert!(r.running());
        r.settle(r.start.checked_add(SignedDuration::from_secs(60)).unwrap());
        assert_eq!(r.status(), "Failed");
        assert_eq!(r.end.unwrap().to_string(), "2026-11-24T03:00:04Z");
        assert!(
            r.service_exception_json()
                .unwrap()
                .contains("\"errorCode\"")
        );
    }

    #[test]
    fn a_queued_refresh_counts_its_duration_and_polls_from_when_it_began() {
        let mut r = refresh(plan(Some(1), Some(10), Outcome::Completed), true);
        r.began = None;
        r.observed = 5;
        let start = r.start;
        let later = |s| start.checked_add(SignedDuration::from_secs(s)).unwrap();
        r.settle(later(100));
        assert_eq!(r.extended_status(), Some("NotStarted"));
        let at = later(60);
        r.begin(at);
        r.settle(at);
        assert_eq!(r.extended_status(), Some("NotStarted"));
        r.settle(later(69));
        assert!(r.running());
        r.settle(later(75));
        assert_eq!(r.end, Some(later(70)));
    }

    #[test]
    fn an_engine_error_turns_completion_into_failure() {
        let mut r = refresh(plan(Some(0), None, Outcome::Completed), true);
        if let Some(e) = r.enhanced.as_mut() {
            e.engine_error = Some(PARTIAL_BATCH_MESSAGE.into());
        }
        r.settle(r.start);
        assert_eq!(r.extended_status(), Some("Failed"));
        assert_eq!(r.messages[0].message, PARTIAL_BATCH_MESSAGE);
    }
}
