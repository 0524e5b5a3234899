//! A quick self-check of both conformance programs without the Go runner: starts
//! `volley-conformance-server` through its stdin protocol, drives a few cases per protocol
//! through `volley-conformance-client`'s stdin protocol (both real processes), and checks the
//! results the client reports.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};

use conformance::{encode_delimited, pb, to_any};
use pb::__buffa::oneof::client_compat_request::cancel::CancelTiming;
use pb::__buffa::oneof::client_compat_response::Result as Outcome;
use pb::__buffa::oneof::unary_response_definition::Response as UnaryDef;

/// Kills the child when the test ends, pass or fail.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_delimited<M: buffa::Message>(reader: &mut impl std::io::Read) -> Option<M> {
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    reader.read_exact(&mut body).expect("a whole message");
    Some(M::decode_from_slice(&body).expect("a valid message"))
}

/// Starts the server; returns it with its host, port and certificate.
fn start_server(request: pb::ServerCompatRequest) -> (Killed, pb::ServerCompatResponse) {
    start_server_program(env!("CARGO_BIN_EXE_volley-conformance-server"), request)
}

/// Starts the server program `program`; returns it with its host, port and certificate.
fn start_server_program(
    program: &str,
    request: pb::ServerCompatRequest,
) -> (Killed, pb::ServerCompatResponse) {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&encode_delimited(&request)).unwrap();
    drop(stdin); // as the runner does
    let response = read_delimited(child.stdout.as_mut().unwrap()).expect("a ServerCompatResponse");
    (Killed(child), response)
}

/// Runs the client over `requests`; returns the results by test name.
fn run_client(requests: &[pb::ClientCompatRequest]) -> HashMap<String, Outcome> {
    run_client_program(env!("CARGO_BIN_EXE_volley-conformance-client"), requests)
}

/// Runs the client program `program` over `requests`; returns the results by test name.
fn run_client_program(
    program: &str,
    requests: &[pb::ClientCompatRequest],
) -> HashMap<String, Outcome> {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the client");
    let mut stdin = child.stdin.take().unwrap();
    for request in requests {
        stdin.write_all(&encode_delimited(request)).unwrap();
    }
    drop(stdin);
    let mut stdout = child.stdout.take().unwrap();
    let mut results = HashMap::new();
    while let Some(response) = read_delimited::<pb::ClientCompatResponse>(&mut stdout) {
        results.insert(response.test_name, response.result.expect("a result"));
    }
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "stray bytes on the client's stdout");
    assert!(child.wait().unwrap().success(), "the client failed");
    results
}

fn header(name: &str, value: &str) -> pb::Header {
    pb::Header {
        name: name.into(),
        value: vec![value.into()],
        ..Default::default()
    }
}

fn error(code: pb::Code, message: &str) -> pb::Error {
    pb::Error {
        code: code.into(),
        message: Some(message.into()),
        ..Default::default()
    }
}

fn stream_def(data: &[&str], err: Option<pb::Error>) -> pb::StreamResponseDefinition {
    pb::StreamResponseDefinition {
        response_headers: vec![header("x-custom-header", "foo")],
        response_data: data.iter().map(|d| d.as_bytes().to_vec()).collect(),
        error: err.into(),
        response_trailers: vec![header("x-custom-trailer", "bar")],
        ..Default::default()
    }
}

/// The connection settings of one protocol's run.
#[derive(Clone, Copy)]
struct Setup {
    name: &'static str,
    protocol: pb::Protocol,
    version: pb::HTTPVersion,
    codec: pb::Codec,
    compression: pb::Compression,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "connect",
        protocol: pb::Protocol::PROTOCOL_CONNECT,
        version: pb::HTTPVersion::HTTP_VERSION_2,
        codec: pb::Codec::CODEC_PROTO,
        compression: pb::Compression::COMPRESSION_IDENTITY,
    },
    Setup {
        name: "grpc",
        protocol: pb::Protocol::PROTOCOL_GRPC,
        version: pb::HTTPVersion::HTTP_VERSION_2,
        codec: pb::Codec::CODEC_PROTO,
        compression: pb::Compression::COMPRESSION_GZIP,
    },
    Setup {
        name: "grpc-web",
        protocol: pb::Protocol::PROTOCOL_GRPC_WEB,
        version: pb::HTTPVersion::HTTP_VERSION_1,
        codec: pb::Codec::CODEC_JSON,
        compression: pb::Compression::COMPRESSION_BR,
    },
];

