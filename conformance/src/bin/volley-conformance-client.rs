//! The client under test for the ConnectRPC conformance runner.
//!
//! Reads size-delimited `ClientCompatRequest`s from stdin until it ends, performs each RPC with
//! Volley's client (concurrently, one task per RPC), and writes a size-delimited
//! `ClientCompatResponse` to stdout as each one finishes. Logs go to stderr only.
//!
//! Cancellation is Rust's: dropping the call's future aborts the HTTP request. The program
//! cancels at the point the request asks for and reports the call as `canceled`, keeping the
//! messages received before that point.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use conformance::{error_to_proto, from_any, headers_to_proto, pb};
use http::HeaderMap;
use tokio::io::AsyncWriteExt as _;
use volley::client::{HttpTransport, HttpVersion};
use volley::compression::Registry;
use volley::{
    CallOptions, Client, ClientConfig, Codec, Error, JsonCodec, ProtoCodec, Protocol, Spec,
};

use pb::__buffa::oneof::client_compat_request::cancel::CancelTiming;
use pb::__buffa::oneof::client_compat_response::Result as Outcome;
use pb::conformance_service as svc;

/// At most this many RPCs run at once.
const CONCURRENCY: usize = 32;

/// When to cancel a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    Never,
    BeforeCloseSend,
    AfterCloseSend(Duration),
    AfterResponses(usize),
}

impl Cancel {
    fn of(request: &pb::ClientCompatRequest) -> Self {
        let Some(cancel) = request.cancel.as_option() else {
            return Cancel::Never;
        };
        match &cancel.cancel_timing {
            Some(CancelTiming::BeforeCloseSend(_)) => Cancel::BeforeCloseSend,
            Some(CancelTiming::AfterCloseSendMs(ms)) => {
                Cancel::AfterCloseSend(Duration::from_millis(u64::from(*ms)))
            }
            Some(CancelTiming::AfterNumResponses(n)) => Cancel::AfterResponses(*n as usize),
            None => Cancel::AfterCloseSend(Duration::ZERO),
        }
    }

    /// For calls whose request side closes as they start (unary, server stream): resolves
    /// when the call should be canceled, counting from now.
    async fn counting_from_now(self) {
        match self {
            Cancel::BeforeCloseSend => {}
            Cancel::AfterCloseSend(after) => tokio::time::sleep(after).await,
            Cancel::Never | Cancel::AfterResponses(_) => std::future::pending().await,
        }
    }
}

fn canceled() -> Error {
    Error::canceled("the client canceled the call")
}

/// What a call produced, before it becomes a `ClientResponseResult`.
#[derive(Default)]
struct Observed {
    headers: HeaderMap,
    trailers: HeaderMap,
    payloads: Vec<pb::ConformancePayload>,
    error: Option<Error>,
}

impl Observed {
    /// A call that failed: the error's metadata stands for the trailers.
    fn failed(error: Error) -> Self {
        Self {
            trailers: error.metadata().clone(),
            error: Some(error),
            ..Default::default()
        }
    }

    fn into_proto(self) -> pb::ClientResponseResult {
        pb::ClientResponseResult {
            response_headers: headers_to_proto(&self.headers),
            payloads: self.payloads,
            error: self.error.as_ref().map(error_to_proto).into(),
            response_trailers: headers_to_proto(&self.trailers),
            ..Default::default()
        }
    }
}

/// Everything a call needs besides its messages.
struct Call {
    client: Client<HttpTransport>,
    options: CallOptions,
    cancel: Cancel,
    delay: Duration,
}

fn codec(request: &pb::ClientCompatRequest) -> anyhow::Result<&'static dyn Codec> {
    Ok(match request.codec.as_known() {
        Some(pb::Codec::CODEC_PROTO) => &ProtoCodec,
        Some(pb::Codec::CODEC_JSON) => &JsonCodec,
        other => bail!("unsupported codec {other:?}"),
    })
}

fn protocol(request: &pb::ClientCompatRequest) -> anyhow::Result<Protocol> {
    Ok(match request.protocol.as_known() {
        Some(pb::Protocol::PROTOCOL_CONNECT) => Protocol::Connect,
        Some(pb::Protocol::PROTOCOL_GRPC) => Protocol::Grpc,
        Some(pb::Protocol::PROTOCOL_GRPC_WEB) => Protocol::GrpcWeb,
        other => bail!("unsupported protocol {other:?}"),
    })
}

