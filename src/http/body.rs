//! Reading a response body: whole, within the attempt's timeout and the size cap, and checked
//! for the answers no API gives (an HTML page, an empty or broken JSON success).

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;

use super::{Response, describe};

/// Why an attempt has no usable answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// The network or something on the way lost or mangled the answer: retry if the call allows.
    Transport(String),
    /// Retrying cannot help (an answer over the size cap, a request that cannot be built).
    Final(String),
    /// The network path refused the connection (untrusted certificate, proxy 407): never retried.
    Blocked(crate::error::Error),
}

/// Reads the whole body, at most `cap` bytes. A body cut mid-way or slower than the request's
/// timeout is a transport failure; one larger than `cap` is final (it would be as large again).
pub(super) async fn read(resp: &mut reqwest::Response, cap: usize) -> Result<String, Failure> {
    let too_large = |size: String| {
        Failure::Final(format!(
            "the answer ({size}) is larger than the response cap of {} MiB (PBIOPS_HTTP_MAX_RESPONSE_MB)",
            cap / (1024 * 1024)
        ))
    };
    let declared = resp.content_length();
    if let Some(length) = declared.filter(|l| *l > cap as u64) {
        return Err(too_large(format!("{length} bytes")));
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |l| l as usize));
    loop {
        let chunk = resp.chunk().await.map_err(|e| {
            Failure::Transport(format!(
                "reading the answer failed after {} bytes: {}",
                body.len(),
                describe(&e)
            ))
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > cap {
            return Err(too_large(format!(
                "over {} bytes",
                body.len() + chunk.len()
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(body)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Why a success answer cannot be the API's, if it cannot: an HTML page, a JSON body that does
/// not parse, or no body where one is due (a read, or a token request). A trigger's or cancel's
/// success may have no body whatever its content type (Power BI's refresh POST answers 202 with
/// `Content-Length: 0`; a Gen1 refresh POST 200 with no body).
pub(super) fn unreadable(method: &Method, endpoint: &str, response: &Response) -> Option<String> {
    let content_type = response
        .header(CONTENT_TYPE.as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = response.body.trim_start();
    if body.is_empty() {
        let due = *method == Method::GET || endpoint.starts_with("token");
        return due.then(|| "the answer has an empty body".to_string());
    }
    if content_type.contains("html") || body.starts_with('<') {
        return Some(format!(
            "the answer is an HTML page ({})",
            describe_text(body)
        ));
    }
    let looks_json = content_type.contains("json") || body.starts_with(['{', '[']);
    if looks_json {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(body) {
            return Some(format!("the answer is not valid JSON ({e})"));
        }
    }
    None
}

/// The start of a body, on one line, for a message.
pub(super) fn describe_text(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = line.chars().take(80).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    if short.is_empty() {
        "empty".into()
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn response(content_type: &str, body: &str) -> Response {
        let mut headers = HeaderMap::new();
        if !content_type.is_empty() {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_str(content_type).expect("ascii"),
            );
        }
        Response {
            status: 200,
            headers,
            body: body.into(),
        }
    }

    #[test]
    fn only_answers_no_api_gives_are_unreadable() {
        let json = "application/json; charset=utf-8";
        let (get, post) = (Method::GET, Method::POST);
        assert!(unreadable(&get, "groups", &response(json, r#"{"value":[]}"#)).is_none());
        assert!(unreadable(&get, "groups", &response(json, "")).is_some());
        assert!(unreadable(&get, "groups", &response("", "")).is_some());
        let trigger = "refresh.post";
        assert!(
            unreadable(&post, trigger, &response("", "")).is_none(),
            "202, no body"
        );
        assert!(unreadable(&post, trigger, &response(json, "")).is_none());
        assert!(unreadable(&post, "token", &response(json, "")).is_some());
        let html = response("text/html", "<html></html>");
        assert!(unreadable(&get, "groups", &html).is_some());
        let page = response("", "<!DOCTYPE html>");
        assert!(unreadable(&post, trigger, &page).is_some());
        let cut = unreadable(&get, "groups", &response(json, r#"{"value":[{"id":"#));
        assert!(cut.is_some_and(|w| w.contains("not valid JSON")));
        let text = response("text/plain", "accepted");
        assert!(unreadable(&post, trigger, &text).is_none());
    }

    #[test]
    fn a_described_body_is_short_and_on_one_line() {
        assert_eq!(
            describe_text("<html>  <body>x</body>"),
            "<html> <body>x</body>"
        );
        assert_eq!(describe_text("a\nb"), "a b");
        assert_eq!(describe_text(&"x".repeat(200)).chars().count(), 81);
        assert_eq!(describe_text(""), "empty");
    }
}
