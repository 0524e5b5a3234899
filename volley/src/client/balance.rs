//! Client-side load balancing: power of two choices by calls in flight, over a static list of
//! endpoints or over the addresses DNS names (or your own resolver) give, re-resolved
//! periodically; endpoints whose connections fail are ejected for a while, then tried again.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use http::uri::{Authority, Scheme};

use super::{ClientConfig, HttpTransport};
use crate::stream::Body;
use crate::{Code, Error};

/// Default time an endpoint whose connection failed is left out ([`Balanced::ejection_time`]).
pub const DEFAULT_EJECTION_TIME: Duration = Duration::from_secs(10);
/// A reasonable interval between two resolutions of a resolved balancer's names, for
/// [`Balanced::dns`] when in doubt: 30 s, gRPC's minimum between DNS re-resolutions.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Longest one resolution of one name may take; past it, it counts as failed (the name keeps
/// its last good addresses).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most addresses kept for one name; a resolver answering more is cut to the first ones
/// (sorted), so that an absurd answer cannot make the client hold unbounded state.
pub const MAX_ADDRESSES_PER_NAME: usize = 256;

/// Finds the addresses a name stands for, for [`Balanced::with_resolver`]: the system's
/// resolver ([`SystemResolver`], what [`Balanced::dns`] uses) or your own (a service
/// registry such as Consul, a static table in tests). Closures `Fn(String, u16) -> impl
/// Future<Output = io::Result<Vec<SocketAddr>>>` are resolvers.
///
/// ```
/// use std::net::SocketAddr;
/// use volley::client::Resolver;
///
/// // Every name stands for two local ports.
/// let resolver = |_host: String, _port: u16| async {
///     let addrs: Vec<SocketAddr> = vec!["127.0.0.1:8080".parse().unwrap(), "127.0.0.1:8081".parse().unwrap()];
///     Ok::<_, std::io::Error>(addrs)
/// };
/// fn is_resolver(_: &impl Resolver) {}
/// is_resolver(&resolver);
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses `host` (a DNS name or an IP literal, without brackets) stands for now;
    /// `port` is the one the name's URI gives (or its scheme's default). An error or an
    /// empty list is a failed resolution: the name keeps the addresses it had.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>>;
}

