//! The payloads against the structure their services document: the Adaptive Card schema's rules
//! for the elements used (at the declared version), and Slack's block structure and limits.
//! The schemas here are written from those documents (see `docs/alerts.md`), not copied.

use serde_json::{Value, json};

use super::*;
use crate::ops::TargetResult;

fn alert() -> Alert {
    let out = Outputs {
        operation: Some("dataset.refresh"),
        status: Some(crate::ops::Status::Failed),
        workspace_id: Some("a0000000-0000-4000-8000-000000000001".into()),
        workspace_name: Some("Sales <EMEA>".into()),
        item_kind: Some("SemanticModel"),
        dataset_id: Some("d0000000-0000-4000-8000-000000000002".into()),
        dataset_name: Some("Broken & Model".into()),
        request_id: Some("r-1".into()),
        error_code: Some("ModelRefreshFailed_CredentialsNotSpecified".into()),
        error_message: Some("The data source credentials are missing.".into()),
        targets: Some(vec![target("Sales/Broken", 1)]),
        ..Outputs::default()
    };
    let kestra = KestraIds {
        execution_id: Some("4Xq9".into()),
        taskrun_id: Some("tr-1".into()),
        flow_id: Some("nightly".into()),
        namespace: Some("company.bi".into()),
    };
    Alert::new(&out, None, 1, &kestra)
}

fn target(key: &str, exit: i32) -> TargetResult {
    TargetResult {
        key: key.into(),
        item_kind: Some("SemanticModel"),
        workspace_id: "w".into(),
        workspace_name: None,
        dataset_id: None,
        dataset_name: None,
        dataflow_id: None,
        dataflow_name: None,
        depends_on: Vec::new(),
        status: Some(crate::ops::Status::Failed),
        request_id: None,
        attached: None,
        duration_seconds: None,
        queued_seconds: None,
        capacity_wait_seconds: None,
        exit_code: exit,
        error_code: Some("ModelRefreshFailed".into()),
        error_message: Some("credentials".into()),
        operation_id: None,
    }
}

/// The Adaptive Card rules for what the Teams payload uses, inside the Teams message envelope.
fn teams_schema() -> Value {
    json!({
        "type": "object", "required": ["type", "attachments"],
        "properties": {
            "type": {"const": "message"},
            "attachments": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                "type": "object", "required": ["contentType", "content"], "additionalProperties": false,
                "properties": {
                    "contentType": {"const": "application/vnd.microsoft.card.adaptive"},
                    "contentUrl": {"type": ["string", "null"]},
                    "content": {"$ref": "#/$defs/AdaptiveCard"}
                }}}
        },
        "$defs": {
            "AdaptiveCard": {"type": "object", "required": ["type", "version", "body"],
                "additionalProperties": false,
                "properties": {
                    "$schema": {"type": "string"},
                    "type": {"const": "AdaptiveCard"},
                    "version": {"type": "string", "pattern": "^1\\.[0-6]$"},
                    "fallbackText": {"type": "string"},
                    "body": {"type": "array", "items": {"$ref": "#/$defs/Element"}}
                }},
            "Element": {"oneOf": [
                {"$ref": "#/$defs/TextBlock"}, {"$ref": "#/$defs/FactSet"}, {"$ref": "#/$defs/Container"}
            ]},
            "Spacing": {"enum": ["Default", "None", "Small", "Medium", "Large", "ExtraLarge", "Padding"]},
            "TextBlock": {"type": "object", "required": ["type", "text"], "additionalProperties": false,
                "properties": {
                    "type": {"const": "TextBlock"}, "text": {"type": "string"},
                    "wrap": {"type": "boolean"}, "isSubtle": {"type": "boolean"},
                    "separator": {"type": "boolean"}, "spacing": {"$ref": "#/$defs/Spacing"},
                    "weight": {"enum": ["Default", "Lighter", "Bolder"]},
                    "size": {"enum": ["Default", "Small", "Medium", "Large", "ExtraLarge"]}
                }},
            "FactSet": {"type": "object", "required": ["type", "facts"], "additionalProperties": false,
                "properties": {
                    "type": {"const": "FactSet"},
                    "facts": {"type": "array", "items": {"type": "object", "required": ["title", "value"],
                        "additionalProperties": false,
                        "properties": {"title": {"type": "string"}, "value": {"type": "string"}}}}
                }},
            "Container": {"type": "object", "required": ["type", "items"], "additionalProperties": false,
                "properties": {
                    "type": {"const": "Container"},
                    "style": {"enum": ["default", "emphasis", "good", "attention", "warning", "accent"]},
                    "items": {"type": "array", "items": {"$ref": "#/$defs/Element"}}
                }}
        }
    })
}

