//! Every RPC gets a `rpc` span on the server and on the client, with OpenTelemetry's RPC
//! attributes and the final status code. A minimal subscriber records what is emitted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use buffa_types::google::protobuf::StringValue;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Protocol, Request, Response,
    Router, Spec, StreamType,
};

type Spans = Arc<Mutex<HashMap<u64, HashMap<String, String>>>>;

struct Recorder {
    spans: Spans,
    next: AtomicU64,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = HashMap::new();
        fields.insert("name".to_string(), attrs.metadata().name().to_string());
        attrs.record(&mut Fields(&mut fields));
        self.spans.lock().unwrap().insert(id, fields);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(fields) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

const SAY: Spec = Spec::new("/demo.v1.Talk/Say", StreamType::Unary, Idempotency::Unknown);

#[tokio::test]
async fn server_and_client_spans_carry_rpc_attributes() {
    let spans: Spans = Arc::default();
    tracing::subscriber::set_global_default(Recorder {
        spans: spans.clone(),
        next: AtomicU64::new(0),
    })
    .expect("first subscriber");
    let router = Router::new().unary(SAY, |req: Request<StringValue>| async move {
        if req.message().value == "fail" {
            return Err(Error::not_found("nothing"));
        }
        Ok(Response::new(req.into_message()))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(Protocol::Grpc);
    let client = Client::new(config).unwrap();
    let ok = StringValue {
        value: "hi".into(),
        ..Default::default()
    };
    client
        .unary::<_, StringValue>(SAY, ok, CallOptions::new())
        .await
        .unwrap();
    let bad = StringValue {
        value: "fail".into(),
        ..Default::default()
    };
    let err = client
        .unary::<_, StringValue>(SAY, bad, CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let spans = spans.lock().unwrap();
    let rpc: Vec<&HashMap<String, String>> =
        spans.values().filter(|f| f["name"] == "rpc").collect();
    let find = |kind: &str, status: &str| {
        rpc.iter().any(|f| {
            f.get("otel.kind").map(String::as_str) == Some(kind)
                && f.get("rpc.system").map(String::as_str) == Some("grpc")
                && f.get("rpc.service").map(String::as_str) == Some("demo.v1.Talk")
                && f.get("rpc.method").map(String::as_str) == Some("Say")
                && f.get("rpc.status_code").map(String::as_str) == Some(status)
        })
    };
    assert!(find("server", "ok"), "server ok span in {rpc:?}");
    assert!(find("server", "not_found"), "server error span in {rpc:?}");
    assert!(find("client", "ok"), "client ok span in {rpc:?}");
    assert!(find("client", "not_found"), "client error span in {rpc:?}");
}
