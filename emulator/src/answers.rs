//! Damaged answers, the faults a user's network and proxies produce rather than the service: a
//! body cut mid-way, a body that stalls, a connection that never answers, and a success status
//! whose body is empty, an HTML page or broken JSON.
//!
//! A cut or stalled body is the real handler's answer damaged in transit, so the call's work
//! always happens. The other answers replace the handler's; the work happens only with
//! `applyThenFail`, as for a status fault.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a damaged answer looks like (a fault's `answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Answer {
    /// The real status and headers, `Content-Length` of the whole body, half of it, then the
    /// connection closes.
    Truncated,
    /// The real answer, its body stalled half-way for the fault's `delayMs`.
    SlowBody,
    /// No answer at all: the headers are never sent (until the emulator stops).
    Hang,
    /// The fault's status (default 200), a JSON content type and an empty body.
    Empty,
    /// The fault's status (default 200) with an HTML page, as a proxy or sign-in portal sends.
    Html,
    /// The fault's status (default 200), a JSON content type and JSON cut inside a value.
    MalformedJson,
}

/// A body a proxy's sign-in page might send.
const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>\n<body><h1>Your session has expired</h1><p>Please sign in again.</p></body></html>\n";
/// Broken JSON: a list cut inside its first object.
const MALFORMED_JSON: &str = r#"{"@odata.context":"https://api.powerbi.com/v1.0/myorg/$metadata#refreshes","value":[{"requestId":"#;
/// Declared length of a cut answer whose real body is (almost) empty.
const CUT_EMPTY_LENGTH: usize = 64;
/// Pause before a cut, so the first half is on the wire before the connection closes.
const BEFORE_CUT: Duration = Duration::from_millis(50);

impl Answer {
    /// Whether it damages the real answer (the work of the call then always happens).
    pub fn damages_the_real_answer(self) -> bool {
        matches!(self, Answer::Truncated | Answer::SlowBody)
    }
}

/// The real `response`, cut (`Truncated`) or stalled for `stall` half-way (`SlowBody`).
pub(crate) async fn damage(answer: Answer, response: Response, stall: Duration) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.len() / 2;
    let first = bytes.slice(..half);
    let rest = bytes.slice(half..);
    let (declared, chunks) = match answer {
        Answer::SlowBody => (
            bytes.len(),
            vec![Step::Send(first), Step::Wait(stall), Step::Send(rest)],
        ),
        _ => {
            let declared = if bytes.len() >= 2 {
                bytes.len()
            } else {
                CUT_EMPTY_LENGTH
            };
            (
                declared,
                vec![Step::Send(first), Step::Wait(BEFORE_CUT), Step::Cut],
            )
        }
    };
    if let Ok(value) = HeaderValue::from_str(&declared.to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, value);
    }
    let stream = futures_util::stream::unfold(chunks.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                Step::Send(bytes) if bytes.is_empty() => continue,
                Step::Send(bytes) => return Some((Ok(bytes), steps)),
                Step::Wait(pause) => tokio::time::sleep(pause).await,
                Step::Cut => {
                    let cut = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the emulator cut the body mid-way",
                    );
                    return Some((Err(cut), steps));
                }
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

enum Step {
    Send(Bytes),
    Wait(Duration),
    Cut,
}

/// Largest `padBytes` (1 GiB).
pub(crate) const MAX_PAD: u64 = 1 << 30;

/// The real JSON object answer with a `"padding"` string of `bytes` bytes before its other
/// fields; any other answer unchanged.
pub(crate) async fn pad(response: Response, bytes: u64) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(real) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if real.first() != Some(&b'{') {
        return Response::from_parts(parts, Body::from(real));
    }
    let size = usize::try_from(bytes).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(real.len() + size + 16);
    out.extend_from_slice(b"{\"padding\":\"");
    out.resize(out.len() + size, b'x');
    out.push(b'"');
    if real.len() > 2 {
        out.push(b',');
    }
    out.extend_from_slice(&real[1..]);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

/// The answer that replaces the handler's for `Empty`, `Html` and `MalformedJson`.
pub(crate) fn replacement(answer: Answer, status: StatusCode) -> Response {
    let (content_type, body) = match answer {
        Answer::Html => ("text/html; charset=utf-8", HTML_PAGE),
        Answer::MalformedJson => (crate::wire::JSON_CONTENT_TYPE, MALFORMED_JSON),
        _ => (crate::wire::JSON_CONTENT_TYPE, ""),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
