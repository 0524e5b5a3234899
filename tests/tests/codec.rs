//! A user codec end to end, over real sockets: a JSON variant (`vjson`) that writes proto
//! field names and every unpopulated field, registered on a `Router` and chosen by a
//! `Client`, negotiated by content type on Connect unary, Connect streaming, Connect GET,
//! gRPC and gRPC-Web; codec names a router does not have are refused on each protocol.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};
use volley::codec::{Codec, JsonCodec, MessageRef, MessageSlot};
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Protocol, Request, Response,
    ResponseStream, Router, Spec, StreamType,
};
use volley_tests::proto::volley::bench::v1::{IngestRequest, Level, LogRecord};
use volley_tests::raw::{Http, RawClient, envelope, parse_envelopes};

const INGEST: Spec = Spec::new(
    "/volley.bench.v1.IngestService/Ingest",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);
const REPLAY: Spec = Spec::new(
    "/volley.bench.v1.IngestService/Replay",
    StreamType::ServerStream,
    Idempotency::Unknown,
);

/// One field of a message the codec knows: proto name, JSON name, the value written when it
/// is unpopulated, and the message type of its value (or elements) when it has one we know.
struct Field {
    proto: &'static str,
    json: &'static str,
    unpopulated: fn() -> Value,
    message: Option<&'static str>,
}

const LOG_RECORD: &[Field] = &[
    Field {
        proto: "time",
        json: "time",
        unpopulated: || Value::Null,
        message: None,
    },
    Field {
        proto: "level",
        json: "level",
        unpopulated: || json!("LEVEL_UNSPECIFIED"),
        message: None,
    },
    Field {
        proto: "message",
        json: "message",
        unpopulated: || json!(""),
        message: None,
    },
    Field {
        proto: "attributes",
        json: "attributes",
        unpopulated: || json!({}),
        message: None,
    },
    Field {
        proto: "service",
        json: "service",
        unpopulated: || json!(""),
        message: None,
    },
    Field {
        proto: "trace_id",
        json: "traceId",
        unpopulated: || json!(""),
        message: None,
    },
];

const INGEST_REQUEST: &[Field] = &[Field {
    proto: "records",
    json: "records",
    unpopulated: || json!([]),
    message: Some("volley.bench.v1.LogRecord"),
}];

fn schema(full_name: &str) -> Option<&'static [Field]> {
    match full_name {
        "volley.bench.v1.LogRecord" => Some(LOG_RECORD),
        "volley.bench.v1.IngestRequest" => Some(INGEST_REQUEST),
        _ => None,
    }
}

/// Applies `f` to a message value, or to each element of a repeated one.
fn each_message(value: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(f),
        Value::Object(_) => f(value),
        _ => {}
    }
}

/// Canonical JSON -> proto field names, with every unpopulated field written.
fn to_verbose(value: &mut Value, full_name: &str) {
    let (Some(fields), Value::Object(object)) = (schema(full_name), value) else {
        return;
    };
    let mut out = Map::new();
    for field in fields {
        let mut v = object
            .remove(field.json)
            .or_else(|| object.remove(field.proto))
            .unwrap_or_else(field.unpopulated);
        if let Some(inner) = field.message {
            each_message(&mut v, &mut |m| to_verbose(m, inner));
        }
        out.insert(field.proto.to_owned(), v);
    }
    // Anything we do not know stays as it was.
    out.append(object);
    *object = out;
}

/// Proto field names -> canonical JSON names; `null` is an unpopulated field, left out.
fn to_canonical(value: &mut Value, full_name: &str) {
    let (Some(fields), Value::Object(object)) = (schema(full_name), value) else {
        return;
    };
    for field in fields {
        let Some(mut v) = object
            .remove(field.proto)
            .or_else(|| object.remove(field.json))
        else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        if let Some(inner) = field.message {
            each_message(&mut v, &mut |m| to_canonical(m, inner));
        }
        object.insert(field.json.to_owned(), v);
    }
}

/// The user codec: proto3 JSON with proto field names and unpopulated fields, for the
/// message types it has a schema for (plain canonical JSON for the others).
struct VerboseJson;

impl Codec for VerboseJson {
    fn name(&self) -> &str {
        "vjson"
    }

    fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
        let mut canonical = BytesMut::new();
        message.encode_json(&mut canonical)?;
        let mut value: Value =
            serde_json::from_slice(&canonical).map_err(|e| Error::internal(e.to_string()))?;
        to_verbose(&mut value, message.full_name());
        let bytes = serde_json::to_vec(&value).map_err(|e| Error::internal(e.to_string()))?;
        buf.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
        if bytes.is_empty() {
            return slot.decode_json(b"{}");
        }
        let mut value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid_argument(format!("vjson: {e}")))?;
        to_canonical(&mut value, slot.full_name());
        let canonical = serde_json::to_vec(&value).map_err(|e| Error::internal(e.to_string()))?;
        slot.decode_json(&canonical)
    }
}

