//! Peer and request information on both ends, over real sockets, every protocol and RPC kind:
//! handlers see the method, URI, HTTP version, peer address, and over TLS the server name
//! (SNI), ALPN protocol and client certificates; clients see the server's address, and over
//! TLS the ALPN protocol and the server's certificates. Also under axum with `ConnectInfo`.

use std::net::SocketAddr;

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use volley::client::HttpVersion;
use volley::server::{Server, TlsConfig};
use volley::{
    CallOptions, Client, ClientConfig, ConnectionInfo, Idempotency, Protocol, Request, Response,
    ResponseStream, Router, Spec, StreamType, Streaming,
};

const UNARY: Spec = Spec::new(
    "/peer.v1.Peer/Unary",
    StreamType::Unary,
    Idempotency::Unknown,
);
const SERVER: Spec = Spec::new(
    "/peer.v1.Peer/Server",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const CLIENT: Spec = Spec::new(
    "/peer.v1.Peer/Client",
    StreamType::ClientStream,
    Idempotency::Unknown,
);
const BIDI: Spec = Spec::new(
    "/peer.v1.Peer/Bidi",
    StreamType::BidiStream,
    Idempotency::Unknown,
);

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

/// What the handler saw, one `key=value` per field.
fn describe<T>(request: &Request<T>) -> String {
    let tls = request.tls();
    let certs = tls.map(|t| t.peer_certificates.clone()).unwrap_or_default();
    format!(
        "method={} path={} version={:?} peer={} sni={} alpn={} client_certs={} first_cert_len={}",
        request.method().map_or("none".into(), |m| m.to_string()),
        request.uri().map_or("none", |u| u.path()),
        request.http_version(),
        request
            .peer_addr()
            .map_or("none".into(), |a| a.ip().to_string()),
        tls.and_then(|t| t.server_name.clone())
            .unwrap_or_else(|| "none".into()),
        tls.and_then(|t| t.alpn_str()).unwrap_or("none"),
        certs.len(),
        certs.first().map_or(0, Vec::len),
    )
}

fn router() -> Router {
    Router::new()
        .unary(UNARY, |req: Request<StringValue>| async move {
            Ok(Response::new(StringValue::from(describe(&req))))
        })
        .server_stream(SERVER, |req: Request<StringValue>| async move {
            let seen = describe(&req);
            let out = futures_util::stream::iter([Ok(StringValue::from(seen))]);
            Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>))
        })
        .client_stream(CLIENT, |req: Request<Streaming<StringValue>>| async move {
            let seen = describe(&req);
            let mut stream = req.into_message();
            while stream.message().await?.is_some() {}
            Ok(Response::new(StringValue::from(seen)))
        })
        .bidi_stream(BIDI, |req: Request<Streaming<StringValue>>| async move {
            let seen = describe(&req);
            let out = req
                .into_message()
                .map(move |m| m.map(|_| StringValue::from(seen.clone())));
            Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>))
        })
}

/// Calls every RPC kind; returns what each handler saw, and the connection each call
/// reported.
async fn call_all<T: volley::Transport + Clone>(
    client: &Client<T>,
) -> Vec<(&'static str, String, Option<ConnectionInfo>)> {
    let mut out = Vec::new();
    let r = client
        .unary::<_, StringValue>(UNARY, StringValue::from("x"), CallOptions::new())
        .await
        .unwrap();
    out.push(("unary", r.message().value.clone(), r.connection().cloned()));

    let mut r = client
        .server_stream::<_, StringValue>(SERVER, StringValue::from("x"), CallOptions::new())
        .await
        .unwrap();
    let connection = r.connection().cloned();
    let seen = r.message_mut().message().await.unwrap().unwrap().value;
    out.push(("server", seen, connection));

    let requests = futures_util::stream::iter([StringValue::from("a"), StringValue::from("b")]);
    let r = client
        .client_stream::<_, StringValue, _>(CLIENT, requests, CallOptions::new())
        .await
        .unwrap();
    out.push(("client", r.message().value.clone(), r.connection().cloned()));

    let mut bidi = client
        .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
        .await
        .unwrap();
    bidi.send(StringValue::from("a")).await.unwrap();
    let seen = bidi.message().await.unwrap().unwrap().value;
    let connection = bidi.connection().await.unwrap();
    bidi.close_send();
    assert!(bidi.message().await.unwrap().is_none());
    out.push(("bidi", seen, connection));
    out
}

fn path(kind: &str) -> &'static str {
    match kind {
        "unary" => UNARY.procedure,
        "server" => SERVER.procedure,
        "client" => CLIENT.procedure,
        _ => BIDI.procedure,
    }
}

