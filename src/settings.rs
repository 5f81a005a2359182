//! Settings from the environment (`PBIOPS_*`): endpoints, profiles, logging, HTTP budget.
//!
//! This is the only module that reads the environment; everything else receives [`Settings`].
//! Tests pass variables to the child process instead of mutating the test's own environment.
//! Empty values count as unset, because Kestra renders a missing input as `VAR=`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::Error;
use crate::kestra::LogFormat;
use crate::task::duration;

/// The environment variables, for `--help`.
pub const ENV_HELP: &str = "\
Environment:
  PBIOPS_TASK                      the task as JSON (instead of arguments, --task-file or stdin)
  PBIOPS_TENANT_ID                 the default profile's tenant (GUID or domain)
  PBIOPS_CLIENT_ID                 the default profile's application (client) id
  PBIOPS_CLIENT_SECRET             the default profile's client secret (its value, not its id)
  PBIOPS_PROFILE_<NAME>_TENANT_ID  profile <name>'s tenant; likewise _CLIENT_ID, _CLIENT_SECRET
  PBIOPS_AUTHORITY_URL             Entra ID host        [default: https://login.microsoftonline.com]
  PBIOPS_POWERBI_URL               Power BI REST base   [default: https://api.powerbi.com/v1.0/myorg]
  PBIOPS_FABRIC_URL                Fabric REST base     [default: https://api.fabric.microsoft.com/v1]
  PBIOPS_LOG_FORMAT                kestra, text or json [default: kestra unless stdout is a terminal]
  PBIOPS_LOG_LEVEL                 error, warn, info, debug or trace [default: info]
  PBIOPS_HTTP_TIMEOUT              per-request timeout  [default: PT60S]
  PBIOPS_HTTP_RETRIES              attempts per call on 429, 5xx and network errors [default: 6]
  PBIOPS_HTTP_RETRY_BUDGET         total time one call may spend retrying [default: PT10M]
Plain http:// endpoints are refused unless the host is loopback (the emulator).";

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_POWERBI: &str = "https://api.powerbi.com/v1.0/myorg";
const DEFAULT_FABRIC: &str = "https://api.fabric.microsoft.com/v1";

/// Fixed-name variables, read with envy (prefix `PBIOPS_`).
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    authority_url: Option<String>,
    powerbi_url: Option<String>,
    fabric_url: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    task: Option<String>,
    http_timeout: Option<String>,
    http_retries: Option<String>,
    http_retry_budget: Option<String>,
}

/// One service principal's credentials.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile name (`default` for the unprefixed variables).
    pub name: String,
    /// Tenant id or domain.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretString,
}

/// Base URLs of the remote APIs.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Entra ID authority host, without a trailing slash.
    pub authority: String,
    /// Power BI REST base, e.g. `https://api.powerbi.com/v1.0/myorg`.
    pub powerbi: String,
    /// Fabric REST base.
    pub fabric: String,
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

/// Everything the environment configures.
#[derive(Debug, Clone)]
pub struct Settings {
    /// API endpoints.
    pub endpoints: Endpoints,
    /// Log format, when set.
    pub log_format: Option<LogFormat>,
    /// Log level.
    pub log_level: tracing::Level,
    /// `PBIOPS_TASK`, when set.
    pub task: Option<String>,
    /// HTTP budget.
    pub http: HttpBudget,
    /// Profile variables by profile name, then field (`TENANT_ID`, …).
    profiles: BTreeMap<String, BTreeMap<String, String>>,
}

const PROFILE_FIELDS: &[&str] = &["TENANT_ID", "CLIENT_ID", "CLIENT_SECRET"];

impl Settings {
    /// Reads settings from `vars` (normally `std::env::vars()`).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Settings, Error> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, v)| k.starts_with("PBIOPS_") && !v.trim().is_empty())
            .collect();
        let raw: RawSettings = envy::prefixed("PBIOPS_")
            .from_iter(vars.iter().cloned())
            .map_err(|e| Error::setting("PBIOPS_*", e.to_string(), "see `pbiops --help`"))?;

        let mut profiles: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (field, value) in [
            ("TENANT_ID", &raw.tenant_id),
            ("CLIENT_ID", &raw.client_id),
            ("CLIENT_SECRET", &raw.client_secret),
        ] {
            if let Some(v) = value {
                profiles
                    .entry("default".into())
                    .or_default()
                    .insert(field.into(), v.clone());
            }
        }
        for (key, value) in &vars {
            let Some(rest) = key.strip_prefix("PBIOPS_PROFILE_") else {
                continue;
            };
            let Some(field) = PROFILE_FIELDS
                .iter()
                .find(|f| rest.ends_with(&format!("_{f}")))
            else {
                return Err(Error::setting(
                    key.as_str(),
                    "is not a profile setting",
                    format!(
                        "profile variables are PBIOPS_PROFILE_<NAME>_{{{}}}",
                        PROFILE_FIELDS.join(",")
                    ),
                ));
            };
            let name = rest[..rest.len() - field.len() - 1].to_ascii_lowercase();
            profiles
                .entry(name)
                .or_default()
                .insert((*field).into(), value.clone());
        }

        Ok(Settings {
            endpoints: Endpoints {
                authority: endpoint(
                    "PBIOPS_AUTHORITY_URL",
                    raw.authority_url.as_deref(),
                    DEFAULT_AUTHORITY,
                )?,
                powerbi: endpoint(
                    "PBIOPS_POWERBI_URL",
                    raw.powerbi_url.as_deref(),
                    DEFAULT_POWERBI,
                )?,
                fabric: endpoint(
                    "PBIOPS_FABRIC_URL",
                    raw.fabric_url.as_deref(),
                    DEFAULT_FABRIC,
                )?,
            },
            log_format: raw
                .log_format
                .as_deref()
                .map(|f| parse_log_format("PBIOPS_LOG_FORMAT", f))
                .transpose()?,
            log_level: match raw
                .log_level
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("info") => tracing::Level::INFO,
                Some("error") => tracing::Level::ERROR,
                Some("warn") => tracing::Level::WARN,
                Some("debug") => tracing::Level::DEBUG,
                Some("trace") => tracing::Level::TRACE,
                Some(_) => {
                    return Err(Error::setting(
                        "PBIOPS_LOG_LEVEL",
                        "unknown level",
                        "one of: error, warn, info, debug, trace",
                    ));
                }
            },
            task: raw.task,
            http: HttpBudget {
                timeout: duration_var(
                    "PBIOPS_HTTP_TIMEOUT",
                    raw.http_timeout.as_deref(),
                    Duration::from_secs(60),
                )?,
                attempts: match raw.http_retries.as_deref() {
                    None => 6,
                    Some(n) => n
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| {
                            Error::setting(
                                "PBIOPS_HTTP_RETRIES",
                                format!("`{n}` is not a positive integer"),
                                "e.g. 6",
                            )
                        })?,
                },
                budget: duration_var(
                    "PBIOPS_HTTP_RETRY_BUDGET",
                    raw.http_retry_budget.as_deref(),
                    Duration::from_secs(600),
                )?,
            },
            profiles,
        })
    }

    /// The credentials of profile `name`, or an error naming the exact variable to set.
    pub fn profile(&self, name: &str) -> Result<Profile, Error> {
        let var = |field: &str| profile_var(name, field);
        let fields = self.profiles.get(name);
        let get = |field: &str| {
            fields.and_then(|f| f.get(field)).cloned().ok_or_else(|| {
                let help = if fields.is_none() && name != "default" {
                    let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
                    format!(
                        "profile `{name}` has no settings; configured profiles: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )
                } else {
                    format!(
                        "set {} (in Kestra, from secret() for the secret)",
                        var(field)
                    )
                };
                Error::setting(var(field), "is not set", help)
            })
        };
        Ok(Profile {
            name: name.to_string(),
            tenant_id: get("TENANT_ID")?,
            client_id: get("CLIENT_ID")?,
            client_secret: SecretString::from(get("CLIENT_SECRET")?),
        })
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

/// Parses a log format name.
pub fn parse_log_format(variable: &str, value: &str) -> Result<LogFormat, Error> {
    match value.to_ascii_lowercase().as_str() {
        "kestra" => Ok(LogFormat::Kestra),
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(Error::setting(
            variable,
            format!("`{value}` is not a log format"),
            "one of: kestra, text, json",
        )),
    }
}

fn duration_var(variable: &str, value: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match value {
        None => Ok(default),
        Some(v) => duration::parse_str(v)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Error::setting(
                    variable,
                    format!("`{v}` is not a duration"),
                    "ISO-8601 (e.g. PT30S) or seconds",
                )
            }),
    }
}

