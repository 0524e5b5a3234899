//! What route dispatch costs next to a whole call: the router finds a procedure with one
//! `HashMap<&'static str, _>` lookup (std's hasher) and one `Arc<dyn>` call. This bench times
//! that lookup over a table of 40 procedures alongside a complete unary call through
//! `Router::handle` (framing, decode, handler, encode, response body), in one run, so the share
//! of dispatch in a call is a measured ratio rather than a guess.
//! Run: `cargo bench -p volley-tests --bench dispatch`.
#![allow(missing_docs)] // reason: criterion_group! generates undocumented public items

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use buffa::Message as _;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use volley::{Error, Request, Response, Router};
use volley_tests::{ECHO, EchoRequest, EchoResponse};

async fn echo(request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Error> {
    let m = request.into_message();
    Ok(Response::new(EchoResponse {
        text: m.text,
        payload: m.payload,
        ..Default::default()
    }))
}

/// Forty procedure paths shaped like real ones, the echo path among them.
fn paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = (0..39)
        .map(|i| {
            &*Box::leak(format!("/acme.billing.v1.Service{}/Method{i}", i % 4).into_boxed_str())
        })
        .collect();
    paths.push(ECHO.procedure);
    paths
}

fn grpc_request(body: &Bytes) -> http::Request<volley::Body> {
    http::Request::post(format!("http://localhost{}", ECHO.procedure))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(volley::boxed_body(http_body_util::Full::new(body.clone())))
        .expect("request")
}

fn dispatch(c: &mut Criterion) {
    let table: HashMap<&'static str, Arc<dyn Fn() -> u32 + Send + Sync>> = paths()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let f: Arc<dyn Fn() -> u32 + Send + Sync> = Arc::new(move || i as u32);
            (p, f)
        })
        .collect();
    let uri: http::Uri = format!("http://localhost{}", ECHO.procedure)
        .parse()
        .expect("uri");
    let mut group = c.benchmark_group("dispatch");
    group.bench_function("lookup + dyn call (40 routes)", |b| {
        b.iter(|| {
            let route = table.get(black_box(uri.path())).expect("route");
            black_box(route())
        })
    });

    let router = Router::new().unary(ECHO, echo);
    let message = EchoRequest {
        text: "hello".into(),
        payload: vec![7u8; 48],
        ..Default::default()
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let body = Bytes::from(framed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    group.bench_function("whole unary gRPC call through Router::handle", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = router.handle(grpc_request(&body)).await;
                black_box(response.into_body().collect().await.expect("body"))
            })
        })
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
