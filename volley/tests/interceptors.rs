//! Interceptors over real sockets: order, short-circuit auth on every protocol, stream
//! observers counting messages and seeing the final status, extensions and method options
//! reaching handlers, and client-side interceptors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use volley::client::HttpVersion;
use volley::interceptor::{BoxFuture, CallInfo, Next, Side, UnaryRequest, UnaryResponse};
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Interceptor, Protocol, Request,
    Response, ResponseStream, Router, Spec, StreamObserver, StreamType, Streaming,
};

// MethodOptions with a custom string option, field 50001 = "admin".
const ADMIN_OPTS: &[u8] = &[0x8a, 0xb5, 0x18, 5, b'a', b'd', b'm', b'i', b'n'];
const UNARY: Spec =
    Spec::new("/t.S/Unary", StreamType::Unary, Idempotency::Unknown).with_options(ADMIN_OPTS);
const BIDI: Spec = Spec::new("/t.S/Bidi", StreamType::BidiStream, Idempotency::Unknown);
const SLOW: Spec = Spec::new("/t.S/Slow", StreamType::ServerStream, Idempotency::Unknown);

fn sv(s: &str) -> StringValue {
    StringValue {
        value: s.to_string(),
        ..Default::default()
    }
}

#[derive(Clone, Debug)]
struct Caller(String);

type Log = Arc<Mutex<Vec<String>>>;

struct Record(&'static str, Log);

impl Interceptor for Record {
    fn stream(
        &self,
        info: &CallInfo,
        _h: &mut http::HeaderMap,
        _e: &mut http::Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        self.1
            .lock()
            .unwrap()
            .push(format!("{} stream {}", self.0, info.spec.method()));
        Ok(None)
    }

    fn unary<'a>(
        &'a self,
        request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        Box::pin(async move {
            self.1.lock().unwrap().push(format!("{} in", self.0));
            let result = next.run(request).await;
            self.1.lock().unwrap().push(format!("{} out", self.0));
            result
        })
    }
}

/// Rejects calls without `authorization: Bearer good`; stamps the caller's identity.
struct Auth;

impl Auth {
    fn check(headers: &http::HeaderMap) -> Result<Caller, Error> {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer good") => Ok(Caller("alice".into())),
            _ => Err(Error::unauthenticated("missing or bad bearer token")),
        }
    }
}

impl Interceptor for Auth {
    fn unary<'a>(
        &'a self,
        mut request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        Box::pin(async move {
            let caller = Self::check(&request.headers)?;
            request.extensions.insert(caller);
            next.run(request).await
        })
    }

    fn stream(
        &self,
        _info: &CallInfo,
        headers: &mut http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        extensions.insert(Self::check(headers)?);
        Ok(None)
    }
}

#[derive(Default, Debug, Clone, PartialEq)]
struct Counts {
    received: usize,
    sent: usize,
    end: Option<Result<(), Code>>,
}

struct Count(Arc<Mutex<Counts>>);

impl StreamObserver for Count {
    fn on_receive(&mut self, _m: &(dyn std::any::Any + Send)) {
        self.0.lock().unwrap().received += 1;
    }
    fn on_send(&mut self, _m: &(dyn std::any::Any + Send)) {
        self.0.lock().unwrap().sent += 1;
    }
    fn on_end(&mut self, result: Result<(), &Error>) {
        self.0.lock().unwrap().end = Some(result.map_err(|e| e.code()));
    }
}

struct Counter(Arc<Mutex<Counts>>, Side);

impl Interceptor for Counter {
    fn stream(
        &self,
        info: &CallInfo,
        _h: &mut http::HeaderMap,
        _e: &mut http::Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        assert_eq!(info.side, self.1);
        *self.0.lock().unwrap() = Counts::default();
        Ok(Some(Box::new(Count(self.0.clone()))))
    }
}

fn handlers() -> Router {
    Router::new()
        .unary(UNARY, |req: Request<StringValue>| async move {
            let caller = req
                .extensions()
                .get::<Caller>()
                .map(|c| c.0.clone())
                .unwrap_or_default();
            let role = req
                .spec()
                .and_then(|s| s.option_bytes(50001))
                .unwrap_or_default();
            let role = String::from_utf8_lossy(role).into_owned();
            Ok(Response::new(sv(&format!(
                "{}:{caller}:{role}",
                req.message().value
            ))))
        })
        .bidi_stream(BIDI, |req: Request<Streaming<StringValue>>| async move {
            let out = req
                .into_message()
                .map(|m| m.map(|m| sv(&m.value.to_uppercase())));
            Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>))
        })
        .server_stream(SLOW, |_req: Request<StringValue>| async move {
            let s = futures_util::stream::unfold(0, |i| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok(sv(&i.to_string())), i + 1))
            });
            Ok(Response::new(Box::pin(s) as ResponseStream<StringValue>))
        })
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