/// Checks an endpoint URL: https, or plain http only to a loopback host.
fn endpoint(variable: &str, value: Option<&str>, default: &str) -> Result<String, Error> {
    let text = value.unwrap_or(default).trim().trim_end_matches('/');
    let url = url::Url::parse(text).map_err(|e| {
        Error::setting(
            variable,
            format!("`{text}` is not a URL: {e}"),
            "e.g. https://api.powerbi.com/v1.0/myorg",
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(Error::setting(
                variable,
                "plain http:// to a non-loopback host would send tokens in clear text",
                "use https://, or a loopback address (127.0.0.1) for the emulator",
            ));
        }
        other => {
            return Err(Error::setting(
                variable,
                format!("unsupported scheme `{other}`"),
                "use https://",
            ));
        }
    }
    Ok(text.to_string())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
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

    #[test]
    fn default_and_named_profiles_are_read() {
        let s = Settings::from_vars(vars(&[
            ("PBIOPS_TENANT_ID", "t"),
            ("PBIOPS_CLIENT_ID", "c"),
            ("PBIOPS_CLIENT_SECRET", "s"),
            ("PBIOPS_PROFILE_SALES_EU_TENANT_ID", "t2"),
            ("PBIOPS_PROFILE_SALES_EU_CLIENT_ID", "c2"),
            ("PBIOPS_PROFILE_SALES_EU_CLIENT_SECRET", "s2"),
            ("OTHER", "ignored"),
        ]))
        .expect("valid");
        assert_eq!(s.profile("default").expect("default").client_id, "c");
        let p = s.profile("sales_eu").expect("named");
        assert_eq!(
            (p.tenant_id.as_str(), p.client_secret.expose_secret()),
            ("t2", "s2")
        );
        assert_eq!(s.endpoints.powerbi, DEFAULT_POWERBI);
    }

    #[test]
    fn missing_profile_settings_name_the_variable() {
        let s = Settings::from_vars(vars(&[("PBIOPS_TENANT_ID", "t"), ("PBIOPS_CLIENT_ID", "")]))
            .expect("valid");
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
                .contains("configured profiles: default")
        );
    }

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        for ok in [
            "http://127.0.0.1:5480/v1.0/myorg",
            "http://localhost:1",
            "https://api.powerbi.com/v1.0/myorg/",
        ] {
            assert!(
                Settings::from_vars(vars(&[("PBIOPS_POWERBI_URL", ok)])).is_ok(),
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
    }

    #[test]
    fn unknown_profile_fields_and_bad_numbers_are_named() {
        let err = Settings::from_vars(vars(&[("PBIOPS_PROFILE_X_CLIENT_SECERT", "s")]))
            .expect_err("typo");
        assert!(err.to_string().contains("PBIOPS_PROFILE_X_CLIENT_SECERT"));
        let err = Settings::from_vars(vars(&[("PBIOPS_HTTP_RETRIES", "many")])).expect_err("bad");
        assert!(err.to_string().contains("PBIOPS_HTTP_RETRIES"));
    }
}
