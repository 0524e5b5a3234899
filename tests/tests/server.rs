//! The server around the protocols: full-duplex bidi over HTTP/2, limits, panics, CORS, TLS
//! with ALPN, graceful shutdown, the peer address, and mounting in axum.

use std::time::Duration;

use buffa::Message as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::timeout;
use volley::{Cors, Error, Idempotency, Request, Response, ResponseStream, Spec, StreamType};
use volley_tests::raw::{
    self, FLAG_END_STREAM, FLAG_TRAILERS, FrameReader, Http, RawClient, channel_body, envelope,
    parse_trailer_block,
};
use volley_tests::rpc::{self, Call, Codec, Protocol};
use volley_tests::{
    BIDI, ECHO, EchoRequest, EchoResponse, SERVER_STREAM, interop_router, spawn_server,
    spawn_server_with, spawn_tls_server,
};

const ECHO_PATH: &str = "/volley.interop.v1.InteropService/Echo";
const STEP: Duration = Duration::from_secs(5);

fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn bidi_is_full_duplex_over_http2() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router()).await?;
    let client = RawClient::new(addr);
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let (headers, _) = rpc::build_request(
            &Call::new(protocol, Codec::Proto, "identity", Http::H2),
            &BIDI,
            &[],
        )?;
        let (tx, body) = channel_body();
        let mut builder = client.request(Http::H2, Method::POST, BIDI.procedure);
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        // The response starts before the request body has anything in it.
        let response = timeout(STEP, client.send(Http::H2, builder.body(body)?)).await??;
        assert_eq!(response.status(), StatusCode::OK);
        let mut frames = FrameReader::new(response.into_body(), false);
        for i in 0..3 {
            // Each response arrives while the request stream is still open.
            tx.send(Bytes::from(envelope(
                0,
                &echo(&format!("m{i}")).encode_to_vec(),
            )))
            .await?;
            let frame = timeout(STEP, frames.next())
                .await??
                .ok_or_else(|| anyhow::anyhow!("{protocol:?}: body ended early"))?;
            assert_eq!(frame.flags, 0, "{protocol:?}");
            let res = EchoResponse::decode_from_slice(&frame.data)?;
            assert_eq!(
                (res.text.as_str(), res.index, res.received),
                (&*format!("m{i}"), i, i + 1)
            );
        }
        drop(tx);
        let end = timeout(STEP, frames.next()).await??;
        match protocol {
            Protocol::Connect => {
                let end = end.ok_or_else(|| anyhow::anyhow!("no end-of-stream"))?;
                assert_eq!(end.flags, FLAG_END_STREAM);
                assert_eq!(
                    serde_json::from_slice::<serde_json::Value>(&end.data)?,
                    serde_json::json!({})
                );
            }
            Protocol::Grpc => {
                assert!(end.is_none());
                let status = frames.trailers.as_ref().and_then(|t| t.get("grpc-status"));
                assert_eq!(status.map(|v| v.as_bytes()), Some(&b"0"[..]));
            }
            _ => {
                let end = end.ok_or_else(|| anyhow::anyhow!("no trailer frame"))?;
                assert_eq!(end.flags, FLAG_TRAILERS);
                assert_eq!(parse_trailer_block(&end.data)?["grpc-status"], "0");
            }
        }
        assert!(timeout(STEP, frames.next()).await??.is_none());
    }
    Ok(())
}

