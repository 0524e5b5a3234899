//! The gateway in front of the Eliza server, both on real sockets: the real `curl` binary
//! calls Say (Connect unary JSON) and Introduce (Connect server streaming, enveloped JSON)
//! through it, with the schema from a descriptor-set file and from Eliza's reflection; the
//! typed Eliza client calls every method through it over gRPC and Connect.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use eliza::proto::connectrpc::eliza::v1::{
    ConverseRequest, ElizaServiceClient, IntroduceRequest, SayRequest,
};
use futures_util::StreamExt as _;
use volley::client::HttpTransport;
use volley::{Client, ClientConfig, Codec, JsonCodec, ProtoCodec, Protocol, Router};
use volley_dynamic::Schema;

const ELIZA: &str = "connectrpc.eliza.v1.ElizaService";

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

fn backend(addr: SocketAddr) -> Client<HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(Protocol::Grpc)
        .codec(ProtoCodec)
        .timeout(Duration::from_secs(10));
    Client::new(config).unwrap()
}

/// Eliza (with health and reflection) and a gateway in front of it; the schema from
/// reflection when `reflect`, else from a descriptor-set file.
async fn start(reflect: bool) -> SocketAddr {
    let (router, reporter) = eliza::app();
    std::mem::forget(reporter); // Keep Eliza SERVING for the whole test.
    let eliza = serve(router).await;
    let client = backend(eliza);
    let schema = if reflect {
        Schema::from_reflection(&client).await.unwrap()
    } else {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eliza.binpb");
        std::fs::write(&path, eliza::proto::FILE_DESCRIPTOR_SET).unwrap();
        Schema::from_file(&path).unwrap()
    };
    assert!(
        schema.services().contains(&ELIZA.to_string()),
        "{:?}",
        schema.services()
    );
    serve(gateway::gateway(&schema, client)).await
}

/// Runs curl; a machine without it fails the test loudly.
fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run curl ({e}): install it (scripts/install-peers.sh does, with apt)")
        });
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The status code is the last line written.
    let mut body = out.stdout;
    let at = body.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[at + 1..]).to_string();
    body.truncate(at);
    (status, body)
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// A Connect unary JSON POST to Say.
fn say(gateway: SocketAddr, sentence: &str) -> (String, serde_json::Value) {
    let body = serde_json::json!({ "sentence": sentence }).to_string();
    let url = format!("http://{gateway}/{ELIZA}/Say");
    let (status, out) = curl(&[
        "-H",
        "Content-Type: application/json",
        "--data",
        &body,
        &url,
    ]);
    (status, json(&out))
}

/// A Connect server-streaming call to Introduce with one enveloped JSON message, sent by curl
/// from a file: the JSON messages and the end-of-stream message.
fn introduce(gateway: SocketAddr, name: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let message = serde_json::json!({ "name": name }).to_string();
    let mut envelope = vec![0u8];
    envelope.extend_from_slice(&(message.len() as u32).to_be_bytes());
    envelope.extend_from_slice(message.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("introduce.bin");
    std::fs::write(&file, envelope).unwrap();
    let url = format!("http://{gateway}/{ELIZA}/Introduce");
    let data = format!("@{}", file.display());
    let (status, out) = curl(&[
        "-H",
        "Content-Type: application/connect+json",
        "--data-binary",
        &data,
        &url,
    ]);
    assert_eq!(status, "200", "{}", String::from_utf8_lossy(&out));
    let mut messages = Vec::new();
    let mut rest = &out[..];
    while rest.len() >= 5 {
        let flags = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let frame = &rest[5..5 + len];
        rest = &rest[5 + len..];
        if flags & 0x02 != 0 {
            assert!(rest.is_empty(), "bytes after the end-of-stream message");
            return (messages, json(frame));
        }
        messages.push(json(frame));
    }
    panic!(
        "no end-of-stream message in {:?}",
        String::from_utf8_lossy(&out)
    );
}

async fn check_through_curl(reflect: bool) {
    let gateway = start(reflect).await;
    tokio::task::spawn_blocking(move || {
        let (status, reply) = say(gateway, "I feel happy.");
        assert_eq!(status, "200", "{reply}");
        let sentence = reply["sentence"].as_str().unwrap();
        assert_eq!(sentence, eliza::responder::reply("I feel happy."));
        assert!(sentence.contains("happy"), "{sentence}");

        let (messages, end) = introduce(gateway, "Ada");
        let sentences: Vec<String> = messages
            .iter()
            .map(|m| m["sentence"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(sentences, eliza::responder::introduce("Ada"));
        assert!(end.get("error").is_none(), "{end}");

        // Say has no side effects (idempotency_level from the descriptors): Connect GET works.
        let url = format!(
            "http://{gateway}/{ELIZA}/Say?connect=v1&encoding=json&message=%7B%22sentence%22%3A%22I%20feel%20happy.%22%7D"
        );
        let (status, out) = curl(&[&url]);
        assert_eq!(status, "200", "{}", String::from_utf8_lossy(&out));
        assert_eq!(json(&out)["sentence"], eliza::responder::reply("I feel happy."));

        // Bad JSON is the gateway's invalid_argument; the backend never sees it.
        let url = format!("http://{gateway}/{ELIZA}/Say");
        let (status, out) = curl(&[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"sentence": 42}"#,
            &url,
        ]);
        assert_eq!(status, "400");
        assert_eq!(json(&out)["code"], "invalid_argument");

        // A method the backend does not have is the gateway's 404.
        let url = format!("http://{gateway}/{ELIZA}/Sing");
        let (status, _) = curl(&["-H", "Content-Type: application/json", "--data", "{}", &url]);
        assert_eq!(status, "404");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_calls_eliza_through_the_gateway_with_descriptors_from_a_file() {
    check_through_curl(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_calls_eliza_through_the_gateway_with_descriptors_from_reflection() {
    check_through_curl(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_calls_every_method_through_the_gateway() {
    let gateway = start(true).await;
    for (protocol, codec) in [
        (Protocol::Grpc, &ProtoCodec as &'static dyn Codec),
        (Protocol::Connect, &JsonCodec),
        (Protocol::GrpcWeb, &ProtoCodec),
    ] {
        let what = format!("{protocol:?}/{codec:?}");
        let config = ClientConfig::new(format!("http://{gateway}"))
            .unwrap()
            .protocol(protocol)
            .codec(codec)
            .http_version(volley::client::HttpVersion::Http2)
            .timeout(Duration::from_secs(10));
        let client = ElizaServiceClient::new(Client::new(config).unwrap());
        let reply = client
            .say(SayRequest {
                sentence: "I feel happy".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(
            reply.message().sentence,
            eliza::responder::reply("I feel happy"),
            "{what}"
        );

        let intro: Vec<String> = client
            .introduce(IntroduceRequest {
                name: "Ada".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_message()
            .map(|m| m.unwrap().sentence)
            .collect()
            .await;
        assert_eq!(intro, eliza::responder::introduce("Ada"), "{what}");

        // Bidi: each sentence answered in turn, through the gateway's two streams.
        let mut converse = client.converse().await.unwrap();
        for said in ["I feel sad", "I am tired"] {
            converse
                .send(ConverseRequest {
                    sentence: said.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let reply = converse.message().await.unwrap().unwrap();
            assert_eq!(reply.sentence, eliza::responder::reply(said), "{what}");
        }
        converse.close_send();
        assert!(converse.message().await.unwrap().is_none(), "{what}");
    }
}
