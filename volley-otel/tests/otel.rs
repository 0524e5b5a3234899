//! The interceptor on a real server and client, over loopback sockets, for every protocol:
//! an in-memory span exporter sees one trace across client and server (each server span the
//! child of its client span), and an in-memory metric exporter sees the RPC metrics with the
//! conventions' attributes and the right values.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use buffa_types::google::protobuf::StringValue;
use opentelemetry::trace::{
    FutureExt as _, SpanId, SpanKind, Status, TraceContextExt as _, TraceId, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, HistogramDataPoint, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Error, Idempotency, Protocol, Request, Response,
    ResponseStream, Router, Spec, StreamType, Streaming,
};
use volley_otel::OtelInterceptor;

const UNARY: Spec = Spec::new(
    "/otel.v1.Echo/Unary",
    StreamType::Unary,
    Idempotency::Unknown,
);
const FAIL: Spec = Spec::new(
    "/otel.v1.Echo/Fail",
    StreamType::Unary,
    Idempotency::Unknown,
);
const SLOW: Spec = Spec::new(
    "/otel.v1.Echo/Slow",
    StreamType::Unary,
    Idempotency::Unknown,
);
const COUNT: Spec = Spec::new(
    "/otel.v1.Echo/Count",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const CHAT: Spec = Spec::new(
    "/otel.v1.Echo/Chat",
    StreamType::BidiStream,
    Idempotency::Unknown,
);

/// The gap between the messages of `Count`: its stream ends two gaps after its handler returns.
const GAP: Duration = Duration::from_millis(60);

struct Telemetry {
    spans: InMemorySpanExporter,
    tracers: SdkTracerProvider,
    metrics: InMemoryMetricExporter,
    meters: SdkMeterProvider,
    otel: OtelInterceptor,
}

impl Telemetry {
    fn new() -> Self {
        let spans = InMemorySpanExporter::default();
        let tracers = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        let meters = SdkMeterProvider::builder()
            .with_periodic_exporter(metrics.clone())
            .build();
        let otel = OtelInterceptor::builder()
            .tracer_provider(&tracers)
            .meter_provider(&meters)
            .measure::<StringValue>()
            .build();
        Self {
            spans,
            tracers,
            metrics,
            meters,
            otel,
        }
    }

    /// The finished spans, once there are `n` (waiting for servers to end theirs).
    async fn spans(&self, n: usize) -> Vec<SpanData> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans.get_finished_spans().unwrap();
            if spans.len() >= n || Instant::now() > until {
                assert_eq!(spans.len(), n, "finished spans: {:#?}", names(&spans));
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn names(spans: &[SpanData]) -> Vec<(String, SpanKind)> {
    spans
        .iter()
        .map(|s| (s.name.to_string(), s.span_kind.clone()))
        .collect()
}

/// The handlers; `returned` records when `Count`'s handler returned its stream.
fn router(otel: OtelInterceptor, returned: Arc<Mutex<Option<SystemTime>>>) -> Router {
    Router::new()
        .interceptor(otel)
        .unary(UNARY, |req: Request<StringValue>| async move {
            Ok(Response::new(req.into_message()))
        })
        .unary(FAIL, |req: Request<StringValue>| async move {
            Err::<Response<StringValue>, _>(match req.message().value.as_str() {
                "not found" => Error::not_found("no such thing"),
                _ => Error::internal("it broke"),
            })
        })
        .unary(SLOW, |req: Request<StringValue>| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Response::new(req.into_message()))
        })
        .server_stream(COUNT, move |req: Request<StringValue>| {
            let returned = returned.clone();
            async move {
                // The handler sees its call's context, holding the server span.
                let cx = volley_otel::context_of(&req);
                let trace = format!("{:032x}", cx.span().span_context().trace_id());
                let out = futures_util::stream::unfold(0, move |i| {
                    let trace = trace.clone();
                    async move {
                        match i {
                            0 => Some((Ok(StringValue::from(trace)), 1)),
                            1 | 2 => {
                                tokio::time::sleep(GAP).await;
                                Some((Ok(StringValue::from(i.to_string())), i + 1))
                            }
                            _ => None,
                        }
                    }
                });
                *returned.lock().unwrap() = Some(SystemTime::now());
                Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>))
            }
        })
        .bidi_stream(CHAT, |req: Request<Streaming<StringValue>>| async move {
            Ok(Response::new(
                Box::pin(req.into_message()) as ResponseStream<StringValue>
            ))
        })
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::from_listener(listener).serve(router));
    addr
}

