//! Malformed requests get the protocol's error, never a hang or a crash, and the next request
//! on the same server (and the same pooled connection where it survives) succeeds.

use buffa::Message as _;
use http::StatusCode;
use volley_tests::raw::{Http, RawClient, Reply, encode_web_text, envelope};
use volley_tests::rpc::{self, Call, Codec, Protocol};
use volley_tests::{ECHO, EchoRequest, ServerHandle, interop_router, spawn_server};

const ECHO_PATH: &str = "/volley.interop.v1.InteropService/Echo";
const STREAM_PATH: &str = "/volley.interop.v1.InteropService/ServerStream";
const CLIENT_STREAM_PATH: &str = "/volley.interop.v1.InteropService/ClientStream";

async fn setup() -> anyhow::Result<(RawClient, ServerHandle)> {
    let (addr, handle) = spawn_server(interop_router()).await?;
    Ok((RawClient::new(addr), handle))
}

/// The server still answers a good call in every protocol.
async fn still_serving(client: &RawClient, http: Http) -> anyhow::Result<()> {
    for protocol in Protocol::ALL {
        if !protocol.works_over(http) {
            continue;
        }
        let out = rpc::call(
            client,
            &Call::new(protocol, Codec::Proto, "identity", http),
            &ECHO,
            &[EchoRequest {
                text: "ok".into(),
                ..Default::default()
            }],
        )
        .await?;
        assert_eq!(out.single()?.text, "ok", "{protocol:?} {http:?}");
    }
    Ok(())
}

/// The gRPC status of a gRPC or gRPC-Web reply, from the headers (trailers-only), the HTTP
/// trailers, or the gRPC-Web trailer frame.
fn grpc_status(reply: &Reply, text: bool) -> anyhow::Result<String> {
    if let Some(s) = reply.header("grpc-status") {
        return Ok(s.to_string());
    }
    if let Some(s) = reply.trailer("grpc-status") {
        return Ok(s.to_string());
    }
    let body = if text {
        volley_tests::raw::decode_web_text(&reply.body)?
    } else {
        reply.body.to_vec()
    };
    let envs = volley_tests::raw::parse_envelopes(&body)?;
    let last = envs
        .last()
        .ok_or_else(|| anyhow::anyhow!("no status anywhere"))?;
    let trailers = volley_tests::raw::parse_trailer_block(&last.data)?;
    Ok(trailers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string())
}

/// The error code of a Connect streaming reply's end-of-stream message.
fn connect_stream_code(reply: &Reply) -> anyhow::Result<String> {
    assert_eq!(reply.status, StatusCode::OK);
    let envs = volley_tests::raw::parse_envelopes(&reply.body)?;
    let last = envs
        .last()
        .ok_or_else(|| anyhow::anyhow!("no end-of-stream"))?;
    assert_eq!(last.flags & 0x02, 0x02);
    let json: serde_json::Value = serde_json::from_slice(&last.data)?;
    Ok(json["error"]["code"].as_str().unwrap_or("").to_string())
}

/// Sends an enveloped body to a streaming-capable endpoint in each enveloped protocol and
/// checks the code.
async fn enveloped_case(
    client: &RawClient,
    body: &[u8],
    extra: &[(&str, &str)],
    connect_code: &str,
    grpc_code: &str,
) -> anyhow::Result<()> {
    let connect_extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| {
            (
                if *k == "grpc-encoding" {
                    "connect-content-encoding"
                } else {
                    *k
                },
                *v,
            )
        })
        .collect();
    for http in Http::ALL {
        let mut headers = vec![("content-type", "application/connect+proto")];
        headers.extend(connect_extra.iter().copied());
        let reply = client
            .post(http, STREAM_PATH, &headers, body.to_vec())
            .await?;
        assert_eq!(
            connect_stream_code(&reply)?,
            connect_code,
            "Connect {http:?}"
        );

        let mut headers = vec![("content-type", "application/grpc-web+proto")];
        headers.extend(extra.iter().copied());
        let reply = client
            .post(http, ECHO_PATH, &headers, body.to_vec())
            .await?;
        assert_eq!(grpc_status(&reply, false)?, grpc_code, "gRPC-Web {http:?}");

        let mut headers = vec![("content-type", "application/grpc-web-text")];
        headers.extend(extra.iter().copied());
        let reply = client
            .post(http, ECHO_PATH, &headers, encode_web_text(body))
            .await?;
        assert_eq!(
            grpc_status(&reply, true)?,
            grpc_code,
            "gRPC-Web text {http:?}"
        );
        still_serving(client, http).await?;
    }
    let mut headers = vec![("content-type", "application/grpc"), ("te", "trailers")];
    headers.extend(extra.iter().copied());
    let reply = client
        .post(Http::H2, ECHO_PATH, &headers, body.to_vec())
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(grpc_status(&reply, false)?, grpc_code, "gRPC");
    still_serving(client, Http::H2).await
}

