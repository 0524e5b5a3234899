//! The middleware example over real sockets (axum serving the Volley router behind a tower
//! layer): bearer auth on every protocol, the ACL from a custom method option, identities and
//! request ids reaching handlers, the client call log, and `buf curl` as an independent client.

use std::path::PathBuf;

use middleware::proto::acme::admin::v1 as pb;
use middleware::{BearerAuth, CallLog, Caller, LogEntry};
use volley::client::HttpVersion;
use volley::{CallOptions, Client, ClientConfig, Code, Protocol};

fn auth() -> BearerAuth {
    BearerAuth::new([
        (
            "t-admin".to_string(),
            Caller {
                name: "ada".into(),
                role: "admin".into(),
            },
        ),
        (
            "t-user".to_string(),
            Caller {
                name: "bob".into(),
                role: "user".into(),
            },
        ),
    ])
}

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, middleware::app(auth())).await });
    addr
}

fn client(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    log: &CallLog,
) -> pb::AdminServiceClient<volley::client::HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .http_version(HttpVersion::Http2)
        .interceptor(log.clone());
    pb::AdminServiceClient::new(Client::new(config).unwrap())
}

fn token(t: &str) -> CallOptions {
    CallOptions::new().with_header("authorization", &format!("Bearer {t}"))
}

#[tokio::test]
async fn auth_acl_identity_and_logging_on_every_protocol() {
    let addr = serve().await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let log = CallLog::default();
        let c = client(addr, protocol, &log);
        let req = pb::WhoamiRequest::default;

        let err = c.whoami(req()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{protocol:?}");
        let err = c.whoami_with(req(), token("nope")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{protocol:?}");

        let me = c
            .whoami_with(req(), token("t-user").with_header("x-request-id", "rid-7"))
            .await
            .unwrap();
        assert_eq!(
            me.message().caller,
            "bob",
            "{protocol:?}: identity from the interceptor"
        );
        assert_eq!(
            me.message().request_id,
            "rid-7",
            "{protocol:?}: extension from the tower layer"
        );
        assert_eq!(me.headers()["x-request-id"], "rid-7");

        let err = c.shutdown_with(req(), token("t-user")).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::PermissionDenied,
            "{protocol:?}: the ACL comes from the proto option"
        );
        let ok = c.shutdown_with(req(), token("t-admin")).await.unwrap();
        assert_eq!(ok.message().role, "admin");

        let err = c
            .count(pb::CountRequest {
                up_to: 3,
                ..Default::default()
            })
            .await;
        let err = match err {
            Err(e) => e,
            Ok(res) => res.into_message().message().await.unwrap_err(),
        };
        assert_eq!(
            err.code(),
            Code::Unauthenticated,
            "{protocol:?}: streams are guarded"
        );
        let mut s = c
            .count_with(
                pb::CountRequest {
                    up_to: 3,
                    ..Default::default()
                },
                token("t-user"),
            )
            .await
            .unwrap()
            .into_message();
        let mut got = Vec::new();
        while let Some(m) = s.message().await.unwrap() {
            got.push(m.n);
        }
        assert_eq!(got, [1, 2, 3]);

        let outcomes: Vec<LogEntry> = log.entries();
        let names: Vec<&str> = outcomes.iter().map(|e| e.outcome.as_str()).collect();
        assert_eq!(
            names,
            [
                "unauthenticated",
                "unauthenticated",
                "ok",
                "permission_denied",
                "ok",
                "unauthenticated",
                "ok"
            ],
            "{protocol:?}: the client log saw every call, streams included"
        );
        assert_eq!(outcomes[0].method, "acme.admin.v1.AdminService/Whoami");
    }
}

fn buf() -> Option<PathBuf> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/node_modules/.bin/buf");
    path.exists().then_some(path)
}

#[tokio::test]
async fn buf_curl_is_rejected_without_a_token_on_every_protocol() {
    let Some(buf) = buf() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "buf must be installed in CI (scripts/install-peers.sh)"
        );
        eprintln!(
            "skipped: interop/node_modules/.bin/buf is missing (run scripts/install-peers.sh)"
        );
        return;
    };
    let addr = serve().await;
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let url = format!("http://{addr}/acme.admin.v1.AdminService/Whoami");
    for flags in [
        vec!["--protocol", "connect"],
        vec!["--protocol", "grpc", "--http2-prior-knowledge"],
        vec!["--protocol", "grpcweb"],
    ] {
        let run = |extra: &[&str]| {
            let buf = buf.clone();
            let mut args: Vec<String> = vec!["curl".into(), "--schema".into(), schema.into()];
            args.extend(flags.iter().map(|s| s.to_string()));
            args.extend(extra.iter().map(|s| s.to_string()));
            args.push("-d".into());
            args.push("{}".into());
            args.push(url.clone());
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(buf).args(args).output().unwrap()
            })
        };
        let denied = run(&[]).await.unwrap();
        // buf curl exits with the RPC code x 8: unauthenticated (16) -> 128.
        assert_eq!(
            denied.status.code(),
            Some(128),
            "{flags:?}: {}",
            String::from_utf8_lossy(&denied.stderr)
        );
        let allowed = run(&["-H", "authorization: Bearer t-admin"]).await.unwrap();
        assert!(
            allowed.status.success(),
            "{flags:?}: {}",
            String::from_utf8_lossy(&allowed.stderr)
        );
        assert!(String::from_utf8_lossy(&allowed.stdout).contains("\"caller\": \"ada\""));
    }
}
