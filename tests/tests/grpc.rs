//! gRPC and gRPC-Web wire facts: content types, envelopes, status trailers (HTTP trailers for
//! gRPC, a 0x80 body frame for gRPC-Web), trailers-only errors, percent-encoded
//! `grpc-message`, `grpc-status-details-bin`, `grpc-timeout`, unknown encodings and paths.

use std::time::{Duration, Instant};

use buffa::Message as _;
use http::StatusCode;
use volley_tests::raw::{
    self, FLAG_TRAILERS, Http, RawClient, decode_web_text, encode_web_text, envelope,
    parse_envelopes, parse_trailer_block,
};
use volley_tests::rpc::{self, Call, Codec, Protocol};
use volley_tests::{
    ECHO, EchoRequest, EchoResponse, ErrorInfo, ErrorSpec, SERVER_STREAM, interop_router,
    spawn_server,
};

const ECHO_PATH: &str = "/volley.interop.v1.InteropService/Echo";

async fn setup() -> anyhow::Result<(RawClient, volley_tests::ServerHandle)> {
    let (addr, handle) = spawn_server(interop_router()).await?;
    Ok((RawClient::new(addr), handle))
}

fn grpc_headers<'a>(
    content_type: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("content-type", content_type), ("te", "trailers")];
    h.extend_from_slice(extra);
    h
}

fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.into(),
        ..Default::default()
    }
}

fn failing(code: i32, message: &str) -> EchoRequest {
    EchoRequest {
        error: buffa::MessageField::some(ErrorSpec {
            code,
            message: message.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_unary_wire_shape() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let body = envelope(0, &echo("hello").encode_to_vec());
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &grpc_headers("application/grpc", &[("x-test-echo", "e")]),
            body,
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/grpc+proto"));
    assert_eq!(reply.header("x-test-echo-header"), Some("e"));
    assert!(
        !reply.headers.contains_key("grpc-status"),
        "status belongs in the trailers"
    );
    let envs = parse_envelopes(&reply.body)?;
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0].flags, 0);
    assert_eq!(
        EchoResponse::decode_from_slice(&envs[0].data)?.text,
        "hello"
    );
    assert_eq!(reply.trailer("grpc-status"), Some("0"));
    assert_eq!(reply.trailer("x-test-echo-trailer"), Some("e"));
    assert_eq!(reply.trailer("grpc-message"), None);
    // The server advertises what it accepts.
    let accepted = reply.header("grpc-accept-encoding").unwrap_or_default();
    for name in ["gzip", "zstd", "br", "deflate"] {
        assert!(accepted.contains(name), "grpc-accept-encoding {accepted:?}");
    }
    Ok(())
}

#[tokio::test]
async fn grpc_errors_encode_message_and_details() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let info = ErrorInfo {
        reason: "r".into(),
        domain: "d".into(),
        ..Default::default()
    };
    let message = "100% wrong ✓\nnext";
    let mut req = failing(7, message);
    if let Some(spec) = req.error.as_option_mut() {
        spec.details.push(buffa_types::google::protobuf::Any {
            type_url: "type.googleapis.com/volley.interop.v1.ErrorInfo".into(),
            value: info.encode_to_vec().into(),
            ..Default::default()
        });
    }
    let body = envelope(0, &req.encode_to_vec());
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &grpc_headers("application/grpc+proto", &[]),
            body,
        )
        .await?;
    // An error before any message: trailers-only, everything in the headers.
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert!(reply.trailers.as_ref().is_none_or(|t| t.is_empty()));
    assert_eq!(reply.header("content-type"), Some("application/grpc+proto"));
    assert_eq!(reply.header("grpc-status"), Some("7"));
    assert_eq!(
        reply.header("grpc-message"),
        Some("100%25 wrong %E2%9C%93%0Anext")
    );
    let bin = reply.header("grpc-status-details-bin").unwrap_or_default();
    assert!(
        !bin.ends_with('='),
        "details should be unpadded base64: {bin}"
    );
    let status = raw::decode_status_details(bin)?;
    assert_eq!(status.code, 7);
    assert_eq!(status.message, message);
    assert_eq!(status.details.len(), 1);
    assert_eq!(
        status.details[0].type_url,
        "type.googleapis.com/volley.interop.v1.ErrorInfo"
    );
    assert_eq!(
        ErrorInfo::decode_from_slice(&status.details[0].value)?,
        info
    );

    // An error after a message: headers, the message, then the status in HTTP trailers.
    let req = EchoRequest {
        count: 3,
        fail_after: 1,
        ..failing(11, "out of range")
    };
    let reply = client
        .post(
            Http::H2,
            "/volley.interop.v1.InteropService/ServerStream",
            &grpc_headers("application/grpc", &[]),
            envelope(0, &req.encode_to_vec()),
        )
        .await?;
    assert!(!reply.headers.contains_key("grpc-status"));
    assert_eq!(parse_envelopes(&reply.body)?.len(), 1);
    assert_eq!(reply.trailer("grpc-status"), Some("11"));
    assert_eq!(reply.trailer("grpc-message"), Some("out of range"));
    assert_eq!(reply.trailer("grpc-status-details-bin"), None);
    Ok(())
}

