//! HTTP/3 over real UDP loopback sockets: Volley's client and server over QUIC (Connect,
//! gRPC-Web, gRPC; unary and every kind of stream), the TCP side advertising it with
//! `Alt-Svc` on the same port number, the "preferred" client falling back to TCP, bad input
//! (an oversized message, broken envelopes sent with a raw h3 client, garbage datagrams)
//! answered with the right error while the server keeps serving, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use bytes::{Buf, Bytes};
use futures_util::StreamExt as _;
use volley::client::HttpVersion;
use volley::server::{Server, TlsConfig};
use volley::{
    CallOptions, Client, ClientConfig, Code, Idempotency, Protocol, Request, Response,
    ResponseStream, Router, Spec, StreamType, Streaming,
};

const UNARY: Spec = Spec::new("/h3.v1.H3/Unary", StreamType::Unary, Idempotency::Unknown);
const SERVER: Spec = Spec::new(
    "/h3.v1.H3/Server",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const CLIENT: Spec = Spec::new(
    "/h3.v1.H3/Client",
    StreamType::ClientStream,
    Idempotency::Unknown,
);
const BIDI: Spec = Spec::new(
    "/h3.v1.H3/Bidi",
    StreamType::BidiStream,
    Idempotency::Unknown,
);

/// What the handler saw of the request: HTTP version and ALPN.
fn seen<T>(request: &Request<T>) -> String {
    format!(
        "{:?} {}",
        request
            .http_version()
            .expect("the built-in server records it"),
        request.tls().and_then(|t| t.alpn_str()).unwrap_or("none")
    )
}

fn router() -> Router {
    Router::new()
        .receive_limit(64 * 1024)
        .unary(UNARY, |req: Request<StringValue>| async move {
            let reply = format!("{} {}", seen(&req), req.message().value);
            Ok(Response::new(StringValue::from(reply)))
        })
        .server_stream(SERVER, |req: Request<StringValue>| async move {
            let n: usize = req.message().value.parse().unwrap_or(3);
            let prefix = seen(&req);
            let out = futures_util::stream::iter(
                (0..n).map(move |i| Ok(StringValue::from(format!("{prefix} #{i}")))),
            )
            .then(|m| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                m
            });
            Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>))
        })
        .client_stream(CLIENT, |req: Request<Streaming<StringValue>>| async move {
            let mut stream = req.into_message();
            let mut all = Vec::new();
            while let Some(m) = stream.message().await? {
                all.push(m.value);
            }
            Ok(Response::new(StringValue::from(all.join(","))))
        })
        .bidi_stream(BIDI, |req: Request<Streaming<StringValue>>| async move {
            let out = req
                .into_message()
                .map(|m| m.map(|m| StringValue::from(format!("echo {}", m.value))));
            Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>))
        })
}

struct Identity {
    cert_pem: String,
    key_pem: String,
}

fn identity() -> Identity {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    Identity {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    }
}

/// A server on TCP and UDP at one port, with TLS; returns its address.
async fn start(id: &Identity, configure: impl FnOnce(Server) -> Server) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = TlsConfig::from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    let server = configure(Server::from_listener(listener).tls(tls).http3(true));
    tokio::spawn(async move { server.serve(router()).await.unwrap() });
    addr
}

fn client(
    id: &Identity,
    addr: SocketAddr,
    protocol: Protocol,
    version: HttpVersion,
) -> Client<volley::client::HttpTransport> {
    let config = ClientConfig::new(format!("https://{addr}"))
        .unwrap()
        .protocol(protocol)
        .http_version(version)
        .tls_from_pem(Some(id.cert_pem.as_bytes()), None)
        .unwrap();
    Client::new(config).unwrap()
}