#[tokio::test]
async fn receive_limit() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router().receive_limit(1024)).await?;
    let client = RawClient::new(addr);
    let big = EchoRequest {
        payload: vec![7; 2000],
        ..Default::default()
    };
    let small = EchoRequest {
        payload: vec![7; 500],
        ..Default::default()
    };
    for protocol in Protocol::ALL {
        let http = if protocol == Protocol::Grpc {
            Http::H2
        } else {
            Http::H1
        };
        for spec in [ECHO, SERVER_STREAM] {
            for encoding in ["identity", "gzip"] {
                // Compressed, the request is small on the wire; the limit applies after
                // decompression.
                let call = Call::new(protocol, Codec::Proto, encoding, http);
                let out = rpc::call(&client, &call, &spec, std::slice::from_ref(&big)).await?;
                let err = out.err()?;
                assert_eq!(
                    err.code,
                    "resource_exhausted",
                    "{protocol:?} {} {encoding}",
                    spec.method()
                );
                let out = rpc::call(&client, &call, &spec, std::slice::from_ref(&small)).await?;
                assert!(
                    out.error.is_none(),
                    "{protocol:?} {encoding}: {:?}",
                    out.error
                );
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn send_limit() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router().send_limit(1024)).await?;
    let client = RawClient::new(addr);
    for protocol in Protocol::ALL {
        let http = if protocol == Protocol::Grpc {
            Http::H2
        } else {
            Http::H1
        };
        let call = Call::new(protocol, Codec::Proto, "identity", http);
        let out = rpc::call(
            &client,
            &call,
            &ECHO,
            &[EchoRequest {
                response_size: 2000,
                ..Default::default()
            }],
        )
        .await?;
        assert_eq!(out.err()?.code, "resource_exhausted", "{protocol:?}");
        if protocol == Protocol::Connect {
            assert_eq!(out.http_status, StatusCode::TOO_MANY_REQUESTS);
        }
        // A stream fails at the first message too large, after the ones that fit.
        let out = rpc::call(
            &client,
            &call,
            &BIDI,
            &[echo("fits"), echo(&"x".repeat(2000)), echo("never")],
        )
        .await?;
        assert_eq!(out.err()?.code, "resource_exhausted", "{protocol:?}");
        assert_eq!(out.messages.len(), 1);
        let out = rpc::call(&client, &call, &ECHO, &[echo("fine")]).await?;
        assert_eq!(out.single()?.text, "fine");
    }
    Ok(())
}

const PANIC_UNARY: Spec = Spec::new(
    "/test.Panics/Unary",
    StreamType::Unary,
    Idempotency::Unknown,
);
const PANIC_STREAM: Spec = Spec::new(
    "/test.Panics/Stream",
    StreamType::ServerStream,
    Idempotency::Unknown,
);

async fn panic_unary(request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Error> {
    if request.message().text == "panic" {
        panic!("the handler panicked on purpose");
    }
    Ok(Response::new(EchoResponse::default()))
}

async fn panic_stream(
    _request: Request<EchoRequest>,
) -> Result<Response<ResponseStream<EchoResponse>>, Error> {
    let items = futures_util::stream::iter(0..3).map(|i| {
        if i == 1 {
            panic!("the stream panicked on purpose");
        }
        Ok(EchoResponse {
            index: i,
            ..Default::default()
        })
    });
    let stream: ResponseStream<EchoResponse> = Box::pin(items);
    Ok(Response::new(stream))
}

use futures_util::StreamExt as _;

#[tokio::test]
async fn handler_panics_become_internal() -> anyhow::Result<()> {
    let router = interop_router()
        .unary(PANIC_UNARY, panic_unary)
        .server_stream(PANIC_STREAM, panic_stream);
    let (addr, _server) = spawn_server(router).await?;
    let client = RawClient::new(addr);
    for protocol in Protocol::ALL {
        for http in Http::ALL {
            if !protocol.works_over(http) {
                continue;
            }
            let call = Call::new(protocol, Codec::Proto, "identity", http);
            let out = rpc::call(&client, &call, &PANIC_UNARY, &[echo("panic")]).await?;
            assert_eq!(out.err()?.code, "internal", "{protocol:?} {http:?}");
            if protocol == Protocol::Connect {
                assert_eq!(out.http_status, StatusCode::INTERNAL_SERVER_ERROR);
            }
            let out = rpc::call(&client, &call, &PANIC_STREAM, &[echo("x")]).await?;
            assert_eq!(out.err()?.code, "internal", "{protocol:?} {http:?}");
            assert_eq!(
                out.messages.len(),
                1,
                "the message before the panic arrives"
            );
            // Same connection pool, same server: still serving.
            let out = rpc::call(&client, &call, &ECHO, &[echo("alive")]).await?;
            assert_eq!(out.single()?.text, "alive");
        }
    }
    Ok(())
}

#[tokio::test]
async fn cors() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router().cors(Cors::allow_any_origin())).await?;
    let client = RawClient::new(addr);
    let origin = "https://app.example";
    let preflight = client
        .request(Http::H1, Method::OPTIONS, ECHO_PATH)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,connect-protocol-version,x-grpc-web",
        )
        .body(raw::full(Bytes::new()))?;
    let reply = client.call(Http::H1, preflight).await?;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("access-control-allow-origin"), Some(origin));
    let methods = reply
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("content-type,connect-protocol-version,x-grpc-web")
    );
    assert!(reply.header("access-control-max-age").is_some());

    // The actual request: the origin allowed, the protocol headers readable.
    let out = rpc::call(
        &client,
        &Call::new(Protocol::GrpcWeb, Codec::Proto, "identity", Http::H1).header("origin", origin),
        &ECHO,
        &[echo("cors")],
    )
    .await?;
    assert_eq!(out.header("access-control-allow-origin"), Some(origin));
    let exposed = out
        .header("access-control-expose-headers")
        .unwrap_or_default();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(name), "{exposed}");
    }

    // Only listed origins.
    let (addr, _server) =
        spawn_server(interop_router().cors(Cors::allow_origins(["https://good.example"]))).await?;
    let client = RawClient::new(addr);
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[
                ("content-type", "application/json"),
                ("origin", "https://evil.example"),
            ],
            "{}",
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), None);

    // Without CORS, a preflight is just a wrong method.
    let (addr, _server) = spawn_server(interop_router()).await?;
    let client = RawClient::new(addr);
    let reply = client
        .call(
            Http::H1,
            client
                .request(Http::H1, Method::OPTIONS, ECHO_PATH)
                .header("origin", origin)
                .body(raw::full(Bytes::new()))?,
        )
        .await?;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    Ok(())
}