impl<F, Fut> Resolver for F
where
    F: Fn(String, u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
{
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>> {
        Box::pin(self(host.to_owned(), port))
    }
}

/// The system's resolver (`getaddrinfo` through `tokio::net::lookup_host`: `/etc/hosts`,
/// then DNS), every address of the name, IPv4 and IPv6.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// A transport spreading calls over several servers of one service: a tower `Service` like
/// [`HttpTransport`], for [`Client::with_transport`](super::Client::with_transport).
///
/// - **Endpoints:** a static list of base URIs ([`new`](Self::new)), or the addresses names
///   resolve to, re-resolved periodically ([`dns`](Self::dns), or
///   [`with_resolver`](Self::with_resolver) for your own resolver).
/// - **Choice:** power of two choices: two endpoints drawn at random, the one with fewer calls
///   in flight (until their response head) wins.
/// - **Ejection:** an endpoint whose call fails `unavailable` in the transport (refused,
///   reset, unreachable, connect timeout) is left out for the
///   [ejection time](Self::ejection_time) (default [`DEFAULT_EJECTION_TIME`], 10 s), then
///   tried again. When every endpoint is ejected, the one whose ejection ends first is tried.
/// - **Failures:** the failing call itself still fails; add a [`RetryPolicy`](super::RetryPolicy)
///   so that idempotent calls go to another endpoint instead.
///
/// The client's base URI only gives the path prefix, if any.
///
/// ```
/// # fn main() -> Result<(), volley::Error> {
/// use volley::client::{Balanced, RetryPolicy};
/// use volley::{Client, ClientConfig};
///
/// let config = ClientConfig::new("http://greeter")?.retry(RetryPolicy::new());
/// let transport = Balanced::new(
///     &config,
///     ["http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"],
/// )?;
/// let client = Client::with_transport(config, transport);
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Balanced {
    shared: Arc<Shared>,
    ejection: Duration,
}

/// What the clones of a balancer share: the endpoints, replaced as a whole on each
/// re-resolution, and the task re-resolving them, stopped with the last clone.
#[derive(Debug)]
struct Shared {
    /// For static endpoints (resolved ones have a transport each).
    transport: HttpTransport,
    endpoints: RwLock<Arc<[Arc<Endpoint>]>>,
    refresher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    fn snapshot(&self) -> Arc<[Arc<Endpoint>]> {
        self.endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let refresher = self
            .refresher
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = refresher {
            task.abort();
        }
    }
}

#[derive(Debug)]
struct Endpoint {
    scheme: Scheme,
    /// What requests carry in `Host` / `:authority` (and TLS verifies).
    authority: Authority,
    /// For an endpoint a name resolved to: the address dialed, with its own transport.
    resolved: Option<(SocketAddr, HttpTransport)>,
    in_flight: AtomicUsize,
    ejected_until: Mutex<Option<Instant>>,
}

impl Endpoint {
    fn new(
        scheme: Scheme,
        authority: Authority,
        resolved: Option<(SocketAddr, HttpTransport)>,
    ) -> Self {
        Self {
            scheme,
            authority,
            resolved,
            in_flight: AtomicUsize::new(0),
            ejected_until: Mutex::new(None),
        }
    }

    fn ejected(&self, now: Instant) -> Option<Instant> {
        let until = *self.ejected_until.lock().unwrap_or_else(|p| p.into_inner());
        until.filter(|u| *u > now)
    }

    /// The address dialed for a resolved endpoint, the authority for a static one.
    fn label(&self) -> String {
        match &self.resolved {
            Some((addr, _)) => addr.to_string(),
            None => self.authority.to_string(),
        }
    }
}

/// A base URI's scheme and authority.
fn split(uri: &str) -> Result<(Scheme, Authority), Error> {
    let parsed: Uri = uri
        .parse()
        .map_err(|e| Error::invalid_argument(format!("invalid endpoint {uri:?}: {e}")))?;
    let parts = parsed.into_parts();
    match (parts.scheme, parts.authority) {
        (Some(scheme), Some(authority)) => Ok((scheme, authority)),
        _ => Err(Error::invalid_argument(format!(
            "endpoint {uri:?} needs a scheme and an authority"
        ))),
    }
}

impl Balanced {
    /// A balancer over `endpoints` (base URIs such as `http://10.0.0.1:8080`), connecting
    /// with the transport settings of `config` (one pool, connections per endpoint). A DNS
    /// name among them is resolved by the connector at each new connection, as one endpoint;
    /// see [`dns`](Self::dns) to balance over every address of a name.
    pub fn new<I, S>(config: &ClientConfig, endpoints: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for endpoint in endpoints {
            let (scheme, authority) = split(endpoint.as_ref())?;
            list.push(Arc::new(Endpoint::new(scheme, authority, None)));
        }
        if list.is_empty() {
            return Err(Error::invalid_argument("no endpoints to balance over"));
        }
        Ok(Self::from_shared(
            HttpTransport::new(config)?,
            list.into(),
            None,
        ))
    }

    /// A balancer over every address the system resolver gives for each of `names` (base
    /// URIs such as `http://greeter.internal:8080`), resolved again every `every` (at least
    /// 10 ms; [`DEFAULT_REFRESH_INTERVAL`], 30 s, is a sensible choice). See
    /// [`with_resolver`](Self::with_resolver) for the rules; this is it with
    /// [`SystemResolver`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), volley::Error> {
    /// use volley::client::{Balanced, DEFAULT_REFRESH_INTERVAL, RetryPolicy};
    /// use volley::{Client, ClientConfig};
    ///
    /// let config = ClientConfig::new("http://greeter")?.retry(RetryPolicy::new());
    /// let transport =
    ///     Balanced::dns(&config, ["http://greeter.internal:8080"], DEFAULT_REFRESH_INTERVAL).await?;
    /// let client = Client::with_transport(config, transport);
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    pub fn dns<I, S>(
        config: &ClientConfig,
        names: I,
        every: Duration,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::with_resolver(config, names, every, SystemResolver)
    }

    /// A balancer over the addresses `resolver` gives for each of `names` (base URIs such as
    /// `http://greeter.internal:8080`; the port, or the scheme's default, is passed to the
    /// resolver), resolved again every `every` (at least 10 ms) by a background task:
    ///
    /// - **First resolution:** done before this returns; it fails `unavailable` when no
    ///   name gives any address (a name that fails then is tried again at each refresh).
    /// - **Refresh:** each name's endpoints become the addresses it resolves to now.
    ///   Addresses that stay keep their endpoint as it was: connections, calls in flight,
    ///   ejection. New ones start fresh; calls in flight to a removed one finish there.
    /// - **Failures:** a resolution that fails, answers no address or takes longer than
    ///   [`RESOLVE_TIMEOUT`] (10 s) leaves that name's last good addresses in place.
    ///   At most [`MAX_ADDRESSES_PER_NAME`] addresses are kept per name.
    /// - **Requests** still carry the name in `Host` / `:authority`, and TLS verifies the
    ///   name; only the TCP connection goes to the address. A Unix socket or dialer set on
    ///   `config` is not used: each endpoint connects over TCP with `config`'s settings.
    /// - **Lifetime:** the refresh task ends when the last clone of the balancer (and of
    ///   the clients holding it) is dropped. Must run inside a Tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), volley::Error> {
    /// use std::time::Duration;
    /// use volley::ClientConfig;
    /// use volley::client::Balanced;
    ///
    /// // A registry lookup would go here; this one answers a fixed address.
    /// let registry = |_service: String, _port: u16| async {
    ///     Ok::<_, std::io::Error>(vec![std::net::SocketAddr::from(([127, 0, 0, 1], 8080))])
    /// };
    /// let config = ClientConfig::new("http://greeter")?;
    /// let transport =
    ///     Balanced::with_resolver(&config, ["http://greeter"], Duration::from_secs(5), registry)
    ///         .await?;
    /// assert_eq!(transport.endpoints(), ["127.0.0.1:8080"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_resolver<I, S>(
        config: &ClientConfig,
        names: I,
        every: Duration,
        resolver: impl Resolver,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Result<Vec<Name>, Error> =
            names.into_iter().map(|n| Name::parse(n.as_ref())).collect();
        let config = config.clone();
        let resolver: Arc<dyn Resolver> = Arc::new(resolver);
        async move {
            let names = names?;
            if names.is_empty() {
                return Err(Error::invalid_argument("no names to resolve"));
            }
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(Error::internal(
                    "a resolved balancer needs a Tokio runtime for its refresh task",
                ));
            }
            let transport = HttpTransport::new(&config)?;
            let mut resolution = Resolution {
                addrs: vec![Vec::new(); names.len()],
                names,
                config,
                resolver,
                every: every.max(Duration::from_millis(10)),
            };
            let failure = resolution.resolve_all().await;
            let endpoints = resolution.endpoints(&[]);
            if endpoints.is_empty() {
                return Err(Error::unavailable(format!(
                    "no name resolved to an address: {}",
                    failure.unwrap_or_default()
                )));
            }
            let this = Self::from_shared(transport, endpoints, None);
            let task = tokio::spawn(resolution.run(Arc::downgrade(&this.shared)));
            *this
                .shared
                .refresher
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(task);
            Ok(this)
        }
    }

    fn from_shared(
        transport: HttpTransport,
        endpoints: Arc<[Arc<Endpoint>]>,
        refresher: Option<tokio::task::JoinHandle<()>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                transport,
                endpoints: RwLock::new(endpoints),
                refresher: Mutex::new(refresher),
            }),
            ejection: DEFAULT_EJECTION_TIME,
        }
    }

    /// How long an endpoint whose connection failed is left out (default
    /// [`DEFAULT_EJECTION_TIME`], 10 s).
    pub fn ejection_time(mut self, time: Duration) -> Self {
        self.ejection = time;
        self
    }

    /// Every endpoint now, ejected or not: the authority of a static endpoint, the address
    /// (`ip:port`) of a resolved one (for health displays and tests).
    pub fn endpoints(&self) -> Vec<String> {
        self.shared.snapshot().iter().map(|e| e.label()).collect()
    }

    /// The endpoints not ejected now, as [`endpoints`](Self::endpoints) names them.
    pub fn healthy(&self) -> Vec<String> {
        let now = Instant::now();
        self.shared
            .snapshot()
            .iter()
            .filter(|e| e.ejected(now).is_none())
            .map(|e| e.label())
            .collect()
    }
}