#[tokio::test]
async fn every_protocol_and_stream_type_over_http3() {
    let id = identity();
    let addr = start(&id, |s| s).await;
    for protocol in [Protocol::Connect, Protocol::GrpcWeb, Protocol::Grpc] {
        let client = client(&id, addr, protocol, HttpVersion::Http3);
        let r = client
            .unary::<_, StringValue>(UNARY, StringValue::from("hi"), CallOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{protocol:?} unary: {e}"));
        assert_eq!(r.message().value, "HTTP/3.0 h3 hi", "{protocol:?}");
        let connection = r
            .connection()
            .expect("the transport reports its connection");
        assert_eq!(connection.remote_addr, Some(addr));
        let tls = connection.tls.as_ref().expect("QUIC is TLS");
        assert_eq!(tls.alpn_str(), Some("h3"));
        assert!(!tls.peer_certificates.is_empty());

        let mut r = client
            .server_stream::<_, StringValue>(SERVER, StringValue::from("4"), CallOptions::new())
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(m) = r.message_mut().message().await.unwrap() {
            got.push(m.value);
        }
        assert_eq!(
            got,
            (0..4)
                .map(|i| format!("HTTP/3.0 h3 #{i}"))
                .collect::<Vec<_>>(),
            "{protocol:?}"
        );

        let requests = futures_util::stream::iter(["a", "b", "c"].map(StringValue::from));
        let r = client
            .client_stream::<_, StringValue, _>(CLIENT, requests, CallOptions::new())
            .await
            .unwrap();
        assert_eq!(r.message().value, "a,b,c", "{protocol:?}");

        // Full duplex: each reply arrives before the next message is sent.
        let mut bidi = client
            .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
            .await
            .unwrap();
        for word in ["x", "y"] {
            bidi.send(StringValue::from(word)).await.unwrap();
            let reply = bidi.message().await.unwrap().unwrap();
            assert_eq!(reply.value, format!("echo {word}"), "{protocol:?}");
        }
        bidi.close_send();
        assert!(bidi.message().await.unwrap().is_none());
    }
}

#[tokio::test]
async fn many_concurrent_calls_share_one_connection() {
    let id = identity();
    let addr = start(&id, |s| s.max_concurrent_streams(8)).await;
    let client = client(&id, addr, Protocol::Connect, HttpVersion::Http3);
    let calls = (0..40).map(|i| {
        let client = client.clone();
        async move {
            client
                .unary::<_, StringValue>(
                    UNARY,
                    StringValue::from(i.to_string()),
                    CallOptions::new(),
                )
                .await
                .map(|r| {
                    (
                        r.message().value.clone(),
                        r.connection().and_then(|c| c.local_addr),
                    )
                })
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut locals = std::collections::HashSet::new();
    for (i, r) in results.into_iter().enumerate() {
        let (value, local) = r.unwrap();
        assert_eq!(value, format!("HTTP/3.0 h3 {i}"));
        locals.insert(local);
    }
    assert_eq!(locals.len(), 1, "one pooled QUIC connection: {locals:?}");
}

#[tokio::test]
async fn tcp_responses_advertise_http3_on_the_same_port() {
    let id = identity();
    let addr = start(&id, |s| s.advertise_http3(true)).await;
    let tcp = client(&id, addr, Protocol::Connect, HttpVersion::Auto);
    let r = tcp
        .unary::<_, StringValue>(UNARY, StringValue::from("tcp"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(r.message().value, "HTTP/2.0 h2 tcp");
    let alt_svc = r
        .headers()
        .get("alt-svc")
        .expect("Alt-Svc on TCP responses");
    assert_eq!(
        alt_svc.to_str().unwrap(),
        format!("h3=\":{}\"; ma=86400", addr.port())
    );
    // And HTTP/3 responses do not carry it.
    let quic = client(&id, addr, Protocol::Connect, HttpVersion::Http3);
    let r = quic
        .unary::<_, StringValue>(UNARY, StringValue::from("udp"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(r.message().value, "HTTP/3.0 h3 udp");
    assert!(r.headers().get("alt-svc").is_none());
}

#[tokio::test]
async fn preferred_falls_back_to_tcp_without_quic_and_uses_quic_when_there() {
    let id = identity();
    // A TLS server with no HTTP/3: the preferred client ends up on TCP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_only = listener.local_addr().unwrap();
    let tls = TlsConfig::from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    tokio::spawn(Server::from_listener(listener).tls(tls).serve(router()));
    let config = ClientConfig::new(format!("https://{tcp_only}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .http_version(HttpVersion::Http3Preferred)
        .tls_from_pem(Some(id.cert_pem.as_bytes()), None)
        .unwrap();
    let preferred = Client::new(config).unwrap();
    for _ in 0..2 {
        let r = preferred
            .unary::<_, StringValue>(UNARY, StringValue::from("fb"), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(r.message().value, "HTTP/2.0 h2 fb");
    }
    // With HTTP/3 served, the same mode speaks it.
    let both = start(&id, |s| s).await;
    let preferred = client(&id, both, Protocol::Connect, HttpVersion::Http3Preferred);
    let r = preferred
        .unary::<_, StringValue>(UNARY, StringValue::from("q"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(r.message().value, "HTTP/3.0 h3 q");
    // HTTP/3 only fails `unavailable` against a server without it.
    let config = ClientConfig::new(format!("https://{tcp_only}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .http_version(HttpVersion::Http3)
        .tls_from_pem(Some(id.cert_pem.as_bytes()), None)
        .unwrap();
    let only = Client::new(config).unwrap();
    let e = only
        .unary::<_, StringValue>(UNARY, StringValue::from("x"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
}

/// A raw HTTP/3 connection to the server, for requests Volley's client would never send.
struct Raw {
    _endpoint: quinn::Endpoint,
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    /// Resolves with whether the close was H3_NO_ERROR, when the connection closes.
    closed: tokio::sync::oneshot::Receiver<bool>,
}

async fn raw(id: &Identity, addr: SocketAddr) -> Raw {
    let mut roots = rustls::RootCertStore::empty();
    for cert in volley::tls::certs_from_pem(id.cert_pem.as_bytes()).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    let (tx, closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let e = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        let _ = tx.send(e.is_h3_no_error());
    });
    Raw {
        _endpoint: endpoint,
        send,
        closed,
    }
}

/// Sends one request with `body` and reads the whole response: status, headers, body and
/// trailers.
async fn raw_call(
    raw: &mut Raw,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (http::StatusCode, http::HeaderMap, Vec<u8>, http::HeaderMap) {
    let request = http::Request::post(format!("https://localhost{path}"))
        .header("content-type", content_type)
        .body(())
        .unwrap();
    let mut stream = raw.send.send_request(request).await.unwrap();
    stream.send_data(Bytes::from(body)).await.unwrap();
    stream.finish().await.unwrap();
    let response = stream.recv_response().await.unwrap();
    let mut got = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        while chunk.has_remaining() {
            let part = chunk.chunk().to_vec();
            chunk.advance(part.len());
            got.extend(part);
        }
    }
    let trailers = stream.recv_trailers().await.unwrap().unwrap_or_default();
    (response.status(), response.headers().clone(), got, trailers)
}

fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend(payload);
    out
}

#[tokio::test]
async fn bad_input_gets_the_right_error_and_the_server_keeps_serving() {
    let id = identity();
    let addr = start(&id, |s| s).await;
    let good = client(&id, addr, Protocol::Connect, HttpVersion::Http3);

    // An oversized message (the router's limit is 64 KiB), in Connect and gRPC-Web.
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        let client = client(&id, addr, protocol, HttpVersion::Http3);
        let big = StringValue::from("z".repeat(200 * 1024));
        let e = client
            .unary::<_, StringValue>(UNARY, big, CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "{protocol:?}: {e}");
    }

    let mut raw = raw(&id, addr).await;
    // Connect unary with a body that is not protobuf: invalid_argument, as JSON.
    let (status, headers, body, _) = raw_call(
        &mut raw,
        UNARY.procedure,
        "application/proto",
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(headers["content-type"], "application/json");
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "invalid_argument", "{error}");

    // A Connect stream whose envelope declares more bytes than are sent: the end-of-stream
    // message carries the error.
    let mut truncated = envelope(0, b"\x0a\x01a");
    truncated[4] = 100;
    let (status, _, body, _) = raw_call(
        &mut raw,
        SERVER.procedure,
        "application/connect+proto",
        truncated,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.len() > 5, "an end-of-stream message: {body:?}");
    assert_eq!(
        body[0] & 0b10,
        0b10,
        "only the end-of-stream message is sent"
    );
    let text = String::from_utf8_lossy(&body[5..]);
    assert!(text.contains("invalid_argument"), "{text}");

    // gRPC-Web with a compressed flag but no compression agreed: internal (13), answered
    // trailers-only (the status in the headers, no body).
    let (status, headers, body, _) = raw_call(
        &mut raw,
        UNARY.procedure,
        "application/grpc-web+proto",
        envelope(1, b"\x0a\x01a"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "13", "{headers:?}");
    assert!(body.is_empty(), "{body:?}");
    // A gRPC-Web body cut inside an envelope prefix.
    let (status, headers, body, _) = raw_call(
        &mut raw,
        UNARY.procedure,
        "application/grpc-web+proto",
        vec![0, 0, 0],
    )
    .await;
    assert_eq!(status, 200);
    let grpc_status = match headers.get("grpc-status") {
        Some(v) => v.to_str().unwrap().to_string(),
        None => {
            let text = String::from_utf8_lossy(&body).to_string();
            let at = text
                .find("grpc-status:")
                .expect("a status in the trailers frame");
            text[at + 12..]
                .split("\r\n")
                .next()
                .unwrap()
                .trim()
                .to_string()
        }
    };
    assert!(
        grpc_status != "0" && !grpc_status.is_empty(),
        "{grpc_status}"
    );

    // Garbage datagrams at the QUIC port.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for n in [1usize, 20, 1200, 1500] {
        udp.send_to(&vec![0xc3; n], addr).await.unwrap();
    }

    // A well-formed call on the same raw connection and a new client still work.
    let mut request = Vec::new();
    buffa::Message::encode(&StringValue::from("ok"), &mut request);
    let (status, _, body, _) =
        raw_call(&mut raw, UNARY.procedure, "application/proto", request).await;
    assert_eq!(status, 200);
    let reply: StringValue = buffa::Message::decode(&mut &body[..]).unwrap();
    assert_eq!(reply.value, "HTTP/3.0 h3 ok");
    let r = good
        .unary::<_, StringValue>(UNARY, StringValue::from("still"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(r.message().value, "HTTP/3.0 h3 still");
}

#[tokio::test]
async fn graceful_shutdown_finishes_calls_in_flight() {
    let id = identity();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = TlsConfig::from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::from_listener(listener)
            .tls(tls)
            .http3(true)
            .grace_period(Duration::from_secs(5))
            .serve_with_shutdown(router(), async {
                let _ = stop_rx.await;
            }),
    );
    let client = client(&id, addr, Protocol::Connect, HttpVersion::Http3);
    // 40 messages, 5 ms apart: still streaming when the server is told to stop.
    let mut r = client
        .server_stream::<_, StringValue>(SERVER, StringValue::from("40"), CallOptions::new())
        .await
        .unwrap();
    let first = r.message_mut().message().await.unwrap().unwrap();
    assert_eq!(first.value, "HTTP/3.0 h3 #0");
    stop_tx.send(()).unwrap();
    let mut n = 1;
    while let Some(_m) = r.message_mut().message().await.unwrap() {
        n += 1;
    }
    assert_eq!(n, 40, "the call in flight finished");
    let served = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once its calls are done");
    served.unwrap().unwrap();
}

#[tokio::test]
async fn idle_connections_are_closed_and_the_client_reconnects() {
    let id = identity();
    let addr = start(&id, |s| {
        // The first idle check comes after the header read timeout.
        s.idle_timeout(Duration::from_millis(300))
            .header_read_timeout(Duration::from_secs(1))
    })
    .await;
    let mut raw = raw(&id, addr).await;
    let mut request = Vec::new();
    buffa::Message::encode(&StringValue::from("once"), &mut request);
    let (status, _, _, _) = raw_call(&mut raw, UNARY.procedure, "application/proto", request).await;
    assert_eq!(status, 200);
    // No call in flight for the idle timeout: the server closes the connection gracefully.
    let clean = tokio::time::timeout(Duration::from_secs(5), &mut raw.closed)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(clean, "closed with H3_NO_ERROR");

    // Volley's client notices its pooled connection went away and opens another.
    let client = client(&id, addr, Protocol::Connect, HttpVersion::Http3);
    for word in ["before", "after"] {
        let r = client
            .unary::<_, StringValue>(UNARY, StringValue::from(word), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(r.message().value, format!("HTTP/3.0 h3 {word}"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

#[tokio::test]
async fn dropping_a_stream_mid_read_cancels_it_and_the_connection_goes_on() {
    let id = identity();
    let addr = start(&id, |s| s).await;
    let client = client(&id, addr, Protocol::Connect, HttpVersion::Http3);
    for _ in 0..5 {
        let mut r = client
            .server_stream::<_, StringValue>(SERVER, StringValue::from("40"), CallOptions::new())
            .await
            .unwrap();
        let first = r.message_mut().message().await.unwrap().unwrap();
        assert_eq!(first.value, "HTTP/3.0 h3 #0");
        // Poll for the next message without one being there yet, then drop the call with
        // that read in flight.
        let next = tokio::time::timeout(Duration::from_millis(1), r.message_mut().message()).await;
        drop(next);
        drop(r);
        let mut bidi = client
            .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
            .await
            .unwrap();
        bidi.send(StringValue::from("b")).await.unwrap();
        assert_eq!(bidi.message().await.unwrap().unwrap().value, "echo b");
        drop(bidi);
    }
    let r = client
        .unary::<_, StringValue>(UNARY, StringValue::from("end"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(r.message().value, "HTTP/3.0 h3 end");
}
