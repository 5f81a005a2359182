//! The scenario's `quirks` that reshape answers after the handler ran (a 403 for an expired
//! token, `Message` for `message`), so no handler needs to know about them.

use crate::state::AppState;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

/// Largest error body the emulator reshapes (its own are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The response with the scenario's quirks applied.
pub(crate) async fn apply(state: &AppState, response: Response) -> Response {
    let quirks = &state.scenario.quirks;
    let forbidden = quirks.expired_token_status == Some(403);
    let status = response.status();
    let reshape = (forbidden && status == StatusCode::UNAUTHORIZED)
        || (quirks.pascal_case_messages && status.as_u16() >= 400);
    if !reshape {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if forbidden && status == StatusCode::UNAUTHORIZED && expired(&value) {
        parts.status = StatusCode::FORBIDDEN;
    }
    if quirks.pascal_case_messages {
        if let Some(map) = value.as_object_mut() {
            pascal_message(map);
            if let Some(inner) = map.get_mut("error").and_then(Value::as_object_mut) {
                pascal_message(inner);
            }
        }
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether an error body is the emulator's answer to an expired, revoked or unknown token.
fn expired(value: &Value) -> bool {
    value["error"]["code"] == "TokenExpired" || value["errorCode"] == "TokenExpired"
}

fn pascal_message(map: &mut Map<String, Value>) {
    if let Some(message) = map.remove("message") {
        map.insert("Message".to_owned(), message);
    }
}
