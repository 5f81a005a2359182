//! The documentation and the code agree: every output the code can emit is documented, every
//! documented output and operation exists, and the docs link from the README.
//!
//! The contract is read from the binary itself (`pbiops schema --outputs`, generated from the
//! `Outputs` type; the task schema lists the operations), never from a copied list.

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
    let schema = pbiops(&["schema"]);
    let description = schema["properties"]["operation"]["description"]
        .as_str()
        .expect("operation description");
    let operations: BTreeSet<String> = description
        .trim_start_matches("The operation:")
        .trim_end_matches('.')
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
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
    // Every `"operation": "x"` in the docs names a real operation.
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