#[tokio::test]
async fn plain_tcp_every_protocol_and_version() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::from_listener(listener).serve(router()));
    for protocol in PROTOCOLS {
        for version in [HttpVersion::Http1, HttpVersion::Http2] {
            if protocol == Protocol::Grpc && version == HttpVersion::Http1 {
                continue; // gRPC needs HTTP/2
            }
            let config = ClientConfig::new(format!("http://{addr}"))
                .unwrap()
                .protocol(protocol)
                .http_version(version);
            let client = Client::new(config).unwrap();
            let wire = match version {
                HttpVersion::Http1 => "HTTP/1.1",
                _ => "HTTP/2.0",
            };
            for (kind, seen, connection) in call_all(&client).await {
                let expected = format!(
                    "method=POST path={} version=Some({wire}) peer=127.0.0.1 sni=none \
                     alpn=none client_certs=0 first_cert_len=0",
                    path(kind)
                );
                assert_eq!(seen, expected, "{protocol:?} {version:?} {kind}");
                let connection = connection.expect("the built-in transport reports it");
                assert_eq!(connection.remote_addr, Some(addr), "{protocol:?} {kind}");
                assert!(connection.local_addr.is_some_and(|a| a.ip().is_loopback()));
                assert!(connection.tls.is_none());
            }
        }
    }
}

struct Identity {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn identity(names: &[&str]) -> Identity {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    Identity {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
        der: certified.cert.der().to_vec(),
    }
}

#[tokio::test]
async fn tls_with_client_certificates_every_protocol() {
    let server_id = identity(&["localhost", "127.0.0.1"]);
    let client_id = identity(&["client.test"]);
    let tls = TlsConfig::from_pem_with_client_auth(
        server_id.cert_pem.as_bytes(),
        server_id.key_pem.as_bytes(),
        client_id.cert_pem.as_bytes(),
        true,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::from_listener(listener).tls(tls).serve(router()));

    // By name (SNI sent) and by address (no SNI), HTTP/2 and HTTP/1.1 by ALPN.
    let by_name = format!("https://localhost:{}", addr.port());
    let by_addr = format!("https://{addr}");
    for (base, sni) in [(&by_name, "localhost"), (&by_addr, "none")] {
        for protocol in PROTOCOLS {
            for (version, alpn, wire) in [
                (HttpVersion::Auto, "h2", "HTTP/2.0"),
                (HttpVersion::Http1, "http/1.1", "HTTP/1.1"),
            ] {
                if protocol == Protocol::Grpc && version == HttpVersion::Http1 {
                    continue;
                }
                let config = ClientConfig::new(base)
                    .unwrap()
                    .protocol(protocol)
                    .http_version(version)
                    .tls_from_pem(
                        Some(server_id.cert_pem.as_bytes()),
                        Some((client_id.cert_pem.as_bytes(), client_id.key_pem.as_bytes())),
                    )
                    .unwrap();
                let client = Client::new(config).unwrap();
                for (kind, seen, connection) in call_all(&client).await {
                    let expected = format!(
                        "method=POST path={} version=Some({wire}) peer=127.0.0.1 sni={sni} \
                         alpn={alpn} client_certs=1 first_cert_len={}",
                        path(kind),
                        client_id.der.len()
                    );
                    assert_eq!(seen, expected, "{base} {protocol:?} {version:?} {kind}");
                    let connection = connection.expect("reported");
                    assert_eq!(connection.remote_addr.map(|a| a.port()), Some(addr.port()));
                    let tls = connection.tls.expect("a TLS connection");
                    assert_eq!(tls.alpn_str(), Some(alpn), "{protocol:?} {kind}");
                    let sent = (sni != "none").then(|| sni.to_string());
                    assert_eq!(tls.server_name, sent);
                    assert_eq!(tls.peer_certificates, vec![server_id.der.clone()]);
                }
            }
        }
    }
}

#[tokio::test]
async fn axum_with_connect_info() {
    let app = axum::Router::new().fallback_service(router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    for protocol in PROTOCOLS {
        let config = ClientConfig::new(format!("http://{addr}"))
            .unwrap()
            .protocol(protocol)
            .http_version(HttpVersion::Http2);
        let client = Client::new(config).unwrap();
        for (kind, seen, connection) in call_all(&client).await {
            let expected = format!(
                "method=POST path={} version=Some(HTTP/2.0) peer=127.0.0.1 sni=none alpn=none \
                 client_certs=0 first_cert_len=0",
                path(kind)
            );
            assert_eq!(seen, expected, "axum {protocol:?} {kind}");
            assert_eq!(connection.unwrap().remote_addr, Some(addr));
        }
    }
}
