//! The matrix: every protocol x stream type x codec x compression x HTTP version the protocol
//! allows, over real sockets, with the request bytes built by hand and the response's wire
//! shape checked strictly (see `volley_tests::rpc`).

use anyhow::ensure;
use futures_util::StreamExt as _;
use volley::{Spec, StreamType};
use volley_tests::compress::ENCODINGS;
use volley_tests::raw::{Http, RawClient};
use volley_tests::rpc::{self, Call, Codec, Outcome, Protocol};
use volley_tests::{
    BIDI, CLIENT_STREAM, ECHO, EchoRequest, ErrorInfo, ErrorSpec, SERVER_STREAM, interop_router,
    interop_view_router, spawn_server,
};

const SPECS: [Spec; 4] = [ECHO, SERVER_STREAM, CLIENT_STREAM, BIDI];

/// Text long enough (over the server's 1 KiB compression threshold) that responses carrying it
/// come back compressed.
fn long_text(tag: &str) -> String {
    format!(
        "{tag}:{}",
        "the quick brown fox jumps over the lazy dog ".repeat(30)
    )
}

fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 13) as u8))
        .collect()
}

fn request(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.to_string(),
        ..Default::default()
    }
}

fn expect_compressed(outcome: &Outcome, encoding: &str, messages: usize) -> anyhow::Result<()> {
    let expected = if encoding == "identity" { 0 } else { messages };
    ensure!(
        outcome.compressed == expected,
        "{} compressed response messages, expected {expected}",
        outcome.compressed
    );
    Ok(())
}

fn expect_echo_metadata(outcome: &Outcome) -> anyhow::Result<()> {
    ensure!(
        outcome.header("x-test-echo-header") == Some("echo-value"),
        "x-test-echo-header: {:?}",
        outcome.headers
    );
    let trailers: Vec<_> = outcome
        .trailers
        .get_all("x-test-echo-trailer")
        .iter()
        .collect();
    ensure!(
        trailers.len() == 1 && trailers[0] == "echo-value",
        "x-test-echo-trailer: {:?}",
        outcome.trailers
    );
    ensure!(
        !outcome.headers.contains_key("x-test-echo-trailer"),
        "the echo trailer came as a header"
    );
    Ok(())
}

