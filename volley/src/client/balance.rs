//! Client-side load balancing over a static list of endpoints: power of two choices by calls
//! in flight, endpoints whose connections fail ejected for a while and then tried again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;

use super::{ClientConfig, HttpTransport};
use crate::stream::Body;
use crate::{Code, Error};

/// Default time an endpoint whose connection failed is left out ([`Balanced::ejection_time`]).
pub const DEFAULT_EJECTION_TIME: Duration = Duration::from_secs(10);

/// A transport spreading calls over several servers of one service: a tower `Service` like
/// [`HttpTransport`], for [`Client::with_transport`](super::Client::with_transport).
///
/// - **Choice:** power of two choices: two endpoints drawn at random, the one with fewer calls
///   in flight (until their response head) wins.
/// - **Ejection:** an endpoint whose call fails `unavailable` in the transport (refused,
///   reset, unreachable, connect timeout) is left out for the
///   [ejection time](Self::ejection_time) (default [`DEFAULT_EJECTION_TIME`], 10 s), then
///   tried again. When every endpoint is ejected, the one whose ejection ends first is tried.
/// - **Failures:** the failing call itself still fails; add a [`RetryPolicy`](super::RetryPolicy)
///   so that idempotent calls go to another endpoint instead.
///
/// The endpoints are a static list of base URIs: the client's base URI only gives the path
/// prefix, if any. DNS names are resolved by the connector at each new connection (no
/// periodic re-resolution into several endpoints).
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
    transport: HttpTransport,
    endpoints: Arc<[Endpoint]>,
    ejection: Duration,
}

#[derive(Debug)]
struct Endpoint {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    in_flight: AtomicUsize,
    ejected_until: Mutex<Option<Instant>>,
}

impl Endpoint {
    fn ejected(&self, now: Instant) -> Option<Instant> {
        let until = *self.ejected_until.lock().unwrap_or_else(|p| p.into_inner());
        until.filter(|u| *u > now)
    }
}

impl Balanced {
    /// A balancer over `endpoints` (base URIs such as `http://10.0.0.1:8080`), connecting
    /// with the transport settings of `config` (one pool, connections per endpoint).
    pub fn new<I, S>(config: &ClientConfig, endpoints: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for endpoint in endpoints {
            let uri: Uri = endpoint.as_ref().parse().map_err(|e| {
                Error::invalid_argument(format!("invalid endpoint {:?}: {e}", endpoint.as_ref()))
            })?;
            let parts = uri.into_parts();
            let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
                return Err(Error::invalid_argument(format!(
                    "endpoint {:?} needs a scheme and an authority",
                    endpoint.as_ref()
                )));
            };
            list.push(Endpoint {
                scheme,
                authority,
                in_flight: AtomicUsize::new(0),
                ejected_until: Mutex::new(None),
            });
        }
        if list.is_empty() {
            return Err(Error::invalid_argument("no endpoints to balance over"));
        }
        Ok(Self {
            transport: HttpTransport::new(config)?,
            endpoints: list.into(),
            ejection: DEFAULT_EJECTION_TIME,
        })
    }

    /// How long an endpoint whose connection failed is left out (default
    /// [`DEFAULT_EJECTION_TIME`], 10 s).
    pub fn ejection_time(mut self, time: Duration) -> Self {
        self.ejection = time;
        self
    }

    /// The endpoints not ejected now, by authority (for health displays and tests).
    pub fn healthy(&self) -> Vec<String> {
        let now = Instant::now();
        self.endpoints
            .iter()
            .filter(|e| e.ejected(now).is_none())
            .map(|e| e.authority.to_string())
            .collect()
    }

    /// Power of two choices among the endpoints not ejected.
    fn pick(&self) -> usize {
        let now = Instant::now();
        let live: Vec<usize> = (0..self.endpoints.len())
            .filter(|&i| self.endpoints[i].ejected(now).is_none())
            .collect();
        if live.is_empty() {
            // All ejected: the one back soonest.
            return (0..self.endpoints.len())
                .min_by_key(|&i| self.endpoints[i].ejected(now))
                .unwrap_or(0);
        }
        if live.len() == 1 {
            return live[0];
        }
        let r = super::retry::random_u64();
        let a = (r % live.len() as u64) as usize;
        let mut b = ((r >> 32) % (live.len() as u64 - 1)) as usize;
        if b >= a {
            b += 1;
        }
        let (a, b) = (live[a], live[b]);
        let load = |i: usize| self.endpoints[i].in_flight.load(Ordering::Relaxed);
        if load(b) < load(a) { b } else { a }
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
        let index = self.pick();
        let endpoint = &self.endpoints[index];
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
        let in_flight = InFlight(self.endpoints.clone(), index);
        let ejection = self.ejection;
        let sent = tower_service::Service::call(&mut self.transport, request);
        Box::pin(async move {
            let result = sent.await;
            let endpoint = &in_flight.0[index];
            if let Err(e) = &result
                && e.code() == Code::Unavailable
            {
                tracing::debug!(endpoint = %endpoint.authority, error = %e, "ejecting an endpoint");
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
struct InFlight(Arc<[Endpoint]>, usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0[self.1].in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
