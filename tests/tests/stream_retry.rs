//! Streams retried only before the first response message, over real sockets, against
//! servers that fail a given number of times: server streams failing before any message (as
//! an error response or as an error inside the stream) are retried, one that already
//! delivered a message is not; client streams replay the messages they sent, unless more than
//! the buffer limit went out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use volley::client::RetryPolicy;
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Protocol, Request, Response,
    ResponseStream, Router, Spec, StreamType, Streaming,
};

/// Fails (handler error) its first calls, then streams 0, 1, 2.
const LIST: Spec = Spec::new(
    "/test.v1.Streams/List",
    StreamType::ServerStream,
    Idempotency::NoSideEffects,
);
/// Its first calls open the stream and fail inside it before any message.
const LIST_LATE: Spec = Spec::new(
    "/test.v1.Streams/ListLate",
    StreamType::ServerStream,
    Idempotency::NoSideEffects,
);
/// Its first calls send one message, then fail.
const LIST_PARTIAL: Spec = Spec::new(
    "/test.v1.Streams/ListPartial",
    StreamType::ServerStream,
    Idempotency::NoSideEffects,
);
/// Reads every message, fails its first calls, then answers what it read.
const UPLOAD: Spec = Spec::new(
    "/test.v1.Streams/Upload",
    StreamType::ClientStream,
    Idempotency::Idempotent,
);
/// Fails its first calls at once, without reading; then answers what it read.
const UPLOAD_EARLY: Spec = Spec::new(
    "/test.v1.Streams/UploadEarly",
    StreamType::ClientStream,
    Idempotency::Idempotent,
);
const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

struct Flaky {
    base: String,
    calls: Arc<AtomicUsize>,
    /// What each call of the upload methods read, in order.
    uploads: Arc<Mutex<Vec<Vec<String>>>>,
}

fn unavailable(n: usize) -> Error {
    Error::new(Code::Unavailable, format!("failure {n}"))
}

async fn flaky(failures: usize) -> anyhow::Result<Flaky> {
    let calls = Arc::new(AtomicUsize::new(0));
    let uploads: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let next = {
        let calls = calls.clone();
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            (n, n < failures)
        }
    };
    let items = || (0..3).map(|i| Ok(StringValue::from(i.to_string())));
    let (n1, n2, n3, n4, n5) = (next.clone(), next.clone(), next.clone(), next.clone(), next);
    let (u1, u2) = (uploads.clone(), uploads.clone());
    let router = Router::new()
        .server_stream(LIST, move |_r: Request<StringValue>| {
            let (n, fail) = n1();
            async move {
                if fail {
                    return Err(unavailable(n + 1));
                }
                let stream: ResponseStream<StringValue> =
                    Box::pin(futures_util::stream::iter(items()));
                Ok(Response::new(stream))
            }
        })
        .server_stream(LIST_LATE, move |_r: Request<StringValue>| {
            let (n, fail) = n2();
            async move {
                let stream: ResponseStream<StringValue> = if fail {
                    Box::pin(futures_util::stream::once(async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Err(unavailable(n + 1))
                    }))
                } else {
                    Box::pin(futures_util::stream::iter(items()))
                };
                Ok(Response::new(stream))
            }
        })
        .server_stream(LIST_PARTIAL, move |_r: Request<StringValue>| {
            let (n, fail) = n3();
            async move {
                let stream: ResponseStream<StringValue> = if fail {
                    Box::pin(futures_util::stream::iter([
                        Ok(StringValue::from("0")),
                        Err(unavailable(n + 1)),
                    ]))
                } else {
                    Box::pin(futures_util::stream::iter(items()))
                };
                Ok(Response::new(stream))
            }
        })
        .client_stream(UPLOAD, move |r: Request<Streaming<StringValue>>| {
            let (n, fail) = n4();
            let uploads = u1.clone();
            async move {
                let mut read = Vec::new();
                let mut stream = r.into_message();
                while let Some(m) = stream.message().await? {
                    read.push(m.value);
                }
                uploads.lock().unwrap().push(read.clone());
                if fail {
                    return Err(unavailable(n + 1));
                }
                Ok(Response::new(StringValue::from(read.join(","))))
            }
        })
        .client_stream(UPLOAD_EARLY, move |r: Request<Streaming<StringValue>>| {
            let (n, fail) = n5();
            let uploads = u2.clone();
            async move {
                if fail {
                    return Err(unavailable(n + 1));
                }
                let mut read = Vec::new();
                let mut stream = r.into_message();
                while let Some(m) = stream.message().await? {
                    read.push(m.value);
                }
                uploads.lock().unwrap().push(read.clone());
                Ok(Response::new(StringValue::from(read.join(","))))
            }
        });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(Server::from_listener(listener).serve(router));
    Ok(Flaky {
        base,
        calls,
        uploads,
    })
}

fn policy() -> RetryPolicy {
    RetryPolicy::new().max_attempts(4).backoff(
        Duration::from_millis(2),
        Duration::from_millis(10),
        2.0,
    )
}

fn client(
    base: &str,
    protocol: Protocol,
    policy: RetryPolicy,
) -> anyhow::Result<Client<volley::client::HttpTransport>> {
    let config = ClientConfig::new(base)?
        .protocol(protocol)
        .timeout(Duration::from_secs(10))
        .retry(policy);
    Ok(Client::new(config)?)
}

