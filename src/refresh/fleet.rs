//! Many items in one run, any mix of kinds, in dependency order.
//!
//! An item starts as soon as every item it depends on has completed, never before; one that
//! depends on an item that did not complete is skipped (not failed), and its entry says which
//! upstream item and why. Among the items ready to start, the longest expected goes first (from
//! its recent runs; no history first of all), so the night is not ended by a long refresh started
//! last; at most `maxParallel` run at once, and at most `maxParallelPerCapacity` on one capacity,
//! so no capacity is overloaded while another idles. One token and one pace serve every item: a
//! 429 slows all of them down (see `http`). Each item runs with the full single-item behaviour
//! (the runner) and is recorded as its own operation.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::runner::{self, Options};
use super::summary::{TargetResult, of_item, skip};
use super::{Kind, Refreshable, Run};
use crate::error::{Error, ExitCode};
use crate::ops::outputs::Outputs;
use crate::ops::{Context, Recorder};
use crate::wait::Aim;

/// How long a planning read of an item's runs is reused for its single-flight check and its
/// wait instead of reading them again (one read per item per run, under the API's budget). A
/// refresh someone else starts in between is still caught: the service answers the trigger
/// "already running" (models, Gen1), and within the store's users the item is claimed. A Dataflow
/// Gen2 has no such answer (a second job is accepted, then deduplicated): its runs are read again.
const FRESH: Duration = Duration::from_secs(600);

/// What is known of an item before the run: as given, and resolved (or why not).
pub(crate) struct Node<'a> {
    /// The key `dependsOn` uses.
    pub key: String,
    /// Workspace as given (for an item that does not resolve).
    pub workspace: String,
    /// Item as given, and its kind when the task says it.
    pub given: (Option<Kind>, String),
    /// The resolved item, or why it could not be resolved.
    pub item: Result<Box<dyn Refreshable + 'a>, Error>,
    /// How to run it.
    pub opts: Options,
    /// Indexes of the nodes it depends on.
    pub depends_on: Vec<usize>,
}

/// Bounds of a fleet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// At most this many at once.
    pub max_parallel: usize,
    /// At most this many at once on one capacity.
    pub max_per_capacity: Option<usize>,
}

/// A node's place in the run.
enum State {
    Waiting,
    Running,
    Done(Box<TargetResult>),
}

/// Runs every node, each as its own recorded operation, and returns one entry per node in the
/// order given.
pub(crate) async fn run(
    ctx: &Context<'_>,
    profile: &str,
    nodes: Vec<Node<'_>>,
    limits: Limits,
) -> Vec<TargetResult> {
    let keys: Vec<String> = nodes.iter().map(|n| n.key.clone()).collect();
    let depends: Vec<Vec<usize>> = nodes.iter().map(|n| n.depends_on.clone()).collect();
    // An item others wait for is watched closely; the rest spend few calls (see `wait`).
    let awaited: Vec<bool> = (0..nodes.len())
        .map(|i| depends.iter().any(|d| d.contains(&i)))
        .collect();
    let mut states: Vec<State> = Vec::with_capacity(nodes.len());
    let mut planned = Vec::new();
    // Plan: read each resolved item's recent runs once, for its expected duration (and, if it
    // starts at once, for its single-flight check and its wait).
    for (i, node) in nodes.into_iter().enumerate() {
        match node.item {
            Err(e) => {
                let mut r =
                    TargetResult::given(&node.key, &node.workspace, node.given.0, &node.given.1);
                tracing::error!("{}: {e}", node.key);
                r.exit_code = e.exit_code().code();
                r.error_code = Some(e.code());
                r.error_message = Some(crate::redact::scrub(&e.to_string()));
                states.push(State::Done(Box::new(r)));
            }
            Ok(item) => {
                let history = item.runs().await;
                let expected = history
                    .as_ref()
                    .ok()
                    .and_then(|h| super::follow::expectation(h))
                    .map_or(f64::INFINITY, |e| e.median.as_secs_f64());
                states.push(State::Waiting);
                let aim = if awaited[i] {
                    Aim::Promptness
                } else {
                    Aim::Economy
                };
                planned.push(Planned {
                    index: i,
                    item,
                    opts: Options { aim, ..node.opts },
                    expected,
                    history: history.ok(),
                    read_at: tokio::time::Instant::now(),
                });
            }
        }
    }
    planned.sort_by(|a, b| b.expected.total_cmp(&a.expected));
    tracing::info!(
        "refreshing {} item(s), {} at a time{}",
        planned.len(),
        limits.max_parallel,
        limits
            .max_per_capacity
            .map(|n| format!(", {n} per capacity"))
            .unwrap_or_default()
    );
    let child = Context {
        reporter: ctx.reporter.quiet(),
        ..*ctx
    };
    let mut busy: HashMap<String, usize> = HashMap::new();
    let mut running = FuturesUnordered::new();
    loop {
        skip_blocked(&mut states, &depends, &keys, &planned);
        planned.retain(|p| matches!(states[p.index], State::Waiting));
        while running.len() < limits.max_parallel {
            let ready = |p: &Planned<'_>| {
                depends[p.index]
                    .iter()
                    .all(|d| matches!(&states[*d], State::Done(r) if r.completed()))
                    && limits.max_per_capacity.is_none_or(|max| {
                        busy.get(&p.item.info().capacity).copied().unwrap_or(0) < max
                    })
            };
            let Some(next) = planned.iter().position(ready) else {
                break;
            };
            let p = planned.remove(next);
            states[p.index] = State::Running;
            let capacity = p.item.info().capacity.clone();
            *busy.entry(capacity.clone()).or_default() += 1;
            let key = keys[p.index].clone();
            let deps: Vec<String> = depends[p.index].iter().map(|d| keys[*d].clone()).collect();
            let child = &child;
            running.push(async move {
                // A Gen2 item has no "already running" answer to fall back on: read it afresh.
                let reusable = p.item.info().kind != Kind::Gen2 && p.read_at.elapsed() < FRESH;
                let history = p.history.filter(|_| reusable);
                let mut r = run_one(child, profile, p.item.as_ref(), &p.opts, history, key).await;
                r.depends_on = deps;
                (p.index, capacity, r)
            });
        }
        let Some((index, capacity, result)) = running.next().await else {
            break;
        };
        if let Some(n) = busy.get_mut(&capacity) {
            *n -= 1;
        }
        states[index] = State::Done(Box::new(result));
    }
    states
        .into_iter()
        .enumerate()
        .map(|(i, s)| match s {
            State::Done(r) => *r,
            // Unreachable with a validated (acyclic) graph; reported rather than lost.
            State::Waiting | State::Running => {
                let mut r = TargetResult::given(&keys[i], "", None, &keys[i]);
                r.exit_code = ExitCode::Unsuccessful.code();
                r.error_code = Some("NotStarted".into());
                r.error_message = Some("its dependencies never completed".into());
                r
            }
        })
        .collect()
}

