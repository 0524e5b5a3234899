//! TLS configuration with rustls (ring provider), ALPN set for the user.

#[cfg(any(feature = "server", feature = "client"))]
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// Errors building a TLS configuration.
#[derive(Debug)]
pub struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS configuration: {}", self.0)
    }
}

impl std::error::Error for TlsError {}

/// The crypto provider every TLS configuration of Volley uses (ring).
#[cfg(any(feature = "server", feature = "client"))]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses PEM certificates.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
    let certs = certs.map_err(|e| TlsError(format!("reading certificates: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| TlsError(format!("reading private key: {e}")))?
        .ok_or_else(|| TlsError("no private key in PEM".into()))
}

/// A root store from PEM CA certificates.
pub fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("adding CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Server TLS settings: a certificate chain and key, and optionally client-certificate checks.
/// (With the `server` feature: the built-in server is what uses them.)
#[cfg(feature = "server")]
#[derive(Debug, Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
}

#[cfg(feature = "server")]
impl TlsConfig {
    /// From PEM certificate chain and key. ALPN offers `h2` then `http/1.1`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Self::build(cert_pem, key_pem, None)
    }

    /// Like [`from_pem`](Self::from_pem), and verifies client certificates against
    /// `client_ca_pem`; with `required`, clients without one are refused.
    pub fn from_pem_with_client_auth(
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: &[u8],
        required: bool,
    ) -> Result<Self, TlsError> {
        Self::build(cert_pem, key_pem, Some((client_ca_pem, required)))
    }

    fn build(
        cert_pem: &[u8],
        key_pem: &[u8],
        client: Option<(&[u8], bool)>,
    ) -> Result<Self, TlsError> {
        let certs = certs_from_pem(cert_pem)?;
        let key = key_from_pem(key_pem)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = match client {
            None => builder.with_no_client_auth(),
            Some((ca, required)) => {
                let roots = Arc::new(roots_from_pem(ca)?);
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().map_err(|e| TlsError(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// From a rustls configuration you built (set ALPN yourself).
    pub fn from_rustls(config: rustls::ServerConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    pub(crate) fn into_server_config(self) -> Arc<rustls::ServerConfig> {
        self.config
    }
}
