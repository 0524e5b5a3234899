//! The tower-layers example over real sockets: the binary serves and calls itself; the layers
//! (trace counts, timeout, concurrency limit on both sides) hold on every protocol.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use tower_layers::{GREET, NAP, Settings, Stats, client, router, server};
use volley::server::Server;
use volley::{CallOptions, ClientConfig, Code, Protocol};

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

#[test]
fn the_binary_serves_and_calls_through_its_layers() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tower-layers"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let lines: Vec<String> = (0..5)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("a line within 30 s")
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines[0].starts_with("serving on http://127.0.0.1:"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "Connect: Hello, layers! (client: tower-layers)");
    assert_eq!(lines[2], "Grpc: Hello, layers! (client: tower-layers)");
    assert_eq!(lines[3], "GrpcWeb: Hello, layers! (client: tower-layers)");
    assert_eq!(lines[4], "trace layer: 3 requests, 3 responses");
}

async fn serve(settings: Settings) -> anyhow::Result<(String, Arc<Stats>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stats = Arc::new(Stats::default());
    let service = server(router(stats.clone()), stats.clone(), settings);
    tokio::spawn(Server::from_listener(listener).serve_service(service));
    Ok((base, stats))
}

fn nap(millis: u64) -> StringValue {
    StringValue::from(millis.to_string())
}

#[tokio::test]
async fn timeout_layer_answers_unavailable_in_every_protocol() -> anyhow::Result<()> {
    let (base, stats) = serve(Settings {
        timeout: Duration::from_millis(200),
        max_concurrency: 8,
    })
    .await?;
    for protocol in PROTOCOLS {
        let client = client(ClientConfig::new(&base)?.protocol(protocol), 8)?;
        let started = Instant::now();
        let err = client
            .unary::<_, StringValue>(NAP, nap(2_000), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{protocol:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(1), "{protocol:?}");
        // A quick call passes.
        let ok = client
            .unary::<_, StringValue>(NAP, nap(1), CallOptions::new())
            .await?;
        assert_eq!(ok.message().value, "rested");
    }
    assert_eq!(stats.timed_out.load(Ordering::SeqCst), 3);
    assert_eq!(stats.requests.load(Ordering::SeqCst), 6);
    assert_eq!(stats.responses.load(Ordering::SeqCst), 6);
    // The timed-out calls left the router.
    assert_eq!(stats.in_router.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn server_concurrency_limit_queues_calls() -> anyhow::Result<()> {
    let (base, stats) = serve(Settings {
        timeout: Duration::from_secs(10),
        max_concurrency: 2,
    })
    .await?;
    let client = client(ClientConfig::new(&base)?.protocol(Protocol::Grpc), 100)?;
    let started = Instant::now();
    let calls = (0..6).map(|_| client.unary::<_, StringValue>(NAP, nap(150), CallOptions::new()));
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result?.message().value, "rested");
    }
    // Six calls of 150 ms, two at a time: three rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(430),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats.max_in_router.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn client_concurrency_limit_and_header_layer() -> anyhow::Result<()> {
    let (base, stats) = serve(Settings::default()).await?;
    let client = client(ClientConfig::new(&base)?.protocol(Protocol::Connect), 1)?;
    let reply = client
        .unary::<_, StringValue>(GREET, StringValue::from("you"), CallOptions::new())
        .await?;
    assert_eq!(reply.message().value, "Hello, you! (client: tower-layers)");
    let calls = (0..4).map(|_| client.unary::<_, StringValue>(NAP, nap(100), CallOptions::new()));
    for result in futures_util::future::join_all(calls).await {
        result?;
    }
    // The client's limit of one call on the wire: the server never saw two at once.
    assert_eq!(stats.max_in_router.load(Ordering::SeqCst), 1);
    Ok(())
}