fn base(
    setup: Setup,
    server: &pb::ServerCompatResponse,
    case: &str,
    method: &str,
    stream_type: pb::StreamType,
    messages: Vec<buffa_types::google::protobuf::Any>,
) -> pb::ClientCompatRequest {
    pb::ClientCompatRequest {
        test_name: format!("{}/{case}", setup.name),
        http_version: setup.version.into(),
        protocol: setup.protocol.into(),
        codec: setup.codec.into(),
        compression: setup.compression.into(),
        host: server.host.clone(),
        port: server.port,
        server_tls_cert: server.pem_cert.clone(),
        service: Some("connectrpc.conformance.v1.ConformanceService".into()),
        method: Some(method.into()),
        stream_type: stream_type.into(),
        request_headers: vec![header("x-test-case", case)],
        request_messages: messages,
        ..Default::default()
    }
}

fn cases(setup: Setup, server: &pb::ServerCompatResponse) -> Vec<pb::ClientCompatRequest> {
    use pb::StreamType as T;
    let unary = pb::UnaryRequest {
        response_definition: pb::UnaryResponseDefinition {
            response_headers: vec![header("x-custom-header", "foo")],
            response_trailers: vec![header("x-custom-trailer", "bar")],
            response: Some(UnaryDef::ResponseData(b"hello".to_vec())),
            ..Default::default()
        }
        .into(),
        request_data: vec![1, 2, 3],
        ..Default::default()
    };
    let unary_error = pb::UnaryRequest {
        response_definition: pb::UnaryResponseDefinition {
            response: Some(UnaryDef::Error(Box::new(error(
                pb::Code::CODE_RESOURCE_EXHAUSTED,
                "boom",
            )))),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let server_stream = pb::ServerStreamRequest {
        response_definition: stream_def(
            &["a", "b"],
            Some(error(pb::Code::CODE_ABORTED, "stream over")),
        )
        .into(),
        ..Default::default()
    };
    let client_stream: Vec<_> = (0..3)
        .map(|i| {
            to_any(&pb::ClientStreamRequest {
                request_data: vec![i],
                ..Default::default()
            })
        })
        .collect();
    let bidi = |full_duplex: bool| -> Vec<_> {
        (0..2)
            .map(|i| {
                to_any(&pb::BidiStreamRequest {
                    response_definition: (i == 0).then(|| stream_def(&["x", "y"], None)).into(),
                    full_duplex,
                    request_data: vec![i],
                    ..Default::default()
                })
            })
            .collect()
    };
    let mut out = vec![
        base(
            setup,
            server,
            "unary",
            "Unary",
            T::STREAM_TYPE_UNARY,
            vec![to_any(&unary)],
        ),
        base(
            setup,
            server,
            "unary-error",
            "Unary",
            T::STREAM_TYPE_UNARY,
            vec![to_any(&unary_error)],
        ),
        base(
            setup,
            server,
            "unimplemented",
            "Unimplemented",
            T::STREAM_TYPE_UNARY,
            vec![to_any(&pb::UnimplementedRequest::default())],
        ),
        base(
            setup,
            server,
            "server-stream",
            "ServerStream",
            T::STREAM_TYPE_SERVER_STREAM,
            vec![to_any(&server_stream)],
        ),
        base(
            setup,
            server,
            "client-stream",
            "ClientStream",
            T::STREAM_TYPE_CLIENT_STREAM,
            client_stream,
        ),
        base(
            setup,
            server,
            "bidi-half",
            "BidiStream",
            T::STREAM_TYPE_HALF_DUPLEX_BIDI_STREAM,
            bidi(false),
        ),
    ];
    if setup.version == pb::HTTPVersion::HTTP_VERSION_2 {
        out.push(base(
            setup,
            server,
            "bidi-full",
            "BidiStream",
            T::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM,
            bidi(true),
        ));
    }
    let mut slow = unary.clone();
    if let Some(def) = slow.response_definition.as_option_mut() {
        def.response_delay_ms = 2_000;
    }
    let mut timeout = base(
        setup,
        server,
        "timeout",
        "Unary",
        T::STREAM_TYPE_UNARY,
        vec![to_any(&slow)],
    );
    timeout.timeout_ms = Some(200);
    out.push(timeout);
    let mut canceled = base(
        setup,
        server,
        "cancel-after-responses",
        "ServerStream",
        T::STREAM_TYPE_SERVER_STREAM,
        vec![to_any(&server_stream)],
    );
    canceled.cancel = pb::client_compat_request::Cancel {
        cancel_timing: Some(CancelTiming::AfterNumResponses(1)),
        ..Default::default()
    }
    .into();
    out.push(canceled);
    if setup.protocol == pb::Protocol::PROTOCOL_CONNECT {
        let get = pb::IdempotentUnaryRequest {
            request_data: b"get me".to_vec(),
            ..Default::default()
        };
        let mut get = base(
            setup,
            server,
            "get",
            "IdempotentUnary",
            T::STREAM_TYPE_UNARY,
            vec![to_any(&get)],
        );
        get.use_get_http_method = true;
        out.push(get);
    }
    out
}

fn response<'a>(results: &'a HashMap<String, Outcome>, name: &str) -> &'a pb::ClientResponseResult {
    match results.get(name) {
        Some(Outcome::Response(r)) => r,
        Some(Outcome::Error(e)) => panic!("{name}: the client could not run it: {}", e.message),
        None => panic!("{name}: no result"),
    }
}

