//! The per-client rate limit (`rateLimit` in the scenario) and the per-client counts behind
//! `GET /_emulator/stats`.
//!
//! A sliding window on the emulator's clock: a client may have at most `requests` *accepted*
//! calls in any `perSeconds`; a refused call does not use up the budget (a client that honours
//! `Retry-After` gets through at once). The wait is exact, so `Retry-After` is the time until
//! the oldest accepted call leaves the window, in real seconds, rounded up.

use crate::scenario::RateLimit;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Accepted calls per client id (lower case), oldest first, within the current window.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    accepted: HashMap<String, VecDeque<Timestamp>>,
}

impl RateLimiter {
    /// Records a call of `client` at `now`, or refuses it with the emulator seconds until the
    /// window has room again.
    pub fn check(&mut self, client: &str, limit: &RateLimit, now: Timestamp) -> Result<(), f64> {
        let window = crate::scenario::seconds(limit.per_seconds);
        let calls = self
            .accepted
            .entry(client.to_ascii_lowercase())
            .or_default();
        let since = now.saturating_sub(window).unwrap_or(now);
        while calls.front().is_some_and(|at| *at <= since) {
            calls.pop_front();
        }
        let allowed = usize::try_from(limit.requests).unwrap_or(usize::MAX);
        match calls.front() {
            Some(oldest) if calls.len() >= allowed => {
                let frees = oldest.saturating_add(window).unwrap_or(now);
                Err(now.duration_until(frees).as_secs_f64())
            }
            _ => {
                calls.push_back(now);
                Ok(())
            }
        }
    }
}

/// One client's calls to emulated routes.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientStats {
    /// Calls per route name.
    pub routes: BTreeMap<String, u64>,
    /// Every call.
    pub requests: u64,
    /// Answers with status 429 (rate limit or fault).
    pub too_many_requests: u64,
    /// Calls refused by the rate limit.
    pub rate_limited: u64,
}

/// Per-client counts and 429 totals.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stats {
    /// Answers with status 429 on any emulated route (rate limit, fault, or a rejecting capacity).
    pub too_many_requests: u64,
    /// Calls refused by the rate limit.
    pub rate_limited: u64,
    /// Per client id (as the token or the token request names it).
    pub clients: BTreeMap<String, ClientStats>,
}

impl Stats {
    /// Counts a call of `route` by `client`.
    pub fn call(&mut self, client: Option<&str>, route: &str) {
        if let Some(client) = client {
            let stats = self.clients.entry(client.to_owned()).or_default();
            stats.requests += 1;
            *stats.routes.entry(route.to_owned()).or_default() += 1;
        }
    }

    /// Counts an answer of `status`, refused by the rate limit or not.
    pub fn answered(&mut self, client: Option<&str>, status: u16, rate_limited: bool) {
        if status != 429 {
            return;
        }
        self.too_many_requests += 1;
        self.rate_limited += u64::from(rate_limited);
        if let Some(stats) = client.and_then(|c| self.clients.get_mut(c)) {
            stats.too_many_requests += 1;
            stats.rate_limited += u64::from(rate_limited);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn the_window_slides_and_refusals_do_not_use_the_budget() {
        let limit = RateLimit {
            requests: 2,
            per_seconds: 60.0,
        };
        let t0: Timestamp = "2026-11-24T03:00:00Z".parse().unwrap();
        let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
        let mut limiter = RateLimiter::default();
        assert!(limiter.check("a", &limit, at(0)).is_ok());
        assert!(limiter.check("a", &limit, at(10)).is_ok());
        assert_eq!(limiter.check("A", &limit, at(15)), Err(45.0));
        assert!(limiter.check("b", &limit, at(15)).is_ok());
        assert_eq!(limiter.check("a", &limit, at(59)), Err(1.0));
        assert!(limiter.check("a", &limit, at(60)).is_ok());
        assert_eq!(limiter.check("a", &limit, at(61)), Err(9.0));
    }
}
