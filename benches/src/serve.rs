//! What every server binary shares: the `--addr` argument and the runtime (tokio's
//! multi-threaded scheduler with its default worker count, the same for every contender).

use std::net::SocketAddr;

/// The address given as `--addr HOST:PORT` (default `127.0.0.1:8080`).
pub fn addr() -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:8080");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or_else(|| usage("--addr needs a value")),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    addr.parse()
        .unwrap_or_else(|_| usage(&format!("not an address: {addr:?}")))
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: {} [--addr HOST:PORT]",
        env!("CARGO_PKG_NAME")
    );
    std::process::exit(2)
}

/// Binds `addr`, prints `listening on ADDR`, and runs `serve` on the listener in a fresh
/// multi-threaded runtime until it fails.
pub fn run<F, Fut, E>(serve: F)
where
    F: FnOnce(tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let addr = addr();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("binding {addr}: {err}");
                std::process::exit(1);
            }
        };
        println!(
            "listening on {}",
            listener.local_addr().expect("local address")
        );
        if let Err(err) = serve(listener).await {
            eprintln!("serving: {err}");
            std::process::exit(1);
        }
    });
}