async fn check_success(
    client: &RawClient,
    protocol: Protocol,
    spec: Spec,
    codec: Codec,
    encoding: &'static str,
    http: Http,
) -> anyhow::Result<()> {
    let call = Call::new(protocol, codec, encoding, http)
        .header("x-test-echo", "echo-value")
        .header("x-test-multi", "a")
        .header("x-test-multi", "b");
    let out = match spec.stream_type {
        StreamType::Unary => {
            let req = EchoRequest {
                text: "hello matrix".into(),
                payload: payload(1, 3000),
                ..Default::default()
            };
            let out = rpc::call(client, &call, &spec, std::slice::from_ref(&req)).await?;
            let res = out.single()?;
            ensure!(res.text == req.text, "text {:?}", res.text);
            ensure!(res.payload == req.payload, "payload differs");
            ensure!(
                res.index == 0 && res.received == 1,
                "index/received {res:?}"
            );
            ensure!(
                res.deadline_ms == -1,
                "deadline_ms {} without a timeout",
                res.deadline_ms
            );
            ensure!(
                res.headers.get("x-test-echo").map(String::as_str) == Some("echo-value"),
                "headers {:?}",
                res.headers
            );
            ensure!(
                res.headers.get("x-test-multi").map(String::as_str) == Some("a,b"),
                "repeated headers {:?}",
                res.headers
            );
            ensure!(
                res.headers.keys().all(|k| k.starts_with("x-test-")),
                "non-test headers echoed: {:?}",
                res.headers.keys()
            );
            expect_compressed(&out, encoding, 1)?;
            out
        }
        StreamType::ServerStream => {
            let text = long_text("server");
            let req = EchoRequest {
                text: text.clone(),
                count: 3,
                ..Default::default()
            };
            let out = rpc::call(client, &call, &spec, &[req]).await?;
            ensure!(out.error.is_none(), "error {:?}", out.error);
            ensure!(out.messages.len() == 3, "{} messages", out.messages.len());
            for (i, m) in out.messages.iter().enumerate() {
                ensure!(
                    m.index == i32::try_from(i)? && m.text == text,
                    "message {i}: {m:?}"
                );
            }
            expect_compressed(&out, encoding, 3)?;
            out
        }
        StreamType::ClientStream => {
            let reqs: Vec<EchoRequest> = ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(i, t)| EchoRequest {
                    text: (*t).into(),
                    payload: payload(u8::try_from(i).unwrap_or(0), 1200),
                    ..Default::default()
                })
                .collect();
            let out = rpc::call(client, &call, &spec, &reqs).await?;
            let res = out.single()?;
            ensure!(res.text == "a b c", "text {:?}", res.text);
            ensure!(res.received == 3, "received {}", res.received);
            let all: Vec<u8> = reqs.iter().flat_map(|r| r.payload.clone()).collect();
            ensure!(res.payload == all, "payloads not concatenated in order");
            expect_compressed(&out, encoding, 1)?;
            out
        }
        StreamType::BidiStream => {
            let texts: Vec<String> = (0..3).map(|i| long_text(&format!("bidi{i}"))).collect();
            let reqs: Vec<EchoRequest> = texts.iter().map(|t| request(t)).collect();
            let out = rpc::call(client, &call, &spec, &reqs).await?;
            ensure!(out.error.is_none(), "error {:?}", out.error);
            ensure!(out.messages.len() == 3, "{} messages", out.messages.len());
            for (i, m) in out.messages.iter().enumerate() {
                let i32i = i32::try_from(i)?;
                ensure!(
                    m.index == i32i && m.received == i32i + 1 && m.text == texts[i],
                    "message {i}: index {} received {}",
                    m.index,
                    m.received
                );
            }
            expect_compressed(&out, encoding, 3)?;
            out
        }
    };
    expect_echo_metadata(&out)?;
    if protocol != Protocol::Connect {
        ensure!(!out.trailers_only, "a success cannot be trailers-only");
        ensure!(
            out.trailer("grpc-status") == Some("0"),
            "grpc-status {:?}",
            out.trailer("grpc-status")
        );
        ensure!(
            !out.trailers.contains_key("grpc-message"),
            "grpc-message on success"
        );
    }
    Ok(())
}

