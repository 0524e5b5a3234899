//! A hostile peer against a real server over loopback: every attack checks that the server
//! stays up, that its memory stays bounded, that the attacker gets the right error, and that a
//! legitimate client keeps being served.
//!
//! The attacks that need their own process (resource limits, signals, memory of the server
//! alone) run `interop-server` as a child process; the others serve in this process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use volley_tests::process::ServerProcess;
use volley_tests::raw::{self, BodyError, Http, RawClient, ReqBody, envelope};
use volley_tests::rpc::{self, Call, Codec, Protocol};
use volley_tests::{ECHO, EchoRequest, interop_router, spawn_server, spawn_server_with};

const ECHO_PATH: &str = "/volley.interop.v1.InteropService/Echo";
const CLIENT_STREAM_PATH: &str = "/volley.interop.v1.InteropService/ClientStream";
const SERVER_STREAM_PATH: &str = "/volley.interop.v1.InteropService/ServerStream";
const MIB: usize = 1024 * 1024;

/// `interop-server` in a child process, killed when dropped.
fn interop_server(limits: &[&str], args: &[&str]) -> anyhow::Result<ServerProcess> {
    ServerProcess::interop(env!("CARGO_BIN_EXE_interop-server"), limits, args)
}

/// One legitimate unary call (gRPC over HTTP/2 and Connect over HTTP/1.1), within `within`.
async fn legitimate_call(addr: SocketAddr, within: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let client = RawClient::new(addr);
    let request = EchoRequest {
        text: "still here?".into(),
        ..Default::default()
    };
    for (protocol, http) in [(Protocol::Grpc, Http::H2), (Protocol::Connect, Http::H1)] {
        let call = Call::new(protocol, Codec::Proto, "identity", http);
        let out = tokio::time::timeout(
            within,
            rpc::call(&client, &call, &ECHO, std::slice::from_ref(&request)),
        )
        .await
        .with_context(|| format!("a legitimate {protocol:?} call took over {within:?}"))??;
        ensure!(out.single()?.text == "still here?", "{out:?}");
    }
    Ok(start.elapsed())
}

/// A cleartext HTTP/2 connection of our own, for many concurrent streams.
async fn h2_connection(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<ReqBody>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(conn);
    Ok(send)
}

/// A request body that sends `chunks` and then stays open, sending nothing more.
fn held_body(chunks: Vec<Bytes>) -> ReqBody {
    use futures_util::StreamExt as _;
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, BodyError>(Frame::data(c))),
    )
    .chain(futures_util::stream::pending());
    http_body_util::BodyExt::boxed(StreamBody::new(stream))
}

fn grpc_request(path: &str, body: ReqBody, encoding: Option<&str>) -> http::Request<ReqBody> {
    let mut builder = http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(encoding) = encoding {
        builder = builder.header("grpc-encoding", encoding);
    }
    builder.body(body).expect("a valid request")
}

/// The `grpc-status` a response ends with, reading the whole body.
async fn grpc_status(response: http::Response<hyper::body::Incoming>) -> anyhow::Result<String> {
    if let Some(status) = response.headers().get("grpc-status") {
        return Ok(status.to_str()?.to_string());
    }
    let collected = response.into_body().collect().await?;
    let trailers = collected.trailers().context("no trailers")?;
    Ok(trailers
        .get("grpc-status")
        .context("no grpc-status")?
        .to_str()?
        .to_string())
}

static ZEROS: [u8; MIB] = [0; MIB];

/// Attack 1: 2 connections x 200 streams, each a prefix declaring 4 MiB and 100 bytes, against
/// a server limited to 1 GiB of address space. Reserving the declared lengths would take
/// 1.6 GB and abort the server; growing with the bytes received costs a few MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_lengths_are_not_reserved() -> anyhow::Result<()> {
    let mut server = interop_server(&["--as=1073741824"], &[])?;
    legitimate_call(server.addr, Duration::from_secs(5)).await?;
    let (_, peak_before) = server.memory_kib()?;
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&(4 * MIB as u32).to_be_bytes());
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut send = h2_connection(server.addr).await?;
        for _ in 0..200 {
            send.ready().await?;
            let body = held_body(vec![
                Bytes::from(prefix.clone()),
                Bytes::from_static(&ZEROS[..100]),
            ]);
            held.push(tokio::spawn(send.send_request(grpc_request(
                CLIENT_STREAM_PATH,
                body,
                None,
            ))));
        }
        held.push(tokio::spawn(async move {
            // Keeps the connection's sender alive with its streams.
            std::future::pending::<()>().await;
            drop(send);
            unreachable!()
        }));
    }
    // Let the server take in all 400 streams.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.alive()?;
    legitimate_call(server.addr, Duration::from_secs(5)).await?;
    let (_, peak_after) = server.memory_kib()?;
    let grown_mib = peak_after.saturating_sub(peak_before) / 1024;
    eprintln!("address space peak grew by {grown_mib} MiB for 400 declared 4 MiB messages");
    ensure!(
        grown_mib < 256,
        "the server's address space grew by {grown_mib} MiB"
    );
    server.alive()?;
    for task in held {
        task.abort();
    }
    Ok(())
}

