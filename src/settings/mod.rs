//! Settings from the environment (`PBIOPS_*`): endpoints, profiles, logging, HTTP budget.
//!
//! This is the only module that reads the environment; everything else receives [`Settings`].
//! Tests pass variables to the child process instead of mutating the test's own environment.
//! Empty values count as unset, because Kestra renders a missing input as `VAR=`.

pub(crate) mod cloud;
pub(crate) mod environ;
mod help;
pub(crate) mod network;
mod profiles;
mod store;
mod values;

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::Error;
use crate::kestra::LogFormat;
pub use cloud::Cloud;
pub use help::ENV_HELP;
pub use network::Network;
pub use profiles::{Credential, ManagedIdentityEndpoint, Profile, profile_var};
pub use store::StoreSettings;
pub use values::parse_log_format;
use values::{
    duration_var, endpoint, explicit, is_loopback, log_level, max_response_mb, positive, slot_lease,
};

const DEFAULT_IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Fixed-name variables, read with envy (prefix `PBIOPS_`).
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    authority_url: Option<String>,
    powerbi_url: Option<String>,
    fabric_url: Option<String>,
    imds_url: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    task: Option<String>,
    http_timeout: Option<String>,
    http_retries: Option<String>,
    http_retry_budget: Option<String>,
    http_max_response_mb: Option<String>,
    odbc: Option<String>,
    data_dir: Option<String>,
    token_key: Option<String>,
    legacy_token_table: Option<String>,
    legacy_token_max_length: Option<String>,
    slot_lease: Option<String>,
    cloud: Option<String>,
    ca_file: Option<String>,
}

/// Whether pbiops reads the environment variable `name` (so a value it cannot read as UTF-8
/// is an error, not something to skip).
pub(crate) fn reads_variable(name: &str) -> bool {
    name.starts_with("PBIOPS_") || FOREIGN.contains(&name)
}

/// Variables outside the `PBIOPS_` prefix that are read, and why.
const FOREIGN: &[&str] = &[
    // The team's Python scripts (fallback for the default profile, with a notice).
    "AZ_TENANT_ID",
    "PBI_CLIENT_ID",
    "PBI_CLIENT_SECRET",
    // Set by AKS workload identity.
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    // Set by App Service / Container Apps for managed identity.
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    // The network path (see `network`).
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    // Read by the TLS library itself; pbiops only warns that it replaces the system's roots.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // Passed by our Kestra flows, recorded in the operation log.
    "KESTRA_EXECUTION_ID",
    "KESTRA_TASKRUN_ID",
    "KESTRA_FLOW_ID",
    "KESTRA_NAMESPACE",
    // The default store location.
    "XDG_DATA_HOME",
    "HOME",
];

/// Base URLs of the remote APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Entra ID authority host, without a trailing slash.
    pub authority: String,
    /// Power BI REST base, e.g. `https://api.powerbi.com/v1.0/myorg`.
    pub powerbi: String,
    /// Fabric REST base; empty in a cloud without Fabric (whose Fabric calls are refused before
    /// anything is sent) unless `PBIOPS_FABRIC_URL` names one.
    pub fabric: String,
}

/// Endpoints set explicitly (checked); they win over every cloud's hosts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    authority: Option<String>,
    powerbi: Option<String>,
    fabric: Option<String>,
}

impl Endpoints {
    /// `cloud`'s hosts, except where `overrides` names one.
    pub(crate) fn of(cloud: Cloud, overrides: &Overrides) -> Endpoints {
        Endpoints {
            authority: overrides
                .authority
                .clone()
                .unwrap_or_else(|| cloud.authority().into()),
            powerbi: overrides
                .powerbi
                .clone()
                .unwrap_or_else(|| cloud.powerbi_api().into()),
            fabric: overrides
                .fabric
                .clone()
                .or_else(|| cloud.fabric().map(|(api, _)| api.to_string()))
                .unwrap_or_default(),
        }
    }
}

