//! The built-in transport: hyper-util's pooled client over TCP, h2c with prior knowledge, and
//! HTTPS with ALPN through rustls (see `connector`).

use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connector::Connector;
use super::{ClientConfig, Transport, transport::transport_error};
use crate::Error;
use crate::stream::{Body, boxed_body};

/// Which HTTP version the built-in transport speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTPS: negotiate by ALPN. Cleartext: HTTP/1.1, except gRPC, which needs HTTP/2 (h2c).
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: h2c with prior knowledge on cleartext.
    Http2,
}

#[derive(Clone, Default)]
pub(crate) struct HttpSettings {
    version: HttpVersion,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Option<Duration>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("version", &self.version)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// The HTTP version (default [`HttpVersion::Auto`]).
    pub fn http_version(mut self, version: HttpVersion) -> Self {
        self.http.version = version;
        self
    }

    /// Bounds the TCP (and TLS) connect time (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = Some(timeout);
        self
    }

    /// Trusts these PEM CA certificates instead of the built-in web PKI roots, and optionally
    /// presents a client certificate (mTLS).
    #[cfg(feature = "tls")]
    pub fn tls_from_pem(
        mut self,
        ca_pem: Option<&[u8]>,
        client_identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, Error> {
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(e.to_string()))?;
        let roots = match ca_pem {
            Some(pem) => {
                crate::tls::roots_from_pem(pem).map_err(|e| Error::internal(e.to_string()))?
            }
            None => web_roots(),
        };
        let builder = builder.with_root_certificates(roots);
        let config = match client_identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs =
                    crate::tls::certs_from_pem(cert).map_err(|e| Error::internal(e.to_string()))?;
                let key =
                    crate::tls::key_from_pem(key).map_err(|e| Error::internal(e.to_string()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| Error::internal(e.to_string()))?
            }
        };
        self.http.tls = Some(Arc::new(config));
        Ok(self)
    }

    /// Uses a rustls client configuration you built (ALPN is set by the transport).
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.http.tls = Some(Arc::new(config));
        self
    }
}

#[cfg(feature = "tls")]
fn web_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// The built-in pooled HTTP/1.1 + HTTP/2 transport.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: HyperClient<Connector, Body>,
}

impl HttpTransport {
    pub(crate) fn for_config(config: &ClientConfig) -> Result<Self, Error> {
        let settings = &config.http;
        let http2_only = match settings.version {
            HttpVersion::Http2 => true,
            HttpVersion::Http1 => false,
            HttpVersion::Auto => {
                config.protocol.requires_http2() && config.base_uri.scheme_str() != Some("https")
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(
            settings.connect_timeout.unwrap_or(Duration::from_secs(10)),
        ));
        #[cfg(feature = "tls")]
        let connector = {
            let mut tls = match &settings.tls {
                Some(c) => (**c).clone(),
                None => rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| Error::internal(e.to_string()))?
                    .with_root_certificates(web_roots())
                    .with_no_client_auth(),
            };
            tls.alpn_protocols = match settings.version {
                HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
                HttpVersion::Http2 => vec![b"h2".to_vec()],
                HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            };
            Connector::new(http, tls)
        };
        #[cfg(not(feature = "tls"))]
        let connector = Connector::new(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(http2_only)
            .build(connector);
        Ok(Self { client })
    }
}

impl Transport for HttpTransport {
    fn send(
        &self,
        request: http::Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>> {
        let fut = self.client.request(request);
        Box::pin(async move {
            let response = fut.await.map_err(|e| transport_error(Box::new(e)))?;
            Ok(response.map(boxed_body))
        })
    }
}