fn attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn system(protocol: Protocol) -> &'static str {
    if protocol == Protocol::Connect {
        "connect_rpc"
    } else {
        "grpc"
    }
}

/// Every call kind through client and server; then the spans and the metrics.
async fn every_kind(protocol: Protocol) {
    let t = Telemetry::new();
    let returned = Arc::new(Mutex::new(None));
    let addr = serve(router(t.otel.clone(), returned.clone())).await;
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .interceptor(t.otel.clone());
    let client = Client::new(config).unwrap();

    let root = t.tracers.tracer("test").start("root");
    let root_cx = Context::current_with_span(root);
    let root_sc = root_cx.span().span_context().clone();

    // Unary, the parent passed explicitly.
    let r = client
        .unary::<_, StringValue>(
            UNARY,
            StringValue::from("hello"),
            CallOptions::new().with_extension(root_cx.clone()),
        )
        .await
        .unwrap();
    assert_eq!(r.message().value, "hello");

    // Server stream, the parent as the current context.
    let got: Vec<String> = async {
        let mut r = client
            .server_stream::<_, StringValue>(COUNT, StringValue::from("go"), CallOptions::new())
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(m) = r.message_mut().message().await.unwrap() {
            got.push(m.value);
        }
        got
    }
    .with_context(root_cx.clone())
    .await;
    assert_eq!(got[1..], ["1".to_string(), "2".to_string()]);
    assert_eq!(
        got[0],
        format!("{:032x}", root_sc.trace_id()),
        "the handler's context"
    );

    // Bidi.
    let mut chat = client
        .bidi_stream::<StringValue, StringValue>(
            CHAT,
            CallOptions::new().with_extension(root_cx.clone()),
        )
        .await
        .unwrap();
    for word in ["ab", "cde"] {
        chat.send(StringValue::from(word)).await.unwrap();
        assert_eq!(chat.message().await.unwrap().unwrap().value, word);
    }
    chat.close_send();
    assert!(chat.message().await.unwrap().is_none());

    // Failures.
    for what in ["not found", "internal"] {
        let e = client
            .unary::<_, StringValue>(
                FAIL,
                StringValue::from(what),
                CallOptions::new().with_extension(root_cx.clone()),
            )
            .await
            .unwrap_err();
        assert!(e.is_wire(), "{e}");
    }
    root_cx.span().end();

    // Spans: the root, and a client and a server span for each of the five calls.
    let spans = t.spans(11).await;
    let root = spans.iter().find(|s| s.name == "root").unwrap();
    for s in &spans {
        assert_eq!(
            s.span_context.trace_id(),
            root_sc.trace_id(),
            "one trace: {}",
            s.name
        );
    }
    let clients: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    let servers: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!((clients.len(), servers.len()), (5, 5));
    let server_of = |client: &SpanData| -> &SpanData {
        let id = client.span_context.span_id();
        let mut children = servers.iter().filter(|s| s.parent_span_id == id);
        let child = children.next().expect("the client span has a server child");
        assert!(children.next().is_none());
        child
    };
    for client in &clients {
        assert_eq!(client.parent_span_id, root.span_context.span_id());
        let server = server_of(client);
        assert!(server.parent_span_is_remote);
        assert_eq!(server.name, client.name);
        for s in [*client, server] {
            assert_eq!(attr(&s.attributes, "rpc.system").unwrap(), system(protocol));
            assert_eq!(attr(&s.attributes, "rpc.service").unwrap(), "otel.v1.Echo");
            assert_eq!(
                Some(s.name.as_ref()),
                attr(&s.attributes, "rpc.method")
                    .map(|m| format!("otel.v1.Echo/{m}"))
                    .as_deref()
            );
            assert!(s.end_time >= s.start_time);
        }
        assert_eq!(
            attr(&server.attributes, "client.address").unwrap(),
            "127.0.0.1"
        );
    }
    let named = |name: &str| -> Vec<&SpanData> {
        clients
            .iter()
            .copied()
            .filter(|s| s.name == format!("otel.v1.Echo/{name}"))
            .collect()
    };

    // Unary: OK, one message each way with its size, the server reached.
    let unary = named("Unary")[0];
    let unary_server = server_of(unary);
    for s in [unary, unary_server] {
        assert_eq!(s.status, Status::Unset);
        let events: Vec<_> = s.events.events.iter().collect();
        assert_eq!(events.len(), 2, "{}", s.name);
        for e in events {
            assert_eq!(e.name, "rpc.message");
            assert_eq!(
                attr(&e.attributes, "rpc.message.uncompressed_size").unwrap(),
                "7"
            );
            assert_eq!(attr(&e.attributes, "rpc.message.id").unwrap(), "1");
        }
        if protocol != Protocol::Connect {
            assert_eq!(attr(&s.attributes, "rpc.grpc.status_code").unwrap(), "0");
        }
        assert_eq!(attr(&s.attributes, "rpc.connect_rpc.error_code"), None);
    }
    assert_eq!(
        attr(&unary.attributes, "server.address").unwrap(),
        "127.0.0.1"
    );
    assert_eq!(
        attr(&unary.attributes, "server.port").unwrap(),
        addr.port().to_string()
    );

    // Server stream: the server span ends with the stream, not when the handler returned.
    let count = named("Count")[0];
    let count_server = server_of(count);
    let returned = returned.lock().unwrap().unwrap();
    assert!(
        count_server.end_time >= returned + 2 * GAP,
        "the server span ended {:?} after the handler returned",
        count_server.end_time.duration_since(returned)
    );
    assert!(count.end_time >= returned + 2 * GAP);
    let kinds = |s: &SpanData| -> Vec<String> {
        s.events
            .events
            .iter()
            .map(|e| attr(&e.attributes, "rpc.message.type").unwrap())
            .collect()
    };
    assert_eq!(kinds(count_server), ["RECEIVED", "SENT", "SENT", "SENT"]);
    assert_eq!(kinds(count), ["SENT", "RECEIVED", "RECEIVED", "RECEIVED"]);

    // Bidi: two messages each way, interleaved.
    let chat = named("Chat")[0];
    assert_eq!(kinds(chat), ["SENT", "RECEIVED", "SENT", "RECEIVED"]);
    assert_eq!(
        kinds(server_of(chat)),
        ["RECEIVED", "SENT", "RECEIVED", "SENT"]
    );

    // Failures: the client span is an error; the server's too, except for a gRPC
    // `not_found` (a caller's mistake, by the conventions' gRPC table).
    let fails = named("Fail");
    assert_eq!(fails.len(), 2);
    for client in fails {
        let server = server_of(client);
        let Status::Error { description } = &client.status else {
            panic!("the client span of a failed call: {:?}", client.status);
        };
        let not_found = description == "no such thing";
        assert!(not_found || description == "it broke", "{description}");
        let (grpc_code, connect_code) = if not_found {
            ("5", "not_found")
        } else {
            ("13", "internal")
        };
        for s in [client, server] {
            if protocol == Protocol::Connect {
                assert_eq!(
                    attr(&s.attributes, "rpc.connect_rpc.error_code").unwrap(),
                    connect_code
                );
            } else {
                assert_eq!(
                    attr(&s.attributes, "rpc.grpc.status_code").unwrap(),
                    grpc_code
                );
            }
        }
        let server_error = matches!(server.status, Status::Error { .. });
        assert_eq!(server_error, protocol == Protocol::Connect || !not_found);
        // Only the request was a message: the response was an error.
        assert_eq!(kinds(client), ["SENT"]);
        assert_eq!(kinds(server), ["RECEIVED"]);
    }

    check_metrics(&t, protocol);
}

