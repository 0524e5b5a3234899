//! Client-side balancing with retries. [`Backend::start`] serves a small pool member on a
//! local port; [`client`] balances calls over the members' URLs (power of two choices by calls
//! in flight; a member failing with `unavailable` is ejected for a while) and retries a failed
//! call of an idempotent method on another member, within a retry budget. [`run`] puts them
//! together: calls go on while one member is stopped, and none fails. [`run_registry`] lists
//! the members in a registry the balancer re-reads periodically, as it would DNS: one leaves,
//! one joins, no call fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use tokio::net::TcpListener;
use volley::client::{Balanced, RetryPolicy};
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Error, Idempotency, Protocol, Request, Response, Router,
    Spec, StreamType,
};

/// Answers the serving member's name. Side-effect free, so calls to it may be retried.
pub const WHO: Spec = Spec::new(
    "/pool.v1.Pool/Who",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);

/// One pool member: a server on a local port that counts its calls.
pub struct Backend {
    /// Its base URL.
    pub url: String,
    /// Calls it answered.
    pub calls: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Backend {
    /// Starts member `name` on a free local port.
    pub async fn start(name: &str) -> std::io::Result<Self> {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let name = name.to_owned();
        let router = Router::new().unary(WHO, move |_request: Request<StringValue>| {
            counted.fetch_add(1, Ordering::SeqCst);
            let name = name.clone();
            async move { Ok::<_, Error>(Response::new(StringValue::from(name))) }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::from_listener(listener)
                .grace_period(Duration::ZERO)
                .serve_with_shutdown(router, async move {
                    let _ = stopped.await;
                }),
        );
        Ok(Self {
            url,
            calls,
            stop: Some(stop),
            task,
        })
    }

    /// Stops serving at once (listener closed, connections cut) and waits until it has.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(std::io::Error::other)?
    }

    /// Calls answered so far.
    pub fn served(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A client over `urls`, speaking `protocol`, retrying idempotent calls up to 3 attempts.
pub fn client(urls: &[&str], protocol: Protocol) -> Result<(Client<Balanced>, Balanced), Error> {
    let config = ClientConfig::new("http://pool")?.protocol(protocol).retry(
        RetryPolicy::new().max_attempts(3).backoff(
            Duration::from_millis(2),
            Duration::from_millis(20),
            2.0,
        ),
    );
    let balanced =
        Balanced::new(&config, urls.iter().copied())?.ejection_time(Duration::from_secs(30));
    Ok((Client::with_transport(config, balanced.clone()), balanced))
}

/// What [`run`] saw.
#[derive(Debug)]
pub struct Outcome {
    /// Calls each member answered.
    pub served: Vec<usize>,
    /// What the stopped member had answered when it stopped.
    pub served_when_stopped: usize,
    /// Calls that failed.
    pub failed: usize,
    /// Members the balancer still considers healthy at the end.
    pub healthy: usize,
}

/// Starts three members, makes `rounds` rounds of 5 concurrent calls, stops the second
/// member a third of the way through.
pub async fn run(protocol: Protocol, rounds: usize) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut pool = Vec::new();
    for name in ["a", "b", "c"] {
        pool.push(Backend::start(name).await?);
    }
    let urls: Vec<&str> = pool.iter().map(|b| b.url.as_str()).collect();
    let (client, balanced) = client(&urls, protocol)?;
    let mut failed = 0;
    let mut served_when_stopped = 0;
    for round in 0..rounds {
        if round == rounds / 3 {
            pool[1].stop().await?;
            served_when_stopped = pool[1].served();
        }
        // Five calls at once per round.
        let calls = (0..5).map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .unary::<_, StringValue>(WHO, StringValue::from(""), CallOptions::new())
                    .await
            })
        });
        for handle in calls.collect::<Vec<_>>() {
            if handle.await?.is_err() {
                failed += 1;
            }
        }
    }
    Ok(Outcome {
        served: pool.iter().map(Backend::served).collect(),
        served_when_stopped,
        failed,
        healthy: balanced.healthy().len(),
    })
}

/// What [`run_registry`] saw.
#[derive(Debug)]
pub struct RegistryOutcome {
    /// Calls each member answered: `a`, `b` (leaves), `c` (joins later).
    pub served: Vec<usize>,
    /// What `b` had answered when it left.
    pub served_when_left: usize,
    /// What `c` had answered when it joined (none: it was not listed).
    pub served_before_join: usize,
    /// Calls that failed.
    pub failed: usize,
}

/// Members listed in a registry the balancer re-reads every 50 ms (a stand-in for DNS or
/// Consul, through [`Balanced::with_resolver`]): `a` and `b` at first; a third of the way
/// through `b` stops and leaves the registry, at two thirds `c` joins it. Returns once
/// `rounds` rounds of 5 calls are done.
pub async fn run_registry(
    protocol: Protocol,
    rounds: usize,
) -> Result<RegistryOutcome, Box<dyn std::error::Error>> {
    let mut pool = Vec::new();
    for name in ["a", "b", "c"] {
        pool.push(Backend::start(name).await?);
    }
    let addr = |b: &Backend| -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
        Ok(b.url.trim_start_matches("http://").parse()?)
    };
    let registry = Arc::new(std::sync::Mutex::new(vec![
        addr(&pool[0])?,
        addr(&pool[1])?,
    ]));
    let listed = registry.clone();
    let resolver = move |_service: String, _port: u16| {
        let members = listed.lock().map(|m| m.clone()).unwrap_or_default();
        async move { Ok::<_, std::io::Error>(members) }
    };
    let config = ClientConfig::new("http://pool")?.protocol(protocol).retry(
        RetryPolicy::new().max_attempts(3).backoff(
            Duration::from_millis(2),
            Duration::from_millis(20),
            2.0,
        ),
    );
    let balanced = Balanced::with_resolver(
        &config,
        ["http://pool.internal"],
        Duration::from_millis(50),
        resolver,
    )
    .await?;
    let client = Client::with_transport(config, balanced.clone());
    let (mut failed, mut served_when_left, mut served_before_join) = (0, 0, 0);
    for round in 0..rounds {
        if round == rounds / 3 {
            // Leaves the registry, then stops: calls already sent to it are retried.
            let b = addr(&pool[1])?;
            registry.lock().map_err(|_| "poisoned")?.retain(|a| *a != b);
            pool[1].stop().await?;
            served_when_left = pool[1].served();
        }
        if round == 2 * rounds / 3 {
            served_before_join = pool[2].served();
            registry
                .lock()
                .map_err(|_| "poisoned")?
                .push(addr(&pool[2])?);
            // The next refresh picks it up.
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
        for _ in 0..5 {
            if client
                .unary::<_, StringValue>(WHO, StringValue::from(""), CallOptions::new())
                .await
                .is_err()
            {
                failed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(RegistryOutcome {
        served: pool.iter().map(Backend::served).collect(),
        served_when_left,
        served_before_join,
        failed,
    })
}