/// Attack 4: 2 connections x 200 streams x 4 MB of partial messages, against a server limited
/// to 1 GiB of address space. The router's budget of buffered request bytes turns the excess
/// into `resource_exhausted`, so the server stays alive, its peak resident memory stays under
/// 512 MiB, and a legitimate call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_messages_are_capped_by_the_buffer_budget() -> anyhow::Result<()> {
    let mut server = interop_server(&["--as=1073741824"], &[])?;
    legitimate_call(server.addr, Duration::from_secs(5)).await?;
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&(4 * MIB as u32).to_be_bytes());
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut held = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..2 {
        let mut send = h2_connection(server.addr).await?;
        for _ in 0..200 {
            send.ready().await?;
            let mut chunks = vec![Bytes::from(prefix.clone())];
            chunks.extend((0..4).map(|_| Bytes::from_static(&ZEROS[..1_000_000])));
            let response =
                send.send_request(grpc_request(CLIENT_STREAM_PATH, held_body(chunks), None));
            let done = done_tx.clone();
            held.push(tokio::spawn(async move {
                let status = match response.await {
                    Ok(r) => grpc_status(r).await.unwrap_or_else(|e| format!("{e}")),
                    Err(e) => format!("{e}"),
                };
                let _ = done.send(status);
            }));
        }
        senders.push(send);
    }
    // Wait until the traffic settles: the budget's excess refused (about 340 of the 400
    // streams: 256 MiB holds some 64 partial messages of 4 MB), the rest held.
    let mut exhausted = 0;
    let mut other = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline
        && (exhausted < 300 || quiet_since.elapsed() < Duration::from_secs(1))
    {
        match tokio::time::timeout(Duration::from_millis(200), done_rx.recv()).await {
            Ok(Some(status)) => {
                quiet_since = Instant::now();
                if status == "8" {
                    exhausted += 1;
                } else {
                    other.push(status);
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    server.alive()?;
    legitimate_call(server.addr, Duration::from_secs(5)).await?;
    server.alive()?;
    let (hwm, peak) = server.memory_kib()?;
    eprintln!(
        "under a 1 GiB address-space limit: peak RSS {} MiB, peak address space {} MiB; \
         {exhausted} streams got resource_exhausted; others: {other:?}",
        hwm / 1024,
        peak / 1024
    );
    ensure!(hwm < 512 * 1024, "peak RSS {} MiB", hwm / 1024);
    ensure!(
        exhausted >= 300,
        "only {exhausted} streams were refused: the budget did not apply"
    );
    ensure!(other.is_empty(), "unexpected outcomes: {other:?}");
    drop(senders);
    for task in held {
        task.abort();
    }
    Ok(())
}

/// Attack 3: under a 1,024 open-files limit, 1,100 silent TCP connections. The accept loop
/// survives EMFILE by closing its longest-idle connection, so a legitimate client gets in
/// within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_do_not_lock_clients_out() -> anyhow::Result<()> {
    let server = interop_server(&["--nofile=1024:1024"], &[])?;
    legitimate_call(server.addr, Duration::from_secs(5)).await?;
    let mut silent = Vec::new();
    for i in 0..1100 {
        let stream = TcpStream::connect(server.addr).await.with_context(|| {
            format!("silent connection {i} (is this process's open-files limit over 1,200?)")
        })?;
        silent.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = legitimate_call(server.addr, Duration::from_secs(5)).await?;
    eprintln!("with 1,100 silent connections a legitimate call took {took:?}");
    drop(silent);
    Ok(())
}

/// Connection timeouts: a silent TCP connection, an HTTP/2 connection idle after its
/// preface, and an idle HTTP/1.1 keep-alive connection are closed; a request body that stops
/// sending fails its call; other clients are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_stalled_bodies_are_cut() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server_with(interop_router(), |s| {
        s.header_read_timeout(Duration::from_millis(300))
            .idle_timeout(Duration::from_millis(600))
            .body_progress_timeout(Some(Duration::from_millis(500)))
    })
    .await?;
    async fn closed_within(mut stream: TcpStream, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(start.elapsed()),
                Ok(Ok(_)) => {}
                Err(_) => bail!("still open after {within:?}"),
            }
        }
    }
    let silent = TcpStream::connect(addr).await?;
    let mut h2 = TcpStream::connect(addr).await?;
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing.
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await?;
    let mut h1 = TcpStream::connect(addr).await?;
    h1.write_all(
        b"POST /volley.interop.v1.InteropService/Echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await?;
    let (a, b, c) = tokio::join!(
        closed_within(silent, Duration::from_secs(3)),
        closed_within(h2, Duration::from_secs(3)),
        closed_within(h1, Duration::from_secs(3)),
    );
    let (a, b, c) = (
        a.context("a silent connection")?,
        b.context("an HTTP/2 connection idle after its preface")?,
        c.context("an idle HTTP/1.1 keep-alive connection")?,
    );
    eprintln!("silent closed after {a:?}, idle h2 after {b:?}, idle h1 after {c:?}");

    // A client stream that sends one message and then nothing.
    let mut send = h2_connection(addr).await?;
    let body = held_body(vec![Bytes::from(envelope(0, b""))]);
    let start = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        send.send_request(grpc_request(CLIENT_STREAM_PATH, body, None)),
    )
    .await
    .context("a stalled body was never cut")??;
    let status = tokio::time::timeout(Duration::from_secs(5), grpc_status(response)).await??;
    eprintln!(
        "stalled body failed with grpc-status {status} after {:?}",
        start.elapsed()
    );
    ensure!(status != "0", "a stalled body succeeded");
    legitimate_call(addr, Duration::from_secs(5)).await?;
    Ok(())
}

