//! The server under test for the ConnectRPC conformance runner.
//!
//! Reads one size-delimited `ServerCompatRequest` from stdin, starts a Volley server for
//! `ConformanceService` on `127.0.0.1:<ephemeral>` (HTTP/1.1 and HTTP/2 on one port, with TLS
//! and client certificates when asked, and HTTP/3 over QUIC on the same port number when the
//! runner asks for `HTTP_VERSION_3`), writes a size-delimited `ServerCompatResponse` to
//! stdout, and serves until it is terminated. Logs go to stderr only.
//!
//! With the `views` feature every handler takes a zero-copy view of its request
//! (`volley::View`) instead of the owned message: requests are echoed from the received bytes
//! and only the response definitions are copied out.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use buffa_types::google::protobuf::Any;
use conformance::{append_proto_headers, error_from_proto, headers_to_proto, pb, to_any};
use futures_util::Stream;
use http::{HeaderMap, Uri};
use volley::server::{Server, TlsConfig};
use volley::{Error, ErrorDetail, Request, Response, ResponseStream, Router, Streaming};

/// A request message as the handlers receive it: owned.
#[cfg(not(feature = "views"))]
type In<M> = M;
/// A request message as the handlers receive it: a zero-copy view of the request.
#[cfg(feature = "views")]
type In<M> = volley::View<M>;

/// What the handlers read from a received request message.
trait Received {
    /// The type of the message's `response_definition`.
    type Definition;
    /// The message packed in an `Any`, as the runner expects requests echoed.
    fn packed(&self) -> Any;
    /// The message's response definition, copied out.
    fn definition(&self) -> Result<Option<Self::Definition>, Error>;
}

macro_rules! received {
    ($($message:ident => $definition:ident),* $(,)?) => {$(
        #[cfg(not(feature = "views"))]
        impl Received for pb::$message {
            type Definition = pb::$definition;
            fn packed(&self) -> Any {
                to_any(self)
            }
            fn definition(&self) -> Result<Option<pb::$definition>, Error> {
                Ok(self.response_definition.as_option().cloned())
            }
        }

        #[cfg(feature = "views")]
        impl Received for volley::View<pb::$message> {
            type Definition = pb::$definition;
            fn packed(&self) -> Any {
                // The received encoding itself: nothing to re-encode.
                Any {
                    type_url: <pb::$message as buffa::MessageName>::TYPE_URL.into(),
                    value: self.bytes().to_vec().into(),
                    ..Default::default()
                }
            }
            fn definition(&self) -> Result<Option<pb::$definition>, Error> {
                use buffa::MessageView as _;
                self.view()
                    .response_definition
                    .as_option()
                    .map(|d| d.to_owned_message())
                    .transpose()
                    .map_err(|e| Error::from_source(volley::Code::Internal, e))
            }
        }
    )*};
}

received! {
    UnaryRequest => UnaryResponseDefinition,
    IdempotentUnaryRequest => UnaryResponseDefinition,
    ClientStreamRequest => UnaryResponseDefinition,
    ServerStreamRequest => StreamResponseDefinition,
    BidiStreamRequest => StreamResponseDefinition,
}

#[cfg(not(feature = "views"))]
fn full_duplex(message: &pb::BidiStreamRequest) -> bool {
    message.full_duplex
}

#[cfg(feature = "views")]
fn full_duplex(message: &volley::View<pb::BidiStreamRequest>) -> bool {
    message.view().full_duplex
}

/// What every response echoes about its request: headers, deadline, and GET query.
struct Echo {
    headers: Vec<pb::Header>,
    deadline: Option<Instant>,
    query: Option<pb::conformance_payload::ConnectGetInfo>,
}

impl Echo {
    fn new<T>(request: &Request<T>) -> Self {
        let query = request
            .extensions()
            .get::<Uri>()
            .and_then(Uri::query)
            .map(parse_query)
            .filter(|params| !params.is_empty())
            .map(|query_params| pb::conformance_payload::ConnectGetInfo {
                query_params,
                ..Default::default()
            });
        Self {
            headers: headers_to_proto(request.headers()),
            deadline: request.deadline(),
            query,
        }
    }

    /// The full request info, with the time left before the deadline as it is now.
    fn info(&self, requests: Vec<Any>) -> pb::conformance_payload::RequestInfo {
        pb::conformance_payload::RequestInfo {
            request_headers: self.headers.clone(),
            timeout_ms: self.deadline.map(|d| {
                i64::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(i64::MAX)
            }),
            requests,
            connect_get_info: self.query.clone().into(),
            ..Default::default()
        }
    }
}

/// The query parameters as conformance `Header`s.
fn parse_query(query: &str) -> Vec<pb::Header> {
    conformance::parse_query_pairs(query)
        .into_iter()
        .map(|(name, value)| pb::Header {
            name,
            value,
            ..Default::default()
        })
        .collect()
}

