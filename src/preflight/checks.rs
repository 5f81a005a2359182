//! The checks themselves; each adds its rows to the run's [`Preflight`].

use jiff::{SignedDuration, Timestamp};

use super::calls::{self, Answer, Capacity, DataSource, List, Model};
use super::{Preflight, Row, Verdict};
use crate::error::ServiceError;
use crate::ops::outputs::parse_time;
use crate::refresh::{ItemInfo, Kind};
use crate::store::HistoryFilter;

/// Refreshes a model on shared capacity may have in 24 hours, scheduled and API together.
const SHARED_DAILY_REFRESHES: usize = 8;

/// Every check that applies to `info`.
pub(super) async fn run(p: &Preflight<'_>, key: &str, info: &ItemInfo) {
    capacity(p, key, info).await;
    match info.kind {
        Kind::Model => {
            refreshable(p, key, info).await;
            data_sources(p, key, info).await;
            daily_budget(p, key, info).await;
        }
        Kind::Gen2 => principal(p, key, info).await,
        Kind::Gen1 => {}
    }
}

/// Why a read was inconclusive, for a `warn` row.
fn inconclusive(answer: &Answer, needs: &str) -> String {
    match answer {
        Answer::Refused(s) => format!("not readable by this profile ({}); {needs}", brief(s)),
        Answer::Missing(s) => format!("the service does not answer this route ({})", brief(s)),
        Answer::Error(s) => format!("the service answered {}", brief(s)),
        Answer::Unreachable(why) => format!("no answer: {why}"),
        Answer::Ok(_) => "the answer could not be read".into(),
    }
}

fn brief(s: &ServiceError) -> String {
    let mut text = s.status.map(|c| format!("HTTP {c}")).unwrap_or_default();
    if let Some(code) = &s.code {
        text = format!("{text} {code}").trim().to_string();
    }
    text
}

async fn capacity(p: &Preflight<'_>, key: &str, info: &ItemInfo) {
    if info.shared {
        let row = Row::new("capacity", "shared capacity", Verdict::Skip)
            .detail("the workspace is on shared capacity: there is no capacity to pause");
        return p.add(key, row);
    }
    if info.capacity.starts_with("shared:") {
        let row = Row::new(
            "capacity",
            format!("workspace {}", info.workspace_name),
            Verdict::Skip,
        )
        .detail("the workspace names no capacity (no capacityId): nothing to check");
        return p.add(key, row);
    }
    let listed = p.capacities.borrow().clone();
    let listed = match listed {
        Some(l) => l,
        None => {
            let answer = calls::get(
                p.ctx,
                p.profile,
                "capacities",
                "list the capacities",
                "/capacities",
            )
            .await;
            let read = match &answer {
                Answer::Ok(r) => r
                    .json::<List<Capacity>>("list the capacities")
                    .map(|l| l.value)
                    .map_err(|e| e.to_string()),
                other => Err(inconclusive(
                    other,
                    "Get Capacities lists only the capacities the caller has rights on",
                )),
            };
            *p.capacities.borrow_mut() = Some(read.clone());
            read
        }
    };
    let subject = format!("capacity {}", info.capacity);
    let row = match listed {
        Err(why) => Row::new("capacity", subject, Verdict::Warn).detail(why).help(
            "give the service principal a right on the capacity (e.g. contributor) to let pbiops read its state",
        ),
        Ok(list) => match list
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(&info.capacity))
        {
            None => Row::new("capacity", subject, Verdict::Warn)
                .detail(format!(
                    "not among the {} capacities this profile can see; its state is unknown",
                    list.len()
                ))
                .help("give the service principal a right on the capacity to let pbiops read its state"),
            Some(c) => capacity_row(subject, c),
        },
    };
    p.add(key, row);
}

fn capacity_row(subject: String, c: &Capacity) -> Row {
    let name = c.display_name.as_deref().unwrap_or(&c.id);
    let sku = c
        .sku
        .as_deref()
        .map(|s| format!(", {s}"))
        .unwrap_or_default();
    match c.state.as_deref() {
        Some("Active") => Row::new("capacity", subject, Verdict::Pass)
            .detail(format!("capacity {name}{sku} is Active")),
        Some(state) => Row::new("capacity", subject, Verdict::Fail)
            .detail(format!("capacity {name}{sku} is {state}, not Active: no refresh can run on it"))
            .help("resume the capacity (Azure portal or the Fabric admin portal), or move the workspace to an active capacity, then rerun")
            .code("PreflightCapacityNotActive"),
        None => Row::new("capacity", subject, Verdict::Warn)
            .detail(format!("capacity {name} has no state in the answer")),
    }
}

