//! The network path: proxies from the usual variables, extra trusted roots from `PBIOPS_CA_FILE`.
//!
//! Proxies follow the conventions most tools share: `HTTPS_PROXY` for https:// URLs,
//! `HTTP_PROXY` for http:// ones, `ALL_PROXY` for both when the specific one is unset, `NO_PROXY`
//! for exceptions; the upper-case name wins over the lower-case one. Some hosts never go through a
//! proxy, whatever `NO_PROXY` says (see [`Network::bypasses`]): loopback, link-local (the
//! instance metadata service lives at 169.254.169.254) and the managed identity endpoints, whose
//! requests carry secrets meant for the host itself.

use std::net::IpAddr;

use crate::error::Error;

/// A proxy, with its credentials apart so that it can be named without them.
#[derive(Clone)]
pub struct Proxy {
    /// `scheme://host:port`, never with credentials: safe to print.
    pub display: String,
    /// The same URL, for the HTTP client.
    pub url: url::Url,
    /// `user:password` from the URL, percent-decoded.
    pub credentials: Option<(String, String)>,
    /// The variable it came from.
    pub variable: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({} from {})", self.display, self.variable)
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq)]
enum Exception {
    /// `*`: no proxy at all.
    Everything,
    /// A host name and its subdomains (`example.com`, `.example.com`).
    Domain(String),
    /// An address, or a network in CIDR notation.
    Network(IpAddr, u8),
}

/// Proxies, exceptions and extra roots.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// For https:// URLs.
    pub https: Option<Proxy>,
    /// For http:// URLs.
    pub http: Option<Proxy>,
    no_proxy: Vec<Exception>,
    /// Hosts of the managed identity endpoints: never proxied.
    pub identity_hosts: Vec<String>,
    /// `PBIOPS_CA_FILE` and its PEM text, when set.
    pub ca_file: Option<(String, Vec<u8>)>,
}

impl Network {
    /// Reads the proxy variables and `PBIOPS_CA_FILE` through `var`.
    pub fn read(
        var: &dyn Fn(&str) -> Option<String>,
        ca_file: Option<&str>,
    ) -> Result<Network, Error> {
        let pick = |upper: &str| {
            let lower = upper.to_ascii_lowercase();
            var(upper)
                .map(|v| (upper.to_string(), v))
                .or_else(|| var(&lower).map(|v| (lower, v)))
        };
        let all = pick("ALL_PROXY").map(|(k, v)| proxy(&k, &v)).transpose()?;
        let https = match pick("HTTPS_PROXY") {
            Some((k, v)) => Some(proxy(&k, &v)?),
            None => all.clone(),
        };
        let http = match pick("HTTP_PROXY") {
            Some((k, v)) => Some(proxy(&k, &v)?),
            None => all,
        };
        let no_proxy = pick("NO_PROXY")
            .map(|(_, v)| exceptions(&v))
            .unwrap_or_default();
        let ca_file = match ca_file {
            None => None,
            Some(path) => Some((path.to_string(), read_ca_file(path)?)),
        };
        Ok(Network {
            https,
            http,
            no_proxy,
            identity_hosts: Vec::new(),
            ca_file,
        })
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub fn proxy_for(&self, url: &url::Url) -> Option<&Proxy> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        (!self.bypasses(url)).then_some(proxy)
    }

    /// Whether `url` is reached directly: loopback, link-local and managed identity hosts always
    /// (whatever `NO_PROXY` says), other hosts when `NO_PROXY` names them.
    pub fn bypasses(&self, url: &url::Url) -> bool {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Some(ip) = ip {
            if always_direct(ip) {
                return true;
            }
        } else if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        if self.identity_hosts.contains(&host) {
            return true;
        }
        self.no_proxy.iter().any(|e| match e {
            Exception::Everything => true,
            Exception::Domain(d) => host == *d || host.ends_with(&format!(".{d}")),
            Exception::Network(net, bits) => ip.is_some_and(|ip| in_network(ip, *net, *bits)),
        })
    }

    /// Every proxy password, for scrubbing printed text.
    pub fn secret_values(&self) -> Vec<String> {
        [&self.https, &self.http]
            .into_iter()
            .flatten()
            .filter_map(|p| p.credentials.as_ref())
            .map(|(_, password)| password.clone())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// Loopback, link-local and unspecified addresses.
fn always_direct(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| always_direct(IpAddr::V4(v4)))
        }
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Parses `NO_PROXY`: comma- or space-separated host names (a leading `.` or `*.` allowed),
/// addresses, CIDR networks, or `*`; a `:port` suffix is ignored.
fn exceptions(value: &str) -> Vec<Exception> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter_map(|entry| {
            if entry == "*" {
                return Some(Exception::Everything);
            }
            let (addr, bits) = match entry.split_once('/') {
                Some((a, b)) => (a, b.parse::<u8>().ok()),
                None => (entry, None),
            };
            let bare = addr.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                let full = if ip.is_ipv4() { 32 } else { 128 };
                return Some(Exception::Network(ip, bits.unwrap_or(full)));
            }
            let host = match addr.rsplit_once(':') {
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
                _ => addr,
            };
            let host = host
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            (!host.is_empty()).then_some(Exception::Domain(host))
        })
        .collect()
}

