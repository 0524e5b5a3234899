//! A gzip bomb (about 1 MB on the wire, 1 GiB inflated) is refused with `resource_exhausted`
//! by every protocol without the server inflating it: the server runs in this process, so
//! its peak resident memory (VmHWM) shows whether anything near the inflated size was ever
//! held. Alone in its binary so no other test moves the peak.

use http::StatusCode;
use volley_tests::compress::gzip_bomb;
use volley_tests::raw::{Http, RawClient, envelope};
use volley_tests::rpc::{self, Call, Codec, Protocol};
use volley_tests::{ECHO, EchoRequest, interop_router, memory_kib, spawn_server};

const ECHO_PATH: &str = "/volley.interop.v1.InteropService/Echo";
const STREAM_PATH: &str = "/volley.interop.v1.InteropService/ServerStream";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_is_refused_without_inflating() -> anyhow::Result<()> {
    let bomb = gzip_bomb(1024)?;
    assert!(
        (500_000..2_000_000).contains(&bomb.len()),
        "{} bytes on the wire",
        bomb.len()
    );
    let (addr, _server) = spawn_server(interop_router()).await?;
    let client = RawClient::new(addr);
    // Warm up connections and buffers so the measurement sees only the bomb.
    for http in Http::ALL {
        let out = rpc::call(
            &client,
            &Call::new(Protocol::Connect, Codec::Proto, "gzip", http),
            &ECHO,
            &[EchoRequest::default()],
        )
        .await?;
        assert!(out.error.is_none());
    }
    let Some((hwm_before, _)) = memory_kib() else {
        anyhow::bail!("/proc/self/status is not readable");
    };
    let enveloped = envelope(1, &bomb);
    // One bomb per protocol, HTTP versions alternating (each costs a second of bounded
    // inflation in a debug build).
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[
                ("content-type", "application/proto"),
                ("content-encoding", "gzip"),
            ],
            bomb.clone(),
        )
        .await?;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.json()?["code"], "resource_exhausted");
    // Connect streaming: one compressed envelope.
    let reply = client
        .post(
            Http::H2,
            STREAM_PATH,
            &[
                ("content-type", "application/connect+proto"),
                ("connect-content-encoding", "gzip"),
            ],
            enveloped.clone(),
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    let body = String::from_utf8_lossy(&reply.body);
    assert!(body.contains("resource_exhausted"), "{body}");
    // gRPC-Web.
    let reply = client
        .post(
            Http::H1,
            ECHO_PATH,
            &[
                ("content-type", "application/grpc-web"),
                ("grpc-encoding", "gzip"),
            ],
            enveloped.clone(),
        )
        .await?;
    assert_eq!(reply.header("grpc-status"), Some("8"));
    // gRPC.
    let reply = client
        .post(
            Http::H2,
            ECHO_PATH,
            &[
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-encoding", "gzip"),
            ],
            enveloped.clone(),
        )
        .await?;
    assert_eq!(reply.header("grpc-status"), Some("8"));
    let Some((hwm_after, rss_after)) = memory_kib() else {
        anyhow::bail!("/proc/self/status is not readable");
    };
    let growth_mib = hwm_after.saturating_sub(hwm_before) / 1024;
    assert!(
        growth_mib < 64,
        "peak memory grew by {growth_mib} MiB (now {hwm_after} KiB, RSS {rss_after} KiB) \
         for 4 bombs of 1 GiB each"
    );
    // Still serving.
    let out = rpc::call(
        &client,
        &Call::new(Protocol::Grpc, Codec::Proto, "gzip", Http::H2),
        &ECHO,
        &[EchoRequest {
            text: "after".into(),
            ..Default::default()
        }],
    )
    .await?;
    assert_eq!(out.single()?.text, "after");
    Ok(())
}
