//! Names or ids → resolved items of the right kind, each workspace's lists read once per run;
//! and what an earlier attempt of the same Kestra task run left behind.

use std::cell::RefCell;
use std::collections::HashMap;

use super::outcome::Outcome;
use super::runner::{Earlier, Options};
use super::{ItemInfo, Kind, Refreshable, Run};
use crate::error::{Error, ExitCode};
use crate::fabric::Fabric;
use crate::fabric::jobs::Item;
use crate::ops::Context;
use crate::ops::outputs::Status;
use crate::powerbi::PowerBi;
use crate::powerbi::dataflows::Dataflow;
use crate::powerbi::wire::{Dataset, Group};
use crate::resolve;
use crate::settings::Profile;
use crate::store::TaskRun;
use crate::task::{DataflowOptions, DataflowTarget, ItemRefresh, RefreshBody};

/// What identifies an item of `kind` in `group`.
pub(crate) fn info(kind: Kind, group: &Group, id: &str, name: &str) -> ItemInfo {
    ItemInfo {
        kind,
        workspace_id: group.id.clone(),
        workspace_name: group.name.clone(),
        id: id.to_string(),
        name: name.to_string(),
        capacity: group
            .capacity_id
            .clone()
            .unwrap_or_else(|| format!("shared:{}", group.id)),
        shared: group.is_on_dedicated_capacity == Some(false),
        refreshable: None,
    }
}

/// The workspaces and their items, each list read at most once per run.
pub(crate) struct Catalog<'a> {
    pbi: PowerBi<'a>,
    fabric: Fabric<'a>,
    /// Whether the profile's cloud has Fabric (Dataflow Gen2 lives there).
    has_fabric: bool,
    /// Every visible workspace; read once when a run resolves several items.
    groups: RefCell<Option<Vec<Group>>>,
    models: RefCell<HashMap<String, Vec<Dataset>>>,
    gen1: RefCell<HashMap<String, Vec<Dataflow>>>,
    gen2: RefCell<HashMap<String, Vec<Item>>>,
}

