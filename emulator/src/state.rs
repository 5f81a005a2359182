//! The emulator's mutable world (tokens, refreshes, faults, request log) and its clock.
//!
//! Everything sits behind one `std::sync::Mutex`: handlers lock, decide, and unlock before any
//! `.await`, so requests are atomic with respect to each other and tests see a consistent order.
//! Reset rebuilds the world from the immutable scenario.

use crate::capacity::{self, Limits, Peaks};
use crate::dataflow::{self, Transaction};
use crate::faults::Fault;
use crate::history;
use crate::jobs::Job;
use crate::lag::{Hidden, Lag};
use crate::random::Purpose;
use crate::ratelimit::{RateLimiter, Stats};
use crate::refresh::{Plan, Refresh};
use crate::scenario::{
    self, DataflowBehaviour, DurationSpec, JobBehaviour, RefreshBehaviour, Scenario, Workspace,
};
use crate::surge::Surge;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// State shared by every handler.
pub(crate) type AppState = Arc<Shared>;

/// The scenario and the world built from it.
pub(crate) struct Shared {
    pub scenario: Scenario,
    world: Mutex<World>,
    /// Set when the emulator stops: releases hung calls.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new(scenario: Scenario) -> AppState {
        let world = World::new(&scenario);
        Arc::new(Shared {
            scenario,
            world: Mutex::new(world),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Releases every hung call: the emulator is stopping.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Waits until the emulator stops.
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        let _ = closing.wait_for(|closed| *closed).await;
    }

    /// Locks the world. A panic in another handler does not make the emulator unusable.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Back to the scenario's initial state, with a fresh clock. Issued tokens stay (valid or
    /// revoked): a client's cached token keeps working across tests that reset in between.
    pub fn reset(&self) {
        let mut world = self.world();
        let tokens = std::mem::take(&mut world.tokens);
        *world = World::new(&self.scenario);
        world.tokens = tokens;
    }

    /// A workspace by id (case-insensitive).
    pub fn workspace(&self, id: &str) -> Option<&Workspace> {
        self.scenario
            .workspaces
            .iter()
            .find(|w| w.id.eq_ignore_ascii_case(id))
    }
}

/// The emulator's clock: real monotonic time since start times the scenario's `timeScale`, plus
/// what `/clock/advance` added (emulator seconds, not scaled).
pub(crate) struct Clock {
    start: Timestamp,
    origin: Instant,
    offset: SignedDuration,
    scale: f64,
    /// Moves only when advanced.
    frozen: bool,
}

impl Clock {
    fn new(scale: f64, frozen: bool) -> Clock {
        let now = Timestamp::now();
        let start = if frozen {
            // A whole second, so tests can place times on (or just after) one.
            Timestamp::from_second(now.as_second()).unwrap_or(now)
        } else {
            now
        };
        Clock {
            start,
            origin: Instant::now(),
            offset: SignedDuration::ZERO,
            scale,
            frozen,
        }
    }

    /// Emulator seconds per real second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Real seconds a client must wait for `emulator_seconds` to pass, rounded up (what a
    /// `Retry-After` header says).
    pub fn real_seconds(&self, emulator_seconds: f64) -> u64 {
        real_seconds(emulator_seconds, self.scale)
    }

    /// When the emulator (or its last reset) started: the anchor of relative scenario times.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The emulator's current time.
    pub fn now(&self) -> Timestamp {
        let elapsed = if self.frozen {
            SignedDuration::ZERO
        } else if self.scale == 1.0 {
            SignedDuration::try_from(self.origin.elapsed()).unwrap_or(SignedDuration::ZERO)
        } else {
            scenario::seconds(self.origin.elapsed().as_secs_f64() * self.scale)
        };
        let ahead = elapsed.saturating_add(self.offset);
        self.start.saturating_add(ahead).unwrap_or(Timestamp::MAX)
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: SignedDuration) {
        self.offset = self.offset.saturating_add(by);
    }
}

/// Real seconds for `emulator_seconds` to pass at `scale` emulator seconds per real second,
/// rounded up.
pub(crate) fn real_seconds(emulator_seconds: f64, scale: f64) -> u64 {
    let real = (emulator_seconds / scale).ceil();
    if real.is_finite() && real > 0.0 {
        real as u64
    } else {
        0
    }
}

/// Who a token was issued to: Fabric can refuse service principals for some job types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Principal {
    /// An app registration (client secret, certificate or federated credential).
    ServicePrincipal,
    /// A managed identity (IMDS or App Service endpoint).
    ManagedIdentity,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub client_id: String,
    pub audience: &'static str,
    pub expires_at: Timestamp,
    pub revoked: bool,
    pub principal: Principal,
    /// The tenant that issued it.
    pub tenant_id: String,
}