fn client(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    f: impl FnOnce(ClientConfig) -> ClientConfig,
) -> Client<volley::client::HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .http_version(HttpVersion::Http2);
    Client::new(f(config)).unwrap()
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

#[tokio::test]
async fn server_interceptors_run_in_order_and_auth_short_circuits() {
    let log: Log = Arc::default();
    let router = handlers()
        .interceptor(Record("outer", log.clone()))
        .interceptor(Auth)
        .interceptor(Record("inner", log.clone()));
    let addr = serve(router).await;
    for protocol in PROTOCOLS {
        log.lock().unwrap().clear();
        let c = client(addr, protocol, |c| c);
        let err = c
            .unary::<_, StringValue>(UNARY, sv("x"), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{protocol:?}");
        assert_eq!(
            *log.lock().unwrap(),
            ["outer in", "outer out"],
            "{protocol:?}: auth stopped the chain"
        );

        log.lock().unwrap().clear();
        let ok = CallOptions::new().with_header("authorization", "Bearer good");
        let res: Response<StringValue> = c.unary(UNARY, sv("x"), ok.clone()).await.unwrap();
        assert_eq!(
            res.message().value,
            "x:alice:admin",
            "{protocol:?}: identity and option reach the handler"
        );
        assert_eq!(
            *log.lock().unwrap(),
            ["outer in", "inner in", "inner out", "outer out"]
        );

        let mut bidi = c
            .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
            .await
            .unwrap();
        bidi.close_send();
        let err = bidi.message().await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::Unauthenticated,
            "{protocol:?}: streams are guarded too"
        );
    }
}