/// Retry and timeout budget of HTTP calls.
#[derive(Debug, Clone, Copy)]
pub struct HttpBudget {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts per call on 429, 5xx and network errors.
    pub attempts: u32,
    /// Total time one call may spend retrying.
    pub budget: Duration,
}

/// Kestra's ids for the operation log, when the flow passes them.
#[derive(Debug, Clone, Default)]
pub struct KestraIds {
    /// `KESTRA_EXECUTION_ID`.
    pub execution_id: Option<String>,
    /// `KESTRA_TASKRUN_ID`.
    pub taskrun_id: Option<String>,
    /// `KESTRA_FLOW_ID`.
    pub flow_id: Option<String>,
    /// `KESTRA_NAMESPACE`.
    pub namespace: Option<String>,
}

/// Everything the environment configures.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cloud of every profile that does not name its own.
    pub cloud: Cloud,
    /// API endpoints (of [`Settings::cloud`]; a profile in another cloud carries its own).
    pub endpoints: Endpoints,
    /// Proxies and extra trusted roots.
    pub network: Network,
    /// Log format, when set.
    pub log_format: Option<LogFormat>,
    /// Log level.
    pub log_level: tracing::Level,
    /// `PBIOPS_TASK`, when set.
    pub task: Option<String>,
    /// HTTP budget.
    pub http: HttpBudget,
    /// The store.
    pub store: StoreSettings,
    /// Kestra ids.
    pub kestra: KestraIds,
    /// Things the user should know about how the settings were read (fallbacks used).
    pub notices: Vec<String>,
    overrides: Overrides,
    managed_identity: ManagedIdentityEndpoint,
    profiles: profiles::RawProfiles,
    /// `PBIOPS_FLOW_<NAME>_URL` by lowercase name.
    flows: std::collections::BTreeMap<String, (String, SecretString)>,
}