/// One entry of the request log (`GET /_emulator/requests`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogEntry {
    pub seq: u64,
    /// When the call was answered, on the emulator's clock (RFC 3339, UTC).
    pub at: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub route: Option<&'static str>,
    pub status: u16,
    pub client_id: Option<String>,
    pub body: Option<Value>,
}

/// Everything that changes while the emulator runs.
pub(crate) struct World {
    pub clock: Clock,
    /// The emulated cloud: which audiences the APIs accept.
    pub cloud: crate::scenario::Cloud,
    pub tokens: HashMap<String, Token>,
    /// Refresh behaviour per dataset id (lower case), changeable through the control API.
    pub behaviours: HashMap<String, RefreshBehaviour>,
    pub refreshes: Vec<Refresh>,
    pub next_number: u64,
    /// Gen1 dataflow transactions, oldest first.
    pub transactions: Vec<Transaction>,
    pub next_transaction: u64,
    /// Refresh behaviour per dataflow id (lower case).
    pub dataflow_behaviours: HashMap<String, DataflowBehaviour>,
    /// Fabric job instances, oldest first.
    pub jobs: Vec<Job>,
    /// Job behaviour per Fabric item id (lower case).
    pub item_behaviours: HashMap<String, JobBehaviour>,
    pub faults: Vec<Fault>,
    pub next_fault_id: u64,
    pub log: Vec<LogEntry>,
    pub counts: BTreeMap<String, u64>,
    /// Model refresh concurrency per capacity.
    pub capacity_limits: Limits,
    /// Gen1 dataflow transaction concurrency per capacity.
    pub dataflow_limits: Limits,
    /// Most model refreshes seen running at once per capacity.
    pub peaks: Peaks,
    /// Most dataflow transactions seen running at once per capacity.
    pub dataflow_peaks: Peaks,
    /// The scenario's `seed`.
    seed: u64,
    /// Durations drawn so far per model or dataflow id (lower case).
    draws: HashMap<String, u64>,
    pub rate_limiter: RateLimiter,
    /// Per-client counts and 429s (`GET /_emulator/stats`), cleared with the log.
    pub stats: Stats,
    /// The lag a fault gives what the call being served starts.
    pub lag: Option<Lag>,
    /// Capacities rejecting new refreshes, and how many each rejected.
    pub surge: Surge,
}

impl World {
    fn new(scenario: &Scenario) -> World {
        let clock = Clock::new(scenario.time_scale, scenario.quirks.frozen_clock);
        let start = clock.start();
        let behaviours = scenario
            .workspaces
            .iter()
            .flat_map(|w| &w.datasets)
            .map(|d| (d.id.to_ascii_lowercase(), d.refresh.clone()))
            .collect();
        let (refreshes, next_number) = history::seed(scenario, start);
        let (transactions, next_transaction) = dataflow::seed(scenario, start);
        let lower = |id: &str| id.to_ascii_lowercase();
        let dataflow_behaviours = scenario
            .workspaces
            .iter()
            .flat_map(|w| &w.dataflows)
            .map(|d| (lower(&d.id), d.refresh.clone()))
            .collect();
        let item_behaviours = scenario
            .workspaces
            .iter()
            .flat_map(|w| &w.items)
            .map(|i| (lower(&i.id), i.refresh.clone()))
            .collect();
        let limit = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let mut world = World {
            cloud: scenario.cloud,
            capacity_limits: scenario
                .capacities
                .iter()
                .map(|c| (lower(&c.id), limit(c.concurrency)))
                .collect(),
            dataflow_limits: scenario
                .capacities
                .iter()
                .filter_map(|c| Some((lower(&c.id), limit(c.dataflow_concurrency?))))
                .collect(),
            peaks: Peaks::new(),
            dataflow_peaks: Peaks::new(),
            seed: scenario.seed,
            draws: HashMap::new(),
            rate_limiter: RateLimiter::default(),
            stats: Stats::default(),
            clock,
            tokens: HashMap::new(),
            behaviours,
            refreshes,
            next_number,
            transactions,
            next_transaction,
            dataflow_behaviours,
            jobs: Vec::new(),
            item_behaviours,
            faults: Vec::new(),
            next_fault_id: 1,
            log: Vec::new(),
            counts: BTreeMap::new(),
            lag: None,
            surge: Surge::seed(scenario, start),
        };
        // Seeded running refreshes hold their slots: count them in the peaks.
        world.admit(start);
        world
    }

