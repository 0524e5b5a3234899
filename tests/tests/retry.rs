//! Opt-in client retries over real sockets, against a server that fails a given number of
//! times: idempotent methods only, retryable codes only, attempts and deadline honoured, the
//! budget bounding the load, server streams retried while opening (more stream cases in
//! stream_retry.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use volley::client::RetryPolicy;
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Protocol, Request, Response,
    ResponseStream, Router, Spec, StreamType,
};

const GET: Spec = Spec::new(
    "/test.v1.Flaky/Get",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);
const PUT: Spec = Spec::new(
    "/test.v1.Flaky/Put",
    StreamType::Unary,
    Idempotency::Idempotent,
);
const POST: Spec = Spec::new(
    "/test.v1.Flaky/Post",
    StreamType::Unary,
    Idempotency::Unknown,
);
const LIST: Spec = Spec::new(
    "/test.v1.Flaky/List",
    StreamType::ServerStream,
    Idempotency::NoSideEffects,
);
const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

/// A server whose every method fails its first `failures` calls with `code`, then succeeds;
/// `calls` counts every call of every method.
struct Flaky {
    base: String,
    calls: Arc<AtomicUsize>,
}

async fn flaky(failures: usize, code: Code) -> anyhow::Result<Flaky> {
    let calls = Arc::new(AtomicUsize::new(0));
    let fail = {
        let calls = calls.clone();
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            (n < failures).then(|| Error::new(code, format!("failure {}", n + 1)))
        }
    };
    let (f1, f2, f3, f4) = (fail.clone(), fail.clone(), fail.clone(), fail);
    let unary = |f: Box<dyn Fn() -> Option<Error> + Send + Sync>| {
        move |request: Request<StringValue>| {
            let failed = f();
            async move {
                match failed {
                    Some(e) => Err(e),
                    None => Ok(Response::new(request.into_message())),
                }
            }
        }
    };
    let router = Router::new()
        .unary(GET, unary(Box::new(f1)))
        .unary(PUT, unary(Box::new(f2)))
        .unary(POST, unary(Box::new(f3)))
        .server_stream(LIST, move |_request: Request<StringValue>| {
            let failed = f4();
            async move {
                if let Some(e) = failed {
                    return Err(e);
                }
                let items = (0..3).map(|i| Ok(StringValue::from(i.to_string())));
                let stream: ResponseStream<StringValue> =
                    Box::pin(futures_util::stream::iter(items));
                Ok(Response::new(stream))
            }
        });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(Server::from_listener(listener).serve(router));
    Ok(Flaky { base, calls })
}

fn fast() -> RetryPolicy {
    RetryPolicy::new().max_attempts(4).backoff(
        Duration::from_millis(5),
        Duration::from_millis(20),
        2.0,
    )
}

fn client(
    base: &str,
    protocol: Protocol,
    policy: Option<RetryPolicy>,
) -> Client<volley::client::HttpTransport> {
    let mut config = ClientConfig::new(base).unwrap().protocol(protocol);
    if let Some(policy) = policy {
        config = config.retry(policy);
    }
    Client::new(config).unwrap()
}

async fn call(
    client: &Client<volley::client::HttpTransport>,
    spec: Spec,
    options: CallOptions,
) -> Result<String, Error> {
    let reply = client
        .unary::<_, StringValue>(spec, StringValue::from("v"), options)
        .await?;
    Ok(reply.into_message().value)
}