impl<'a> Catalog<'a> {
    /// A catalog read as `profile`.
    pub(crate) fn new(ctx: &Context<'a>, profile: &'a Profile) -> Catalog<'a> {
        Catalog {
            pbi: PowerBi::new(ctx.http, ctx.auth, profile, &ctx.settings.endpoints.powerbi),
            fabric: Fabric::new(ctx.http, ctx.auth, profile, &ctx.settings.endpoints.fabric),
            has_fabric: crate::auth::Resource::Fabric.uri(profile).is_ok(),
            groups: RefCell::new(None),
            models: RefCell::new(HashMap::new()),
            gen1: RefCell::new(HashMap::new()),
            gen2: RefCell::new(HashMap::new()),
        }
    }

    /// The Power BI client.
    pub(crate) fn pbi(&self) -> &PowerBi<'a> {
        &self.pbi
    }

    /// Every visible workspace (read once).
    pub(crate) async fn groups(&self) -> Result<Vec<Group>, Error> {
        if let Some(groups) = self.groups.borrow().as_ref() {
            return Ok(groups.clone());
        }
        let groups = self.pbi.groups(None).await?;
        *self.groups.borrow_mut() = Some(groups.clone());
        Ok(groups)
    }

    /// A workspace by name or id: from the full list once it was read, else with a `$filter`
    /// query (one call when the name is exact).
    pub(crate) async fn workspace(&self, wanted: &str) -> Result<Group, Error> {
        let listed = self.groups.borrow().clone();
        match listed {
            Some(groups) => {
                resolve::pick(&groups, wanted, "workspace", None, |g| &g.id, |g| &g.name)
            }
            None => resolve::workspace(&self.pbi, wanted).await,
        }
    }

    /// The semantic models of `group` (read once).
    pub(crate) async fn models(&self, group: &Group) -> Result<Vec<Dataset>, Error> {
        if let Some(list) = self.models.borrow().get(&group.id) {
            return Ok(list.clone());
        }
        let list = self.pbi.datasets(group).await?;
        self.models
            .borrow_mut()
            .insert(group.id.clone(), list.clone());
        Ok(list)
    }

    /// The Gen1 dataflows of `group` (read once).
    pub(crate) async fn gen1(&self, group: &Group) -> Result<Vec<Dataflow>, Error> {
        if let Some(list) = self.gen1.borrow().get(&group.id) {
            return Ok(list.clone());
        }
        let list = self.pbi.dataflows(&group.id).await?;
        self.gen1
            .borrow_mut()
            .insert(group.id.clone(), list.clone());
        Ok(list)
    }

    async fn gen2(&self, group: &Group) -> Result<Vec<Item>, Error> {
        if let Some(list) = self.gen2.borrow().get(&group.id) {
            return Ok(list.clone());
        }
        let list = self.fabric.items(&group.id, Some("Dataflow")).await?;
        self.gen2
            .borrow_mut()
            .insert(group.id.clone(), list.clone());
        Ok(list)
    }

    /// A semantic model by name or id in `group`, to refresh with `body`.
    pub(crate) async fn model(
        &self,
        group: &Group,
        wanted: &str,
        body: RefreshBody,
    ) -> Result<Box<dyn Refreshable + 'a>, Error> {
        let models = self.models(group).await?;
        let scope = Some(format!("workspace {} ({})", group.name, group.id));
        let dataset = resolve::pick(
            &models,
            wanted,
            "semantic model",
            scope,
            |d| &d.id,
            |d| &d.name,
        )?;
        let model = super::model::Model::new(self.pbi.clone(), group, &dataset, body)?;
        Ok(Box::new(model))
    }

    /// A dataflow by name or id in `group`: of the given generation, or detected — Power BI's
    /// dataflows first, then Fabric's `Dataflow` items; a name found in both is ambiguous (exit
    /// 4), never guessed.
    pub(crate) async fn dataflow(
        &self,
        group: &Group,
        target: &DataflowTarget,
        options: &DataflowOptions,
    ) -> Result<Box<dyn Refreshable + 'a>, Error> {
        let wanted = target.dataflow.as_str();
        let scope = Some(format!("workspace {} ({})", group.name, group.id));
        let gen1 = match target.generation {
            Some(2) => Vec::new(),
            _ => self.gen1(group).await?,
        };
        let gen2 = match target.generation {
            Some(1) => Vec::new(),
            // Detecting in a cloud without Fabric: only Power BI's dataflows exist there.
            None if !self.has_fabric => Vec::new(),
            _ => self.gen2(group).await?,
        };
        let hit1 = resolve::pick(
            &gen1,
            wanted,
            "dataflow",
            scope.clone(),
            |d| &d.object_id,
            |d| &d.name,
        );
        let hit2 = resolve::pick(
            &gen2,
            wanted,
            "dataflow",
            scope.clone(),
            |i| &i.id,
            |i| &i.display_name,
        );
        let found = match (hit1, hit2) {
            (Ok(df), Ok(item)) => {
                return Err(Error::NotFound {
                    kind: "dataflow",
                    name: wanted.to_string(),
                    scope,
                    candidates: vec![
                        format!("{} (Gen1, {})", df.name, df.object_id),
                        format!("{} (Gen2, {})", item.display_name, item.id),
                    ],
                    ambiguous: true,
                });
            }
            (Ok(df), Err(e)) if is_missing(&e) => Found::Gen1(df),
            (Err(e), Ok(item)) if is_missing(&e) => Found::Gen2(item),
            (Err(e), _) | (_, Err(e)) if !is_missing(&e) => return Err(e),
            _ => {
                let names = gen1
                    .iter()
                    .map(|d| d.name.as_str())
                    .chain(gen2.iter().map(|i| i.display_name.as_str()));
                return Err(Error::NotFound {
                    kind: "dataflow",
                    name: wanted.to_string(),
                    scope,
                    candidates: resolve::close_matches(wanted, names),
                    ambiguous: false,
                });
            }
        };
        Ok(match found {
            Found::Gen1(df) => Box::new(super::gen1::Gen1::new(
                self.pbi.clone(),
                info(Kind::Gen1, group, &df.object_id, &df.name),
                options.clone(),
            )),
            Found::Gen2(item) => Box::new(super::gen2::Gen2::new(
                self.fabric.clone(),
                info(Kind::Gen2, group, &item.id, &item.display_name),
                options.clone(),
            )),
        })
    }

    /// Resolves one refresh of a fleet (workspace, then the item of its kind).
    pub(crate) async fn item(
        &self,
        refresh: &ItemRefresh,
    ) -> Result<Box<dyn Refreshable + 'a>, Error> {
        match refresh {
            ItemRefresh::Model(r) => {
                let group = self.workspace(&r.target.workspace).await?;
                self.model(&group, &r.target.dataset, r.body.clone()).await
            }
            ItemRefresh::Dataflow(r) => {
                let group = self.workspace(&r.target.workspace).await?;
                self.dataflow(&group, &r.target, &r.options).await
            }
        }
    }
}

