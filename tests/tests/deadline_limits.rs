//! The server's maximum timeout and the client's default timeout, over real sockets in every
//! protocol: a longer timeout asked by a client is cut to the server's maximum; a client's
//! default applies to calls without their own and a call's own replaces it.

use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use tokio::net::TcpListener;
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Code, Idempotency, Protocol, Request, Response, Router,
    Spec, StreamType,
};

/// Answers the timeout it was given, in milliseconds ("none" without one).
const TIMEOUT: Spec = Spec::new(
    "/test.v1.Deadline/Timeout",
    StreamType::Unary,
    Idempotency::Unknown,
);
/// Sleeps 3 s, then answers.
const SLOW: Spec = Spec::new(
    "/test.v1.Deadline/Slow",
    StreamType::Unary,
    Idempotency::Unknown,
);
const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

async fn serve(router: Router) -> anyhow::Result<String> {
    let router = router
        .unary(TIMEOUT, |r: Request<StringValue>| async move {
            let t = r
                .timeout()
                .map_or("none".to_owned(), |t| t.as_millis().to_string());
            Ok(Response::new(StringValue::from(t)))
        })
        .unary(SLOW, |r: Request<StringValue>| async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Response::new(r.into_message()))
        });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(Server::from_listener(listener).serve(router));
    Ok(base)
}

async fn seen(
    client: &Client<volley::client::HttpTransport>,
    options: CallOptions,
) -> anyhow::Result<String> {
    Ok(client
        .unary::<_, StringValue>(TIMEOUT, StringValue::from(""), options)
        .await?
        .into_message()
        .value)
}

fn millis(s: &str) -> u128 {
    s.parse().unwrap_or_else(|_| panic!("a timeout, not {s:?}"))
}

#[tokio::test]
async fn the_servers_maximum_cuts_longer_timeouts() -> anyhow::Result<()> {
    let base = serve(Router::new().max_timeout(Some(Duration::from_millis(300)))).await?;
    for protocol in PROTOCOLS {
        let client = Client::new(ClientConfig::new(&base)?.protocol(protocol))?;
        let long = CallOptions::new().with_timeout(Duration::from_secs(60));
        assert!(millis(&seen(&client, long).await?) <= 300, "{protocol:?}");
        let short = CallOptions::new().with_timeout(Duration::from_millis(200));
        let t = millis(&seen(&client, short).await?);
        assert!((100..=200).contains(&t), "{protocol:?}: {t}");
        // No timeout asked: none imposed.
        assert_eq!(seen(&client, CallOptions::new()).await?, "none");
        // A slow handler is cut at the maximum, not at the minute the client asked for.
        let started = Instant::now();
        let err = client
            .unary::<_, StringValue>(
                SLOW,
                StringValue::from(""),
                CallOptions::new().with_timeout(Duration::from_secs(60)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{protocol:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{protocol:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_clients_default_timeout_applies_unless_a_call_sets_its_own() -> anyhow::Result<()> {
    let base = serve(Router::new()).await?;
    for protocol in PROTOCOLS {
        let config = ClientConfig::new(&base)?
            .protocol(protocol)
            .timeout(Duration::from_millis(400));
        let client = Client::new(config)?;
        let t = millis(&seen(&client, CallOptions::new()).await?);
        assert!((200..=400).contains(&t), "{protocol:?}: default {t}");
        let own = CallOptions::new().with_timeout(Duration::from_secs(20));
        let t = millis(&seen(&client, own).await?);
        assert!((10_000..=20_000).contains(&t), "{protocol:?}: own {t}");
        let started = Instant::now();
        let err = client
            .unary::<_, StringValue>(SLOW, StringValue::from(""), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{protocol:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{protocol:?}");
    }
    Ok(())
}
