//! Keeping secrets out of every text pbiops prints, including panics.
//!
//! Secrets live in `secrecy::SecretString` and are exposed only on the line that sends them, so
//! no formatted value carries one. This module is the second line of defence: any text printed
//! on a path that could echo input (errors, panics) is scrubbed of the known secret values and of
//! credential-bearing URL query parameters.

use std::sync::OnceLock;

static KNOWN: OnceLock<Vec<String>> = OnceLock::new();

/// URL query parameters that carry credentials (a Power Automate trigger's `sig`, OAuth codes).
const SECRET_PARAMS: &[&str] = &["sig", "code", "client_secret", "access_token", "token"];

/// Registers the secret values of this run (client secrets from the environment).
pub fn register(secrets: Vec<String>) {
    let secrets = secrets.into_iter().filter(|s| s.len() >= 4).collect();
    let _ = KNOWN.set(secrets);
}

/// Replaces known secret values and secret query parameters in `text`.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for secret in KNOWN.get().map(Vec::as_slice).unwrap_or_default() {
        out = out.replace(secret.as_str(), "REDACTED");
    }
    for param in SECRET_PARAMS {
        out = scrub_param(&out, param);
    }
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
