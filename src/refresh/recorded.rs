//! One item of a fleet or a cascade as its own recorded operation: its row in the store and its
//! outputs, kept across the tries a capacity hold causes (a rejected trigger is not an end: the
//! same row goes on, and records the wait), and its entry in the summary.

use std::time::Duration;

use super::runner::{self, Options};
use super::summary::{TargetResult, of_item};
use super::{ItemInfo, Outcome, Refreshable, Run};
use crate::error::Error;
use crate::ops::outputs::{Outputs, secs};
use crate::ops::{Context, Recorder};

/// An item's operation: its row, and what its outputs hold so far.
pub(super) struct Recorded<'s> {
    recorder: Recorder<'s>,
    out: Outputs,
}

impl<'s> Recorded<'s> {
    /// Writes the item's start row.
    pub(super) async fn begin(
        ctx: &Context<'s>,
        profile: &str,
        info: &ItemInfo,
    ) -> Result<Recorded<'s>, Error> {
        let operation = info.kind.operation();
        let recorder =
            Recorder::begin(ctx.store, operation, Some(profile), None, ctx.settings).await?;
        let out = Outputs {
            operation: Some(operation),
            profile: Some(profile.to_string()),
            operation_id: recorder.id(),
            ..Default::default()
        };
        Ok(Recorded { recorder, out })
    }

    /// One try of the runner, recorded in this row.
    pub(super) async fn attempt(
        &mut self,
        ctx: &Context<'_>,
        profile: &str,
        item: &dyn Refreshable,
        opts: &Options,
        history: Option<Vec<Run>>,
    ) -> Result<Outcome, Error> {
        let child = Context {
            recorder: &self.recorder,
            ..*ctx
        };
        runner::refresh_with(&child, profile, item, opts, history, &mut self.out).await
    }

    /// Records how the item ended (after `capacity_wait` waiting for its capacity) and returns
    /// its entry.
    pub(super) async fn finish(
        mut self,
        key: &str,
        info: &ItemInfo,
        result: Result<Outcome, Error>,
        capacity_wait: Duration,
    ) -> TargetResult {
        info.render(&mut self.out);
        let out = &mut self.out;
        let (code, error) = match result {
            Ok(outcome) => {
                outcome.render(out);
                (outcome.exit, None)
            }
            Err(e) => {
                tracing::error!("{key}: {e}");
                (e.exit_code(), Some(e))
            }
        };
        if !capacity_wait.is_zero() {
            out.capacity_wait_seconds = Some(secs(capacity_wait.as_secs_f64()));
        }
        if let Err(e) = self.recorder.finish(out, code, error.as_ref()).await {
            tracing::error!("{key}: {e}");
        }
        let mut result = of_item(key, info);
        result.status = out.status;
        result.request_id = out.request_id.clone();
        result.attached = out.attached;
        result.duration_seconds = out.duration_seconds;
        result.capacity_wait_seconds = out.capacity_wait_seconds;
        result.exit_code = code.code();
        result.error_code = out
            .error_code
            .clone()
            .or_else(|| error.as_ref().map(Error::code));
        result.error_message = out
            .error_message
            .clone()
            .or_else(|| error.as_ref().map(|e| crate::redact::scrub(&e.to_string())));
        result.operation_id = out.operation_id;
        result
    }
}

/// The entry of an item whose row could not even be started.
pub(super) fn unrecorded(key: &str, info: &ItemInfo, e: &Error) -> TargetResult {
    let mut result = of_item(key, info);
    result.exit_code = e.exit_code().code();
    result.error_code = Some(e.code());
    result.error_message = Some(crate::redact::scrub(&e.to_string()));
    result
}