#[tokio::test]
async fn stream_observers_count_both_ways_and_see_the_end() {
    let server_counts = Arc::new(Mutex::new(Counts::default()));
    let router = handlers().interceptor(Counter(server_counts.clone(), Side::Server));
    let addr = serve(router).await;
    for protocol in PROTOCOLS {
        let client_counts = Arc::new(Mutex::new(Counts::default()));
        let c = client(addr, protocol, |c| {
            c.interceptor(Counter(client_counts.clone(), Side::Client))
        });
        let mut bidi = c
            .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
            .await
            .unwrap();
        for w in ["a", "b", "c"] {
            bidi.send(sv(w)).await.unwrap();
            assert_eq!(
                bidi.message().await.unwrap().unwrap().value,
                w.to_uppercase()
            );
        }
        bidi.close_send();
        assert!(bidi.message().await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let expect = Counts {
            received: 3,
            sent: 3,
            end: Some(Ok(())),
        };
        assert_eq!(
            *server_counts.lock().unwrap(),
            expect,
            "{protocol:?} server"
        );
        assert_eq!(
            *client_counts.lock().unwrap(),
            expect,
            "{protocol:?} client"
        );

        // Deadline expiry mid-stream: both sides see deadline_exceeded.
        let opts = CallOptions::new().with_timeout(Duration::from_millis(700));
        let mut s = c
            .server_stream::<_, StringValue>(SLOW, sv("go"), opts)
            .await
            .unwrap()
            .into_message();
        let mut got = 0;
        let err = loop {
            match s.message().await {
                Ok(Some(_)) => got += 1,
                Ok(None) => panic!("{protocol:?}: slow stream ended cleanly"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.code(), Code::DeadlineExceeded, "{protocol:?}");
        assert!(got >= 1, "{protocol:?}: some messages before the deadline");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let server = server_counts.lock().unwrap().clone();
        assert_eq!(server.received, 1, "{protocol:?}");
        assert_eq!(
            server.end,
            Some(Err(Code::DeadlineExceeded)),
            "{protocol:?} server end"
        );
        assert_eq!(
            client_counts.lock().unwrap().end,
            Some(Err(Code::DeadlineExceeded)),
            "{protocol:?} client end"
        );

        // Cancellation: the client drops the stream; the server's observer sees it end.
        let mut s = c
            .server_stream::<_, StringValue>(SLOW, sv("go"), CallOptions::new())
            .await
            .unwrap()
            .into_message();
        s.message().await.unwrap().unwrap();
        drop(s);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let server = server_counts.lock().unwrap().clone();
        assert_eq!(
            server.end,
            Some(Err(Code::Canceled)),
            "{protocol:?} server sees the cancel"
        );
        assert_eq!(
            client_counts.lock().unwrap().end,
            Some(Err(Code::Canceled)),
            "{protocol:?} client sees the cancel"
        );
    }
}

struct AddHeader;

impl Interceptor for AddHeader {
    fn unary<'a>(
        &'a self,
        mut request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        Box::pin(async move {
            request
                .headers
                .insert("authorization", "Bearer good".parse().unwrap());
            if let Some(m) = request.message_mut::<StringValue>() {
                m.value.push_str("+client");
            }
            let mut response = next.run(request).await?;
            if let Some(m) = response.message_mut::<StringValue>() {
                m.value.push_str("+seen");
            }
            Ok(response)
        })
    }
}

#[tokio::test]
async fn client_interceptors_rewrite_requests_and_responses() {
    let addr = serve(handlers().interceptor(Auth)).await;
    for protocol in PROTOCOLS {
        let c = client(addr, protocol, |c| c.interceptor(AddHeader));
        let res: Response<StringValue> = c.unary(UNARY, sv("m"), CallOptions::new()).await.unwrap();
        assert_eq!(
            res.message().value,
            "m+client:alice:admin+seen",
            "{protocol:?}"
        );
    }
}

#[test]
fn tower_middleware_errors_take_the_callers_protocol() {
    let err = Error::unauthenticated("no token");
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    let res = volley::error_response_for(&h, &err);
    assert_eq!(res.status(), 401, "Connect unary: the code's HTTP status");
    assert_eq!(res.headers()["content-type"], "application/json");

    h.insert("content-type", "application/grpc".parse().unwrap());
    let res = volley::error_response_for(&h, &err);
    assert_eq!(res.status(), 200, "gRPC: always 200");
    assert_eq!(
        res.headers()["grpc-status"],
        "16",
        "gRPC: trailers-only status"
    );

    h.insert("content-type", "application/grpc-web+json".parse().unwrap());
    let res = volley::error_response_for(&h, &err);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(res.headers()["content-type"], "application/grpc-web+json");

    h.insert("content-type", "application/connect+proto".parse().unwrap());
    let res = volley::error_response_for(&h, &err);
    assert_eq!(
        res.status(),
        200,
        "Connect streams: 200 with an end-of-stream error"
    );
    assert_eq!(res.headers()["content-type"], "application/connect+proto");
}

const CLIENT_STREAM: Spec = Spec::new(
    "/t.S/Collect",
    StreamType::ClientStream,
    Idempotency::Unknown,
);

#[tokio::test]
async fn interceptors_run_in_order_on_every_kind_both_sides() {
    let log: Log = Arc::default();
    let router = handlers()
        .client_stream(
            CLIENT_STREAM,
            |req: Request<Streaming<StringValue>>| async move {
                let n = req.into_message().count().await;
                Ok(Response::new(sv(&n.to_string())))
            },
        )
        .interceptor(Record("s1", log.clone()))
        .interceptor(Record("s2", log.clone()));
    let addr = serve(router).await;
    for protocol in PROTOCOLS {
        let c = client(addr, protocol, |c| {
            c.interceptor(Record("c1", log.clone()))
                .interceptor(Record("c2", log.clone()))
        });
        log.lock().unwrap().clear();
        let _: Response<StringValue> = c.unary(UNARY, sv("x"), CallOptions::new()).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "c1 in", "c2 in", "s1 in", "s2 in", "s2 out", "s1 out", "c2 out", "c1 out"
            ],
            "{protocol:?} unary"
        );
        log.lock().unwrap().clear();
        let mut s = c
            .server_stream::<_, StringValue>(SLOW, sv("x"), CallOptions::new())
            .await
            .unwrap()
            .into_message();
        s.message().await.unwrap();
        drop(s);
        let msgs = futures_util::stream::iter([sv("a"), sv("b")]);
        let _: Response<StringValue> = c
            .client_stream(CLIENT_STREAM, msgs, CallOptions::new())
            .await
            .unwrap();
        let mut bidi = c
            .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
            .await
            .unwrap();
        bidi.close_send();
        while bidi.message().await.unwrap().is_some() {}
        assert_eq!(
            *log.lock().unwrap(),
            [
                "c1 stream Slow",
                "c2 stream Slow",
                "s1 stream Slow",
                "s2 stream Slow",
                "c1 stream Collect",
                "c2 stream Collect",
                "s1 stream Collect",
                "s2 stream Collect",
                "c1 stream Bidi",
                "c2 stream Bidi",
                "s1 stream Bidi",
                "s2 stream Bidi",
            ],
            "{protocol:?} streams"
        );
    }
}
