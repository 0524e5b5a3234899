//! Client-side balancing over several local servers: calls spread over all of them; one
//! server killed mid-run is ejected and, with retries on, no call fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use tokio::net::TcpListener;
use volley::client::{Balanced, RetryPolicy};
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Code, Idempotency, Protocol, Request, Response, Router,
    Spec, StreamType,
};

const WHO: Spec = Spec::new(
    "/test.v1.Pool/Who",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);

/// A server answering its index, counting its calls, stopped (listener closed, connections
/// dropped at once) when `stop` fires.
struct Backend {
    url: String,
    calls: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn backend(index: usize) -> anyhow::Result<Backend> {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new().unary(WHO, move |_request: Request<StringValue>| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(Response::new(StringValue::from(index.to_string())))
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        Server::from_listener(listener)
            .grace_period(Duration::ZERO)
            .serve_with_shutdown(router, async move {
                let _ = stopped.await;
            }),
    );
    Ok(Backend {
        url,
        calls,
        stop: Some(stop),
        task,
    })
}

async fn run(protocol: Protocol, retry: bool) -> anyhow::Result<(Vec<usize>, usize, Vec<String>)> {
    let mut backends = Vec::new();
    for i in 0..3 {
        backends.push(backend(i).await?);
    }
    let mut config = ClientConfig::new("http://pool")?.protocol(protocol);
    if retry {
        config = config.retry(RetryPolicy::new().max_attempts(3).backoff(
            Duration::from_millis(1),
            Duration::from_millis(5),
            2.0,
        ));
    }
    let balanced = Balanced::new(&config, backends.iter().map(|b| b.url.as_str()))?
        .ejection_time(Duration::from_secs(30));
    let client = Client::with_transport(config, balanced.clone());
    let mut failed = 0;
    let mut after_kill = [0usize; 3];
    for round in 0..60 {
        if round == 20 {
            // Kill the second server mid-run.
            if let Some(stop) = backends[1].stop.take() {
                let _ = stop.send(());
            }
            (&mut backends[1].task).await??;
            for (i, b) in backends.iter().enumerate() {
                after_kill[i] = b.calls.load(Ordering::SeqCst);
            }
        }
        // Five calls at once per round.
        let calls = (0..5).map(|_| {
            client.unary::<_, StringValue>(WHO, StringValue::from(""), CallOptions::new())
        });
        for result in futures_util::future::join_all(calls).await {
            match result {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.code(), Code::Unavailable, "{e}");
                    failed += 1;
                }
            }
        }
    }
    let served: Vec<usize> = backends
        .iter()
        .map(|b| b.calls.load(Ordering::SeqCst))
        .collect();
    assert_eq!(
        served[1], after_kill[1],
        "the killed server got no call after it died"
    );
    for (i, (total, before)) in served.iter().zip(after_kill).enumerate() {
        assert!(
            before >= 10,
            "{protocol:?}: server {i} served {before} of the first 100 calls"
        );
        if i != 1 {
            assert!(
                *total > before + 50,
                "{protocol:?}: server {i} took over: {served:?}"
            );
        }
    }
    eprintln!(
        "{protocol:?}, retries {retry}: served {served:?} (at the kill {after_kill:?}), {failed} failed"
    );
    Ok((served, failed, balanced.healthy()))
}

#[tokio::test]
async fn a_killed_server_costs_no_call_with_retries() -> anyhow::Result<()> {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let (served, failed, healthy) = run(protocol, true).await?;
        assert_eq!(failed, 0, "{protocol:?}: {served:?}");
        assert_eq!(healthy.len(), 2, "{protocol:?}: the dead server is ejected");
        assert_eq!(
            served.iter().sum::<usize>(),
            300,
            "{protocol:?}: each call served once"
        );
    }
    Ok(())
}

#[tokio::test]
async fn without_retries_the_kill_costs_only_the_calls_that_met_it() -> anyhow::Result<()> {
    let (served, failed, healthy) = run(Protocol::Grpc, false).await?;
    // The calls sent to the dead server before it was ejected fail; then none.
    assert!(failed <= 5, "{failed} calls failed: {served:?}");
    assert_eq!(healthy.len(), 2);
    Ok(())
}
