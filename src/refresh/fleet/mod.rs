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
//!
//! A capacity that rejects a trigger (surge protection, overload) is held (`capacity`): the
//! rejected item goes back to waiting, its row kept, no other item of that capacity starts until
//! one probe is accepted, and items on other capacities go on. Each entry reports the time it
//! waited for its capacity, and the summary the time each capacity was held.

mod hold;
mod item;
mod queue;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use super::runner::Options;
use super::summary::{Report, TargetResult, of_item, skip};
use super::{Kind, Refreshable};
use crate::error::{Error, ExitCode};
use crate::ops::Context;
use crate::wait::Aim;
use hold::{Accepted, Holds};
use item::{Planned, Step, attempt, give_up_held};
use queue::Queues;

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
/// order given, with the time each rejecting capacity was held.
pub(crate) async fn run<'c>(
    ctx: &Context<'c>,
    profile: &str,
    nodes: Vec<Node<'_>>,
    limits: Limits,
) -> Report {
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
                    read_at: Instant::now(),
                    op: None,
                    clock: None,
                    held_since: None,
                    capacity_wait: Duration::ZERO,
                    probe: false,
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
    let mut holds = Holds::default();
    let mut queues = Queues::default();
    let accepted = Accepted::default();
    let mut running = FuturesUnordered::new();
    loop {
        let now = Instant::now();
        give_up_held(
            &child,
            profile,
            &mut planned,
            &mut states,
            &holds,
            &keys,
            now,
        )
        .await;
        skip_blocked(&mut states, &depends, &keys, &planned);
        planned.retain(|p| matches!(states[p.index], State::Waiting));
        while running.len() < limits.max_parallel {
            let ready = |p: &Planned<'_, '_>| {
                let capacity = &p.item.info().capacity;
                upstream_done(&states, &depends[p.index])
                    && limits
                        .max_per_capacity
                        .is_none_or(|max| busy.get(capacity).copied().unwrap_or(0) < max)
                    && holds.admits(capacity, now)
            };
            let Some(next) = planned.iter().position(ready) else {
                break;
            };
            let mut p = planned.remove(next);
            states[p.index] = State::Running;
            let capacity = p.item.info().capacity.clone();
            *busy.entry(capacity.clone()).or_default() += 1;
            p.probe = holds.holding(&capacity).is_some();
            p.opts.queue = queues.wait(&capacity);
            holds.starting(&capacity);
            p.start(now);
            let key = keys[p.index].clone();
            let deps: Vec<String> = depends[p.index].iter().map(|d| keys[*d].clone()).collect();
            running.push(attempt(&child, profile, p, key, deps, &accepted));
        }
        // An item ready but for its held capacity waits for it, and its timeout runs.
        for p in planned.iter_mut() {
            let capacity = &p.item.info().capacity;
            if holds.holding(capacity).is_some() && upstream_done(&states, &depends[p.index]) {
                p.hold(now);
            }
        }
        let waiting = planned.iter().map(|p| p.item.info().capacity.as_str());
        let deadlines = planned
            .iter()
            .filter(|p| holds.holding(&p.item.info().capacity).is_some())
            .filter_map(Planned::deadline);
        let wake = holds
            .next_end(waiting, now)
            .into_iter()
            .chain(deadlines)
            .min();
        if running.is_empty() && wake.is_none() {
            break;
        }
        tokio::select! {
            Some((capacity, step)) = running.next() => {
                if let Some(n) = busy.get_mut(&capacity) {
                    *n -= 1;
                }
                match step {
                    Step::Done { index, probe, queued, result } => {
                        queues.ended(&capacity, queued);
                        if probe {
                            // It ended without a rejection: the capacity is not known to reject.
                            holds.release(&capacity, Instant::now());
                        }
                        states[index] = State::Done(result);
                    }
                    Step::Rejected(mut p, service) => {
                        let now = Instant::now();
                        holds.rejected(&capacity, service, p.probe, &p.opts.wait, now);
                        p.hold(now);
                        states[p.index] = State::Waiting;
                        planned.push(*p);
                        planned.sort_by(|a, b| b.expected.total_cmp(&a.expected));
                    }
                }
            }
            () = accepted.notified() => {
                for capacity in accepted.take() {
                    holds.release(&capacity, Instant::now());
                }
            }
            () = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
        }
    }
    let targets = states
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
        .collect();
    Report {
        targets,
        holds: holds.totals(Instant::now()),
    }
}

/// Whether every item of `depends` completed (what an item waits for before it starts).
fn upstream_done(states: &[State], depends: &[usize]) -> bool {
    depends
        .iter()
        .all(|d| matches!(&states[*d], State::Done(r) if r.completed()))
}

/// Marks as skipped every waiting node with an upstream item that ended without completing.
fn skip_blocked(
    states: &mut [State],
    depends: &[Vec<usize>],
    keys: &[String],
    planned: &[Planned<'_, '_>],
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
