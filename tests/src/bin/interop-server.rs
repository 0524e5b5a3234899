//! Volley's interop server for the foreign clients in `interop/` (connect-node, grpcio,
//! `buf curl`, plain `curl`, connect-web in Chromium): serves `volley_tests::interop_router()`
//! with CORS on one port, HTTP/1.1 and h2c (or, with `--tls`, HTTP/2 and HTTP/1.1 by ALPN).
//!
//! ```text
//! interop-server [--port N] [--tls CERT_PEM_OUT] [--http3] [--no-cors] [--grace-ms N]
//! ```
//!
//! Prints `LISTENING <port>` once it accepts connections (`--port 0`, the default, picks a free
//! port). `--tls` generates a self-signed certificate for `localhost` and `127.0.0.1` and writes
//! it (PEM) to the given path for clients to trust; `--http3` (with `--tls`) also serves HTTP/3
//! over QUIC on the same port number (UDP). `--no-cors` turns CORS off (to see the
//! browser test fail). `--grace-ms` sets the shutdown grace period (default 10 s). Stops
//! gracefully on SIGTERM and SIGINT, or when its stdin is a pipe that closes.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use volley::Cors;
use volley::server::{Server, TlsConfig};

const USAGE: &str =
    "usage: interop-server [--port N] [--tls CERT_PEM_OUT] [--http3] [--no-cors] [--grace-ms N]";

/// Response headers the interop tests read from a browser, besides the protocols' own.
const EXPOSED: [&str; 3] = [
    "x-test-echo-header",
    "x-test-echo-trailer",
    "x-test-bin-bin",
];

struct Args {
    port: u16,
    tls: Option<PathBuf>,
    http3: bool,
    cors: bool,
    grace: std::time::Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        port: 0,
        tls: None,
        http3: false,
        cors: true,
        grace: std::time::Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                args.port = v.parse().with_context(|| format!("bad --port {v:?}"))?;
            }
            "--tls" => args.tls = Some(PathBuf::from(value("--tls")?)),
            "--no-cors" => args.cors = false,
            "--http3" => args.http3 = true,
            "--grace-ms" => {
                let v = value("--grace-ms")?;
                let ms = v.parse().with_context(|| format!("bad --grace-ms {v:?}"))?;
                args.grace = std::time::Duration::from_millis(ms);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

/// Exits when stdin is a pipe and its writer goes away (a parent that dies without SIGTERM).
/// Stdin that is not a pipe (a terminal, `/dev/null` for background jobs) is left alone.
fn exit_when_stdin_closes() {
    use std::os::unix::fs::FileTypeExt as _;
    let is_pipe = std::fs::metadata("/proc/self/fd/0")
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false);
    if !is_pipe {
        return;
    }
    std::thread::spawn(|| {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`; writes the certificate
/// (PEM) to `cert_out` and returns the server's TLS configuration.
fn self_signed(cert_out: &PathBuf) -> anyhow::Result<TlsConfig> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .context("generating a self-signed certificate")?;
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    std::fs::write(cert_out, &cert_pem)
        .with_context(|| format!("writing the certificate to {}", cert_out.display()))?;
    TlsConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).context("TLS configuration")
}

fn main() -> anyhow::Result<()> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("interop-server: {e:#}\n{USAGE}");
            std::process::exit(2);
        }
    };
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut router = volley_tests::interop_router();
    if args.cors {
        router = router.cors(Cors::allow_any_origin().expose_headers(EXPOSED));
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr()?.port();
    let mut server = Server::from_listener(listener);
    if let Some(path) = &args.tls {
        server = server.tls(self_signed(path)?);
    }
    if args.http3 {
        if args.tls.is_none() {
            bail!("--http3 needs --tls");
        }
        server = server.http3(true);
    }
    println!("LISTENING {port}");
    std::io::stdout().flush()?;
    eprintln!(
        "interop-server: serving {} on 127.0.0.1:{port} (CORS {})",
        if args.http3 {
            "TLS (h2 + http/1.1) and HTTP/3 (QUIC)"
        } else if args.tls.is_some() {
            "TLS (h2 + http/1.1)"
        } else {
            "HTTP/1.1 + h2c"
        },
        if args.cors { "on" } else { "off" },
    );
    // SIGTERM and SIGINT stop the server gracefully: GOAWAY, calls in flight finish within
    // the grace period, then the process exits 0.
    server
        .grace_period(args.grace)
        .serve_with_shutdown(router, volley::server::shutdown_signal())
        .await
        .context("serving")
}
