//! Volley servers on real sockets for the tests: cleartext (HTTP/1.1 and h2c on one port) and
//! TLS with a fresh self-signed certificate (HTTP/2 and HTTP/1.1 by ALPN).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use volley::Router;
use volley::server::{Server, TlsConfig};

/// A running server. Dropping the handle starts a graceful shutdown too.
#[derive(Debug)]
pub struct ServerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl ServerHandle {
    /// Starts a graceful shutdown without waiting for it: the listener closes, in-flight
    /// calls go on.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        match self.task.take() {
            Some(task) => Ok(task.await??),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// Serves `router` on `127.0.0.1:0` with the default server settings.
pub async fn spawn_server(router: Router) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    spawn_server_with(router, |server| server).await
}

/// Serves `router` on `127.0.0.1:0`, letting `configure` adjust the [`Server`] first (grace
/// period, TLS).
pub async fn spawn_server_with(
    router: Router,
    configure: impl FnOnce(Server) -> Server,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let server = configure(Server::from_listener(listener));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_with_shutdown(router, async move {
        // A dropped sender stops the server as well as an explicit stop.
        let _ = stopped.await;
    }));
    Ok((
        addr,
        ServerHandle {
            stop: Some(stop),
            task: Some(task),
        },
    ))
}

/// A TLS server and what a client needs to trust it.
#[derive(Debug)]
pub struct TlsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Stops it.
    pub handle: ServerHandle,
    /// The self-signed certificate (DER), valid for `localhost` and `127.0.0.1`.
    pub certificate: rustls_pki_types::CertificateDer<'static>,
}

impl TlsServer {
    /// A rustls client configuration trusting only this server's certificate and offering
    /// `alpn` (e.g. `[b"h2"]`, `[b"http/1.1"]`).
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.certificate.clone())?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// Serves `router` over TLS on `127.0.0.1:0` with a freshly generated self-signed
/// certificate (rcgen), ALPN offering `h2` and `http/1.1`.
pub async fn spawn_tls_server(router: Router) -> anyhow::Result<TlsServer> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let tls = TlsConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())?;
    let (addr, handle) = spawn_server_with(router, |server| server.tls(tls)).await?;
    Ok(TlsServer {
        addr,
        handle,
        certificate: certified.cert.der().clone(),
    })
}
