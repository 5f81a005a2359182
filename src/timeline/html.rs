//! The page: a header with the totals, the chart (inline SVG), a legend, and the table of errors.
//! Everything inline; a Content-Security-Policy forbids any fetch, so the page shows the same
//! offline, in a mail attachment or in Kestra's file preview.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};

use super::{Bar, Totals};

const WIDTH: f64 = 1280.0;
const LABEL: f64 = 230.0;
const RIGHT: f64 = 24.0;
const ROW: f64 = 22.0;
const BAR: f64 = 14.0;
const AXIS: f64 = 30.0;
const GROUP: f64 = 24.0;

/// The colour of a status.
fn colour(status: &str) -> &'static str {
    match status {
        "Completed" => "#2e7d32",
        "Failed" => "#c62828",
        "Cancelled" => "#ef6c00",
        "TimedOut" => "#6a1b9a",
        "Running" => "#1565c0",
        "Triggered" => "#00838f",
        "Skipped" => "#9e9e9e",
        "Disabled" => "#757575",
        "Interrupted" | "Abandoned" => "#6d4c41",
        _ => "#546e7a",
    }
}

/// Escapes text for HTML and SVG content and attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `1h 02m`, `4m 05s`, `12.3s`.
pub(crate) fn human(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let whole = s.round() as u64;
    let (h, m, sec) = (whole / 3600, (whole % 3600) / 60, whole % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {sec:02}s")
    }
}

fn time(t: Timestamp) -> String {
    t.strftime("%H:%M").to_string()
}

/// One drawn row: its lane (and sub-row), and the bars on it.
struct Lane<'a> {
    capacity: Option<&'a str>,
    name: &'a str,
    bars: Vec<&'a Bar>,
}

/// Packs each workspace's bars into rows where no two overlap, grouped by capacity.
fn lanes(bars: &[Bar], end: Timestamp) -> Vec<Lane<'_>> {
    let mut by_lane: BTreeMap<(Option<&str>, &str), Vec<&Bar>> = BTreeMap::new();
    for bar in bars {
        by_lane
            .entry((bar.capacity.as_deref(), bar.lane.as_str()))
            .or_default()
            .push(bar);
    }
    let mut out = Vec::new();
    for ((capacity, name), mut list) in by_lane {
        list.sort_by_key(|b| (b.start, b.id));
        let mut rows: Vec<Lane<'_>> = Vec::new();
        for bar in list {
            let free = rows.iter_mut().find(|r| {
                r.bars
                    .last()
                    .is_none_or(|last| last.drawn_end(end) <= bar.start)
            });
            match free {
                Some(row) => row.bars.push(bar),
                None => rows.push(Lane {
                    capacity,
                    name,
                    bars: vec![bar],
                }),
            }
        }
        out.extend(rows);
    }
    out
}

/// A tick step that gives at most about twelve ticks over `span` seconds.
fn tick_step(span: f64) -> i64 {
    const STEPS: [i64; 12] = [
        60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| span / (*s as f64) <= 12.0)
        .unwrap_or(604800)
}

/// The whole page for `bars` over the window `[start, end]`.
pub(crate) fn render(
    title: &str,
    bars: &[Bar],
    start: Timestamp,
    end: Timestamp,
    totals: &Totals,
) -> String {
    let first = bars.iter().map(|b| b.start).min().unwrap_or(start);
    let last = bars.iter().map(|b| b.drawn_end(end)).max().unwrap_or(end);
    let (t0, t1) = (first.min(last), last.max(first));
    let span = ((t1.as_millisecond() - t0.as_millisecond()) as f64 / 1000.0).max(60.0);
    let plot = WIDTH - LABEL - RIGHT;
    let x = |t: Timestamp| {
        LABEL + plot * ((t.as_millisecond() - t0.as_millisecond()) as f64 / 1000.0) / span
    };
    let rows = lanes(bars, end);
    let groups = rows
        .windows(2)
        .filter(|w| w[0].capacity != w[1].capacity)
        .count()
        + usize::from(rows.first().is_some_and(|r| r.capacity.is_some()));
    let height = AXIS + rows.len() as f64 * ROW + groups as f64 * GROUP + 12.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}">"#,
        esc(title)
    );
    // Axis and grid.
    let step = tick_step(span);
    let mut tick =
        Timestamp::from_second(t0.as_second() - t0.as_second().rem_euclid(step)).unwrap_or(t0);
    while tick <= t1 {
        if tick >= t0 {
            let tx = x(tick);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{tx:.1}" y1="{AXIS}" x2="{tx:.1}" y2="{height}"/><text class="tick" x="{tx:.1}" y="18">{}</text>"#,
                time(tick)
            );
        }
        tick = tick
            .checked_add(SignedDuration::from_secs(step))
            .unwrap_or(t1);
        if tick == t1 && step == 0 {
            break;
        }
    }
    let mut y = AXIS;
    let mut previous: Option<Option<&str>> = None;
    let mut previous_lane: Option<&str> = None;
    for row in &rows {
        if previous != Some(row.capacity) {
            if let Some(capacity) = row.capacity {
                let _ = write!(
                    svg,
                    r#"<rect class="group" x="0" y="{y}" width="{WIDTH}" height="{GROUP}"/><text class="group-label" x="8" y="{:.1}">capacity {}</text>"#,
                    y + 16.0,
                    esc(capacity)
                );
                y += GROUP;
            }
            previous = Some(row.capacity);
            previous_lane = None;
        }
        if previous_lane != Some(row.name) {
            let _ = write!(
                svg,
                r#"<line class="lane-rule" x1="0" y1="{y}" x2="{WIDTH}" y2="{y}"/><text class="lane" x="16" y="{:.1}">{}</text>"#,
                y + 15.0,
                esc(row.name)
            );
            previous_lane = Some(row.name);
        }
        for bar in &row.bars {
            draw_bar(&mut svg, bar, &x, y, end);
        }
        y += ROW;
    }
    svg.push_str("</svg>");
    page(title, &svg, bars, start, end, totals)
}

