//! Offline lint of the Kestra flows in `kestra/flows/` (no Kestra server can run here).
//!
//! It checks what `shared/reference/kestra.md` §4 recommends, for flows that must parse on
//! Kestra 1.3 LTS and 2.x alike (§3.13): the YAML parses (duplicate keys refused, as Kestra's
//! strict parser does); the top-level keys, ids and namespaces; unique, well-formed task ids;
//! every task `type` against an allow-list of types whose properties were verified, with unknown
//! properties refused; ISO-8601 durations; 5-field crons; retries with their required fields;
//! the forbidden constructs; balanced `{{ }}` / `{% %}`; and the pbiops contract:
//!
//! - every `outputs.<task>.vars.<key>` names a pbiops task of the same flow and a key of
//!   `pbiops schema --outputs` (the real binary), and, where the schema ties a key to
//!   operations, the task's operation (read from its `task.json`);
//! - every `task.json` uses only its operation's fields of `pbiops schema` (operations, fields and
//!   default timeouts are read from the schema), interpolates only through `toJson`, and,
//!   rendered with sample values, validates against the schema (a JSON Schema validator) and is
//!   accepted by the real binary's task validation;
//! - the task goes in as an `inputFiles` entry and is redirected (`exec pbiops < task.json`:
//!   `exec`, so that a kill reaches pbiops rather than the shell), the Kestra ids and the store
//!   come through `env`, secrets only through `secret()`, each documented in `kestra/README.md`'s
//!   secrets table for the flows that use it, and the Kestra `timeout` outlasts pbiops's own wait.
//!
//! Failures name the file, the task and the problem. The `lint_*` unit tests at the end feed the
//! linter broken flows, so it cannot pass vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

// ---------------------------------------------------------------------------------------------
// The pbiops contract, from the real binary.
// ---------------------------------------------------------------------------------------------

/// What `pbiops schema` and `pbiops schema --outputs` say.
struct Contract {
    /// Every operation, from the task schema's `Operation` enum.
    operations: BTreeSet<String>,
    /// The task schema (`oneOf` one sub-schema per operation, and `$defs`).
    task_schema: Value,
    /// Operation → its sub-schema (its own fields, with their defaults).
    per_operation: BTreeMap<String, Value>,
    /// The task schema, compiled by a JSON Schema validator.
    validator: jsonschema::Validator,
    /// Output key → the operations it is limited to (`None`: any operation).
    outputs: BTreeMap<String, Option<BTreeSet<String>>>,
}

fn pbiops() -> &'static str {
    env!("CARGO_BIN_EXE_pbiops")
}

fn schema(args: &[&str]) -> Value {
    let out = Command::new(pbiops())
        .args(args)
        .output()
        .expect("run pbiops schema");
    assert!(out.status.success(), "pbiops {args:?} failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("pbiops schema prints JSON")
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let task_schema = schema(&["schema"]);
        let operations: BTreeSet<String> = task_schema["$defs"]["Operation"]["enum"]
            .as_array()
            .expect("the task schema's `Operation` is an enum")
            .iter()
            .filter_map(|o| o.as_str().map(str::to_string))
            .collect();
        let per_operation: BTreeMap<String, Value> = task_schema["oneOf"]
            .as_array()
            .expect("the task schema has one sub-schema per operation")
            .iter()
            .filter_map(|sub| {
                let op = sub["properties"]["operation"]["const"].as_str()?;
                Some((op.to_string(), sub.clone()))
            })
            .collect();
        assert_eq!(
            per_operation.keys().cloned().collect::<BTreeSet<_>>(),
            operations,
            "one sub-schema per operation"
        );
        let outputs_schema = schema(&["schema", "--outputs"]);
        let properties = outputs_schema["properties"]
            .as_object()
            .expect("the outputs schema has properties");
        let outputs = properties
            .iter()
            .map(|(key, prop)| {
                let limited = prop["description"]
                    .as_str()
                    .and_then(|d| operations_named(d, &operations));
                (key.clone(), limited)
            })
            .collect();
        let validator =
            jsonschema::validator_for(&task_schema).expect("pbiops schema is a valid JSON Schema");
        Contract {
            operations,
            task_schema,
            per_operation,
            validator,
            outputs,
        }
    })
}

impl Contract {
    /// The first error of `task` against its own operation's sub-schema (the `oneOf` says only
    /// that no sub-schema matched).
    fn why_invalid(&self, task: &Value) -> String {
        let Some(sub) = task["operation"]
            .as_str()
            .and_then(|op| self.per_operation.get(op))
        else {
            return "`operation` is not one of the schema's".into();
        };
        let mut schema = sub.clone();
        schema["$defs"] = self.task_schema["$defs"].clone();
        let validator = jsonschema::validator_for(&schema).expect("a sub-schema compiles");
        validator
            .iter_errors(task)
            .next()
            .map_or_else(String::new, |e| format!("{e} at `{}`", e.instance_path()))
    }

    /// How long `operation` waits by default, when it waits: its `timeout` field's default.
    fn default_wait(&self, operation: &str) -> Option<f64> {
        let default =
            self.per_operation.get(operation)?["properties"]["timeout"]["default"].as_str()?;
        Some(iso_duration(default).expect("the schema's default timeout is ISO-8601"))
    }
}

/// The operations an output's description limits it to: a leading "`op` / `op`:" naming only
/// operations (e.g. "`dataset.status`: seconds since…"); a description that gives the key a
/// meaning per operation ("`history`: rows found; `dataset.refresh` with `targets`: models
/// refreshed") names the operations of every such clause. Anything else limits nothing.
fn operations_named(description: &str, operations: &BTreeSet<String>) -> Option<BTreeSet<String>> {
    let mut named = BTreeSet::new();
    for (i, clause) in description.split(';').enumerate() {
        let clause = clause.trim_start();
        let Some((head, _)) = clause.split_once(':') else {
            continue;
        };
        // The backticked words of the head: `a` / `b` with `c` → a, b, c.
        let quoted: Vec<&str> = head.split('`').skip(1).step_by(2).collect();
        if !head.starts_with('`') || !quoted.first().is_some_and(|q| operations.contains(*q)) {
            if i == 0 {
                return None;
            }
            continue;
        }
        named.extend(
            quoted
                .into_iter()
                .filter(|q| operations.contains(*q))
                .map(str::to_string),
        );
    }
    (!named.is_empty()).then_some(named)
}

// ---------------------------------------------------------------------------------------------
// What Kestra accepts (verified: see kestra/README.md "Kestra facts the lint relies on").
// ---------------------------------------------------------------------------------------------

const TOP_LEVEL_KEYS: &[&str] = &[
    "id",
    "namespace",
    "description",
    "labels",
    "inputs",
    "outputs",
    "variables",
    "tasks",
    "errors",
    "finally",
    "afterExecution",
    "triggers",
    "concurrency",
    "retry",
    "sla",
    "checks",
    "disabled",
    "revision",
];

/// Keys that exist in one of the two versions only, or are deprecated: refused with a reason.
const FORBIDDEN_KEYS: &[(&str, &str)] = &[
    (
        "pluginDefaults",
        "pluginDefaults is removed (or EE-only) in Kestra 2.0; write the properties out",
    ),
    (
        "taskDefaults",
        "taskDefaults is deprecated; write the properties out",
    ),
    (
        "listeners",
        "listeners is deprecated; use errors or afterExecution",
    ),
    (
        "workerGroup",
        "workerGroup is EE-only and becomes workerSelector in 2.0",
    ),
    (
        "workerSelector",
        "workerSelector is EE-only and does not exist in 1.3",
    ),
    ("conditions", "trigger conditions are removed in Kestra 2.0"),
    (
        "preconditions",
        "Flow trigger preconditions are removed in Kestra 2.0",
    ),
    (
        "scheduleConditions",
        "scheduleConditions is removed in Kestra 2.0",
    ),
    ("when", "trigger `when` does not exist in Kestra 1.3"),
    (
        "runner",
        "the script `runner` property is deprecated since 0.18; use taskRunner",
    ),
    (
        "docker",
        "the script `docker` property is deprecated since 0.18; use taskRunner",
    ),
    (
        "outputDirectory",
        "outputDirectory is deprecated; use outputFiles",
    ),
    (
        "warningOnStdErr",
        "warningOnStdErr is deprecated and ignored since 0.23",
    ),
    (
        "maxAttempt",
        "retry maxAttempt was renamed maxAttempts in 0.24",
    ),
];

/// Task types that exist in one of the two versions only.
const FORBIDDEN_TYPES: &[(&str, &str)] = &[
    (
        "io.kestra.core.",
        "io.kestra.core.* aliases are removed in Kestra 2.0; use io.kestra.plugin.core.*",
    ),
    (
        "io.kestra.plugin.core.flow.ForEachItem",
        "ForEachItem is removed in Kestra 2.0",
    ),
    (
        "io.kestra.plugin.core.flow.ForEach",
        "ForEach is removed in Kestra 2.0",
    ),
    (
        "io.kestra.plugin.core.flow.EachSequential",
        "EachSequential is removed in Kestra 2.0",
    ),
    (
        "io.kestra.plugin.core.flow.EachParallel",
        "EachParallel is removed in Kestra 2.0",
    ),
    (
        "io.kestra.plugin.core.flow.Template",
        "Template is removed in Kestra 2.0",
    ),
    (
        "io.kestra.plugin.core.flow.Loop",
        "Loop does not exist in Kestra 1.3",
    ),
    (
        "io.kestra.plugin.core.trigger.Flow",
        "the Flow trigger's syntax differs between 1.3 and 2.0; call a Subflow instead",
    ),
];

/// Properties every runnable task has (K-1.3 `Task`).
const TASK_COMMON: &[&str] = &[
    "id",
    "type",
    "version",
    "description",
    "retry",
    "timeout",
    "disabled",
    "logLevel",
    "allowFailure",
    "logToFile",
    "runIf",
    "allowWarning",
    "taskCache",
];

fn forbidden_type(ty: &str, pattern: &str) -> bool {
    ty == pattern || (pattern.ends_with('.') && ty.starts_with(pattern))
}

const COMMANDS: &str = "io.kestra.plugin.scripts.shell.Commands";
const DOCKER: &str = "io.kestra.plugin.scripts.runner.docker.Docker";
const SUBFLOW: &str = "io.kestra.plugin.core.flow.Subflow";
const PARALLEL: &str = "io.kestra.plugin.core.flow.Parallel";
const TEAMS: &str = "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook";
const SLACK: &str = "io.kestra.plugin.notifications.slack.SlackIncomingWebhook";
const LOG: &str = "io.kestra.plugin.core.log.Log";
const SCHEDULE: &str = "io.kestra.plugin.core.trigger.Schedule";

