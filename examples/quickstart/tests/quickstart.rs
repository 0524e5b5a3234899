//! Runs the quickstart binary on a free port and calls it with the generated client over every
//! protocol and codec, and with `curl` posting JSON.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use volley::{Client, ClientConfig, Codec, JsonCodec, ProtoCodec, Protocol};

mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

use proto::greet::v1::{GreetRequest, GreetServiceClient};

/// The running binary; killed when dropped.
struct Running {
    child: Child,
    addr: String,
    greeting: String,
    hint: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `quickstart 127.0.0.1:0` and reads the three lines it prints first.
fn start() -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the quickstart binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the quickstart binary prints its lines within 30 s")
    };
    let serving = next();
    let addr = serving
        .strip_prefix("serving on http://")
        .unwrap_or_else(|| panic!("unexpected first line {serving:?}"))
        .to_string();
    let greeting = next();
    let hint = next();
    Running {
        child,
        addr,
        greeting,
        hint,
    }
}

#[test]
fn main_serves_calls_and_prints_the_reply() {
    let running = start();
    assert!(running.addr.starts_with("127.0.0.1:"), "{}", running.addr);
    assert_ne!(running.addr, "127.0.0.1:0");
    assert_eq!(running.greeting, "Hello, World!");
    assert_eq!(
        running.hint,
        format!(
            "try: curl --header 'Content-Type: application/json' --data '{{\"name\": \"curl\"}}' \
             http://{}/greet.v1.GreetService/Greet",
            running.addr
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_over_every_protocol_and_codec() {
    let running = start();
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for codec in [&ProtoCodec as &dyn Codec, &JsonCodec] {
            let what = format!("{protocol:?}/{codec:?}");
            let config = ClientConfig::new(format!("http://{}", running.addr))
                .unwrap()
                .protocol(protocol)
                .codec(codec);
            let client = GreetServiceClient::new(Client::new(config).unwrap());
            let reply = client
                .greet(GreetRequest {
                    name: what.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(reply.message().greeting, format!("Hello, {what}!"));
        }
    }
}

#[test]
fn curl_posts_json() {
    let running = start();
    let url = format!("http://{}/greet.v1.GreetService/Greet", running.addr);
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--include"])
        .args(["--header", "Content-Type: application/json"])
        .args(["--data", r#"{"name": "curl"}"#])
        .arg(&url)
        .output()
        .expect("curl must be installed to run this test (apt-get install curl)");
    assert!(output.status.success(), "curl failed: {output:?}");
    let text = String::from_utf8(output.stdout).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    assert_eq!(body, r#"{"greeting":"Hello, curl!"}"#);

    // A number where a string belongs is a JSON decoding error, answered in the Connect error format.
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--write-out", "\n%{http_code}"])
        .args(["--header", "Content-Type: application/json"])
        .args(["--data", r#"{"name": 5}"#])
        .arg(&url)
        .output()
        .expect("curl must be installed to run this test (apt-get install curl)");
    let text = String::from_utf8(output.stdout).expect("utf-8 response");
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    assert_eq!(status, "400", "{body}");
    assert!(body.contains(r#""code":"invalid_argument""#), "{body}");
}