fn compression(request: &pb::ClientCompatRequest) -> anyhow::Result<&'static str> {
    Ok(match request.compression.as_known() {
        None | Some(pb::Compression::COMPRESSION_UNSPECIFIED) => "identity",
        Some(pb::Compression::COMPRESSION_IDENTITY) => "identity",
        Some(pb::Compression::COMPRESSION_GZIP) => "gzip",
        Some(pb::Compression::COMPRESSION_BR) => "br",
        Some(pb::Compression::COMPRESSION_ZSTD) => "zstd",
        Some(pb::Compression::COMPRESSION_DEFLATE) => "deflate",
        Some(other) => bail!("unsupported compression {other:?}"),
    })
}

fn http_version(request: &pb::ClientCompatRequest) -> anyhow::Result<HttpVersion> {
    Ok(match request.http_version.as_known() {
        Some(pb::HTTPVersion::HTTP_VERSION_1) => HttpVersion::Http1,
        Some(pb::HTTPVersion::HTTP_VERSION_2) => HttpVersion::Http2,
        Some(pb::HTTPVersion::HTTP_VERSION_3) => HttpVersion::Http3,
        None | Some(pb::HTTPVersion::HTTP_VERSION_UNSPECIFIED) => HttpVersion::Auto,
    })
}

fn call_for(request: &pb::ClientCompatRequest) -> anyhow::Result<Call> {
    let tls = !request.server_tls_cert.is_empty();
    let scheme = if tls { "https" } else { "http" };
    let host = if request.host.contains(':') {
        format!("[{}]", request.host)
    } else {
        request.host.clone()
    };
    let mut config = ClientConfig::new(format!("{scheme}://{host}:{}", request.port))?
        .protocol(protocol(request)?)
        .codec(codec(request)?)
        // Compress every message when asked, however small: the runner checks each request.
        .compression(Registry::default().with_min_size(0))
        .send_compression(compression(request)?)
        .http_version(http_version(request)?)
        .connect_get(request.use_get_http_method, usize::MAX);
    if request.message_receive_limit > 0 {
        config = config.receive_limit(request.message_receive_limit as usize);
    }
    if tls {
        let identity = request
            .client_tls_creds
            .as_option()
            .map(|c| (c.cert.as_slice(), c.key.as_slice()));
        config = config.tls_from_pem(Some(&request.server_tls_cert), identity)?;
    }
    let mut options = CallOptions::new();
    if let Some(ms) = request.timeout_ms {
        options = options.with_timeout(Duration::from_millis(u64::from(ms)));
    }
    conformance::append_proto_headers(&request.request_headers, options.headers_mut());
    Ok(Call {
        client: Client::new(config)?,
        options,
        cancel: Cancel::of(request),
        delay: Duration::from_millis(u64::from(request.request_delay_ms)),
    })
}

/// A request message as the runner sends it, packed in an `Any`.
trait FromAny: Sized {
    fn from_any(any: &buffa_types::google::protobuf::Any) -> anyhow::Result<Self>;
}

/// A response message's payload, as the runner expects it reported.
trait Payload {
    fn payload(self) -> pb::ConformancePayload;
}

/// The message types of one build of the conformance service.
trait Family {
    type Unary: volley::Message + FromAny;
    type UnaryResponse: volley::Message + Payload;
    type IdempotentUnary: volley::Message + FromAny;
    type IdempotentUnaryResponse: volley::Message + Payload;
    type Unimplemented: volley::Message + FromAny;
    type UnimplementedResponse: volley::Message + Payload;
    type ServerStream: volley::Message + FromAny;
    type ServerStreamResponse: volley::Message + Payload;
    type ClientStream: volley::Message + FromAny;
    type ClientStreamResponse: volley::Message + Payload;
    type BidiStream: volley::Message + FromAny;
    type BidiStreamResponse: volley::Message + Payload;
}