/// The verified task types: (type, own properties besides [`TASK_COMMON`], required ones).
const TASK_TYPES: &[(&str, &[&str], &[&str])] = &[
    (
        COMMANDS,
        &[
            "containerImage",
            "commands",
            "interpreter",
            "beforeCommands",
            "env",
            "failFast",
            "namespaceFiles",
            "inputFiles",
            "outputFiles",
            "targetOS",
            "taskRunner",
        ],
        &["commands", "containerImage", "taskRunner"],
    ),
    (
        SUBFLOW,
        &[
            "namespace",
            "flowId",
            "inputs",
            "wait",
            "transmitFailed",
            "labels",
            "inheritLabels",
            "revision",
            "scheduleDate",
            "restartBehavior",
        ],
        &["namespace", "flowId"],
    ),
    // K-1.3 `Parallel`; `failFast` exists only in later versions.
    (
        PARALLEL,
        &["tasks", "concurrent", "errors", "finally"],
        &["tasks"],
    ),
    (TEAMS, &["url", "payload"], &["url", "payload"]),
    (SLACK, &["url", "payload"], &["url", "payload"]),
    (LOG, &["message"], &["message"]),
];

/// The Docker task runner's properties (K-1.3 `Docker`).
const DOCKER_PROPERTIES: &[&str] = &[
    "type",
    "host",
    "config",
    "credentials",
    "user",
    "entryPoint",
    "extraHosts",
    "networkMode",
    "portBindings",
    "volumes",
    "pullPolicy",
    "deviceRequests",
    "cpu",
    "memory",
    "shmSize",
    "privileged",
    "fileHandlingStrategy",
    "delete",
    "wait",
    "killGracePeriod",
    "resume",
];

/// The Schedule trigger's properties in both versions (K-1.3 minus `conditions`).
const SCHEDULE_PROPERTIES: &[&str] = &[
    "id",
    "type",
    "description",
    "cron",
    "withSeconds",
    "timezone",
    "inputs",
    "lateMaximumDelay",
    "recoverMissedSchedules",
    "stopAfter",
    "disabled",
    "labels",
    "logLevel",
    "allowConcurrent",
    "failOnTriggerError",
];

const INPUT_TYPES: &[&str] = &[
    "STRING",
    "SELECT",
    "INT",
    "FLOAT",
    "BOOL",
    "DATETIME",
    "DATE",
    "TIME",
    "DURATION",
    "FILE",
    "JSON",
    "URI",
    "SECRET",
    "ARRAY",
    "MULTISELECT",
    "YAML",
    "EMAIL",
];
const INPUT_COMMON: &[&str] = &[
    "id",
    "type",
    "description",
    "displayName",
    "required",
    "defaults",
    "dependsOn",
];

/// Reserved flow ids since Kestra 1.0.
const RESERVED_FLOW_IDS: &[&str] = &[
    "text",
    "pause",
    "resume",
    "force-run",
    "change-status",
    "kill",
    "executions",
    "search",
    "source",
    "disable",
    "enable",
];

/// Environment variables that carry a secret: their value must be exactly one `secret()`.
fn is_sensitive_env(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "CERTIFICATE", "TOKEN_KEY", "ODBC"]
        .iter()
        .any(|s| n.contains(s))
        || (n.starts_with("PBIOPS_FLOW_") && n.ends_with("_URL"))
}

/// The ids pbiops records with each operation, and how they must be passed.
const KESTRA_ENV: &[(&str, &str)] = &[
    ("KESTRA_EXECUTION_ID", "{{ execution.id }}"),
    ("KESTRA_TASKRUN_ID", "{{ taskrun.id }}"),
    ("KESTRA_FLOW_ID", "{{ flow.id }}"),
    ("KESTRA_NAMESPACE", "{{ flow.namespace }}"),
];

// ---------------------------------------------------------------------------------------------
// Small parsers: identifiers, ISO-8601 durations, cron, Pebble.
// ---------------------------------------------------------------------------------------------

fn matches_id(s: &str, first: fn(char) -> bool, rest: fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(first) && chars.all(rest)
}

fn is_flow_id(s: &str) -> bool {
    s.len() <= 100
        && matches_id(
            s,
            |c| c.is_ascii_alphanumeric(),
            |c| c.is_ascii_alphanumeric() || "._-".contains(c),
        )
}

fn is_namespace(s: &str) -> bool {
    s.len() <= 150
        && matches_id(
            s,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c),
        )
}

fn is_task_id(s: &str) -> bool {
    matches_id(
        s,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || "_-".contains(c),
    )
}

fn is_input_id(s: &str) -> bool {
    matches_id(
        s,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || "._-".contains(c),
    )
}

/// A `java.time.Duration` string (`PnDTnHnMn.nS`), in seconds.
fn iso_duration(s: &str) -> Option<f64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return None;
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut last_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let idx = units.iter().position(|(u, _)| *u == c)?;
            // Units in order, each at most once.
            if idx < last_unit || number.is_empty() {
                return None;
            }
            if number.contains('.') && c != 'S' {
                return None;
            }
            total += number.parse::<f64>().ok()? * units[idx].1;
            number.clear();
            last_unit = idx + 1;
            any = true;
        }
        number.is_empty().then_some(())
    };
    take(date, &[('D', 86400.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    any.then_some(total)
}

fn cron_value(field: &str, lo: u32, hi: u32, names: &[&str]) -> bool {
    let value = |v: &str| -> Option<u32> {
        if let Ok(n) = v.parse::<u32>() {
            return (lo..=hi).contains(&n).then_some(n);
        }
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(v))
            .map(|i| i as u32 + lo)
    };
    field.split(',').all(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            if !step.parse::<u32>().is_ok_and(|s| s >= 1 && s <= hi) {
                return false;
            }
        }
        match range {
            "*" => true,
            r => match r.split_once('-') {
                Some((a, b)) => matches!((value(a), value(b)), (Some(a), Some(b)) if a <= b),
                None => value(r).is_some(),
            },
        }
    })
}

/// A 5-field cron (minute hour day-of-month month day-of-week), or a nickname.
fn cron_problem(cron: &str) -> Option<String> {
    const NICKNAMES: &[&str] = &[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    if cron.starts_with('@') {
        return (!NICKNAMES.contains(&cron)).then(|| format!("unknown cron nickname `{cron}`"));
    }
    let fields: Vec<&str> = cron.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "cron `{cron}` has {} fields; Kestra's Schedule takes 5 (minute hour day month weekday)",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let specs: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        ("month", 1, 12, MONTHS),
        ("day of week", 0, 7, DAYS),
    ];
    fields
        .iter()
        .zip(specs)
        .find(|(f, (_, lo, hi, names))| !cron_value(f, *lo, *hi, names))
        .map(|(f, (name, ..))| format!("cron `{cron}`: invalid {name} field `{f}`"))
}

/// A Pebble tag or expression found in a string.
#[derive(Debug)]
struct Pebble {
    /// `{{` (expression), `{%` (tag) or `{#` (comment).
    open: &'static str,
    /// The text between the delimiters.
    body: String,
}

/// The Pebble delimiters of a string, or why they do not balance.
fn pebble(s: &str) -> Result<Vec<Pebble>, String> {
    const PAIRS: &[(&str, &str)] = &[("{{", "}}"), ("{%", "%}"), ("{#", "#}")];
    let mut found = Vec::new();
    let mut rest = s;
    loop {
        let next = PAIRS
            .iter()
            .filter_map(|(o, c)| rest.find(o).map(|i| (i, *o, *c)))
            .min_by_key(|(i, ..)| *i);
        let Some((start, open, close)) = next else {
            break;
        };
        let after = &rest[start + 2..];
        let Some(end) = after.find(close) else {
            return Err(format!("`{open}` without its `{close}`"));
        };
        let body = &after[..end];
        if let Some((o, _)) = PAIRS.iter().find(|(o, _)| body.contains(o)) {
            return Err(format!("`{o}` inside `{open} … {close}`"));
        }
        if open == "{{" || open == "{%" {
            expression_balanced(body).map_err(|e| format!("`{open}{body}{close}`: {e}"))?;
        }
        found.push(Pebble {
            open,
            body: body.to_string(),
        });
        rest = &after[end + 2..];
    }
    Ok(found)
}

/// Parentheses, brackets and quotes of one Pebble expression balance.
fn expression_balanced(body: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in body.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' => stack.push(c),
            ')' | ']' => {
                let want = if c == ')' { '(' } else { '[' };
                if stack.pop() != Some(want) {
                    return Err(format!("unbalanced `{c}`"));
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("unterminated string".into());
    }
    if let Some(c) = stack.pop() {
        return Err(format!("unclosed `{c}`"));
    }
    Ok(())
}

/// The identifiers of a Pebble expression outside its string literals.
fn identifiers(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in body.chars().chain(std::iter::once(' ')) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        }
    }
    out
}

/// A reference `root.a.b…` in an expression, with the path after `root.`.
/// `outputs.task.outputFiles['x']` yields `["task", "outputFiles", "x"]`.
fn references(body: &str, root: &str) -> Vec<Vec<String>> {
    let bytes = body.as_bytes();
    let mut found = Vec::new();
    let needle = format!("{root}.");
    let mut from = 0;
    while let Some(pos) = body[from..].find(&needle) {
        let start = from + pos;
        from = start + needle.len();
        let before = start.checked_sub(1).map(|i| bytes[i] as char);
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        if in_string_literal(&body[..start]) {
            continue;
        }
        let mut path = Vec::new();
        let mut i = from;
        loop {
            let seg: String = body[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if seg.is_empty() {
                break;
            }
            i += seg.len();
            path.push(seg);
            if body[i..].starts_with('.') {
                i += 1;
                continue;
            }
            if let Some(rest) = body[i..].strip_prefix('[') {
                let q = rest.chars().next();
                if let Some(q @ ('\'' | '"')) = q {
                    if let Some(end) = rest[1..].find(q) {
                        path.push(rest[1..1 + end].to_string());
                    }
                }
            }
            break;
        }
        found.push(path);
    }
    found
}

fn in_string_literal(prefix: &str) -> bool {
    let mut quote: Option<char> = None;
    for c in prefix.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {}
        }
    }
    quote.is_some()
}

