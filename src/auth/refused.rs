//! A refused token request, as an error the user can act on: the AADSTS code read from the
//! answer, and a hint that names the variable to fix.

use super::Resource;
use crate::error::{Error, ServiceError};
use crate::settings::{Credential, Profile, profile_var};

/// Builds the error for a refused token request, with a hint per AADSTS code.
pub(super) fn refused(
    profile: &Profile,
    resource: Resource,
    mut service: ServiceError,
    body: &str,
) -> Error {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let aadsts = value["error_codes"][0].as_u64().or_else(|| {
        let desc = value["error_description"].as_str()?;
        let digits: String = desc
            .strip_prefix("AADSTS")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    if let Some(code) = aadsts {
        service.code = Some(format!("AADSTS{code}"));
    }
    let var = |field| profile_var(&profile.name, field);
    let help = match aadsts {
        Some(7000215) => Some(format!(
            "the client secret is wrong: you may have passed the secret's ID, not its value; copy the secret's Value (shown once, when it is created) into {}",
            var("CLIENT_SECRET")
        )),
        Some(7000222) => Some(format!(
            "the client secret has expired: create a new one and update {}",
            var("CLIENT_SECRET")
        )),
        Some(700016) => Some(format!(
            "no application with this id in the tenant: check {} and {} (the app must be registered in, or consented to, that tenant)",
            var("CLIENT_ID"),
            var("TENANT_ID")
        )),
        Some(90002) => Some(format!(
            "the tenant does not exist: check {} (a GUID, or a domain such as contoso.onmicrosoft.com)",
            var("TENANT_ID")
        )),
        Some(7000218) => Some(format!(
            "no client secret was sent: set {}",
            var("CLIENT_SECRET")
        )),
        Some(70011) => {
            Some("the scope was refused: the resource is not available to this tenant".into())
        }
        Some(700024) if matches!(profile.credential, Credential::Federated { .. }) => {
            Some(format!(
                "the federated token has expired or is not yet valid: the platform rotates the file in {}; check that the projection is mounted and the clock is right",
                var("FEDERATED_TOKEN_FILE")
            ))
        }
        Some(700027) | Some(700023) | Some(700024) => Some(format!(
            "the certificate assertion was refused: upload this certificate (its public part) to the app registration's Certificates & secrets, and check the clock; the certificate comes from {}",
            var("CERTIFICATE_PATH")
        )),
        Some(700211) | Some(700212) => Some(format!(
            "no federated credential of the app matches this token's issuer or audience: in cloud `{}` the credential's audience is normally {} and the token in {} must carry it (AKS and managed identities issue it for the audience they are asked for)",
            profile.cloud.name(),
            profile.cloud.federated_audience(),
            var("FEDERATED_TOKEN_FILE")
        )),
        Some(70021) => Some(format!(
            "no federated credential of the app matches this token's issuer and subject: add one in the app registration (Certificates & secrets → Federated credentials) for the token in {}",
            var("FEDERATED_TOKEN_FILE")
        )),
        _ if matches!(profile.credential, Credential::ManagedIdentity { .. }) => Some(format!(
            "the managed identity could not get a token: check that the identity is assigned to this host and, for a user-assigned one, its client id in {}",
            var("MANAGED_IDENTITY")
        )),
        _ => None,
    };
    let (tenant, client_id) = match &profile.credential {
        Credential::ManagedIdentity { client_id, .. } => (
            "managed identity".to_string(),
            client_id
                .clone()
                .unwrap_or_else(|| "system-assigned".into()),
        ),
        _ => (profile.tenant_id.clone(), profile.client_id.clone()),
    };
    Error::TokenRefused {
        profile: profile.name.clone(),
        tenant,
        client_id,
        resource: resource.name().to_string(),
        service,
        help,
    }
}
