//! The prost build serves and calls all four RPC shapes over Connect, gRPC and gRPC-Web, in
//! binary and JSON, on a real socket; its JSON is canonical proto3 JSON (int64 as strings,
//! enums by name, well-known types in their special forms, lowerCamel names, proto names
//! accepted on input).

use std::collections::BTreeMap;

use pbjson_types::{Duration, Struct, Timestamp, Value, value::Kind as ValueKind};
use prost_example::proto::ledger::v1::{self as pb, LedgerServiceClient};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use volley::{Client, ClientConfig, Codec, JsonCodec, Message as _, ProtoCodec, Protocol};

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(prost_example::router()));
    addr
}

fn client(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    codec: &'static dyn Codec,
) -> anyhow::Result<LedgerServiceClient<volley::client::HttpTransport>> {
    let config = ClientConfig::new(format!("http://{addr}"))?
        .protocol(protocol)
        .codec(codec);
    Ok(LedgerServiceClient::new(Client::new(config)?))
}

/// An entry using every kind of field the proto has.
fn full_entry() -> pb::Entry {
    let mut labels = BTreeMap::new();
    labels.insert(
        "desk".to_string(),
        Value {
            kind: Some(ValueKind::StringValue("north".into())),
        },
    );
    labels.insert(
        "priority".to_string(),
        Value {
            kind: Some(ValueKind::NumberValue(2.5)),
        },
    );
    pb::Entry {
        amount_cents: -9_007_199_254_740_993,
        kind: pb::Kind::Debit.into(),
        at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000,
        }),
        hold: Some(Duration {
            seconds: 90,
            nanos: 0,
        }),
        labels: Some(Struct {
            fields: labels.into_iter().collect(),
        }),
        memo: bytes::Bytes::from_static(b"\x00\x01hi"),
        sequence: 41,
        note: Some(pb::entry::Note {
            text: "rent".into(),
        }),
        tags: [("q".to_string(), 7_i64)].into_iter().collect(),
        reference: Some(pb::entry::Reference::Invoice("INV-1".into())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_shape_over_every_protocol_and_codec() -> anyhow::Result<()> {
    let addr = serve().await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for codec in [&ProtoCodec as &'static dyn Codec, &JsonCodec] {
            let what = format!("{protocol:?}/{codec:?}");
            let ledger = client(addr, protocol, codec)?;

            // Unary: the whole entry survives the round trip.
            let sent = full_entry();
            let reply = ledger.record(sent.clone()).await?.into_message();
            let mut expected = sent.clone();
            expected.sequence = 42;
            assert_eq!(reply.entry, Some(expected), "{what}");
            assert_eq!(
                reply.balance_cents,
                prost_example::OPENING_BALANCE_CENTS + 9_007_199_254_740_993,
                "{what}"
            );

            // Server stream.
            let mut listed = ledger
                .list(pb::ListRequest { limit: 3 })
                .await?
                .into_message();
            let mut sequences = Vec::new();
            while let Some(entry) = listed.message().await? {
                assert_eq!(
                    entry.at.as_ref().map(|t| t.seconds),
                    Some(1_700_000_000 + entry.sequence as i64),
                    "{what}"
                );
                sequences.push(entry.sequence);
            }
            assert_eq!(sequences, [1, 2, 3], "{what}");

            // Client stream.
            let entries = vec![
                pb::Entry {
                    amount_cents: 500,
                    kind: pb::Kind::Credit.into(),
                    ..Default::default()
                },
                pb::Entry {
                    amount_cents: 200,
                    kind: pb::Kind::Debit.into(),
                    ..Default::default()
                },
            ];
            let sum = ledger
                .sum(futures_util::stream::iter(entries))
                .await?
                .into_message();
            assert_eq!((sum.total_cents, sum.count), (300, 2), "{what}");

            // Bidi (full duplex needs HTTP/2: Connect and gRPC here run over h2c when the
            // client negotiates it; half-duplex use works on every protocol).
            let mut mirror = ledger.mirror().await?;
            for text in ["a", "b"] {
                let mut entry = full_entry();
                entry.note = Some(pb::entry::Note { text: text.into() });
                mirror.send(entry).await?;
            }
            mirror.close_send();
            let mut back = Vec::new();
            while let Some(entry) = mirror.message().await? {
                back.push((entry.sequence, entry.note.map(|n| n.text)));
            }
            assert_eq!(
                back,
                [(1, Some("a".to_string())), (2, Some("b".to_string()))],
                "{what}"
            );
        }
    }
    Ok(())
}

