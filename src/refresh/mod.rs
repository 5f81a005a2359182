//! The one refresh engine: every refreshable kind (semantic model, Gen1 dataflow, Dataflow Gen2)
//! goes through the same runner, and fleets and cascades of any mix through the same scheduler.
//!
//! A kind is one file implementing [`Refreshable`]: how to list its recent runs, trigger one,
//! read one run, cancel one, and what its history explains about a failure. Everything a user
//! relies on — single flight (`ifRunning`), no blind retry of an ambiguous trigger, the adaptive
//! wait, cancel on timeout, durable reattach through the store, a truthful outcome — lives once,
//! in [`runner`], so it holds for every kind alike.
//!
//! - [`runner`]: one item, end to end, returning an [`Outcome`];
//! - [`fleet`]: many items with dependencies, capacity limits and one pacing budget;
//! - [`capacity`]: a capacity that rejects new refreshes (surge protection, overload) is held
//!   and probed again with a back-off, for one item and in a fleet;
//! - [`lineage`]: `then: downstream`, the dataflow → dataflow → model graph of a cascade;
//! - [`items`]: name or id → a resolved item of the right kind, with one resolution pass;
//! - [`model`], [`gen1`], [`gen2`]: the kinds.

pub(crate) mod admission;
mod capacity;
pub(crate) mod fleet;
pub(crate) mod follow;
mod gen1;
mod gen2;
pub(crate) mod items;
pub(crate) mod lineage;
mod model;
pub(crate) mod outcome;
mod overrun;
pub(crate) mod runner;
pub(crate) mod summary;

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use jiff::Timestamp;

use crate::error::{Error, ServiceError};
use crate::ops::Status;
use crate::powerbi::wire::RefreshObjectStatus;
pub(crate) use outcome::Outcome;

/// A future returned by a [`Refreshable`] (one operation per process: no `Send` needed).
pub(crate) type Fut<'a, T> = LocalBoxFuture<'a, Result<T, Error>>;

/// The kinds of refreshable item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A semantic model (Power BI dataset).
    Model,
    /// A Gen1 (Power BI) dataflow.
    Gen1,
    /// A Fabric Dataflow Gen2.
    Gen2,
}

impl Kind {
    /// The `itemKind` output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "SemanticModel",
            Kind::Gen1 => "Dataflow",
            Kind::Gen2 => "DataflowGen2",
        }
    }

    /// The operation a refresh of this kind is recorded as.
    pub(crate) fn operation(self) -> &'static str {
        match self {
            Kind::Model => "dataset.refresh",
            Kind::Gen1 | Kind::Gen2 => "dataflow.refresh",
        }
    }

    /// How people call it in messages.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Model => "semantic model",
            Kind::Gen1 => "dataflow",
            Kind::Gen2 => "Dataflow Gen2",
        }
    }

    /// The `generation` output of a dataflow.
    pub(crate) fn generation(self) -> Option<u8> {
        match self {
            Kind::Model => None,
            Kind::Gen1 => Some(1),
            Kind::Gen2 => Some(2),
        }
    }
}

/// What identifies a resolved item in outputs, messages, the store and the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemInfo {
    /// Its kind.
    pub kind: Kind,
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub workspace_name: String,
    /// Item id (model id, Gen1 `objectId`, Fabric item id).
    pub id: String,
    /// Item name.
    pub name: String,
    /// The capacity the workspace runs on (`shared:<workspace>` on shared capacity): the unit of
    /// `maxParallelPerCapacity`.
    pub capacity: String,
    /// Whether the workspace is on shared capacity (daily limits, no enhanced refresh).
    pub shared: bool,
    /// A model's `isRefreshable`, as the workspace's model list gave it (the preflight reads
    /// the model only when the list did not say).
    pub refreshable: Option<bool>,
}

impl ItemInfo {
    /// `semantic model Sales (id) in workspace Finance (id)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} {} ({}) in workspace {} ({})",
            self.kind.noun(),
            self.name,
            self.id,
            self.workspace_name,
            self.workspace_id
        )
    }
}