macro_rules! family {
    ($family:ident, $pb:path, $from_any:expr, $payload:expr, $empty:expr) => {
        family!(@impls $pb, $from_any, $payload;
            UnaryRequest => UnaryResponse,
            IdempotentUnaryRequest => IdempotentUnaryResponse,
            ServerStreamRequest => ServerStreamResponse,
            ClientStreamRequest => ClientStreamResponse,
            BidiStreamRequest => BidiStreamResponse);
        const _: () = {
            use $pb as types;
            impl FromAny for types::UnimplementedRequest {
                fn from_any(any: &buffa_types::google::protobuf::Any) -> anyhow::Result<Self> {
                    ($from_any)(any, "connectrpc.conformance.v1.UnimplementedRequest")
                }
            }
            impl Payload for types::UnimplementedResponse {
                fn payload(self) -> pb::ConformancePayload {
                    ($empty)(self)
                }
            }
            impl Family for $family {
                type Unary = types::UnaryRequest;
                type UnaryResponse = types::UnaryResponse;
                type IdempotentUnary = types::IdempotentUnaryRequest;
                type IdempotentUnaryResponse = types::IdempotentUnaryResponse;
                type Unimplemented = types::UnimplementedRequest;
                type UnimplementedResponse = types::UnimplementedResponse;
                type ServerStream = types::ServerStreamRequest;
                type ServerStreamResponse = types::ServerStreamResponse;
                type ClientStream = types::ClientStreamRequest;
                type ClientStreamResponse = types::ClientStreamResponse;
                type BidiStream = types::BidiStreamRequest;
                type BidiStreamResponse = types::BidiStreamResponse;
            }
        };
    };
    (@impls $pb:path, $from_any:expr, $payload:expr; $($request:ident => $response:ident),*) => {
        const _: () = {
            use $pb as types;
            $(
                impl FromAny for types::$request {
                    fn from_any(any: &buffa_types::google::protobuf::Any) -> anyhow::Result<Self> {
                        ($from_any)(any, concat!("connectrpc.conformance.v1.", stringify!($request)))
                    }
                }
                impl Payload for types::$response {
                    fn payload(self) -> pb::ConformancePayload {
                        ($payload)(self.payload)
                    }
                }
            )*
        };
    };
}

/// The buffa messages.
struct Buffa;

family!(
    Buffa,
    conformance::pb,
    |any, _name: &str| from_any(any),
    |payload: buffa::MessageField<pb::ConformancePayload, _>| payload
        .into_option()
        .unwrap_or_default(),
    |_| pb::ConformancePayload::default()
);

/// The prost messages (`MessageLibrary::Prost`); payloads are reported through their binary
/// encoding, which both libraries share.
#[cfg(feature = "prost")]
struct Prost;

#[cfg(feature = "prost")]
family!(
    Prost,
    conformance::prost_pb,
    |any: &buffa_types::google::protobuf::Any, name: &str| -> anyhow::Result<_> {
        let got = any.type_url.rsplit('/').next().unwrap_or_default();
        anyhow::ensure!(
            got == name,
            "expected a {name} message, got {:?}",
            any.type_url
        );
        Ok(prost::Message::decode(&any.value[..])?)
    },
    |payload: Option<conformance::prost_pb::ConformancePayload>| {
        use buffa::Message as _;
        let bytes = payload
            .map(|p| prost::Message::encode_to_vec(&p))
            .unwrap_or_default();
        pb::ConformancePayload::decode_from_slice(&bytes).unwrap_or_default()
    },
    |_| pb::ConformancePayload::default()
);

/// The request messages, each checked to be `M`.
fn messages<M: FromAny>(request: &pb::ClientCompatRequest) -> anyhow::Result<Vec<M>> {
    request.request_messages.iter().map(M::from_any).collect()
}

fn single<M: FromAny>(request: &pb::ClientCompatRequest) -> anyhow::Result<M> {
    let mut all = messages::<M>(request)?;
    anyhow::ensure!(
        all.len() == 1,
        "this call takes exactly one request message, got {}",
        all.len()
    );
    Ok(all.remove(0))
}

/// Races a call against its cancellation.
async fn or_cancel<T>(
    call: impl Future<Output = Result<T, Error>>,
    cancel: impl Future<Output = ()>,
) -> Result<T, Error> {
    tokio::select! {
        result = call => result,
        () = cancel => Err(canceled()),
    }
}

async fn unary<Req, Res>(call: Call, spec: Spec, request: Req) -> Observed
where
    Req: volley::Message,
    Res: volley::Message + Payload,
{
    let rpc = call.client.unary::<Req, Res>(spec, request, call.options);
    match or_cancel(rpc, call.cancel.counting_from_now()).await {
        Ok(response) => {
            let (message, headers, trailers) = response.into_parts();
            Observed {
                headers,
                trailers,
                payloads: vec![message.payload()],
                error: None,
            }
        }
        Err(err) => Observed::failed(err),
    }
}