const PEER: Spec = Spec::new("/test.Peer/Addr", StreamType::Unary, Idempotency::Unknown);

async fn peer(request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Error> {
    let text = request
        .peer_addr()
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    Ok(Response::new(EchoResponse {
        text,
        ..Default::default()
    }))
}

#[tokio::test]
async fn handlers_see_the_peer_address() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router().unary(PEER, peer)).await?;
    let client = RawClient::new(addr);
    for http in Http::ALL {
        let reply = client
            .post(
                http,
                PEER.procedure,
                &[("content-type", "application/proto")],
                Vec::new(),
            )
            .await?;
        let text = EchoResponse::decode_from_slice(&reply.body)?.text;
        let local = reply
            .local_addr
            .ok_or_else(|| anyhow::anyhow!("no local address"))?;
        assert_eq!(text, local.to_string(), "{http:?}");
    }
    Ok(())
}

#[tokio::test]
async fn mounts_in_axum() -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .fallback_service(interop_router());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = RawClient::new(addr);
    let reply = client.get(Http::H1, "/health", &[]).await?;
    assert_eq!(&reply.body[..], b"ok");
    for (protocol, http) in [
        (Protocol::Connect, Http::H1),
        (Protocol::Grpc, Http::H2),
        (Protocol::GrpcWebText, Http::H1),
    ] {
        let out = rpc::call(
            &client,
            &Call::new(protocol, Codec::Json, "gzip", http).header("x-test-echo", "axum"),
            &ECHO,
            &[EchoRequest {
                text: "through axum".into(),
                response_size: 2000,
                ..Default::default()
            }],
        )
        .await?;
        assert_eq!(out.single()?.text, "through axum", "{protocol:?}");
        assert_eq!(out.compressed, 1);
        assert_eq!(out.trailer("x-test-echo-trailer"), Some("axum"));
        let out = rpc::call(
            &client,
            &Call::new(protocol, Codec::Proto, "identity", http),
            &SERVER_STREAM,
            &[EchoRequest {
                count: 2,
                ..Default::default()
            }],
        )
        .await?;
        assert_eq!(out.messages.len(), 2);
    }
    server.abort();
    Ok(())
}

