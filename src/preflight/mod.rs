//! Preflight: before a refresh is triggered, prove what can be proven cheaply that it cannot run,
//! and refuse it then, with the reason and a `help:` line, sending no trigger.
//!
//! The checks (facts and sources in `docs/preflight.md`):
//!
//! - `capacity`: the workspace's capacity is `Active` (`GET /capacities`);
//! - `refreshable`: the model says `isRefreshable` (`GET /groups/{g}/datasets/{d}`);
//! - `dataSource`: each gateway data source the model is bound to answers its status read
//!   without an error (`GET …/datasources`, then `GET /gateways/{gw}/datasources/{ds}/status`):
//!   missing credentials and an unreachable gateway both show there;
//! - `dailyBudget`: a model on shared capacity has refreshes left today (eight a day, scheduled
//!   and API together; the time the next one can run is given);
//! - `principal`: a Dataflow Gen2 whose refresh the service already refused for this profile
//!   (`PrincipalTypeNotSupported`, recorded in the operation log) is not tried again.
//!
//! Only a definite answer blocks. A check that cannot conclude (403 on a route that needs
//! capacity or gateway rights, 404 on an optional route, no answer at all) warns and lets the
//! refresh go. In a fleet each capacity and each gateway data source is read once, and an item
//! that fails its preflight becomes a failed target that is never triggered (its dependents are
//! skipped as for any failed target).
//!
//! A refusal exits with the code the refresh itself would have ended with — 1 (the refresh
//! could not have succeeded), or 3 when the service refuses the principal — and its
//! `errorCode` starts with `Preflight`.

mod calls;
mod checks;

use std::cell::RefCell;
use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{Error, ServiceError};
use crate::ops::Context;
use crate::ops::outputs::Outputs;
use crate::refresh::fleet::Node;
use crate::refresh::{ItemInfo, Refreshable};
use crate::settings::Profile;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The check passed.
    Pass,
    /// The refresh cannot run: it is not triggered.
    Fail,
    /// The check could not conclude; the refresh goes ahead.
    Warn,
    /// The check does not apply to the item.
    Skip,
}