async fn client_stream<Req, Res>(call: Call, requests: Vec<Req>) -> Observed
where
    Req: volley::Message,
    Res: volley::Message + Payload,
{
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    let hold_open = call.cancel == Cancel::BeforeCloseSend;
    let delay = call.delay;
    // The request stream: each message after the delay; at the end it reports "close send"
    // (and, to cancel before closing, stays open).
    let stream = futures_util::stream::unfold(
        (requests.into_iter(), Some(closed_tx)),
        move |(mut rest, mut closed)| async move {
            if let Some(message) = rest.next() {
                tokio::time::sleep(delay).await;
                return Some((message, (rest, closed)));
            }
            if let Some(tx) = closed.take() {
                let _ = tx.send(());
            }
            if hold_open {
                std::future::pending::<()>().await;
            }
            None
        },
    );
    let cancel = async move {
        let after = match call.cancel {
            Cancel::BeforeCloseSend => Duration::ZERO,
            Cancel::AfterCloseSend(after) => after,
            Cancel::Never | Cancel::AfterResponses(_) => return std::future::pending().await,
        };
        if closed_rx.await.is_err() {
            return std::future::pending().await;
        }
        tokio::time::sleep(after).await;
    };
    let rpc = call
        .client
        .client_stream::<_, Res, _>(svc::CLIENT_STREAM, stream, call.options);
    match or_cancel(rpc, cancel).await {
        Ok(response) => {
            let (message, headers, trailers) = response.into_parts();
            Observed {
                headers,
                trailers,
                payloads: vec![message.payload()],
                error: None,
            }
        }
        Err(err) => Observed::failed(err),
    }
}

async fn server_stream<Req, Res>(call: Call, request: Req) -> Observed
where
    Req: volley::Message,
    Res: volley::Message + Payload,
{
    let cancel = call.cancel.counting_from_now();
    tokio::pin!(cancel);
    let rpc = call
        .client
        .server_stream::<_, Res>(svc::SERVER_STREAM, request, call.options);
    let response = match or_cancel(rpc, &mut cancel).await {
        Ok(r) => r,
        Err(err) => return Observed::failed(err),
    };
    let (mut stream, headers, _) = response.into_parts();
    let mut observed = Observed {
        headers,
        ..Default::default()
    };
    loop {
        if let Cancel::AfterResponses(n) = call.cancel
            && observed.payloads.len() >= n
        {
            observed.error = Some(canceled());
            break;
        }
        match or_cancel(stream.message(), &mut cancel).await {
            Ok(Some(message)) => observed.payloads.push(message.payload()),
            Ok(None) => {
                observed.trailers = stream.trailers();
                break;
            }
            Err(err) => {
                observed.trailers = err.metadata().clone();
                observed.error = Some(err);
                break;
            }
        }
    }
    observed
}

async fn bidi_stream<Req, Res>(call: Call, requests: Vec<Req>, full_duplex: bool) -> Observed
where
    Req: volley::Message,
    Res: volley::Message + Payload,
{
    let mut observed = Observed::default();
    let mut bidi = match call
        .client
        .bidi_stream::<Req, Res>(svc::BIDI_STREAM, call.options)
        .await
    {
        Ok(b) => b,
        Err(err) => return Observed::failed(err),
    };
    let cancel_after = |observed: &Observed| match call.cancel {
        Cancel::AfterResponses(n) => observed.payloads.len() >= n,
        _ => false,
    };
    let mut failed = false;
    for message in requests {
        tokio::time::sleep(call.delay).await;
        if let Err(err) = bidi.send(message).await {
            // The call is over; the receive side says why.
            let err = match bidi.message().await {
                Err(e) => e,
                Ok(_) => err,
            };
            observed.error = Some(err);
            failed = true;
            break;
        }
        if full_duplex {
            match bidi.message().await {
                Ok(Some(m)) => observed.payloads.push(m.payload()),
                Ok(None) => break,
                Err(err) => {
                    observed.error = Some(err);
                    failed = true;
                    break;
                }
            }
            if cancel_after(&observed) {
                observed.error = Some(canceled());
                failed = true;
                break;
            }
        }
    }
    if !failed {
        if call.cancel == Cancel::BeforeCloseSend {
            observed.error = Some(canceled());
        } else {
            bidi.close_send();
            let cancel = call.cancel.counting_from_now();
            tokio::pin!(cancel);
            loop {
                if cancel_after(&observed) {
                    observed.error = Some(canceled());
                    break;
                }
                match or_cancel(bidi.message(), &mut cancel).await {
                    Ok(Some(m)) => observed.payloads.push(m.payload()),
                    Ok(None) => {
                        observed.trailers = bidi.trailers();
                        break;
                    }
                    Err(err) => {
                        observed.error = Some(err);
                        break;
                    }
                }
            }
        }
    }
    // Headers come with the first response; a call canceled before any response has none
    // to wait for (and a half-duplex server has not even answered yet).
    let canceled_early = observed.payloads.is_empty()
        && observed
            .error
            .as_ref()
            .is_some_and(|e| e.is_canceled() && !e.is_wire());
    if !canceled_early && let Ok(headers) = bidi.headers().await {
        observed.headers = headers;
    }
    if let Some(err) = &observed.error {
        observed.trailers = err.metadata().clone();
    }
    observed
}

