//! The load benchmark's workloads (path, headers, body) and the correctness check run before
//! measuring each contender: one real request over h2c, its status, its `grpc-status` and its
//! decoded answer compared with what the fixtures say it must be. (h2load counts a gRPC error
//! as a success, so this is what proves a run measured real answers.)

use buffa::Message as _;
use bytes::{Buf as _, Bytes};
use http_body_util::{BodyExt as _, Full};

use crate::fixtures::{self, STREAM_TICKS, TICK_PAYLOAD};
use crate::proto::owned::bench::v1 as pb;

/// How a workload's calls are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// gRPC over HTTP/2, binary Protobuf.
    Grpc,
    /// Connect unary, binary Protobuf.
    ConnectProto,
    /// Connect unary, JSON.
    ConnectJson,
}

/// What the answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The echo request's payload.
    Echo,
    /// The ingest batch's count and checksum.
    Ingest,
    /// [`STREAM_TICKS`] numbered ticks.
    Ticks,
}

/// One workload of the load benchmark.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its name (`echo-grpc`, ...).
    pub name: &'static str,
    /// What it measures, for the results file.
    pub title: &'static str,
    /// The procedure path.
    pub path: &'static str,
    /// Framing of request and response.
    pub framing: Framing,
    /// The expected answer.
    pub expect: Expect,
    /// The request body, exactly as sent.
    pub body: Vec<u8>,
}

impl Workload {
    /// The request headers besides the pseudo-headers.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        match self.framing {
            Framing::Grpc => &[("content-type", "application/grpc"), ("te", "trailers")],
            Framing::ConnectProto => &[
                ("content-type", "application/proto"),
                ("connect-protocol-version", "1"),
            ],
            Framing::ConnectJson => &[
                ("content-type", "application/json"),
                ("connect-protocol-version", "1"),
            ],
        }
    }
}

const ECHO: &str = "/bench.v1.BenchService/Echo";
const INGEST: &str = "/bench.v1.BenchService/Ingest";
const TICKS: &str = "/bench.v1.BenchService/Ticks";

/// Every workload, in the order the results list them.
pub fn workloads() -> Vec<Workload> {
    let echo = fixtures::echo_bytes();
    let ingest = fixtures::ingest_bytes();
    let ticks = fixtures::ticks_request(STREAM_TICKS).encode_to_vec();
    let json = serde_json::to_vec(&fixtures::echo_request()).expect("JSON of the echo request");
    vec![
        Workload {
            name: "echo-grpc",
            title: "echo 64 B, gRPC",
            path: ECHO,
            framing: Framing::Grpc,
            expect: Expect::Echo,
            body: fixtures::envelope(&echo),
        },
        Workload {
            name: "echo-connect",
            title: "echo 64 B, Connect proto",
            path: ECHO,
            framing: Framing::ConnectProto,
            expect: Expect::Echo,
            body: echo,
        },
        Workload {
            name: "ingest-grpc",
            title: "ingest 50 logs, gRPC",
            path: INGEST,
            framing: Framing::Grpc,
            expect: Expect::Ingest,
            body: fixtures::envelope(&ingest),
        },
        Workload {
            name: "ingest-connect",
            title: "ingest 50 logs, Connect proto",
            path: INGEST,
            framing: Framing::ConnectProto,
            expect: Expect::Ingest,
            body: ingest,
        },
        Workload {
            name: "stream-grpc",
            title: "server stream of 100, gRPC",
            path: TICKS,
            framing: Framing::Grpc,
            expect: Expect::Ticks,
            body: fixtures::envelope(&ticks),
        },
        Workload {
            name: "echo-json",
            title: "echo 64 B, Connect JSON",
            path: ECHO,
            framing: Framing::ConnectJson,
            expect: Expect::Echo,
            body: json,
        },
    ]
}

/// The workload named `name`.
pub fn workload(name: &str) -> Option<Workload> {
    workloads().into_iter().find(|w| w.name == name)
}

/// Splits a gRPC body into its messages.
fn frames(mut body: Bytes) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 5 {
            return Err("a truncated envelope".into());
        }
        let flags = body.get_u8();
        let len = body.get_u32() as usize;
        if flags != 0 {
            return Err(format!("envelope flags {flags} (compressed or trailer)"));
        }
        if body.len() < len {
            return Err("a truncated message".into());
        }
        out.push(body.split_to(len));
    }
    Ok(out)
}

fn compare_unary(expect: Expect, message: &[u8], json: bool) -> Result<(), String> {
    match expect {
        Expect::Echo => {
            let got = if json {
                serde_json::from_slice::<pb::EchoResponse>(message).map_err(|e| e.to_string())?
            } else {
                pb::EchoResponse::decode_from_slice(message).map_err(|e| e.to_string())?
            };
            if got.payload != fixtures::echo_request().payload {
                return Err("the echoed payload differs".into());
            }
        }
        Expect::Ingest => {
            let got = pb::IngestResponse::decode_from_slice(message).map_err(|e| e.to_string())?;
            let want = fixtures::ingest_answer(&fixtures::ingest_request());
            if (got.accepted, got.checksum) != (want.accepted, want.checksum) {
                return Err(format!(
                    "ingest answered {} / {:#x}, expected {} / {:#x}",
                    got.accepted, got.checksum, want.accepted, want.checksum
                ));
            }
        }
        Expect::Ticks => return Err("a stream answered as a unary call".into()),
    }
    Ok(())
}

/// Sends `workload` once to `addr` over h2c and checks the answer.
pub async fn check(addr: std::net::SocketAddr, workload: &Workload) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| format!("h2c handshake: {e}"))?;
    tokio::spawn(conn);
    let mut request = http::Request::post(format!("http://{addr}{}", workload.path));
    for (name, value) in workload.headers() {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(workload.body.clone())))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(format!("HTTP status {}", parts.status));
    }
    let collected = body.collect().await.map_err(|e| format!("body: {e}"))?;
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match workload.framing {
        Framing::Grpc => {
            if !content_type.starts_with("application/grpc") {
                return Err(format!("content-type {content_type:?}"));
            }
            let status = trailers
                .as_ref()
                .and_then(|t| t.get("grpc-status"))
                .or_else(|| parts.headers.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)");
            if status != "0" {
                return Err(format!("grpc-status {status}"));
            }
            let messages = frames(body)?;
            if workload.expect == Expect::Ticks {
                if messages.len() != STREAM_TICKS as usize {
                    return Err(format!("{} ticks, expected {STREAM_TICKS}", messages.len()));
                }
                for (i, m) in messages.iter().enumerate() {
                    let tick = pb::Tick::decode_from_slice(m).map_err(|e| e.to_string())?;
                    if tick.seq as usize != i || tick.payload != fixtures::payload(TICK_PAYLOAD) {
                        return Err(format!("tick {i} differs"));
                    }
                }
                return Ok(());
            }
            let [message] = messages.as_slice() else {
                return Err(format!("{} messages in a unary answer", messages.len()));
            };
            compare_unary(workload.expect, message, false)
        }
        Framing::ConnectProto | Framing::ConnectJson => {
            let json = workload.framing == Framing::ConnectJson;
            let want = if json {
                "application/json"
            } else {
                "application/proto"
            };
            if !content_type.starts_with(want) {
                return Err(format!("content-type {content_type:?}, expected {want}"));
            }
            compare_unary(workload.expect, &body, json)
        }
    }
}
