//! Identities in a scenario: tenants and their app registrations (client secrets, certificates,
//! federated credentials) and managed identities.
//!
//! Keys are checked when the scenario is parsed, so a certificate that could never verify an
//! assertion fails the scenario (naming its field) instead of failing a token request later.

use super::Scenario;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// An Entra ID tenant, addressable by its GUID or its domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenant {
    /// Tenant GUID.
    pub id: String,
    /// Tenant domain, e.g. `contoso.onmicrosoft.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// App registrations (service principals) of the tenant.
    #[serde(default)]
    pub clients: Vec<ClientApp>,
    /// Fabric refuses this tenant's service principals for Dataflow jobs.
    #[serde(default)]
    pub refuse_service_principals_for_dataflow_jobs: bool,
}

/// An app registration and its credentials: a client secret, certificates, federated credentials
/// (any combination; none at all means no request can authenticate as it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientApp {
    /// Application (client) id.
    pub client_id: String,
    /// The secret's value: the only thing accepted as `client_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The secret's id, a common mistake to send instead of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// Human-readable name, used as `configuredBy` in examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Registered certificates (public parts only) for signed client assertions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// Federated identity credentials (workload identity federation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_credentials: Vec<FederatedCredential>,
}

/// A certificate registered on an app: `-----BEGIN CERTIFICATE-----…` (RSA key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// The PEM text of the public certificate.
    pub pem: String,
}

/// A federated identity credential: which external tokens may stand for the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedCredential {
    /// The external token's `iss`, compared exactly.
    pub issuer: String,
    /// The external token's `sub`, compared exactly.
    pub subject: String,
    /// A value the external token's `aud` must hold.
    #[serde(default = "default_federated_audience")]
    pub audience: String,
    /// The issuer's RSA public key (`-----BEGIN PUBLIC KEY-----…`), which the emulator uses instead
    /// of fetching the issuer's OpenID configuration.
    pub public_key_pem: String,
}

fn default_federated_audience() -> String {
    "api://AzureADTokenExchange".to_owned()
}

/// A managed identity, as the IMDS and App Service token endpoints serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedIdentity {
    /// The identity's client id (the `client_id` query parameter selects it).
    pub client_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Served when a request names no `client_id` (the system-assigned identity).
    #[serde(default)]
    pub default: bool,
}

impl Certificate {
    /// The DER bytes of the certificate.
    pub(crate) fn der(&self) -> Result<Vec<u8>, String> {
        if self.pem.contains("PRIVATE KEY") {
            return Err("holds a private key; register the public certificate only".to_owned());
        }
        let body = self
            .pem
            .split("-----BEGIN CERTIFICATE-----")
            .nth(1)
            .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
            .ok_or("expected a PEM block '-----BEGIN CERTIFICATE-----'")?;
        let text: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        STANDARD
            .decode(text)
            .map_err(|e| format!("invalid base64 in the PEM block: {e}"))
    }

    /// `x5t#S256`: base64url (no padding) of the SHA-256 of the certificate's DER.
    pub(crate) fn thumbprint(&self) -> Result<String, String> {
        Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(self.der()?)))
    }

    /// The certificate's RSA public key, for verifying signatures.
    pub(crate) fn key(&self) -> Result<DecodingKey, String> {
        self.der()?;
        DecodingKey::from_rsa_pem(self.pem.as_bytes())
            .map_err(|e| format!("not an RSA certificate the emulator can read: {e}"))
    }
}

impl FederatedCredential {
    /// The issuer's RSA public key.
    pub(crate) fn key(&self) -> Result<DecodingKey, String> {
        if self.public_key_pem.contains("PRIVATE KEY") {
            return Err("holds a private key; give the issuer's public key only".to_owned());
        }
        DecodingKey::from_rsa_pem(self.public_key_pem.as_bytes())
            .map_err(|e| format!("not an RSA public key in PEM form: {e}"))
    }
}

/// Checks identities: unique ids, readable keys, at most one default managed identity.
pub(super) fn validate(scenario: &Scenario) -> Result<(), String> {
    for (t, tenant) in scenario.tenants.iter().enumerate() {
        let mut ids = HashSet::new();
        for (c, client) in tenant.clients.iter().enumerate() {
            let at = format!("tenants[{t}].clients[{c}]");
            if !ids.insert(client.client_id.to_ascii_lowercase()) {
                return Err(format!("{at}.clientId: duplicate '{}'", client.client_id));
            }
            for (k, cert) in client.certificates.iter().enumerate() {
                cert.key()
                    .map_err(|e| format!("{at}.certificates[{k}].pem: {e}"))?;
            }
            for (k, fed) in client.federated_credentials.iter().enumerate() {
                fed.key()
                    .map_err(|e| format!("{at}.federatedCredentials[{k}].publicKeyPem: {e}"))?;
            }
        }
    }
    let mut ids = HashSet::new();
    let mut defaults = 0;
    for (m, identity) in scenario.managed_identities.iter().enumerate() {
        if !ids.insert(identity.client_id.to_ascii_lowercase()) {
            return Err(format!(
                "managedIdentities[{m}].clientId: duplicate '{}'",
                identity.client_id
            ));
        }
        if identity.default {
            defaults += 1;
            if defaults > 1 {
                return Err(format!(
                    "managedIdentities[{m}].default: only one managed identity can be the default"
                ));
            }
        }
    }
    Ok(())
}