fn good_message() -> Vec<u8> {
    EchoRequest {
        text: "fine".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test]
async fn truncated_envelope() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    // Declares 10 bytes, carries 3.
    let mut body = envelope(0, &good_message());
    body.truncate(5);
    body[4] = 10;
    body.extend_from_slice(b"abc");
    enveloped_case(&client, &body, &[], "invalid_argument", "3").await?;
    // Fewer than the 5 prefix bytes.
    enveloped_case(&client, &[0, 0, 0], &[], "invalid_argument", "3").await
}

#[tokio::test]
async fn declared_length_over_the_limit() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    // Declares 100 MiB and sends a few bytes: refused on the prefix, without waiting for or
    // buffering the rest.
    let mut body = vec![0u8];
    body.extend_from_slice(&(100u32 << 20).to_be_bytes());
    body.extend_from_slice(&[0; 16]);
    enveloped_case(&client, &body, &[], "resource_exhausted", "8").await?;
    // Connect unary bodies over the limit.
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[("content-type", "application/proto")],
            vec![0u8; 5 << 20],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.json()?["code"], "resource_exhausted");
    still_serving(&client, Http::H1).await
}

#[tokio::test]
async fn compressed_flag_without_an_encoding() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let body = envelope(1, &good_message());
    enveloped_case(&client, &body, &[], "internal", "13").await?;
    // `identity` is no encoding either.
    enveloped_case(
        &client,
        &body,
        &[("grpc-encoding", "identity")],
        "internal",
        "13",
    )
    .await
}

#[tokio::test]
async fn unknown_encoding() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let body = envelope(1, b"\x00\x01\x02");
    enveloped_case(
        &client,
        &body,
        &[("grpc-encoding", "lz4")],
        "unimplemented",
        "12",
    )
    .await?;
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "lz4"),
            ],
            "{}",
        )
        .await?;
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);
    let json = reply.json()?;
    assert_eq!(json["code"], "unimplemented");
    let message = json["message"].as_str().unwrap_or("");
    assert!(
        message.contains("lz4") && message.contains("gzip"),
        "{message}"
    );
    // The response lists what the server accepts.
    let accepted = reply.header("accept-encoding").unwrap_or("");
    assert!(
        accepted.contains("gzip") && accepted.contains("zstd"),
        "{accepted}"
    );
    still_serving(&client, Http::H2).await
}

#[tokio::test]
async fn corrupt_compressed_data() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    // A gzip header followed by garbage: an error, not a hang or a crash.
    let garbage = [
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0xde, 0xad, 0xbe, 0xef,
    ];
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("content-encoding", "gzip"),
            ],
            garbage.to_vec(),
        )
        .await?;
    assert!(reply.status.is_client_error() || reply.status.is_server_error());
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &[
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-encoding", "gzip"),
            ],
            envelope(1, &garbage),
        )
        .await?;
    let status = grpc_status(&reply, false)?;
    assert_ne!(status, "0");
    still_serving(&client, Http::H1).await?;
    still_serving(&client, Http::H2).await
}