/// The error a response definition asks for, with the request info appended to its details.
fn error_with_info(def: &pb::Error, info: Option<pb::conformance_payload::RequestInfo>) -> Error {
    let mut err = error_from_proto(def);
    if let Some(info) = info {
        err.push_detail(ErrorDetail::from_any(&to_any(&info)));
    }
    err
}

fn metadata(headers: &[pb::Header]) -> HeaderMap {
    let mut map = HeaderMap::new();
    append_proto_headers(headers, &mut map);
    map
}

fn delay(ms: u32) -> impl Future<Output = ()> {
    tokio::time::sleep(Duration::from_millis(u64::from(ms)))
}

/// Runs `produce` on its own task and streams what it sends. The task stops when the
/// response is dropped (its next send fails).
fn spawn_stream<T, F, Fut>(produce: F) -> ResponseStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Error>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(produce(tx));
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn empty_stream<T: Send + 'static>() -> ResponseStream<T> {
    Box::pin(futures_util::stream::empty())
}

/// Answers a unary-shaped call (Unary, IdempotentUnary, ClientStream) from its definition.
async fn unary_response(
    echo: &Echo,
    def: Option<&pb::UnaryResponseDefinition>,
    requests: Vec<Any>,
) -> Result<Response<pb::ConformancePayload>, Error> {
    use pb::__buffa::oneof::unary_response_definition::Response as Def;
    let info = echo.info(requests);
    let Some(def) = def else {
        return Ok(Response::new(pb::ConformancePayload {
            request_info: info.into(),
            ..Default::default()
        }));
    };
    let data = match &def.response {
        Some(Def::Error(e)) => {
            let mut err = error_with_info(e, Some(info));
            append_proto_headers(&def.response_headers, err.headers_mut());
            append_proto_headers(&def.response_trailers, err.metadata_mut());
            return Err(err);
        }
        Some(Def::ResponseData(data)) => data.clone(),
        None => Vec::new(),
    };
    let payload = pb::ConformancePayload {
        data,
        request_info: info.into(),
        ..Default::default()
    };
    let mut response = Response::new(payload);
    append_proto_headers(&def.response_headers, response.headers_mut());
    append_proto_headers(&def.response_trailers, response.trailers_mut());
    delay(def.response_delay_ms).await;
    Ok(response)
}

/// Reads every remaining message of a request stream, packed as `Any`s.
async fn read_rest<M>(stream: &mut Streaming<M>, into: &mut Vec<Any>) -> Result<Vec<M>, Error>
where
    M: volley::Message + Received,
{
    let mut out = Vec::new();
    while let Some(message) = stream.message().await? {
        into.push(message.packed());
        out.push(message);
    }
    Ok(out)
}

struct Conformance;

impl pb::ConformanceService for Conformance {
    async fn unary(
        &self,
        request: Request<In<pb::UnaryRequest>>,
    ) -> Result<Response<pb::UnaryResponse>, Error> {
        let echo = Echo::new(&request);
        let message = request.into_message();
        let requests = vec![message.packed()];
        let response = unary_response(&echo, message.definition()?.as_ref(), requests).await?;
        Ok(response.map(|payload| pb::UnaryResponse {
            payload: payload.into(),
            ..Default::default()
        }))
    }

    async fn idempotent_unary(
        &self,
        request: Request<In<pb::IdempotentUnaryRequest>>,
    ) -> Result<Response<pb::IdempotentUnaryResponse>, Error> {
        let echo = Echo::new(&request);
        let message = request.into_message();
        let requests = vec![message.packed()];
        let response = unary_response(&echo, message.definition()?.as_ref(), requests).await?;
        Ok(response.map(|payload| pb::IdempotentUnaryResponse {
            payload: payload.into(),
            ..Default::default()
        }))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<In<pb::ClientStreamRequest>>>,
    ) -> Result<Response<pb::ClientStreamResponse>, Error> {
        let echo = Echo::new(&request);
        let mut stream = request.into_message();
        let mut requests = Vec::new();
        let messages = read_rest(&mut stream, &mut requests).await?;
        let def = messages
            .first()
            .map(Received::definition)
            .transpose()?
            .flatten();
        let response = unary_response(&echo, def.as_ref(), requests).await?;
        Ok(response.map(|payload| pb::ClientStreamResponse {
            payload: payload.into(),
            ..Default::default()
        }))
    }

