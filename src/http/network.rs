//! The client's network path: which proxy each URL takes, which roots it trusts, and the two
//! failures of that path that no retry can fix (an untrusted certificate, a proxy's 407).
//!
//! reqwest's own reading of the proxy variables is switched off: it would send loopback and
//! the managed identity endpoints (whose requests carry the host's identity secret) through
//! the proxy whenever `NO_PROXY` forgets them. Every URL goes through [`Network::proxy_for`].

use std::time::Duration;

use crate::error::Error;
use crate::settings::{HttpBudget, Network};

/// Builds the one HTTP client: timeouts, proxies per [`Network`], extra roots merged with the
/// platform's.
pub(super) fn client(budget: &HttpBudget, network: &Network) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(budget.timeout)
        .connect_timeout(budget.timeout.min(Duration::from_secs(15)))
        .user_agent(concat!("pbiops/", env!("CARGO_PKG_VERSION")))
        .no_proxy();
    for (scheme, proxy) in [("https", &network.https), ("http", &network.http)] {
        let Some(proxy) = proxy else { continue };
        let policy = network.clone();
        let mut custom = reqwest::Proxy::custom(move |url| {
            if url.scheme() != scheme {
                return None;
            }
            policy.proxy_for(url).map(|p| p.url.clone())
        });
        if let Some((user, password)) = &proxy.credentials {
            custom = custom.basic_auth(user, password);
        }
        builder = builder.proxy(custom);
    }
    if let Some((path, pem)) = &network.ca_file {
        let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            Error::setting(
                "PBIOPS_CA_FILE",
                format!("{path}: {e}"),
                "a PEM file with one or more CA certificates",
            )
        })?;
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().map_err(|e| {
        Error::setting(
            "(http client)",
            format!("cannot build the HTTP client: {e}"),
            "the image needs the ca-certificates package (a system trust store); PBIOPS_CA_FILE adds roots to it",
        )
    })
}

/// A failure of the network path itself.
#[derive(Debug)]
pub(super) enum Blocked {
    /// The server's certificate is not trusted; the reason as rustls gives it.
    Certificate(String),
    /// The proxy answered 407 to CONNECT.
    ProxyAuth,
}

/// Recognises the failures retrying cannot fix, anywhere in `e`'s chain.
pub(super) fn blocked(e: &reqwest::Error) -> Option<Blocked> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        // An io::Error's source() skips the error it wraps (which may be another io::Error):
        // look inside each layer explicitly.
        let mut candidate = Some(err);
        while let Some(c) = candidate {
            if let Some(rustls::Error::InvalidCertificate(reason)) =
                c.downcast_ref::<rustls::Error>()
            {
                return Some(Blocked::Certificate(certificate_reason(reason)));
            }
            // hyper-util's tunnel error type is private; its text is stable and specific.
            if c.to_string().contains("proxy authorization required") {
                return Some(Blocked::ProxyAuth);
            }
            candidate = c
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|e| e as &(dyn std::error::Error + 'static));
        }
        source = err.source();
    }
    // The same rustls error, when a layer re-wrapped it as text.
    let text = format!("{e:?}");
    let reason = text.split("invalid peer certificate: ").nth(1)?;
    let name: String = reason
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    Some(Blocked::Certificate(match name.as_str() {
        "UnknownIssuer" => certificate_reason(&rustls::CertificateError::UnknownIssuer),
        "Expired" => certificate_reason(&rustls::CertificateError::Expired),
        "NotValidForName" => certificate_reason(&rustls::CertificateError::NotValidForName),
        _ => format!("it was refused ({name})"),
    }))
}

fn certificate_reason(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match reason {
        C::UnknownIssuer => {
            "it is signed by an authority this client does not trust (unknown issuer)".into()
        }
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "it is not valid yet (check the clock)".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it was issued for another host name".into()
        }
        C::Revoked => "it has been revoked".into(),
        C::BadSignature => "its signature is invalid".into(),
        other => format!("it was refused ({other:?})"),
    }
}