/// Attack 2: 4 connections x 50 in flight of small br bombs (each inflating past the 4 MiB
/// limit) while a legitimate client calls Echo in a loop: decompression runs off the async
/// workers, so the legitimate calls' p95 latency stays low and every bomb gets
/// `resource_exhausted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn br_bombs_do_not_starve_other_calls() -> anyhow::Result<()> {
    let server = interop_server(&[], &[])?;
    let bomb = volley_tests::compress::compress("br", &vec![0u8; 64 * MIB])?;
    ensure!(bomb.len() < 64 * 1024, "bomb of {} bytes", bomb.len());
    let bomb = Bytes::from(envelope(1, &bomb));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (status_tx, mut status_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut flood = Vec::new();
    for _ in 0..4 {
        let send = h2_connection(server.addr).await?;
        for _ in 0..50 {
            let mut send = send.clone();
            let bomb = bomb.clone();
            let stop = stop.clone();
            let statuses = status_tx.clone();
            flood.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if send.ready().await.is_err() {
                        return;
                    }
                    let request = grpc_request(ECHO_PATH, raw::full(bomb.clone()), Some("br"));
                    let status = match send.send_request(request).await {
                        Ok(r) => grpc_status(r).await.unwrap_or_else(|e| format!("{e}")),
                        Err(e) => format!("{e}"),
                    };
                    let _ = statuses.send(status);
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = RawClient::new(server.addr);
    let call = Call::new(Protocol::Grpc, Codec::Proto, "identity", Http::H2);
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let out = rpc::call(&client, &call, &ECHO, &[EchoRequest::default()]).await?;
        out.single()?;
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in &flood {
        task.abort();
    }
    drop(status_tx);
    let mut bombs = 0;
    let mut wrong = Vec::new();
    while let Ok(status) = status_rx.try_recv() {
        if status == "8" {
            bombs += 1;
        } else {
            wrong.push(status);
        }
    }
    latencies.sort();
    let p95 = latencies[latencies.len() * 95 / 100];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "{} legitimate calls during {bombs} br bombs: p50 {:?}, p95 {p95:?}, max {max:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
    );
    ensure!(bombs > 0, "no bomb was answered");
    ensure!(
        wrong.is_empty(),
        "bombs answered wrongly: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    ensure!(
        p95 < Duration::from_millis(150),
        "legitimate p95 latency {p95:?} under the bomb flood"
    );
    Ok(())
}

/// Shutdown during open streams: SIGTERM stops accepting, in-flight unary calls complete,
/// open streams are cut when the grace period ends, and the process exits 0 within the grace
/// period plus 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_cuts_and_exits_zero() -> anyhow::Result<()> {
    let grace = Duration::from_millis(1500);
    let mut server = interop_server(&[], &["--grace-ms", "1500"])?;
    let addr = server.addr;
    let client = RawClient::new(addr);
    // 50 open server streams (a message every 100 ms for 100 s).
    let mut streams = Vec::new();
    let mut send = h2_connection(addr).await?;
    let stream_request = rpc::encode_message(
        Codec::Proto,
        &EchoRequest {
            count: 1000,
            delay_ms: 100,
            ..Default::default()
        },
    );
    for _ in 0..50 {
        send.ready().await?;
        let request = grpc_request(
            SERVER_STREAM_PATH,
            raw::full(envelope(0, &stream_request)),
            None,
        );
        let response = send.send_request(request).await?;
        ensure!(response.status() == StatusCode::OK);
        streams.push(tokio::spawn(async move {
            let mut reader = raw::FrameReader::new(response.into_body(), false);
            let mut messages = 0;
            while let Ok(Some(_)) = reader.next().await {
                messages += 1;
            }
            (messages, Instant::now())
        }));
    }
    // An in-flight unary call that needs 800 ms.
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            let call = Call::new(Protocol::Grpc, Codec::Proto, "identity", Http::H2);
            let request = EchoRequest {
                text: "slow".into(),
                delay_ms: 800,
                ..Default::default()
            };
            rpc::call(&client, &call, &ECHO, &[request]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    server.signal("TERM")?;
    let out = slow.await??;
    ensure!(out.single()?.text == "slow", "{out:?}");
    eprintln!(
        "in-flight unary completed {:?} after SIGTERM",
        signalled.elapsed()
    );
    // New connections are refused once the listener is closed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is still accepting after SIGTERM"
    );
    let status = loop {
        if let Some(status) = server.child.try_wait()? {
            break status;
        }
        ensure!(
            signalled.elapsed() < grace + Duration::from_secs(2),
            "still running {:?} after SIGTERM",
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exited = signalled.elapsed();
    ensure!(status.success(), "exit status {status}");
    for stream in streams {
        let (messages, ended) = tokio::time::timeout(Duration::from_secs(2), stream).await??;
        ensure!(messages > 0, "a stream got no message");
        ensure!(
            ended.duration_since(signalled) >= grace - Duration::from_millis(200),
            "a stream was cut before the grace period ended"
        );
    }
    eprintln!("exited 0 {exited:?} after SIGTERM (grace {grace:?})");
    Ok(())
}

/// `serve_with_shutdown` returns only once every connection is closed: a server stream open
/// at shutdown gets nothing more after it returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_returns_only_after_every_connection_closed() -> anyhow::Result<()> {
    let (addr, server) = spawn_server_with(interop_router(), |s| {
        s.grace_period(Duration::from_millis(500))
    })
    .await?;
    let mut send = h2_connection(addr).await?;
    let request = rpc::encode_message(
        Codec::Proto,
        &EchoRequest {
            count: 1000,
            delay_ms: 20,
            ..Default::default()
        },
    );
    let response = send
        .send_request(grpc_request(
            SERVER_STREAM_PATH,
            raw::full(envelope(0, &request)),
            None,
        ))
        .await?;
    let (count_tx, count_rx) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut reader = raw::FrameReader::new(response.into_body(), false);
        let mut n = 0;
        while let Ok(Some(_)) = reader.next().await {
            n += 1;
            let _ = count_tx.send(n);
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), server.shutdown()).await??;
    let returned_after = start.elapsed();
    let at_return = *count_rx.borrow();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = *count_rx.borrow();
    eprintln!("serve returned after {returned_after:?}; {at_return} messages then, {later} later");
    ensure!(
        returned_after >= Duration::from_millis(450),
        "returned before the grace period"
    );
    ensure!(
        later <= at_return + 1,
        "the stream went on after serve returned"
    );
    ensure!(reader.is_finished(), "the stream is still open");
    Ok(())
}

