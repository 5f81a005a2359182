//! The emulator's mutable world (tokens, refreshes, faults, request log) and its clock.
//!
//! Everything sits behind one `std::sync::Mutex`: handlers lock, decide, and unlock before any
//! `.await`, so requests are atomic with respect to each other and tests see a consistent order.
//! Reset rebuilds the world from the immutable scenario.

use crate::dataflow::{self, Transaction};
use crate::faults::Fault;
use crate::jobs::Job;
use crate::refresh::{Ended, Enhanced, Plan, Refresh};
use crate::scenario::{
    self, DataflowBehaviour, HistoryStatus, JobBehaviour, RefreshBehaviour, Scenario, Workspace,
};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The first integer `id` given to a history entry.
const FIRST_REFRESH_NUMBER: u64 = 937_845_001;

/// State shared by every handler.
pub(crate) type AppState = Arc<Shared>;

/// The scenario and the world built from it.
pub(crate) struct Shared {
    pub scenario: Scenario,
    world: Mutex<World>,
}

impl Shared {
    pub fn new(scenario: Scenario) -> AppState {
        let world = World::new(&scenario);
        Arc::new(Shared {
            scenario,
            world: Mutex::new(world),
        })
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

/// The emulator's clock: real monotonic time since start, plus what `/clock/advance` added.
pub(crate) struct Clock {
    start: Timestamp,
    origin: Instant,
    offset: SignedDuration,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Timestamp::now(),
            origin: Instant::now(),
            offset: SignedDuration::ZERO,
        }
    }

    /// When the emulator (or its last reset) started: the anchor of relative scenario times.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The emulator's current time.
    pub fn now(&self) -> Timestamp {
        let elapsed =
            SignedDuration::try_from(self.origin.elapsed()).unwrap_or(SignedDuration::ZERO);
        let ahead = elapsed.saturating_add(self.offset);
        self.start.saturating_add(ahead).unwrap_or(Timestamp::MAX)
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: SignedDuration) {
        self.offset = self.offset.saturating_add(by);
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
}

impl World {
    fn new(scenario: &Scenario) -> World {
        let clock = Clock::new();
        let start = clock.start();
        let mut behaviours = HashMap::new();
        let mut refreshes = Vec::new();
        for ws in &scenario.workspaces {
            for ds in &ws.datasets {
                behaviours.insert(ds.id.to_ascii_lowercase(), ds.refresh.clone());
                for entry in &ds.history {
                    // Validated when the scenario was parsed; fall back to `start` regardless.
                    let at = |text: &str| scenario::resolve_time(text, start).unwrap_or(start);
                    let mut refresh = Refresh {
                        request_id: entry.request_id.clone(),
                        number: 0,
                        group_id: ws.id.clone(),
                        dataset_id: ds.id.clone(),
                        refresh_type: entry.refresh_type.clone(),
                        enhanced: entry.enhanced.then(|| Enhanced {
                            kind: "Full".to_owned(),
                            commit_mode: "Transactional".to_owned(),
                            objects: Vec::new(),
                            engine_error: None,
                        }),
                        body: None,
                        start: at(&entry.start_time),
                        end: None,
                        ended: None,
                        error: None,
                        messages: Vec::new(),
                        observed: 0,
                        hidden_reads: 0,
                        plan: Plan {
                            polls: entry.polls,
                            duration: entry.duration_seconds.map(scenario::seconds),
                            outcome: entry.outcome,
                            error: entry.error.clone(),
                        },
                    };
                    let ended = match entry.status {
                        HistoryStatus::Unknown => None,
                        HistoryStatus::Completed => Some(Ended::Completed),
                        HistoryStatus::Failed => Some(Ended::Failed),
                        HistoryStatus::Cancelled => Some(Ended::Cancelled),
                        HistoryStatus::Disabled => Some(Ended::Disabled),
                    };
                    if let (Some(ended), Some(end)) = (ended, &entry.end_time) {
                        refresh.finish(ended, at(end), entry.error.clone());
                    }
                    refreshes.push(refresh);
                }
            }
        }
        // Older refreshes get smaller integer ids, as in the service.
        refreshes.sort_by_key(|r: &Refresh| r.start);
        let mut next_number = FIRST_REFRESH_NUMBER;
        for refresh in &mut refreshes {
            refresh.number = next_number;
            next_number += 1;
        }
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
        World {
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
        }
    }

    /// The emulator's current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Ends every refresh, transaction and job whose time has come (without observing any).
    pub fn settle_all(&mut self) {
        let now = self.now();
        for refresh in &mut self.refreshes {
            refresh.settle(now);
        }
        for tx in &mut self.transactions {
            tx.settle(now);
        }
        for job in &mut self.jobs {
            job.settle(now);
        }
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

    /// The next integer history id.
    pub fn take_number(&mut self) -> u64 {
        let number = self.next_number;
        self.next_number += 1;
        number
    }
}

impl Plan {
    /// The plan of a refresh started now under `behaviour`.
    pub fn from_behaviour(behaviour: &RefreshBehaviour) -> Plan {
        Plan {
            polls: behaviour.polls,
            duration: behaviour.duration_seconds.map(scenario::seconds),
            outcome: behaviour.outcome,
            error: behaviour.error.clone(),
        }
    }
}