/// Every item of a server stream: the messages, then the error that ended it, if any.
async fn read_all(
    client: &Client<volley::client::HttpTransport>,
    spec: Spec,
) -> anyhow::Result<(Vec<String>, Option<Error>)> {
    let reply = client
        .server_stream::<_, StringValue>(spec, StringValue::from(""), CallOptions::new())
        .await?;
    let mut stream = reply.into_message();
    let mut got = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(m)) => got.push(m.value),
            Ok(None) => return Ok((got, None)),
            Err(e) => return Ok((got, Some(e))),
        }
    }
}

#[tokio::test]
async fn server_streams_failing_before_their_first_message_are_retried() -> anyhow::Result<()> {
    for protocol in PROTOCOLS {
        for spec in [LIST, LIST_LATE] {
            let server = flaky(3).await?;
            let c = client(&server.base, protocol, policy())?;
            let (got, err) = read_all(&c, spec).await?;
            assert!(err.is_none(), "{protocol:?} {}: {err:?}", spec.procedure);
            assert_eq!(got, ["0", "1", "2"], "{protocol:?} {}", spec.procedure);
            assert_eq!(server.calls.load(Ordering::SeqCst), 4, "{protocol:?}");
        }
        // Attempts run out: the last error reaches the caller, in the stream.
        let server = flaky(100).await?;
        let c = client(&server.base, protocol, policy().max_attempts(2))?;
        let (got, err) = read_all(&c, LIST_LATE).await?;
        assert!(got.is_empty());
        let err = err.expect("the stream fails");
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unavailable, "failure 2")
        );
        assert_eq!(server.calls.load(Ordering::SeqCst), 2, "{protocol:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_server_stream_that_delivered_a_message_is_not_retried() -> anyhow::Result<()> {
    for protocol in PROTOCOLS {
        let server = flaky(3).await?;
        let c = client(&server.base, protocol, policy())?;
        let (got, err) = read_all(&c, LIST_PARTIAL).await?;
        assert_eq!(got, ["0"], "{protocol:?}");
        let err = err.expect("the stream fails after its first message");
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unavailable, "failure 1")
        );
        assert_eq!(
            server.calls.load(Ordering::SeqCst),
            1,
            "{protocol:?}: one attempt"
        );
    }
    Ok(())
}

async fn upload<S>(
    client: &Client<volley::client::HttpTransport>,
    spec: Spec,
    messages: S,
) -> Result<String, Error>
where
    S: futures_util::Stream<Item = StringValue> + Send + 'static,
{
    Ok(client
        .client_stream::<_, StringValue, _>(spec, messages, CallOptions::new())
        .await?
        .into_message()
        .value)
}

fn words() -> Vec<StringValue> {
    ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(StringValue::from)
        .collect()
}

#[tokio::test]
async fn client_streams_replay_their_messages_on_a_retry() -> anyhow::Result<()> {
    for protocol in PROTOCOLS {
        // The server reads every message, then fails twice.
        let server = flaky(2).await?;
        let c = client(&server.base, protocol, policy())?;
        let reply = upload(&c, UPLOAD, futures_util::stream::iter(words())).await?;
        assert_eq!(reply, "a,b,c,d,e", "{protocol:?}");
        assert_eq!(server.calls.load(Ordering::SeqCst), 3, "{protocol:?}");
        let uploads = server.uploads.lock().unwrap().clone();
        assert_eq!(
            uploads,
            vec![vec!["a", "b", "c", "d", "e"]; 3],
            "{protocol:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_client_stream_retried_mid_send_replays_then_goes_on() -> anyhow::Result<()> {
    // The server fails at once while the client is still producing messages: the retry sends
    // what was taken so far again, then the rest of the caller's stream.
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        let server = flaky(1).await?;
        let c = client(&server.base, protocol, policy())?;
        let slow = futures_util::stream::iter(words()).then(|m| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            m
        });
        let reply = upload(&c, UPLOAD_EARLY, slow).await?;
        assert_eq!(reply, "a,b,c,d,e", "{protocol:?}");
        assert_eq!(server.calls.load(Ordering::SeqCst), 2, "{protocol:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_client_stream_past_the_buffer_limit_is_not_retried() -> anyhow::Result<()> {
    for protocol in PROTOCOLS {
        let server = flaky(1).await?;
        // Five messages of a few bytes each, framed: more than 16 bytes in all.
        let c = client(&server.base, protocol, policy().buffer_limit(16))?;
        let err = upload(&c, UPLOAD, futures_util::stream::iter(words()))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unavailable, "failure 1")
        );
        assert_eq!(
            server.calls.load(Ordering::SeqCst),
            1,
            "{protocol:?}: one attempt"
        );
        // Under the limit the same call is retried.
        let server = flaky(1).await?;
        let c = client(&server.base, protocol, policy().buffer_limit(1024))?;
        let reply = upload(&c, UPLOAD, futures_util::stream::iter(words())).await?;
        assert_eq!(reply, "a,b,c,d,e");
        assert_eq!(server.calls.load(Ordering::SeqCst), 2, "{protocol:?}");
    }
    Ok(())
}
