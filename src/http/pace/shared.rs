//! Throttling shared through the store by every run acting as the same principal.
//!
//! Kestra runs many pbiops processes at once with one service principal, and the services count
//! their calls together: without sharing, each process learns of the limit by hitting it. So a
//! run with a store writes each 429 it gets to `pbiops_throttle` (one row per principal and API
//! host: the pause, and the budget it learned), and reads the rows of its principal before its
//! first request, every [`SYNC_EVERY`] and right after its own 429; the local [`Pace`] takes them
//! in. Every run then pauses together, and none has to hit the limit to learn of it.
//!
//! What is shared and why:
//! - **The pause** (`Retry-After`): the services refuse every call of the principal until then,
//!   whoever makes it. The latest end wins. An absorbed pause is at most [`MAX_SHARED_PAUSE`]: a
//!   writer's wrong clock must not stall the others past their retry budget (a longer real block
//!   costs each run one 429 of its own, which then pauses it for the full time).
//! - **The budget** is per process: the requests one run sent in the minute before its 429
//!   (less 10 %). With N runs sharing the limit, each one's rate at the 429 is its share, so the
//!   smallest budget recently learned is one every run can keep to; a run starting later takes
//!   it too, and if too many join, the next 429 teaches a smaller one. No run can know how many
//!   others are active, so the budget is not divided further. It lapses 10 minutes after the
//!   last 429 ([`crate::store::BUDGET_TTL`]), so a limit met at night does not slow the next day.
//!
//! The principal is the task's profile's ([`principal`]); tasks that act as several profiles at
//! once (`credentials.check`, `token.refresh`) pace themselves alone. A store failure here never
//! fails the run: it is logged once, and the run paces itself alone until the store answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;

use super::Pace;
use crate::error::Error;
use crate::settings::Profile;
use crate::store::{Store, Throttled};

/// How often a run reads what the others learned, besides right after its own 429.
const SYNC_EVERY: Duration = Duration::from_secs(3);
/// The longest pause taken from another run.
const MAX_SHARED_PAUSE: Duration = Duration::from_secs(60);

/// The key of the principal `profile` acts as: its client id in lower case (a user-assigned
/// managed identity's too); a system-assigned identity has none, so the profile names it.
pub(crate) fn principal(profile: &Profile) -> String {
    if profile.client_id.is_empty() {
        format!("system-assigned:{}", profile.name)
    } else {
        profile.client_id.to_ascii_lowercase()
    }
}

/// Runs `work` with the pace shared through `store` as `principal`; without either, `work`
/// alone, pacing only itself.
pub(crate) async fn shared<T>(
    pace: &Pace,
    store: Option<&Store>,
    principal: Option<String>,
    work: impl Future<Output = T>,
) -> T {
    let (Some(store), Some(principal)) = (store, principal) else {
        return work.await;
    };
    let sharing = Sharing {
        pace,
        store,
        principal,
        failing: AtomicBool::new(false),
    };
    // Before the first request: a run starting during another's pause must not hit the limit.
    sharing.pull().await;
    let background = async {
        loop {
            tokio::select! {
                () = tokio::time::sleep(SYNC_EVERY) => {}
                () = pace.learned() => sharing.push().await,
            }
            sharing.pull().await;
        }
    };
    let out = tokio::select! {
        out = work => out,
        () = background => unreachable!("the sync loop never ends"),
    };
    // A 429 in the last moments of the run still warns the others.
    sharing.push().await;
    out
}

struct Sharing<'a> {
    pace: &'a Pace,
    store: &'a Store,
    principal: String,
    failing: AtomicBool,
}

impl Sharing<'_> {
    /// Writes what this run's 429s taught.
    async fn push(&self) {
        for learned in self.pace.unshared() {
            let at = Timestamp::now();
            let event = Throttled {
                principal: &self.principal,
                api: &learned.lane,
                at,
                paused_until: at.saturating_add(learned.pause).unwrap_or(at),
                budget: learned.budget,
            };
            if let Err(e) = self.store.record_throttle(&event).await {
                self.failed(&e);
                return;
            }
        }
    }

    /// Takes in what every run of the principal learned.
    async fn pull(&self) {
        let rows = match self
            .store
            .throttles(&self.principal, Timestamp::now())
            .await
        {
            Ok(rows) => rows,
            Err(e) => return self.failed(&e),
        };
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("the store answers again: throttling is shared with other runs");
        }
        let now = Timestamp::now();
        for row in rows {
            let left =
                Duration::try_from(row.paused_until.duration_since(now)).unwrap_or(Duration::ZERO);
            self.pace
                .absorb(&row.api, left.min(MAX_SHARED_PAUSE), row.budget);
        }
    }

    fn failed(&self, e: &Error) {
        let message = crate::redact::scrub(&e.to_string());
        if self.failing.swap(true, Ordering::Relaxed) {
            tracing::debug!("{message}");
        } else {
            tracing::warn!(
                "{message}; throttling is not shared with other runs until the store answers again"
            );
        }
    }
}