/// The error for a blocked connection to `url`.
pub(super) fn error(action: &str, url: &url::Url, network: &Network, blocked: Blocked) -> Error {
    let host = url.host_str().unwrap_or("the server");
    let proxy = network.proxy_for(url);
    let via = proxy
        .map(|p| format!(" (through the proxy {} from {})", p.display, p.variable))
        .unwrap_or_default();
    match blocked {
        Blocked::Certificate(reason) => {
            let ca = match &network.ca_file {
                Some((path, _)) => format!(
                    "PBIOPS_CA_FILE ({path}) is set but does not hold the root that signed this certificate: add that root to it"
                ),
                None => "set PBIOPS_CA_FILE to a PEM file holding that root (it is added to the system's roots)".into(),
            };
            Error::Network {
                action: action.to_string(),
                code: "UntrustedCertificate",
                problem: format!("the TLS certificate of {host} is not trusted: {reason}{via}"),
                help: format!(
                    "if a proxy or firewall inspects TLS, trust its root CA: {ca}, or build an image FROM this one that copies it into /usr/local/share/ca-certificates/ and runs update-ca-certificates. Do not point SSL_CERT_FILE at it: that replaces the system's roots instead of adding to them"
                ),
            }
        }
        Blocked::ProxyAuth => {
            let (name, variable, given) = match proxy {
                Some(p) => (
                    p.display.clone(),
                    p.variable.clone(),
                    p.credentials.is_some(),
                ),
                None => ("the proxy".into(), "HTTPS_PROXY".into(), false),
            };
            let help = if given {
                format!(
                    "the proxy refused the credentials in {variable}: check the user and password (percent-encode characters such as @ : / %), or add {host} to NO_PROXY if it should be reached directly"
                )
            } else {
                format!(
                    "the proxy wants credentials: put them in {variable} as http://user:password@host:port (from a Kestra secret), or add {host} to NO_PROXY if it should be reached directly"
                )
            };
            Error::Network {
                action: action.to_string(),
                code: "ProxyAuthenticationRequired",
                problem: format!(
                    "the proxy {name} ({variable}) answered 407 Proxy Authentication Required for {host}"
                ),
                help,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(pairs: &[(&str, &str)]) -> Network {
        let var = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        Network::read(&var, None).expect("valid")
    }

    #[test]
    fn a_407_names_the_proxy_without_credentials_and_says_which_fix_applies() {
        let url = url::Url::parse("https://login.microsoftonline.us/t").expect("url");
        let with = network(&[("HTTPS_PROXY", "http://svc:s3cr3t@proxy.corp:3128")]);
        let err = error("get a token", &url, &with, Blocked::ProxyAuth);
        assert_eq!(err.exit_code().code(), 9);
        assert_eq!(err.code(), "ProxyAuthenticationRequired");
        let text = format!("{err} {}", err.hint().expect("hint"));
        assert!(
            text.contains("http://proxy.corp:3128 (HTTPS_PROXY)"),
            "{text}"
        );
        assert!(text.contains("refused the credentials"), "{text}");
        assert!(!text.contains("s3cr3t") && !text.contains("svc:"), "{text}");
        let without = network(&[("https_proxy", "proxy.corp:3128")]);
        let hint = error("a", &url, &without, Blocked::ProxyAuth)
            .hint()
            .expect("hint");
        assert!(
            hint.contains("wants credentials") && hint.contains("https_proxy"),
            "{hint}"
        );
    }

    #[test]
    fn an_untrusted_certificate_names_the_host_and_how_to_add_the_ca() {
        let url = url::Url::parse("https://api.powerbi.com/v1.0/myorg").expect("url");
        let direct = Network::default();
        let err = error(
            "list workspaces",
            &url,
            &direct,
            Blocked::Certificate("it has expired".into()),
        );
        assert_eq!(
            (err.exit_code().code(), err.code()),
            (9, "UntrustedCertificate".into())
        );
        assert_eq!(
            err.to_string(),
            "list workspaces: the TLS certificate of api.powerbi.com is not trusted: it has expired"
        );
        let hint = err.hint().expect("hint");
        assert!(
            hint.contains("set PBIOPS_CA_FILE")
                && hint.contains("update-ca-certificates")
                && hint.contains("SSL_CERT_FILE"),
            "{hint}"
        );
    }
}