impl Settings {
    /// Reads settings from `vars` (normally `std::env::vars()`).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Settings, Error> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, v)| {
                (k.starts_with("PBIOPS_") || FOREIGN.contains(&k.as_str())) && !v.trim().is_empty()
            })
            .collect();
        let foreign = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let raw: RawSettings = envy::prefixed("PBIOPS_")
            .from_iter(
                vars.iter()
                    .filter(|(k, _)| k.starts_with("PBIOPS_"))
                    .cloned(),
            )
            .map_err(|e| Error::setting("PBIOPS_*", e.to_string(), "see `pbiops --help`"))?;

        let mut notices = Vec::new();
        let mut profiles = profiles::RawProfiles::new();
        let mut flows = std::collections::BTreeMap::new();
        for (key, value) in &vars {
            if let Some(name) = key
                .strip_prefix("PBIOPS_FLOW_")
                .and_then(|r| r.strip_suffix("_URL"))
            {
                let url = url::Url::parse(value).map_err(|_| {
                    Error::setting(key, "is not a URL", "copy the trigger's HTTP POST URL")
                })?;
                let loopback = url.scheme() == "http" && is_loopback(&url);
                if url.scheme() != "https" && !loopback {
                    return Err(Error::setting(
                        key,
                        "must be an https:// URL",
                        "copy the trigger's HTTP POST URL",
                    ));
                }
                flows.insert(
                    name.to_ascii_lowercase(),
                    (key.clone(), SecretString::from(value.clone())),
                );
            } else if let Some(split) = profiles::split_profile_var(key) {
                let (name, field) = split?;
                profiles
                    .entry(name)
                    .or_default()
                    .insert(field.into(), (key.clone(), value.clone()));
            } else if let Some(field) = key
                .strip_prefix("PBIOPS_")
                // PBIOPS_CLOUD is every profile's default, not a field of the default profile.
                .filter(|f| profiles::FIELDS.contains(f) && *f != "CLOUD")
            {
                profiles
                    .entry("default".into())
                    .or_default()
                    .insert(field.into(), (key.clone(), value.clone()));
            }
        }
        default_profile_fallbacks(&mut profiles, &foreign, &mut notices);
        for variable in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            if foreign(variable).is_some() {
                notices.push(format!(
                    "{variable} is set: it replaces the system's trusted roots instead of adding to them, so hosts signed by a public CA may fail; to trust a corporate CA as well, unset it and set PBIOPS_CA_FILE"
                ));
            }
        }

        let managed_identity = match (foreign("IDENTITY_ENDPOINT"), foreign("IDENTITY_HEADER")) {
            (Some(url), Some(header)) => ManagedIdentityEndpoint::AppService {
                url: endpoint("IDENTITY_ENDPOINT", Some(&url), "", true)?,
                header: SecretString::from(header),
            },
            _ => ManagedIdentityEndpoint::Imds {
                url: endpoint(
                    "PBIOPS_IMDS_URL",
                    raw.imds_url.as_deref(),
                    DEFAULT_IMDS,
                    true,
                )?,
            },
        };

        let cloud = raw
            .cloud
            .as_deref()
            .map(|c| Cloud::parse("PBIOPS_CLOUD", c))
            .transpose()?
            .unwrap_or_default();
        let overrides = Overrides {
            authority: explicit("PBIOPS_AUTHORITY_URL", raw.authority_url.as_deref())?,
            powerbi: explicit("PBIOPS_POWERBI_URL", raw.powerbi_url.as_deref())?,
            fabric: explicit("PBIOPS_FABRIC_URL", raw.fabric_url.as_deref())?,
        };
        let mut network = Network::read(&foreign, raw.ca_file.as_deref())?;
        network.identity_hosts = match &managed_identity {
            ManagedIdentityEndpoint::Imds { url }
            | ManagedIdentityEndpoint::AppService { url, .. } => url::Url::parse(url)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                })
                .into_iter()
                .chain(std::iter::once("169.254.169.254".to_string()))
                .collect(),
        };

        let log_format = raw
            .log_format
            .as_deref()
            .map(|f| parse_log_format("PBIOPS_LOG_FORMAT", f))
            .transpose()?;
        let log_level = log_level(raw.log_level.as_deref())?;
        let http = HttpBudget {
            timeout: duration_var(
                "PBIOPS_HTTP_TIMEOUT",
                raw.http_timeout.as_deref(),
                Duration::from_secs(60),
            )?,
            attempts: positive("PBIOPS_HTTP_RETRIES", raw.http_retries.as_deref(), 6)? as u32,
            budget: duration_var(
                "PBIOPS_HTTP_RETRY_BUDGET",
                raw.http_retry_budget.as_deref(),
                Duration::from_secs(600),
            )?,
        };
        let max_response = max_response_mb(raw.http_max_response_mb.as_deref())?;
        let lease = slot_lease(raw.slot_lease.as_deref())?;
        let store = store::store_settings(&raw, &foreign)?;
        // Process-wide limits, set once every setting is known good: the HTTP layer and the
        // capacity admission read them as they go.
        crate::http::set_max_response_bytes(max_response << 20);
        crate::refresh::admission::set_slot_lease(lease);

        Ok(Settings {
            cloud,
            endpoints: Endpoints::of(cloud, &overrides),
            network,
            log_format,
            log_level,
            task: raw.task.clone(),
            http,
            store,
            kestra: KestraIds {
                execution_id: foreign("KESTRA_EXECUTION_ID"),
                taskrun_id: foreign("KESTRA_TASKRUN_ID"),
                flow_id: foreign("KESTRA_FLOW_ID"),
                namespace: foreign("KESTRA_NAMESPACE"),
            },
            notices,
            overrides,
            managed_identity,
            profiles,
            flows,
        })
    }

    /// Profile `name`, checked: complete and not contradictory, or an error naming the variable.
    pub fn profile(&self, name: &str) -> Result<Profile, Error> {
        profiles::build(
            name,
            &self.profiles,
            &self.managed_identity,
            (self.cloud, &self.overrides),
        )
    }

    /// Flow `name`'s trigger URL and the variable it came from.
    pub fn flow_url(&self, name: &str) -> Result<(String, SecretString), Error> {
        self.flows.get(name).cloned().ok_or_else(|| {
            let var = format!("PBIOPS_FLOW_{}_URL", name.to_ascii_uppercase());
            let known: Vec<&str> = self.flows.keys().map(String::as_str).collect();
            Error::setting(
                &var,
                "is not set",
                format!("set it to the flow trigger's HTTP POST URL (from Kestra's secret()); configured flows: {}", if known.is_empty() { "none".into() } else { known.join(", ") }),
            )
        })
    }

    /// The names of every configured profile.
    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }

    /// Every secret value in the settings, for scrubbing printed text.
    pub fn secret_values(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        let mut values: Vec<String> = self
            .profiles
            .values()
            .flat_map(|fields| fields.iter())
            .filter(|(field, _)| matches!(field.as_str(), "CLIENT_SECRET" | "CERTIFICATE"))
            .map(|(_, (_, v))| v.clone())
            .collect();
        if let Some(conn) = &self.store.connection {
            // Passwords inside the connection string (PWD=…).
            for part in conn.expose_secret().split(';') {
                if let Some((k, v)) = part.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("pwd")
                        || k.trim().eq_ignore_ascii_case("password")
                    {
                        values.push(v.trim().to_string());
                    }
                }
            }
        }
        if let ManagedIdentityEndpoint::AppService { header, .. } = &self.managed_identity {
            values.push(header.expose_secret().to_string());
        }
        for (_, url) in self.flows.values() {
            values.push(url.expose_secret().to_string());
        }
        if let Some(key) = &self.store.token_key {
            values.push(key.expose_secret().to_string());
        }
        values.extend(self.network.secret_values());
        values
    }
}