type Points<'a> = Vec<(&'a HistogramDataPoint<u64>, Vec<KeyValue>)>;

fn check_metrics(t: &Telemetry, protocol: Protocol) {
    t.meters.force_flush().unwrap();
    let exported = t.metrics.get_finished_metrics().unwrap();
    let last = exported.last().expect("metrics were exported");
    let metrics: Vec<_> = last.scope_metrics().flat_map(|s| s.metrics()).collect();
    for scope in last.scope_metrics() {
        assert_eq!(scope.scope().name(), "volley-otel");
        assert_eq!(scope.scope().schema_url(), Some(volley_otel::SCHEMA_URL));
    }
    let find = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no metric {name}"))
    };
    let u64_points = |name: &str| -> Points<'_> {
        let AggregatedMetrics::U64(MetricData::Histogram(h)) = find(name).data() else {
            panic!("{name} is not a u64 histogram");
        };
        h.data_points()
            .map(|p| (p, p.attributes().cloned().collect()))
            .collect()
    };
    let of = |points: &Points<'_>, method: &str, status: Option<(&str, &str)>| -> (u64, u64) {
        let matching: Vec<_> = points
            .iter()
            .filter(|(_, a)| {
                attr(a, "rpc.method").as_deref() == Some(method)
                    && status.is_none_or(|(k, v)| attr(a, k).as_deref() == Some(v))
            })
            .collect();
        assert_eq!(matching.len(), 1, "{method} {status:?}: {points:?}");
        let (p, a) = matching[0];
        assert_eq!(attr(a, "rpc.system").unwrap(), system(protocol));
        assert_eq!(attr(a, "rpc.service").unwrap(), "otel.v1.Echo");
        (p.count(), p.sum())
    };
    let ok = if protocol == Protocol::Connect {
        None
    } else {
        Some(("rpc.grpc.status_code", "0"))
    };

    for side in ["server", "client"] {
        // Duration, in ms, once per call, with the status.
        let duration = find(&format!("rpc.{side}.duration"));
        assert_eq!(duration.unit(), "ms");
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = duration.data() else {
            panic!("the duration is not an f64 histogram");
        };
        let points: Vec<_> = h.data_points().collect();
        let calls: u64 = points.iter().map(|p| p.count()).sum();
        assert_eq!(calls, 5);
        for (method, status) in [
            ("Unary", ok),
            ("Count", ok),
            ("Chat", ok),
            ("Fail", Some(fail_status(protocol, "not_found", "5"))),
            ("Fail", Some(fail_status(protocol, "internal", "13"))),
        ] {
            let p = points
                .iter()
                .find(|p| {
                    let a: Vec<KeyValue> = p.attributes().cloned().collect();
                    attr(&a, "rpc.method").as_deref() == Some(method)
                        && status.is_none_or(|(k, v)| attr(&a, k).as_deref() == Some(v))
                        && (status.is_some() || attr(&a, "rpc.connect_rpc.error_code").is_none())
                })
                .unwrap_or_else(|| panic!("no {side} duration for {method} {status:?}"));
            assert_eq!(p.count(), 1);
            assert!(p.sum() > 0.0);
        }
        let count_ms = points
            .iter()
            .find(|p| {
                p.attributes()
                    .any(|kv| kv.key.as_str() == "rpc.method" && kv.value.as_str() == "Count")
            })
            .unwrap()
            .sum();
        assert!(
            count_ms >= 2.0 * GAP.as_secs_f64() * 1000.0,
            "{count_ms} ms"
        );

        // Sizes, per message, in bytes: "hello" is 7 bytes; "ab" 4 and "cde" 5.
        let request_size = u64_points(&format!("rpc.{side}.request.size"));
        let response_size = u64_points(&format!("rpc.{side}.response.size"));
        assert_eq!(find(&format!("rpc.{side}.request.size")).unit(), "By");
        assert_eq!(of(&request_size, "Unary", None), (1, 7));
        assert_eq!(of(&response_size, "Unary", None), (1, 7));
        assert_eq!(of(&request_size, "Chat", None), (2, 9));
        assert_eq!(of(&response_size, "Chat", None), (2, 9));
        assert_eq!(of(&request_size, "Count", None), (1, 4));
        // The trace id's 32 hex digits (34 bytes), then "1" and "2".
        assert_eq!(of(&response_size, "Count", None), (3, 40));
        assert_eq!(of(&request_size, "Fail", None).0, 2);
        assert!(
            response_size
                .iter()
                .all(|(_, a)| attr(a, "rpc.method").as_deref() != Some("Fail"))
        );

        // Messages per call.
        let requests = u64_points(&format!("rpc.{side}.requests_per_rpc"));
        let responses = u64_points(&format!("rpc.{side}.responses_per_rpc"));
        assert_eq!(of(&requests, "Unary", ok), (1, 1));
        assert_eq!(of(&responses, "Unary", ok), (1, 1));
        assert_eq!(of(&requests, "Count", ok), (1, 1));
        assert_eq!(of(&responses, "Count", ok), (1, 3));
        assert_eq!(of(&requests, "Chat", ok), (1, 2));
        assert_eq!(of(&responses, "Chat", ok), (1, 2));
        let not_found = Some(fail_status(protocol, "not_found", "5"));
        assert_eq!(of(&requests, "Fail", not_found), (1, 1));
        assert_eq!(of(&responses, "Fail", not_found), (1, 0));
    }
}