fn has(headers: &[pb::Header], name: &str, value: &str) -> bool {
    headers
        .iter()
        .any(|h| h.name == name && h.value.iter().any(|v| v == value))
}

fn code(result: &pb::ClientResponseResult) -> Option<pb::Code> {
    result.error.as_option().and_then(|e| e.code.as_known())
}

fn check(setup: Setup, results: &HashMap<String, Outcome>) {
    let name = |case: &str| format!("{}/{case}", setup.name);

    let r = response(results, &name("unary"));
    assert!(r.error.is_unset(), "{}: {:?}", name("unary"), r.error);
    assert_eq!(r.payloads.len(), 1);
    assert_eq!(r.payloads[0].data, b"hello");
    let info = r.payloads[0]
        .request_info
        .as_option()
        .expect("request info");
    assert!(has(&info.request_headers, "x-test-case", "unary"));
    assert_eq!(info.requests.len(), 1);
    assert!(has(&r.response_headers, "x-custom-header", "foo"));
    assert!(has(&r.response_trailers, "x-custom-trailer", "bar"));

    let r = response(results, &name("unary-error"));
    let err = r.error.as_option().expect("an error");
    assert_eq!(err.code.as_known(), Some(pb::Code::CODE_RESOURCE_EXHAUSTED));
    assert_eq!(err.message.as_deref(), Some("boom"));
    assert_eq!(
        err.details.len(),
        1,
        "the request info rides in the details"
    );
    assert!(r.payloads.is_empty());

    let r = response(results, &name("unimplemented"));
    assert_eq!(code(r), Some(pb::Code::CODE_UNIMPLEMENTED));

    let r = response(results, &name("server-stream"));
    assert_eq!(code(r), Some(pb::Code::CODE_ABORTED));
    assert_eq!(r.payloads.len(), 2);
    assert!(r.payloads[0].request_info.is_set());
    assert!(r.payloads[1].request_info.is_unset());
    assert!(has(&r.response_headers, "x-custom-header", "foo"));
    assert!(has(&r.response_trailers, "x-custom-trailer", "bar"));

    let r = response(results, &name("client-stream"));
    assert!(r.error.is_unset(), "{:?}", r.error);
    let info = r.payloads[0]
        .request_info
        .as_option()
        .expect("request info");
    assert_eq!(info.requests.len(), 3);

    let r = response(results, &name("bidi-half"));
    assert!(r.error.is_unset(), "{:?}", r.error);
    assert_eq!(r.payloads.len(), 2);
    let info = r.payloads[0]
        .request_info
        .as_option()
        .expect("request info");
    assert_eq!(
        info.requests.len(),
        2,
        "half duplex echoes every request first"
    );

    if setup.version == pb::HTTPVersion::HTTP_VERSION_2 {
        let r = response(results, &name("bidi-full"));
        assert!(r.error.is_unset(), "{:?}", r.error);
        assert_eq!(r.payloads.len(), 2);
        for payload in &r.payloads {
            let info = payload.request_info.as_option().expect("request info");
            assert_eq!(
                info.requests.len(),
                1,
                "full duplex echoes one request each"
            );
        }
    }

    let r = response(results, &name("timeout"));
    assert_eq!(code(r), Some(pb::Code::CODE_DEADLINE_EXCEEDED));

    let r = response(results, &name("cancel-after-responses"));
    assert_eq!(code(r), Some(pb::Code::CODE_CANCELED));
    assert_eq!(r.payloads.len(), 1);

    if setup.protocol == pb::Protocol::PROTOCOL_CONNECT {
        let r = response(results, &name("get"));
        assert!(r.error.is_unset(), "{:?}", r.error);
        let info = r.payloads[0]
            .request_info
            .as_option()
            .expect("request info");
        let get = info.connect_get_info.as_option().expect("GET query echoed");
        assert!(has(&get.query_params, "encoding", "proto"));
    }
}

