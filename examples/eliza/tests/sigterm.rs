//! The `eliza` binary stops gracefully on SIGTERM: with 50 conversations open it sends
//! GOAWAY, stops accepting, completes a unary call in flight, cuts the conversations when the
//! grace period ends and exits 0 within the grace period plus 2 s.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use volley_tests::h2frames::{self, RawH2};
use volley_tests::process::ServerProcess;
use volley_tests::raw::envelope;

const SAY: &str = "/connectrpc.eliza.v1.ElizaService/Say";
const CONVERSE: &str = "/connectrpc.eliza.v1.ElizaService/Converse";
const GRPC: [(&str, &str); 2] = [("content-type", "application/grpc"), ("te", "trailers")];

/// The address in eliza's first line, `Eliza is listening on http://ADDR (...`.
fn listening(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_50_open_streams() -> anyhow::Result<()> {
    let grace = Duration::from_millis(1500);
    let mut server = ServerProcess::start(
        env!("CARGO_BIN_EXE_eliza"),
        &[],
        &["--addr", "127.0.0.1:0", "--grace-ms", "1500"],
        listening,
    )?;
    let addr = server.addr;
    let mut h2 = RawH2::connect(addr, &[]).await?;
    // 50 conversations, each answered once and left open.
    let streams: Vec<u32> = (0..50).map(|i| 1 + 2 * i).collect();
    for &id in &streams {
        h2.post(id, CONVERSE, &GRPC, false).await?;
        h2.data(id, &envelope(0, b""), false).await?;
    }
    let mut answered = std::collections::HashSet::new();
    while answered.len() < streams.len() {
        let frame = h2
            .read_until(Duration::from_secs(10), |f| f.kind == h2frames::DATA)
            .await?
            .context("closed before every conversation was answered")?;
        ensure!(
            frame.flags & h2frames::END_STREAM == 0,
            "a conversation ended"
        );
        answered.insert(frame.stream);
    }
    // A unary call in flight: its request message is still to come.
    let unary = 101;
    h2.post(unary, SAY, &GRPC, false).await?;

    let signalled = Instant::now();
    server.signal("TERM")?;
    let goaway = h2
        .read_until(Duration::from_secs(1), |f| f.kind == h2frames::GOAWAY)
        .await?
        .context("closed without a GOAWAY")?;
    ensure!(goaway.error_code() == Some(0), "GOAWAY {goaway:?}");
    eprintln!("GOAWAY {:?} after SIGTERM", signalled.elapsed());

    // The unary call completes: a reply message, then trailers that end the stream.
    h2.data(unary, &envelope(0, b""), true).await?;
    let mut replied = false;
    loop {
        let frame = h2
            .read_until(Duration::from_secs(2), |f| f.stream == unary)
            .await?
            .context("closed before the unary call completed")?;
        match frame.kind {
            h2frames::DATA if !frame.payload.is_empty() => replied = true,
            h2frames::HEADERS if frame.flags & h2frames::END_STREAM != 0 => break,
            h2frames::RST_STREAM => anyhow::bail!("the unary call was reset: {frame:?}"),
            _ => {}
        }
    }
    ensure!(replied, "the unary call ended without a reply");
    eprintln!(
        "in-flight unary completed {:?} after SIGTERM",
        signalled.elapsed()
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    // The conversations are cut when the grace period ends, not before.
    ensure!(
        h2.closed_within(grace + Duration::from_secs(2)).await,
        "the connection outlived the grace period"
    );
    let cut = signalled.elapsed();
    ensure!(
        cut >= grace - Duration::from_millis(200),
        "conversations cut {cut:?} after SIGTERM, before the grace period"
    );
    let status = loop {
        if let Some(status) = server.child.try_wait()? {
            break status;
        }
        ensure!(
            signalled.elapsed() < grace + Duration::from_secs(2),
            "still running {:?} after SIGTERM",
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exited = signalled.elapsed();
    ensure!(status.success(), "exit status {status}");
    eprintln!("connection cut {cut:?} and exit 0 {exited:?} after SIGTERM (grace {grace:?})");
    Ok(())
}