/// One run of an item (a model refresh, a Gen1 transaction, a Gen2 job instance), normalized.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Run {
    /// The service's id for it (refresh request id, transaction id, job instance id).
    pub id: String,
    /// Terminal status, or `None` while it runs (or says a word we do not know).
    pub status: Option<Status>,
    /// The service's own status word.
    pub service_status: Option<String>,
    /// When it started (for a model, when it was requested).
    pub start: Option<Timestamp>,
    /// When the service began working on it, when it says: a model's first attempt, later than
    /// `start` by the time the refresh waited in its capacity's queue (the emulator's model;
    /// UNVERIFIED for the real service, whose completed entries do carry attempts).
    pub began: Option<Timestamp>,
    /// When it ended.
    pub end: Option<Timestamp>,
    /// The service's error code, when it failed.
    pub error_code: Option<String>,
    /// The service's error message, when it failed.
    pub error_message: Option<String>,
    /// Per-table status (enhanced model refreshes).
    pub objects: Option<Vec<RefreshObjectStatus>>,
    /// Models: whether it is an enhanced refresh (`None` when not known yet).
    pub enhanced: Option<bool>,
    /// Whether it was started through the API (the only runs an ambiguous trigger can have
    /// started; a scheduled or portal refresh is someone else's).
    pub via_api: bool,
    /// The service asks not to be asked again before this long (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The service lists it without saying anything of its state (Microsoft's sample Gen1
    /// transactions): followed when it is ours, never attached to as "running".
    pub silent: bool,
}

impl Run {
    /// A run known only by its id (a reattach, a trigger's answer).
    pub(crate) fn seed(id: impl Into<String>) -> Run {
        Run {
            id: id.into(),
            via_api: true,
            ..Run::default()
        }
    }

    /// Whether it is known to be running (someone's refresh that single flight applies to).
    pub(crate) fn running(&self) -> bool {
        self.status.is_none() && !self.silent
    }

    /// End minus start, for finished runs.
    pub(crate) fn duration(&self) -> Option<Duration> {
        Duration::try_from(self.end?.duration_since(self.start?)).ok()
    }
}

/// What a trigger request returned.
#[derive(Debug)]
pub(crate) enum Triggered {
    /// Accepted; the new run when the answer names it (a Gen1 trigger does not).
    Accepted(Option<Run>),
    /// The service said a run of the item is already going (400/409 "already running").
    Busy(ServiceError),
    /// The outcome is unknown (5xx, a lost or unreadable response): it may have started.
    Ambiguous(String),
    /// The item's capacity refused it (surge protection, or an overload): nothing started, so
    /// there is nothing to watch; the capacity is held and the trigger tried again later
    /// ([`capacity`]).
    CapacityRejected(ServiceError),
}

/// A refreshable kind of item. Object-safe, so a fleet holds any mix.
pub(crate) trait Refreshable {
    /// What the item is.
    fn info(&self) -> &ItemInfo;

    /// Its recent runs, newest first.
    fn runs(&self) -> Fut<'_, Vec<Run>>;

    /// Posts one trigger. Never retried by the client except on 429: the runner decides.
    fn trigger(&self) -> Fut<'_, Triggered>;

    /// The current state of `run` (known by id, with what was seen of it so far), or `None`
    /// while the service does not list it.
    fn status<'a>(&'a self, run: &'a Run) -> Fut<'a, Option<Run>>;

    /// Cancels `run`; `Ok(false)` when this run cannot be cancelled (a standard model refresh).
    fn cancel<'a>(&'a self, run: &'a Run) -> Fut<'a, bool>;

    /// `Refresh` type output of a run (`Standard`/`Enhanced` for models).
    fn refresh_type(&self, _run: &Run) -> Option<&'static str> {
        None
    }

    /// Why a run failed (or never appeared) when the history explains it better than the
    /// service's own words: `(code, message)`.
    fn explain(&self, _run: Option<&Run>, _history: &[Run]) -> Option<(String, String)> {
        None
    }
}
