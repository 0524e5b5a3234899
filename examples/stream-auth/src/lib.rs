//! Async stream interceptors: a server interceptor that authenticates every stream with an
//! async token lookup before its handler runs, and hooks that time whole streams (open to
//! end, with their message counts and final status) on the server and on the client.
//!
//! - [`StreamAuth`] (server): `open_stream` awaits [`TokenStore::lookup`]; an unknown or
//!   missing token refuses the stream with `unauthenticated` and the handler never runs. A
//!   known one puts the [`User`] in the request extensions for handlers. Unary calls take the
//!   same check through `unary`. Each stream gets a [`StreamTimer`], which also writes the
//!   message counts into the trailers the client receives (`x-stream-messages`).
//! - [`ClientTimer`] (client): times each stream from before its request is sent to its end.
//!
//! Both record finished streams as [`StreamRecord`]s (and log them through `tracing`).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use volley::client::HttpTransport;
use volley::interceptor::{
    BoxFuture, Next, OpenStream, Side, StreamEnd, StreamStart, UnaryRequest, UnaryResponse,
};
use volley::{
    Client, ClientConfig, Code, Error, Idempotency, Interceptor, Protocol, Request, Response,
    ResponseStream, Router, Spec, StreamHooks, StreamType, Streaming,
};

/// Echoes each message, signed by the caller.
pub const CHAT: Spec = Spec::new(
    "/demo.v1.Chat/Chat",
    StreamType::BidiStream,
    Idempotency::Unknown,
);
/// Sends as many ticks as the request asks for (a number).
pub const TAIL: Spec = Spec::new(
    "/demo.v1.Chat/Tail",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
/// Counts the messages uploaded.
pub const UPLOAD: Spec = Spec::new(
    "/demo.v1.Chat/Upload",
    StreamType::ClientStream,
    Idempotency::Unknown,
);
/// Says who is calling.
pub const WHOAMI: Spec = Spec::new(
    "/demo.v1.Chat/WhoAmI",
    StreamType::Unary,
    Idempotency::Unknown,
);

/// The caller, as the token lookup found it; handlers read it from the request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User(pub String);

/// Bearer tokens and their users. Lookups are async, as against a database or an identity
/// service; here a map behind an async lock, with a short delay standing in for the trip.
#[derive(Clone, Default)]
pub struct TokenStore {
    tokens: Arc<tokio::sync::RwLock<HashMap<String, String>>>,
    lookups: Arc<AtomicUsize>,
}

impl TokenStore {
    /// Adds `token` for `user`.
    pub async fn insert(&self, token: &str, user: &str) {
        self.tokens
            .write()
            .await
            .insert(token.to_string(), user.to_string());
    }

    /// The user of `token`, if it is known.
    pub async fn lookup(&self, token: &str) -> Option<User> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.tokens.read().await.get(token).cloned().map(User)
    }

    /// How many lookups were made.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::Relaxed)
    }
}

/// One finished stream, as a [`StreamTimer`] recorded it.
#[derive(Clone, Debug)]
pub struct StreamRecord {
    /// Where it was timed.
    pub side: Side,
    /// The method's name.
    pub method: &'static str,
    /// The caller (server side).
    pub user: Option<String>,
    /// Messages received: requests on the server, responses on the client.
    pub received: usize,
    /// Messages sent: responses on the server, requests on the client.
    pub sent: usize,
    /// From the stream's open to its end.
    pub elapsed: Duration,
    /// `None` for success, else the error's code.
    pub code: Option<Code>,
}

/// Where finished streams are recorded.
pub type Records = Arc<Mutex<Vec<StreamRecord>>>;

/// Times one stream and counts its messages; records it when it ends.
pub struct StreamTimer {
    record: StreamRecord,
    started: Instant,
    records: Records,
}

impl StreamTimer {
    fn new(side: Side, start: &StreamStart, user: Option<String>, records: Records) -> Self {
        Self {
            record: StreamRecord {
                side,
                method: start.info.spec.method(),
                user,
                received: 0,
                sent: 0,
                elapsed: Duration::ZERO,
                code: None,
            },
            started: Instant::now(),
            records,
        }
    }
}

impl StreamHooks for StreamTimer {
    fn on_receive(&mut self, _message: &mut (dyn Any + Send)) -> Result<(), Error> {
        self.record.received += 1;
        Ok(())
    }

    fn on_send(&mut self, _message: &mut (dyn Any + Send)) -> Result<(), Error> {
        self.record.sent += 1;
        Ok(())
    }

    fn on_end(&mut self, end: StreamEnd<'_>) {
        let mut record = self.record.clone();
        record.elapsed = self.started.elapsed();
        record.code = end.result.err().map(Error::code);
        if record.side == Side::Server {
            // The server's trailers are still to be sent: the client gets the counts.
            let counts = format!("{} in, {} out", record.received, record.sent);
            if let Ok(value) = http::HeaderValue::from_str(&counts) {
                end.trailers.insert("x-stream-messages", value);
            }
        }
        tracing::info!(
            side = ?record.side,
            method = record.method,
            elapsed = ?record.elapsed,
            received = record.received,
            sent = record.sent,
            code = ?record.code,
            "stream ended"
        );
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }
}