/// The names passed to `secret('…')` in an expression.
fn secret_names(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = body;
    while let Some(pos) = rest.find("secret(") {
        let before = rest[..pos].chars().last();
        rest = &rest[pos + "secret(".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let trimmed = rest.trim_start();
        let Some(q @ ('\'' | '"')) = trimmed.chars().next() else {
            names.push(String::new());
            continue;
        };
        match trimmed[1..].find(q) {
            Some(end) => names.push(trimmed[1..1 + end].to_string()),
            None => names.push(String::new()),
        }
    }
    names
}

/// Replaces each `{{ … }}` with `with(body)` and drops every `{% … %}` / `{# … #}`, keeping the
/// text between tags (so both branches of an `{% if %}` stay in).
fn substitute(s: &str, mut with: impl FnMut(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = ["{{", "{%", "{#"].iter().filter_map(|o| rest.find(o)).min() {
        out.push_str(&rest[..start]);
        let open = &rest[start..start + 2];
        let close = match open {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        let after = &rest[start + 2..];
        let Some(end) = after.find(close) else {
            out.push_str(&rest[start..]);
            return out;
        };
        if open == "{{" {
            out.push_str(&with(&after[..end]));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The expression applies `toJson` last (`… | toJson`), so it renders as one JSON value.
fn ends_with_to_json(body: &str) -> bool {
    body.trim()
        .rsplit_once('|')
        .is_some_and(|(_, last)| last.trim() == "toJson")
}

// ---------------------------------------------------------------------------------------------
// The secrets table of kestra/README.md.
// ---------------------------------------------------------------------------------------------

/// Secret name → its table row, from the first table under a heading that mentions secrets.
fn documented_secrets(readme: &str) -> BTreeMap<String, String> {
    let mut secrets = BTreeMap::new();
    let mut in_section = false;
    for line in readme.lines() {
        if line.starts_with('#') {
            in_section = line.to_ascii_lowercase().contains("secret");
            continue;
        }
        if !in_section || !line.trim_start().starts_with('|') {
            continue;
        }
        let first = line
            .trim()
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap_or("")
            .trim();
        if let Some(name) = first.strip_prefix('`').and_then(|n| n.strip_suffix('`')) {
            secrets.insert(name.to_string(), line.to_string());
        }
    }
    secrets
}

// ---------------------------------------------------------------------------------------------
// The linter.
// ---------------------------------------------------------------------------------------------

/// One flow file to lint.
struct Source {
    /// Shown in messages, e.g. `kestra/flows/daily-refresh.yml`.
    name: String,
    /// The expected flow id (the file stem), if the file is a flow file.
    expected_id: Option<String>,
    text: String,
}

/// What other flows need to know about a flow (for Subflow calls).
#[derive(Debug, Default, Clone)]
struct FlowInfo {
    inputs: BTreeMap<String, bool>, // id → needs a value (required without defaults)
    outputs: BTreeSet<String>,
}

/// What the cross-reference checks need to know about a task.
#[derive(Debug, Default)]
struct TaskInfo {
    kind: &'static str,
    /// pbiops's operation, when the task runs pbiops and its task.json names one.
    operation: Option<String>,
    runs_pbiops: bool,
    output_files: BTreeSet<String>,
    /// The called flow, for a Subflow.
    calls: Option<(String, String)>,
}

struct Lint<'a> {
    file: String,
    problems: Vec<String>,
    contract: &'a Contract,
    secrets: &'a BTreeMap<String, String>,
    flows: &'a BTreeMap<(String, String), FlowInfo>,
    flow_id: String,
    inputs: BTreeMap<String, Yaml>,
    variables: BTreeMap<String, Yaml>,
    tasks: BTreeMap<String, TaskInfo>,
    ids: BTreeSet<String>,
}

fn key_str(k: &Yaml) -> String {
    match k {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn get<'y>(h: &'y yaml_rust2::yaml::Hash, key: &str) -> Option<&'y Yaml> {
    h.get(&Yaml::String(key.to_string()))
}

fn get_str<'y>(h: &'y yaml_rust2::yaml::Hash, key: &str) -> Option<&'y str> {
    get(h, key).and_then(Yaml::as_str)
}

/// Every string scalar of a YAML tree, with its path.
fn strings<'y>(y: &'y Yaml, path: String, out: &mut Vec<(String, &'y str)>) {
    match y {
        Yaml::String(s) => out.push((path, s)),
        Yaml::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, format!("{path}[{i}]"), out);
            }
        }
        Yaml::Hash(h) => {
            for (k, v) in h {
                strings(v, format!("{path}.{}", key_str(k)), out);
            }
        }
        _ => {}
    }
}

fn has_alias(y: &Yaml) -> bool {
    match y {
        Yaml::Alias(_) => true,
        Yaml::Array(items) => items.iter().any(has_alias),
        Yaml::Hash(h) => h.iter().any(|(k, v)| has_alias(k) || has_alias(v)),
        _ => false,
    }
}

/// Parses a flow into one YAML mapping.
fn parse(text: &str) -> Result<Yaml, String> {
    let docs =
        YamlLoader::load_from_str(text).map_err(|e| format!("does not parse as YAML: {e}"))?;
    match docs.as_slice() {
        [doc @ Yaml::Hash(_)] => Ok(doc.clone()),
        [_] => Err("is not a YAML mapping".into()),
        docs => Err(format!(
            "holds {} YAML documents; a flow file holds one",
            docs.len()
        )),
    }
}

/// Collects the facts other flows need (inputs, outputs) from every parseable flow.
fn flow_infos(sources: &[Source]) -> BTreeMap<(String, String), FlowInfo> {
    let mut infos = BTreeMap::new();
    for source in sources {
        let Ok(Yaml::Hash(top)) = parse(&source.text) else {
            continue;
        };
        let (Some(ns), Some(id)) = (get_str(&top, "namespace"), get_str(&top, "id")) else {
            continue;
        };
        let mut info = FlowInfo::default();
        for input in get(&top, "inputs")
            .and_then(Yaml::as_vec)
            .into_iter()
            .flatten()
        {
            if let Some(h) = input.as_hash() {
                if let Some(iid) = get_str(h, "id") {
                    let required = get(h, "required").and_then(Yaml::as_bool).unwrap_or(true);
                    info.inputs
                        .insert(iid.to_string(), required && get(h, "defaults").is_none());
                }
            }
        }
        for output in get(&top, "outputs")
            .and_then(Yaml::as_vec)
            .into_iter()
            .flatten()
        {
            if let Some(oid) = output.as_hash().and_then(|h| get_str(h, "id")) {
                info.outputs.insert(oid.to_string());
            }
        }
        infos.insert((ns.to_string(), id.to_string()), info);
    }
    infos
}

/// Lints every source; returns one line per problem.
fn lint_sources(sources: &[Source], secrets: &BTreeMap<String, String>) -> Vec<String> {
    let flows = flow_infos(sources);
    let mut problems = Vec::new();
    for source in sources {
        let mut lint = Lint {
            file: source.name.clone(),
            problems: Vec::new(),
            contract: contract(),
            secrets,
            flows: &flows,
            flow_id: String::new(),
            inputs: BTreeMap::new(),
            variables: BTreeMap::new(),
            tasks: BTreeMap::new(),
            ids: BTreeSet::new(),
        };
        lint.flow(source);
        problems.extend(lint.problems);
    }
    problems
}

