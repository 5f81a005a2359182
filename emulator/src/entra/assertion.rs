//! Signed client assertions on the token endpoint (`client_assertion_type=…jwt-bearer`): a JWT
//! signed with one of the app's registered certificates, or an external token matching one of its
//! federated identity credentials (workload identity federation).
//!
//! The checks and their AADSTS codes follow Microsoft's "certificate credentials" article and the
//! Azure SDK troubleshooting tables (README "Tokens"). Times are judged by the emulator's clock, so
//! an assertion minted by the wall clock expires when a test advances the emulator's clock past it.

use crate::scenario::ClientApp;
use axum::http::StatusCode;
use jiff::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;
use std::collections::HashSet;

/// The only `client_assertion_type` Entra ID accepts.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Why an assertion was refused: the Entra ID error to answer with.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub text: String,
}

fn invalid_client(code: u32, text: String) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        code,
        text,
    }
}

fn malformed(detail: &str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        code: 50027,
        text: format!("JWT token is invalid or malformed ({detail})."),
    }
}

/// Checks `assertion` for `client`; `audiences` are the token endpoint URLs it may name.
pub(crate) fn verify(
    client: &ClientApp,
    assertion: &str,
    audiences: &[String],
    now: Timestamp,
) -> Result<(), Refusal> {
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|_| malformed("not a signed JWT"))?;
    if header.x5t_s256.is_some() || header.x5t.is_some() {
        certificate(client, &header, assertion, audiences, now)
    } else {
        federated(client, assertion, now)
    }
}

/// A JWT the app signed itself with a registered certificate.
fn certificate(
    client: &ClientApp,
    header: &Header,
    assertion: &str,
    audiences: &[String],
    now: Timestamp,
) -> Result<(), Refusal> {
    let app = &client.client_id;
    let thumbprint = header.x5t_s256.clone().unwrap_or_default();
    let reason = |why: &str| {
        invalid_client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - {why}, Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{app}'.]"
            ),
        )
    };
    // Only `x5t#S256` is emulated; a SHA-1 `x5t` alone finds no key.
    let cert = client
        .certificates
        .iter()
        .find(|c| !thumbprint.is_empty() && c.thumbprint().ok().as_deref() == Some(&thumbprint))
        .ok_or_else(|| reason("The key was not found."))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(reason(
            "The algorithm is not supported; use PS256 or RS256.",
        ));
    }
    let key = cert.key().map_err(|_| reason("The key was not found."))?;
    let claims = verified_claims(assertion, &key, header.alg).map_err(|kind| match kind {
        ErrorKind::InvalidSignature => {
            reason("The provided signature value did not match the expected signature value.")
        }
        _ => malformed("the claims cannot be read"),
    })?;
    let (iss, sub) = (string(&claims, "iss"), string(&claims, "sub"));
    let is_app = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(app));
    if !is_app(iss) || !is_app(sub) {
        return Err(invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .".to_owned(),
        ));
    }
    let aud = audience(&claims);
    if !aud
        .iter()
        .any(|a| audiences.iter().any(|ok| ok.eq_ignore_ascii_case(a)))
    {
        return Err(invalid_client(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. Expected one of: {}.",
                audiences.join(", ")
            ),
        ));
    }
    if string(&claims, "jti").is_none_or(str::is_empty) {
        return Err(malformed("the 'jti' claim is missing"));
    }
    time_window(&claims, now)
}

/// An external token presented for a federated identity credential.
fn federated(client: &ClientApp, assertion: &str, now: Timestamp) -> Result<(), Refusal> {
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
        .map_err(|_| malformed("the claims cannot be read"))?
        .claims;
    let iss = string(&unverified, "iss").unwrap_or_default();
    let sub = string(&unverified, "sub").unwrap_or_default();
    let aud = audience(&unverified);
    let no_match = || Refusal {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        code: 70021,
        text: format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation",
            aud.join(",")
        ),
    };
    let claims = client
        .federated_credentials
        .iter()
        .filter(|f| f.issuer == iss && f.subject == sub && aud.contains(&f.audience.as_str()))
        .find_map(|f| {
            let key: DecodingKey = f.key().ok()?;
            verified_claims(assertion, &key, Algorithm::RS256).ok()
        })
        .ok_or_else(no_match)?;
    time_window(&claims, now)
}

/// The claims of a JWT whose signature `key` verifies (times are checked separately, on the
/// emulator's clock).
fn verified_claims(assertion: &str, key: &DecodingKey, alg: Algorithm) -> Result<Value, ErrorKind> {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Value>(assertion, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.into_kind())
}

/// `exp` is required and must be in the future; `nbf`, when present, must have passed.
fn time_window(claims: &Value, now: Timestamp) -> Result<(), Refusal> {
    let seconds = |name: &str| claims.get(name).and_then(Value::as_f64);
    let now_s = now.as_second() as f64;
    let exp = seconds("exp");
    let nbf = seconds("nbf");
    let valid = exp.is_some_and(|exp| now_s < exp) && nbf.is_none_or(|nbf| nbf <= now_s);
    if valid {
        return Ok(());
    }
    let show = |v: Option<f64>| {
        v.and_then(|s| Timestamp::from_second(s as i64).ok())
            .map_or_else(|| "none".to_owned(), |t| t.to_string())
    };
    Err(invalid_client(
        700024,
        format!(
            "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {}, expiry time of assertion {}.",
            show(nbf),
            show(exp)
        ),
    ))
}

fn string<'a>(claims: &'a Value, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// `aud` as a list (a string or an array of strings).
fn audience(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