/// Power of two choices among the endpoints not ejected; `None` when there are none at all.
fn pick(endpoints: &[Arc<Endpoint>]) -> Option<usize> {
    let now = Instant::now();
    let live: Vec<usize> = (0..endpoints.len())
        .filter(|&i| endpoints[i].ejected(now).is_none())
        .collect();
    if live.is_empty() {
        // All ejected: the one back soonest.
        return (0..endpoints.len()).min_by_key(|&i| endpoints[i].ejected(now));
    }
    if live.len() == 1 {
        return Some(live[0]);
    }
    let r = super::retry::random_u64();
    let a = (r % live.len() as u64) as usize;
    let mut b = ((r >> 32) % (live.len() as u64 - 1)) as usize;
    if b >= a {
        b += 1;
    }
    let (a, b) = (live[a], live[b]);
    let load = |i: usize| endpoints[i].in_flight.load(Ordering::Relaxed);
    Some(if load(b) < load(a) { b } else { a })
}

/// A name to resolve: its URI's scheme and authority, and the host and port asked of the
/// resolver.
#[derive(Debug)]
struct Name {
    scheme: Scheme,
    authority: Authority,
    host: String,
    port: u16,
}

impl Name {
    fn parse(uri: &str) -> Result<Self, Error> {
        let (scheme, authority) = split(uri)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
        Ok(Self {
            scheme,
            authority,
            host,
            port,
        })
    }
}