async fn run<F: Family>(
    request: pb::ClientCompatRequest,
) -> anyhow::Result<pb::ClientResponseResult> {
    anyhow::ensure!(
        request.raw_request.is_unset(),
        "raw requests are for the reference client only"
    );
    let service = request.service.as_deref().unwrap_or(svc::SERVICE_NAME);
    anyhow::ensure!(service == svc::SERVICE_NAME, "unknown service {service}");
    let call = call_for(&request)?;
    let method = request.method.as_deref().unwrap_or_default();
    let observed = match method {
        "Unary" => {
            let message = single::<F::Unary>(&request)?;
            unary::<_, F::UnaryResponse>(call, svc::UNARY, message).await
        }
        "IdempotentUnary" => {
            let message = single::<F::IdempotentUnary>(&request)?;
            unary::<_, F::IdempotentUnaryResponse>(call, svc::IDEMPOTENT_UNARY, message).await
        }
        "Unimplemented" => {
            let message = single::<F::Unimplemented>(&request)?;
            unary::<_, F::UnimplementedResponse>(call, svc::UNIMPLEMENTED, message).await
        }
        "ServerStream" => {
            let message = single::<F::ServerStream>(&request)?;
            server_stream::<_, F::ServerStreamResponse>(call, message).await
        }
        "ClientStream" => {
            let messages = messages::<F::ClientStream>(&request)?;
            client_stream::<_, F::ClientStreamResponse>(call, messages).await
        }
        "BidiStream" => {
            let full_duplex = request.stream_type.as_known()
                == Some(pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM);
            let messages = messages::<F::BidiStream>(&request)?;
            bidi_stream::<_, F::BidiStreamResponse>(call, messages, full_duplex).await
        }
        other => bail!("unknown method {other:?}"),
    };
    Ok(observed.into_proto())
}

/// Which message library the calls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "each program constructs one variant")]
pub(crate) enum Library {
    Buffa,
    #[cfg(feature = "prost")]
    Prost,
}

#[allow(dead_code, reason = "the prost program calls run_all instead")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run_all(Library::Buffa).await
}

/// Serves the runner's requests from stdin, calling with `library`'s messages.
pub(crate) async fn run_all(library: Library) -> anyhow::Result<()> {
    conformance::install_type_registry();
    let stdout = Arc::new(tokio::sync::Mutex::new(tokio::io::stdout()));
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut stdin = tokio::io::stdin();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(request) =
        conformance::read_delimited::<pb::ClientCompatRequest>(&mut stdin).await?
    {
        let permit = permits.clone().acquire_owned().await?;
        let stdout = stdout.clone();
        tasks.spawn(async move {
            let test_name = request.test_name.clone();
            let outcome = match library {
                Library::Buffa => run::<Buffa>(request).await,
                #[cfg(feature = "prost")]
                Library::Prost => run::<Prost>(request).await,
            };
            let result = match outcome {
                Ok(response) => Outcome::Response(Box::new(response)),
                Err(err) => Outcome::Error(Box::new(pb::ClientErrorResult {
                    message: format!("{err:#}"),
                    ..Default::default()
                })),
            };
            drop(permit);
            let response = pb::ClientCompatResponse {
                test_name,
                result: Some(result),
                ..Default::default()
            };
            let bytes = conformance::encode_delimited(&response);
            let mut out = stdout.lock().await;
            if let Err(e) = async {
                out.write_all(&bytes).await?;
                out.flush().await
            }
            .await
            {
                eprintln!("volley-conformance-client: writing a result failed: {e}");
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a call task panicked")?;
    }
    Ok(())
}