/// A compressed message with a 0-byte payload is the empty message, for every algorithm and
/// protocol (older Go encoders send exactly that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_compressed_payload_is_the_empty_message() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router()).await?;
    let client = RawClient::new(addr);
    for encoding in ["gzip", "deflate", "br", "zstd"] {
        for protocol in Protocol::ALL {
            let http = if protocol.works_over(Http::H1) {
                Http::H1
            } else {
                Http::H2
            };
            let call = Call::new(protocol, Codec::Proto, encoding, http);
            let (headers, _) = rpc::build_request(&call, &ECHO, &[EchoRequest::default()])?;
            let body = match protocol {
                Protocol::Connect => Vec::new(),
                Protocol::GrpcWebText => raw::encode_web_text(&envelope(1, b"")),
                _ => envelope(1, b""),
            };
            let mut builder = client.request(http, Method::POST, ECHO_PATH);
            for (name, value) in &headers {
                builder = builder.header(name, value);
            }
            let reply = client.call(http, builder.body(raw::full(body))?).await?;
            let out = rpc::parse_reply(&call, &ECHO, reply)
                .with_context(|| format!("{encoding} over {protocol:?}"))?;
            ensure!(
                out.error.is_none(),
                "{encoding} over {protocol:?}: {:?}",
                out.error
            );
            out.single()?;
        }
    }
    Ok(())
}