/// Slack's message structure with the blocks the payload uses and their documented limits.
fn slack_schema() -> Value {
    let plain = |max: u32| {
        json!({"type": "object", "required": ["type", "text"], "additionalProperties": false,
        "properties": {"type": {"const": "plain_text"}, "text": {"type": "string", "minLength": 1, "maxLength": max},
                       "emoji": {"type": "boolean"}}})
    };
    let mrkdwn = |max: u32| {
        json!({"type": "object", "required": ["type", "text"], "additionalProperties": false,
        "properties": {"type": {"const": "mrkdwn"}, "text": {"type": "string", "minLength": 1, "maxLength": max}}})
    };
    json!({
        "type": "object", "required": ["text", "blocks"],
        "properties": {
            "text": {"type": "string", "minLength": 1},
            "blocks": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"oneOf": [
                {"type": "object", "required": ["type", "text"], "additionalProperties": false,
                 "properties": {"type": {"const": "header"}, "text": plain(150)}},
                {"type": "object", "required": ["type"], "additionalProperties": false,
                 "anyOf": [{"required": ["text"]}, {"required": ["fields"]}],
                 "properties": {"type": {"const": "section"}, "text": mrkdwn(3000),
                                "fields": {"type": "array", "minItems": 1, "maxItems": 10, "items": mrkdwn(2000)}}},
                {"type": "object", "required": ["type", "elements"], "additionalProperties": false,
                 "properties": {"type": {"const": "context"},
                                "elements": {"type": "array", "minItems": 1, "maxItems": 10, "items": mrkdwn(3000)}}}
            ]}}
        }
    })
}

fn assert_valid(schema: &Value, payload: &Value) {
    let validator = jsonschema::validator_for(schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(payload)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{payload:#}");
}

#[test]
fn the_teams_payload_is_a_valid_adaptive_card_of_the_declared_version() {
    let payload = alert().payload(AlertFormat::Teams);
    assert_valid(&teams_schema(), &payload);
    let card = &payload["attachments"][0]["content"];
    assert_eq!(card["version"], CARD_VERSION);
    // Container styles other than default and emphasis came with card version 1.2.
    let version: f64 = CARD_VERSION.parse().expect("a number");
    assert!(version >= 1.2, "attention style needs 1.2");
    let text = payload.to_string();
    for needle in [
        "Broken & Model",
        "ModelRefreshFailed_CredentialsNotSpecified",
        "company.bi.nightly 4Xq9",
        "Sales/Broken",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    // A card the validator accepts must still be refused when it breaks a rule.
    let mut broken = payload.clone();
    broken["attachments"][0]["content"]["body"][1] = json!({"type": "TextBlock"});
    let validator = jsonschema::validator_for(&teams_schema()).expect("schema");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_slack_payload_follows_the_block_structure_and_escapes_mrkdwn() {
    let payload = alert().payload(AlertFormat::Slack);
    assert_valid(&slack_schema(), &payload);
    let text = payload.to_string();
    assert!(text.contains("Sales &lt;EMEA&gt;"), "{text}");
    assert!(text.contains("Broken &amp; Model"), "{text}");
    // Long words are cut to the documented limits, not rejected by Slack.
    let mut long = alert();
    long.title = "x".repeat(400);
    long.message = Some("y".repeat(5000));
    long.facts = (0..15)
        .map(|i| (format!("f{i}"), "z".repeat(2500)))
        .collect();
    assert_valid(&slack_schema(), &long.payload(AlertFormat::Slack));
}

#[test]
fn an_error_gives_the_code_the_words_and_the_help_line() {
    let error = Error::Rejected {
        action: "refresh semantic model m".into(),
        service: crate::error::ServiceError {
            status: Some(400),
            code: Some("DailyLimit".into()),
            message: Some("too many".into()),
            request_id: Some("req-9".into()),
        },
        help: Some("wait until tomorrow".into()),
    };
    let a = Alert::new(&Outputs::default(), Some(&error), 1, &KestraIds::default());
    assert_eq!(a.help.as_deref(), Some("wait until tomorrow"));
    assert!(a.message.as_deref().is_some_and(|m| m.contains("too many")));
    assert!(
        a.facts
            .iter()
            .any(|(k, v)| k == "Error code" && v == "DailyLimit")
    );
    assert!(
        a.facts
            .iter()
            .any(|(k, v)| k == "Request id" && v == "req-9")
    );
}

#[test]
fn no_registered_secret_reaches_the_payload() {
    const CANARY: &str = "CANARY-ALERT-SECRET-5d1e";
    crate::redact::remember(CANARY);
    let out = Outputs {
        operation: Some("dataset.refresh"),
        error_message: Some(format!("Login failed; password={CANARY}")),
        dataset_name: Some(format!("model {CANARY}")),
        ..Outputs::default()
    };
    let a = Alert::new(&out, None, 1, &KestraIds::default());
    for format in [AlertFormat::Teams, AlertFormat::Slack] {
        let text = a.payload(format).to_string();
        assert!(!text.contains(CANARY), "{text}");
        assert!(text.contains("Login failed"), "{text}");
    }
}