/// The refresh task's state: the names, each one's last good addresses, and what builds an
/// endpoint's transport.
struct Resolution {
    names: Vec<Name>,
    addrs: Vec<Vec<SocketAddr>>,
    config: ClientConfig,
    resolver: Arc<dyn Resolver>,
    every: Duration,
}

impl Resolution {
    /// Resolves every name at once; a name whose resolution fails keeps its last good
    /// addresses. Returns a description of the last failure, if any.
    async fn resolve_all(&mut self) -> Option<String> {
        let lookups = self.names.iter().map(|name| {
            let lookup = self.resolver.resolve(&name.host, name.port);
            async move { tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await }
        });
        let results = futures_util::future::join_all(lookups).await;
        let mut failure = None;
        for (i, result) in results.into_iter().enumerate() {
            let name = &self.names[i].authority;
            let failed = match result {
                Ok(Ok(mut addrs)) if !addrs.is_empty() => {
                    addrs.sort_unstable();
                    addrs.dedup();
                    addrs.truncate(MAX_ADDRESSES_PER_NAME);
                    self.addrs[i] = addrs;
                    continue;
                }
                Ok(Ok(_)) => format!("{name}: no address"),
                Ok(Err(e)) => format!("{name}: {e}"),
                Err(_) => format!("{name}: no answer within {RESOLVE_TIMEOUT:?}"),
            };
            tracing::debug!(%failed, "resolution failed; the last good addresses stay");
            failure = Some(failed);
        }
        failure
    }

    /// The endpoints for the current addresses: an endpoint of `current` for the same name
    /// and address is kept as it is, the others are new.
    fn endpoints(&self, current: &[Arc<Endpoint>]) -> Arc<[Arc<Endpoint>]> {
        let mut list = Vec::new();
        for (name, addrs) in self.names.iter().zip(&self.addrs) {
            for addr in addrs {
                let kept = current.iter().find(|e| {
                    e.scheme == name.scheme
                        && e.authority == name.authority
                        && e.resolved.as_ref().is_some_and(|(a, _)| a == addr)
                });
                if let Some(endpoint) = kept {
                    list.push(endpoint.clone());
                    continue;
                }
                match HttpTransport::dialing(&self.config, *addr) {
                    Ok(transport) => list.push(Arc::new(Endpoint::new(
                        name.scheme.clone(),
                        name.authority.clone(),
                        Some((*addr, transport)),
                    ))),
                    Err(e) => tracing::warn!(%addr, error = %e, "cannot build an endpoint"),
                }
            }
        }
        list.into()
    }

    /// Re-resolves every `every` until the balancer is gone.
    async fn run(mut self, shared: Weak<Shared>) {
        loop {
            tokio::time::sleep(self.every).await;
            if shared.strong_count() == 0 {
                return;
            }
            self.resolve_all().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let current = shared.snapshot();
            let next = self.endpoints(&current);
            if next.is_empty() {
                continue;
            }
            let changed = next.len() != current.len()
                || next
                    .iter()
                    .zip(current.iter())
                    .any(|(a, b)| !Arc::ptr_eq(a, b));
            if changed {
                tracing::debug!(
                    endpoints = ?next.iter().map(|e| e.label()).collect::<Vec<_>>(),
                    "resolved endpoints changed"
                );
                *shared.endpoints.write().unwrap_or_else(|p| p.into_inner()) = next;
            }
        }
    }
}

impl tower_service::Service<http::Request<Body>> for Balanced {
    type Response = http::Response<Body>;
    type Error = Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let endpoints = self.shared.snapshot();
        let Some(index) = pick(&endpoints) else {
            return Box::pin(async { Err(Error::unavailable("no endpoint to call")) });
        };
        let endpoint = endpoints[index].clone();
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(endpoint.scheme.clone());
        parts.authority = Some(endpoint.authority.clone());
        match Uri::from_parts(parts) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => {
                let err = Error::internal(format!("building the endpoint URI: {e}"));
                return Box::pin(async move { Err(err) });
            }
        }
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        let ejection = self.ejection;
        let mut transport = match &endpoint.resolved {
            Some((_, transport)) => transport.clone(),
            None => self.shared.transport.clone(),
        };
        let sent = tower_service::Service::call(&mut transport, request);
        let in_flight = InFlight(endpoint);
        Box::pin(async move {
            let result = sent.await;
            let endpoint = &in_flight.0;
            if let Err(e) = &result
                && e.code() == Code::Unavailable
            {
                tracing::debug!(endpoint = %endpoint.label(), error = %e, "ejecting an endpoint");
                *endpoint
                    .ejected_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + ejection);
            }
            drop(in_flight);
            result
        })
    }
}

/// One call counted in flight on an endpoint until its response head (or its cancellation).
struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