#[tokio::test]
async fn grpc_web_trailer_frame() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for http in Http::ALL {
        let body = envelope(0, &echo("web").encode_to_vec());
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[
                    ("content-type", "application/grpc-web+proto"),
                    ("x-grpc-web", "1"),
                    ("x-test-echo", "w"),
                ],
                body.clone(),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("content-type"),
            Some("application/grpc-web+proto")
        );
        assert_eq!(reply.header("x-test-echo-header"), Some("w"));
        assert!(reply.trailers.as_ref().is_none_or(|t| t.is_empty()));
        let envs = parse_envelopes(&reply.body)?;
        assert_eq!(envs.len(), 2);
        assert_eq!(envs[0].flags, 0);
        assert_eq!(EchoResponse::decode_from_slice(&envs[0].data)?.text, "web");
        assert_eq!(envs[1].flags, FLAG_TRAILERS);
        let block = std::str::from_utf8(&envs[1].data)?;
        assert!(block.ends_with("\r\n"), "{block:?}");
        let trailers = parse_trailer_block(&envs[1].data)?;
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
        assert_eq!(
            trailers.get("x-test-echo-trailer").map(|v| v.as_bytes()),
            Some(&b"w"[..])
        );

        // The text variant: the same frames, base64-encoded.
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[
                    ("content-type", "application/grpc-web-text"),
                    ("x-grpc-web", "1"),
                ],
                encode_web_text(&body),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("content-type"),
            Some("application/grpc-web-text+proto")
        );
        assert!(
            reply
                .body
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)),
            "text body is base64"
        );
        let envs = parse_envelopes(&decode_web_text(&reply.body)?)?;
        assert_eq!(envs.len(), 2);
        assert_eq!(envs[1].flags, FLAG_TRAILERS);
        // Request bodies split into separately padded base64 chunks decode too.
        let (first, second) = body.split_at(4);
        let mut chunked = encode_web_text(first);
        chunked.extend(encode_web_text(second));
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[("content-type", "application/grpc-web-text+proto")],
                chunked,
            )
            .await?;
        let envs = parse_envelopes(&decode_web_text(&reply.body)?)?;
        assert_eq!(EchoResponse::decode_from_slice(&envs[0].data)?.text, "web");

        // Errors before any message are trailers-only: status in the headers, empty body.
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[("content-type", "application/grpc-web+proto")],
                envelope(0, &failing(5, "nope").encode_to_vec()),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("grpc-status"), Some("5"));
        assert_eq!(reply.header("grpc-message"), Some("nope"));
    }
    Ok(())
}

