//! Our client against our server, over real sockets: every protocol, codec, HTTP version and
//! RPC kind, with `google.protobuf.StringValue` as the message.

use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use volley::client::HttpVersion;
use volley::{
    CallOptions, Client, ClientConfig, Code, Codec, Error, Idempotency, JsonCodec, ProtoCodec,
    Protocol, Request, Response, ResponseStream, Router, Spec, StreamType, Streaming,
};

const UNARY: Spec = Spec::new(
    "/test.Svc/Unary",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);
const SERVER: Spec = Spec::new(
    "/test.Svc/Server",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const CLIENT: Spec = Spec::new(
    "/test.Svc/Client",
    StreamType::ClientStream,
    Idempotency::Unknown,
);
const BIDI: Spec = Spec::new(
    "/test.Svc/Bidi",
    StreamType::BidiStream,
    Idempotency::Unknown,
);

fn sv(s: &str) -> StringValue {
    StringValue {
        value: s.to_string(),
        ..Default::default()
    }
}

fn router() -> Router {
    Router::new()
        .unary(UNARY, |req: Request<StringValue>| async move {
            let text = req.message().value.clone();
            if let Some(code) = text.strip_prefix("fail:") {
                let code = Code::from_u32(code.parse().unwrap()).unwrap();
                return Err(Error::new(code, "asked to fail"));
            }
            if text == "sleep" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let echo = req.headers().get("x-echo").cloned();
            let mut res = Response::new(sv(&format!("echo: {text}")));
            if let Some(v) = echo {
                res.headers_mut().insert("x-echo", v.clone());
                res.trailers_mut().insert("x-echo-trailer", v);
            }
            Ok(res)
        })
        .server_stream(SERVER, |req: Request<StringValue>| async move {
            let n: usize = req.message().value.parse().unwrap_or(3);
            let items = (0..n).map(|i| Ok(sv(&i.to_string())));
            Ok(Response::new(
                Box::pin(futures_util::stream::iter(items)) as ResponseStream<StringValue>
            ))
        })
        .client_stream(CLIENT, |req: Request<Streaming<StringValue>>| async move {
            let mut stream = req.into_message();
            let mut parts = Vec::new();
            while let Some(m) = stream.message().await? {
                parts.push(m.value);
            }
            Ok(Response::new(sv(&parts.join(","))))
        })
        .bidi_stream(BIDI, |req: Request<Streaming<StringValue>>| async move {
            let stream = req.into_message();
            let out = stream.map(|m| m.map(|m| sv(&format!("re: {}", m.value))));
            Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>))
        })
}

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router()));
    addr
}

fn client(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    codec: &'static dyn Codec,
    version: HttpVersion,
) -> Client<volley::client::HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .codec(codec)
        .http_version(version);
    Client::new(config).unwrap()
}

fn combos() -> Vec<(Protocol, &'static dyn Codec, HttpVersion)> {
    let mut out = Vec::new();
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for codec in [&ProtoCodec as &dyn Codec, &JsonCodec] {
            for version in [HttpVersion::Http1, HttpVersion::Http2] {
                if protocol == Protocol::Grpc && version == HttpVersion::Http1 {
                    continue;
                }
                out.push((protocol, codec, version));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_kind_over_every_protocol() {
    let addr = serve().await;
    for (protocol, codec, version) in combos() {
        let label = format!("{protocol:?}/{codec:?}/{version:?}");
        let c = client(addr, protocol, codec, version);
        let res: Response<StringValue> = c
            .unary(
                UNARY,
                sv("hi"),
                CallOptions::new().with_header("x-echo", "e1"),
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: {e:?}"));
        assert_eq!(res.message().value, "echo: hi", "{label}");
        assert_eq!(res.headers()["x-echo"], "e1", "{label}");
        assert_eq!(res.trailers()["x-echo-trailer"], "e1", "{label}");

        let err = c
            .unary::<_, StringValue>(UNARY, sv("fail:9"), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{label}");
        assert_eq!(err.message(), "asked to fail", "{label}");
        assert!(err.is_wire(), "{label}");

        let mut stream = c
            .server_stream::<_, StringValue>(SERVER, sv("4"), CallOptions::new())
            .await
            .unwrap()
            .into_message();
        let mut got = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            got.push(m.value);
        }
        assert_eq!(got, ["0", "1", "2", "3"], "{label}");

        let input = futures_util::stream::iter(vec![sv("a"), sv("b"), sv("c")]);
        let res = c
            .client_stream::<_, StringValue, _>(CLIENT, input, CallOptions::new())
            .await
            .unwrap();
        assert_eq!(res.message().value, "a,b,c", "{label}");

        if version == HttpVersion::Http2 {
            let mut bidi = c
                .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
                .await
                .unwrap();
            for word in ["x", "y"] {
                bidi.send(sv(word)).await.unwrap();
                let m = bidi.message().await.unwrap().unwrap();
                assert_eq!(m.value, format!("re: {word}"), "{label}");
            }
            bidi.close_send();
            assert!(bidi.message().await.unwrap().is_none(), "{label}");
        }
    }
}

#[tokio::test]
async fn deadlines_and_compression() {
    let addr = serve().await;
    for (protocol, codec, version) in combos() {
        let label = format!("{protocol:?}/{codec:?}/{version:?}");
        let c = client(addr, protocol, codec, version);
        let err = c
            .unary::<_, StringValue>(
                UNARY,
                sv("sleep"),
                CallOptions::new().with_timeout(Duration::from_millis(200)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{label}");
        // The algorithms this build has (gzip and deflate are default features).
        let algos = ["gzip", "deflate"]
            .into_iter()
            .chain(cfg!(feature = "br").then_some("br"))
            .chain(cfg!(feature = "zstd").then_some("zstd"));
        for algo in algos {
            let big = "z".repeat(5000);
            let res: Response<StringValue> = c
                .unary(
                    UNARY,
                    sv(&big),
                    CallOptions::new().with_send_compression(Some(algo)),
                )
                .await
                .unwrap_or_else(|e| panic!("{label} {algo}: {e:?}"));
            assert_eq!(res.message().value.len(), big.len() + 6, "{label} {algo}");
        }
    }
}

#[tokio::test]
async fn connect_get_is_used_for_side_effect_free_methods() {
    let addr = serve().await;
    for codec in [&ProtoCodec as &dyn Codec, &JsonCodec] {
        let config = ClientConfig::new(format!("http://{addr}"))
            .unwrap()
            .codec(codec)
            .connect_get(true, 4096);
        let c = Client::new(config).unwrap();
        let res: Response<StringValue> = c
            .unary(UNARY, sv("via get"), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(res.message().value, "echo: via get");
    }
}