async fn tls_request(
    server: &volley_tests::TlsServer,
    alpn: &[&[u8]],
) -> anyhow::Result<(Option<Vec<u8>>, http::Response<hyper::body::Incoming>)> {
    let config = server.client_config(alpn)?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let tls = connector.connect(name, tcp).await?;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let body = EchoRequest {
        text: "secure".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let io = TokioIo::new(tls);
    let response = if negotiated.as_deref() == Some(b"h2") {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(format!(
                "https://localhost:{}{ECHO_PATH}",
                server.addr.port()
            ))
            .version(http::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(Bytes::from(envelope(0, &body))))?;
        sender.send_request(request).await?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(ECHO_PATH)
            .header("host", "localhost")
            .header("content-type", "application/proto")
            .body(http_body_util::Full::new(Bytes::from(body)))?;
        sender.send_request(request).await?
    };
    Ok((negotiated, response))
}

#[tokio::test]
async fn tls_with_alpn() -> anyhow::Result<()> {
    let server = spawn_tls_server(interop_router()).await?;
    // h2 by ALPN: gRPC works.
    let (alpn, response) = tls_request(&server, &[b"h2", b"http/1.1"]).await?;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(response.version(), http::Version::HTTP_2);
    let reply = raw::read_reply(response).await?;
    assert_eq!(reply.trailer("grpc-status"), Some("0"));
    let envs = raw::parse_envelopes(&reply.body)?;
    assert_eq!(
        EchoResponse::decode_from_slice(&envs[0].data)?.text,
        "secure"
    );
    // http/1.1 by ALPN: Connect works.
    let (alpn, response) = tls_request(&server, &[b"http/1.1"]).await?;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(response.version(), http::Version::HTTP_11);
    let reply = raw::read_reply(response).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(EchoResponse::decode_from_slice(&reply.body)?.text, "secure");
    // No ALPN at all: HTTP/1.1.
    let (alpn, response) = tls_request(&server, &[]).await?;
    assert_eq!(alpn, None);
    assert_eq!(raw::read_reply(response).await?.status, StatusCode::OK);
    // A client that does not trust the certificate fails the handshake.
    let untrusting = {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let result = tokio_rustls::TlsConnector::from(std::sync::Arc::new(untrusting))
        .connect(rustls_pki_types::ServerName::try_from("localhost")?, tcp)
        .await;
    assert!(result.is_err());
    server.handle.shutdown().await
}

#[tokio::test]
async fn graceful_shutdown() -> anyhow::Result<()> {
    let (addr, mut handle) = spawn_server_with(interop_router(), |s| {
        s.grace_period(Duration::from_secs(10))
    })
    .await?;
    let client = RawClient::new(addr);
    // Two calls in flight: a slow unary over HTTP/1.1 and a slow stream over HTTP/2.
    let unary = {
        let client = client.clone();
        tokio::spawn(async move {
            rpc::call(
                &client,
                &Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H1),
                &ECHO,
                &[EchoRequest {
                    text: "slow".into(),
                    delay_ms: 600,
                    ..Default::default()
                }],
            )
            .await
        })
    };
    let stream = {
        let client = client.clone();
        tokio::spawn(async move {
            rpc::call(
                &client,
                &Call::new(Protocol::Grpc, Codec::Proto, "identity", Http::H2),
                &SERVER_STREAM,
                &[EchoRequest {
                    count: 4,
                    delay_ms: 150,
                    ..Default::default()
                }],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = tokio::time::Instant::now();
    handle.begin_shutdown();
    // New connections are refused once the listener closes.
    let refused = async {
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    timeout(Duration::from_secs(2), refused).await?;
    // The in-flight calls finish normally.
    let out = timeout(STEP, unary).await???;
    assert_eq!(out.single()?.text, "slow");
    let out = timeout(STEP, stream).await???;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.messages.len(), 4);
    // And the server stops once they are done, well within the grace period.
    timeout(Duration::from_secs(5), handle.shutdown()).await??;
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}