#[tokio::test]
async fn bad_base64() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for message in ["!!!!", "a", "AAA*", "%FF%FE"] {
        let reply = client
            .get(
                Http::H1,
                &format!("{ECHO_PATH}?encoding=proto&base64=1&message={message}"),
                &[],
            )
            .await?;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(reply.json()?["code"], "invalid_argument");
    }
    // A gRPC-Web text body that is not base64.
    for http in Http::ALL {
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[("content-type", "application/grpc-web-text")],
                "not*base64!",
            )
            .await?;
        assert_eq!(grpc_status(&reply, true)?, "3");
        still_serving(&client, http).await?;
    }
    Ok(())
}

#[tokio::test]
async fn invalid_messages() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    // A length-delimited field running past the end; JSON that is not JSON; JSON with a
    // field of the wrong type; JSON that is not an object.
    let bad_proto: &[u8] = &[0x0a, 0x7f, b'x'];
    for (ct, body) in [
        ("application/proto", bad_proto),
        ("application/json", &b"{\"text\": "[..]),
        ("application/json", &b"{\"count\": \"many\"}"[..]),
        ("application/json", &b"[1, 2]"[..]),
    ] {
        for http in Http::ALL {
            let reply = client
                .post(http, ECHO_PATH, &[("content-type", ct)], body.to_vec())
                .await?;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{ct} {body:?}");
            assert_eq!(reply.json()?["code"], "invalid_argument");
        }
    }
    // Unknown JSON fields are ignored, as connect-go does, for forward compatibility.
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[("content-type", "application/json")],
            r#"{"noSuchField": 1, "text": "kept"}"#,
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()?["text"], "kept");
    // Enveloped.
    enveloped_case(
        &client,
        &envelope(0, bad_proto),
        &[],
        "invalid_argument",
        "3",
    )
    .await?;
    for (protocol, http) in [(Protocol::Grpc, Http::H2), (Protocol::GrpcWeb, Http::H1)] {
        let reply = client
            .post(
                http,
                ECHO_PATH,
                &[
                    (
                        "content-type",
                        rpc::request_content_type(protocol, Codec::Json, false).as_str(),
                    ),
                    ("te", "trailers"),
                ],
                envelope(0, b"{oops"),
            )
            .await?;
        assert_eq!(grpc_status(&reply, false)?, "3", "{protocol:?}");
    }
    still_serving(&client, Http::H1).await?;
    still_serving(&client, Http::H2).await
}

#[tokio::test]
async fn wrong_number_of_unary_messages() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    let one = envelope(0, &good_message());
    let two = [one.clone(), one.clone()].concat();
    for body in [Vec::new(), two] {
        let reply = client
            .post(
                Http::H2,
                ECHO_PATH,
                &[("content-type", "application/grpc"), ("te", "trailers")],
                body.clone(),
            )
            .await?;
        assert_eq!(grpc_status(&reply, false)?, "12", "{} bytes", body.len());
        let reply = client
            .post(
                Http::H1,
                STREAM_PATH,
                &[("content-type", "application/connect+proto")],
                body,
            )
            .await?;
        assert_eq!(connect_stream_code(&reply)?, "unimplemented");
    }
    // A client stream with no messages at all is fine: zero requests.
    let reply = client
        .post(
            Http::H2,
            CLIENT_STREAM_PATH,
            &[("content-type", "application/grpc"), ("te", "trailers")],
            Vec::new(),
        )
        .await?;
    assert_eq!(grpc_status(&reply, false)?, "0");
    still_serving(&client, Http::H2).await
}

#[tokio::test]
async fn wrong_content_type() -> anyhow::Result<()> {
    let (client, _server) = setup().await?;
    for http in Http::ALL {
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/grpc-webby",
        ] {
            let reply = client
                .post(http, ECHO_PATH, &[("content-type", ct)], good_message())
                .await?;
            assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
            assert!(reply.header("accept-post").is_some());
        }
        still_serving(&client, http).await?;
    }
    Ok(())
}