/// Parses one proxy variable. Its value is never echoed: it may hold a password.
fn proxy(variable: &str, value: &str) -> Result<Proxy, Error> {
    let text = value.trim();
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| {
        Error::setting(
            variable,
            format!("is not a proxy URL ({e})"),
            "e.g. http://proxy.example.com:3128 or http://user:password@proxy.example.com:3128",
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::setting(
            variable,
            format!(
                "the proxy scheme `{}` is not supported (http:// or https:// proxies only)",
                url.scheme()
            ),
            "e.g. http://proxy.example.com:3128",
        ));
    }
    let credentials = (!url.username().is_empty() || url.password().is_some()).then(|| {
        (
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or_default()),
        )
    });
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let display = format!(
        "{}://{}:{}",
        bare.scheme(),
        bare.host_str().unwrap_or_default(),
        bare.port_or_known_default().unwrap_or(80)
    );
    Ok(Proxy {
        display,
        url: bare,
        credentials,
        variable: variable.to_string(),
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads `PBIOPS_CA_FILE`: one or more PEM certificates, nothing else required.
fn read_ca_file(path: &str) -> Result<Vec<u8>, Error> {
    let help = "a PEM file with one or more CA certificates (-----BEGIN CERTIFICATE-----), e.g. the corporate root your proxy re-signs with";
    let bytes = std::fs::read(path)
        .map_err(|e| Error::setting("PBIOPS_CA_FILE", format!("cannot read {path}: {e}"), help))?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::setting(
            "PBIOPS_CA_FILE",
            format!("{path} holds no PEM certificate"),
            format!(
                "{help}; convert a DER .cer/.crt with `openssl x509 -inform der -in ca.cer -out ca.pem`"
            ),
        ));
    }
    if reqwest::Certificate::from_pem_bundle(&bytes).is_err() {
        return Err(Error::setting(
            "PBIOPS_CA_FILE",
            format!("{path}: a certificate in it cannot be read"),
            help,
        ));
    }
    Ok(bytes)
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

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).expect("url")
    }

    #[test]
    fn loopback_link_local_and_identity_hosts_never_use_the_proxy() {
        let mut n = network(&[("HTTPS_PROXY", "proxy:3128"), ("http_proxy", "proxy:3128")]);
        n.identity_hosts.push("10.0.0.5".into());
        for direct in [
            "http://127.0.0.1:5480/x",
            "http://127.9.9.9/x",
            "https://localhost:1/x",
            "https://api.localhost/x",
            "http://[::1]:80/x",
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://[fe80::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://10.0.0.5:8081/msi/token",
        ] {
            assert!(n.proxy_for(&url(direct)).is_none(), "{direct}");
        }
        let proxy = n
            .proxy_for(&url("https://api.powerbi.com/v1.0/myorg"))
            .expect("proxied");
        assert_eq!(
            (proxy.display.as_str(), proxy.variable.as_str()),
            ("http://proxy:3128", "HTTPS_PROXY")
        );
        assert!(n.proxy_for(&url("http://10.0.0.6/x")).is_some());
    }

    #[test]
    fn no_proxy_names_domains_networks_and_everything() {
        let n = network(&[
            ("ALL_PROXY", "http://proxy:8080"),
            (
                "no_proxy",
                ".corp.example, login.microsoftonline.com:443, 10.0.0.0/8, *.cn",
            ),
        ]);
        for direct in [
            "https://a.corp.example/x",
            "https://corp.example/x",
            "https://login.microsoftonline.com/t",
            "https://10.20.30.40/x",
            "https://api.powerbi.cn/x",
        ] {
            assert!(n.proxy_for(&url(direct)).is_none(), "{direct}");
        }
        assert!(n.proxy_for(&url("https://notcorp.example/x")).is_some());
        assert!(n.proxy_for(&url("http://11.0.0.1/x")).is_some());
        let n = network(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", "*")]);
        assert!(n.proxy_for(&url("https://api.powerbi.com/")).is_none());
    }

    #[test]
    fn upper_case_wins_and_credentials_stay_out_of_the_display() {
        let n = network(&[
            ("HTTPS_PROXY", "http://svc%40corp:p%3Ass@proxy.corp:3128"),
            ("https_proxy", "http://other:1"),
        ]);
        let p = n.https.as_ref().expect("proxy");
        assert_eq!(p.display, "http://proxy.corp:3128");
        assert_eq!(
            p.credentials,
            Some(("svc@corp".to_string(), "p:ss".to_string()))
        );
        assert!(!p.url.as_str().contains("p%3Ass"));
        assert_eq!(n.secret_values(), vec!["p:ss".to_string()]);
        assert!(!format!("{n:?}").contains("p%3Ass"));
    }

    #[test]
    fn a_bad_proxy_is_named_without_its_value() {
        let var = |name: &str| (name == "HTTPS_PROXY").then(|| "socks5://u:secret@p:1".to_string());
        let err = Network::read(&var, None).expect_err("socks");
        assert!(err.to_string().contains("`HTTPS_PROXY`"));
        assert!(!err.to_string().contains("secret"));
        let err = Network::read(&|_| None, Some("/nonexistent/ca.pem")).expect_err("missing");
        assert!(err.to_string().contains("`PBIOPS_CA_FILE`"));
    }
}
