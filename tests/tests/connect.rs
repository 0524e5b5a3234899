//! Connect-specific wire facts: unary POST and GET, `trailer-` headers, end-of-stream JSON,
//! timeouts, `-bin` metadata, routing errors and the protocol-version requirement.

use std::time::{Duration, Instant};

use base64::Engine as _;
use buffa::Message as _;
use http::{Method, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use volley_tests::compress::{compress, decompress};
use volley_tests::raw::{self, Http, RawClient, Reply, encode_bin, parse_envelopes};
use volley_tests::rpc::{self, Call, Codec, Protocol};
use volley_tests::{
    BIDI, ECHO, EchoRequest, EchoResponse, SERVER_STREAM, interop_router, spawn_server,
};

const ECHO_PATH: &str = "/volley.interop.v1.InteropService/Echo";
const STREAM_PATH: &str = "/volley.interop.v1.InteropService/ServerStream";

async fn setup() -> anyhow::Result<(RawClient, volley_tests::ServerHandle)> {
    let (addr, handle) = spawn_server(interop_router()).await?;
    Ok((RawClient::new(addr), handle))
}

fn echo_request(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.into(),
        ..Default::default()
    }
}

fn decode_proto(reply: &Reply) -> anyhow::Result<EchoResponse> {
    Ok(EchoResponse::decode_from_slice(&reply.body)?)
}

fn error_code(reply: &Reply) -> anyhow::Result<String> {
    Ok(reply.json()?["code"]
        .as_str()
        .unwrap_or("<no code>")
        .to_string())
}

#[tokio::test]
async fn unary_post_wire_shape() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for http in Http::ALL {
        let body = echo_request("hi").encode_to_vec();
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[
                    ("content-type", "application/proto"),
                    ("connect-protocol-version", "1"),
                    ("x-test-echo", "v"),
                ],
                body,
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("content-type"), Some("application/proto"));
        assert_eq!(reply.header("content-encoding"), None);
        assert_eq!(reply.header("x-test-echo-header"), Some("v"));
        // Unary trailers travel as `trailer-` prefixed headers, never as HTTP trailers.
        assert_eq!(reply.header("trailer-x-test-echo-trailer"), Some("v"));
        assert_eq!(reply.header("x-test-echo-trailer"), None);
        assert!(reply.trailers.as_ref().is_none_or(|t| t.is_empty()));
        assert_eq!(decode_proto(&reply)?.text, "hi");

        // JSON, with a charset parameter on the content type.
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[("content-type", "application/json; charset=utf-8")],
                r#"{"text":"json hi","responseSize":3}"#,
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let json = reply.json()?;
        assert_eq!(json["text"], "json hi");
        // proto3 JSON: bytes as base64, int64 as a string.
        assert_eq!(json["payload"], "eHh4");
        assert_eq!(json["deadlineMs"], "-1");
    }
    Ok(())
}

#[tokio::test]
async fn unary_response_compression_follows_accept_encoding() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let body = EchoRequest {
        response_size: 4096,
        ..Default::default()
    }
    .encode_to_vec();
    for enc in ["gzip", "br", "zstd", "deflate"] {
        // An uncompressed request asking for a compressed response.
        let reply = client
            .post(
                Http::H1,
                ECHO_PATH,
                &[
                    ("content-type", "application/proto"),
                    ("accept-encoding", enc),
                ],
                body.clone(),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{enc}");
        assert_eq!(reply.header("content-encoding"), Some(enc));
        let res = EchoResponse::decode_from_slice(&decompress(enc, &reply.body)?)?;
        assert_eq!(res.payload, vec![b'x'; 4096]);
    }
    // Unknown encodings in accept-encoding are skipped; the first known one wins.
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("accept-encoding", "snappy, br;q=0.9, gzip"),
            ],
            body.clone(),
        )
        .await?;
    assert_eq!(reply.header("content-encoding"), Some("br"));
    // Small responses are not worth compressing.
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("accept-encoding", "gzip"),
            ],
            echo_request("small").encode_to_vec(),
        )
        .await?;
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(decode_proto(&reply)?.text, "small");
    Ok(())
}