fn record(message: &str, trace_id: &[u8]) -> LogRecord {
    LogRecord {
        message: message.into(),
        trace_id: trace_id.to_vec(),
        ..Default::default()
    }
}

fn routes(router: Router) -> Router {
    router
        .unary(INGEST, |req: Request<IngestRequest>| async move {
            let records = &req.message().records;
            let first = records.first().cloned().unwrap_or_default();
            // Only `message` and `trace_id` are populated in the answer.
            Ok(Response::new(record(
                &format!("{} records, first {:?}", records.len(), first.message),
                &first.trace_id,
            )))
        })
        .server_stream(REPLAY, |req: Request<IngestRequest>| async move {
            let records = req.into_message().records;
            let out = futures_util::stream::iter(records.into_iter().map(Ok));
            Ok(Response::new(Box::pin(out) as ResponseStream<LogRecord>))
        })
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

fn client(addr: SocketAddr, protocol: Protocol) -> Client<volley::client::HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .codec(VerboseJson);
    Client::new(config).unwrap()
}

fn batch() -> IngestRequest {
    IngestRequest {
        records: vec![
            record("one", &[1, 2, 3]),
            LogRecord {
                level: Level::LEVEL_WARN.into(),
                service: "billing".into(),
                ..record("two", &[])
            },
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn the_typed_client_speaks_the_user_codec_on_every_protocol() {
    let addr = serve(routes(Router::new().codec(VerboseJson))).await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let c = client(addr, protocol);
        let res: Response<LogRecord> = c
            .unary(INGEST, batch(), CallOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}: {e:?}"));
        assert_eq!(
            res.message().message,
            "2 records, first \"one\"",
            "{protocol:?}"
        );
        assert_eq!(res.message().trace_id, [1, 2, 3], "{protocol:?}");

        let stream = c
            .server_stream::<_, LogRecord>(REPLAY, batch(), CallOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}: {e:?}"))
            .into_message();
        let got: Vec<LogRecord> = stream.map(|m| m.unwrap()).collect().await;
        assert_eq!(got, batch().records, "{protocol:?}");
    }
}

/// The verbose form of the unary answer to [`batch`].
fn expected_answer() -> Value {
    json!({
        "time": null,
        "level": "LEVEL_UNSPECIFIED",
        "message": "2 records, first \"one\"",
        "attributes": {},
        "service": "",
        "trace_id": "AQID",
    })
}

/// The request, as the codec writes it, with proto names on the wire.
fn verbose_batch() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "records": [
            {"message": "one", "trace_id": "AQID"},
            {"message": "two", "level": "LEVEL_WARN", "service": "billing"},
        ]
    }))
    .unwrap()
}