/// Minor: an absurd `grpc-timeout` is cut to the server's maximum (24 h by default), and an
/// encoding name that is not ASCII is an unknown encoding (`unimplemented`), not identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_timeouts_are_capped_and_odd_encodings_are_unknown() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router()).await?;
    let client = RawClient::new(addr);
    let call = Call::new(Protocol::Grpc, Codec::Proto, "identity", Http::H2)
        .header("grpc-timeout", "99999999H");
    let out = rpc::call(&client, &call, &ECHO, &[EchoRequest::default()]).await?;
    let left = out.single()?.deadline_ms;
    ensure!(
        (0..=24 * 3600 * 1000).contains(&left) && left > 23 * 3600 * 1000,
        "deadline {left} ms"
    );
    let call = Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H1)
        .header("connect-timeout-ms", "9999999999");
    let out = rpc::call(&client, &call, &ECHO, &[EchoRequest::default()]).await?;
    ensure!(out.single()?.deadline_ms <= 24 * 3600 * 1000);

    let odd = http::HeaderValue::from_bytes(b"\xffgzip")?;
    let message = envelope(0, b"");
    let mut request = grpc_request(ECHO_PATH, raw::full(message), None);
    request.headers_mut().insert("grpc-encoding", odd.clone());
    *request.uri_mut() = client.uri(ECHO_PATH).parse()?;
    let reply = raw::read_reply(client.send(Http::H2, request).await?).await?;
    let status = reply
        .header("grpc-status")
        .or_else(|| reply.trailer("grpc-status"));
    ensure!(status == Some("12"), "grpc-encoding \\xffgzip: {status:?}");
    let mut request = client
        .request(Http::H1, Method::POST, ECHO_PATH)
        .header("content-type", "application/proto")
        .body(raw::full(Bytes::new()))?;
    request.headers_mut().insert("content-encoding", odd);
    let reply = client.call(Http::H1, request).await?;
    ensure!(reply.json()?["code"] == "unimplemented", "{:?}", reply.body);
    legitimate_call(addr, Duration::from_secs(5)).await?;
    Ok(())
}

/// A gRPC client stream on `send` whose body comes from the returned sender; resolves to the
/// call's `grpc-status` (or the transport error) and how long the call took.
fn client_stream_call(
    send: &mut hyper::client::conn::http2::SendRequest<ReqBody>,
) -> (
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<(String, Duration)>,
) {
    let (tx, body) = raw::channel_body();
    let response = send.send_request(grpc_request(CLIENT_STREAM_PATH, body, None));
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let status = match response.await {
            Ok(r) => grpc_status(r).await.unwrap_or_else(|e| format!("{e}")),
            Err(e) => format!("{e}"),
        };
        (status, start.elapsed())
    });
    (tx, task)
}

