//! Allocations per call for Volley, counted by a global allocator wrapper around the system
//! allocator. Two views of each case:
//!
//! - `e2e`: a Volley client calling a Volley server over loopback TCP (gRPC, h2c) in one
//!   current-thread runtime, so client and server allocations are counted together;
//! - `server`: the router alone, called in process with prebuilt HTTP requests (gRPC framing,
//!   and Connect unary for `unary-echo-connect`) whose response bodies are drained frame by
//!   frame.
//!
//! Requests are built before counting starts, so what is counted is the framework's work (and
//! the handlers', which are the benchmark's own: see `volley_impl`). Each case warms up, then
//! runs `--calls N` calls (default 2000) and prints one line:
//! `<view> <case> allocs/call <n> bytes/call <n>`.
//!
//! Run: `cargo run --release -p volley-benches --bin allocs [-- --calls N]`.
#![allow(unsafe_code)] // reason: implementing `GlobalAlloc` is `unsafe` by definition; this file forwards every call to `System` unchanged and only counts

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use volley::{Client, ClientConfig, Protocol, Router};
use volley_benches::fixtures::{self, SHORT_STREAM};
use volley_benches::proto::owned::bench::v1 as pb;
use volley_benches::volley_impl::{owned_router, view_router};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts allocations (a `realloc` counts as one, with its new size) and forwards to `System`.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the counters are atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counter readings at the start of a measured loop.
struct Start(u64, u64);

impl Start {
    fn now() -> Self {
        Self(ALLOCS.load(Relaxed), BYTES.load(Relaxed))
    }

    fn report(self, view: &str, case: &str, calls: u64) {
        let allocs = ALLOCS.load(Relaxed) - self.0;
        let bytes = BYTES.load(Relaxed) - self.1;
        println!(
            "{view:<6} {case:<24} allocs/call {:>8.1} bytes/call {:>9.0}",
            allocs as f64 / calls as f64,
            bytes as f64 / calls as f64
        );
    }
}

const WARMUP: u64 = 200;

type Bench = pb::BenchServiceClient<volley::client::HttpTransport>;