#[tokio::test]
async fn empty_body_is_the_empty_message_even_when_compressed() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for enc in ["gzip", "zstd"] {
        let reply = client
            .post(
                Http::H1,
                ECHO_PATH,
                &[
                    ("content-type", "application/proto"),
                    ("content-encoding", enc),
                ],
                Vec::new(),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{enc}");
        let res = decode_proto(&reply)?;
        assert_eq!((res.text.as_str(), res.received), ("", 1));
    }
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[("content-type", "application/json")],
            "",
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    Ok(())
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn get_requests() -> anyhow::Result<()> {
    get_requests_to(interop_router()).await
}

/// Connect GET, in every encoding, to a handler taking a zero-copy view of its request.
#[tokio::test]
async fn get_requests_to_a_view_handler() -> anyhow::Result<()> {
    get_requests_to(volley_tests::interop_view_router()).await
}

async fn get_requests_to(router: volley::Router) -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(router).await?;
    let client = RawClient::new(addr);
    let message = EchoRequest {
        text: "get me ~?&=".into(),
        payload: vec![0xfb, 0xff, 0xfe, 0x3e],
        ..Default::default()
    };
    let proto = message.encode_to_vec();
    let json = serde_json::to_string(&message)?;
    let unpadded = b64url(&proto);
    let padded = base64::engine::general_purpose::URL_SAFE.encode(&proto);
    assert!(
        padded.ends_with('='),
        "pick a message whose base64 is padded"
    );
    let gz = b64url(&compress("gzip", &proto)?);
    let json_pct = utf8_percent_encode(&json, NON_ALPHANUMERIC).to_string();
    let queries = [
        // The order clients emit.
        format!("connect=v1&encoding=proto&base64=1&message={unpadded}"),
        // Padded, raw and percent-encoded.
        format!("connect=v1&encoding=proto&base64=1&message={padded}"),
        format!(
            "connect=v1&encoding=proto&base64=1&message={}",
            padded.replace('=', "%3D")
        ),
        // Any order, unknown parameters ignored, no connect=v1 (not required by default).
        format!("message={unpadded}&cache-buster=123&base64=1&encoding=proto&x=y"),
        // Compressed.
        format!("connect=v1&encoding=proto&base64=1&compression=gzip&message={gz}"),
        format!("compression=gzip&message={gz}&encoding=proto&base64=1"),
        // JSON without base64, percent-encoded.
        format!("connect=v1&encoding=json&message={json_pct}"),
        // JSON with base64.
        format!("encoding=json&base64=1&message={}", b64url(json.as_bytes())),
        // compression=identity is no compression.
        format!("encoding=proto&base64=1&compression=identity&message={unpadded}"),
    ];
    for http in Http::ALL {
        for query in &queries {
            let reply = client
                .get(
                    http,
                    &format!("{ECHO_PATH}?{query}"),
                    &[("x-test-echo", "g")],
                )
                .await?;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
            assert_eq!(reply.header("x-test-echo-header"), Some("g"));
            assert_eq!(reply.header("trailer-x-test-echo-trailer"), Some("g"));
            let res: EchoResponse = if query.contains("encoding=json") {
                assert_eq!(reply.header("content-type"), Some("application/json"));
                serde_json::from_slice(&reply.body)?
            } else {
                assert_eq!(reply.header("content-type"), Some("application/proto"));
                decode_proto(&reply)?
            };
            assert_eq!(res.text, message.text, "{query}");
            assert_eq!(res.payload, message.payload, "{query}");
        }
    }
    // The response is compressed by accept-encoding, as for POST.
    let big = b64url(
        &EchoRequest {
            response_size: 5000,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let reply = client
        .get(
            Http::H2,
            &format!("{ECHO_PATH}?encoding=proto&base64=1&message={big}"),
            &[("accept-encoding", "zstd")],
        )
        .await?;
    assert_eq!(reply.header("content-encoding"), Some("zstd"));
    let res = EchoResponse::decode_from_slice(&decompress("zstd", &reply.body)?)?;
    assert_eq!(res.payload.len(), 5000);
    // A GET without a message is the empty message.
    let reply = client
        .get(Http::H1, &format!("{ECHO_PATH}?encoding=proto"), &[])
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(decode_proto(&reply)?.text, "");
    Ok(())
}

#[tokio::test]
async fn get_errors() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    // Streaming methods and methods with side effects take no GET.
    let reply = client
        .get(Http::H1, &format!("{STREAM_PATH}?encoding=proto"), &[])
        .await?;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("POST"));
    // Missing encoding.
    let reply = client
        .get(Http::H1, &format!("{ECHO_PATH}?message=e30"), &[])
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply)?, "invalid_argument");
    // Unknown codec.
    let reply = client
        .get(
            Http::H1,
            &format!("{ECHO_PATH}?encoding=xml&message=x"),
            &[],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Unknown compression: unimplemented, naming the supported ones.
    let reply = client
        .get(
            Http::H1,
            &format!("{ECHO_PATH}?encoding=proto&base64=1&compression=snappy&message=AA"),
            &[],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(error_code(&reply)?, "unimplemented");
    let msg = reply.json()?["message"].as_str().unwrap_or("").to_string();
    for name in ["gzip", "br", "zstd", "deflate"] {
        assert!(msg.contains(name), "{msg}");
    }
    // An unsupported connect version.
    let reply = client
        .get(
            Http::H1,
            &format!("{ECHO_PATH}?connect=v2&encoding=proto"),
            &[],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // The server is fine afterwards.
    let reply = client
        .get(
            Http::H1,
            &format!("{ECHO_PATH}?encoding=json&message=%7B%7D"),
            &[],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn streaming_end_of_stream_json() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let call = Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H1);
    let req = EchoRequest {
        text: "s".into(),
        count: 2,
        ..Default::default()
    };
    let (headers, body) = rpc::build_request(&call, &SERVER_STREAM, &[req])?;
    let mut hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    hdrs.push(("x-test-echo", "t1"));
    let reply = client.post(Http::H1, STREAM_PATH, &hdrs, body).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/connect+proto")
    );
    assert_eq!(reply.header("x-test-echo-header"), Some("t1"));
    // The server says which encodings it accepts.
    let accepted = reply.header("connect-accept-encoding").unwrap_or_default();
    assert!(
        accepted.contains("gzip") && accepted.contains("br"),
        "{accepted}"
    );
    let envs = parse_envelopes(&reply.body)?;
    assert_eq!(envs.len(), 3);
    assert_eq!((envs[0].flags, envs[1].flags, envs[2].flags), (0, 0, 2));
    let end: serde_json::Value = serde_json::from_slice(&envs[2].data)?;
    assert_eq!(
        end,
        serde_json::json!({"metadata": {"x-test-echo-trailer": ["t1"]}})
    );
    // An error: exactly one end-of-stream message with the error, still HTTP 200.
    let req = EchoRequest {
        count: 2,
        fail_after: 1,
        error: buffa::MessageField::some(volley_tests::ErrorSpec {
            code: 10,
            message: "aborted here".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (headers, body) = rpc::build_request(&call, &SERVER_STREAM, &[req])?;
    let hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = client.post(Http::H2, STREAM_PATH, &hdrs, body).await?;
    assert_eq!(reply.status, StatusCode::OK);
    let envs = parse_envelopes(&reply.body)?;
    assert_eq!(envs.len(), 2);
    assert_eq!(envs[1].flags, 2);
    let end: serde_json::Value = serde_json::from_slice(&envs[1].data)?;
    assert_eq!(
        end,
        serde_json::json!({"error": {"code": "aborted", "message": "aborted here"}})
    );
    Ok(())
}

#[tokio::test]
async fn timeouts() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    // The handler sees the remaining deadline.
    let out = rpc::call(
        &client,
        &Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H1)
            .header("connect-timeout-ms", "5000"),
        &ECHO,
        &[echo_request("t")],
    )
    .await?;
    let ms = out.single()?.deadline_ms;
    assert!((3000..=5000).contains(&ms), "deadline_ms {ms}");

    // Expiry: unary answers 504 deadline_exceeded, promptly (the handler is cancelled).
    for http in Http::ALL {
        let slow = EchoRequest {
            delay_ms: 2000,
            ..Default::default()
        };
        let started = Instant::now();
        let out = rpc::call(
            &client,
            &Call::new(Protocol::Connect, Codec::Json, "identity", http)
                .header("connect-timeout-ms", "100"),
            &ECHO,
            &[slow],
        )
        .await?;
        assert_eq!(out.http_status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(out.err()?.code, "deadline_exceeded");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }

    // A stream gets some messages, then deadline_exceeded in the end-of-stream message.
    let req = EchoRequest {
        count: 20,
        delay_ms: 100,
        ..Default::default()
    };
    let out = rpc::call(
        &client,
        &Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H2)
            .header("connect-timeout-ms", "350"),
        &SERVER_STREAM,
        &[req],
    )
    .await?;
    assert_eq!(out.http_status, StatusCode::OK);
    assert_eq!(out.err()?.code, "deadline_exceeded");
    assert!(
        (1..20).contains(&out.messages.len()),
        "{} messages",
        out.messages.len()
    );

    // Malformed timeouts: not digits, or more than 10 digits.
    for bad in ["soon", "12345678901", "-5"] {
        let reply = client
            .post(
                Http::H1,
                ECHO_PATH,
                &[
                    ("content-type", "application/proto"),
                    ("connect-timeout-ms", bad),
                ],
                Vec::new(),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(&reply)?, "invalid_argument");
    }
    Ok(())
}

#[tokio::test]
async fn binary_metadata() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let bytes = [0u8, 1, 2, 0xfe, 0xff];
    for value in [
        encode_bin(&bytes),
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ] {
        let reply = client
            .post(
                Http::H2,
                ECHO_PATH,
                &[
                    ("content-type", "application/proto"),
                    ("x-test-bin-bin", &value),
                ],
                Vec::new(),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK);
        let echoed = reply.header("x-test-bin-bin").unwrap_or_default();
        assert_eq!(raw::decode_bin(echoed)?, bytes);
        // The handler saw the header as sent.
        assert_eq!(
            decode_proto(&reply)?.headers.get("x-test-bin-bin"),
            Some(&value)
        );
    }
    Ok(())
}

#[tokio::test]
async fn routing_errors() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for http in Http::ALL {
        // Unknown procedure: 404 with a Connect error body.
        let reply = client
            .post(
                http,
                "/volley.interop.v1.InteropService/Nope",
                &[("content-type", "application/proto")],
                Vec::new(),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&reply)?, "unimplemented");
        let reply = client
            .post(
                http,
                "/no.Such/Service",
                &[("content-type", "application/connect+json")],
                Vec::new(),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);

        // Wrong method.
        let reply = client
            .call(
                http,
                client
                    .request(http, Method::PUT, ECHO_PATH)
                    .header("content-type", "application/proto")
                    .body(raw::full(Vec::new()))?,
            )
            .await?;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.header("allow"), Some("GET, POST"));
        let reply = client
            .call(
                http,
                client
                    .request(
                        http,
                        Method::DELETE,
                        "/volley.interop.v1.InteropService/Bidi",
                    )
                    .body(raw::full(Vec::new()))?,
            )
            .await?;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.header("allow"), Some("POST"));

        // Unsupported content types, and Connect unary vs streaming mixed up.
        for (path, ct) in [
            (ECHO_PATH, "text/plain"),
            (ECHO_PATH, "application/xml"),
            (ECHO_PATH, "application/connect+proto"),
            (STREAM_PATH, "application/proto"),
            (STREAM_PATH, "application/connect+xml"),
            (BIDI.procedure, ""),
        ] {
            let reply = client
                .post(http, path, &[("content-type", ct)], Vec::new())
                .await?;
            assert_eq!(
                reply.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {ct}"
            );
            let accept = reply.header("accept-post").unwrap_or_default();
            assert!(accept.contains("application/grpc"), "{accept}");
            if path == ECHO_PATH {
                assert!(accept.contains("application/proto"), "{accept}");
            } else {
                assert!(accept.contains("application/connect+proto"), "{accept}");
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn protocol_version_header() -> anyhow::Result<()> {
    let (addr, _server) =
        spawn_server(interop_router().require_connect_protocol_header(true)).await?;
    let client = RawClient::new(addr);
    let body = echo_request("v").encode_to_vec();
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[("content-type", "application/proto")],
            body.clone(),
        )
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply)?, "invalid_argument");
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("connect-protocol-version", "1"),
            ],
            body.clone(),
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    // Streaming requests too: the error comes as the end-of-stream message.
    let (mut headers, stream_body) = rpc::build_request(
        &Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H2),
        &SERVER_STREAM,
        &[echo_request("s")],
    )?;
    headers.retain(|(k, _)| k != "connect-protocol-version");
    let hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = client
        .post(Http::H2, STREAM_PATH, &hdrs, stream_body)
        .await?;
    let out = rpc::parse_reply(
        &Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H2),
        &SERVER_STREAM,
        reply,
    )?;
    assert_eq!(out.err()?.code, "invalid_argument");
    assert!(out.messages.is_empty());
    // GET needs connect=v1.
    let m = b64url(&body);
    let reply = client
        .get(
            Http::H1,
            &format!("{ECHO_PATH}?encoding=proto&base64=1&message={m}"),
            &[],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = client
        .get(
            Http::H1,
            &format!("{ECHO_PATH}?encoding=proto&base64=1&message={m}&connect=v1"),
            &[],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    // gRPC and gRPC-Web are not affected.
    for protocol in [Protocol::Grpc, Protocol::GrpcWeb] {
        let out = rpc::call(
            &client,
            &Call::new(protocol, Codec::Proto, "identity", Http::H2),
            &ECHO,
            &[echo_request("g")],
        )
        .await?;
        assert_eq!(out.single()?.text, "g");
    }

    // Without the requirement, a wrong version is still refused.
    let (client, _server) = setup().await?;
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("connect-protocol-version", "2"),
            ],
            body,
        )
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn unknown_compression() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("content-encoding", "snappy"),
            ],
            vec![1, 2, 3],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(error_code(&reply)?, "unimplemented");
    let msg = reply.json()?["message"].as_str().unwrap_or("").to_string();
    for name in ["gzip", "br", "zstd", "deflate"] {
        assert!(msg.contains(name), "{msg}");
    }
    // Streaming: the same code in the end-of-stream message.
    let call = Call::new(Protocol::Connect, Codec::Proto, "identity", Http::H2)
        .header("connect-content-encoding", "snappy");
    let out = rpc::call(&client, &call, &SERVER_STREAM, &[echo_request("x")]).await?;
    let err = out.err()?;
    assert_eq!(err.code, "unimplemented");
    assert!(err.message.contains("gzip"), "{}", err.message);
    Ok(())
}

