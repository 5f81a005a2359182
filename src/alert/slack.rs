//! The Slack payload: Block Kit blocks with a plain-text fallback, within Slack's documented
//! limits (header 150 characters, section text 3000, a field 2000 and at most 10 fields, a
//! context at most 10 elements, at most 50 blocks).

use serde_json::{Value, json};

use super::Alert;

const HEADER_MAX: usize = 150;
const TEXT_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const FIELDS_MAX: usize = 10;

/// Escapes the three characters Slack's mrkdwn reserves.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` cut to `max` characters (with an ellipsis when cut).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max - 1).collect();
    format!("{kept}…")
}

/// The message a Slack incoming webhook takes.
pub(super) fn payload(alert: &Alert) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&alert.title, HEADER_MAX), "emoji": false}
    })];
    let mut text = String::new();
    if let Some(message) = &alert.message {
        text.push_str(&esc(message));
    }
    if let Some(help) = &alert.help {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&format!("*help:* {}", esc(help)));
    }
    if !text.is_empty() {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&text, TEXT_MAX)}}),
        );
    }
    let fields: Vec<Value> = alert
        .facts
        .iter()
        .take(FIELDS_MAX)
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "text": cut(&format!("*{}*\n{}", esc(label), esc(value)), FIELD_MAX)})
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if !alert.targets.is_empty() {
        let list = alert
            .targets
            .iter()
            .map(|t| format!("• {}", esc(t)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": cut(&format!("*Failed targets*\n{list}"), TEXT_MAX)}}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": "sent by pbiops"}
    ]}));
    json!({"text": cut(&alert.title, TEXT_MAX), "blocks": blocks})
}