/// The team's former variables and AKS's workload identity variables fill in the default profile.
fn default_profile_fallbacks(
    profiles: &mut profiles::RawProfiles,
    foreign: &dyn Fn(&str) -> Option<String>,
    notices: &mut Vec<String>,
) {
    let default = profiles.entry("default".into()).or_default();
    for (from, field) in [
        ("AZ_TENANT_ID", "TENANT_ID"),
        ("PBI_CLIENT_ID", "CLIENT_ID"),
        ("PBI_CLIENT_SECRET", "CLIENT_SECRET"),
        ("AZURE_TENANT_ID", "TENANT_ID"),
        ("AZURE_CLIENT_ID", "CLIENT_ID"),
        ("AZURE_FEDERATED_TOKEN_FILE", "FEDERATED_TOKEN_FILE"),
    ] {
        if default.contains_key(field) {
            continue;
        }
        if let Some(value) = foreign(from) {
            notices.push(format!("using {from} for PBIOPS_{field} (the default profile); set PBIOPS_{field} to silence this notice"));
            default.insert(field.into(), (from.into(), value));
        }
    }
    if default.is_empty() {
        profiles.remove("default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut all = vars(pairs);
        all.push(("PBIOPS_ODBC".into(), "none".into()));
        Settings::from_vars(all).expect("valid settings")
    }

    #[test]
    fn default_and_named_profiles_are_read() {
        let s = settings(&[
            ("PBIOPS_TENANT_ID", "t"),
            ("PBIOPS_CLIENT_ID", "c"),
            ("PBIOPS_CLIENT_SECRET", "s"),
            ("PBIOPS_PROFILE_SALES_EU_TENANT_ID", "t2"),
            ("PBIOPS_PROFILE_SALES_EU_CLIENT_ID", "c2"),
            ("PBIOPS_PROFILE_SALES_EU_CLIENT_SECRET", "s2"),
            ("OTHER", "ignored"),
        ]);
        assert_eq!(s.profile("default").expect("default").client_id, "c");
        let p = s.profile("sales_eu").expect("named");
        let Credential::Secret(secret) = &p.credential else {
            panic!("secret")
        };
        assert_eq!((p.tenant_id.as_str(), secret.expose_secret()), ("t2", "s2"));
        assert_eq!(s.endpoints.powerbi, Cloud::Public.powerbi_api());
        assert_eq!(s.profile_names(), vec!["default", "sales_eu"]);
    }

    #[test]
    fn missing_profile_settings_name_the_variable() {
        let s = settings(&[
            ("PBIOPS_TENANT_ID", "t"),
            ("PBIOPS_CLIENT_ID", ""),
            ("PBIOPS_CLIENT_SECRET", "s"),
        ]);
        let err = s.profile("default").expect_err("incomplete");
        assert_eq!(
            err.to_string(),
            "invalid setting: `PBIOPS_CLIENT_ID`: is not set"
        );
        let err = s.profile("finance").expect_err("absent");
        assert!(err.to_string().contains("PBIOPS_PROFILE_FINANCE_TENANT_ID"));
        assert!(
            err.hint()
                .expect("hint")
                .contains("configured profile: default")
        );
    }

    #[test]
    fn the_python_scripts_variables_fill_the_default_profile_with_a_notice() {
        let s = settings(&[
            ("AZ_TENANT_ID", "t"),
            ("PBI_CLIENT_ID", "c"),
            ("PBI_CLIENT_SECRET", "s"),
            ("PBIOPS_CLIENT_ID", "mine"),
        ]);
        let p = s.profile("default").expect("default");
        assert_eq!((p.tenant_id.as_str(), p.client_id.as_str()), ("t", "mine"));
        assert_eq!(s.notices.len(), 2, "{:?}", s.notices);
        assert!(s.notices[0].contains("AZ_TENANT_ID"));
    }

    #[test]
    fn plain_http_is_refused_unless_loopback_or_managed_identity() {
        for ok in [
            "http://127.0.0.1:5480/v1.0/myorg",
            "http://localhost:1",
            "https://api.powerbi.com/v1.0/myorg/",
        ] {
            assert!(
                Settings::from_vars(vars(&[("PBIOPS_POWERBI_URL", ok), ("PBIOPS_ODBC", "none")]))
                    .is_ok(),
                "{ok}"
            );
        }
        let err = Settings::from_vars(vars(&[(
            "PBIOPS_AUTHORITY_URL",
            "http://login.example.com",
        )]))
        .expect_err("refused");
        assert!(err.to_string().contains("`PBIOPS_AUTHORITY_URL`"));
        assert_eq!(err.exit_code().code(), 2);
        let s = settings(&[
            ("IDENTITY_ENDPOINT", "http://10.0.0.5:8081/msi/token"),
            ("IDENTITY_HEADER", "h"),
        ]);
        assert!(matches!(
            s.managed_identity,
            ManagedIdentityEndpoint::AppService { .. }
        ));
    }

    #[test]
    fn unknown_profile_fields_and_bad_numbers_are_named() {
        let err = Settings::from_vars(vars(&[("PBIOPS_PROFILE_X_CLIENT_SECERT", "s")]))
            .expect_err("typo");
        assert!(err.to_string().contains("PBIOPS_PROFILE_X_CLIENT_SECERT"));
        let err = Settings::from_vars(vars(&[("PBIOPS_HTTP_RETRIES", "many")])).expect_err("bad");
        assert!(err.to_string().contains("PBIOPS_HTTP_RETRIES"));
    }

    #[test]
    fn the_default_store_is_sqlite_in_the_data_dir_and_none_disables_it() {
        let s = Settings::from_vars(vars(&[("HOME", "/home/k")])).expect("valid");
        let conn = s.store.connection.expect("default store");
        assert_eq!(
            conn.expose_secret(),
            "Driver={SQLite3};Database=/home/k/.local/share/pbiops/pbiops.db;JournalMode=WAL;SyncPragma=NORMAL;"
        );
        assert!(settings(&[]).store.connection.is_none());
    }

    #[test]
    fn secret_values_cover_secrets_and_connection_passwords() {
        let s = Settings::from_vars(vars(&[
            ("PBIOPS_CLIENT_SECRET", "s3cret"),
            (
                "PBIOPS_ODBC",
                "Driver={PostgreSQL Unicode};Server=db;Uid=u;PWD=dbpass;",
            ),
        ]))
        .expect("valid");
        assert_eq!(
            s.secret_values(),
            vec!["s3cret".to_string(), "dbpass".to_string()]
        );
    }

    #[test]
    fn clouds_set_the_endpoints_and_explicit_endpoints_still_win() {
        let s = settings(&[("PBIOPS_CLOUD", "dod")]);
        assert_eq!(s.cloud, Cloud::Dod);
        assert_eq!(s.endpoints.authority, "https://login.microsoftonline.us");
        assert_eq!(
            s.endpoints.powerbi,
            "https://api.mil.powerbigov.us/v1.0/myorg"
        );
        let s = settings(&[
            ("PBIOPS_CLOUD", "china"),
            ("PBIOPS_POWERBI_URL", "http://127.0.0.1:5480/v1.0/myorg"),
        ]);
        assert_eq!(s.endpoints.authority, "https://login.chinacloudapi.cn");
        assert_eq!(s.endpoints.powerbi, "http://127.0.0.1:5480/v1.0/myorg");
        let err = Settings::from_vars(vars(&[("PBIOPS_CLOUD", "azure-germany")])).expect_err("bad");
        assert!(err.to_string().contains("`PBIOPS_CLOUD`"));
        // PBIOPS_CLOUD alone does not make a default profile.
        assert!(
            settings(&[("PBIOPS_CLOUD", "usgov")])
                .profile_names()
                .is_empty()
        );
    }

    #[test]
    fn proxy_passwords_are_secret_and_ssl_cert_file_gets_a_notice() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://svc:pr0xy-pass@proxy:3128"),
            ("SSL_CERT_FILE", "/etc/corp.pem"),
        ]);
        assert!(s.secret_values().contains(&"pr0xy-pass".to_string()));
        assert!(!format!("{s:?}").contains("pr0xy-pass"));
        assert!(s.notices.iter().any(|n| n.contains("PBIOPS_CA_FILE")));
        assert!(
            s.network
                .identity_hosts
                .contains(&"169.254.169.254".to_string())
        );
    }

    #[test]
    fn huge_or_oversized_http_settings_are_refused_naming_the_variable() {
        for (name, value) in [
            ("PBIOPS_HTTP_TIMEOUT", "1e30"),
            ("PBIOPS_HTTP_RETRY_BUDGET", "P400D"),
            ("PBIOPS_HTTP_TIMEOUT", "-5"),
            ("PBIOPS_HTTP_MAX_RESPONSE_MB", "5000"),
            ("PBIOPS_HTTP_MAX_RESPONSE_MB", "0"),
        ] {
            let mut all = vars(&[(name, value)]);
            all.push(("PBIOPS_ODBC".into(), "none".into()));
            match Settings::from_vars(all) {
                Err(Error::Settings { variable, .. }) => assert_eq!(variable, name, "{value}"),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
        let s = settings(&[("PBIOPS_HTTP_TIMEOUT", "PT24H")]);
        assert_eq!(s.http.timeout, Duration::from_secs(86_400));
    }

    #[test]
    fn a_slot_lease_outside_its_bounds_is_refused_naming_the_variable() {
        for (value, hint) in [
            ("5", "PT10S"),
            ("PT2H", "PT1H"),
            ("soon", "ISO-8601"),
            ("0", "ISO-8601"),
        ] {
            let mut all = vars(&[("PBIOPS_SLOT_LEASE", value)]);
            all.push(("PBIOPS_ODBC".into(), "none".into()));
            match Settings::from_vars(all) {
                Err(Error::Settings { variable, help, .. }) => {
                    assert_eq!(variable, "PBIOPS_SLOT_LEASE", "{value}");
                    assert!(help.contains(hint), "{value}: {help}");
                }
                other => panic!("PBIOPS_SLOT_LEASE={value}: {other:?}"),
            }
        }
        assert_eq!(
            slot_lease(Some("PT20S")).ok(),
            Some(Duration::from_secs(20))
        );
        assert_eq!(slot_lease(Some("45")).ok(), Some(Duration::from_secs(45)));
        assert_eq!(
            slot_lease(None).ok(),
            Some(crate::refresh::admission::DEFAULT_SLOT_LEASE)
        );
    }
}