async fn refreshable(p: &Preflight<'_>, key: &str, info: &ItemInfo) {
    let subject = format!("semantic model {} ({})", info.name, info.id);
    // The workspace's model list already says it (one read for all its models): the model
    // itself is read only when it did not.
    let said = match info.refreshable {
        Some(known) => Ok(Some(known)),
        None => {
            let path = format!("/groups/{}/datasets/{}", info.workspace_id, info.id);
            let action = format!("read semantic model {}", info.id);
            match calls::get(p.ctx, p.profile, "dataset", &action, &path).await {
                Answer::Ok(r) => r
                    .json::<Model>(&action)
                    .map(|m| m.is_refreshable)
                    .map_err(|e| e.to_string()),
                other => Err(inconclusive(&other, "")),
            }
        }
    };
    let row = match said {
        Ok(Some(true)) => {
            Row::new("refreshable", subject, Verdict::Pass).detail("isRefreshable is true")
        }
        Ok(Some(false)) => Row::new("refreshable", subject, Verdict::Fail)
            .detail("the service says the model is not refreshable (isRefreshable: false): DirectQuery and live-connection models hold no data to refresh")
            .help("refresh the model it reads from instead, or remove it from the task")
            .code("PreflightModelNotRefreshable"),
        Ok(None) => {
            Row::new("refreshable", subject, Verdict::Warn).detail("the answer has no isRefreshable")
        }
        Err(why) => Row::new("refreshable", subject, Verdict::Warn).detail(why),
    };
    p.add(key, row);
}

async fn data_sources(p: &Preflight<'_>, key: &str, info: &ItemInfo) {
    let path = format!(
        "/groups/{}/datasets/{}/datasources",
        info.workspace_id, info.id
    );
    let action = format!("list the data sources of semantic model {}", info.id);
    let answer = calls::get(p.ctx, p.profile, "datasources", &action, &path).await;
    let sources = match &answer {
        Answer::Ok(r) => match r.json::<List<DataSource>>(&action) {
            Ok(l) => l.value,
            Err(e) => {
                let row = Row::new(
                    "dataSource",
                    format!("semantic model {}", info.name),
                    Verdict::Warn,
                )
                .detail(e.to_string());
                return p.add(key, row);
            }
        },
        other => {
            let row = Row::new(
                "dataSource",
                format!("semantic model {}", info.name),
                Verdict::Warn,
            )
            .detail(inconclusive(other, ""));
            return p.add(key, row);
        }
    };
    if sources.is_empty() {
        let row = Row::new(
            "dataSource",
            format!("semantic model {}", info.name),
            Verdict::Pass,
        )
        .detail("the model lists no data source");
        return p.add(key, row);
    }
    for source in &sources {
        let row = gateway_source(p, source).await;
        p.add(key, row);
    }
}

/// The status of one gateway data source, read once per run.
async fn gateway_source(p: &Preflight<'_>, source: &DataSource) -> Row {
    let (Some(gateway), Some(id)) = (&source.gateway_id, &source.datasource_id) else {
        return Row::new("dataSource", source.describe(), Verdict::Warn)
            .detail("not bound to a gateway data source: its credentials cannot be checked");
    };
    let cache_key = format!("{gateway}/{id}").to_ascii_lowercase();
    if let Some(row) = p.gateways.borrow().get(&cache_key) {
        return row.clone();
    }
    let subject = format!(
        "{} (gateway {gateway}, data source {id})",
        source.describe()
    );
    let action = format!("read the status of data source {id} on gateway {gateway}");
    let path = format!("/gateways/{gateway}/datasources/{id}/status");
    let answer = calls::get(
        p.ctx,
        p.profile,
        "gateway.datasource.status",
        &action,
        &path,
    )
    .await;
    let row = match &answer {
        Answer::Ok(_) => Row::new("dataSource", subject, Verdict::Pass)
            .detail("the gateway reaches the data source with its stored credentials"),
        Answer::Error(s) if s.code.is_some() => {
            let code = s.code.clone().unwrap_or_default();
            let credentials = code.to_ascii_lowercase().contains("credential");
            let (what, help, our) = if credentials {
                (
                    "has no valid credentials",
                    "set the data source's credentials in the semantic model's settings (or the gateway connection), then rerun",
                    "PreflightDataSourceCredentials",
                )
            } else {
                (
                    "is in error on its gateway",
                    "check that the gateway is online and can reach the data source (Manage connections and gateways), then rerun",
                    "PreflightGatewayDataSourceError",
                )
            };
            let said = s
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            Row::new("dataSource", subject, Verdict::Fail)
                .detail(format!("{} {what} ({code}{said})", source.describe()))
                .help(help)
                .code(our)
        }
        other => Row::new("dataSource", subject, Verdict::Warn).detail(inconclusive(
            other,
            "reading a gateway data source's status needs gateway admin rights",
        )),
    };
    p.gateways.borrow_mut().insert(cache_key, row.clone());
    row
}

