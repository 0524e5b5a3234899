//! HTTP/2 keepalive on the wire: the server and the client send PINGs at the configured
//! interval and give up on a peer that does not answer them within the timeout. Each side
//! faces a hand-written HTTP/2 peer that completes the handshake, then stays silent.

use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use volley::client::HttpVersion;
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Code, Idempotency, Protocol, Request, Response, Router,
    Spec, StreamType,
};

const ECHO: Spec = Spec::new(
    "/test.v1.Ping/Echo",
    StreamType::Unary,
    Idempotency::Unknown,
);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
const SETTINGS_ACK: [u8; 9] = [0, 0, 0, 4, 1, 0, 0, 0, 0];
const PING: u8 = 6;
const GOAWAY: u8 = 7;

/// Reads frames until the peer closes or sends GOAWAY, acknowledging its SETTINGS and never
/// its PINGs. Returns when each PING arrived and when the connection ended.
async fn silent_peer(io: &mut TcpStream) -> anyhow::Result<(Vec<Instant>, Instant)> {
    let mut pings = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if io.read_exact(&mut head).await.is_err() {
            return Ok((pings, Instant::now()));
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        anyhow::ensure!(len <= 1 << 20, "frame too large: {len}");
        let mut payload = vec![0u8; len];
        if io.read_exact(&mut payload).await.is_err() {
            return Ok((pings, Instant::now()));
        }
        match (head[3], head[4]) {
            (4, flags) if flags & 1 == 0 => io.write_all(&SETTINGS_ACK).await?,
            (PING, flags) if flags & 1 == 0 => pings.push(Instant::now()),
            (GOAWAY, _) => return Ok((pings, Instant::now())),
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_server_pings_and_drops_a_peer_that_never_answers() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = Router::new().unary(ECHO, |r: Request<StringValue>| async move {
        Ok(Response::new(r.into_message()))
    });
    let server = Server::from_listener(listener).keepalive(Some((
        Duration::from_millis(150),
        Duration::from_millis(300),
    )));
    tokio::spawn(server.serve(router));
    let mut tcp = TcpStream::connect(addr).await?;
    let start = Instant::now();
    tcp.write_all(PREFACE).await?;
    tcp.write_all(&SETTINGS).await?;
    let (pings, closed) =
        tokio::time::timeout(Duration::from_secs(5), silent_peer(&mut tcp)).await??;
    assert!(!pings.is_empty(), "no PING before the close");
    let first = pings[0] - start;
    assert!(
        first >= Duration::from_millis(100) && first < Duration::from_secs(2),
        "first PING after {first:?}"
    );
    let waited = closed - pings[0];
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed {waited:?} after an unanswered PING"
    );
    Ok(())
}

#[tokio::test]
async fn the_client_pings_and_fails_calls_on_a_server_that_never_answers() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = ClientConfig::new(format!("http://{addr}"))?
        .protocol(Protocol::Grpc)
        .http_version(HttpVersion::Http2)
        .keepalive(Some((
            Duration::from_millis(150),
            Duration::from_millis(300),
        )));
    let client = Client::new(config)?;
    let start = Instant::now();
    // No timeout on the call: only keepalive can end it.
    let call = tokio::spawn(async move {
        client
            .unary::<_, StringValue>(ECHO, StringValue::from("x"), CallOptions::new())
            .await
    });
    let (mut tcp, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await??;
    let mut preface = [0u8; 24];
    tcp.read_exact(&mut preface).await?;
    assert_eq!(&preface, PREFACE);
    tcp.write_all(&SETTINGS).await?;
    let (pings, closed) =
        tokio::time::timeout(Duration::from_secs(5), silent_peer(&mut tcp)).await??;
    assert!(!pings.is_empty(), "no PING before the close");
    let first = pings[0] - start;
    assert!(
        first >= Duration::from_millis(100) && first < Duration::from_secs(2),
        "first PING after {first:?}"
    );
    let waited = closed - pings[0];
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed {waited:?} after an unanswered PING"
    );
    let err = tokio::time::timeout(Duration::from_secs(5), call)
        .await??
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    Ok(())
}