    async fn server_stream(
        &self,
        request: Request<In<pb::ServerStreamRequest>>,
    ) -> Result<Response<ResponseStream<pb::ServerStreamResponse>>, Error> {
        let echo = Echo::new(&request);
        let message = request.into_message();
        let request_any = message.packed();
        let Some(def) = message.definition()? else {
            return Ok(Response::new(empty_stream()));
        };
        let headers = metadata(&def.response_headers);
        let trailers = metadata(&def.response_trailers);
        let stream = spawn_stream(move |tx| async move {
            let mut sent = 0;
            for data in &def.response_data {
                let request_info = (sent == 0).then(|| echo.info(vec![request_any.clone()]));
                let payload = pb::ConformancePayload {
                    data: data.clone(),
                    request_info: request_info.into(),
                    ..Default::default()
                };
                delay(def.response_delay_ms).await;
                let response = pb::ServerStreamResponse {
                    payload: payload.into(),
                    ..Default::default()
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
                sent += 1;
            }
            if let Some(e) = def.error.as_option() {
                let info = (sent == 0).then(|| echo.info(vec![request_any]));
                let _ = tx.send(Err(error_with_info(e, info))).await;
            }
        });
        Ok(with_metadata(stream, headers, trailers))
    }

    async fn bidi_stream(
        &self,
        request: Request<Streaming<In<pb::BidiStreamRequest>>>,
    ) -> Result<Response<ResponseStream<pb::BidiStreamResponse>>, Error> {
        let echo = Echo::new(&request);
        let mut stream = request.into_message();
        let mut requests = Vec::new();
        let Some(first) = stream.message().await? else {
            return Ok(Response::new(empty_stream()));
        };
        requests.push(first.packed());
        let full_duplex = full_duplex(&first);
        let def = first.definition()?.unwrap_or_default();
        let headers = metadata(&def.response_headers);
        let trailers = metadata(&def.response_trailers);
        if !full_duplex {
            // Half duplex: the whole upload comes first, then every response.
            read_rest(&mut stream, &mut requests).await?;
        }
        let responses = spawn_stream(move |tx| async move {
            let send = |data: &Vec<u8>, info: Option<pb::conformance_payload::RequestInfo>| {
                let payload = pb::ConformancePayload {
                    data: data.clone(),
                    request_info: info.into(),
                    ..Default::default()
                };
                tx.send(Ok(pb::BidiStreamResponse {
                    payload: payload.into(),
                    ..Default::default()
                }))
            };
            let mut sent = 0;
            if full_duplex {
                // One response per request, each echoing the requests since the last one.
                while let Some(data) = def.response_data.get(sent) {
                    let info = if sent == 0 {
                        echo.info(std::mem::take(&mut requests))
                    } else {
                        pb::conformance_payload::RequestInfo {
                            requests: std::mem::take(&mut requests),
                            ..Default::default()
                        }
                    };
                    delay(def.response_delay_ms).await;
                    if send(data, Some(info)).await.is_err() {
                        return;
                    }
                    sent += 1;
                    match stream.message().await {
                        Ok(Some(next)) => requests.push(next.packed()),
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
            }
            while let Some(data) = def.response_data.get(sent) {
                let info = (sent == 0).then(|| echo.info(std::mem::take(&mut requests)));
                delay(def.response_delay_ms).await;
                if send(data, info).await.is_err() {
                    return;
                }
                sent += 1;
            }
            if let Some(e) = def.error.as_option() {
                let info = (sent == 0).then(|| echo.info(requests));
                let _ = tx.send(Err(error_with_info(e, info))).await;
            }
        });
        Ok(with_metadata(responses, headers, trailers))
    }
}

fn with_metadata<S>(stream: S, headers: HeaderMap, trailers: HeaderMap) -> Response<S>
where
    S: Stream,
{
    let mut response = Response::new(stream);
    *response.headers_mut() = headers;
    *response.trailers_mut() = trailers;
    response
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    conformance::install_type_registry();
    let request: pb::ServerCompatRequest = conformance::read_delimited(&mut tokio::io::stdin())
        .await?
        .context("stdin ended before a ServerCompatRequest")?;
    let mut router = pb::register_conformance_service(Router::new(), Conformance);
    if request.message_receive_limit > 0 {
        router = router.receive_limit(request.message_receive_limit as usize);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut server = Server::from_listener(listener).grace_period(Duration::from_millis(100));
    let mut pem_cert = Vec::new();
    if request.use_tls {
        let (cert, key) = match request.server_creds.as_option() {
            Some(creds) if !creds.cert.is_empty() => (creds.cert.clone(), creds.key.clone()),
            _ => conformance::self_signed()?,
        };
        let tls = if request.client_tls_cert.is_empty() {
            TlsConfig::from_pem(&cert, &key)?
        } else {
            TlsConfig::from_pem_with_client_auth(&cert, &key, &request.client_tls_cert, true)?
        };
        server = server.tls(tls);
        pem_cert = cert;
        if request.http_version.as_known() == Some(pb::HTTPVersion::HTTP_VERSION_3) {
            // QUIC on the same port number as TCP: the runner dials UDP at host:port.
            server = server.http3(true);
        }
    }
    let response = pb::ServerCompatResponse {
        host: addr.ip().to_string(),
        port: u32::from(addr.port()),
        pem_cert,
        ..Default::default()
    };
    conformance::write_delimited(&mut tokio::io::stdout(), &response).await?;
    eprintln!("volley-conformance-server: listening on {addr}");
    // The runner closes stdin at once and ends the process with SIGTERM: stop gracefully.
    server
        .serve_with_shutdown(router, volley::server::shutdown_signal())
        .await?;
    Ok(())
}