/// Minimum body rate: a message trickling in a byte at a time fails its call once it has
/// taken the grace period (though bytes keep arriving, so the progress timeout never fires),
/// for enveloped gRPC and for a whole Connect unary body; an upload at a few KiB/s, and a
/// stream whose messages come with pauses longer than the grace period, succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_fail_but_slow_uploads_pass() -> anyhow::Result<()> {
    let grace = Duration::from_millis(800);
    let (addr, _server) = spawn_server_with(interop_router(), |s| {
        s.min_body_rate(Some((1024, grace)))
            .body_progress_timeout(Some(Duration::from_secs(30)))
    })
    .await?;
    let mut send = h2_connection(addr).await?;

    // gRPC: a prefix declaring 1,000 bytes, then a byte every 100 ms.
    let (tx, trickled) = client_stream_call(&mut send);
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&1000u32.to_be_bytes());
    tx.send(Bytes::from(prefix)).await?;
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if tx.send(Bytes::from_static(b"x")).await.is_err() {
                return;
            }
        }
    });

    // Connect unary: a 1,000-byte JSON body (content-length known), a byte every 100 ms.
    let client = RawClient::new(addr);
    let (utx, ubody) = raw::channel_body();
    let request = client
        .request(Http::H2, Method::POST, ECHO_PATH)
        .header("content-type", "application/json")
        .header("content-length", "1000")
        .body(ubody)?;
    let unary = {
        let client = client.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let reply = client.call(Http::H2, request).await;
            (reply, start.elapsed())
        })
    };
    let utrickle = tokio::spawn(async move {
        if utx
            .send(Bytes::from_static(b"{\"text\": \""))
            .await
            .is_err()
        {
            return;
        }
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if utx.send(Bytes::from_static(b"a")).await.is_err() {
                return;
            }
        }
    });

    // Legitimate and slow: 24 KiB at about 4 KiB/s (6 s, far past the grace period).
    let (stx, slow) = client_stream_call(&mut send);
    let message = rpc::encode_message(
        Codec::Proto,
        &EchoRequest {
            text: "slow".into(),
            payload: vec![7u8; 24 * 1024],
            ..Default::default()
        },
    );
    let framed = envelope(0, &message);
    let uploader = tokio::spawn(async move {
        for chunk in framed.chunks(1024) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            stx.send(Bytes::copy_from_slice(chunk)).await?;
        }
        anyhow::Ok(())
    });

    // Legitimate and bursty: three small messages 1.5 s apart (pauses between messages do
    // not count).
    let (btx, bursty) = client_stream_call(&mut send);
    let small = envelope(
        0,
        &rpc::encode_message(
            Codec::Proto,
            &EchoRequest {
                text: "burst".into(),
                ..Default::default()
            },
        ),
    );
    let burster = tokio::spawn(async move {
        for _ in 0..3 {
            btx.send(Bytes::copy_from_slice(&small)).await?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        anyhow::Ok(())
    });

    let (status, took) = tokio::time::timeout(Duration::from_secs(10), trickled).await??;
    eprintln!("a trickled gRPC message failed with grpc-status {status} after {took:?}");
    ensure!(
        status == "1",
        "a trickled gRPC message ended with {status:?}"
    );
    ensure!(
        took >= grace && took < grace + Duration::from_secs(3),
        "a trickled message was cut after {took:?}"
    );
    let (reply, took) = tokio::time::timeout(Duration::from_secs(10), unary).await??;
    let reply = reply?;
    eprintln!(
        "a trickled Connect unary body failed with HTTP {} after {took:?}",
        reply.status
    );
    ensure!(
        reply.json()?["code"] == "canceled",
        "a trickled unary body: {} {:?}",
        reply.status,
        reply.body
    );
    ensure!(took < grace + Duration::from_secs(3), "cut after {took:?}");
    trickle.abort();
    utrickle.abort();

    uploader.await??;
    let (status, took) = tokio::time::timeout(Duration::from_secs(10), slow).await??;
    eprintln!("a 24 KiB upload at ~4 KiB/s ended with grpc-status {status} after {took:?}");
    ensure!(status == "0", "a slow but real upload failed: {status}");
    burster.await??;
    let (status, took) = tokio::time::timeout(Duration::from_secs(10), bursty).await??;
    ensure!(
        status == "0",
        "a stream with pauses failed: {status} after {took:?}"
    );
    legitimate_call(addr, Duration::from_secs(5)).await?;
    Ok(())
}

/// Counts the responses of [`flood_router`]'s `Flood` started and dropped.
#[derive(Default)]
struct FloodCounters {
    started: std::sync::atomic::AtomicUsize,
    dropped: std::sync::atomic::AtomicUsize,
}

/// Counts a `Flood` response dropped when it is.
struct DropMark(std::sync::Arc<FloodCounters>);

