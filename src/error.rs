//! One error type for the whole tool, with its exit code and its `help:` hint.
//!
//! Every variant says what was attempted and on which ids, so that the single line a Kestra user
//! sees is enough to act on. The exit codes are a public contract (README, "Exit codes"): flows
//! branch on them, so a variant's code never changes silently.

use std::fmt;

/// The documented exit codes of `pbiops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The operation succeeded (or the refresh was triggered, with `wait: false`).
    Success = 0,
    /// The operation finished unsuccessfully: the refresh failed, was cancelled, timed out in the
    /// service, or a freshness gate found the data stale.
    Unsuccessful = 1,
    /// The task or the settings are invalid; no request was sent.
    Invalid = 2,
    /// Authentication or authorization was refused.
    Auth = 3,
    /// A workspace or item was not found, or a name matched several items.
    NotFound = 4,
    /// Waiting timed out; the refresh may still be running.
    Timeout = 5,
    /// The service stayed unavailable after retries (throttling, 5xx, network).
    Unavailable = 6,
    /// The operation store failed.
    Store = 7,
    /// SIGTERM or SIGINT stopped the run; the refresh was left running, and a retry of the same
    /// Kestra task run follows it.
    Interrupted = 8,
    /// The network path refused the connection in a way retrying cannot fix: a TLS certificate
    /// the client does not trust, or a proxy that wants credentials (407). Not retried; the fix
    /// is in the settings or the image (`PBIOPS_CA_FILE`, the proxy URL, `NO_PROXY`).
    Network = 9,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What a remote service said when it refused a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The service's error code (`error.code`, `errorCode`, or an `AADSTS` number).
    pub code: Option<String>,
    /// The service's message, trimmed to its first line.
    pub message: Option<String>,
    /// The `RequestId` the service gave the failed call, for support tickets.
    pub request_id: Option<String>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(status) = self.status {
            parts.push(format!("HTTP {status}"));
        }
        if let Some(code) = &self.code {
            parts.push(code.clone());
        }
        write!(f, "{}", parts.join(" "))?;
        if let Some(message) = &self.message {
            if parts.is_empty() {
                write!(f, "{message}")?;
            } else {
                write!(f, ": {message}")?;
            }
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// Every way an operation can end in error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A task field is missing, unknown or malformed.
    #[error("invalid task: `{field}`: {message}")]
    InvalidTask {
        /// The JSON field (or CLI flag) at fault, e.g. `refresh.timeout`.
        field: String,
        /// What is wrong with it.
        message: String,
        /// How to fix it.
        help: String,
    },
    /// An environment setting is missing, unknown or malformed.
    #[error("invalid setting: `{variable}`: {message}")]
    Settings {
        /// The environment variable at fault.
        variable: String,
        /// What is wrong with it.
        message: String,
        /// How to fix it.
        help: String,
    },
    /// Entra ID refused to issue a token.
    #[error(
        "could not get a {resource} token for profile `{profile}` (tenant {tenant}, client {client_id}): {service}"
    )]
    TokenRefused {
        /// The profile name.
        profile: String,
        /// The tenant id or domain.
        tenant: String,
        /// The application (client) id.
        client_id: String,
        /// The resource the token was for.
        resource: String,
        /// What Entra ID said.
        service: ServiceError,
        /// A hint derived from the AADSTS code.
        help: Option<String>,
    },
    /// An API refused the caller (401/403) even with a fresh token.
    #[error("{action}: access refused: {service}")]
    AccessRefused {
        /// What was attempted, with ids.
        action: String,
        /// What the service said.
        service: ServiceError,
        /// A hint on the likely cause.
        help: String,
    },
    /// A workspace or item could not be resolved.
    #[error("{kind} `{name}` {problem}{scope}{candidates}", problem = if candidates.len() > 1 && *ambiguous { "is ambiguous" } else { "was not found" }, scope = scope.as_ref().map(|s| format!(" in {s}")).unwrap_or_default(), candidates = list_candidates(candidates, *ambiguous))]
    NotFound {
        /// `workspace`, `semantic model`, …
        kind: &'static str,
        /// What the task asked for.
        name: String,
        /// Where it was looked for, e.g. `workspace Sales (3f0c…)`.
        scope: Option<String>,
        /// The matches (ambiguous) or the closest names (not found).
        candidates: Vec<String>,
        /// Several items matched.
        ambiguous: bool,
    },
    /// The service answered 404 for an item that was resolved earlier in the run (e.g. deleted
    /// meanwhile, or a refresh id the service does not know).
    #[error("{action}: not found: {service}")]
    Gone {
        /// What was attempted, with ids.
        action: String,
        /// What the service said.
        service: ServiceError,
    },
    /// The service answered an error that is neither auth nor not-found nor transient.
    #[error("{action}: {service}")]
    Rejected {
        /// What was attempted, with ids.
        action: String,
        /// What the service said.
        service: ServiceError,
        /// A hint when the cause is known.
        help: Option<String>,
    },
    /// The operation store (ODBC) failed.
    #[error("store: {action}: {message}")]
    Store {
        /// What was attempted, e.g. `connect to the store` or `record the operation`.
        action: String,
        /// The driver's diagnostic (never the connection string).
        message: String,
        /// A hint when the cause is known.
        help: Option<String>,
    },
    /// The network path refused the connection: an untrusted certificate, or a proxy's 407.
    #[error("{action}: {problem}")]
    Network {
        /// What was attempted, with ids.
        action: String,
        /// `UntrustedCertificate` or `ProxyAuthenticationRequired`.
        code: &'static str,
        /// What happened, naming the host (and the proxy, never its credentials).
        problem: String,
        /// How to fix it.
        help: String,
    },
    /// The service stayed unavailable (429, 5xx, network) after the retry budget.
    #[error("{action}: service unavailable after {attempts} attempt(s): {last}")]
    Unavailable {
        /// What was attempted, with ids.
        action: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

fn list_candidates(candidates: &[String], ambiguous: bool) -> String {
    if candidates.is_empty() {
        return String::new();
    }
    let label = if ambiguous {
        "matches"
    } else {
        "closest names"
    };
    format!("; {label}: {}", candidates.join(", "))
}

impl Error {
    /// A shorthand for [`Error::InvalidTask`].
    pub fn task(
        field: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Error::InvalidTask {
            field: field.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// A shorthand for [`Error::Settings`].
    pub fn setting(
        variable: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Error::Settings {
            variable: variable.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// The documented exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::InvalidTask { .. } | Error::Settings { .. } => ExitCode::Invalid,
            Error::TokenRefused { .. } | Error::AccessRefused { .. } => ExitCode::Auth,
            Error::NotFound { .. } | Error::Gone { .. } => ExitCode::NotFound,
            Error::Rejected { .. } => ExitCode::Unsuccessful,
            Error::Unavailable { .. } => ExitCode::Unavailable,
            Error::Store { .. } => ExitCode::Store,
            Error::Network { .. } => ExitCode::Network,
        }
    }

    /// The `help:` line, when the cause is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InvalidTask { help, .. } | Error::Settings { help, .. } => Some(help.clone()),
            Error::TokenRefused { help, .. } | Error::Rejected { help, .. } => help.clone(),
            Error::Store { help, .. } => help.clone().or_else(|| {
                Some("check PBIOPS_ODBC (the connection string) and that the database is reachable; PBIOPS_ODBC=none disables the store".into())
            }),
            Error::AccessRefused { help, .. } | Error::Network { help, .. } => Some(help.clone()),
            Error::NotFound { ambiguous: true, .. } => {
                Some("pass the id instead of the name, or rename one of them".into())
            }
            Error::NotFound { kind, .. } => Some(format!(
                "names match exactly (case-insensitive); check the {kind} name, and that the service principal can see it"
            )),
            Error::Gone { .. } => Some("the item may have been deleted, or the service principal lost access to it".into()),
            Error::Unavailable { .. } => Some(
                "the service is throttling or failing; rerun later (with ifRunning: attach, a rerun follows a refresh that did start)"
                    .into(),
            ),
        }
    }

    /// A stable, machine-readable code for the `errorCode` output.
    pub fn code(&self) -> String {
        match self {
            Error::InvalidTask { .. } => "InvalidTask".into(),
            Error::Settings { .. } => "InvalidSettings".into(),
            Error::TokenRefused { service, .. }
            | Error::AccessRefused { service, .. }
            | Error::Rejected { service, .. } => {
                service.code.clone().unwrap_or_else(|| match self {
                    Error::TokenRefused { .. } => "TokenRefused".into(),
                    Error::AccessRefused { .. } => "AccessRefused".into(),
                    _ => "Rejected".into(),
                })
            }
            Error::Gone { service, .. } => {
                service.code.clone().unwrap_or_else(|| "NotFound".into())
            }
            Error::NotFound {
                ambiguous: true, ..
            } => "Ambiguous".into(),
            Error::NotFound { .. } => "NotFound".into(),
            Error::Unavailable { .. } => "ServiceUnavailable".into(),
            Error::Store { .. } => "StoreFailure".into(),
            Error::Network { code, .. } => (*code).into(),
        }
    }

    /// The service's request id, when the error came from a response.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::TokenRefused { service, .. }
            | Error::AccessRefused { service, .. }
            | Error::Gone { service, .. }
            | Error::Rejected { service, .. } => service.request_id.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(Error::task("a", "b", "c").exit_code().code(), 2);
        assert_eq!(Error::setting("A", "b", "c").exit_code().code(), 2);
        let nf = Error::NotFound {
            kind: "workspace",
            name: "x".into(),
            scope: None,
            candidates: vec![],
            ambiguous: false,
        };
        assert_eq!(nf.exit_code().code(), 4);
        let un = Error::Unavailable {
            action: "a".into(),
            attempts: 3,
            last: "HTTP 503".into(),
        };
        assert_eq!(un.exit_code().code(), 6);
    }

    #[test]
    fn not_found_lists_close_matches_and_ambiguity() {
        let e = Error::NotFound {
            kind: "semantic model",
            name: "Budget".into(),
            scope: Some("workspace Finance".into()),
            candidates: vec!["Budget (a1)".into(), "Budget (b2)".into()],
            ambiguous: true,
        };
        assert_eq!(
            e.to_string(),
            "semantic model `Budget` is ambiguous in workspace Finance; matches: Budget (a1), Budget (b2)"
        );
        assert_eq!(e.code(), "Ambiguous");
        let e = Error::NotFound {
            kind: "workspace",
            name: "Sale".into(),
            scope: None,
            candidates: vec!["Sales".into()],
            ambiguous: false,
        };
        assert_eq!(
            e.to_string(),
            "workspace `Sale` was not found; closest names: Sales"
        );
    }

    #[test]
    fn service_error_display_names_status_code_and_request_id() {
        let s = ServiceError {
            status: Some(400),
            code: Some("InvalidRequest".into()),
            message: Some("Another refresh request is already executing".into()),
            request_id: Some("r-1".into()),
        };
        assert_eq!(
            s.to_string(),
            "HTTP 400 InvalidRequest: Another refresh request is already executing (request id r-1)"
        );
    }
}