#[tokio::test]
async fn grpc_timeouts() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for (protocol, http) in [
        (Protocol::Grpc, Http::H2),
        (Protocol::GrpcWeb, Http::H1),
        (Protocol::GrpcWebText, Http::H2),
    ] {
        // The handler sees the remaining deadline, in every unit.
        for (timeout, max) in [
            ("5S", 5000),
            ("5000m", 5000),
            ("5000000u", 5000),
            ("99999999n", 100),
            ("1M", 60_000),
            ("1H", 3_600_000),
        ] {
            let out = rpc::call(
                &client,
                &Call::new(protocol, Codec::Proto, "identity", http)
                    .header("grpc-timeout", timeout),
                &ECHO,
                &[echo("t")],
            )
            .await?;
            let ms = out.single()?.deadline_ms;
            assert!(
                ms <= max && ms > max - 1000,
                "{protocol:?} {timeout}: deadline_ms {ms}"
            );
        }
        // Malformed: more than 8 digits, no unit, an unknown unit.
        for bad in ["123456789m", "100", "5x", "m"] {
            let out = rpc::call(
                &client,
                &Call::new(protocol, Codec::Proto, "identity", http).header("grpc-timeout", bad),
                &ECHO,
                &[echo("t")],
            )
            .await?;
            assert_eq!(out.err()?.code, "invalid_argument", "{bad}");
        }
        // Expiry: deadline_exceeded, HTTP 200, promptly.
        let started = Instant::now();
        let out = rpc::call(
            &client,
            &Call::new(protocol, Codec::Json, "identity", http).header("grpc-timeout", "100m"),
            &ECHO,
            &[EchoRequest {
                delay_ms: 2000,
                ..Default::default()
            }],
        )
        .await?;
        assert_eq!(out.http_status, StatusCode::OK);
        assert_eq!(out.err()?.code, "deadline_exceeded");
        assert!(out.trailers_only);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        // Streams: some messages, then deadline_exceeded in the trailers.
        let out = rpc::call(
            &client,
            &Call::new(protocol, Codec::Proto, "identity", http).header("grpc-timeout", "350m"),
            &SERVER_STREAM,
            &[EchoRequest {
                count: 20,
                delay_ms: 100,
                ..Default::default()
            }],
        )
        .await?;
        assert_eq!(out.err()?.code, "deadline_exceeded");
        assert!(
            (1..20).contains(&out.messages.len()),
            "{}",
            out.messages.len()
        );
        assert!(!out.trailers_only);
    }
    Ok(())
}

#[tokio::test]
async fn grpc_unknown_path_and_encoding() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for (ct, http) in [
        ("application/grpc", Http::H2),
        ("application/grpc-web+proto", Http::H1),
        ("application/grpc-web-text", Http::H2),
    ] {
        let reply = client
            .post(
                http,
                "/volley.interop.v1.InteropService/Missing",
                &grpc_headers(ct, &[]),
                envelope(0, &[]),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{ct}");
        assert_eq!(reply.header("grpc-status"), Some("12"), "{ct}");
        assert!(reply.body.is_empty());

        // An encoding the server does not have: unimplemented, and the server says what it
        // accepts.
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &grpc_headers(ct, &[("grpc-encoding", "snappy")]),
                envelope(1, b"whatever"),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{ct}");
        assert_eq!(reply.header("grpc-status"), Some("12"), "{ct}");
        let accepted = reply.header("grpc-accept-encoding").unwrap_or_default();
        assert!(
            accepted.contains("gzip"),
            "{ct}: grpc-accept-encoding {accepted:?}"
        );
    }
    // A gRPC codec the server does not have.
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &grpc_headers("application/grpc+cbor", &[]),
            Vec::new(),
        )
        .await?;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    Ok(())
}

#[tokio::test]
async fn grpc_binary_metadata() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let bytes = [0xffu8, 0, 0x80, 7];
    let value = raw::encode_bin(&bytes);
    for (protocol, http) in [(Protocol::Grpc, Http::H2), (Protocol::GrpcWeb, Http::H1)] {
        let out = rpc::call(
            &client,
            &Call::new(protocol, Codec::Proto, "identity", http).header("x-test-bin-bin", &value),
            &ECHO,
            &[echo("b")],
        )
        .await?;
        let echoed = out.header("x-test-bin-bin").unwrap_or_default();
        assert!(rpc::bin_header_is(echoed, &bytes), "{echoed}");
    }
    Ok(())
}

