//! Owned messages versus zero-copy views for a decode-heavy unary call: a batch of 50 log
//! records (timestamp, level, ~110-byte message, a 5-entry string map, service name, 16-byte
//! trace id; 16 KB encoded), every field read by the handler. Through the router in process
//! (no sockets), binary and JSON, side by side in one run.
//! Run: `cargo bench -p volley-tests --bench views`.
#![allow(missing_docs)] // reason: criterion_group! generates undocumented public items

use buffa::MessageView as _;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use volley::{Error, Idempotency, Request, Response, Router, Spec, StreamType, View};
use volley_tests::proto::volley::bench::v1::{IngestRequest, IngestResponse, Level, LogRecord};

const INGEST: Spec = Spec::new(
    "/volley.bench.v1.IngestService/Ingest",
    StreamType::Unary,
    Idempotency::Unknown,
);

/// Folds a string into the checksum.
fn mix(sum: u64, s: &[u8]) -> u64 {
    s.iter()
        .fold(sum.rotate_left(5) ^ s.len() as u64, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(u64::from(*b))
        })
}

fn owned_handler(request: Request<IngestRequest>) -> Result<Response<IngestResponse>, Error> {
    let mut sum = 0u64;
    let records = &request.message().records;
    for r in records {
        sum = sum.wrapping_add(r.time.seconds as u64 ^ u64::from(r.time.nanos as u32));
        sum = sum.wrapping_add(r.level.to_i32() as u64);
        sum = mix(sum, r.message.as_bytes());
        sum = mix(sum, r.service.as_bytes());
        sum = mix(sum, &r.trace_id);
        let mut map = 0u64;
        for (k, v) in &r.attributes {
            // Order-independent: owned maps are hash maps.
            map ^= mix(mix(0, k.as_bytes()), v.as_bytes());
        }
        sum = sum.wrapping_add(map);
    }
    Ok(Response::new(IngestResponse {
        accepted: records.len() as u32,
        checksum: sum,
        ..Default::default()
    }))
}

fn view_handler(request: Request<View<IngestRequest>>) -> Result<Response<IngestResponse>, Error> {
    let mut sum = 0u64;
    let records = &request.message().view().records;
    for r in records.iter() {
        sum = sum.wrapping_add(r.time.seconds as u64 ^ u64::from(r.time.nanos as u32));
        sum = sum.wrapping_add(r.level.to_i32() as u64);
        sum = mix(sum, r.message.as_bytes());
        sum = mix(sum, r.service.as_bytes());
        sum = mix(sum, r.trace_id);
        let mut map = 0u64;
        for (k, v) in r.attributes.iter() {
            map ^= mix(mix(0, k.as_bytes()), v.as_bytes());
        }
        sum = sum.wrapping_add(map);
    }
    Ok(Response::new(IngestResponse {
        accepted: records.len() as u32,
        checksum: sum,
        ..Default::default()
    }))
}

fn batch() -> IngestRequest {
    let records = (0..50)
        .map(|i| LogRecord {
            time: buffa::MessageField::some(buffa_types::google::protobuf::Timestamp {
                seconds: 1_764_000_000 + i,
                nanos: 123_456_789,
                ..Default::default()
            }),
            level: Level::LEVEL_INFO.into(),
            message: format!(
                "request {i} served in 12.5 ms: GET /api/v1/orders?customer=4711&page=3 -> 200, 5123 bytes, cache miss"
            ),
            attributes: (0..5)
                .map(|k| (format!("attribute-{k}"), format!("value-{i}-{k}-abcdef")))
                .collect(),
            service: "orders-frontend".into(),
            trace_id: (0..16).map(|b| (b * 7 + i as u8) ^ 0x5a).collect(),
            ..Default::default()
        })
        .collect();
    IngestRequest {
        records,
        ..Default::default()
    }
}

fn request(body: &Bytes, content_type: &str) -> http::Request<volley::Body> {
    http::Request::post(INGEST.procedure)
        .header("content-type", content_type)
        .body(volley::boxed_body(http_body_util::Full::new(body.clone())))
        .expect("valid request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let batch = batch();
    let proto = Bytes::from(buffa::Message::encode_to_vec(&batch));
    let json = Bytes::from(serde_json::to_vec(&batch).expect("json"));
    let owned = Router::new().unary(INGEST, |r| async move { owned_handler(r) });
    let view = Router::new().unary(INGEST, |r| async move { view_handler(r) });

    // Both handlers compute the same answer, from either codec.
    let answer = |router: &Router, body: &Bytes, content_type: &str| {
        rt.block_on(async {
            let res = router.handle(request(body, content_type)).await;
            assert_eq!(res.status(), 200);
            res.into_body().collect().await.expect("body").to_bytes()
        })
    };
    let expected = answer(&owned, &proto, "application/proto");
    let decoded =
        <IngestResponse as buffa::Message>::decode_from_slice(&expected).expect("response");
    assert_eq!(decoded.accepted, 50);
    assert_eq!(answer(&view, &proto, "application/proto"), expected);
    assert_eq!(
        answer(&owned, &json, "application/json"),
        answer(&view, &json, "application/json")
    );
    // Not a view of a copy: the view's records borrow the request body.
    let viewed = View::<IngestRequest>::decode(proto.clone()).expect("view");
    let first = viewed.view().records.iter().next().expect("a record");
    assert!(proto.as_ptr_range().contains(&first.message.as_ptr()));
    let _ = first.to_owned_message();

    let mut group = c.benchmark_group("unary_50_logs");
    group.throughput(criterion::Throughput::Elements(1));
    for (name, router, body, content_type) in [
        ("owned_proto", &owned, &proto, "application/proto"),
        ("view_proto", &view, &proto, "application/proto"),
        ("owned_json", &owned, &json, "application/json"),
        ("view_json", &view, &json, "application/json"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let res = router.handle(request(body, content_type)).await;
                    res.into_body().collect().await.expect("body").to_bytes()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