/// A resolved item waiting for its dependencies and a slot.
struct Planned<'a> {
    index: usize,
    item: Box<dyn Refreshable + 'a>,
    opts: Options,
    expected: f64,
    history: Option<Vec<Run>>,
    read_at: tokio::time::Instant,
}

/// Marks as skipped every waiting node with an upstream item that ended without completing.
fn skip_blocked(
    states: &mut [State],
    depends: &[Vec<usize>],
    keys: &[String],
    planned: &[Planned<'_>],
) {
    loop {
        let mut changed = false;
        for i in 0..states.len() {
            if !matches!(states[i], State::Waiting) {
                continue;
            }
            let blocker = depends[i].iter().find_map(|d| match &states[*d] {
                State::Done(r) if !r.completed() => Some((keys[*d].clone(), r.status)),
                _ => None,
            });
            let Some((upstream, status)) = blocker else {
                continue;
            };
            let info = planned
                .iter()
                .find(|p| p.index == i)
                .map(|p| p.item.info().clone());
            let r = match &info {
                Some(info) => of_item(&keys[i], info),
                None => TargetResult::given(&keys[i], "", None, &keys[i]),
            };
            let ended = status.map_or_else(|| "with an error".to_string(), |s| format!("{s:?}"));
            let mut r = skip(r, &upstream, &ended);
            r.depends_on = depends[i].iter().map(|d| keys[*d].clone()).collect();
            states[i] = State::Done(Box::new(r));
            changed = true;
        }
        if !changed {
            return;
        }
    }
}

/// `node`, not refreshed because `upstream` ended `ended`.
pub(crate) fn skipped(node: &Node<'_>, upstream: &str, ended: &str) -> TargetResult {
    let r = match &node.item {
        Ok(item) => of_item(&node.key, item.info()),
        Err(_) => TargetResult::given(&node.key, &node.workspace, node.given.0, &node.given.1),
    };
    skip(r, upstream, ended)
}

/// One item, as its own recorded operation.
pub(crate) async fn run_one(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
    history: Option<Vec<Run>>,
    key: String,
) -> TargetResult {
    let info = item.info();
    let mut out = Outputs {
        operation: Some(info.kind.operation()),
        profile: Some(profile.to_string()),
        ..Default::default()
    };
    let mut result = of_item(&key, info);
    let recorder = match Recorder::begin(
        ctx.store,
        info.kind.operation(),
        Some(profile),
        None,
        ctx.settings,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            result.exit_code = e.exit_code().code();
            result.error_code = Some(e.code());
            result.error_message = Some(crate::redact::scrub(&e.to_string()));
            return result;
        }
    };
    out.operation_id = recorder.id();
    let child = Context {
        recorder: &recorder,
        ..*ctx
    };
    let (code, error) =
        match runner::refresh_with(&child, profile, item, opts, history, &mut out).await {
            Ok(outcome) => {
                outcome.render(&mut out);
                (outcome.exit, None)
            }
            Err(e) => {
                tracing::error!("{key}: {e}");
                (e.exit_code(), Some(e))
            }
        };
    if let Err(e) = recorder.finish(&out, code, error.as_ref()).await {
        tracing::error!("{key}: {e}");
    }
    result.status = out.status;
    result.request_id = out.request_id.clone();
    result.attached = out.attached;
    result.duration_seconds = out.duration_seconds;
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
