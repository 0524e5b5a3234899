//! Unary dispatch cost through the router, in process (no sockets): no interceptor versus one
#![allow(missing_docs)] // reason: criterion_group! generates undocumented public items
//! no-op interceptor, measured side by side in one run. Run: `cargo bench -p volley-rpc --bench unary`.

use buffa_types::google::protobuf::StringValue;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use volley::interceptor::{BoxFuture, Next, UnaryRequest, UnaryResponse};
use volley::{Error, Idempotency, Interceptor, Request, Response, Router, Spec, StreamType};

const ECHO: Spec = Spec::new("/bench.Svc/Echo", StreamType::Unary, Idempotency::Unknown);

struct Noop;

impl Interceptor for Noop {
    fn unary<'a>(
        &'a self,
        request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        next.run(request)
    }
}

fn router() -> Router {
    Router::new().unary(ECHO, |req: Request<StringValue>| async move {
        Ok(Response::new(req.into_message()))
    })
}

fn request(body: &Bytes) -> http::Request<volley::Body> {
    http::Request::post("/bench.Svc/Echo")
        .header("content-type", "application/proto")
        .body(volley::boxed_body(http_body_util::Full::new(body.clone())))
        .expect("valid request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let message = StringValue {
        value: "hello volley".repeat(8),
        ..Default::default()
    };
    let body = Bytes::from(buffa::Message::encode_to_vec(&message));
    let plain = router();
    let intercepted = router().interceptor(Noop);
    let mut group = c.benchmark_group("unary_dispatch");
    for (name, router) in [
        ("no_interceptor", &plain),
        ("one_noop_interceptor", &intercepted),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let res = router.handle(request(&body)).await;
                    assert_eq!(res.status(), 200);
                    res.into_body().collect().await.expect("body").to_bytes()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