impl Lint<'_> {
    fn problem(&mut self, task: Option<&str>, msg: impl std::fmt::Display) {
        let line = match task {
            Some(t) => format!("{}: task `{t}`: {msg}", self.file),
            None => format!("{}: {msg}", self.file),
        };
        self.problems.push(line);
    }

    /// Refuses keys outside `allowed`, with a reason for the known-bad ones.
    fn keys(
        &mut self,
        task: Option<&str>,
        what: &str,
        h: &yaml_rust2::yaml::Hash,
        allowed: &[&str],
    ) {
        for k in h.keys() {
            let k = key_str(k);
            if let Some((_, why)) = FORBIDDEN_KEYS.iter().find(|(f, _)| *f == k) {
                self.problem(task, format!("{what}: `{k}` is not allowed: {why}"));
            } else if !allowed.contains(&k.as_str()) {
                self.problem(
                    task,
                    format!(
                        "{what}: unknown property `{k}` (Kestra's parser is strict; allowed: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn duration(&mut self, task: Option<&str>, what: &str, y: Option<&Yaml>) -> Option<f64> {
        let y = y?;
        match y.as_str().and_then(iso_duration) {
            Some(secs) => Some(secs),
            None => {
                self.problem(
                    task,
                    format!(
                        "{what}: `{}` is not an ISO-8601 duration (e.g. PT30M)",
                        key_str(y)
                    ),
                );
                None
            }
        }
    }

    fn flow(&mut self, source: &Source) {
        let top = match parse(&source.text) {
            Ok(Yaml::Hash(h)) => h,
            Ok(_) => return,
            Err(e) => return self.problem(None, e),
        };
        let root = Yaml::Hash(top.clone());
        if has_alias(&root) {
            self.problem(None, "uses a YAML alias (`*name`); whether Kestra resolves them is unverified: write the values out");
        }
        self.keys(None, "flow", &top, TOP_LEVEL_KEYS);
        for required in ["id", "namespace", "tasks"] {
            if get(&top, required).is_none() {
                self.problem(None, format!("missing required top-level key `{required}`"));
            }
        }
        match get_str(&top, "id") {
            Some(id) => {
                self.flow_id = id.to_string();
                if !is_flow_id(id) {
                    self.problem(
                        None,
                        format!("flow id `{id}` must match ^[a-zA-Z0-9][a-zA-Z0-9._-]*$ (≤100)"),
                    );
                }
                if RESERVED_FLOW_IDS.contains(&id) {
                    self.problem(None, format!("flow id `{id}` is reserved since Kestra 1.0"));
                }
                if let Some(expected) = &source.expected_id {
                    if expected != id {
                        self.problem(
                            None,
                            format!("flow id `{id}` differs from the file name `{expected}`"),
                        );
                    }
                }
            }
            None if get(&top, "id").is_some() => self.problem(None, "`id` must be a string"),
            None => {}
        }
        if let Some(ns) = get_str(&top, "namespace") {
            if !is_namespace(ns) {
                self.problem(
                    None,
                    format!("namespace `{ns}` must match ^[a-z0-9][a-z0-9._-]*$ (lowercase, ≤150)"),
                );
            }
        }
        self.flow_inputs(get(&top, "inputs"));
        if let Some(vars) = get(&top, "variables") {
            match vars.as_hash() {
                Some(h) => {
                    for (k, v) in h {
                        self.variables.insert(key_str(k), v.clone());
                    }
                }
                None => self.problem(None, "`variables` must be a mapping"),
            }
        }
        if let Some(c) = get(&top, "concurrency") {
            self.concurrency(c);
        }
        if let Some(r) = get(&top, "retry") {
            self.retry(None, r);
        }
        match get(&top, "tasks").and_then(Yaml::as_vec) {
            Some(list) if !list.is_empty() => self.task_list(list),
            Some(_) => self.problem(None, "`tasks` is empty"),
            None if get(&top, "tasks").is_some() => self.problem(None, "`tasks` must be a list"),
            None => {}
        }
        for branch in ["errors", "finally", "afterExecution"] {
            if let Some(y) = get(&top, branch) {
                match y.as_vec() {
                    Some(list) => self.task_list(list),
                    None => self.problem(None, format!("`{branch}` must be a list of tasks")),
                }
            }
        }
        if let Some(t) = get(&top, "triggers") {
            match t.as_vec() {
                Some(list) => {
                    for trigger in list {
                        self.trigger(trigger);
                    }
                }
                None => self.problem(None, "`triggers` must be a list"),
            }
        }
        self.flow_outputs(get(&top, "outputs"));
        self.expressions(&top);
    }

    fn flow_inputs(&mut self, y: Option<&Yaml>) {
        let Some(y) = y else { return };
        let Some(list) = y.as_vec() else {
            return self.problem(None, "`inputs` must be a list");
        };
        for input in list {
            let Some(h) = input.as_hash() else {
                self.problem(None, "an input must be a mapping");
                continue;
            };
            let id = get_str(h, "id").unwrap_or("").to_string();
            let what = format!("input `{id}`");
            if !is_input_id(&id) {
                self.problem(
                    None,
                    format!("{what}: id must match ^[a-zA-Z0-9][.a-zA-Z0-9_-]*$"),
                );
            }
            if self.inputs.insert(id.clone(), input.clone()).is_some() {
                self.problem(None, format!("{what}: duplicate input id"));
            }
            let ty = get_str(h, "type").unwrap_or("");
            let mut allowed: Vec<&str> = INPUT_COMMON.to_vec();
            match ty {
                "ENUM" | "BOOLEAN" => {
                    self.problem(
                        None,
                        format!("{what}: type {ty} is removed in Kestra 2.0 (use SELECT / BOOL)"),
                    );
                }
                "SELECT" => allowed.push("values"),
                "DURATION" => allowed.extend(["min", "max"]),
                t if INPUT_TYPES.contains(&t) => {}
                t => self.problem(None, format!("{what}: unknown input type `{t}`")),
            }
            self.keys(None, &what, h, &allowed);
            match ty {
                "SELECT" => {
                    let values: Vec<String> = get(h, "values")
                        .and_then(Yaml::as_vec)
                        .map(|v| v.iter().map(key_str).collect())
                        .unwrap_or_default();
                    if values.is_empty() {
                        self.problem(None, format!("{what}: a SELECT input needs `values`"));
                    }
                    if let Some(d) = get(h, "defaults") {
                        if !values.contains(&key_str(d)) {
                            self.problem(
                                None,
                                format!(
                                    "{what}: defaults `{}` is not one of its values",
                                    key_str(d)
                                ),
                            );
                        }
                    }
                }
                "DURATION" => {
                    for k in ["defaults", "min", "max"] {
                        self.duration(None, &format!("{what}.{k}"), get(h, k));
                    }
                }
                "BOOL" if get(h, "defaults").is_some_and(|d| d.as_bool().is_none()) => {
                    self.problem(
                        None,
                        format!("{what}: a BOOL input's defaults must be true or false"),
                    );
                }
                _ => {}
            }
        }
    }

    fn flow_outputs(&mut self, y: Option<&Yaml>) {
        let Some(y) = y else { return };
        let Some(list) = y.as_vec() else {
            return self.problem(None, "`outputs` must be a list");
        };
        let mut seen = BTreeSet::new();
        for output in list {
            let Some(h) = output.as_hash() else {
                self.problem(None, "a flow output must be a mapping");
                continue;
            };
            let id = get_str(h, "id").unwrap_or("").to_string();
            let what = format!("flow output `{id}`");
            self.keys(None, &what, h, &["id", "type", "value", "description"]);
            if !is_input_id(&id) || !seen.insert(id.clone()) {
                self.problem(None, format!("{what}: missing, malformed or duplicate id"));
            }
            if get(h, "value").is_none() {
                self.problem(None, format!("{what}: needs a `value`"));
            }
            match get_str(h, "type") {
                Some(t) if INPUT_TYPES.contains(&t) => {}
                t => self.problem(
                    None,
                    format!(
                        "{what}: type `{}` is not a Kestra type",
                        t.unwrap_or("(none)")
                    ),
                ),
            }
        }
    }

    fn concurrency(&mut self, y: &Yaml) {
        let Some(h) = y.as_hash() else {
            return self.problem(None, "`concurrency` must be a mapping");
        };
        self.keys(None, "concurrency", h, &["limit", "behavior"]);
        if get(h, "limit").and_then(Yaml::as_i64).is_none_or(|l| l < 1) {
            self.problem(None, "concurrency: `limit` must be an integer ≥ 1");
        }
        if let Some(b) = get(h, "behavior") {
            if !["QUEUE", "CANCEL", "FAIL"].contains(&key_str(b).as_str()) {
                self.problem(
                    None,
                    format!(
                        "concurrency: behavior `{}` is not QUEUE, CANCEL or FAIL",
                        key_str(b)
                    ),
                );
            }
        }
    }

    fn retry(&mut self, task: Option<&str>, y: &Yaml) {
        let Some(h) = y.as_hash() else {
            return self.problem(task, "`retry` must be a mapping");
        };
        const COMMON: &[&str] = &[
            "type",
            "maxAttempts",
            "maxDuration",
            "warningOnRetry",
            "behavior",
        ];
        let (own, required): (&[&str], &[&str]) = match get_str(h, "type") {
            Some("constant") => (&["interval"], &["interval"]),
            Some("exponential") => (
                &["interval", "maxInterval", "delayFactor"],
                &["interval", "maxInterval"],
            ),
            Some("random") => (
                &["minInterval", "maxInterval"],
                &["minInterval", "maxInterval"],
            ),
            other => {
                return self.problem(
                    task,
                    format!(
                        "retry: type `{}` is not constant, exponential or random",
                        other.unwrap_or("(none)")
                    ),
                );
            }
        };
        let allowed: Vec<&str> = COMMON.iter().chain(own).copied().collect();
        self.keys(task, "retry", h, &allowed);
        for r in required {
            if get(h, r).is_none() {
                self.problem(
                    task,
                    format!("retry: `{r}` is required for this retry type"),
                );
            }
        }
        for d in ["interval", "maxInterval", "minInterval", "maxDuration"] {
            self.duration(task, &format!("retry.{d}"), get(h, d));
        }
        if get(h, "maxAttempts").is_some_and(|m| m.as_i64().is_none_or(|m| m < 1)) {
            self.problem(task, "retry: maxAttempts must be an integer ≥ 1");
        }
        if let Some(b) = get(h, "behavior") {
            if !["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"].contains(&key_str(b).as_str()) {
                self.problem(
                    task,
                    format!(
                        "retry: behavior `{}` is not RETRY_FAILED_TASK or CREATE_NEW_EXECUTION",
                        key_str(b)
                    ),
                );
            }
        }
    }

    fn task_list(&mut self, list: &[Yaml]) {
        for task in list {
            self.task(task);
        }
    }

    fn task(&mut self, y: &Yaml) {
        let Some(h) = y.as_hash() else {
            return self.problem(None, "a task must be a mapping");
        };
        let id = get_str(h, "id").unwrap_or("").to_string();
        let t = Some(id.as_str());
        if !is_task_id(&id) {
            self.problem(
                t,
                "task id must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*$ (no dots)",
            );
        }
        if !self.ids.insert(id.clone()) {
            self.problem(
                t,
                "duplicate id (task and trigger ids must be unique in a flow)",
            );
        }
        let ty = get_str(h, "type").unwrap_or("").to_string();
        if let Some((_, why)) = FORBIDDEN_TYPES.iter().find(|(p, _)| forbidden_type(&ty, p)) {
            return self.problem(t, format!("type `{ty}`: {why}"));
        }
        let Some((_, own, required)) = TASK_TYPES.iter().find(|(name, ..)| *name == ty) else {
            return self.problem(
                t,
                format!("type `{ty}` is not in the verified allow-list of task types"),
            );
        };
        let allowed: Vec<&str> = TASK_COMMON.iter().chain(own.iter()).copied().collect();
        let required: &[&str] = required;
        self.keys(t, "task", h, &allowed);
        for r in required {
            if get(h, r).is_none() {
                self.problem(t, format!("missing required property `{r}`"));
            }
        }
        let timeout = self.duration(t, "timeout", get(h, "timeout"));
        if let Some(r) = get(h, "retry") {
            self.retry(t, r);
        }
        let mut info = TaskInfo {
            kind: TASK_TYPES
                .iter()
                .find(|(n, ..)| *n == ty)
                .map_or("", |(n, ..)| *n),
            ..Default::default()
        };
        match ty.as_str() {
            COMMANDS => self.commands(&id, h, timeout, &mut info),
            SUBFLOW => self.subflow(&id, h, &mut info),
            PARALLEL => self.branches(&id, h),
            TEAMS | SLACK => self.webhook(&id, h),
            _ => {}
        }
        self.tasks.insert(id, info);
    }

    fn commands(
        &mut self,
        id: &str,
        h: &yaml_rust2::yaml::Hash,
        timeout: Option<f64>,
        info: &mut TaskInfo,
    ) {
        let t = Some(id);
        match get(h, "taskRunner").and_then(Yaml::as_hash) {
            Some(runner) => {
                if get_str(runner, "type") != Some(DOCKER) {
                    self.problem(t, format!("taskRunner must be {DOCKER}"));
                }
                self.keys(t, "taskRunner", runner, DOCKER_PROPERTIES);
                if let Some(p) = get(runner, "pullPolicy") {
                    if !["IF_NOT_PRESENT", "ALWAYS", "NEVER"].contains(&key_str(p).as_str()) {
                        self.problem(
                            t,
                            format!(
                                "taskRunner.pullPolicy `{}` is not IF_NOT_PRESENT, ALWAYS or NEVER",
                                key_str(p)
                            ),
                        );
                    }
                }
                if get(runner, "user").is_some_and(|u| u.as_str().is_none()) {
                    self.problem(t, "taskRunner.user must be a quoted string (e.g. \"0\")");
                }
                self.duration(
                    t,
                    "taskRunner.killGracePeriod",
                    get(runner, "killGracePeriod"),
                );
            }
            None if get(h, "taskRunner").is_some() => {
                self.problem(t, "taskRunner must be a mapping")
            }
            None => {}
        }
        let commands: Vec<String> = match get(h, "commands").and_then(Yaml::as_vec) {
            Some(list) => list.iter().map(key_str).collect(),
            None => Vec::new(),
        };
        for f in get(h, "outputFiles")
            .and_then(Yaml::as_vec)
            .into_iter()
            .flatten()
        {
            info.output_files.insert(key_str(f));
        }
        info.runs_pbiops = commands.iter().any(|c| c.contains("pbiops"));
        if !info.runs_pbiops {
            return;
        }
        let normalized: Vec<String> = commands
            .iter()
            .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if !normalized
            .iter()
            .any(|c| c == "exec /usr/local/bin/pbiops < task.json")
        {
            self.problem(
                t,
                "runs pbiops but no command is exactly `exec /usr/local/bin/pbiops < task.json` (exec: Kestra's kill must reach pbiops, not the shell)",
            );
        }
        let env = get(h, "env").and_then(Yaml::as_hash);
        let env_value = |name: &str| env.and_then(|e| get_str(e, name)).map(str::to_string);
        for (name, value) in KESTRA_ENV {
            if env_value(name).as_deref() != Some(value) {
                self.problem(
                    t,
                    format!("env: {name} must be \"{value}\" (recorded with the operation)"),
                );
            }
        }
        if env_value("PBIOPS_LOG_FORMAT").as_deref() != Some("kestra") {
            self.problem(t, "env: PBIOPS_LOG_FORMAT must be kestra");
        }
        if env_value("PBIOPS_ODBC").is_none() {
            self.problem(t, "env: PBIOPS_ODBC (the store) is missing; durable reattach and shared tokens need it");
        }
        for (k, v) in env.into_iter().flatten() {
            let name = key_str(k);
            if !is_sensitive_env(&name) {
                continue;
            }
            let value = key_str(v);
            let body = value
                .trim()
                .strip_prefix("{{")
                .and_then(|v| v.strip_suffix("}}"));
            let single_secret = body.is_some_and(|b| {
                let b = b.trim();
                b.starts_with("secret(") && b.ends_with(')') && secret_names(b).len() == 1
            });
            if !single_secret {
                self.problem(
                    t,
                    format!(
                        "env: {name} carries a secret and must be exactly \"{{{{ secret('…') }}}}\""
                    ),
                );
            }
        }
        if timeout.is_none() {
            self.problem(
                t,
                "a pbiops task needs a `timeout` longer than pbiops's own wait",
            );
        }
        let template = get(h, "inputFiles")
            .and_then(Yaml::as_hash)
            .and_then(|f| get_str(f, "task.json"))
            .map(str::to_string);
        let Some(template) = template else {
            return self.problem(t, "inputFiles has no `task.json` (Kestra never writes to stdin: pass the task as a file)");
        };
        self.task_json(id, &template, timeout, info);
    }

    /// The task.json template: toJson everywhere, schema fields only, accepted by pbiops.
    fn task_json(
        &mut self,
        id: &str,
        template: &str,
        kestra_timeout: Option<f64>,
        info: &mut TaskInfo,
    ) {
        let t = Some(id);
        let Ok(tags) = pebble(template) else {
            return; // reported by the expression walk
        };
        for tag in tags.iter().filter(|p| p.open == "{{") {
            if !ends_with_to_json(&tag.body) {
                self.problem(
                    t,
                    format!(
                        "task.json: `{{{{{}}}}}` must end with `| toJson` so quoting is safe",
                        tag.body
                    ),
                );
            }
        }
        let skeleton = substitute(template, |_| "null".into());
        let value: Value = match serde_json::from_str(&skeleton) {
            Ok(v) => v,
            Err(e) => {
                return self.problem(
                    t,
                    format!("task.json is not a JSON object once rendered: {e}"),
                );
            }
        };
        let Some(object) = value.as_object() else {
            return self.problem(t, "task.json must be a JSON object");
        };
        let operation = match object.get("operation").and_then(Value::as_str) {
            Some(op) if self.contract.operations.contains(op) => Some(op),
            Some(op) => {
                self.problem(
                    t,
                    format!(
                        "task.json: operation `{op}` is not one of pbiops's ({})",
                        self.contract
                            .operations
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                None
            }
            None => {
                self.problem(t, "task.json names no literal `operation`");
                None
            }
        };
        info.operation = operation.map(str::to_string);
        let schema = &self.contract.task_schema;
        let fields = operation.map(|op| &self.contract.per_operation[op]["properties"]);
        for (key, v) in object {
            let Some(fields) = fields else { break };
            let Some(prop) = fields.get(key) else {
                self.problem(
                    t,
                    format!(
                        "task.json: `{key}` is not a field of `pbiops schema` for {}",
                        operation.unwrap_or_default()
                    ),
                );
                continue;
            };
            // One level down, through the `$ref` of an object field (monitor, poll, refresh…).
            let def = prop["$ref"]
                .as_str()
                .or_else(|| {
                    prop["anyOf"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find_map(|a| a["$ref"].as_str())
                })
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(|d| &schema["$defs"][d]);
            if let (Some(def), Some(inner)) = (def, v.as_object()) {
                for k in inner.keys() {
                    if def["properties"].get(k).is_none() {
                        self.problem(
                            t,
                            format!("task.json: `{key}.{k}` is not a field of `pbiops schema`"),
                        );
                    }
                }
            }
            if ["timeout", "within", "maxAge", "grace"].contains(&key.as_str()) {
                if let Some(s) = v.as_str() {
                    if iso_duration(s).is_none() {
                        self.problem(
                            t,
                            format!("task.json: `{key}`: `{s}` is not an ISO-8601 duration"),
                        );
                    }
                }
            }
        }
        // The Kestra timeout must outlast pbiops's own wait, so pbiops ends first and reports.
        if let (Some(op), Some(kestra)) = (info.operation.as_deref(), kestra_timeout) {
            // flow.trigger waits only when it follows a refresh (`monitor`).
            let default_wait = self
                .contract
                .default_wait(op)
                .filter(|_| op != "flow.trigger" || object.contains_key("monitor"));
            let pbiops_wait = match template.split_once("\"timeout\":") {
                None => default_wait,
                Some((_, rest)) => {
                    let rest = rest.trim_start();
                    if let Some(expr) = rest.strip_prefix("{{") {
                        let refs = references(expr.split("}}").next().unwrap_or(""), "inputs");
                        match refs.first().and_then(|p| p.first()) {
                            Some(input) => {
                                let max = self
                                    .inputs
                                    .get(input)
                                    .and_then(Yaml::as_hash)
                                    .and_then(|h| get_str(h, "max"))
                                    .and_then(iso_duration);
                                if max.is_none() {
                                    self.problem(t, format!("task.json: `timeout` comes from input `{input}`, which needs a `max` so the Kestra timeout can outlast it"));
                                }
                                max
                            }
                            None => None,
                        }
                    } else {
                        object
                            .get("timeout")
                            .and_then(Value::as_str)
                            .and_then(iso_duration)
                    }
                }
            };
            if let Some(wait) = pbiops_wait {
                if kestra <= wait {
                    self.problem(
                        t,
                        format!(
                            "timeout ({kestra}s) must be longer than pbiops's own wait ({wait}s)"
                        ),
                    );
                }
            }
        }
        self.accepted_by_pbiops(id, template);
    }

    /// Renders the template with sample values, validates it against `pbiops schema` with a JSON
    /// Schema validator, and asks the real binary: the task must pass its validation (the run then stops at the settings, before any request, since none are set).
    fn accepted_by_pbiops(&mut self, id: &str, template: &str) {
        let rendered = substitute(template, |body| self.sample(body))
            .trim()
            .to_string();
        if let Ok(task) = serde_json::from_str::<Value>(&rendered) {
            if !self.contract.validator.is_valid(&task) {
                let why = self.contract.why_invalid(&task);
                self.problem(
                    Some(id),
                    format!(
                        "the task.json rendered with sample values ({rendered}) does not validate against `pbiops schema`: {why}"
                    ),
                );
            }
        }
        let out = Command::new(pbiops())
            .env_clear()
            .env("PBIOPS_TASK", &rendered)
            .env("PBIOPS_ODBC", "none")
            .env("PBIOPS_LOG_FORMAT", "text")
            .output()
            .expect("run pbiops");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() || !text.contains("InvalidSettings") || text.contains("InvalidTask")
        {
            let first = text.lines().next().unwrap_or("").to_string();
            self.problem(
                Some(id),
                format!(
                    "pbiops refuses the task.json rendered with sample values ({rendered}): {first}"
                ),
            );
        }
    }

    /// A JSON sample for one `{{ … | toJson }}`: the variable's value, the input's default, or a
    /// value of the input's type (a DURATION as seconds, as Kestra's Jackson writes it).
    fn sample(&self, body: &str) -> String {
        let expr = body.trim().rsplit_once('|').map_or(body, |(e, _)| e).trim();
        let yaml_json = |y: &Yaml| -> Value {
            match y {
                Yaml::Boolean(b) => Value::from(*b),
                Yaml::Integer(i) => Value::from(*i),
                Yaml::Real(r) => r.parse::<f64>().map_or(Value::Null, Value::from),
                other => Value::from(key_str(other)),
            }
        };
        if let Some(name) = expr.strip_prefix("vars.") {
            if let Some(v) = self.variables.get(name) {
                return yaml_json(v).to_string();
            }
        }
        if let Some(name) = expr.strip_prefix("inputs.") {
            if let Some(h) = self.inputs.get(name).and_then(Yaml::as_hash) {
                let ty = get_str(h, "type").unwrap_or("STRING");
                // A SELECT samples its last value, so `{% if %}` branches (kept in) see a real
                // choice; the flows list their plain default first.
                let default = match ty {
                    "SELECT" => get(h, "values")
                        .and_then(Yaml::as_vec)
                        .and_then(|v| v.last()),
                    _ => get(h, "defaults"),
                };
                return match (ty, default) {
                    ("DURATION", Some(d)) => d
                        .as_str()
                        .and_then(iso_duration)
                        .map_or(Value::Null, Value::from)
                        .to_string(),
                    ("DURATION", None) => Value::from(3600.0).to_string(),
                    ("BOOL", None) => Value::from(true).to_string(),
                    ("INT", None) => Value::from(1).to_string(),
                    // Kestra parses a JSON input's value (a string) as JSON.
                    ("JSON", Some(d)) => d
                        .as_str()
                        .and_then(|d| serde_json::from_str::<Value>(d).ok())
                        .unwrap_or(Value::Null)
                        .to_string(),
                    (_, Some(d)) => yaml_json(d).to_string(),
                    (_, None) => Value::from("Sample").to_string(),
                };
            }
        }
        Value::from("Sample").to_string()
    }

    fn subflow(&mut self, id: &str, h: &yaml_rust2::yaml::Hash, info: &mut TaskInfo) {
        let (Some(ns), Some(flow_id)) = (get_str(h, "namespace"), get_str(h, "flowId")) else {
            return;
        };
        info.calls = Some((ns.to_string(), flow_id.to_string()));
        let Some(called) = self
            .flows
            .get(&(ns.to_string(), flow_id.to_string()))
            .cloned()
        else {
            return; // a flow outside this repository
        };
        let given: BTreeSet<String> = get(h, "inputs")
            .and_then(Yaml::as_hash)
            .map(|i| i.keys().map(key_str).collect())
            .unwrap_or_default();
        for g in &given {
            if !called.inputs.contains_key(g) {
                self.problem(
                    Some(id),
                    format!("Subflow input `{g}` is not an input of {ns}.{flow_id}"),
                );
            }
        }
        for (input, needed) in &called.inputs {
            if *needed && !given.contains(input) {
                self.problem(
                    Some(id),
                    format!("Subflow: {ns}.{flow_id} requires input `{input}`"),
                );
            }
        }
    }

    /// The tasks a flowable task runs (`tasks`, `errors`, `finally`), linted like the flow's own.
    fn branches(&mut self, id: &str, h: &yaml_rust2::yaml::Hash) {
        for branch in ["tasks", "errors", "finally"] {
            match get(h, branch).map(Yaml::as_vec) {
                Some(Some(list)) if branch != "tasks" || !list.is_empty() => self.task_list(list),
                Some(_) => self.problem(
                    Some(id),
                    format!("`{branch}` must be a non-empty list of tasks"),
                ),
                None => {}
            }
        }
    }

    fn webhook(&mut self, id: &str, h: &yaml_rust2::yaml::Hash) {
        let t = Some(id);
        let url = get_str(h, "url").unwrap_or("");
        let secret_only = url
            .trim()
            .strip_prefix("{{")
            .and_then(|u| u.strip_suffix("}}"))
            .is_some_and(|b| b.trim().starts_with("secret(") && secret_names(b).len() == 1);
        if !secret_only {
            self.problem(
                t,
                "url: a webhook URL is a credential: it must be exactly \"{{ secret('…') }}\"",
            );
        }
        let Some(payload) = get_str(h, "payload") else {
            return;
        };
        let Ok(tags) = pebble(payload) else { return };
        for tag in tags.iter().filter(|p| p.open == "{{") {
            if !ends_with_to_json(&tag.body) {
                self.problem(
                    t,
                    format!(
                        "payload: `{{{{{}}}}}` must end with `| toJson` so quoting is safe",
                        tag.body
                    ),
                );
            }
        }
        if let Err(e) = serde_json::from_str::<Value>(&substitute(payload, |_| "null".into())) {
            self.problem(t, format!("payload is not JSON once rendered: {e}"));
        }
    }

    fn trigger(&mut self, y: &Yaml) {
        let Some(h) = y.as_hash() else {
            return self.problem(None, "a trigger must be a mapping");
        };
        let id = get_str(h, "id").unwrap_or("").to_string();
        let what = format!("trigger `{id}`");
        if !is_task_id(&id) || !self.ids.insert(id.clone()) {
            self.problem(None, format!("{what}: missing, malformed or duplicate id"));
        }
        let ty = get_str(h, "type").unwrap_or("");
        if let Some((_, why)) = FORBIDDEN_TYPES.iter().find(|(p, _)| forbidden_type(ty, p)) {
            return self.problem(None, format!("{what}: type `{ty}`: {why}"));
        }
        if ty != SCHEDULE {
            return self.problem(
                None,
                format!("{what}: type `{ty}` is not in the verified allow-list (only {SCHEDULE})"),
            );
        }
        self.keys(None, &what, h, SCHEDULE_PROPERTIES);
        if get(h, "withSeconds").and_then(Yaml::as_bool) == Some(true) {
            self.problem(None, format!("{what}: withSeconds: keep 5-field crons"));
        }
        match get_str(h, "cron") {
            Some(cron) => {
                if let Some(p) = cron_problem(cron) {
                    self.problem(None, format!("{what}: {p}"));
                }
            }
            None => self.problem(None, format!("{what}: needs a `cron`")),
        }
        if get(h, "timezone").is_none() {
            self.problem(
                None,
                format!("{what}: set `timezone` (Schedule defaults to the server's zone)"),
            );
        }
        if let Some(r) = get(h, "recoverMissedSchedules") {
            if !["LAST", "NONE", "ALL"].contains(&key_str(r).as_str()) {
                self.problem(
                    None,
                    format!(
                        "{what}: recoverMissedSchedules `{}` is not LAST, NONE or ALL",
                        key_str(r)
                    ),
                );
            }
        }
        self.duration(
            None,
            &format!("{what}.lateMaximumDelay"),
            get(h, "lateMaximumDelay"),
        );
        for k in get(h, "inputs")
            .and_then(Yaml::as_hash)
            .into_iter()
            .flatten()
            .map(|(k, _)| key_str(k))
        {
            if !self.inputs.contains_key(&k) {
                self.problem(
                    None,
                    format!("{what}: input `{k}` is not an input of this flow"),
                );
            }
        }
    }

    /// Every string of the flow: Pebble balance, forbidden functions, and the references.
    fn expressions(&mut self, top: &yaml_rust2::yaml::Hash) {
        let root = Yaml::Hash(top.clone());
        let mut all = Vec::new();
        strings(&root, String::new(), &mut all);
        for (path, s) in all {
            let task = task_of(top, &path);
            let t = task.as_deref();
            let tags = match pebble(s) {
                Ok(tags) => tags,
                Err(e) => {
                    self.problem(
                        t,
                        format!("{}: unbalanced Pebble: {e}", path.trim_start_matches('.')),
                    );
                    continue;
                }
            };
            for tag in tags.iter().filter(|p| p.open != "{#") {
                let idents = identifiers(&tag.body);
                if idents.iter().any(|i| i == "json") {
                    self.problem(
                        t,
                        format!(
                            "{}: the `json` filter/function is removed in Kestra 2.0; use toJson",
                            path.trim_start_matches('.')
                        ),
                    );
                }
                for name in secret_names(&tag.body) {
                    self.secret(t, &name);
                }
                for r in references(&tag.body, "inputs") {
                    if let Some(name) = r.first() {
                        if !self.inputs.contains_key(name) {
                            self.problem(
                                t,
                                format!("`inputs.{name}` is not an input of this flow"),
                            );
                        }
                    }
                }
                for r in references(&tag.body, "vars") {
                    if let Some(name) = r.first() {
                        if !self.variables.contains_key(name) {
                            self.problem(
                                t,
                                format!("`vars.{name}` is not a variable of this flow"),
                            );
                        }
                    }
                }
                for r in references(&tag.body, "outputs") {
                    self.output_reference(t, &r);
                }
            }
        }
    }

    fn secret(&mut self, task: Option<&str>, name: &str) {
        if name.is_empty() {
            return self.problem(task, "secret() must name its secret with a string literal");
        }
        match self.secrets.get(name) {
            None => self.problem(
                task,
                format!("secret `{name}` is not in kestra/README.md's secrets table"),
            ),
            Some(row) if !row.contains(&self.flow_id) && !self.file.contains("README") => {
                let msg = format!(
                    "secret `{name}`: its row in kestra/README.md's secrets table does not list flow `{}`",
                    self.flow_id
                );
                self.problem(task, msg);
            }
            Some(_) => {}
        }
    }

    fn output_reference(&mut self, task: Option<&str>, path: &[String]) {
        let Some(target) = path.first() else { return };
        let Some(info) = self.tasks.get(target) else {
            return self.problem(
                task,
                format!("`outputs.{}` names no task of this flow", path.join(".")),
            );
        };
        let shown = format!("outputs.{}", path.join("."));
        match path.get(1).map(String::as_str) {
            Some("vars") => {
                if !info.runs_pbiops {
                    return self.problem(
                        task,
                        format!("`{shown}`: task `{target}` does not run pbiops"),
                    );
                }
                let Some(key) = path.get(2) else {
                    return self.problem(task, format!("`{shown}`: name a key after `vars`"));
                };
                let op = info.operation.clone();
                match self.contract.outputs.get(key) {
                    None => self.problem(
                        task,
                        format!("`{shown}`: `{key}` is not an output of `pbiops schema --outputs`"),
                    ),
                    Some(Some(ops)) => {
                        if let Some(op) = op {
                            if !ops.contains(&op) {
                                let list = ops.iter().cloned().collect::<Vec<_>>().join(", ");
                                self.problem(
                                    task,
                                    format!(
                                        "`{shown}`: pbiops emits `{key}` for {list}, not for {op}"
                                    ),
                                );
                            }
                        }
                    }
                    Some(None) => {}
                }
            }
            Some("outputFiles") => {
                if let Some(file) = path.get(2) {
                    if !info.output_files.contains(file) {
                        self.problem(
                            task,
                            format!(
                                "`{shown}`: task `{target}` keeps no outputFiles entry `{file}`"
                            ),
                        );
                    }
                }
            }
            Some("exitCode") if info.kind == COMMANDS => {}
            Some("outputs" | "state" | "executionId") if info.kind == SUBFLOW => {
                if let (Some("outputs"), Some(out), Some(called)) = (
                    path.get(1).map(String::as_str),
                    path.get(2),
                    info.calls.clone(),
                ) {
                    if let Some(flow) = self.flows.get(&called) {
                        if !flow.outputs.contains(out) {
                            self.problem(
                                task,
                                format!(
                                    "`{shown}`: {}.{} declares no output `{out}`",
                                    called.0, called.1
                                ),
                            );
                        }
                    }
                }
            }
            other => self.problem(
                task,
                format!(
                    "`{shown}`: task `{target}` ({}) has no output `{}`",
                    info.kind,
                    other.unwrap_or("")
                ),
            ),
        }
    }
}

/// The id of the task a path (`.tasks[0].env.X`) belongs to, for messages.
fn task_of(top: &yaml_rust2::yaml::Hash, path: &str) -> Option<String> {
    let mut node = Yaml::Hash(top.clone());
    let mut id = None;
    for part in path.trim_start_matches('.').split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        node = match node.as_hash().and_then(|h| get(h, key)) {
            Some(n) => n.clone(),
            None => return id,
        };
        if let Some(i) = index {
            node = match node.as_vec().and_then(|v| v.get(i)) {
                Some(n) => n.clone(),
                None => return id,
            };
            if ["tasks", "errors", "finally", "afterExecution", "triggers"].contains(&key) {
                if let Some(tid) = node.as_hash().and_then(|h| get_str(h, "id")) {
                    id = Some(tid.to_string());
                }
            }
        }
    }
    id
}

// ---------------------------------------------------------------------------------------------
// The repository's flows.
// ---------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn flow_sources() -> Vec<Source> {
    let dir = root().join("kestra/flows");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let file = path.file_name().expect("file name").to_string_lossy().to_string();
            assert!(
                file.ends_with(".yml"),
                "kestra/flows/{file}: flows are `*.yml` files (nothing else belongs in kestra/flows)"
            );
            Source {
                name: format!("kestra/flows/{file}"),
                expected_id: Some(file.trim_end_matches(".yml").to_string()),
                text: read(&path),
            }
        })
        .collect()
}

/// The ```yaml blocks of kestra/README.md that are whole flows (they start with `id:`).
fn readme_examples() -> Vec<Source> {
    let readme = read(&root().join("kestra/README.md"));
    let mut examples = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                if block.starts_with("id:") {
                    examples.push(Source {
                        name: format!("kestra/README.md (example flow {})", examples.len() + 1),
                        expected_id: None,
                        text: std::mem::take(block),
                    });
                }
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    examples
}

fn secrets_table() -> BTreeMap<String, String> {
    let secrets = documented_secrets(&read(&root().join("kestra/README.md")));
    assert!(
        !secrets.is_empty(),
        "kestra/README.md has no secrets table (a `## … secrets` section with `| `NAME` | … |` rows)"
    );
    secrets
}

#[test]
fn the_flows_pass_the_offline_lint() {
    let sources = flow_sources();
    let names: BTreeSet<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "token-renewal",
        "daily-refresh",
        "adhoc-refresh",
        "weekly-inventory",
        "power-automate-refresh",
        "freshness-gate",
        "night-fanout",
        "fleet-worker",
    ] {
        assert!(
            names.contains(format!("kestra/flows/{expected}.yml").as_str()),
            "kestra/flows/{expected}.yml is missing"
        );
    }
    let problems = lint_sources(&sources, &secrets_table());
    assert!(
        problems.is_empty(),
        "the Kestra flows have {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_readme_example_flows_pass_the_offline_lint() {
    let examples = readme_examples();
    assert!(
        !examples.is_empty(),
        "kestra/README.md shows no example flow (a ```yaml block starting with `id:`)"
    );
    // The real flows come along so that Subflow calls are checked against them.
    let mut sources = flow_sources();
    let first_example = sources.len();
    sources.extend(examples);
    let problems: Vec<String> = lint_sources(&sources, &secrets_table())
        .into_iter()
        .filter(|p| p.starts_with("kestra/README.md"))
        .collect();
    assert!(sources.len() > first_example);
    assert!(
        problems.is_empty(),
        "kestra/README.md's example flows have problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_documented_secret_is_used_by_a_flow() {
    let sources = flow_sources();
    let used: BTreeSet<String> = sources
        .iter()
        .flat_map(|s| {
            let Ok(doc) = parse(&s.text) else {
                return Vec::new();
            };
            let mut all = Vec::new();
            strings(&doc, String::new(), &mut all);
            all.into_iter()
                .flat_map(|(_, v)| pebble(v).unwrap_or_default())
                .flat_map(|p| secret_names(&p.body))
                .collect()
        })
        .collect();
    for name in secrets_table().keys() {
        assert!(
            used.contains(name),
            "kestra/README.md documents secret `{name}`, which no flow uses"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The linter on broken flows: each must fail, naming the file, the task and the problem.
// ---------------------------------------------------------------------------------------------

fn lint_one(text: &str) -> Vec<String> {
    let mut secrets = BTreeMap::new();
    for name in [
        "PBI_TENANT_ID",
        "PBI_CLIENT_ID",
        "PBI_CLIENT_SECRET",
        "PBIOPS_ODBC",
        "PBIOPS_TOKEN_KEY",
        "TEAMS_WEBHOOK_URL",
    ] {
        secrets.insert(name.to_string(), format!("| `{name}` | … | t |"));
    }
    lint_sources(
        &[Source {
            name: "t.yml".into(),
            expected_id: Some("t".into()),
            text: text.into(),
        }],
        &secrets,
    )
}

/// A small valid flow; each test breaks one thing.
const GOOD: &str = r#"
id: t
namespace: company.pbiops
inputs:
  - id: dataset
    type: STRING
tasks:
  - id: refresh
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: ghcr.io/pbiops/pbiops:latest
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
    inputFiles:
      task.json: |
        {"operation":"dataset.refresh","workspace":"Sales","dataset":{{ inputs.dataset | toJson }},"timeout":"PT1H"}
    env:
      PBIOPS_LOG_FORMAT: kestra
      PBIOPS_TENANT_ID: "{{ secret('PBI_TENANT_ID') }}"
      PBIOPS_CLIENT_ID: "{{ secret('PBI_CLIENT_ID') }}"
      PBIOPS_CLIENT_SECRET: "{{ secret('PBI_CLIENT_SECRET') }}"
      PBIOPS_ODBC: "{{ secret('PBIOPS_ODBC') }}"
      KESTRA_EXECUTION_ID: "{{ execution.id }}"
      KESTRA_TASKRUN_ID: "{{ taskrun.id }}"
      KESTRA_FLOW_ID: "{{ flow.id }}"
      KESTRA_NAMESPACE: "{{ flow.namespace }}"
    commands:
      - exec /usr/local/bin/pbiops < task.json
    timeout: PT2H
    retry:
      type: constant
      interval: PT1M
      maxAttempts: 2
errors:
  - id: alert
    type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
    url: "{{ secret('TEAMS_WEBHOOK_URL') }}"
    payload: |
      {"text": {{ ('failed: ' ~ (outputs.refresh.vars.errorCode ?? '')) | toJson }} }
outputs:
  - id: status
    type: STRING
    value: "{{ outputs.refresh.vars.status }}"
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "30 5 * * *"
    timezone: UTC
    inputs:
      dataset: Sales Model
"#;

/// Lints `GOOD` with `from` replaced by `to`, and expects a problem containing each of `expect`.
#[track_caller]
fn broken(from: &str, to: &str, expect: &[&str]) {
    assert!(
        GOOD.contains(from),
        "test bug: `{from}` is not in the base flow"
    );
    let problems = lint_one(&GOOD.replacen(from, to, 1));
    for e in expect {
        assert!(
            problems.iter().any(|p| p.contains(e)),
            "expected a problem containing {e:?}, got:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn lint_accepts_the_base_flow() {
    let problems = lint_one(GOOD);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn lint_refuses_unparseable_yaml_and_duplicate_keys() {
    broken(
        "namespace: company.pbiops",
        "namespace: [oops",
        &["t.yml: does not parse as YAML"],
    );
    broken(
        "    timeout: PT2H\n",
        "    timeout: PT2H\n    timeout: PT3H\n",
        &["duplicated key"],
    );
}

#[test]
fn lint_refuses_unknown_top_level_keys_and_bad_ids() {
    broken(
        "namespace: company.pbiops",
        "namespace: company.pbiops\npluginDefaults: []",
        &["t.yml: flow: `pluginDefaults` is not allowed"],
    );
    broken(
        "namespace: company.pbiops",
        "namespace: company.pbiops\nschedule: daily",
        &["t.yml: flow: unknown property `schedule`"],
    );
    broken(
        "namespace: company.pbiops",
        "namespace: Company.PBIops",
        &["namespace `Company.PBIops` must match"],
    );
    broken("id: t\n", "", &["missing required top-level key `id`"]);
    broken(
        "  - id: refresh\n",
        "  - id: re.fresh\n",
        &["task `re.fresh`: task id must match"],
    );
    broken(
        "  - id: alert\n",
        "  - id: refresh\n",
        &["task `refresh`: duplicate id"],
    );
}

#[test]
fn lint_refuses_unknown_properties_and_types() {
    broken(
        "    timeout: PT2H\n",
        "    timeout: PT2H\n    retries: 3\n",
        &["t.yml: task `refresh`: task: unknown property `retries`"],
    );
    broken(
        "      type: io.kestra.plugin.scripts.runner.docker.Docker\n",
        "      type: io.kestra.plugin.scripts.runner.docker.Docker\n      image: x\n",
        &["task `refresh`: taskRunner: unknown property `image`"],
    );
    broken(
        "    timeout: PT2H\n",
        "    timeout: PT2H\n    runner: DOCKER\n",
        &["`runner` is not allowed"],
    );
    broken(
        "type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook",
        "type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhookV2",
        &[
            "task `alert`: type `io.kestra.plugin.notifications.teams.TeamsIncomingWebhookV2` is not in the verified allow-list",
        ],
    );
    broken(
        "      maxAttempts: 2\n",
        "      maxAttempt: 2\n",
        &["renamed maxAttempts"],
    );
    broken(
        "      type: constant\n      interval: PT1M\n",
        "      type: exponential\n      interval: PT1M\n",
        &["retry: `maxInterval` is required"],
    );
}

#[test]
fn lint_refuses_constructs_outside_the_compatible_subset() {
    let for_each = "errors:\n  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n    values: [1, 2]\n    tasks: []\n  - id: alert\n";
    broken(
        "errors:\n  - id: alert\n",
        for_each,
        &[
            "task `each`: type `io.kestra.plugin.core.flow.ForEach`: ForEach is removed in Kestra 2.0",
        ],
    );
    broken(
        "type: io.kestra.plugin.core.trigger.Schedule",
        "type: io.kestra.core.models.triggers.types.Schedule",
        &["aliases are removed in Kestra 2.0"],
    );
    broken(
        "    timezone: UTC\n",
        "    timezone: UTC\n    conditions: []\n",
        &["trigger conditions are removed"],
    );
    broken(
        "{{ inputs.dataset | toJson }}",
        "{{ inputs.dataset | json }}",
        &["the `json` filter/function is removed"],
    );
    broken(
        "    type: STRING\n",
        "    type: BOOLEAN\n",
        &["type BOOLEAN is removed in Kestra 2.0"],
    );
}

#[test]
fn lint_refuses_bad_durations_crons_and_pebble() {
    broken(
        "    timeout: PT2H\n",
        "    timeout: 2h\n",
        &["task `refresh`: timeout: `2h` is not an ISO-8601 duration"],
    );
    broken(
        "\"timeout\":\"PT1H\"",
        "\"timeout\":\"1 hour\"",
        &["`timeout`: `1 hour` is not an ISO-8601 duration"],
    );
    broken(
        "cron: \"30 5 * * *\"",
        "cron: \"30 5 * *\"",
        &["has 4 fields"],
    );
    broken(
        "cron: \"30 5 * * *\"",
        "cron: \"61 5 * * *\"",
        &["invalid minute field `61`"],
    );
    broken(
        "cron: \"30 5 * * *\"",
        "cron: \"30 5 * * 1-SUN\"",
        &["invalid day of week field"],
    );
    broken("    timezone: UTC\n", "", &["set `timezone`"]);
    broken(
        "{{ outputs.refresh.vars.status }}",
        "{{ outputs.refresh.vars.status }",
        &["unbalanced Pebble: `{{` without its `}}`"],
    );
    broken(
        "{{ secret('PBIOPS_ODBC') }}",
        "{{ secret('PBIOPS_ODBC' }}",
        &["unclosed `(`"],
    );
}

#[test]
fn lint_checks_outputs_against_the_pbiops_contract() {
    broken(
        "outputs.refresh.vars.status",
        "outputs.refresh.vars.refreshStatus",
        &[
            "t.yml: `outputs.refresh.vars.refreshStatus`: `refreshStatus` is not an output of `pbiops schema --outputs`",
        ],
    );
    broken(
        "outputs.refresh.vars.status",
        "outputs.refresh.vars.fresh",
        &["pbiops emits `fresh` for dataset.status, not for dataset.refresh"],
    );
    broken(
        "outputs.refresh.vars.status",
        "outputs.refesh.vars.status",
        &["`outputs.refesh.vars.status` names no task of this flow"],
    );
    broken(
        "outputs.refresh.vars.status",
        "outputs.alert.vars.status",
        &["task `alert` does not run pbiops"],
    );
    broken(
        "outputs.refresh.vars.status",
        "outputs.refresh.outputFiles['cascade.json']",
        &["keeps no outputFiles entry `cascade.json`"],
    );
    broken(
        "{{ inputs.dataset | toJson }}",
        "{{ inputs.model | toJson }}",
        &["`inputs.model` is not an input of this flow"],
    );
}

#[test]
fn lint_checks_the_task_json_against_the_task_contract() {
    broken(
        "\"workspace\":\"Sales\"",
        "\"workspace\":\"Sales\",\"workspaceName\":\"x\"",
        &["task `refresh`: task.json: `workspaceName` is not a field of `pbiops schema`"],
    );
    broken(
        "\"operation\":\"dataset.refresh\"",
        "\"operation\":\"dataset.reload\"",
        &["operation `dataset.reload` is not one of pbiops's"],
    );
    // A field of another operation: the operation's own sub-schema refuses it.
    broken(
        "\"workspace\":\"Sales\"",
        "\"workspace\":\"Sales\",\"then\":\"downstream\"",
        &[
            "task `refresh`: task.json: `then` is not a field of `pbiops schema` for dataset.refresh",
        ],
    );
    // A value outside an enum: the schema and the binary both refuse it.
    broken(
        "\"workspace\":\"Sales\"",
        "\"workspace\":\"Sales\",\"ifRunning\":\"queue\"",
        &[
            "does not validate against `pbiops schema`: \"queue\" is not one of",
            "at `/ifRunning`",
            "task `refresh`: pbiops refuses the task.json",
        ],
    );
    // A rule across fields: only the real binary knows.
    broken(
        "\"workspace\":\"Sales\"",
        "\"workspace\":\"Sales\",\"maxParallel\":2",
        &["task `refresh`: pbiops refuses the task.json"],
    );
    broken(
        "{{ inputs.dataset | toJson }}",
        "\"{{ inputs.dataset }}\"",
        &["must end with `| toJson`"],
    );
    broken(
        "\"timeout\":\"PT1H\"",
        "\"timeout\":\"PT3H\"",
        &["timeout (7200s) must be longer than pbiops's own wait (10800s)"],
    );
    broken(
        ",\"timeout\":\"PT1H\"",
        "",
        &["must be longer than pbiops's own wait (18000s)"],
    );
}

#[test]
fn lint_checks_how_pbiops_is_run() {
    broken(
        "task.json: |",
        "request.json: |",
        &["task `refresh`: inputFiles has no `task.json`"],
    );
    broken(
        "exec /usr/local/bin/pbiops < task.json",
        "cat task.json | /usr/local/bin/pbiops",
        &["no command is exactly `exec /usr/local/bin/pbiops < task.json`"],
    );
    broken(
        "exec /usr/local/bin/pbiops < task.json",
        "/usr/local/bin/pbiops < task.json",
        &["no command is exactly `exec /usr/local/bin/pbiops < task.json`"],
    );
    broken(
        "KESTRA_TASKRUN_ID: \"{{ taskrun.id }}\"",
        "KESTRA_TASKRUN_ID: \"{{ execution.id }}\"",
        &["KESTRA_TASKRUN_ID must be"],
    );
    broken(
        "      PBIOPS_ODBC: \"{{ secret('PBIOPS_ODBC') }}\"\n",
        "",
        &["PBIOPS_ODBC (the store) is missing"],
    );
    broken(
        "PBIOPS_CLIENT_SECRET: \"{{ secret('PBI_CLIENT_SECRET') }}\"",
        "PBIOPS_CLIENT_SECRET: hunter2",
        &["PBIOPS_CLIENT_SECRET carries a secret"],
    );
    broken("    timeout: PT2H\n", "", &["needs a `timeout`"]);
    broken(
        "type: io.kestra.plugin.scripts.runner.docker.Docker",
        "type: io.kestra.plugin.core.runner.Process",
        &["taskRunner must be io.kestra.plugin.scripts.runner.docker.Docker"],
    );
}

#[test]
fn lint_checks_secrets_and_webhooks() {
    broken(
        "secret('PBI_TENANT_ID')",
        "secret('AZURE_TENANT_ID')",
        &["task `refresh`: secret `AZURE_TENANT_ID` is not in kestra/README.md's secrets table"],
    );
    broken(
        "url: \"{{ secret('TEAMS_WEBHOOK_URL') }}\"",
        "url: https://example.invalid/webhook",
        &["task `alert`: url: a webhook URL is a credential"],
    );
    broken("| toJson }} }", "}} }", &["task `alert`: payload: `{{"]);
}

/// Lints `caller.yml` beside the base flow `t.yml` (which it may call as a subflow).
fn lint_with_base(caller: &str) -> Vec<String> {
    let sources = [
        Source {
            name: "t.yml".into(),
            expected_id: None,
            text: GOOD.into(),
        },
        Source {
            name: "caller.yml".into(),
            expected_id: None,
            text: caller.into(),
        },
    ];
    lint_sources(&sources, &BTreeMap::new())
}

#[test]
fn lint_checks_subflow_calls_against_the_called_flow() {
    let caller = r#"
id: caller
namespace: company.pbiops
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.pbiops
    flowId: t
    inputs:
      model: Sales Model
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.call.outputs.state }}"
"#;
    let problems = lint_with_base(caller);
    for e in [
        "caller.yml: task `call`: Subflow input `model` is not an input of company.pbiops.t",
        "caller.yml: task `call`: Subflow: company.pbiops.t requires input `dataset`",
        "caller.yml: task `log`: `outputs.call.outputs.state`: company.pbiops.t declares no output `state`",
    ] {
        assert!(
            problems.iter().any(|p| p == e),
            "expected {e:?}, got:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn lint_checks_the_tasks_inside_a_parallel() {
    let caller = r#"
id: caller
namespace: company.pbiops
tasks:
  - id: workers
    type: io.kestra.plugin.core.flow.Parallel
    failFast: true
    tasks:
      - id: call
        type: io.kestra.plugin.core.flow.Subflow
        namespace: company.pbiops
        flowId: t
        inputs:
          model: Sales Model
      - id: call
        type: io.kestra.plugin.core.flow.ForEach
  - id: empty
    type: io.kestra.plugin.core.flow.Parallel
    tasks: []
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.call.outputs.status }} {{ outputs.workers.vars.status }}"
"#;
    let problems = lint_with_base(caller);
    for e in [
        "caller.yml: task `workers`: task: unknown property `failFast`",
        "caller.yml: task `call`: Subflow input `model` is not an input of company.pbiops.t",
        "caller.yml: task `call`: duplicate id",
        "caller.yml: task `call`: type `io.kestra.plugin.core.flow.ForEach`: ForEach is removed",
        "caller.yml: task `empty`: `tasks` must be a non-empty list of tasks",
        "caller.yml: task `log`: `outputs.workers.vars.status`: task `workers` does not run pbiops",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(e)),
            "expected {e:?}, got:\n{}",
            problems.join("\n")
        );
    }
    // The subflow inside the Parallel is known to the output checks: its declared output passes.
    assert!(
        !problems
            .iter()
            .any(|p| p.contains("outputs.call.outputs.status")),
        "{}",
        problems.join("\n")
    );
}

#[test]
fn lint_fails_a_broken_copy_of_a_real_flow() {
    let real = read(&root().join("kestra/flows/adhoc-refresh.yml"));
    let lint = |text: String| {
        lint_sources(
            &[Source {
                name: "kestra/flows/adhoc-refresh.yml".into(),
                expected_id: Some("adhoc-refresh".into()),
                text,
            }],
            &secrets_table(),
        )
    };
    assert!(lint(real.clone()).is_empty(), "the real flow should pass");
    let cases = [
        // An unknown property.
        (
            "    timeout: PT10H15M\n",
            "    timeout: PT10H15M\n    timeoutPolicy: kill\n",
            "task `refresh`: task: unknown property `timeoutPolicy`",
        ),
        // A wrong output name.
        (
            "outputs.refresh.vars.requestId",
            "outputs.refresh.vars.refreshId",
            "`refreshId` is not an output of `pbiops schema --outputs`",
        ),
        // ForEach.
        (
            "tasks:\n",
            "tasks:\n  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n    values: [a]\n    tasks: []\n",
            "task `each`: type `io.kestra.plugin.core.flow.ForEach`: ForEach is removed in Kestra 2.0",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(
            real.contains(from),
            "test bug: `{from}` is not in adhoc-refresh.yml"
        );
        let problems = lint(real.replacen(from, to, 1));
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("kestra/flows/adhoc-refresh.yml") && p.contains(expected)),
            "expected {expected:?}, got:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn small_parsers() {
    assert_eq!(iso_duration("PT20M"), Some(1200.0));
    assert_eq!(iso_duration("PT10H15M"), Some(36900.0));
    assert_eq!(iso_duration("P1DT0.5S"), Some(86400.5));
    for bad in [
        "PT", "P", "20M", "PT1.5H", "PT1M2H", "PT1H1H", "P1W", "pt1h",
    ] {
        assert_eq!(iso_duration(bad), None, "{bad}");
    }
    assert!(cron_problem("*/15 * * * *").is_none());
    assert!(cron_problem("0 6 * * MON-FRI").is_none());
    assert!(cron_problem("0 6 1,15 JAN-MAR/2 0").is_none());
    assert!(cron_problem("@daily").is_none());
    assert!(cron_problem("0 24 * * *").is_some());
    assert!(cron_problem("0 0 0 * *").is_some());
    assert!(cron_problem("*/0 * * * *").is_some());
    assert!(cron_problem("0 0 * * * *").is_some());
    assert!(pebble("a {{ b }} c {% if x %}d{% endif %}").is_ok());
    assert!(pebble(r#"{"a":{"b":{{ c | toJson }}}}"#).is_ok());
    assert!(pebble("{{ a {{ b }}").is_err());
    assert!(pebble("{{ f('x) }}").is_err());
    assert_eq!(
        secret_names("secret('A') ~ secret( \"B\" ) ~ mysecret('C')"),
        ["A", "B"]
    );
    assert_eq!(
        references(
            "outputs.a.vars.b ?? outputs.c.outputFiles['d.json'] ~ x.outputs.e",
            "outputs"
        ),
        [vec!["a", "vars", "b"], vec!["c", "outputFiles", "d.json"]]
    );
    assert_eq!(
        references("'outputs.a.vars.b'", "outputs"),
        Vec::<Vec<String>>::new()
    );
    assert!(ends_with_to_json(" (a ~ b) | toJson "));
    assert!(!ends_with_to_json(" a | toJson | upper "));
    let ops: BTreeSet<String> = ["dataset.status", "token.refresh", "credentials.check"]
        .map(String::from)
        .into();
    assert_eq!(
        operations_named("`dataset.status`: seconds", &ops),
        Some(["dataset.status".to_string()].into())
    );
    assert_eq!(
        operations_named("`token.refresh` / `credentials.check`: how many", &ops).map(|s| s.len()),
        Some(2)
    );
    assert_eq!(
        operations_named(
            "`dataset.status`: age; `token.refresh` with `within`: renewed",
            &ops
        )
        .map(|s| s.len()),
        Some(2)
    );
    assert_eq!(operations_named("`SemanticModel`.", &ops), None);
    assert_eq!(operations_named("`Standard` or `Enhanced`: x", &ops), None);
}