fn fail_status(
    protocol: Protocol,
    connect: &'static str,
    grpc: &'static str,
) -> (&'static str, &'static str) {
    if protocol == Protocol::Connect {
        ("rpc.connect_rpc.error_code", connect)
    } else {
        ("rpc.grpc.status_code", grpc)
    }
}

#[tokio::test]
async fn connect_every_kind() {
    every_kind(Protocol::Connect).await;
}

#[tokio::test]
async fn grpc_every_kind() {
    every_kind(Protocol::Grpc).await;
}

#[tokio::test]
async fn grpc_web_every_kind() {
    every_kind(Protocol::GrpcWeb).await;
}

/// A caller without the interceptor that sends its own `traceparent`: the server span joins
/// that trace; a malformed one starts a new trace.
#[tokio::test]
async fn the_server_joins_a_traceparent_from_any_caller() {
    let t = Telemetry::new();
    let addr = serve(router(t.otel.clone(), Arc::default())).await;
    let client = Client::new(ClientConfig::new(format!("http://{addr}")).unwrap()).unwrap();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let options = CallOptions::new()
        .with_header("traceparent", &format!("00-{trace}-{parent}-01"))
        .with_header("tracestate", "congo=t61rcWkgMzE");
    client
        .unary::<_, StringValue>(UNARY, StringValue::from("x"), options)
        .await
        .unwrap();
    let bad = CallOptions::new().with_header("traceparent", &format!("00-{trace}-{parent}-1"));
    client
        .unary::<_, StringValue>(UNARY, StringValue::from("x"), bad)
        .await
        .unwrap();
    let spans = t.spans(2).await;
    let joined = &spans[0];
    assert_eq!(joined.span_kind, SpanKind::Server);
    assert_eq!(format!("{:032x}", joined.span_context.trace_id()), trace);
    assert_eq!(format!("{:016x}", joined.parent_span_id), parent);
    assert_eq!(
        joined.span_context.trace_state().get("congo"),
        Some("t61rcWkgMzE")
    );
    let fresh = &spans[1];
    assert_ne!(fresh.span_context.trace_id(), TraceId::INVALID);
    assert_ne!(format!("{:032x}", fresh.span_context.trace_id()), trace);
    assert_eq!(fresh.parent_span_id, SpanId::INVALID);
}

