//! Async stream interceptors (`Interceptor::open_stream` and `StreamHooks`) over real sockets,
//! on every protocol and every stream kind, server and client: an async refusal before the
//! handler runs, headers and extensions set at open, messages rewritten and rejected both ways,
//! and the end seen with its status and trailers.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use volley::client::HttpVersion;
use volley::interceptor::{OpenStream, Side, StreamEnd, StreamStart};
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Interceptor, Protocol, Request,
    Response, ResponseStream, Router, Spec, StreamHooks, StreamType, Streaming,
};

const SERVER_STREAM: Spec = Spec::new(
    "/t.H/Repeat",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const CLIENT_STREAM: Spec = Spec::new("/t.H/Join", StreamType::ClientStream, Idempotency::Unknown);
const BIDI: Spec = Spec::new("/t.H/Echo", StreamType::BidiStream, Idempotency::Unknown);
const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

fn sv(s: &str) -> StringValue {
    StringValue {
        value: s.to_string(),
        ..Default::default()
    }
}

/// Who the open hook found the caller to be.
#[derive(Clone, Debug)]
struct User(String);

/// What the server saw.
#[derive(Default)]
struct Seen {
    /// Handler entries.
    entered: AtomicUsize,
    /// Request messages the handlers read, as they read them.
    messages: Mutex<Vec<String>>,
}

fn user_of<T>(req: &Request<T>) -> String {
    let from_extension = req
        .extensions()
        .get::<User>()
        .map(|u| u.0.clone())
        .unwrap_or_default();
    let from_header = req
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    format!("{from_extension}/{from_header}")
}

fn handlers(seen: Arc<Seen>) -> Router {
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen);
    Router::new()
        .server_stream(SERVER_STREAM, move |req: Request<StringValue>| {
            let seen = s1.clone();
            async move {
                seen.entered.fetch_add(1, Ordering::SeqCst);
                let user = user_of(&req);
                let value = req.message().value.clone();
                seen.messages.lock().unwrap().push(value.clone());
                let out = [sv(&format!("{value}:{user}")), sv(&value)].map(Ok);
                Ok(Response::new(
                    Box::pin(futures_util::stream::iter(out)) as ResponseStream<StringValue>
                )
                .with_trailer("x-handler", "t"))
            }
        })
        .client_stream(
            CLIENT_STREAM,
            move |req: Request<Streaming<StringValue>>| {
                let seen = s2.clone();
                async move {
                    seen.entered.fetch_add(1, Ordering::SeqCst);
                    let user = user_of(&req);
                    let mut input = req.into_message();
                    let mut parts = Vec::new();
                    while let Some(m) = input.message().await? {
                        seen.messages.lock().unwrap().push(m.value.clone());
                        parts.push(m.value);
                    }
                    Ok(Response::new(sv(&format!("{}:{user}", parts.join(","))))
                        .with_trailer("x-handler", "t"))
                }
            },
        )
        .bidi_stream(BIDI, move |req: Request<Streaming<StringValue>>| {
            let seen = s3.clone();
            async move {
                seen.entered.fetch_add(1, Ordering::SeqCst);
                let user = user_of(&req);
                let out = req.into_message().map(move |m| {
                    let m = m?;
                    seen.messages.lock().unwrap().push(m.value.clone());
                    Ok(sv(&format!("{}:{user}", m.value)))
                });
                Ok(Response::new(Box::pin(out) as ResponseStream<StringValue>)
                    .with_trailer("x-handler", "t"))
            }
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

/// An ended stream, as a hook saw it.
#[derive(Debug, Clone, PartialEq)]
struct Ended {
    code: Option<Code>,
    trailers: Vec<(String, String)>,
}

type Ends = Arc<Mutex<Vec<Ended>>>;

fn trailer_list(h: &http::HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<_> = h
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    v.sort();
    v
}

/// Tags every message with `suffix_in` / `suffix_out`, rejects `reject` messages each way,
/// and records the end (adding an `x-hooked-<side>` trailer, which only the server's reaches
/// the wire).
struct Tag {
    side: &'static str,
    suffix_in: &'static str,
    suffix_out: &'static str,
    reject_in: Option<(&'static str, Code)>,
    reject_out: Option<(&'static str, Code)>,
    ends: Ends,
}

fn tag(
    message: &mut (dyn Any + Send),
    suffix: &str,
    reject: Option<(&str, Code)>,
) -> Result<(), Error> {
    let m = message
        .downcast_mut::<StringValue>()
        .expect("every method here carries StringValue");
    if let Some((word, code)) = reject
        && m.value.contains(word)
    {
        return Err(Error::new(code, format!("hook refused {:?}", m.value)));
    }
    m.value.push_str(suffix);
    Ok(())
}

impl StreamHooks for Tag {
    fn on_receive(&mut self, message: &mut (dyn Any + Send)) -> Result<(), Error> {
        tag(message, self.suffix_in, self.reject_in)
    }
    fn on_send(&mut self, message: &mut (dyn Any + Send)) -> Result<(), Error> {
        tag(message, self.suffix_out, self.reject_out)
    }
    fn on_end(&mut self, end: StreamEnd<'_>) {
        end.trailers.insert(
            http::HeaderName::try_from(format!("x-hooked-{}", self.side)).unwrap(),
            http::HeaderValue::from_static("yes"),
        );
        self.ends.lock().unwrap().push(Ended {
            code: end.result.err().map(Error::code),
            trailers: trailer_list(end.trailers),
        });
    }
}

/// Looks the bearer token up asynchronously; stamps the user as an extension and a header;
/// optionally returns [`Tag`] hooks.
struct TokenLookup {
    side: Side,
    opened: Arc<AtomicUsize>,
    hooks: Option<Box<dyn Fn() -> Tag + Send + Sync>>,
}

impl Interceptor for TokenLookup {
    fn open_stream<'a>(&'a self, start: &'a mut StreamStart) -> OpenStream<'a> {
        Box::pin(async move {
            assert_eq!(start.info.side, self.side);
            assert_ne!(start.info.spec.stream_type, StreamType::Unary);
            if self.side == Side::Server {
                assert!(start.info.peer.is_some(), "the server knows the peer");
            }
            self.opened.fetch_add(1, Ordering::SeqCst);
            // A lookup that really waits: the call must not go on meanwhile.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let token = start
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            let user = match token.as_deref() {
                Some("t-ada") => "ada",
                Some(_) => return Err(Error::permission_denied("unknown token")),
                None => return Err(Error::unauthenticated("no token")),
            };
            start.extensions.insert(User(user.into()));
            start.headers.insert("x-user", user.parse().unwrap());
            Ok(self
                .hooks
                .as_ref()
                .map(|make| Box::new(make()) as Box<dyn StreamHooks>))
        })
    }
}

/// A client interceptor that adds the token at open, asynchronously.
struct AddToken(&'static str);

impl Interceptor for AddToken {
    fn open_stream<'a>(&'a self, start: &'a mut StreamStart) -> OpenStream<'a> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            start.headers.insert(
                "authorization",
                format!("Bearer {}", self.0).parse().unwrap(),
            );
            Ok(None)
        })
    }
}

/// Runs one call of each stream kind, sending `inputs`; returns each kind's outcome: the
/// response values in order, or the error code and message.
async fn call_every_kind(
    c: &Client<volley::client::HttpTransport>,
    inputs: &[&str],
) -> Vec<(
    &'static str,
    Result<(Vec<String>, Vec<(String, String)>), (Code, String)>,
)> {
    let mut out = Vec::new();
    let server = async {
        let res = c
            .server_stream::<_, StringValue>(SERVER_STREAM, sv(inputs[0]), CallOptions::new())
            .await?;
        let mut stream = res.into_message();
        let mut got = Vec::new();
        while let Some(m) = stream.message().await? {
            got.push(m.value);
        }
        Ok::<_, Error>((got, trailer_list(&stream.trailers())))
    }
    .await;
    out.push(("server-stream", server));
    let owned: Vec<StringValue> = inputs.iter().map(|s| sv(s)).collect();
    let client = async {
        let res: Response<StringValue> = c
            .client_stream(
                CLIENT_STREAM,
                futures_util::stream::iter(owned),
                CallOptions::new(),
            )
            .await?;
        let trailers = trailer_list(res.trailers());
        Ok::<_, Error>((vec![res.into_message().value], trailers))
    }
    .await;
    out.push(("client-stream", client));
    let bidi = async {
        let mut bidi = c
            .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
            .await?;
        let mut got = Vec::new();
        for m in inputs {
            bidi.send(sv(m)).await?;
            match bidi.message().await? {
                Some(m) => got.push(m.value),
                None => break,
            }
        }
        bidi.close_send();
        while let Some(m) = bidi.message().await? {
            got.push(m.value);
        }
        Ok::<_, Error>((got, trailer_list(&bidi.trailers())))
    }
    .await;
    out.push(("bidi", bidi));
    out.into_iter()
        .map(|(k, r)| (k, r.map_err(|e| (e.code(), e.message().to_string()))))
        .collect()
}

#[tokio::test]
async fn async_open_hook_refuses_before_the_handler_runs_and_stamps_the_call() {
    let seen = Arc::new(Seen::default());
    let opened = Arc::new(AtomicUsize::new(0));
    let router = handlers(seen.clone()).interceptor(TokenLookup {
        side: Side::Server,
        opened: opened.clone(),
        hooks: None,
    });
    let addr = serve(router).await;
    for protocol in PROTOCOLS {
        // No token: refused with the hook's error, the handler never entered.
        let anonymous = client(addr, protocol, |c| c);
        for (kind, result) in call_every_kind(&anonymous, &["a"]).await {
            let (code, message) = result.expect_err(kind);
            assert_eq!(code, Code::Unauthenticated, "{protocol:?} {kind}");
            assert_eq!(message, "no token", "{protocol:?} {kind}");
        }
        let bad = client(addr, protocol, |c| c.header("authorization", "Bearer nope"));
        for (kind, result) in call_every_kind(&bad, &["a"]).await {
            let (code, _) = result.expect_err(kind);
            assert_eq!(code, Code::PermissionDenied, "{protocol:?} {kind}");
        }
        assert_eq!(
            seen.entered.load(Ordering::SeqCst),
            0,
            "{protocol:?}: no handler ran for a refused stream"
        );
        assert!(seen.messages.lock().unwrap().is_empty());
    }
    assert_eq!(
        opened.load(Ordering::SeqCst),
        18,
        "3 protocols x 2 clients x 3 kinds"
    );

    for protocol in PROTOCOLS {
        // The token added by a client open hook; the server's hook stamps who called, as an
        // extension and a header, both seen by the handler.
        let c = client(addr, protocol, |c| c.interceptor(AddToken("t-ada")));
        let results = call_every_kind(&c, &["a", "b"]).await;
        let values: Vec<_> = results
            .into_iter()
            .map(|(kind, r)| (kind, r.expect(kind).0))
            .collect();
        assert_eq!(
            values,
            [
                ("server-stream", vec!["a:ada/ada".to_string(), "a".into()]),
                ("client-stream", vec!["a,b:ada/ada".into()]),
                ("bidi", vec!["a:ada/ada".into(), "b:ada/ada".into()]),
            ],
            "{protocol:?}"
        );
    }
    assert_eq!(seen.entered.load(Ordering::SeqCst), 9);
}

fn tags(side: &'static str, ends: &Ends) -> Tag {
    Tag {
        side,
        suffix_in: if side == "server" { "+sin" } else { "+cin" },
        suffix_out: if side == "server" { "+sout" } else { "+cout" },
        reject_in: None,
        reject_out: None,
        ends: ends.clone(),
    }
}

#[tokio::test]
async fn hooks_rewrite_messages_both_ways_and_see_the_end_and_trailers() {
    let seen = Arc::new(Seen::default());
    let server_ends: Ends = Arc::default();
    let se = server_ends.clone();
    let router = handlers(seen.clone()).interceptor(TokenLookup {
        side: Side::Server,
        opened: Arc::default(),
        hooks: Some(Box::new(move || tags("server", &se))),
    });
    let addr = serve(router).await;
    for protocol in PROTOCOLS {
        seen.messages.lock().unwrap().clear();
        server_ends.lock().unwrap().clear();
        let client_ends: Ends = Arc::default();
        let ce = client_ends.clone();
        let c = client(addr, protocol, |c| {
            c.interceptor(AddToken("t-ada"))
                .interceptor(Tagger(ce.clone()))
        });
        let results = call_every_kind(&c, &["a", "b"]).await;
        // What the caller gets as trailers is what the client hook saw, as it left them.
        let trailers_seen = vec![
            ("x-handler".to_string(), "t".to_string()),
            ("x-hooked-client".into(), "yes".into()),
            ("x-hooked-server".into(), "yes".into()),
        ];
        let mut ok = Vec::new();
        for (kind, r) in results {
            let (values, trailers) = r.expect(kind);
            assert_eq!(trailers, trailers_seen, "{protocol:?} {kind}: trailers");
            ok.push((kind, values));
        }
        // Requests: +cout on the client, +sin on the server; responses: +sout, then +cin.
        assert_eq!(
            ok,
            [
                (
                    "server-stream",
                    vec![
                        "a+cout+sin:ada/ada+sout+cin".to_string(),
                        "a+cout+sin+sout+cin".into()
                    ]
                ),
                (
                    "client-stream",
                    vec!["a+cout+sin,b+cout+sin:ada/ada+sout+cin".into()]
                ),
                (
                    "bidi",
                    vec![
                        "a+cout+sin:ada/ada+sout+cin".into(),
                        "b+cout+sin:ada/ada+sout+cin".into()
                    ]
                ),
            ],
            "{protocol:?}"
        );
        assert_eq!(
            *seen.messages.lock().unwrap(),
            [
                "a+cout+sin",
                "a+cout+sin",
                "b+cout+sin",
                "a+cout+sin",
                "b+cout+sin"
            ],
            "{protocol:?}: handlers read the rewritten requests"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let server_saw = Ended {
            code: None,
            trailers: vec![
                ("x-handler".into(), "t".into()),
                ("x-hooked-server".into(), "yes".into()),
            ],
        };
        assert_eq!(
            *server_ends.lock().unwrap(),
            [server_saw.clone(), server_saw.clone(), server_saw],
            "{protocol:?}: the server sees each end with the trailers being sent"
        );
        let client_saw = Ended {
            code: None,
            trailers: vec![
                ("x-handler".into(), "t".into()),
                ("x-hooked-client".into(), "yes".into()),
                ("x-hooked-server".into(), "yes".into()),
            ],
        };
        assert_eq!(
            *client_ends.lock().unwrap(),
            [client_saw.clone(), client_saw.clone(), client_saw],
            "{protocol:?}: the client sees each end with the trailers received"
        );
    }
}

/// A client interceptor that only returns [`Tag`] hooks.
struct Tagger(Ends);

impl Interceptor for Tagger {
    fn open_stream<'a>(&'a self, _start: &'a mut StreamStart) -> OpenStream<'a> {
        let hooks = tags("client", &self.0);
        Box::pin(async move { Ok(Some(Box::new(hooks) as Box<dyn StreamHooks>)) })
    }
}

/// Client hooks rejecting words each way.
struct Rejecting(
    Ends,
    Option<(&'static str, Code)>,
    Option<(&'static str, Code)>,
);

impl Interceptor for Rejecting {
    fn open_stream<'a>(&'a self, _start: &'a mut StreamStart) -> OpenStream<'a> {
        let mut hooks = tags("client", &self.0);
        hooks.reject_in = self.1;
        hooks.reject_out = self.2;
        Box::pin(async move { Ok(Some(Box::new(hooks) as Box<dyn StreamHooks>)) })
    }
}

#[tokio::test]
async fn a_rejected_message_fails_the_call_on_either_side() {
    let seen = Arc::new(Seen::default());
    let server_ends: Ends = Arc::default();
    let se = server_ends.clone();
    let router = handlers(seen.clone()).interceptor(TokenLookup {
        side: Side::Server,
        opened: Arc::default(),
        hooks: Some(Box::new(move || {
            let mut t = tags("server", &se);
            t.reject_in = Some(("bad", Code::InvalidArgument));
            t.reject_out = Some(("leak", Code::DataLoss));
            t
        })),
    });
    let addr = serve(router).await;
    for protocol in PROTOCOLS {
        // The server refuses a request message: every kind fails with its error.
        seen.messages.lock().unwrap().clear();
        server_ends.lock().unwrap().clear();
        let ends: Ends = Arc::default();
        let c = client(addr, protocol, |c| {
            c.interceptor(AddToken("t-ada"))
                .interceptor(Rejecting(ends.clone(), None, None))
        });
        for (kind, result) in call_every_kind(&c, &["bad"]).await {
            let (code, message) = result.expect_err(kind);
            assert_eq!(code, Code::InvalidArgument, "{protocol:?} {kind}");
            assert!(
                message.contains("hook refused"),
                "{protocol:?} {kind}: {message}"
            );
        }
        assert!(
            seen.messages.lock().unwrap().is_empty(),
            "{protocol:?}: no handler read a refused message"
        );
        // Bidi: the first message passes, the second is refused mid-stream.
        let mut bidi = c
            .bidi_stream::<StringValue, StringValue>(BIDI, CallOptions::new())
            .await
            .unwrap();
        bidi.send(sv("fine")).await.unwrap();
        let first = bidi.message().await.unwrap().unwrap();
        assert_eq!(first.value, "fine+cout+sin:ada/ada+sout+cin");
        bidi.send(sv("bad")).await.unwrap();
        let err = bidi.message().await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{protocol:?} bidi mid-stream"
        );
        // Responses the server's hook refuses to send ("leak" comes back in the echo).
        for (kind, result) in call_every_kind(&c, &["leak"]).await {
            assert_eq!(
                result.expect_err(kind).0,
                Code::DataLoss,
                "{protocol:?} {kind}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let codes: Vec<_> = server_ends.lock().unwrap().iter().map(|e| e.code).collect();
        assert_eq!(
            codes,
            [
                Some(Code::InvalidArgument),
                Some(Code::InvalidArgument),
                Some(Code::InvalidArgument),
                Some(Code::InvalidArgument),
                Some(Code::DataLoss),
                Some(Code::DataLoss),
                Some(Code::DataLoss),
            ],
            "{protocol:?}: the server hooks see each failed end"
        );
        let client_codes: Vec<_> = ends.lock().unwrap().iter().map(|e| e.code).collect();
        assert_eq!(client_codes.len(), 7, "{protocol:?}: {client_codes:?}");
        assert!(
            client_codes.iter().all(Option::is_some),
            "{protocol:?}: {client_codes:?}"
        );

        // The client refuses to send a message: the call fails with its error and the server
        // never reads it.
        seen.messages.lock().unwrap().clear();
        let ends: Ends = Arc::default();
        let c = client(addr, protocol, |c| {
            c.interceptor(AddToken("t-ada")).interceptor(Rejecting(
                ends.clone(),
                None,
                Some(("secret", Code::FailedPrecondition)),
            ))
        });
        for (kind, result) in call_every_kind(&c, &["ok", "secret"]).await {
            match kind {
                // One request message: "ok" goes, and the stream succeeds.
                "server-stream" => {
                    result.expect(kind);
                }
                _ => {
                    let (code, message) = result.expect_err(kind);
                    assert_eq!(
                        code,
                        Code::FailedPrecondition,
                        "{protocol:?} {kind}: {message}"
                    );
                    assert!(
                        message.contains("hook refused"),
                        "{protocol:?} {kind}: {message}"
                    );
                }
            }
        }
        let read = seen.messages.lock().unwrap().clone();
        assert!(
            read.iter().all(|m| !m.contains("secret")),
            "{protocol:?}: the refused message never left: {read:?}"
        );
        let client_codes: Vec<_> = ends.lock().unwrap().iter().map(|e| e.code).collect();
        assert_eq!(
            client_codes,
            [
                None,
                Some(Code::FailedPrecondition),
                Some(Code::FailedPrecondition)
            ],
            "{protocol:?}"
        );

        // The client refuses a response message: the caller gets its error instead.
        let ends: Ends = Arc::default();
        let c = client(addr, protocol, |c| {
            c.interceptor(AddToken("t-ada")).interceptor(Rejecting(
                ends.clone(),
                Some(("ada", Code::Aborted)),
                None,
            ))
        });
        for (kind, result) in call_every_kind(&c, &["x"]).await {
            let (code, _) = result.expect_err(kind);
            assert_eq!(code, Code::Aborted, "{protocol:?} {kind}");
        }
        let client_codes: Vec<_> = ends.lock().unwrap().iter().map(|e| e.code).collect();
        assert_eq!(client_codes, [Some(Code::Aborted); 3], "{protocol:?}");
        // Let the server see the ends of the calls the client gave up on before the next round.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_client_open_hook_refuses_before_anything_is_sent() {
    let seen = Arc::new(Seen::default());
    let server_opened = Arc::new(AtomicUsize::new(0));
    let router = handlers(seen.clone()).interceptor(TokenLookup {
        side: Side::Server,
        opened: server_opened.clone(),
        hooks: None,
    });
    let addr = serve(router).await;
    for protocol in PROTOCOLS {
        let client_opened = Arc::new(AtomicUsize::new(0));
        let c = client(addr, protocol, |c| {
            c.interceptor(TokenLookup {
                side: Side::Client,
                opened: client_opened.clone(),
                hooks: None,
            })
        });
        for (kind, result) in call_every_kind(&c, &["a"]).await {
            let (code, message) = result.expect_err(kind);
            assert_eq!(code, Code::Unauthenticated, "{protocol:?} {kind}");
            assert_eq!(message, "no token");
        }
        assert_eq!(client_opened.load(Ordering::SeqCst), 3, "{protocol:?}");
    }
    assert_eq!(
        server_opened.load(Ordering::SeqCst),
        0,
        "no request reached the server"
    );
    assert_eq!(seen.entered.load(Ordering::SeqCst), 0);
}