#[test]
fn json_is_canonical_proto3_json() {
    let mut json = bytes::BytesMut::new();
    full_entry().encode_json(&mut json).unwrap();
    let got: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let want = serde_json::json!({
        "amountCents": "-9007199254740993",
        "kind": "KIND_DEBIT",
        // Canonical proto3 JSON writes `Z`; pbjson-types 0.9 writes the `+00:00` offset (valid
        // RFC 3339, accepted by every conformant parser, but not the canonical form). A known
        // gap, asserted so that a fixed pbjson-types shows up here.
        "at": "2023-11-14T22:13:20.500+00:00",
        "hold": "90s",
        "labels": {"desk": "north", "priority": 2.5},
        "memo": "AAFoaQ==",
        "sequence": "41",
        "note": {"text": "rent"},
        "tags": {"q": "7"},
        "invoice": "INV-1",
    });
    assert_eq!(got, want);

    // The canonical `Z` form reads back as the same instant.
    let stamped = pb::Entry::decode_json(br#"{"at": "2023-11-14T22:13:20.500Z"}"#).unwrap();
    assert_eq!(stamped.at, full_entry().at);

    // Proto field names, enum numbers and unquoted 64-bit integers are accepted on input.
    let parsed = pb::Entry::decode_json(
        br#"{"amount_cents": 12, "kind": 1, "sequence": "3", "receipt": 9}"#,
    )
    .unwrap();
    assert_eq!(parsed.amount_cents, 12);
    assert_eq!(parsed.kind, i32::from(pb::Kind::Credit));
    assert_eq!(parsed.sequence, 3);
    assert_eq!(parsed.reference, Some(pb::entry::Reference::Receipt(9)));

    // An empty body is the empty message; malformed JSON is an invalid argument.
    assert_eq!(pb::Entry::decode_json(b"").unwrap(), pb::Entry::default());
    let err = pb::Entry::decode_json(br#"{"amountCents": "x"}"#).unwrap_err();
    assert_eq!(err.code(), volley::Code::InvalidArgument);
}

#[test]
fn binary_is_prost_encoding_and_bad_input_is_an_error() {
    let entry = full_entry();
    let framed = entry.encode_proto_after(5).unwrap();
    assert!(framed[..5].iter().all(|b| *b == 0));
    assert_eq!(
        framed.len(),
        5 + prost::Message::encoded_len(&entry),
        "exact size after the headroom"
    );
    let body = framed.freeze().slice(5..);
    assert_eq!(&body[..], &prost::Message::encode_to_vec(&entry)[..]);
    assert_eq!(pb::Entry::decode_proto(body).unwrap(), entry);
    let err = pb::Entry::decode_proto(bytes::Bytes::from_static(b"\x0a\xff")).unwrap_err();
    assert_eq!(err.code(), volley::Code::InvalidArgument);
}

/// A Connect unary call written by hand over a plain socket: the wire JSON is what a Connect
/// client in any language sends and expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_json_on_the_wire() -> anyhow::Result<()> {
    let addr = serve().await;
    let body = r#"{"amount_cents":"250","kind":"KIND_DEBIT","hold":"1.5s"}"#;
    let request = format!(
        "POST /ledger.v1.LedgerService/Record HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut response),
    )
    .await??;
    let response = String::from_utf8(response)?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let json_start = response.find("\r\n\r\n").unwrap() + 4;
    let reply: serde_json::Value = serde_json::from_str(response[json_start..].trim())?;
    assert_eq!(
        reply,
        serde_json::json!({
            "entry": {"amountCents": "250", "kind": "KIND_DEBIT", "hold": "1.500s", "sequence": "1"},
            "balanceCents": "9750",
        })
    );
    Ok(())
}
