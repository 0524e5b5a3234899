//! TCP options as configured, read back with `getsockopt` from the sockets themselves: the
//! one the server accepted and the one the client dialed. Both live in this process; the test
//! finds them by address among its own descriptors, duplicates them with `pidfd_getfd` and
//! asks the kernel through socket2 (Linux only).
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use tokio::net::TcpListener;
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Idempotency, Protocol, Request, Response, Router, Spec,
    StreamType,
};

const ECHO: Spec = Spec::new(
    "/test.v1.Sock/Echo",
    StreamType::Unary,
    Idempotency::Unknown,
);

/// Every socket of this process, duplicated.
fn own_sockets() -> anyhow::Result<Vec<socket2::Socket>> {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
    let pidfd = pidfd_open(getpid(), PidfdFlags::empty())?;
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue; // closed meanwhile
        };
        if !link.to_string_lossy().starts_with("socket:") {
            continue;
        }
        // Closed (or reused) since the listing: skip it.
        if let Ok(dup) = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()) {
            sockets.push(socket2::Socket::from(dup));
        }
    }
    Ok(sockets)
}

/// The TCP socket of this process from `local` to `peer`.
fn socket(local: SocketAddr, peer: SocketAddr) -> anyhow::Result<socket2::Socket> {
    own_sockets()?
        .into_iter()
        .find(|s| {
            s.local_addr().ok().and_then(|a| a.as_socket()) == Some(local)
                && s.peer_addr().ok().and_then(|a| a.as_socket()) == Some(peer)
        })
        .ok_or_else(|| anyhow::anyhow!("no socket {local} -> {peer} in this process"))
}

/// TCP keepalive as a socket should have it: idle time, probe interval, probe count.
type Keepalive = Option<(Duration, Duration, u32)>;

fn check(
    side: &str,
    s: &socket2::Socket,
    nodelay: bool,
    keepalive: Keepalive,
) -> anyhow::Result<()> {
    assert_eq!(s.tcp_nodelay()?, nodelay, "{side}: TCP_NODELAY");
    assert_eq!(s.keepalive()?, keepalive.is_some(), "{side}: SO_KEEPALIVE");
    if let Some((idle, interval, retries)) = keepalive {
        assert_eq!(s.tcp_keepalive_time()?, idle, "{side}: TCP_KEEPIDLE");
        assert_eq!(
            s.tcp_keepalive_interval()?,
            interval,
            "{side}: TCP_KEEPINTVL"
        );
        assert_eq!(s.tcp_keepalive_retries()?, retries, "{side}: TCP_KEEPCNT");
    }
    Ok(())
}

/// One echo call through a client of `config`: the client (keeping its pooled connection
/// open) and the (local, remote) addresses of the connection it used.
async fn echo_once(
    config: ClientConfig,
) -> anyhow::Result<(
    Client<volley::client::HttpTransport>,
    SocketAddr,
    SocketAddr,
)> {
    let client = Client::new(config)?;
    let reply = client
        .unary::<_, StringValue>(ECHO, StringValue::from("x"), CallOptions::new())
        .await?;
    let info = reply
        .connection()
        .expect("the transport reports its connection");
    Ok((client, info.local_addr.unwrap(), info.remote_addr.unwrap()))
}

#[tokio::test]
async fn tcp_options_are_set_on_the_accepted_and_the_dialed_socket() -> anyhow::Result<()> {
    let router = Router::new().unary(ECHO, |request: Request<StringValue>| async move {
        Ok(Response::new(request.into_message()))
    });
    // (nodelay, keepalive idle, probe interval and count set explicitly or left at defaults)
    let cases = [
        (
            false,
            Some(Duration::from_secs(7)),
            Some((Duration::from_secs(3), 2)),
        ),
        (true, None, None),
        (true, Some(Duration::from_secs(42)), None),
    ];
    for (nodelay, idle, probes) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server_addr = listener.local_addr()?;
        let mut server = Server::from_listener(listener)
            .tcp_nodelay(nodelay)
            .tcp_keepalive(idle);
        if let Some((interval, retries)) = probes {
            server = server
                .tcp_keepalive_interval(Some(interval))
                .tcp_keepalive_retries(Some(retries));
        }
        tokio::spawn(server.serve(router.clone()));
        let (interval, retries) = probes.unwrap_or((
            volley::server::DEFAULT_TCP_KEEPALIVE_INTERVAL,
            volley::server::DEFAULT_TCP_KEEPALIVE_RETRIES,
        ));
        let expected = idle.map(|idle| (idle, interval, retries));
        for protocol in [Protocol::Connect, Protocol::Grpc] {
            let mut config = ClientConfig::new(format!("http://{server_addr}"))?
                .protocol(protocol)
                .tcp_nodelay(nodelay)
                .tcp_keepalive(idle);
            if let Some((interval, retries)) = probes {
                config = config
                    .tcp_keepalive_interval(Some(interval))
                    .tcp_keepalive_retries(Some(retries));
            }
            let (_client, local, remote) = echo_once(config).await?;
            assert_eq!(remote, server_addr);
            // The pooled connection is still open on both ends.
            let case = format!("{protocol:?}, nodelay {nodelay}, keepalive {expected:?}");
            check(
                &format!("client, {case}"),
                &socket(local, remote)?,
                nodelay,
                expected,
            )?;
            check(
                &format!("server, {case}"),
                &socket(remote, local)?,
                nodelay,
                expected,
            )?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_server_turns_tcp_keepalive_on_by_default() -> anyhow::Result<()> {
    let router = Router::new().unary(ECHO, |request: Request<StringValue>| async move {
        Ok(Response::new(request.into_message()))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve(router));
    let (_client, local, remote) =
        echo_once(ClientConfig::new(format!("http://{server_addr}"))?).await?;
    check(
        "server, defaults",
        &socket(remote, local)?,
        true,
        Some((
            volley::server::DEFAULT_TCP_KEEPALIVE,
            volley::server::DEFAULT_TCP_KEEPALIVE_INTERVAL,
            volley::server::DEFAULT_TCP_KEEPALIVE_RETRIES,
        )),
    )?;
    // The documented defaults: a vanished peer is dropped 60 s + 4 x 15 s after it went quiet.
    assert_eq!(
        (
            volley::server::DEFAULT_TCP_KEEPALIVE,
            volley::server::DEFAULT_TCP_KEEPALIVE_INTERVAL,
            volley::server::DEFAULT_TCP_KEEPALIVE_RETRIES,
        ),
        (Duration::from_secs(60), Duration::from_secs(15), 4)
    );
    assert_eq!(
        (
            volley::client::DEFAULT_CLIENT_TCP_KEEPALIVE_INTERVAL,
            volley::client::DEFAULT_CLIENT_TCP_KEEPALIVE_RETRIES,
        ),
        (Duration::from_secs(15), 4)
    );
    Ok(())
}