/// A server stream whose messages are all ready at once goes out gathered in few chunks, and
/// its trailers still follow them (the body is not reported ended before the trailers).
#[tokio::test]
async fn gathered_server_stream_keeps_its_trailers() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let request = EchoRequest {
        text: "s".into(),
        count: 50,
        ..Default::default()
    };
    let reply = client
        .post(
            Http::H2,
            "/volley.interop.v1.InteropService/ServerStream",
            &grpc_headers("application/grpc", &[]),
            envelope(0, &request.encode_to_vec()),
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    let envs = parse_envelopes(&reply.body)?;
    assert_eq!(envs.len(), 50);
    for (i, env) in envs.iter().enumerate() {
        assert_eq!(EchoResponse::decode_from_slice(&env.data)?.index, i as i32);
    }
    assert_eq!(reply.trailer("grpc-status"), Some("0"));
    Ok(())
}

/// Where a gRPC or gRPC-Web reply keeps its status: its HTTP trailers, a gRPC-Web trailer
/// frame at the end of its body, or (trailers-only) its headers.
fn status_fields(reply: &raw::Reply) -> anyhow::Result<http::HeaderMap> {
    if let Some(trailers) = reply
        .trailers
        .as_ref()
        .filter(|t| t.contains_key("grpc-status"))
    {
        return Ok(trailers.clone());
    }
    match parse_envelopes(&reply.body)?
        .iter()
        .find(|e| e.flags & FLAG_TRAILERS != 0)
    {
        Some(frame) => parse_trailer_block(&frame.data),
        None => Ok(reply.headers.clone()),
    }
}

/// A unary request carries exactly one message: none, two, or one that does not decode is
/// refused with its code (unimplemented for the count, as grpc-go and connect-go answer;
/// invalid argument for the bytes), and a good call on the same connection still works.
#[tokio::test]
async fn grpc_unary_needs_exactly_one_message() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let one = envelope(0, &echo("one").encode_to_vec());
    let cases: [(&str, Vec<u8>, &str, &str); 3] = [
        ("no message", Vec::new(), "12", "zero messages"),
        (
            "two messages",
            [one.clone(), one.clone()].concat(),
            "12",
            "multiple messages",
        ),
        // Field 1 as a length-delimited string that runs past the end.
        (
            "undecodable",
            envelope(0, &[0x0a, 0x7f, b'x']),
            "3",
            "unmarshal",
        ),
    ];
    for http in [Http::H2, Http::H1] {
        for content_type in ["application/grpc", "application/grpc-web"] {
            if http == Http::H1 && content_type == "application/grpc" {
                continue; // gRPC proper needs HTTP/2 trailers
            }
            for (what, body, code, message) in &cases {
                let reply = client
                    .post(
                        http,
                        ECHO_PATH,
                        &grpc_headers(content_type, &[]),
                        body.clone(),
                    )
                    .await?;
                let fields = status_fields(&reply)?;
                let field = |name| fields.get(name).and_then(|v| v.to_str().ok());
                assert_eq!(reply.status, StatusCode::OK, "{content_type} {what}");
                assert_eq!(field("grpc-status"), Some(*code), "{content_type} {what}");
                let grpc_message = field("grpc-message").unwrap_or_default();
                assert!(
                    grpc_message.contains(message),
                    "{content_type} {what}: grpc-message {grpc_message:?}"
                );
            }
            let reply = client
                .post(
                    http,
                    ECHO_PATH,
                    &grpc_headers(content_type, &[]),
                    one.clone(),
                )
                .await?;
            let envs = parse_envelopes(&reply.body)?;
            assert_eq!(envs[0].flags, 0, "{content_type}");
            assert_eq!(EchoResponse::decode_from_slice(&envs[0].data)?.text, "one");
        }
    }
    Ok(())
}
