//! Balancing over names re-resolved periodically, over real sockets: addresses added and
//! removed between refreshes with every call succeeding, a failed resolution keeping the last
//! good set, ejection state kept for addresses that stay, the name (not the address) in
//! `Host` / `:authority`, the refresh task gone with the last clone; and one resolution of
//! `localhost` by the system resolver.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use tokio::net::TcpListener;
use volley::client::{Balanced, RetryPolicy};
use volley::server::Server;
use volley::{
    CallOptions, Client, ClientConfig, Idempotency, Protocol, Request, Response, Router, Spec,
    StreamType,
};

const WHO: Spec = Spec::new(
    "/test.v1.Pool/Who",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);

/// The authority a request was sent to: `:authority` over HTTP/2, `Host` over HTTP/1.1.
fn authority_of<T>(request: &Request<T>) -> String {
    if let Some(a) = request.uri().and_then(|u| u.authority()) {
        return a.to_string();
    }
    request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// A server answering `index authority`, counting its calls.
async fn backend(listener: TcpListener, index: usize) -> anyhow::Result<Arc<AtomicUsize>> {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new().unary(WHO, move |request: Request<StringValue>| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(StringValue::from(format!(
                "{index} {}",
                authority_of(&request)
            ))))
        }
    });
    tokio::spawn(Server::from_listener(listener).serve(router));
    Ok(calls)
}

/// A resolver over a table the test edits, counting its lookups, failing on demand.
#[derive(Clone, Default)]
struct Table {
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    lookups: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    /// Answer an empty list instead of failing.
    empty: Arc<AtomicBool>,
}

impl Table {
    fn set(&self, addrs: &[SocketAddr]) {
        *self.addrs.lock().unwrap() = addrs.to_vec();
    }

    fn resolver(&self) -> impl volley::client::Resolver {
        let table = self.clone();
        move |host: String, port: u16| {
            let table = table.clone();
            async move {
                assert_eq!((host.as_str(), port), ("svc.test", 80), "what is asked");
                table.lookups.fetch_add(1, Ordering::SeqCst);
                if table.fail.load(Ordering::SeqCst) {
                    return Err(std::io::Error::other("no such host"));
                }
                if table.empty.load(Ordering::SeqCst) {
                    return Ok(Vec::new());
                }
                Ok(table.addrs.lock().unwrap().clone())
            }
        }
    }

