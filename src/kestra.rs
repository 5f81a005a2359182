//! Kestra's stdout protocol: `::{"outputs":…}::`, `::{"metrics":[…]}::`, `::{"logs":[…]}::`.
//!
//! Kestra matches each stdout line against `^::(\{.*})::$` and turns every plain *stderr* line
//! into an ERROR log, so in `kestra` format everything, logs included, goes to stdout as marker
//! lines (`reference/kestra.md` §1.8). One object kind per line, because one bad field drops the
//! whole line; U+2028, U+2029 and U+0085 escaped, because Java treats them as line ends; levels
//! uppercase; timers as float seconds; no gauges (Kestra 1.3 drops the line).

use std::fmt::Write as _;

use crate::console::{self, LogWriter, Stream};
use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Where and how logs and outputs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Kestra marker lines on stdout, logs included.
    Kestra,
    /// Human logs on stderr; outputs as `key: value` lines on stdout.
    Text,
    /// JSON log lines on stderr; outputs and metrics as JSON lines on stdout.
    Json,
}

/// Formats one value as a Kestra marker line (without the newline).
pub fn marker_line(value: &Value) -> String {
    // serde_json never emits a raw newline, but it leaves these three line separators as-is.
    let json = value.to_string();
    let json = json
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .replace('\u{0085}', "\\u0085");
    format!("::{json}::")
}

/// A Kestra metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A counter: Kestra sums repeated counters of the same name and tags.
    Counter {
        /// Metric name, e.g. `pbiops.api.calls`.
        name: &'static str,
        /// Its value.
        value: f64,
        /// Flat string tags.
        tags: Vec<(&'static str, String)>,
    },
    /// A timer, in seconds.
    Timer {
        /// Metric name, e.g. `pbiops.refresh.duration`.
        name: &'static str,
        /// Seconds, as a float (Kestra reads numbers as seconds).
        seconds: f64,
        /// Flat string tags.
        tags: Vec<(&'static str, String)>,
    },
}

impl Metric {
    fn to_json(&self) -> Value {
        let (name, kind, value, tags) = match self {
            Metric::Counter { name, value, tags } => (name, "counter", *value, tags),
            Metric::Timer {
                name,
                seconds,
                tags,
            } => (name, "timer", *seconds, tags),
        };
        let tags: Map<String, Value> = tags
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
            .collect();
        json!({"name": name, "type": kind, "value": value, "tags": tags})
    }
}

/// Writes outputs and metrics in the chosen format. Logs go through `tracing` (see [`init_logging`]).
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    format: LogFormat,
    quiet: bool,
}

impl Reporter {
    /// A reporter for `format`.
    pub fn new(format: LogFormat) -> Self {
        Reporter {
            format,
            quiet: false,
        }
    }

    /// A reporter that prints no outputs: the sub-operations of a cascade report through their
    /// parent's summary, not by overwriting its keys.
    pub fn quiet(self) -> Self {
        Reporter {
            quiet: true,
            ..self
        }
    }

    /// The format in use.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Emits outputs. Kestra merges later keys over earlier ones, so calling this early with a
    /// partial set (e.g. the request id as soon as it is known) and again at the end is safe.
    pub fn outputs(&self, outputs: &Map<String, Value>) {
        if outputs.is_empty() || self.quiet {
            return;
        }
        let text = match self.format {
            LogFormat::Kestra => marker_line(&json!({ "outputs": outputs })),
            LogFormat::Json => json!({ "outputs": outputs }).to_string(),
            LogFormat::Text => outputs
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        print_line(&text);
    }

    /// Emits metrics, one line for all of them (Kestra and JSON formats only).
    pub fn metrics(&self, metrics: &[Metric]) {
        if metrics.is_empty() {
            return;
        }
        let list: Vec<Value> = metrics.iter().map(Metric::to_json).collect();
        match self.format {
            LogFormat::Kestra => print_line(&marker_line(&json!({ "metrics": list }))),
            LogFormat::Json => print_line(&json!({ "metrics": list }).to_string()),
            LogFormat::Text => {}
        }
    }

    /// Reports a fatal error: a Kestra ERROR log line, or `error:`/`help:` lines on stderr.
    pub fn error(&self, message: &str, help: Option<&str>) {
        match self.format {
            LogFormat::Kestra => {
                let mut text = format!("error: {message}");
                if let Some(help) = help {
                    let _ = write!(text, "\nhelp: {help}");
                }
                print_line(&marker_line(
                    &json!({"logs": [{"level": "ERROR", "message": text}]}),
                ));
            }
            LogFormat::Json => {
                let line = json!({"level": "ERROR", "message": message, "help": help});
                console::line(Stream::Err, &line.to_string());
            }
            LogFormat::Text => {
                console::line(Stream::Err, &format!("error: {message}"));
                if let Some(help) = help {
                    console::line(Stream::Err, &format!("help: {help}"));
                }
            }
        }
    }
}

fn print_line(text: &str) {
    console::line(Stream::Out, text);
}

/// Installs the global `tracing` subscriber for `format` at `level`.
///
/// Only pbiops's own events are shown at `level`; dependencies (hyper, reqwest) only from WARN,
/// since their debug lines can carry URLs and headers.
pub fn init_logging(format: LogFormat, level: tracing::Level) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;

    let filter = Targets::new()
        .with_target("pbiops", level)
        // Every ODBC connect warns that the driver lacks ODBC 3.80 features pbiops never uses.
        .with_target("odbc_api", tracing::Level::ERROR)
        .with_default(tracing::Level::WARN);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Kestra => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(KestraEvents)
                    .with_writer(|| LogWriter::new(Stream::Out)),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_target(false)
                    .with_writer(|| LogWriter::new(Stream::Err)),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(|| LogWriter::new(Stream::Err)),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    drop(result);
}

/// Formats each `tracing` event as one `::{"logs":[…]}::` line.
struct KestraEvents;

impl<S, N> FormatEvent<S, N> for KestraEvents
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARN",
            tracing::Level::INFO => "INFO",
            tracing::Level::DEBUG => "DEBUG",
            tracing::Level::TRACE => "TRACE",
        };
        // A second line of defence: no log line carries a known secret or a signed URL.
        let message = crate::redact::scrub(&visitor.text);
        let line = marker_line(&json!({"logs": [{"level": level, "message": message}]}));
        writeln!(writer, "{line}")
    }
}

/// Collects an event's message and its fields as `message key=value …`.
#[derive(Default)]
struct MessageVisitor {
    text: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.insert_str(0, value);
        } else {
            let _ = write!(self.text, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.text, " {}={:?}", field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines_escape_java_line_separators() {
        let line = marker_line(&json!({"outputs": {"name": "a\u{2028}b\u{2029}c\u{0085}d\ne"}}));
        assert_eq!(
            line,
            r#"::{"outputs":{"name":"a\u2028b\u2029c\u0085d\ne"}}::"#
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn metrics_are_counters_and_float_second_timers_with_string_tags() {
        let c = Metric::Counter {
            name: "pbiops.api.calls",
            value: 3.0,
            tags: vec![("endpoint", "refresh.post".into())],
        };
        let t = Metric::Timer {
            name: "pbiops.wait.time",
            seconds: 1.5,
            tags: vec![],
        };
        assert_eq!(
            c.to_json(),
            json!({"name":"pbiops.api.calls","type":"counter","value":3.0,"tags":{"endpoint":"refresh.post"}})
        );
        assert_eq!(
            t.to_json(),
            json!({"name":"pbiops.wait.time","type":"timer","value":1.5,"tags":{}})
        );
    }
}