/// The server interceptor: authenticates every call with an async token lookup, and times
/// every stream.
pub struct StreamAuth {
    store: TokenStore,
    records: Records,
}

impl StreamAuth {
    /// Checks tokens against `store`; records finished streams in `records`.
    pub fn new(store: TokenStore, records: Records) -> Self {
        Self { store, records }
    }

    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<User, Error> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Error::unauthenticated("missing bearer token"))?;
        self.store
            .lookup(token)
            .await
            .ok_or_else(|| Error::unauthenticated("unknown bearer token"))
    }
}

impl Interceptor for StreamAuth {
    fn unary<'a>(
        &'a self,
        mut request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        Box::pin(async move {
            let user = self.authenticate(&request.headers).await?;
            request.extensions.insert(user);
            next.run(request).await
        })
    }

    fn open_stream<'a>(&'a self, start: &'a mut StreamStart) -> OpenStream<'a> {
        Box::pin(async move {
            // Refused here, the stream never reaches its handler.
            let user = self.authenticate(&start.headers).await?;
            let timer = StreamTimer::new(
                Side::Server,
                start,
                Some(user.0.clone()),
                self.records.clone(),
            );
            start.extensions.insert(user);
            Ok(Some(Box::new(timer) as Box<dyn StreamHooks>))
        })
    }
}

/// The client interceptor: times every stream from before its request is sent to its end.
pub struct ClientTimer(pub Records);

impl Interceptor for ClientTimer {
    fn open_stream<'a>(&'a self, start: &'a mut StreamStart) -> OpenStream<'a> {
        let timer = StreamTimer::new(Side::Client, start, None, self.0.clone());
        Box::pin(async move { Ok(Some(Box::new(timer) as Box<dyn StreamHooks>)) })
    }
}

fn caller<T>(request: &Request<T>) -> String {
    // Always set: the interceptor refuses calls it cannot authenticate.
    request
        .extensions()
        .get::<User>()
        .map_or_else(|| "nobody".to_string(), |u| u.0.clone())
}

/// How many times a handler ran: refused calls never get that far.
#[derive(Clone, Default)]
pub struct Entered(Arc<AtomicUsize>);

impl Entered {
    /// The count.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The chat service behind [`StreamAuth`], counting handler entries in `entered`.
pub fn router(store: TokenStore, records: Records, entered: Entered) -> Router {
    let (e1, e2, e3, e4) = (entered.clone(), entered.clone(), entered.clone(), entered);
    Router::new()
        .interceptor(StreamAuth::new(store, records))
        .bidi_stream(CHAT, move |request: Request<Streaming<StringValue>>| {
            e1.bump();
            async move {
                let user = caller(&request);
                let replies = request.into_message().map(move |m| {
                    let m = m?;
                    Ok(StringValue::from(format!("{user}: {}", m.value)))
                });
                Ok(Response::new(
                    Box::pin(replies) as ResponseStream<StringValue>
                ))
            }
        })
        .server_stream(TAIL, move |request: Request<StringValue>| {
            e2.bump();
            async move {
                let n: usize = request.message().value.parse().map_err(|_| {
                    Error::invalid_argument("the request is the number of ticks wanted")
                })?;
                let ticks = futures_util::stream::iter(0..n.min(100)).then(|i| async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok(StringValue::from(format!("tick {i}")))
                });
                Ok(Response::new(Box::pin(ticks) as ResponseStream<StringValue>))
            }
        })
        .client_stream(UPLOAD, move |request: Request<Streaming<StringValue>>| {
            e3.bump();
            async move {
                let user = caller(&request);
                let mut messages = request.into_message();
                let mut n = 0;
                while messages.message().await?.is_some() {
                    n += 1;
                }
                Ok(Response::new(StringValue::from(format!(
                    "{user} uploaded {n} messages"
                ))))
            }
        })
        .unary(WHOAMI, move |request: Request<StringValue>| {
            e4.bump();
            async move { Ok(Response::new(StringValue::from(caller(&request)))) }
        })
}

/// A client of the server at `base` speaking `protocol`, sending `token` (if any) and timing
/// its streams into `records`.
pub fn client(
    base: &str,
    protocol: Protocol,
    token: Option<&str>,
    records: Records,
) -> Result<Client<HttpTransport>, Error> {
    let mut config = ClientConfig::new(base)?
        .protocol(protocol)
        .interceptor(ClientTimer(records));
    if let Some(token) = token {
        config = config.try_header("authorization", &format!("Bearer {token}"))?;
    }
    Client::new(config)
}
