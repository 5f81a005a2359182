//! Profiles: one service principal (or managed identity) each, and how it authenticates.
//!
//! A profile's method is inferred from the one credential it sets (a secret, a certificate, a
//! federated token file or a managed identity); `…_AUTH` names it explicitly. Two credentials on
//! one profile are contradictory and refused, naming both variables, because silently preferring
//! one would hide a rotation gone wrong.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;

use super::{Cloud, Endpoints, Overrides};
use crate::error::Error;

/// Every per-profile field, as `PBIOPS_PROFILE_<NAME>_<FIELD>` (or `PBIOPS_<FIELD>` for `default`).
pub const FIELDS: &[&str] = &[
    "TENANT_ID",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CERTIFICATE_PATH",
    "CERTIFICATE",
    "FEDERATED_TOKEN_FILE",
    "MANAGED_IDENTITY",
    "AUTH",
    "CLOUD",
];

/// The auth methods, as `…_AUTH` names them.
pub const METHODS: &[&str] = &["secret", "certificate", "federated", "managed-identity"];

/// How a managed identity's token endpoint is reached.
#[derive(Debug, Clone)]
pub enum ManagedIdentityEndpoint {
    /// The Azure Instance Metadata Service (VMs, AKS node identity, Container Instances).
    Imds {
        /// `…/metadata/identity/oauth2/token`.
        url: String,
    },
    /// App Service / Container Apps / Functions: `IDENTITY_ENDPOINT` with `IDENTITY_HEADER`.
    AppService {
        /// `IDENTITY_ENDPOINT`.
        url: String,
        /// `IDENTITY_HEADER`, sent as `X-IDENTITY-HEADER`.
        header: SecretString,
    },
}

/// A profile's credential.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Client secret.
    Secret(SecretString),
    /// A PEM holding the certificate and its private key; signed into a JWT client assertion.
    Certificate {
        /// The PEM text.
        pem: SecretString,
        /// The variable it came from, for errors.
        variable: String,
    },
    /// A federated token file (workload identity), read at each acquisition: it is rotated.
    Federated {
        /// The file.
        path: PathBuf,
        /// The variable it came from, for errors.
        variable: String,
    },
    /// A managed identity; `client_id` selects a user-assigned one.
    ManagedIdentity {
        /// Client id of a user-assigned identity; `None` for the system-assigned one.
        client_id: Option<String>,
        /// Where to ask for tokens.
        endpoint: ManagedIdentityEndpoint,
    },
}

/// One profile, checked and complete.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile name (`default` for the unprefixed variables).
    pub name: String,
    /// Tenant id or domain (not used by managed identities).
    pub tenant_id: String,
    /// Application (client) id (empty for a system-assigned managed identity).
    pub client_id: String,
    /// How it authenticates.
    pub credential: Credential,
    /// Its cloud: scopes, audiences and (with [`Profile::endpoints`]) hosts.
    pub cloud: Cloud,
    /// The variable the cloud came from (`PBIOPS_CLOUD` when the profile names none), for errors.
    pub cloud_variable: String,
    /// The profile's own endpoints, when its cloud is not the settings' cloud; `None`: the
    /// settings' endpoints apply.
    pub endpoints: Option<Endpoints>,
}

impl Profile {
    /// The method's name, as `…_AUTH` writes it.
    pub fn method(&self) -> &'static str {
        match self.credential {
            Credential::Secret(_) => "secret",
            Credential::Certificate { .. } => "certificate",
            Credential::Federated { .. } => "federated",
            Credential::ManagedIdentity { .. } => "managed-identity",
        }
    }
}

/// The variable that holds `field` (`TENANT_ID`, …) of profile `name`.
pub fn profile_var(name: &str, field: &str) -> String {
    if name == "default" {
        format!("PBIOPS_{field}")
    } else {
        format!("PBIOPS_PROFILE_{}_{field}", name.to_ascii_uppercase())
    }
}

/// Raw profile variables: profile name → field → (variable, value).
pub type RawProfiles = BTreeMap<String, BTreeMap<String, (String, String)>>;

