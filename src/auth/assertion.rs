//! Client assertions: a JWT signed with the profile's certificate, or a federated token.
//!
//! Entra ID's certificate credential is an RS256 JWT whose header names the certificate by its
//! SHA-256 thumbprint (`x5t#S256`), with `aud` the token endpoint, `iss` = `sub` = the client id,
//! a unique `jti` and a short lifetime. A federated credential is a token another issuer signed
//! (AKS projects one into a file and rotates it), sent as the assertion unchanged.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// How long a certificate assertion is valid; Entra ID only needs it for the one request.
const LIFETIME_SECS: i64 = 600;

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// The PEM blocks of `text`: (label, whole block text).
fn pem_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            break;
        };
        let block_end = start + end + end_marker.len();
        blocks.push((label, &rest[start..block_end]));
        rest = &rest[block_end..];
    }
    blocks
}

/// The base64url SHA-256 thumbprint of the first certificate in `pem`.
fn thumbprint(cert_block: &str) -> Option<String> {
    let body: String = cert_block
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&der)))
}

/// Signs a client assertion for `client_id` at `token_url` with the certificate and key in `pem`.
pub fn certificate(
    pem: &SecretString,
    variable: &str,
    client_id: &str,
    token_url: &str,
) -> Result<SecretString, Error> {
    let text = pem.expose_secret();
    let blocks = pem_blocks(text);
    let help = "the PEM must hold the certificate (BEGIN CERTIFICATE) and its RSA private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)";
    let cert = blocks
        .iter()
        .find(|(label, _)| *label == "CERTIFICATE")
        .ok_or_else(|| Error::setting(variable, "holds no certificate", help))?;
    let key = blocks
        .iter()
        .find(|(label, _)| matches!(*label, "PRIVATE KEY" | "RSA PRIVATE KEY"))
        .ok_or_else(|| Error::setting(variable, "holds no private key", help))?;
    let x5t = thumbprint(cert.1)
        .ok_or_else(|| Error::setting(variable, "the certificate is not valid base64 DER", help))?;
    let key = EncodingKey::from_rsa_pem(key.1.as_bytes()).map_err(|_| {
        Error::setting(
            variable,
            "the private key is not an RSA key pbiops can read",
            help,
        )
    })?;
    let mut header = Header::new(Algorithm::RS256);
    header.x5t_s256 = Some(x5t);
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        aud: token_url,
        iss: client_id,
        sub: client_id,
        jti: format!("{:032x}", fastrand::u128(..)),
        nbf: now - 60,
        iat: now,
        exp: now + LIFETIME_SECS,
    };
    let jwt = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| {
        Error::setting(
            variable,
            format!("cannot sign the client assertion: {e}"),
            help,
        )
    })?;
    Ok(SecretString::from(jwt))
}

/// Reads the federated token file; it is read at every acquisition because it is rotated.
pub fn federated(path: &std::path::Path, variable: &str) -> Result<SecretString, Error> {
    let token = std::fs::read_to_string(path).map_err(|e| {
        Error::setting(
            variable,
            format!(
                "cannot read the federated token file {}: {e}",
                path.display()
            ),
            "on AKS, check that the pod's service account is annotated for workload identity",
        )
    })?;
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::setting(
            variable,
            format!("the federated token file {} is empty", path.display()),
            "the file must hold the issuer's token",
        ));
    }
    Ok(SecretString::from(token.to_string()))
}

/// The `aud` claim of a JWT, read without checking anything (for a warning, never a decision).
pub fn audiences(jwt: &SecretString) -> Option<Vec<String>> {
    let payload = jwt.expose_secret().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match &claims["aud"] {
        serde_json::Value::String(a) => Some(vec![a.clone()]),
        serde_json::Value::Array(list) => Some(
            list.iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["pbiops".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        format!("{}{}", cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_certificate_assertion_names_the_thumbprint_and_the_client() {
        let pem = pem();
        let jwt = certificate(
            &SecretString::from(pem.clone()),
            "PBIOPS_CERTIFICATE",
            "client-1",
            "https://login/t/oauth2/v2.0/token",
        )
        .expect("signed");
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> serde_json::Value {
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .expect("b64"),
            )
            .expect("json")
        };
        let header = decode(parts[0]);
        let claims = decode(parts[1]);
        assert_eq!(header["alg"], "RS256");
        let cert = pem_blocks(&pem)
            .into_iter()
            .find(|(l, _)| *l == "CERTIFICATE")
            .expect("cert")
            .1;
        assert_eq!(
            header["x5t#S256"],
            serde_json::json!(thumbprint(cert).expect("thumbprint"))
        );
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://login/t/oauth2/v2.0/token");
        assert!(claims["exp"].as_i64().expect("exp") > claims["iat"].as_i64().expect("iat"));
    }

    #[test]
    fn a_pem_without_a_key_is_a_setting_error_that_does_not_echo_it() {
        let pem = pem();
        let cert_only: String = pem_blocks(&pem)
            .into_iter()
            .filter(|(l, _)| *l == "CERTIFICATE")
            .map(|(_, b)| b)
            .collect();
        let err = certificate(
            &SecretString::from(cert_only),
            "PBIOPS_CERTIFICATE_PATH",
            "c",
            "u",
        )
        .expect_err("no key");
        assert_eq!(
            err.to_string(),
            "invalid setting: `PBIOPS_CERTIFICATE_PATH`: holds no private key"
        );
    }
}
