//! `Client::with_transport` over a `Router`: every protocol, codec and stream type, errors,
//! metadata, deadlines, compression and limits go through the whole stack in memory.

use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use volley::compression::Registry;
use volley::{
    CallOptions, Client, ClientConfig, Code, Codec, Error, ErrorDetail, Idempotency, JsonCodec,
    ProtoCodec, Protocol, Request, Response, ResponseStream, Router, Spec, StreamType, Streaming,
};

const UNARY: Spec = Spec::new("/mem.v1.Mem/Unary", StreamType::Unary, Idempotency::Unknown);
const FAIL: Spec = Spec::new("/mem.v1.Mem/Fail", StreamType::Unary, Idempotency::Unknown);
const SLOW: Spec = Spec::new("/mem.v1.Mem/Slow", StreamType::Unary, Idempotency::Unknown);
const COUNT: Spec = Spec::new(
    "/mem.v1.Mem/Count",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const JOIN: Spec = Spec::new(
    "/mem.v1.Mem/Join",
    StreamType::ClientStream,
    Idempotency::Unknown,
);
const UPPER: Spec = Spec::new(
    "/mem.v1.Mem/Upper",
    StreamType::BidiStream,
    Idempotency::Unknown,
);
const GET: Spec = Spec::new(
    "/mem.v1.Mem/Get",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);

fn text(s: impl Into<String>) -> StringValue {
    StringValue::from(s.into())
}

fn router() -> Router {
    Router::new()
        .unary(UNARY, |request: Request<StringValue>| async move {
            let tenant = request
                .headers()
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            let value = request.into_message().value;
            Ok(Response::new(text(format!("unary {value}")))
                .with_header("x-tenant", &tenant)
                .with_trailer("x-len", &value.len().to_string()))
        })
        .unary(FAIL, |request: Request<StringValue>| async move {
            let mut metadata = http::HeaderMap::new();
            metadata.insert("x-why", "because".parse().unwrap());
            Err::<Response<StringValue>, _>(
                Error::new(Code::FailedPrecondition, "not now")
                    .with_detail(ErrorDetail::from_message(request.message()))
                    .with_metadata(metadata),
            )
        })
        .unary(SLOW, |request: Request<StringValue>| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Response::new(request.into_message()))
        })
        .unary(GET, |request: Request<StringValue>| async move {
            let method = request
                .extensions()
                .get::<http::Uri>()
                .map_or("POST", |_| "GET");
            Ok(Response::new(text(method)))
        })
        .server_stream(COUNT, |request: Request<StringValue>| async move {
            let n: u32 = request
                .message()
                .value
                .parse()
                .map_err(|_| Error::invalid_argument("not a number"))?;
            let items = futures_util::stream::iter(1..=n).map(|i| Ok(text(i.to_string())));
            Ok(
                Response::new(Box::pin(items) as ResponseStream<StringValue>)
                    .with_header("x-count", &n.to_string()),
            )
        })
        .client_stream(
            JOIN,
            |request: Request<Streaming<StringValue>>| async move {
                let mut input = request.into_message();
                let mut words = Vec::new();
                while let Some(word) = input.message().await? {
                    words.push(word.value);
                }
                Ok(Response::new(text(words.join(" "))))
            },
        )
        .bidi_stream(
            UPPER,
            |request: Request<Streaming<StringValue>>| async move {
                let replies = request
                    .into_message()
                    .map(|m| m.map(|m| text(m.value.to_uppercase())));
                Ok(Response::new(
                    Box::pin(replies) as ResponseStream<StringValue>
                ))
            },
        )
}

fn clients() -> Vec<(String, Client<Router>)> {
    let mut all = Vec::new();
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for codec in [&ProtoCodec as &dyn Codec, &JsonCodec] {
            let config = ClientConfig::new("http://in-memory")
                .unwrap()
                .protocol(protocol)
                .codec(codec)
                .header("x-tenant", "acme");
            all.push((
                format!("{protocol:?}/{codec:?}"),
                Client::with_transport(config, router()),
            ));
        }
    }
    all
}