async fn daily_budget(p: &Preflight<'_>, key: &str, info: &ItemInfo) {
    let subject = format!("semantic model {} ({})", info.name, info.id);
    if !info.shared {
        let row = Row::new("dailyBudget", subject, Verdict::Skip)
            .detail("dedicated capacity: no daily refresh limit for API refreshes");
        return p.add(key, row);
    }
    let history = p
        .ctx
        .powerbi(p.profile)
        .refresh_history(&info.workspace_id, &info.id, 60)
        .await;
    let history = match history {
        Ok(h) => h,
        Err(e) => {
            let row = Row::new("dailyBudget", subject, Verdict::Warn).detail(format!(
                "the refresh history could not be read: {}",
                crate::redact::scrub(&e.to_string())
            ));
            return p.add(key, row);
        }
    };
    let now = Timestamp::now();
    let day = SignedDuration::from_hours(24);
    let since = now.checked_sub(day).unwrap_or(now);
    // Counted: scheduled and API refreshes; a manual "Refresh now" (OnDemand) is not.
    let mut counted: Vec<Timestamp> = history
        .iter()
        .filter(|r| {
            !matches!(
                r.refresh_type.as_deref(),
                Some("OnDemand" | "OnDemandTraining")
            )
        })
        .filter_map(|r| r.start_time.as_deref().and_then(parse_time))
        .filter(|t| *t >= since)
        .collect();
    counted.sort_by(|a, b| b.cmp(a));
    let row = if counted.len() < SHARED_DAILY_REFRESHES {
        Row::new("dailyBudget", subject, Verdict::Pass).detail(format!(
            "{} of {SHARED_DAILY_REFRESHES} refreshes used in the last 24 hours",
            counted.len()
        ))
    } else {
        let oldest = counted[SHARED_DAILY_REFRESHES - 1];
        let next = oldest.checked_add(day).unwrap_or(oldest);
        let mut row = Row::new("dailyBudget", subject, Verdict::Fail)
            .detail(format!(
                "{} refreshes in the last 24 hours: shared capacity allows {SHARED_DAILY_REFRESHES} a day (scheduled and API together); the next can run at {next}",
                counted.len()
            ))
            .help(format!(
                "wait until {next}, move the workspace to a Premium or Fabric capacity, or remove a scheduled refresh"
            ))
            .code("PreflightDailyLimitReached");
        row.next_run_at = Some(next.to_string());
        row
    };
    p.add(key, row);
}

async fn principal(p: &Preflight<'_>, key: &str, info: &ItemInfo) {
    let subject = format!(
        "Dataflow Gen2 {} ({}) as profile {}",
        info.name, info.id, p.profile.name
    );
    let Some(store) = p.ctx.store else {
        let row = Row::new("principal", subject, Verdict::Skip)
            .detail("no operation log to look for an earlier refusal in");
        return p.add(key, row);
    };
    let filter = HistoryFilter {
        operation: Some("dataflow.refresh".into()),
        profile: Some(p.profile.name.clone()),
        target: Some(info.id.clone()),
        since: Timestamp::now()
            .checked_sub(SignedDuration::from_hours(24 * 30))
            .ok(),
        limit: Some(20),
        ..HistoryFilter::default()
    };
    let rows = match store.operations(&filter).await {
        Ok(r) => r,
        Err(e) => {
            let row = Row::new("principal", subject, Verdict::Warn)
                .detail(format!("the operation log could not be read: {e}"));
            return p.add(key, row);
        }
    };
    let last = rows.iter().find(|r| r.ended_at.is_some());
    let row = match last {
        Some(r) if r.error_code.as_deref() == Some("PrincipalTypeNotSupported") => {
            Row::new("principal", subject, Verdict::Fail)
                .detail(format!(
                    "the service refused this profile's last refresh of it ({}, operation {}): PrincipalTypeNotSupported; Microsoft documents the dataflow Execute API as not supporting service principals",
                    r.started_at, r.id
                ))
                .help("Fabric refuses service principals for this dataflow's refresh job: run pbiops with a profile the service accepts, or refresh the dataflow from a Fabric data pipeline; set preflight: false to try again anyway")
                .code("PreflightPrincipalNotSupported")
        }
        _ => Row::new("principal", subject, Verdict::Pass)
            .detail("no refusal of this profile recorded for it"),
    };
    p.add(key, row);
}