#[test]
fn every_protocol_through_both_programs() {
    let (_server, server) = start_server(pb::ServerCompatRequest {
        protocol: pb::Protocol::PROTOCOL_CONNECT.into(),
        http_version: pb::HTTPVersion::HTTP_VERSION_2.into(),
        message_receive_limit: 200 * 1024,
        ..Default::default()
    });
    let requests: Vec<_> = SETUPS.iter().flat_map(|s| cases(*s, &server)).collect();
    let results = run_client(&requests);
    assert_eq!(results.len(), requests.len());
    for setup in SETUPS {
        check(setup, &results);
    }
}

/// The prost programs against each other and against the buffa ones: every case of
/// `every_protocol_through_both_programs`, binary and JSON (the gRPC-Web setup speaks JSON, so
/// the `Any`s in request info cross the wire in canonical JSON both ways).
#[cfg(feature = "prost")]
#[test]
fn prost_programs_through_every_protocol() {
    let servers = [
        (
            "prost server",
            env!("CARGO_BIN_EXE_volley-conformance-server-prost"),
        ),
        (
            "buffa server",
            env!("CARGO_BIN_EXE_volley-conformance-server"),
        ),
    ];
    let clients = [
        (
            "prost client",
            env!("CARGO_BIN_EXE_volley-conformance-client-prost"),
        ),
        (
            "buffa client",
            env!("CARGO_BIN_EXE_volley-conformance-client"),
        ),
    ];
    for (server_name, server_program) in servers {
        for (client_name, client_program) in clients {
            if server_name == "buffa server" && client_name == "buffa client" {
                continue; // every_protocol_through_both_programs
            }
            eprintln!("{server_name} with {client_name}");
            let (_server, server) = start_server_program(
                server_program,
                pb::ServerCompatRequest {
                    protocol: pb::Protocol::PROTOCOL_CONNECT.into(),
                    http_version: pb::HTTPVersion::HTTP_VERSION_2.into(),
                    message_receive_limit: 200 * 1024,
                    ..Default::default()
                },
            );
            let requests: Vec<_> = SETUPS.iter().flat_map(|s| cases(*s, &server)).collect();
            let results = run_client_program(client_program, &requests);
            assert_eq!(
                results.len(),
                requests.len(),
                "{server_name} with {client_name}"
            );
            for setup in SETUPS {
                check(setup, &results);
            }
        }
    }
}

/// A CA, and a certificate it signed for localhost.
fn issue(ca: &rcgen::Issuer<'_, rcgen::KeyPair>, name: &str) -> pb::TLSCreds {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.signed_by(&key, ca).unwrap();
    pb::TLSCreds {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
        ..Default::default()
    }
}

#[test]
fn tls_with_client_certificates() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "conformance test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let server_creds = issue(&ca, "server");
    let client_creds = issue(&ca, "client");
    let (_server, server) = start_server(pb::ServerCompatRequest {
        protocol: pb::Protocol::PROTOCOL_GRPC.into(),
        http_version: pb::HTTPVersion::HTTP_VERSION_2.into(),
        use_tls: true,
        client_tls_cert: ca_cert.pem().into_bytes(),
        server_creds: server_creds.clone().into(),
        ..Default::default()
    });
    assert_eq!(
        server.pem_cert, server_creds.cert,
        "the server echoes its certificate"
    );
    // The server's certificate is signed by the CA, so the client trusts the CA.
    let server = pb::ServerCompatResponse {
        pem_cert: ca_cert.pem().into_bytes(),
        ..server
    };
    let unary = to_any(&pb::UnaryRequest {
        response_definition: pb::UnaryResponseDefinition {
            response: Some(UnaryDef::ResponseData(b"secure".to_vec())),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    });
    let mut requests = Vec::new();
    for setup in SETUPS {
        let mut with_cert = base(
            setup,
            &server,
            "tls",
            "Unary",
            pb::StreamType::STREAM_TYPE_UNARY,
            vec![unary.clone()],
        );
        with_cert.client_tls_creds = client_creds.clone().into();
        requests.push(with_cert);
        let mut without = base(
            setup,
            &server,
            "tls-no-client-cert",
            "Unary",
            pb::StreamType::STREAM_TYPE_UNARY,
            vec![unary.clone()],
        );
        without.timeout_ms = Some(5_000);
        requests.push(without);
    }
    let results = run_client(&requests);
    for setup in SETUPS {
        let r = response(&results, &format!("{}/tls", setup.name));
        assert!(r.error.is_unset(), "{}: {:?}", setup.name, r.error);
        assert_eq!(r.payloads[0].data, b"secure");
        let r = response(&results, &format!("{}/tls-no-client-cert", setup.name));
        assert!(
            r.error.is_set(),
            "{}: a client without a certificate is refused",
            setup.name
        );
    }
}