#[tokio::test]
async fn idempotent_calls_are_retried_until_they_succeed() -> anyhow::Result<()> {
    for protocol in PROTOCOLS {
        for spec in [GET, PUT] {
            let server = flaky(3, Code::Unavailable).await?;
            let client = client(&server.base, protocol, Some(fast()));
            assert_eq!(
                call(&client, spec, CallOptions::new()).await?,
                "v",
                "{protocol:?}"
            );
            assert_eq!(
                server.calls.load(Ordering::SeqCst),
                4,
                "{protocol:?} {spec:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn no_retry_without_a_policy_for_unknown_idempotency_or_other_codes() -> anyhow::Result<()> {
    for protocol in PROTOCOLS {
        // No policy: one attempt.
        let server = flaky(1, Code::Unavailable).await?;
        let err = call(
            &client(&server.base, protocol, None),
            GET,
            CallOptions::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(server.calls.load(Ordering::SeqCst), 1, "{protocol:?}");
        // A method that may have side effects is not retried.
        let server = flaky(1, Code::Unavailable).await?;
        let err = call(
            &client(&server.base, protocol, Some(fast())),
            POST,
            CallOptions::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(server.calls.load(Ordering::SeqCst), 1, "{protocol:?}");
        // A code not listed as retryable is not retried...
        let server = flaky(1, Code::Internal).await?;
        let c = client(&server.base, protocol, Some(fast()));
        assert_eq!(
            call(&c, GET, CallOptions::new()).await.unwrap_err().code(),
            Code::Internal
        );
        assert_eq!(server.calls.load(Ordering::SeqCst), 1, "{protocol:?}");
        // ...unless it is.
        let server = flaky(1, Code::Internal).await?;
        let policy = fast().retryable_codes([Code::Unavailable, Code::Internal]);
        let c = client(&server.base, protocol, Some(policy));
        assert_eq!(call(&c, GET, CallOptions::new()).await?, "v");
        assert_eq!(server.calls.load(Ordering::SeqCst), 2, "{protocol:?}");
    }
    Ok(())
}

#[tokio::test]
async fn attempts_are_bounded() -> anyhow::Result<()> {
    let server = flaky(100, Code::Unavailable).await?;
    let c = client(&server.base, Protocol::Grpc, Some(fast().max_attempts(3)));
    let err = call(&c, GET, CallOptions::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "failure 3", "the last attempt's error");
    assert_eq!(server.calls.load(Ordering::SeqCst), 3);
    Ok(())
}

#[tokio::test]
async fn retries_honour_the_deadline() -> anyhow::Result<()> {
    // Backoffs of up to 10 s cannot fit in a 300 ms deadline: the client gives up at once
    // rather than sleeping past it.
    let server = flaky(100, Code::Unavailable).await?;
    let policy = fast().backoff(Duration::from_secs(10), Duration::from_secs(10), 1.0);
    let c = client(&server.base, Protocol::Connect, Some(policy));
    let started = Instant::now();
    let err = call(
        &c,
        GET,
        CallOptions::new().with_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(server.calls.load(Ordering::SeqCst) <= 2);
    // With short backoffs, attempts go on until the deadline and no further.
    let server = flaky(usize::MAX, Code::Unavailable).await?;
    let policy = RetryPolicy::new()
        .max_attempts(1000)
        .budget(100_000, 1.0)
        .backoff(Duration::from_millis(20), Duration::from_millis(40), 2.0);
    let c = client(&server.base, Protocol::Grpc, Some(policy));
    let started = Instant::now();
    let err = call(
        &c,
        GET,
        CallOptions::new().with_timeout(Duration::from_millis(400)),
    )
    .await
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err}"
    );
    assert!(elapsed < Duration::from_millis(1_000), "{elapsed:?}");
    let calls = server.calls.load(Ordering::SeqCst);
    assert!((3..=100).contains(&calls), "{calls} attempts in 400 ms");
    Ok(())
}

#[tokio::test]
async fn the_budget_stops_retries_against_a_failing_server() -> anyhow::Result<()> {
    // A server down for good: 20 calls of up to 5 attempts each would be 100 requests; the
    // budget (10 tokens, retries while more than 5) allows only a handful of retries.
    let server = flaky(usize::MAX, Code::Unavailable).await?;
    let c = client(&server.base, Protocol::Grpc, Some(fast().max_attempts(5)));
    for _ in 0..20 {
        call(&c, GET, CallOptions::new()).await.unwrap_err();
    }
    let calls = server.calls.load(Ordering::SeqCst);
    assert!((20..=25).contains(&calls), "{calls} requests for 20 calls");
    // Clones share the budget.
    let before = server.calls.load(Ordering::SeqCst);
    call(&c.clone(), GET, CallOptions::new()).await.unwrap_err();
    assert_eq!(server.calls.load(Ordering::SeqCst), before + 1);
    Ok(())
}

/// Answers HTTP 503 (as an overloaded proxy would) to its first `failures` requests.
#[derive(Clone)]
struct Overloaded<S> {
    inner: S,
    failures: usize,
    seen: Arc<AtomicUsize>,
}

impl<S> tower::Service<http::Request<volley::Body>> for Overloaded<S>
where
    S: tower::Service<
            http::Request<volley::Body>,
            Response = http::Response<volley::Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<volley::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<volley::Body>) -> Self::Future {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.failures {
            let response = http::Response::builder()
                .status(http::StatusCode::SERVICE_UNAVAILABLE)
                .body(volley::boxed_body(
                    http_body_util::Empty::<bytes::Bytes>::new(),
                ))
                .unwrap();
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[tokio::test]
async fn server_streams_are_retried_while_opening() -> anyhow::Result<()> {
    for protocol in PROTOCOLS {
        let seen = Arc::new(AtomicUsize::new(0));
        let router = Router::new().server_stream(LIST, |_request: Request<StringValue>| async {
            let items = (0..3).map(|i| Ok(StringValue::from(i.to_string())));
            let stream: ResponseStream<StringValue> = Box::pin(futures_util::stream::iter(items));
            Ok(Response::new(stream))
        });
        let service = Overloaded {
            inner: router,
            failures: 2,
            seen: seen.clone(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(Server::from_listener(listener).serve_service(service));
        let c = client(&base, protocol, Some(fast()));
        let reply = c
            .server_stream::<_, StringValue>(LIST, StringValue::from(""), CallOptions::new())
            .await?;
        let items: Vec<String> = reply
            .into_message()
            .map(|r| r.map(|m| m.value))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        assert_eq!(items, ["0", "1", "2"], "{protocol:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 3, "{protocol:?}");
        // Without a policy the 503 is the call's error.
        seen.store(0, Ordering::SeqCst);
        let err = client(&base, protocol, None)
            .server_stream::<_, StringValue>(LIST, StringValue::from(""), CallOptions::new())
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{protocol:?}");
    }
    Ok(())
}