/// A client with the interceptor calling a server without it still sends `traceparent`, of
/// its client span.
#[tokio::test]
async fn the_client_sends_its_span_as_traceparent() {
    let t = Telemetry::new();
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let router = Router::new().unary(UNARY, move |req: Request<StringValue>| {
        let seen = seen2.clone();
        async move {
            *seen.lock().unwrap() = req
                .headers()
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_string());
            Ok(Response::new(req.into_message()))
        }
    });
    let addr = serve(router).await;
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(Protocol::Grpc)
        .interceptor(t.otel.clone());
    let client = Client::new(config).unwrap();
    client
        .unary::<_, StringValue>(UNARY, StringValue::from("x"), CallOptions::new())
        .await
        .unwrap();
    let spans = t.spans(1).await;
    let sc = &spans[0].span_context;
    assert_eq!(
        seen.lock().unwrap().as_deref(),
        Some(format!("00-{:032x}-{:016x}-01", sc.trace_id(), sc.span_id()).as_str())
    );
    // No parent: the client span is a root.
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
}

/// A call whose deadline passes: both spans end (the server's when its handler is dropped),
/// both with the failure.
#[tokio::test]
async fn a_call_past_its_deadline_ends_both_spans() {
    let t = Telemetry::new();
    let addr = serve(router(t.otel.clone(), Arc::default())).await;
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .interceptor(t.otel.clone());
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    let options = CallOptions::new().with_timeout(Duration::from_millis(100));
    let e = client
        .unary::<_, StringValue>(SLOW, StringValue::from("x"), options)
        .await
        .unwrap_err();
    assert_eq!(e.code(), volley::Code::DeadlineExceeded);
    let spans = t.spans(2).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the server span waited for the handler"
    );
    let client_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    let server_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(
        server_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert_eq!(
        attr(&client_span.attributes, "rpc.connect_rpc.error_code").unwrap(),
        "deadline_exceeded"
    );
    assert!(matches!(client_span.status, Status::Error { .. }));
    // The server gives up at the deadline, or sees the caller leave first.
    let server_code = attr(&server_span.attributes, "rpc.connect_rpc.error_code").unwrap();
    assert!(
        ["deadline_exceeded", "cancelled"].contains(&server_code.as_str()),
        "{server_code}"
    );
}