fn client(addr: std::net::SocketAddr) -> Bench {
    let config = ClientConfig::new(format!("http://{addr}"))
        .expect("client config")
        .protocol(Protocol::Grpc);
    pb::BenchServiceClient::new(Client::new(config).expect("client"))
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

async fn e2e(name: &str, client: &Bench, calls: u64) {
    let echo = fixtures::echo_request();
    let ingest = fixtures::ingest_request();
    let ticks = fixtures::ticks_request(SHORT_STREAM);
    let want = fixtures::ingest_answer(&ingest);
    let batch = || vec![echo.clone(); SHORT_STREAM as usize];
    for round in [WARMUP, calls] {
        match name {
            "unary-echo" => {
                let mut requests: Vec<_> = (0..round).map(|_| echo.clone()).collect();
                let start = Start::now();
                while let Some(request) = requests.pop() {
                    let reply = client.echo(request).await.expect("echo");
                    assert_eq!(reply.message().payload.len(), fixtures::ECHO_PAYLOAD);
                }
                if round == calls {
                    start.report("e2e", name, calls);
                }
            }
            "unary-ingest-owned" | "unary-ingest-view" => {
                let mut requests: Vec<_> = (0..round).map(|_| ingest.clone()).collect();
                let start = Start::now();
                while let Some(request) = requests.pop() {
                    let reply = client.ingest(request).await.expect("ingest");
                    assert_eq!(reply.message().checksum, want.checksum);
                }
                if round == calls {
                    start.report("e2e", name, calls);
                }
            }
            "server-stream-10" => {
                let mut requests: Vec<_> = (0..round).map(|_| ticks.clone()).collect();
                let start = Start::now();
                while let Some(request) = requests.pop() {
                    let mut stream = client.ticks(request).await.expect("ticks").into_message();
                    let mut n = 0;
                    while let Some(_tick) = stream.message().await.expect("a tick") {
                        n += 1;
                    }
                    assert_eq!(n, SHORT_STREAM);
                }
                if round == calls {
                    start.report("e2e", name, calls);
                }
            }
            "client-stream-10" => {
                let mut requests: Vec<_> = (0..round).map(|_| batch()).collect();
                let start = Start::now();
                while let Some(request) = requests.pop() {
                    let reply = client
                        .collect(futures_util::stream::iter(request))
                        .await
                        .expect("collect");
                    assert_eq!(reply.message().count, SHORT_STREAM);
                }
                if round == calls {
                    start.report("e2e", name, calls);
                }
            }
            other => unreachable!("no case {other}"),
        }
    }
}

/// A POST of `body` to `path` with the protocol's two request headers.
fn request(path: &str, body: &Bytes, headers: [(&str, &str); 2]) -> http::Request<volley::Body> {
    let mut builder = http::Request::post(path);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(volley::boxed_body(http_body_util::Full::new(body.clone())))
        .expect("request")
}

async fn server_only(name: &str, router: &Router, calls: u64) {
    use buffa::Message as _;
    let connect = name.ends_with("-connect");
    let (path, body) = match name {
        "unary-echo" => ("Echo", fixtures::envelope(&fixtures::echo_bytes())),
        "unary-echo-connect" => ("Echo", fixtures::echo_bytes()),
        "unary-ingest-owned" | "unary-ingest-view" => {
            ("Ingest", fixtures::envelope(&fixtures::ingest_bytes()))
        }
        "server-stream-10" => (
            "Ticks",
            fixtures::envelope(&fixtures::ticks_request(SHORT_STREAM).encode_to_vec()),
        ),
        "client-stream-10" => {
            let one = fixtures::envelope(&fixtures::echo_bytes());
            ("Collect", one.repeat(SHORT_STREAM as usize))
        }
        other => unreachable!("no case {other}"),
    };
    let path = format!("/bench.v1.BenchService/{path}");
    let body = Bytes::from(body);
    for round in [WARMUP, calls] {
        let headers = if connect {
            [
                ("content-type", "application/proto"),
                ("connect-protocol-version", "1"),
            ]
        } else {
            [("content-type", "application/grpc"), ("te", "trailers")]
        };
        let mut requests: Vec<_> = (0..round).map(|_| request(&path, &body, headers)).collect();
        let start = Start::now();
        while let Some(request) = requests.pop() {
            let response = router.handle(request).await;
            assert_eq!(response.status(), 200);
            let mut body = response.into_body();
            let mut status = None;
            let mut data = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame.expect("a response frame");
                if let Some(trailers) = frame.trailers_ref() {
                    status = trailers.get("grpc-status").cloned();
                }
                data += frame.data_ref().map_or(0, |d| d.len());
            }
            if connect {
                // A Connect unary answer is the bare message: no envelope, no trailers.
                assert!(status.is_none() && data > fixtures::ECHO_PAYLOAD);
            } else {
                assert_eq!(status.as_ref().map(|s| s.as_bytes()), Some(&b"0"[..]));
            }
        }
        if round == calls {
            start.report("server", name, calls);
        }
    }
}

fn main() {
    let mut calls = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--calls", Some(n)) if n > 0 => calls = n,
            _ => {
                eprintln!("usage: allocs [--calls N]");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let owned = owned_router();
        let view = view_router();
        let owned_client = client(serve(owned.clone()).await);
        let view_client = client(serve(view.clone()).await);
        let cases = [
            "unary-echo",
            "unary-ingest-owned",
            "unary-ingest-view",
            "server-stream-10",
            "client-stream-10",
        ];
        for case in cases {
            let viewed = case.ends_with("-view");
            e2e(
                case,
                if viewed { &view_client } else { &owned_client },
                calls,
            )
            .await;
        }
        for case in cases.iter().copied().chain(["unary-echo-connect"]) {
            let viewed = case.ends_with("-view");
            server_only(case, if viewed { &view } else { &owned }, calls).await;
        }
    });
}
