//! Keeping secrets out of every text pbiops prints, including panics.
//!
//! Secrets live in `secrecy::SecretString` and are exposed only on the line that sends them, so
//! no formatted value carries one. This module is the second line of defence: any text printed
//! on a path that could echo input (errors, panics) is scrubbed of the known secret values, of
//! every access token this run sent (a service may echo one in an error body), of anything that
//! looks like a JWT or follows `Bearer `, and of credential-bearing URL query parameters.

use std::sync::{Mutex, OnceLock};

static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
/// Access tokens sent so far (newest last), at most [`MAX_TOKENS`].
static TOKENS: Mutex<Vec<String>> = Mutex::new(Vec::new());
const MAX_TOKENS: usize = 64;
/// Shortest run of base64url characters that counts as a JWT segment.
const JWT_SEGMENT: usize = 8;

/// URL query parameters that carry credentials (a Power Automate trigger's `sig`, OAuth codes).
const SECRET_PARAMS: &[&str] = &["sig", "code", "client_secret", "access_token", "token"];

/// Registers the secret values of this run (client secrets from the environment).
pub fn register(secrets: Vec<String>) {
    let secrets = secrets.into_iter().filter(|s| s.len() >= 4).collect();
    let _ = KNOWN.set(secrets);
}

/// Remembers an access token this run sent, so that no printed or stored text carries it.
pub fn remember(token: &str) {
    if token.len() < 8 {
        return;
    }
    let mut tokens = TOKENS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if tokens.iter().any(|t| t == token) {
        return;
    }
    if tokens.len() >= MAX_TOKENS {
        tokens.remove(0);
    }
    tokens.push(token.to_string());
}

/// Replaces known secret values, remembered tokens, JWTs, `Bearer …` credentials and secret
/// query parameters in `text`.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for secret in KNOWN.get().map(Vec::as_slice).unwrap_or_default() {
        out = out.replace(secret.as_str(), "REDACTED");
    }
    if let Ok(tokens) = TOKENS.lock() {
        for token in tokens.iter() {
            out = out.replace(token.as_str(), "REDACTED");
        }
    }
    out = scrub_jwts(&out);
    out = scrub_bearer(&out);
    for param in SECRET_PARAMS {
        out = scrub_param(&out, param);
    }
    out
}

fn base64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Replaces every `eyJ….….…` (a JWT: base64url header, payload and signature) with `REDACTED`.
fn scrub_jwts(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = text[at..].find("eyJ") {
        let start = at + found;
        let run = |from: usize| bytes[from..].iter().take_while(|c| base64url(**c)).count();
        let boundary = start == 0 || !base64url(bytes[start - 1]);
        let header = run(start);
        let mut end = start + header;
        let mut segments = 1;
        while segments < 3 && bytes.get(end) == Some(&b'.') {
            let next = run(end + 1);
            if next < JWT_SEGMENT && segments < 2 {
                break;
            }
            end += 1 + next;
            segments += 1;
        }
        if boundary && segments == 3 && header >= JWT_SEGMENT {
            out.push_str(&text[copied..start]);
            out.push_str("REDACTED");
            copied = end;
            at = end;
        } else {
            at = start + 3;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Replaces the credential (16 characters or more) after every `Bearer ` with `REDACTED`.
fn scrub_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = text[at..].find("Bearer ") {
        let start = at + found + "Bearer ".len();
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | ')' | '}'))
            .unwrap_or(text.len() - start);
        if len >= 16 && text[start..start + len] != *"REDACTED" {
            out.push_str(&text[copied..start]);
            out.push_str("REDACTED");
            copied = start + len;
        }
        at = start + len.max(1).min(text.len() - start);
        if at >= text.len() {
            break;
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn scrub_param(text: &str, param: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let pattern = format!("{param}=");
    while let Some(pos) = rest.find(&pattern) {
        let boundary = pos == 0 || matches!(rest.as_bytes()[pos - 1], b'?' | b'&');
        out.push_str(&rest[..pos + pattern.len()]);
        rest = &rest[pos + pattern.len()..];
        if boundary {
            let end = rest
                .find(|c: char| c == '&' || c == '#' || c.is_whitespace() || c == '"' || c == '\'')
                .unwrap_or(rest.len());
            if end > 0 {
                out.push_str("REDACTED");
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the panic hook with one that scrubs the message and never prints a backtrace.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "pbiops: internal error{location}: {}; please report it",
            scrub(&payload)
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_bearer_credentials_and_sent_tokens_are_redacted() {
        // A made-up token of the JWT shape (header, claims, signature), assembled here so that no
        // token-looking text sits in the source.
        let jwt = [
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJhdWQiOiJodHRwczovL2FuYWx5c2lzIn0",
            "c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        ]
        .join(".");
        let body = format!(r#"{{"error":{{"message":"token {jwt} expired"}}}}"#);
        assert_eq!(
            scrub(&body),
            r#"{"error":{"message":"token REDACTED expired"}}"#
        );
        assert_eq!(
            scrub("Authorization: Bearer opaque-token-123456, next"),
            "Authorization: Bearer REDACTED, next"
        );
        assert_eq!(
            scrub("Bearer short"),
            "Bearer short",
            "too short to be a token"
        );
        assert_eq!(scrub("a bearer credential"), "a bearer credential");
        remember("CANARYTOKEN-opaque-abcdef");
        assert_eq!(
            scrub("echoed: CANARYTOKEN-opaque-abcdef!"),
            "echoed: REDACTED!"
        );
        assert_eq!(scrub("eyJ alone, a.b.c"), "eyJ alone, a.b.c");
        assert_eq!(scrub("no secrets at all"), "no secrets at all");
    }

    #[test]
    fn signed_url_parameters_are_redacted() {
        let url = "https://x.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers&sv=1.0&sig=AbC123-_x&other=1";
        assert_eq!(
            scrub_param(url, "sig"),
            "https://x.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers&sv=1.0&sig=REDACTED&other=1"
        );
        assert_eq!(
            scrub_param("design=1&sig=a", "sig"),
            "design=1&sig=REDACTED"
        );
        assert_eq!(scrub_param("no secrets here", "sig"), "no secrets here");
    }
}