    /// Waits until `n` more lookups have been made.
    async fn wait_lookups(&self, n: usize) -> anyhow::Result<()> {
        let target = self.lookups.load(Ordering::SeqCst) + n;
        for _ in 0..200 {
            if self.lookups.load(Ordering::SeqCst) >= target {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::bail!("fewer than {n} lookups in 2 s")
    }
}

fn set_of(addrs: &[SocketAddr]) -> BTreeSet<String> {
    addrs.iter().map(|a| a.to_string()).collect()
}

async fn wait_endpoints(balanced: &Balanced, want: &[SocketAddr]) -> anyhow::Result<()> {
    let want = set_of(want);
    for _ in 0..200 {
        if balanced.endpoints().into_iter().collect::<BTreeSet<_>>() == want {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("endpoints {:?}, not {want:?}", balanced.endpoints())
}

/// Makes `n` calls, all of which must succeed; returns which backends answered.
async fn calls<T: volley::Transport>(
    client: &Client<T>,
    n: usize,
    authority: &str,
) -> anyhow::Result<BTreeSet<usize>> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        seen.insert(call(client, authority).await?);
    }
    Ok(seen)
}

/// Makes at least `n` calls, all of which must succeed, and goes on until every backend of
/// `want` has answered (the choice is random: a fixed count could miss one by chance);
/// returns which backends answered, to compare with `want`.
async fn calls_reaching<T: volley::Transport>(
    client: &Client<T>,
    n: usize,
    authority: &str,
    want: &[usize],
) -> anyhow::Result<BTreeSet<usize>> {
    let want: BTreeSet<usize> = want.iter().copied().collect();
    let mut seen = calls(client, n, authority).await?;
    // Two backends picked evenly miss one in 200 calls with probability 2^-199.
    for _ in 0..200 {
        if want.is_subset(&seen) {
            break;
        }
        seen.insert(call(client, authority).await?);
    }
    Ok(seen)
}

/// One call; returns the index of the backend that answered.
async fn call<T: volley::Transport>(client: &Client<T>, authority: &str) -> anyhow::Result<usize> {
    let reply = client
        .unary::<_, StringValue>(WHO, StringValue::from(""), CallOptions::new())
        .await?
        .into_message()
        .value;
    let (index, got) = reply.split_once(' ').unwrap();
    assert_eq!(got, authority, "the name travels, not the address");
    Ok(index.parse()?)
}

#[tokio::test]
async fn addresses_come_and_go_between_refreshes_and_calls_keep_succeeding() -> anyhow::Result<()> {
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        let mut addrs = Vec::new();
        let mut counts = Vec::new();
        for i in 0..3 {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            counts.push(backend(listener, i).await?);
        }
        // An address nothing listens on.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?
        };
        let table = Table::default();
        table.set(&addrs[..2]);
        let config = ClientConfig::new("http://svc.test")?
            .protocol(protocol)
            .retry(RetryPolicy::new().max_attempts(4).backoff(
                Duration::from_millis(1),
                Duration::from_millis(5),
                2.0,
            ));
        let balanced = Balanced::with_resolver(
            &config,
            ["http://svc.test"],
            Duration::from_millis(50),
            table.resolver(),
        )
        .await?
        .ejection_time(Duration::from_secs(60));
        assert_eq!(
            balanced.endpoints().into_iter().collect::<BTreeSet<_>>(),
            set_of(&addrs[..2]),
            "resolved before returning"
        );
        let client = Client::with_transport(config, balanced.clone());
        // The name without its default port, as the user gave it.
        let authority = "svc.test";
        assert_eq!(
            calls_reaching(&client, 30, authority, &[0, 1]).await?,
            BTreeSet::from([0, 1])
        );

        // 0 leaves, 2 arrives.
        table.set(&addrs[1..]);
        wait_endpoints(&balanced, &addrs[1..]).await?;
        let before = counts[0].load(Ordering::SeqCst);
        assert_eq!(
            calls_reaching(&client, 30, authority, &[1, 2]).await?,
            BTreeSet::from([1, 2])
        );
        assert_eq!(counts[0].load(Ordering::SeqCst), before, "removed: no call");

        // Failed and empty resolutions keep the last good set.
        table.fail.store(true, Ordering::SeqCst);
        table.wait_lookups(3).await?;
        assert_eq!(
            balanced.endpoints().into_iter().collect::<BTreeSet<_>>(),
            set_of(&addrs[1..])
        );
        assert_eq!(
            calls_reaching(&client, 10, authority, &[1, 2]).await?,
            BTreeSet::from([1, 2])
        );
        table.fail.store(false, Ordering::SeqCst);
        table.empty.store(true, Ordering::SeqCst);
        table.wait_lookups(3).await?;
        assert_eq!(
            calls_reaching(&client, 10, authority, &[1, 2]).await?,
            BTreeSet::from([1, 2])
        );
        table.empty.store(false, Ordering::SeqCst);

        // A dead address joins: calls that meet it are retried elsewhere, it is ejected, and
        // it stays ejected across refreshes that keep returning it.
        let with_dead = [addrs[1], addrs[2], dead];
        table.set(&with_dead);
        wait_endpoints(&balanced, &with_dead).await?;
        let served = calls_reaching(&client, 40, authority, &[1, 2]).await?;
        assert_eq!(served, BTreeSet::from([1, 2]));
        let healthy = |b: &Balanced| b.healthy().into_iter().collect::<BTreeSet<_>>();
        assert_eq!(
            healthy(&balanced),
            set_of(&addrs[1..]),
            "the dead one is out"
        );
        table.wait_lookups(4).await?;
        assert_eq!(balanced.endpoints().len(), 3);
        assert_eq!(healthy(&balanced), set_of(&addrs[1..]), "and stays out");

        // Everything changes at once: the old endpoints go, calls go to the new one only.
        table.set(&addrs[..1]);
        wait_endpoints(&balanced, &addrs[..1]).await?;
        assert_eq!(calls(&client, 10, authority).await?, BTreeSet::from([0]));

        // The refresh task ends with the last clone (it owns the resolver).
        let probe = Arc::downgrade(&table.lookups);
        drop(table);
        drop(client);
        drop(balanced);
        let mut gone = false;
        for _ in 0..100 {
            if probe.upgrade().is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone, "{protocol:?}: the refresh task outlived the balancer");
    }
    Ok(())
}

#[tokio::test]
async fn a_first_resolution_with_no_address_fails() -> anyhow::Result<()> {
    let config = ClientConfig::new("http://svc.test")?;
    let table = Table::default();
    let err = Balanced::with_resolver(
        &config,
        ["http://svc.test"],
        Duration::from_secs(1),
        table.resolver(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), volley::Code::Unavailable, "{err}");
    table.fail.store(true, Ordering::SeqCst);
    let err = Balanced::with_resolver(
        &config,
        ["http://svc.test"],
        Duration::from_secs(1),
        table.resolver(),
    )
    .await
    .unwrap_err();
    assert!(err.message().contains("no such host"), "{err}");
    let err = Balanced::dns(&config, ["not a uri"], Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), volley::Code::InvalidArgument);
    Ok(())
}

#[tokio::test]
async fn localhost_resolves_through_the_system_resolver() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let count = backend(listener, 0).await?;
    // If localhost also resolves to ::1, serve there too when the host has IPv6.
    if let Ok(v6) = TcpListener::bind(("::1", port)).await {
        backend(v6, 1).await?;
    }
    let name = format!("http://localhost:{port}");
    let config = ClientConfig::new(&name)?.protocol(Protocol::Grpc);
    let balanced = Balanced::dns(&config, [name.as_str()], Duration::from_millis(100)).await?;
    let endpoints = balanced.endpoints();
    assert!(
        endpoints.contains(&format!("127.0.0.1:{port}")),
        "{endpoints:?}"
    );
    let client = Client::with_transport(config, balanced.clone());
    calls(&client, 10, &format!("localhost:{port}")).await?;
    let _ = count;
    // Refreshes keep the same endpoints.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(balanced.endpoints(), endpoints);
    calls(&client, 10, &format!("localhost:{port}")).await?;
    Ok(())
}