    /// The emulator's current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Ends every refresh, transaction and job whose time has come (without observing any),
    /// handing freed capacity slots to waiting ones; returns the time it settled at.
    pub fn settle_all(&mut self) -> Timestamp {
        let now = self.now();
        capacity::settle(
            &mut self.refreshes,
            &self.capacity_limits,
            &mut self.peaks,
            now,
        );
        capacity::settle(
            &mut self.transactions,
            &self.dataflow_limits,
            &mut self.dataflow_peaks,
            now,
        );
        for job in &mut self.jobs {
            job.settle(now);
        }
        now
    }

    /// Gives free capacity slots to waiting refreshes and transactions at `at`: call it after
    /// accepting, cancelling or completing one.
    pub fn admit(&mut self, at: Timestamp) {
        let (limits, peaks) = (&self.capacity_limits, &mut self.peaks);
        capacity::admit(&mut self.refreshes, limits, peaks, at);
        let (limits, peaks) = (&self.dataflow_limits, &mut self.dataflow_peaks);
        capacity::admit(&mut self.transactions, limits, peaks, at);
    }

    /// The next duration of entity `key` (a model or dataflow id) under `spec`, in seconds:
    /// draw n of that entity, so the k-th refresh of a model lasts the same in every run.
    pub fn draw(&mut self, key: &str, spec: Option<&DurationSpec>) -> Option<f64> {
        let spec = spec?;
        let index = self.draws.entry(key.to_ascii_lowercase()).or_default();
        *index += 1;
        Some(spec.draw(self.seed, key, Purpose::Run, *index))
    }

    /// A transaction by id (exact, as ids are case-sensitive strings).
    pub fn transaction_mut(&mut self, id: &str) -> Option<&mut Transaction> {
        self.transactions.iter_mut().find(|t| t.id == id)
    }

    /// The next `$<n>` of a transaction id.
    pub fn take_transaction_number(&mut self) -> u64 {
        let number = self.next_transaction;
        self.next_transaction += 1;
        number
    }

    /// A job instance by id (case-insensitive).
    pub fn job_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.jobs.iter_mut().find(|j| j.id.eq_ignore_ascii_case(id))
    }

    /// The running refresh of a dataset, if any (after settling).
    pub fn running_refresh(&mut self, dataset_id: &str) -> Option<&Refresh> {
        self.settle_all();
        self.refreshes
            .iter()
            .find(|r| r.running() && r.dataset_id.eq_ignore_ascii_case(dataset_id))
    }

    /// A refresh by its request id (case-insensitive).
    pub fn refresh_mut(&mut self, request_id: &str) -> Option<&mut Refresh> {
        self.refreshes
            .iter_mut()
            .find(|r| r.request_id.eq_ignore_ascii_case(request_id))
    }

    /// The current refresh behaviour of a dataset.
    pub fn behaviour(&self, dataset_id: &str) -> RefreshBehaviour {
        self.behaviours
            .get(&dataset_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// How long what `route`'s call starts now stays out of list reads (a fault's lag).
    pub fn take_lag(&mut self, route: &str) -> Hidden {
        let mut hidden = Hidden::default();
        if let Some(lag) = self.lag.take_if(|lag| lag.route == route) {
            hidden.add(lag, self.now());
        }
        hidden
    }

    /// The next integer history id.
    pub fn take_number(&mut self) -> u64 {
        let number = self.next_number;
        self.next_number += 1;
        number
    }
}

impl Plan {
    /// The plan of a refresh started now under `behaviour`, lasting `duration_seconds` (drawn
    /// from the behaviour's `durationSeconds`).
    pub fn from_behaviour(behaviour: &RefreshBehaviour, duration_seconds: Option<f64>) -> Plan {
        Plan {
            polls: behaviour.polls,
            duration: duration_seconds.map(scenario::seconds),
            outcome: behaviour.outcome,
            error: behaviour.error.clone(),
        }
    }
}
