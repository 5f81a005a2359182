//! HTTPS: a certificate authority generated at start, a server certificate it signs for the
//! names the emulator answers to, and a listener that completes each TLS handshake before
//! handing the connection to the router.
//!
//! The CA is private to one emulator run, so a client trusts it only when told to (pbiops's
//! `PBIOPS_CA_FILE`): a test can exercise both a trusted and an untrusted certificate. Each
//! handshake attempt is counted, so a test can tell that a client did not retry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// A generated CA and the server side of TLS with a certificate it signed.
#[derive(Clone)]
pub struct Tls {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

impl Tls {
    /// Generates a CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and `names`
    /// (host names or IP addresses, e.g. the fake hosts a test proxy maps to the emulator).
    pub fn generate(names: &[String]) -> Result<Tls, String> {
        let fail = |what: &str, e: rcgen::Error| format!("cannot generate the {what}: {e}");
        let ca_key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA", e))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "pbiops-emulator test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(|e| fail("CA", e))?;
        let issuer = Issuer::new(ca, ca_key);

        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        sans.extend(names.iter().cloned());
        let leaf_key = KeyPair::generate().map_err(|e| fail("server key", e))?;
        let mut leaf = CertificateParams::new(sans).map_err(|e| fail("server certificate", e))?;
        leaf.distinguished_name
            .push(DnType::CommonName, "pbiops-emulator");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .map_err(|e| fail("server certificate", e))?;

        let chain = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
        let key = pki_types::PrivateKeyDer::Pkcs8(pki_types::PrivatePkcs8KeyDer::from(
            leaf_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("TLS server certificate: {e}"))?;
        Ok(Tls {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// A TCP listener that hands over only connections whose TLS handshake completed.
pub(crate) struct TlsListener {
    pub tcp: TcpListener,
    pub acceptor: TlsAcceptor,
    /// Every handshake attempt, successful or not.
    pub handshakes: Arc<AtomicUsize>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, tls: &Tls, handshakes: Arc<AtomicUsize>) -> Self {
        TlsListener {
            tcp,
            acceptor: tls.acceptor.clone(),
            handshakes,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            self.handshakes.fetch_add(1, Ordering::SeqCst);
            // A client that refuses the certificate aborts the handshake at once; one that
            // stalls is dropped after a few seconds so it cannot block the others for long.
            match tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::info!("TLS handshake with {addr} failed: {e}"),
                Err(_) => tracing::info!("TLS handshake with {addr} timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
