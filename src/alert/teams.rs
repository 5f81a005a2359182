//! The Teams payload: a `message` with one Adaptive Card attachment.

use serde_json::{Value, json};

use super::{Alert, CARD_VERSION};

/// The message a Teams workflow webhook takes.
pub(super) fn payload(alert: &Alert) -> Value {
    let mut body = vec![json!({
        "type": "Container",
        "style": "attention",
        "items": [{"type": "TextBlock", "text": alert.title, "weight": "Bolder",
                   "size": "Medium", "wrap": true}]
    })];
    if let Some(message) = &alert.message {
        body.push(json!({"type": "TextBlock", "text": message, "wrap": true}));
    }
    if let Some(help) = &alert.help {
        body.push(json!({"type": "TextBlock", "text": format!("help: {help}"),
                         "wrap": true, "isSubtle": true}));
    }
    let facts: Vec<Value> = alert
        .facts
        .iter()
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if !alert.targets.is_empty() {
        body.push(
            json!({"type": "TextBlock", "text": "Failed targets", "weight": "Bolder",
                         "wrap": true, "separator": true}),
        );
        for line in alert.targets.iter().take(20) {
            body.push(
                json!({"type": "TextBlock", "text": format!("- {line}"), "wrap": true,
                             "spacing": "None"}),
            );
        }
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": CARD_VERSION,
                "fallbackText": alert.title,
                "body": body
            }
        }]
    })
}