fn matrix() -> Vec<(Protocol, Spec, Codec, &'static str, Http)> {
    let mut cases = Vec::new();
    for protocol in Protocol::ALL {
        for spec in SPECS {
            for codec in Codec::ALL {
                for encoding in ENCODINGS {
                    for http in Http::ALL {
                        if protocol.works_over(http) {
                            cases.push((protocol, spec, codec, encoding, http));
                        }
                    }
                }
            }
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_combination_succeeds() -> anyhow::Result<()> {
    all_succeed(interop_router()).await
}

/// The same matrix served by handlers taking zero-copy views of their requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_combination_succeeds_with_view_handlers() -> anyhow::Result<()> {
    all_succeed(interop_view_router()).await
}

async fn all_succeed(router: volley::Router) -> anyhow::Result<()> {
    let (addr, server) = spawn_server(router).await?;
    let client = RawClient::new(addr);
    let cases = matrix();
    // Connect 80 + gRPC 40 (HTTP/2 only) + gRPC-Web 80 + gRPC-Web text 80.
    assert_eq!(cases.len(), 280);
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(|(protocol, spec, codec, encoding, http)| {
            let client = client.clone();
            async move {
                check_success(&client, protocol, spec, codec, encoding, http)
                    .await
                    .err()
                    .map(|e| {
                        format!(
                            "{protocol:?} {} {codec:?} {encoding} {http:?}: {e:#}",
                            spec.method()
                        )
                    })
            }
        })
        .buffer_unordered(8)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    server.shutdown().await
}

fn error_info() -> ErrorInfo {
    ErrorInfo {
        reason: "QUOTA".into(),
        domain: "volley.test".into(),
        ..Default::default()
    }
}

fn error_spec(code: i32) -> ErrorSpec {
    use buffa::Message as _;
    ErrorSpec {
        code,
        message: "bad thing: 100% \u{2713}\nsecond line".into(),
        details: vec![buffa_types::google::protobuf::Any {
            type_url: "type.googleapis.com/volley.interop.v1.ErrorInfo".into(),
            value: error_info().encode_to_vec().into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn check_error(
    client: &RawClient,
    protocol: Protocol,
    spec: Spec,
    codec: Codec,
    encoding: &'static str,
    http: Http,
    code: i32,
) -> anyhow::Result<()> {
    use buffa::Message as _;
    let call = Call::new(protocol, codec, encoding, http).header("x-test-echo", "echo-value");
    let failing = EchoRequest {
        text: "fail".into(),
        count: 3,
        fail_after: 1,
        error: buffa::MessageField::some(error_spec(code)),
        ..Default::default()
    };
    let requests = match spec.stream_type {
        StreamType::Unary | StreamType::ServerStream => vec![failing],
        StreamType::ClientStream | StreamType::BidiStream => {
            vec![request("first"), failing, request("third")]
        }
    };
    let out = rpc::call(client, &call, &spec, &requests).await?;
    let err = out.err()?;
    let expected_code = rpc::code_name(u32::try_from(code)?).unwrap_or("?");
    ensure!(
        err.code == expected_code,
        "code {} != {expected_code}",
        err.code
    );
    ensure!(
        err.message == error_spec(code).message,
        "message {:?}",
        err.message
    );
    ensure!(
        err.details
            == vec![(
                "volley.interop.v1.ErrorInfo".to_string(),
                error_info().encode_to_vec()
            )],
        "details {:?}",
        err.details
    );
    // Responses sent before the error.
    let before = match spec.stream_type {
        StreamType::Unary | StreamType::ClientStream => 0,
        StreamType::ServerStream | StreamType::BidiStream => 1,
    };
    ensure!(
        out.messages.len() == before,
        "{} messages before the error",
        out.messages.len()
    );
    if before == 1 {
        // The call had started: headers went out, the echo trailer is in the trailers once.
        expect_echo_metadata(&out)?;
    } else {
        // Failed before responding: the echo header goes out as a response header (before
        // the status), the echo trailer with the error's metadata, where the protocol puts it.
        ensure!(
            out.headers
                .get("x-test-echo-header")
                .is_some_and(|v| v == "echo-value"),
            "x-test-echo-header missing from the response headers {:?}",
            out.headers
        );
        let meta = match protocol {
            Protocol::Connect if spec.stream_type == StreamType::Unary => &out.headers,
            _ => &out.trailers,
        };
        ensure!(
            meta.get("x-test-echo-trailer")
                .is_some_and(|v| v == "echo-value"),
            "x-test-echo-trailer missing from error metadata {meta:?}"
        );
        if protocol != Protocol::Connect {
            ensure!(
                !out.trailers_only,
                "an error with response headers must send them before the status, not trailers-only"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_combination_fails_cleanly() -> anyhow::Result<()> {
    all_fail_cleanly(interop_router()).await
}

/// The same failures from handlers taking zero-copy views of their requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_combination_fails_cleanly_with_view_handlers() -> anyhow::Result<()> {
    all_fail_cleanly(interop_view_router()).await
}

async fn all_fail_cleanly(router: volley::Router) -> anyhow::Result<()> {
    let (addr, server) = spawn_server(router).await?;
    let client = RawClient::new(addr);
    let mut cases = Vec::new();
    for (i, (protocol, spec, codec, encoding, http)) in matrix()
        .into_iter()
        .filter(|c| matches!(c.3, "identity" | "gzip"))
        .enumerate()
    {
        // Cycle through all sixteen codes.
        let code = i32::try_from(i % 16)? + 1;
        cases.push((protocol, spec, codec, encoding, http, code));
    }
    assert_eq!(cases.len(), 112);
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(|(protocol, spec, codec, encoding, http, code)| {
            let client = client.clone();
            async move {
                check_error(&client, protocol, spec, codec, encoding, http, code)
                    .await
                    .err()
                    .map(|e| {
                        format!(
                            "{protocol:?} {} {codec:?} {encoding} {http:?} code {code}: {e:#}",
                            spec.method()
                        )
                    })
            }
        })
        .buffer_unordered(8)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    server.shutdown().await
}