fn draw_bar(svg: &mut String, bar: &Bar, x: &dyn Fn(Timestamp) -> f64, y: f64, end: Timestamp) {
    let top = y + (ROW - BAR) / 2.0;
    let x0 = x(bar.start);
    let x1 = x(bar.drawn_end(end)).max(x0 + 2.0);
    let mut tip = format!(
        "{} — {} {}\n{} → {}",
        bar.label,
        bar.operation,
        bar.status,
        bar.start,
        bar.end
            .map_or_else(|| "still running".to_string(), |e| e.to_string())
    );
    if let Some(s) = bar.seconds() {
        let _ = write!(tip, " ({})", human(s));
    }
    if let Some(e) = bar.expected {
        let _ = write!(tip, "\nexpected {}", human(e));
    }
    if bar.attached {
        tip.push_str("\nattached to a refresh it did not start");
    }
    if let (Some(code), message) = (&bar.error_code, &bar.error_message) {
        let _ = write!(tip, "\n{code}: {}", message.as_deref().unwrap_or(""));
    }
    let _ = write!(
        svg,
        r#"<g class="op" data-id="{}" data-status="{}"><title>{}</title>"#,
        bar.id,
        esc(&bar.status),
        esc(&tip)
    );
    if let Some(expected) = bar.expected {
        let gx1 = x(bar
            .start
            .checked_add(SignedDuration::from_secs_f64(expected.max(0.0)))
            .unwrap_or(bar.start));
        let _ = write!(
            svg,
            r#"<rect class="ghost" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/>"#,
            top - 2.0,
            (gx1 - x0).max(1.0),
            BAR + 4.0
        );
    }
    let running = if bar.end.is_none() { " running" } else { "" };
    let overran = if bar.overran { " overran" } else { "" };
    let _ = write!(
        svg,
        r#"<rect class="bar{running}{overran}" x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{BAR}" rx="2" fill="{}"/>"#,
        x1 - x0,
        colour(&bar.status)
    );
    let mid = top + BAR / 2.0;
    if bar.attached {
        let _ = write!(
            svg,
            r#"<circle class="mark attach" cx="{x0:.1}" cy="{mid:.1}" r="5"/>"#
        );
    }
    if bar.status == "Skipped" {
        let _ = write!(
            svg,
            r#"<path class="mark skip" d="M{x0:.1} {:.1} l6 7 l-6 7 l-6 -7 z"/>"#,
            mid - 7.0
        );
    }
    if bar.status == "Cancelled" || bar.cancel_requested {
        let _ = write!(
            svg,
            r#"<path class="mark cancel" d="M{:.1} {:.1} l8 8 m0 -8 l-8 8"/>"#,
            x1 - 4.0,
            mid - 4.0
        );
    }
    if matches!(bar.status.as_str(), "Interrupted" | "Abandoned") {
        let _ = write!(
            svg,
            r#"<path class="mark reattach" d="M{:.1} {:.1} v16 m4 -16 v16"/>"#,
            x1 + 2.0,
            mid - 8.0
        );
    }
    if x1 - x0 > 60.0 {
        let _ = write!(
            svg,
            r#"<text class="bar-label" x="{:.1}" y="{:.1}">{}</text>"#,
            x0 + 4.0,
            mid + 4.0,
            esc(&clip(&bar.label, ((x1 - x0 - 8.0) / 6.5) as usize))
        );
    }
    svg.push_str("</g>");
}

fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let kept: String = text.chars().take(chars.saturating_sub(1)).collect();
    format!("{kept}…")
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#52606d;margin:0 0 16px}
.totals{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 16px;padding:0;list-style:none}
.totals li{border:1px solid #d9e2ec;border-radius:6px;padding:6px 10px}
.totals b{display:block;font-size:16px}
.chart{display:block;border:1px solid #d9e2ec;border-radius:6px;background:#fff}
.grid{stroke:#eef2f6}
.tick{font-size:11px;fill:#616e7c;text-anchor:middle}
.group{fill:#f0f4f8}
.group-label{font-size:12px;font-weight:600;fill:#243b53}
.lane{font-size:12px;fill:#334e68}
.lane-rule{stroke:#e4e7eb}
.ghost{fill:none;stroke:#9aa5b1;stroke-dasharray:3 2}
.bar.running{opacity:.75;stroke:#0d47a1;stroke-dasharray:4 2}
.bar.overran{stroke:#b71c1c;stroke-width:2}
.bar-label{font-size:10px;fill:#fff;pointer-events:none}
.mark{stroke:#102a43;stroke-width:2;fill:#fff}
.mark.cancel,.mark.reattach{fill:none}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:12px 0 20px;color:#3e4c59}
.legend i{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:5px;vertical-align:middle}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e4e7eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f5f7fa}
td.code{font-family:ui-monospace,Menlo,Consolas,monospace}
";

fn page(
    title: &str,
    svg: &str,
    bars: &[Bar],
    start: Timestamp,
    end: Timestamp,
    t: &Totals,
) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>{}</title><style>{STYLE}</style></head><body>\
<h1>{}</h1><p class=\"sub\">{} to {} (UTC) · {} operation(s)</p><ul class=\"totals\">",
        esc(title),
        esc(title),
        start.strftime("%Y-%m-%d %H:%M"),
        end.strftime("%Y-%m-%d %H:%M"),
        t.count
    );
    for (status, n) in &t.by_status {
        let _ = write!(
            html,
            "<li><i style=\"display:inline-block;width:10px;height:10px;border-radius:2px;background:{}\"></i> {}<b>{n}</b></li>",
            colour(status),
            esc(status)
        );
    }
    let _ = write!(html, "<li>makespan<b>{}</b></li>", human(t.makespan));
    if let Some((label, s)) = &t.longest {
        let _ = write!(html, "<li>longest<b>{}</b>{}</li>", human(*s), esc(label));
    }
    let _ = write!(html, "<li>overruns<b>{}</b></li></ul>", t.overruns);
    html.push_str(svg);
    html.push_str("<div class=\"legend\">");
    for status in [
        "Completed",
        "Failed",
        "Cancelled",
        "TimedOut",
        "Running",
        "Triggered",
        "Skipped",
        "Interrupted",
    ] {
        let _ = write!(
            html,
            "<span><i style=\"background:{}\"></i>{status}</span>",
            colour(status)
        );
    }
    html.push_str(
        "<span>◯ attached</span><span>◇ skipped</span><span>✕ cancelled</span>\
<span>‖ interrupted (a retry reattaches)</span><span>┄ expected duration</span>\
<span>red outline: overran</span></div>",
    );
    let errors: Vec<&Bar> = bars.iter().filter(|b| b.error_code.is_some()).collect();
    if errors.is_empty() {
        html.push_str("<p>No errors.</p>");
    } else {
        let _ = write!(
            html,
            "<h2>Errors ({})</h2><table><thead><tr><th>started</th><th>workspace</th><th>item</th>\
<th>status</th><th>code</th><th>message</th><th>request id</th><th>execution</th></tr></thead><tbody>",
            errors.len()
        );
        for b in errors {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"code\">{}</td><td>{}</td><td class=\"code\">{}</td><td class=\"code\">{}</td></tr>",
                b.start.strftime("%H:%M:%S"),
                esc(&b.lane),
                esc(&b.label),
                esc(&b.status),
                esc(b.error_code.as_deref().unwrap_or("")),
                esc(b.error_message.as_deref().unwrap_or("")),
                esc(b.request_id.as_deref().unwrap_or("")),
                esc(b.execution.as_deref().unwrap_or(""))
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</body></html>\n");
    html
}