#[tokio::test]
async fn the_wire_carries_proto_names_and_unpopulated_fields() -> anyhow::Result<()> {
    let addr = serve(routes(Router::new().codec(VerboseJson))).await;
    let raw = RawClient::new(addr);

    // Connect unary.
    let reply = raw
        .post(
            Http::H1,
            INGEST.procedure,
            &[("content-type", "application/vjson")],
            verbose_batch(),
        )
        .await?;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/vjson"));
    assert_eq!(reply.json()?, expected_answer());

    // Connect GET, `encoding=vjson`.
    let query = format!(
        "{}?connect=v1&encoding=vjson&message={}",
        INGEST.procedure,
        percent_encoding::utf8_percent_encode(
            std::str::from_utf8(&verbose_batch())?,
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let reply = raw.get(Http::H1, &query, &[]).await?;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/vjson"));
    assert_eq!(reply.json()?, expected_answer());

    // Connect streaming, gRPC and gRPC-Web: one enveloped request, enveloped records back.
    for (content_type, http) in [
        ("application/connect+vjson", Http::H1),
        ("application/grpc+vjson", Http::H2),
        ("application/grpc-web+vjson", Http::H1),
    ] {
        let reply = raw
            .post(
                http,
                REPLAY.procedure,
                &[("content-type", content_type)],
                envelope(0, &verbose_batch()),
            )
            .await?;
        assert_eq!(reply.status, 200, "{content_type}");
        assert_eq!(reply.header("content-type"), Some(content_type));
        let frames = parse_envelopes(&reply.body)?;
        let messages: Vec<Value> = frames
            .iter()
            .filter(|f| f.flags & 0x80 == 0 && f.flags & 0x02 == 0)
            .map(|f| serde_json::from_slice(&f.data))
            .collect::<Result<_, _>>()?;
        assert_eq!(messages.len(), 2, "{content_type}");
        assert_eq!(messages[0]["trace_id"], "AQID", "{content_type}");
        assert_eq!(messages[0]["attributes"], json!({}), "{content_type}");
        assert_eq!(messages[1]["trace_id"], "", "{content_type}");
        assert_eq!(messages[1]["level"], "LEVEL_WARN", "{content_type}");
        assert!(messages[0].get("traceId").is_none(), "{content_type}");
        if content_type == "application/connect+vjson" {
            // The end-of-stream message stays JSON whatever the codec.
            let end = frames.last().unwrap();
            assert_eq!(end.flags, 0x02);
            assert_eq!(serde_json::from_slice::<Value>(&end.data)?, json!({}));
        }
    }

    // Errors in Connect unary stay canonical JSON error bodies.
    let reply = raw
        .post(
            Http::H1,
            INGEST.procedure,
            &[("content-type", "application/vjson")],
            &b"{not json"[..],
        )
        .await?;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()?["code"], "invalid_argument");
    Ok(())
}

#[tokio::test]
async fn codec_names_the_router_does_not_have_are_refused() -> anyhow::Result<()> {
    // A router without the codec: the user codec's content types are unknown.
    let addr = serve(routes(Router::new())).await;
    let raw = RawClient::new(addr);
    for (path, content_type, http) in [
        (INGEST.procedure, "application/vjson", Http::H1),
        (REPLAY.procedure, "application/connect+vjson", Http::H1),
        (REPLAY.procedure, "application/grpc+vjson", Http::H2),
        (REPLAY.procedure, "application/grpc-web+vjson", Http::H1),
        (
            REPLAY.procedure,
            "application/grpc-web-text+vjson",
            Http::H1,
        ),
    ] {
        let body = if path == INGEST.procedure {
            verbose_batch()
        } else {
            envelope(0, &verbose_batch())
        };
        let reply = raw
            .post(http, path, &[("content-type", content_type)], body)
            .await?;
        assert_eq!(reply.status, 415, "{content_type}");
        let accepted = reply.header("accept-post").unwrap_or_default();
        assert!(accepted.contains("json"), "{content_type}: {accepted}");
        assert!(!accepted.contains("vjson"), "{content_type}: {accepted}");
    }
    let reply = raw
        .get(
            Http::H1,
            &format!(
                "{}?connect=v1&encoding=vjson&message=%7B%7D",
                INGEST.procedure
            ),
            &[],
        )
        .await?;
    assert_eq!(reply.status, 415);

    // The client sees the refusal as the protocol maps HTTP 415: `unknown`.
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let err = client(addr, protocol)
            .unary::<_, LogRecord>(INGEST, batch(), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unknown, "{protocol:?}: {err:?}");
        let err = client(addr, protocol)
            .server_stream::<_, LogRecord>(REPLAY, batch(), CallOptions::new())
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.code(), Code::Unknown, "{protocol:?}: {err:?}");
    }

    // With the codec registered, the 415 for other names lists it.
    let addr = serve(routes(Router::new().codec(VerboseJson))).await;
    let reply = RawClient::new(addr)
        .post(
            Http::H2,
            REPLAY.procedure,
            &[("content-type", "application/grpc+xjson")],
            envelope(0, b"{}"),
        )
        .await?;
    assert_eq!(reply.status, 415);
    let accepted = reply.header("accept-post").unwrap_or_default();
    assert!(accepted.contains("application/grpc+vjson"), "{accepted}");
    Ok(())
}

#[tokio::test]
async fn a_codec_registered_as_json_replaces_the_built_in_one() -> anyhow::Result<()> {
    /// `vjson` under the name `json`.
    struct AsJson;
    impl Codec for AsJson {
        fn name(&self) -> &str {
            "json"
        }
        fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
            VerboseJson.encode(message, buf)
        }
        fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
            VerboseJson.decode(bytes, slot)
        }
    }
    let addr = serve(routes(Router::new().codec(AsJson))).await;
    let raw = RawClient::new(addr);
    let reply = raw
        .post(
            Http::H1,
            INGEST.procedure,
            &[("content-type", "application/json")],
            verbose_batch(),
        )
        .await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()?, expected_answer());

    // The built-in JSON client reads the verbose answer (canonical parsers take proto names).
    let c = Client::new(
        ClientConfig::new(format!("http://{addr}"))?
            .codec(JsonCodec)
            .protocol(Protocol::Connect),
    )?;
    let res: Response<LogRecord> = c.unary(INGEST, batch(), CallOptions::new()).await?;
    assert_eq!(res.message().trace_id, [1, 2, 3]);
    Ok(())
}
