//! Our client against a deliberately broken server (raw hyper, real sockets): each malformed
//! response must surface as the code the specs (and the conformance suite) assign.

use std::convert::Infallible;

use buffa_types::google::protobuf::StringValue;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use volley::client::HttpVersion;
use volley::{CallOptions, Client, ClientConfig, Code, Idempotency, Protocol, Spec, StreamType};

fn frame(flags: u8, data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(flags);
    out.put_u32(data.len() as u32);
    out.put_slice(data);
    out.to_vec()
}

fn hi() -> Vec<u8> {
    buffa::Message::encode_to_vec(&StringValue {
        value: "hi".into(),
        ..Default::default()
    })
}

/// What the broken server answers, by method name: (status, content-type, body).
fn answer(method: &str) -> (u16, &'static str, Vec<u8>) {
    match method {
        "ConnectJpeg" => (200, "image/jpeg", b"\xff\xd8".to_vec()),
        "ConnectWrongCodec" => (200, "application/json", b"{}".to_vec()),
        "ConnectNotFound" => (404, "text/plain", b"nope".to_vec()),
        "ConnectStreamCut" => (200, "application/connect+proto", frame(0, &hi())),
        "ConnectTwoEnds" => {
            let mut body = frame(2, b"{}");
            body.extend(frame(2, b"{}"));
            (200, "application/connect+proto", body)
        }
        "GrpcNoTrailers" => (200, "application/grpc", frame(0, &hi())),
        "GrpcHtml" => (200, "text/html", b"<html>".to_vec()),
        "GrpcWrongCodec" => (200, "application/grpc+json", frame(0, b"{}")),
        "GrpcTruncated" => {
            let mut body = frame(0, &[0u8; 100]);
            body.truncate(15);
            (200, "application/grpc", body)
        }
        "GrpcOversize" => (
            200,
            "application/grpc",
            frame(0, &vec![0u8; 2 * 1024 * 1024]),
        ),
        "GrpcUnavailable" => (503, "text/plain", Vec::new()),
        "GrpcWebNoTrailers" => (200, "application/grpc-web+proto", frame(0, &hi())),
        "GrpcWebBadTrailers" => {
            let mut body = frame(0, &hi());
            body.extend(frame(0x80, b"this is not a header line"));
            (200, "application/grpc-web+proto", body)
        }
        _ => (500, "text/plain", Vec::new()),
    }
}

async fn broken_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let method = req
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_string();
                        let (status, ct, body) = answer(&method);
                        let res = http::Response::builder()
                            .status(status)
                            .header("content-type", ct)
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        Ok::<_, Infallible>(res)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn spec(method: &'static str, stream_type: StreamType) -> Spec {
    let path: &'static str = Box::leak(format!("/m.S/{method}").into_boxed_str());
    Spec::new(path, stream_type, Idempotency::Unknown)
}

fn client(addr: std::net::SocketAddr, protocol: Protocol) -> Client<volley::client::HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .http_version(HttpVersion::Http2)
        .receive_limit(1024 * 1024);
    Client::new(config).unwrap()
}

async fn unary_code(c: &Client<volley::client::HttpTransport>, method: &'static str) -> Code {
    let msg = StringValue {
        value: "x".into(),
        ..Default::default()
    };
    c.unary::<_, StringValue>(spec(method, StreamType::Unary), msg, CallOptions::new())
        .await
        .expect_err(method)
        .code()
}

async fn stream_code(c: &Client<volley::client::HttpTransport>, method: &'static str) -> Code {
    let msg = StringValue {
        value: "x".into(),
        ..Default::default()
    };
    let res = c
        .server_stream::<_, StringValue>(
            spec(method, StreamType::ServerStream),
            msg,
            CallOptions::new(),
        )
        .await;
    let mut stream = match res {
        Err(e) => return e.code(),
        Ok(r) => r.into_message(),
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{method}: the stream ended cleanly"),
            Err(e) => return e.code(),
        }
    }
}

#[tokio::test]
async fn malformed_responses_get_the_spec_codes() {
    let addr = broken_server().await;
    let connect = client(addr, Protocol::Connect);
    assert_eq!(unary_code(&connect, "ConnectJpeg").await, Code::Unknown);
    assert_eq!(
        unary_code(&connect, "ConnectWrongCodec").await,
        Code::Internal
    );
    assert_eq!(
        unary_code(&connect, "ConnectNotFound").await,
        Code::Unimplemented
    );
    assert_eq!(
        stream_code(&connect, "ConnectStreamCut").await,
        Code::Internal
    );
    assert_eq!(
        stream_code(&connect, "ConnectTwoEnds").await,
        Code::Internal
    );

    let grpc = client(addr, Protocol::Grpc);
    assert_eq!(unary_code(&grpc, "GrpcNoTrailers").await, Code::Internal);
    assert_eq!(stream_code(&grpc, "GrpcNoTrailers").await, Code::Internal);
    assert_eq!(unary_code(&grpc, "GrpcHtml").await, Code::Unknown);
    assert_eq!(unary_code(&grpc, "GrpcWrongCodec").await, Code::Internal);
    assert_eq!(unary_code(&grpc, "GrpcTruncated").await, Code::Internal);
    assert_eq!(
        unary_code(&grpc, "GrpcOversize").await,
        Code::ResourceExhausted
    );
    assert_eq!(
        unary_code(&grpc, "GrpcUnavailable").await,
        Code::Unavailable
    );

    let web = client(addr, Protocol::GrpcWeb);
    assert_eq!(unary_code(&web, "GrpcWebNoTrailers").await, Code::Internal);
    assert_eq!(
        stream_code(&web, "GrpcWebBadTrailers").await,
        Code::Internal
    );
}