/// One check of one subject (a capacity, a model, a gateway data source), for the items it
/// concerns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `capacity`, `refreshable`, `dataSource`, `dailyBudget` or `principal`.
    pub check: &'static str,
    /// What was checked, e.g. `capacity 0f08… (F64)`.
    pub subject: String,
    /// The items it concerns (fleet keys, or the item's name).
    pub items: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The code a refusal reports as `errorCode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `dailyBudget`: when the next refresh can run (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<String>,
}

impl Row {
    fn new(check: &'static str, subject: impl Into<String>, verdict: Verdict) -> Row {
        Row {
            check,
            subject: subject.into(),
            items: Vec::new(),
            verdict,
            detail: String::new(),
            help: None,
            error_code: None,
            next_run_at: None,
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Row {
        self.detail = detail.into();
        self
    }

    fn help(mut self, help: impl Into<String>) -> Row {
        self.help = Some(help.into());
        self
    }

    fn code(mut self, code: &str) -> Row {
        self.error_code = Some(code.to_string());
        self
    }
}

/// The checks of one run: what was read (each capacity list and gateway data source once) and
/// the rows found.
pub(crate) struct Preflight<'a> {
    ctx: &'a Context<'a>,
    profile: &'a Profile,
    capacities: RefCell<Option<Result<Vec<calls::Capacity>, String>>>,
    gateways: RefCell<HashMap<String, Row>>,
    rows: RefCell<Rows>,
    /// Passing rows go to the debug log and one summary line ends the checks (many items: the
    /// warnings and failures must not drown in passes).
    summarized: bool,
}

/// The rows in the order found, indexed by check and subject and by item: a fleet of a thousand
/// items looks each up at once instead of scanning every row for each item.
#[derive(Default)]
struct Rows {
    list: Vec<Row>,
    by_subject: HashMap<(&'static str, String), usize>,
    by_item: HashMap<String, Vec<usize>>,
}

impl<'a> Preflight<'a> {
    /// Checks of several items: passes go to the debug log, to be counted in one [`summary`].
    pub(crate) fn summarized(self) -> Preflight<'a> {
        Preflight {
            summarized: true,
            ..self
        }
    }

    /// Checks run as `profile`.
    pub(crate) fn new(ctx: &'a Context<'a>, profile: &'a Profile) -> Preflight<'a> {
        Preflight {
            ctx,
            profile,
            capacities: RefCell::new(None),
            gateways: RefCell::new(HashMap::new()),
            rows: RefCell::new(Rows::default()),
            summarized: false,
        }
    }

    /// Records `row` for `key`, merged with the same check of the same subject. The service's
    /// words in it are scrubbed of secrets like every other output.
    fn add(&self, key: &str, mut row: Row) {
        row.detail = crate::redact::scrub(&row.detail);
        row.subject = crate::redact::scrub(&row.subject);
        let mut rows = self.rows.borrow_mut();
        let Rows {
            list,
            by_subject,
            by_item,
        } = &mut *rows;
        let at = *by_subject
            .entry((row.check, row.subject.clone()))
            .or_insert_with(|| {
                list.push(row);
                list.len() - 1
            });
        let of_item = by_item.entry(key.to_string()).or_default();
        if !of_item.contains(&at) {
            of_item.push(at);
            list[at].items.push(key.to_string());
        }
    }

    /// Runs every check that applies to `info`, known as `key`; returns the refusal, if any.
    pub(crate) async fn item(&self, key: &str, info: &ItemInfo) -> Option<Error> {
        checks::run(self, key, info).await;
        let rows = self.rows.borrow();
        // In the order the rows were found, as the whole list shows them.
        let mut at: Vec<usize> = rows.by_item.get(key).cloned().unwrap_or_default();
        at.sort_unstable();
        let mine: Vec<&Row> = at.iter().map(|at| &rows.list[*at]).collect();
        for row in &mine {
            log(key, row, self.summarized);
        }
        let failed: Vec<&Row> = mine
            .into_iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .collect();
        (!failed.is_empty()).then(|| refusal(info, &failed))
    }

    /// Every row found, in the order checked.
    pub(crate) fn rows(&self) -> Vec<Row> {
        self.rows.borrow().list.clone()
    }
}

fn log(key: &str, row: &Row, summarized: bool) {
    let line = || {
        format!(
            "preflight {} of {} for {key}: {:?}: {}",
            row.check, row.subject, row.verdict, row.detail
        )
    };
    match row.verdict {
        Verdict::Fail => tracing::error!("{}", line()),
        Verdict::Warn => tracing::warn!("{}", line()),
        Verdict::Pass | Verdict::Skip if summarized => tracing::debug!("{}", line()),
        Verdict::Pass | Verdict::Skip => tracing::info!("{}", line()),
    }
}

/// The line that ends the checks of several items: how many rows came to each verdict.
pub(crate) fn summary(items: usize, rows: &[Row]) -> String {
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    format!(
        "preflight of {items} item(s): {} check(s) passed, {} warned, {} failed, {} skipped (each in the `preflight` output; warnings and failures above)",
        count(Verdict::Pass),
        count(Verdict::Warn),
        count(Verdict::Fail),
        count(Verdict::Skip)
    )
}

/// The error a refused item ends with: what failed, and the first failure's help.
fn refusal(info: &ItemInfo, failed: &[&Row]) -> Error {
    let first = failed[0];
    let message = failed
        .iter()
        .map(|r| r.detail.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let service = ServiceError {
        status: None,
        code: first.error_code.clone(),
        message: Some(message),
        request_id: None,
    };
    let action = format!(
        "preflight of the refresh of {} (nothing was triggered)",
        info.describe()
    );
    let help = first.help.clone().unwrap_or_default();
    if first.check == "principal" {
        Error::AccessRefused {
            action,
            service,
            help,
        }
    } else {
        Error::Rejected {
            action,
            service,
            help: Some(help),
        }
    }
}

/// One item's preflight, before a single refresh (`dataset.refresh`, `report.refresh`,
/// `dataflow.refresh`): `Err` refuses it. The rows go to the `preflight` output.
pub(crate) async fn before(
    ctx: &Context<'_>,
    profile: &Profile,
    item: &dyn Refreshable,
    enabled: bool,
    out: &mut Outputs,
) -> Result<(), Error> {
    if !enabled {
        return Ok(());
    }
    let preflight = Preflight::new(ctx, profile);
    let info = item.info();
    let refused = preflight.item(&info.name, info).await;
    out.preflight = Some(preflight.rows());
    refused.map_or(Ok(()), Err)
}

/// A fleet's preflight: each resolved node is checked (each capacity and gateway data source
/// read once); a node that fails becomes a failed target, never triggered.
pub(crate) async fn fleet(
    ctx: &Context<'_>,
    profile: &Profile,
    nodes: &mut [Node<'_>],
    enabled: bool,
    out: &mut Outputs,
) {
    if !enabled {
        return;
    }
    let preflight = Preflight::new(ctx, profile).summarized();
    let mut checked = 0;
    for node in nodes.iter_mut() {
        let refused = match &node.item {
            Ok(item) => {
                checked += 1;
                preflight.item(&node.key, item.info()).await
            }
            Err(_) => None,
        };
        if let Some(e) = refused {
            node.item = Err(e);
        }
    }
    let rows = preflight.rows();
    tracing::info!("{}", summary(checked, &rows));
    out.preflight = Some(rows);
}