impl Drop for DropMark {
    fn drop(&mut self) {
        self.0
            .dropped
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

const FLOOD: volley::Spec = volley::Spec::new(
    "/volley.attacks.v1.Attacks/Flood",
    volley::StreamType::ServerStream,
    volley::Idempotency::Unknown,
);

/// The interop router plus `Flood`: a server stream of 16 KiB messages without end, whose
/// starts and drops are counted.
fn flood_router(counters: std::sync::Arc<FloodCounters>) -> volley::Router {
    interop_router().server_stream(FLOOD, move |_: volley::Request<EchoRequest>| {
        let counters = counters.clone();
        async move {
            counters
                .started
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mark = DropMark(counters);
            let stream = futures_util::stream::unfold(mark, |mark| async move {
                let message = volley_tests::EchoResponse {
                    payload: vec![1u8; 16 * 1024],
                    ..Default::default()
                };
                Some((Ok(message), mark))
            });
            let stream: volley::ResponseStream<volley_tests::EchoResponse> = Box::pin(stream);
            Ok(volley::Response::new(stream))
        }
    })
}

/// Send timeout: a peer that keeps its HTTP/2 stream window at 0, and one that never reads
/// its HTTP/1.1 socket, get their connection closed and their calls' handlers dropped once
/// the response has waited for the timeout; a client reading a stream slowly, and a stream
/// whose handler takes longer than the timeout between messages, are served in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_the_peer_does_not_take_are_dropped() -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    use volley_tests::h2frames::{self, RawH2};
    let timeout = Duration::from_millis(1000);
    let counters = std::sync::Arc::new(FloodCounters::default());
    let (addr, _server) = spawn_server_with(flood_router(counters.clone()), |s| {
        s.send_timeout(Some(timeout))
    })
    .await?;
    async fn wait_for(
        counter: &std::sync::atomic::AtomicUsize,
        n: usize,
        within: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        while counter.load(SeqCst) < n {
            ensure!(start.elapsed() < within, "not within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(start.elapsed())
    }

    // HTTP/2, stream window 0: the response can never send a byte of data.
    let mut h2 = RawH2::connect(addr, &[(h2frames::SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await?;
    h2.post(
        1,
        FLOOD.procedure,
        &[("content-type", "application/grpc"), ("te", "trailers")],
        false,
    )
    .await?;
    h2.data(1, &envelope(0, b""), true).await?;
    wait_for(&counters.started, 1, Duration::from_secs(5)).await?;
    let started = Instant::now();
    tokio::time::sleep(timeout / 2).await;
    ensure!(
        counters.dropped.load(SeqCst) == 0,
        "dropped before the timeout"
    );
    wait_for(&counters.dropped, 1, timeout * 3).await?;
    let released = started.elapsed();
    ensure!(
        h2.closed_within(Duration::from_secs(2)).await,
        "the connection stayed open"
    );
    eprintln!("a zero-window HTTP/2 peer's call was dropped after {released:?}");

    // HTTP/1.1, the socket never read: the server's buffers fill, then nothing moves.
    let mut h1 = TcpStream::connect(addr).await?;
    let body = envelope(0, b"");
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\ncontent-type: application/connect+proto\r\ncontent-length: {}\r\n\r\n",
        FLOOD.procedure,
        body.len()
    );
    h1.write_all(head.as_bytes()).await?;
    h1.write_all(&body).await?;
    wait_for(&counters.started, 2, Duration::from_secs(5)).await?;
    let took = wait_for(&counters.dropped, 2, Duration::from_secs(20)).await?;
    eprintln!("a never-reading HTTP/1.1 peer's call was dropped after {took:?}");
    drop(h1);

    // A client reading a stream at its own pace (messages 100 ms apart for 2 s) and a
    // handler 1.5 s between messages, both past the timeout: no stall, served in full.
    let client = RawClient::new(addr);
    let call = Call::new(Protocol::Grpc, Codec::Proto, "identity", Http::H2);
    let paced_request = [EchoRequest {
        count: 20,
        delay_ms: 100,
        ..Default::default()
    }];
    let slow_request = [EchoRequest {
        count: 2,
        delay_ms: 1500,
        ..Default::default()
    }];
    let paced = rpc::call(&client, &call, &volley_tests::SERVER_STREAM, &paced_request);
    let slow_handler = rpc::call(&client, &call, &volley_tests::SERVER_STREAM, &slow_request);
    let (paced, slow_handler) = tokio::join!(paced, slow_handler);
    let (paced, slow_handler) = (paced?, slow_handler?);
    ensure!(
        paced.error.is_none() && paced.messages.len() == 20,
        "{paced:?}"
    );
    ensure!(
        slow_handler.error.is_none() && slow_handler.messages.len() == 2,
        "{slow_handler:?}"
    );
    legitimate_call(addr, Duration::from_secs(5)).await?;
    ensure!(counters.dropped.load(SeqCst) == 2);
    Ok(())
}

/// `max_concurrent_streams`: the server advertises 200 in its SETTINGS, refuses a 201st
/// concurrent stream with REFUSED_STREAM, accepts a new one once one has ended, and other
/// clients are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_201st_stream_is_refused() -> anyhow::Result<()> {
    use volley_tests::h2frames::{self, RawH2};
    let (addr, _server) = spawn_server(interop_router()).await?;
    let mut h2 = RawH2::connect(addr, &[]).await?;
    let settings = h2
        .read_until(Duration::from_secs(5), |f| {
            f.kind == h2frames::SETTINGS && f.flags & h2frames::ACK == 0
        })
        .await?
        .context("closed before its SETTINGS")?;
    let advertised = settings
        .settings()
        .into_iter()
        .find(|(id, _)| *id == h2frames::SETTINGS_MAX_CONCURRENT_STREAMS)
        .map(|(_, v)| v);
    ensure!(
        advertised == Some(200),
        "SETTINGS_MAX_CONCURRENT_STREAMS {advertised:?}"
    );
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    // 200 client streams left open (their handlers wait for more messages).
    for i in 0..200u32 {
        h2.post(1 + 2 * i, CLIENT_STREAM_PATH, &grpc, false).await?;
    }
    h2.post(401, CLIENT_STREAM_PATH, &grpc, false).await?;
    let reset = h2
        .read_until(Duration::from_secs(5), |f| f.kind == h2frames::RST_STREAM)
        .await?
        .context("closed instead of refusing the stream")?;
    ensure!(
        reset.stream == 401 && reset.error_code() == Some(h2frames::REFUSED_STREAM),
        "expected REFUSED_STREAM on stream 401, got {reset:?}"
    );
    legitimate_call(addr, Duration::from_secs(5)).await?;
    // One stream ends: a new one is served.
    h2.cancel(1).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    h2.post(403, ECHO_PATH, &grpc, false).await?;
    h2.data(403, &envelope(0, b""), true).await?;
    let answer = h2
        .read_until(Duration::from_secs(5), |f| {
            f.stream == 403 && (f.kind == h2frames::HEADERS || f.kind == h2frames::RST_STREAM)
        })
        .await?
        .context("closed")?;
    ensure!(answer.kind == h2frames::HEADERS, "stream 403: {answer:?}");
    Ok(())
}

/// `max_connections`: at the limit the server closes its longest-idle connection (one that
/// never started a call goes first), accepts no more while every connection has a call in
/// flight, accepts again as soon as one ends, and a legitimate call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_sheds_the_idle_and_waits_for_the_busy() -> anyhow::Result<()> {
    use volley_tests::h2frames::{self, RawH2};
    let (addr, _server) = spawn_server_with(interop_router(), |s| {
        s.max_connections(2)
            .header_read_timeout(Duration::from_secs(30))
    })
    .await?;
    let is_settings =
        |f: &h2frames::Frame| f.kind == h2frames::SETTINGS && f.flags & h2frames::ACK == 0;
    /// A connection with a long server stream in flight; yields messages as they come.
    async fn busy(
        addr: SocketAddr,
    ) -> anyhow::Result<(
        hyper::client::conn::http2::SendRequest<ReqBody>,
        tokio::sync::watch::Receiver<usize>,
        tokio::task::JoinHandle<()>,
    )> {
        let mut send = h2_connection(addr).await?;
        let request = rpc::encode_message(
            Codec::Proto,
            &EchoRequest {
                count: 10_000,
                delay_ms: 20,
                ..Default::default()
            },
        );
        let response = send
            .send_request(grpc_request(
                SERVER_STREAM_PATH,
                raw::full(envelope(0, &request)),
                None,
            ))
            .await?;
        let (tx, rx) = tokio::sync::watch::channel(0usize);
        let reader = tokio::spawn(async move {
            let mut reader = raw::FrameReader::new(response.into_body(), false);
            let mut n = 0;
            while let Ok(Some(_)) = reader.next().await {
                n += 1;
                let _ = tx.send(n);
            }
        });
        Ok((send, rx, reader))
    }

    // An idle connection (preface only) and a busy one fill the server; a third client makes
    // it close the idle one.
    let mut idle = RawH2::connect(addr, &[]).await?;
    idle.read_until(Duration::from_secs(5), is_settings)
        .await?
        .context("not accepted")?;
    let (busy1, progress1, reader1) = busy(addr).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        !idle.closed_within(Duration::from_millis(300)).await,
        "the idle connection was closed with nobody waiting"
    );
    let (busy2, progress2, reader2) = busy(addr).await?;
    ensure!(
        idle.closed_within(Duration::from_secs(3)).await,
        "the idle connection was not shed for a new client"
    );
    // Now every connection has a call in flight: a new one is not served.
    let mut waiting = RawH2::connect(addr, &[]).await?;
    ensure!(
        waiting
            .read_frame(Duration::from_millis(1000))
            .await
            .is_err(),
        "a third connection was served while two were busy"
    );
    // One busy connection ends: the waiting one is accepted.
    let before = *progress2.borrow();
    reader2.abort();
    drop(busy2);
    let start = Instant::now();
    waiting
        .read_until(Duration::from_secs(3), is_settings)
        .await?
        .context("the waiting connection was never accepted")?;
    eprintln!(
        "a waiting connection was accepted {:?} after a busy one ended (it had {before} messages)",
        start.elapsed()
    );
    // A legitimate client gets in (the idle waiting connection is shed for it) and the
    // busy stream went on throughout.
    let at = *progress1.borrow();
    legitimate_call(addr, Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(*progress1.borrow() > at, "the busy stream stalled");
    reader1.abort();
    drop(busy1);
    Ok(())
}