/// Whether `e` says "no such name" (rather than "several", or a failure).
fn is_missing(e: &Error) -> bool {
    matches!(
        e,
        Error::NotFound {
            ambiguous: false,
            ..
        }
    )
}

enum Found {
    Gen1(Dataflow),
    Gen2(Item),
}

/// An earlier attempt of this Kestra task run on `item` (a retry after a dead worker, or after
/// a fleet or cascade failed elsewhere): a refresh it left running is followed, one that ended
/// since is reported, and an item it completed is not refreshed again. Only a retry of the same
/// task run counts: another run on the item goes through `ifRunning` like any refresh it did not
/// start.
pub(crate) async fn earlier_attempt(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
) -> Result<Option<Earlier>, Error> {
    let Some(store) = ctx.store else {
        return Ok(None);
    };
    let kestra = &ctx.settings.kestra;
    let (Some(execution_id), Some(taskrun_id)) =
        (kestra.execution_id.as_deref(), kestra.taskrun_id.as_deref())
    else {
        return Ok(None);
    };
    let info = item.info();
    let task_run = TaskRun {
        operation: ctx.recorder.operation(),
        profile,
        execution_id,
        taskrun_id,
    };
    let Some(row) = store
        .attempt_of_task_run(&task_run, &info.id, ctx.recorder.id())
        .await?
    else {
        return Ok(None);
    };
    // Only an attempt within the task's own time frame: a restart days later refreshes anew.
    let window = jiff::SignedDuration::try_from(opts.wait.timeout).unwrap_or_default();
    if row.started_at < jiff::Timestamp::now() - window {
        return Ok(None);
    }
    // A row a signal closed is an attempt that stopped without ending, like a dead worker's.
    if row.ended_at.is_some() && row.status != crate::store::INTERRUPTED {
        if row.status != "Completed" {
            return Ok(None);
        }
        tracing::info!(
            request_id = row.request_id.as_deref().unwrap_or_default(),
            "operation {} of this task run already completed the {}; not refreshing it again",
            row.id,
            info.describe()
        );
        return Ok(Some(Earlier::Adopt(Outcome {
            request_id: row.request_id,
            attached: true,
            ..Outcome::new(Status::Completed, ExitCode::Success)
        })));
    }
    let Some(request_id) = row.request_id.clone() else {
        // It stopped before the service named its run: what it started, if anything, is a run
        // that began after it did.
        store.abandon_operation(row.id, ctx.recorder.id()).await?;
        return Ok(Some(Earlier::Unnamed {
            started_at: row.started_at,
        }));
    };
    let seen = item.status(&Run::seed(request_id.as_str())).await?;
    // Its capacity slot passes to this run before its row closes (a closed row frees its slots
    // for anyone): the refresh it started still runs on the capacity.
    let slot = match (opts.per_capacity, ctx.recorder.id()) {
        (Some(_), Some(me)) => store
            .hand_over_slots(row.id, me, super::admission::slot_lease())
            .await?
            .into_iter()
            .next(),
        _ => None,
    };
    store.abandon_operation(row.id, ctx.recorder.id()).await?;
    Ok(match seen {
        Some(run) if run.status.is_none() => {
            tracing::info!(request_id = %request_id, "operation {} (started {}) was following this refresh when it stopped; reattaching", row.id, row.started_at);
            Some(Earlier::Follow { run, slot })
        }
        Some(run) => {
            tracing::info!(request_id = %request_id, "operation {} stopped before its refresh ended; it has ended since: reporting that", row.id);
            if let (Some((capacity, slot)), Some(me)) = (slot, ctx.recorder.id()) {
                if let Err(e) = store.release_slot(&capacity, Some(slot), me).await {
                    tracing::warn!("{e}; the slot lapses on its own");
                }
            }
            Some(Earlier::Adopt(Outcome::adopted(&run, item)))
        }
        // Not listed (yet: a history lags): follow it by id; the wait's grace decides.
        None => {
            tracing::info!(request_id = %request_id, "operation {} was following this refresh when it stopped; the service does not list it yet: following it", row.id);
            Some(Earlier::Follow {
                run: Run::seed(request_id.as_str()),
                slot,
            })
        }
    })
}
