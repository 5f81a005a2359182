//! The documentation and the code agree: every output the code can emit is documented, every
//! documented output and operation exists, and the docs link from the README.
//!
//! The contract is read from the binary itself (`pbiops schema --outputs`, generated from the
//! `Outputs` type; `pbiops schema`, whose `Operation` enum lists the operations), never from a
//! copied list. Every task JSON in the README and `docs/` is validated against `pbiops schema`
//! with a JSON Schema validator and read by pbiops's own parser; the user guide's refused tasks
//! are refused by both.

use std::collections::BTreeSet;
use std::process::Command;

fn pbiops(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_pbiops"))
        .args(args)
        .env_clear()
        .output()
        .expect("pbiops runs");
    assert!(out.status.success(), "pbiops {args:?} failed");
    serde_json::from_slice(&out.stdout).expect("a JSON schema")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `` `word` `` in `text`.
fn ticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys of the README's outputs table: the first column of the rows under "## Outputs".
fn readme_output_keys(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n## Outputs")
        .nth(1)
        .expect("an Outputs section");
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| ticked(l.split('|').nth(1).unwrap_or_default()))
        .collect()
}

#[test]
fn every_output_the_code_emits_is_documented_and_every_documented_one_exists() {
    let schema = pbiops(&["schema", "--outputs"]);
    let emitted: BTreeSet<String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    let documented = readme_output_keys(&read("README.md"));
    let undocumented: Vec<_> = emitted.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "outputs the code emits but the README's Outputs table does not list: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&emitted).collect();
    assert!(
        unknown.is_empty(),
        "outputs the README lists but the code never emits: {unknown:?}"
    );
    let guide = read("docs/user-guide.md");
    let missing: Vec<_> = emitted
        .iter()
        .filter(|k| !guide.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "outputs docs/user-guide.md does not mention: {missing:?}"
    );
}

#[test]
fn every_operation_is_documented_and_every_documented_one_exists() {
    let operations = operations();
    assert!(operations.len() >= 11, "{operations:?}");
    let readme = read("README.md");
    let guide = read("docs/user-guide.md");
    for op in &operations {
        assert!(
            readme.contains(&format!("`{op}`")),
            "README does not document {op}"
        );
        assert!(
            guide.contains(op.as_str()),
            "docs/user-guide.md does not document {op}"
        );
    }
    // Every `"operation": "x"` in the docs names a real operation (but the refused tasks).
    let guide = guide.replace(section(&guide, REFUSED), "");
    for (name, text) in [
        ("README.md", &readme),
        ("docs/user-guide.md", &guide),
        ("docs/troubleshooting.md", &read("docs/troubleshooting.md")),
    ] {
        for part in text
            .split("\"operation\": \"")
            .skip(1)
            .chain(text.split("\"operation\":\"").skip(1))
        {
            let op = part.split('"').next().unwrap_or_default();
            assert!(
                operations.contains(op),
                "{name} uses an operation that does not exist: {op}"
            );
        }
    }
}

#[test]
fn the_readme_links_every_document() {
    let readme = read("README.md");
    for doc in [
        "docs/user-guide.md",
        "docs/configuration.md",
        "docs/troubleshooting.md",
        "docs/migration.md",
        "kestra/README.md",
        "emulator/README.md",
    ] {
        assert!(readme.contains(doc), "README does not link {doc}");
        read(doc);
    }
}

#[test]
fn every_documented_environment_variable_is_one_pbiops_reads() {
    let out = Command::new(env!("CARGO_BIN_EXE_pbiops"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("runs");
    let help = String::from_utf8(out.stdout).expect("utf-8");
    let known: BTreeSet<String> = ticked(&help)
        .into_iter()
        .chain(help.split_whitespace().map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '<' && c != '>')
                .to_string()
        }))
        .collect();
    let config = read("docs/configuration.md");
    for var in ticked(&config).into_iter().filter(|w| {
        w.starts_with("PBIOPS_") && !w.contains('=') && !w.contains(' ') && !w.contains('<')
    }) {
        assert!(
            known.contains(&var),
            "docs/configuration.md documents {var}, which `pbiops --help` does not list"
        );
    }
}

fn operations() -> BTreeSet<String> {
    pbiops(&["schema"])["$defs"]["Operation"]["enum"]
        .as_array()
        .expect("the Operation enum")
        .iter()
        .filter_map(|o| o.as_str().map(str::to_string))
        .collect()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&pbiops(&["schema"])).expect("pbiops schema is a valid JSON Schema")
}

/// pbiops's own reading of a task: the field its error names, or `None` when it is accepted.
fn refused_field(task: &serde_json::Value) -> Option<String> {
    pbiops::RawTask::parse(&task.to_string())
        .and_then(|raw| raw.validate())
        .err()
        .map(|e| match e {
            pbiops::error::Error::InvalidTask { field, .. } => field,
            other => panic!("not a task error: {other}"),
        })
}

/// The section of `text` under the heading that starts with `heading`, up to the next heading.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} section"));
    let rest = &text[start + heading.len()..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

/// Every JSON object with a top-level `operation` in `text`: inline, one-line or in a block.
fn tasks_in(text: &str) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(offset) = text[i..].find('{') {
        let at = i + offset;
        let mut stream =
            serde_json::Deserializer::from_str(&text[at..]).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(value)) if value.get("operation").is_some_and(|o| o.is_string()) => {
                found.push(value);
                i = at + stream.byte_offset();
            }
            Some(Ok(_)) => i = at + stream.byte_offset(),
            _ => i = at + 1,
        }
    }
    found
}

#[test]
fn every_task_in_the_docs_is_valid_against_the_schema_and_for_pbiops() {
    let validator = validator();
    let mut count = 0;
    let dir = format!("{}/docs", env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<String> = std::fs::read_dir(dir)
        .expect("docs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.push("README.md".into());
    for doc in &docs {
        let text = read(doc);
        let refused = text
            .find(REFUSED)
            .map(|_| section(&text, REFUSED))
            .unwrap_or("");
        let text = text.replace(refused, "");
        for task in tasks_in(&text) {
            count += 1;
            let errors: Vec<String> = validator
                .iter_errors(&task)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{doc}: {task} does not validate against `pbiops schema`: {errors:?}"
            );
            assert_eq!(refused_field(&task), None, "{doc}: pbiops refuses {task}");
        }
    }
    assert!(count >= 25, "only {count} tasks found in the docs");
}

const REFUSED: &str = "### Refused tasks";

#[test]
fn the_user_guides_refused_tasks_are_refused_by_the_schema_and_by_pbiops() {
    let validator = validator();
    let guide = read("docs/user-guide.md");
    let rows: Vec<&str> = section(&guide, REFUSED)
        .lines()
        .filter(|l| l.starts_with("| `{"))
        .collect();
    assert!(
        rows.len() >= 8,
        "the refused-tasks table has {} rows",
        rows.len()
    );
    for row in rows {
        let cells: Vec<&str> = row.split(" | ").collect();
        let task: serde_json::Value =
            serde_json::from_str(cells[0].trim_start_matches("| `").trim_end_matches('`'))
                .unwrap_or_else(|e| panic!("{row}: {e}"));
        let field = cells[1].split('`').nth(1).expect("the field in backticks");
        assert_eq!(refused_field(&task).as_deref(), Some(field), "{row}");
        let by_schema = cells[2].trim_end_matches(" |").trim();
        assert_eq!(
            !validator.is_valid(&task),
            by_schema.starts_with("yes"),
            "{row}: the schema column says {by_schema:?}"
        );
    }
}