/// Splits `PBIOPS_PROFILE_<NAME>_<FIELD>` into (name, field); the longest field name wins, so
/// `…_CERTIFICATE_PATH` is never read as a profile named `…_CERTIFICATE` with field `PATH`.
pub fn split_profile_var(key: &str) -> Option<Result<(String, &'static str), Error>> {
    let rest = key.strip_prefix("PBIOPS_PROFILE_")?;
    let mut fields: Vec<&'static str> = FIELDS.to_vec();
    fields.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let found = fields.into_iter().find(|f| {
        rest.len() > f.len() + 1
            && rest.ends_with(f)
            && rest.as_bytes()[rest.len() - f.len() - 1] == b'_'
    });
    Some(match found {
        Some(field) => Ok((
            rest[..rest.len() - field.len() - 1].to_ascii_lowercase(),
            field,
        )),
        None => Err(Error::setting(
            key,
            "is not a profile setting",
            format!(
                "profile variables are PBIOPS_PROFILE_<NAME>_<FIELD>, FIELD one of {}",
                FIELDS.join(", ")
            ),
        )),
    })
}

/// Builds profile `name` from its raw variables.
pub fn build(
    name: &str,
    raw: &RawProfiles,
    managed_identity: &ManagedIdentityEndpoint,
    (default_cloud, overrides): (Cloud, &Overrides),
) -> Result<Profile, Error> {
    let Some(fields) = raw.get(name) else {
        let known: Vec<&str> = raw.keys().map(String::as_str).collect();
        return Err(Error::setting(
            profile_var(name, "TENANT_ID"),
            format!("profile `{name}` has no settings"),
            format!(
                "set PBIOPS_PROFILE_{}_* (or use a configured profile: {})",
                name.to_ascii_uppercase(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let get = |field: &str| fields.get(field).map(|(_, v)| v.clone());
    let var = |field: &str| {
        fields
            .get(field)
            .map_or_else(|| profile_var(name, field), |(k, _)| k.clone())
    };
    let require = |field: &str| {
        get(field).ok_or_else(|| {
            Error::setting(
                var(field),
                "is not set",
                format!("set {} for profile `{name}`", var(field)),
            )
        })
    };

    let (cloud, cloud_variable) = match fields.get("CLOUD") {
        Some((variable, value)) => (Cloud::parse(variable, value)?, variable.clone()),
        None => (default_cloud, "PBIOPS_CLOUD".to_string()),
    };
    let endpoints = (cloud != default_cloud).then(|| Endpoints::of(cloud, overrides));
    let given: Vec<(&str, &str)> = [
        ("secret", "CLIENT_SECRET"),
        ("certificate", "CERTIFICATE_PATH"),
        ("certificate", "CERTIFICATE"),
        ("federated", "FEDERATED_TOKEN_FILE"),
        ("managed-identity", "MANAGED_IDENTITY"),
    ]
    .into_iter()
    .filter(|(_, field)| fields.contains_key(*field))
    .collect();
    let method = match get("AUTH") {
        Some(m) => {
            let m = m.to_ascii_lowercase();
            if !METHODS.contains(&m.as_str()) {
                return Err(Error::setting(
                    var("AUTH"),
                    format!("`{m}` is not an auth method"),
                    format!("one of: {}", METHODS.join(", ")),
                ));
            }
            m
        }
        None => match given.as_slice() {
            [] => {
                return Err(Error::setting(
                    var("CLIENT_SECRET"),
                    format!("profile `{name}` has no credential"),
                    format!(
                        "set one of {}, {}, {} or {}",
                        var("CLIENT_SECRET"),
                        var("CERTIFICATE_PATH"),
                        var("FEDERATED_TOKEN_FILE"),
                        var("MANAGED_IDENTITY")
                    ),
                ));
            }
            [(m, _), ..] => m.to_string(),
        },
    };
    if let Some((_, other)) = given.iter().find(|(m, _)| *m != method) {
        return Err(Error::setting(
            var(other),
            format!("contradicts the {method} credential of profile `{name}`"),
            format!(
                "a profile authenticates one way: unset {} or choose with {}",
                var(other),
                var("AUTH")
            ),
        ));
    }
    if fields.contains_key("CERTIFICATE_PATH") && fields.contains_key("CERTIFICATE") {
        return Err(Error::setting(
            var("CERTIFICATE"),
            format!("is set together with {}", var("CERTIFICATE_PATH")),
            "give the certificate once: a file path, or the PEM (or its base64) in the variable",
        ));
    }

    let credential = match method.as_str() {
        "secret" => Credential::Secret(SecretString::from(require("CLIENT_SECRET")?)),
        "certificate" => certificate(&get, &var)?,
        "federated" => {
            let path = require("FEDERATED_TOKEN_FILE")?;
            Credential::Federated {
                path: PathBuf::from(path),
                variable: var("FEDERATED_TOKEN_FILE"),
            }
        }
        _ => {
            let value = get("MANAGED_IDENTITY").unwrap_or_else(|| "system".into());
            // `system` means the system-assigned identity, whatever CLIENT_ID says.
            let client_id = match value.to_ascii_lowercase().as_str() {
                "system" | "true" => None,
                _ => Some(value),
            };
            return Ok(Profile {
                name: name.to_string(),
                tenant_id: get("TENANT_ID").unwrap_or_default(),
                client_id: client_id.clone().unwrap_or_default(),
                credential: Credential::ManagedIdentity {
                    client_id,
                    endpoint: managed_identity.clone(),
                },
                cloud,
                cloud_variable,
                endpoints,
            });
        }
    };
    Ok(Profile {
        name: name.to_string(),
        tenant_id: require("TENANT_ID")?,
        client_id: require("CLIENT_ID")?,
        credential,
        cloud,
        cloud_variable,
        endpoints,
    })
}

fn certificate(
    get: &dyn Fn(&str) -> Option<String>,
    var: &dyn Fn(&str) -> String,
) -> Result<Credential, Error> {
    if let Some(path) = get("CERTIFICATE_PATH") {
        let variable = var("CERTIFICATE_PATH");
        let pem = std::fs::read_to_string(&path).map_err(|e| {
            Error::setting(
                &variable,
                format!("cannot read {path}: {e}"),
                "point it at a PEM file holding the certificate and its private key",
            )
        })?;
        return Ok(Credential::Certificate {
            pem: SecretString::from(pem),
            variable,
        });
    }
    let variable = var("CERTIFICATE");
    let Some(text) = get("CERTIFICATE") else {
        return Err(Error::setting(
            var("CERTIFICATE_PATH"),
            "is not set",
            format!(
                "a certificate profile needs {} (a PEM file) or {variable}",
                var("CERTIFICATE_PATH")
            ),
        ));
    };
    let pem = if text.contains("-----BEGIN") {
        text
    } else {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.split_whitespace().collect::<String>())
            .map_err(|_| {
                Error::setting(
                    &variable,
                    "is neither PEM nor base64",
                    "put the PEM text, or its base64, in the variable",
                )
            })?;
        String::from_utf8(bytes).map_err(|_| {
            Error::setting(
                &variable,
                "decodes to binary, not PEM",
                "convert a .pfx with `openssl pkcs12 -nodes` to PEM first",
            )
        })?
    };
    Ok(Credential::Certificate {
        pem: SecretString::from(pem),
        variable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str, &str)]) -> RawProfiles {
        let mut raw = RawProfiles::new();
        for (name, field, value) in pairs {
            raw.entry(name.to_string()).or_default().insert(
                field.to_string(),
                (profile_var(name, field), value.to_string()),
            );
        }
        raw
    }

    const IMDS: ManagedIdentityEndpoint = ManagedIdentityEndpoint::Imds { url: String::new() };

    fn build(
        name: &str,
        raw: &RawProfiles,
        mi: &ManagedIdentityEndpoint,
    ) -> Result<Profile, Error> {
        super::build(name, raw, mi, (Cloud::Public, &Overrides::default()))
    }

    #[test]
    fn a_profile_in_another_cloud_carries_that_cloud_s_endpoints() {
        let r = raw(&[
            ("gov", "TENANT_ID", "t"),
            ("gov", "CLIENT_ID", "c"),
            ("gov", "CLIENT_SECRET", "s"),
            ("gov", "CLOUD", "usgovhigh"),
            ("pub", "TENANT_ID", "t"),
            ("pub", "CLIENT_ID", "c"),
            ("pub", "CLIENT_SECRET", "s"),
        ]);
        let gov = build("gov", &r, &IMDS).expect("valid");
        assert_eq!(
            (gov.cloud, gov.cloud_variable.as_str()),
            (Cloud::UsGovHigh, "PBIOPS_PROFILE_GOV_CLOUD")
        );
        let endpoints = gov.endpoints.expect("own endpoints");
        assert_eq!(endpoints.authority, "https://login.microsoftonline.us");
        assert_eq!(
            endpoints.powerbi,
            "https://api.high.powerbigov.us/v1.0/myorg"
        );
        assert_eq!(endpoints.fabric, "");
        let public = build("pub", &r, &IMDS).expect("valid");
        assert!(public.endpoints.is_none() && public.cloud == Cloud::Public);
        let r = raw(&[("x", "CLOUD", "mars"), ("x", "MANAGED_IDENTITY", "system")]);
        assert!(
            build("x", &r, &IMDS)
                .expect_err("unknown cloud")
                .to_string()
                .contains("PBIOPS_PROFILE_X_CLOUD")
        );
    }

    #[test]
    fn the_method_follows_the_one_credential_given() {
        let r = raw(&[
            ("fin", "TENANT_ID", "t"),
            ("fin", "CLIENT_ID", "c"),
            ("fin", "FEDERATED_TOKEN_FILE", "/var/run/token"),
        ]);
        assert_eq!(
            build("fin", &r, &IMDS).expect("valid").method(),
            "federated"
        );
        let r = raw(&[("mi", "MANAGED_IDENTITY", "system")]);
        let p = build("mi", &r, &IMDS).expect("valid");
        assert_eq!(p.method(), "managed-identity");
        assert!(matches!(
            p.credential,
            Credential::ManagedIdentity {
                client_id: None,
                ..
            }
        ));
    }

    #[test]
    fn two_credentials_are_contradictory_and_named() {
        let r = raw(&[
            ("fin", "TENANT_ID", "t"),
            ("fin", "CLIENT_ID", "c"),
            ("fin", "CLIENT_SECRET", "s"),
            ("fin", "MANAGED_IDENTITY", "system"),
        ]);
        let err = build("fin", &r, &IMDS).expect_err("contradictory");
        assert!(
            err.to_string().contains(
                "`PBIOPS_PROFILE_FIN_MANAGED_IDENTITY`: contradicts the secret credential"
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_pieces_name_the_variable() {
        let r = raw(&[("fin", "CLIENT_SECRET", "s"), ("fin", "CLIENT_ID", "c")]);
        assert!(
            build("fin", &r, &IMDS)
                .expect_err("no tenant")
                .to_string()
                .contains("PBIOPS_PROFILE_FIN_TENANT_ID")
        );
        let r = raw(&[("fin", "TENANT_ID", "t")]);
        assert!(
            build("fin", &r, &IMDS)
                .expect_err("no credential")
                .hint()
                .expect("hint")
                .contains("PBIOPS_PROFILE_FIN_CERTIFICATE_PATH")
        );
        let r = raw(&[("fin", "AUTH", "kerberos")]);
        assert!(
            build("fin", &r, &IMDS)
                .expect_err("bad method")
                .to_string()
                .contains("PBIOPS_PROFILE_FIN_AUTH")
        );
    }

    #[test]
    fn profile_variables_split_on_the_longest_field() {
        let (name, field) = split_profile_var("PBIOPS_PROFILE_SALES_EU_CERTIFICATE_PATH")
            .expect("profile")
            .expect("valid");
        assert_eq!((name.as_str(), field), ("sales_eu", "CERTIFICATE_PATH"));
        assert!(
            split_profile_var("PBIOPS_PROFILE_X_CLIENT_SECERT")
                .expect("profile")
                .is_err()
        );
        assert!(split_profile_var("PBIOPS_TENANT_ID").is_none());
    }
}