#[tokio::test]
async fn unary_with_headers_and_trailers() {
    for (what, client) in clients() {
        let reply = client
            .unary::<_, StringValue>(UNARY, text("hi"), CallOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(reply.message().value, "unary hi", "{what}");
        assert_eq!(reply.headers()["x-tenant"], "acme", "{what}");
        assert_eq!(reply.trailers()["x-len"], "2", "{what}");
    }
}

#[tokio::test]
async fn errors_keep_code_message_details_and_metadata() {
    for (what, client) in clients() {
        let err = client
            .unary::<_, StringValue>(FAIL, text("detail"), CallOptions::new())
            .await
            .expect_err(&what);
        assert_eq!(err.code(), Code::FailedPrecondition, "{what}");
        assert_eq!(err.message(), "not now", "{what}");
        assert!(err.is_wire(), "{what}");
        let detail: StringValue = err.details()[0].to_message().expect("a StringValue");
        assert_eq!(detail.value, "detail", "{what}");
        assert_eq!(err.metadata()["x-why"], "because", "{what}");
    }
}

#[tokio::test]
async fn unknown_procedures_are_unimplemented() {
    const MISSING: Spec = Spec::new(
        "/mem.v1.Mem/Missing",
        StreamType::Unary,
        Idempotency::Unknown,
    );
    for (what, client) in clients() {
        let err = client
            .unary::<_, StringValue>(MISSING, text("?"), CallOptions::new())
            .await
            .expect_err(&what);
        assert_eq!(err.code(), Code::Unimplemented, "{what}: {err}");
    }
}

#[tokio::test]
async fn every_stream_type() {
    for (what, client) in clients() {
        let response = client
            .server_stream::<_, StringValue>(COUNT, text("3"), CallOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(response.headers()["x-count"], "3", "{what}");
        let mut stream = response.into_message();
        let mut got = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            got.push(m.value);
        }
        assert_eq!(got, ["1", "2", "3"], "{what}");

        let err = client
            .server_stream::<_, StringValue>(COUNT, text("x"), CallOptions::new())
            .await;
        let err = match err {
            Err(e) => e,
            Ok(r) => r.into_message().message().await.expect_err(&what),
        };
        assert_eq!(err.code(), Code::InvalidArgument, "{what}");

        let words = futures_util::stream::iter(["a", "b", "c"].map(text));
        let joined = client
            .client_stream::<_, StringValue, _>(JOIN, words, CallOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(joined.message().value, "a b c", "{what}");

        let mut bidi = client
            .bidi_stream::<StringValue, StringValue>(UPPER, CallOptions::new())
            .await
            .unwrap();
        for word in ["one", "two"] {
            bidi.send(text(word)).await.unwrap();
            let reply = bidi.message().await.unwrap().expect("a reply");
            assert_eq!(reply.value, word.to_uppercase(), "{what}");
        }
        bidi.close_send();
        assert!(bidi.message().await.unwrap().is_none(), "{what}");
    }
}

#[tokio::test]
async fn deadlines_expire() {
    for (what, client) in clients() {
        let started = std::time::Instant::now();
        let err = client
            .unary::<_, StringValue>(
                SLOW,
                text("zzz"),
                CallOptions::new().with_timeout(Duration::from_millis(50)),
            )
            .await
            .expect_err(&what);
        assert_eq!(err.code(), Code::DeadlineExceeded, "{what}");
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
    }
}

#[tokio::test]
async fn compression_and_limits() {
    let big = "z".repeat(100_000);
    for (what, client) in clients() {
        for algo in Registry::default().names() {
            let reply = client
                .unary::<_, StringValue>(
                    UNARY,
                    text(big.clone()),
                    CallOptions::new().with_send_compression(Some(algo)),
                )
                .await
                .unwrap_or_else(|e| panic!("{what} {algo}: {e}"));
            assert_eq!(reply.message().value.len(), big.len() + 6, "{what} {algo}");
        }
        let err = client
            .unary::<_, StringValue>(
                UNARY,
                text(big.clone()),
                CallOptions::new().with_receive_limit(1000),
            )
            .await
            .expect_err(&what);
        assert_eq!(err.code(), Code::ResourceExhausted, "{what}");
    }
    let small = Client::with_transport(
        ClientConfig::new("http://in-memory").unwrap(),
        router().receive_limit(1000),
    );
    let err = small
        .unary::<_, StringValue>(UNARY, text(big), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.is_wire());
}

#[tokio::test]
async fn connect_get() {
    let config = ClientConfig::new("http://in-memory")
        .unwrap()
        .codec(JsonCodec)
        .connect_get(true, 8 * 1024);
    let client = Client::with_transport(config, router());
    let reply = client
        .unary::<_, StringValue>(GET, text("q"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(reply.message().value, "GET");
    let post = Client::with_transport(ClientConfig::new("http://in-memory").unwrap(), router());
    let reply = post
        .unary::<_, StringValue>(GET, text("q"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(reply.message().value, "POST");
}