/// A unary body that arrives in several chunks (with and without a declared length) decodes
/// whole on both HTTP versions; one in a single chunk is taken as it is; a chunked body past the
/// receive limit is refused with `resource_exhausted`, and the server keeps serving.
#[tokio::test]
async fn unary_bodies_in_chunks_decode_whole_and_respect_the_limit() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router().receive_limit(4096)).await?;
    let client = RawClient::new(addr);
    let text = "chunk ".repeat(300);
    let body = echo_request(&text).encode_to_vec();
    assert!(body.len() > 1000 && body.len() < 4096);
    for http in Http::ALL {
        for declare_length in [false, true] {
            for pieces in [1, 3, 7] {
                let (tx, req_body) = raw::channel_body();
                let mut request = client
                    .request(http, Method::POST, ECHO_PATH)
                    .header("content-type", "application/proto")
                    .header("connect-protocol-version", "1");
                if declare_length {
                    request = request.header("content-length", body.len());
                }
                let request = request.body(req_body)?;
                let chunks: Vec<Vec<u8>> = body
                    .chunks(body.len().div_ceil(pieces))
                    .map(<[u8]>::to_vec)
                    .collect();
                let sender = tokio::spawn(async move {
                    for chunk in chunks {
                        tx.send(chunk.into()).await.ok();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
                let reply = client.call(http, request).await?;
                sender.await?;
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "{http:?} length {declare_length} in {pieces}: {reply:?}"
                );
                assert_eq!(decode_proto(&reply)?.text, text, "{http:?} in {pieces}");
            }
        }
        // Past the limit, in chunks: refused, whatever the pieces.
        let big = echo_request(&"x".repeat(6000)).encode_to_vec();
        let (tx, req_body) = raw::channel_body();
        let request = client
            .request(http, Method::POST, ECHO_PATH)
            .header("content-type", "application/proto")
            .header("connect-protocol-version", "1")
            .body(req_body)?;
        let chunks: Vec<Vec<u8>> = big.chunks(1500).map(<[u8]>::to_vec).collect();
        let sender = tokio::spawn(async move {
            for chunk in chunks {
                if tx.send(chunk.into()).await.is_err() {
                    break;
                }
            }
        });
        let reply = client.call(http, request).await?;
        sender.await?;
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{http:?}: {reply:?}"
        );
        assert_eq!(error_code(&reply)?, "resource_exhausted");
    }
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("connect-protocol-version", "1"),
            ],
            echo_request("after").encode_to_vec(),
        )
        .await?;
    assert_eq!(decode_proto(&reply)?.text, "after");
    Ok(())
}
