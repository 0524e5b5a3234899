//! The gRPC health checking service, `grpc.health.v1.Health`, for Volley servers.
//!
//! Load balancers, orchestrators (Kubernetes' gRPC probes) and tools such as
//! `grpc-health-probe` ask a server whether it, or one of its services, can take calls. This
//! crate answers them:
//!
//! - `Check` answers the current status of one service, or `not_found` for a service the
//!   server has never reported;
//! - `Watch` streams the status of one service: the current one first (`SERVICE_UNKNOWN` for a
//!   service not reported yet), then every change until the caller hangs up;
//! - `List` answers every known service's status at once.
//!
//! The application reports statuses through a [`HealthReporter`], a cheap-to-clone handle,
//! and serves them by registering the [`HealthService`] on its [`Router`]. The empty service
//! name `""` stands for the server as a whole and starts out `SERVING`.
//!
//! ```
//! use volley_health::ServingStatus;
//!
//! let (reporter, health) = volley_health::health_service();
//! let router = health.register(volley::Router::new());
//! reporter.set_serving("my.pkg.v1.Greeter");
//! assert_eq!(reporter.status("my.pkg.v1.Greeter"), Some(ServingStatus::SERVING));
//!
//! // At graceful shutdown, before draining connections:
//! reporter.shutdown();
//! assert_eq!(reporter.status(""), Some(ServingStatus::NOT_SERVING));
//! # drop(router);
//! ```
//!
//! The messages and the typed client ([`HealthClient`]) are generated from
//! `proto/grpc/health/v1/health.proto` by `volley-build`; [`FILE_DESCRIPTOR_SET`] holds its
//! descriptors, for a reflection service to serve.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use volley::{Error, Request, Response, ResponseStream, Router};

/// The code generated from `grpc/health/v1/health.proto`: messages, the `Health` server trait,
/// its registration function and the typed client.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

pub use proto::grpc::health::v1::health_check_response::ServingStatus;
pub use proto::grpc::health::v1::{
    HealthCheckRequest, HealthCheckResponse, HealthClient, HealthListRequest, HealthListResponse,
};

/// The fully-qualified name of the health service, `grpc.health.v1.Health`.
pub const SERVICE_NAME: &str = proto::grpc::health::v1::health::SERVICE_NAME;

/// The encoded `google.protobuf.FileDescriptorSet` of `grpc/health/v1/health.proto`, for a
/// reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = proto::FILE_DESCRIPTOR_SET;

/// A new health service and the reporter that feeds it.
///
/// The server as a whole (service name `""`) starts out `SERVING`; no other service is known
/// until reported.
pub fn health_service() -> (HealthReporter, HealthService) {
    let reporter = HealthReporter::new();
    let service = reporter.service();
    (reporter, service)
}

/// Sets the health status of services; every clone updates the same statuses.
///
/// Each service name maps to a status. A name never reported (or cleared with
/// [`clear_status`](Self::clear_status)) is unknown: `Check` answers `not_found` for it and
/// `Watch` reports `SERVICE_UNKNOWN`. Setting a status that equals the current one notifies no
/// watcher.
#[derive(Clone)]
pub struct HealthReporter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// One channel per service that has a status or a watcher. A channel holding
    /// `SERVICE_UNKNOWN` exists only while someone watches that service.
    services: HashMap<String, watch::Sender<ServingStatus>>,
    /// Set by [`HealthReporter::shutdown`]: later updates are ignored.
    shut_down: bool,
}

impl Default for HealthReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HealthReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthReporter")
            .field("statuses", &self.statuses())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

impl HealthReporter {
    /// A reporter whose server (service `""`) is `SERVING` and which knows no other service.
    pub fn new() -> Self {
        let reporter = Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
            }),
        };
        reporter.set_serving("");
        reporter
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (every update is a single insert or send), so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A [`HealthService`] answering from this reporter's statuses.
    pub fn service(&self) -> HealthService {
        HealthService {
            reporter: self.clone(),
        }
    }

    /// Sets `service`'s status (`""` for the whole server) and notifies its watchers if it
    /// changed. `SERVICE_UNKNOWN` clears the status, as [`clear_status`](Self::clear_status)
    /// does. Ignored after [`shutdown`](Self::shutdown).
    pub fn set_status(&self, service: &str, status: ServingStatus) {
        let mut state = self.lock();
        if state.shut_down {
            return;
        }
        set_locked(&mut state, service, status);
    }

    /// Marks `service` (`""` for the whole server) `SERVING`.
    pub fn set_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::SERVING);
    }

    /// Marks `service` (`""` for the whole server) `NOT_SERVING`.
    pub fn set_not_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::NOT_SERVING);
    }

    /// Forgets `service`: `Check` answers `not_found` for it again and watchers see
    /// `SERVICE_UNKNOWN`. Ignored after [`shutdown`](Self::shutdown).
    pub fn clear_status(&self, service: &str) {
        self.set_status(service, ServingStatus::SERVICE_UNKNOWN);
    }

    /// The current status of `service`, `None` when unknown.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        let state = self.lock();
        state
            .services
            .get(service)
            .map(|tx| *tx.borrow())
            .filter(|s| *s != ServingStatus::SERVICE_UNKNOWN)
    }

    /// Every known service's status, by name.
    pub fn statuses(&self) -> BTreeMap<String, ServingStatus> {
        let state = self.lock();
        state
            .services
            .iter()
            .map(|(name, tx)| (name.clone(), *tx.borrow()))
            .filter(|(_, s)| *s != ServingStatus::SERVICE_UNKNOWN)
            .collect()
    }

    /// Marks every known service, the server `""` included, `NOT_SERVING` and ignores every
    /// later update, so that clients move away before the server stops. Call it when graceful
    /// shutdown begins.
    pub fn shutdown(&self) {
        let mut state = self.lock();
        state.shut_down = true;
        for tx in state.services.values() {
            tx.send_if_modified(|status| {
                let known = *status != ServingStatus::SERVICE_UNKNOWN;
                let change = known && *status != ServingStatus::NOT_SERVING;
                if change {
                    *status = ServingStatus::NOT_SERVING;
                }
                change
            });
        }
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.lock().shut_down
    }

    /// Subscribes to `service`'s status, creating an unknown entry for watchers to wait on.
    fn subscribe(&self, service: &str) -> watch::Receiver<ServingStatus> {
        let mut state = self.lock();
        match state.services.get(service) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(ServingStatus::SERVICE_UNKNOWN);
                state.services.insert(service.to_string(), tx);
                rx
            }
        }
    }

    /// Drops a watcher's receiver, and the service's entry if it is unknown and unwatched.
    fn unsubscribe(&self, service: &str, rx: watch::Receiver<ServingStatus>) {
        let mut state = self.lock();
        drop(rx);
        let unused = state.services.get(service).is_some_and(|tx| {
            tx.receiver_count() == 0 && *tx.borrow() == ServingStatus::SERVICE_UNKNOWN
        });
        if unused {
            state.services.remove(service);
        }
    }
}

fn set_locked(state: &mut State, service: &str, status: ServingStatus) {
    match state.services.get(service) {
        Some(tx) => {
            if status == ServingStatus::SERVICE_UNKNOWN && tx.receiver_count() == 0 {
                state.services.remove(service);
            } else {
                tx.send_if_modified(|current| {
                    let changed = *current != status;
                    *current = status;
                    changed
                });
            }
        }
        None if status == ServingStatus::SERVICE_UNKNOWN => {}
        None => {
            state
                .services
                .insert(service.to_string(), watch::channel(status).0);
        }
    }
}

/// The `grpc.health.v1.Health` service, answering from a [`HealthReporter`]'s statuses.
///
/// Add it to a router with [`register`](Self::register).
#[derive(Clone, Debug)]
pub struct HealthService {
    reporter: HealthReporter,
}

impl HealthService {
    /// Adds `Check`, `List` and `Watch` of `grpc.health.v1.Health` to `router`.
    pub fn register(self, router: Router) -> Router {
        proto::grpc::health::v1::register_health(router, self)
    }

    /// The reporter this service answers from.
    pub fn reporter(&self) -> &HealthReporter {
        &self.reporter
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
        ..Default::default()
    }
}

impl proto::grpc::health::v1::Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Error> {
        let service = &request.message().service;
        match self.reporter.status(service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Error::not_found(format!("unknown service {service:?}"))),
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Error> {
        let statuses = self
            .reporter
            .statuses()
            .into_iter()
            .map(|(name, status)| (name, response(status)))
            .collect();
        Ok(Response::new(HealthListResponse {
            statuses,
            ..Default::default()
        }))
    }

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<ResponseStream<HealthCheckResponse>>, Error> {
        let service = request.into_message().service;
        let mut rx = self.reporter.subscribe(&service);
        let first = *rx.borrow_and_update();
        let watcher = Watcher {
            reporter: self.reporter.clone(),
            service,
            rx: Some(rx),
            pending: Some(first),
        };
        let stream = futures_util::stream::unfold(watcher, |mut w| async move {
            let status = w.next().await?;
            Some((Ok(response(status)), w))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One `Watch` call's subscription; dropping it (the caller hung up) releases the entry.
struct Watcher {
    reporter: HealthReporter,
    service: String,
    rx: Option<watch::Receiver<ServingStatus>>,
    pending: Option<ServingStatus>,
}

impl Watcher {
    /// The next status to send: the first one, then each change. Changes made in quick
    /// succession may be merged into the latest, as the protocol allows.
    async fn next(&mut self) -> Option<ServingStatus> {
        if let Some(status) = self.pending.take() {
            return Some(status);
        }
        let rx = self.rx.as_mut()?;
        rx.changed().await.ok()?;
        Some(*rx.borrow_and_update())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.reporter.unsubscribe(&self.service, rx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_start_with_the_server_serving() {
        let reporter = HealthReporter::new();
        assert_eq!(reporter.status(""), Some(ServingStatus::SERVING));
        assert_eq!(reporter.status("a.B"), None);
        reporter.set_not_serving("a.B");
        assert_eq!(reporter.status("a.B"), Some(ServingStatus::NOT_SERVING));
        reporter.clear_status("a.B");
        assert_eq!(reporter.status("a.B"), None);
        assert_eq!(reporter.statuses().len(), 1);
    }

    #[test]
    fn shutdown_marks_everything_not_serving_and_freezes() {
        let reporter = HealthReporter::new();
        reporter.set_serving("a.B");
        reporter.shutdown();
        assert!(reporter.is_shut_down());
        assert_eq!(reporter.status(""), Some(ServingStatus::NOT_SERVING));
        assert_eq!(reporter.status("a.B"), Some(ServingStatus::NOT_SERVING));
        reporter.set_serving("a.B");
        reporter.set_serving("c.D");
        assert_eq!(reporter.status("a.B"), Some(ServingStatus::NOT_SERVING));
        assert_eq!(reporter.status("c.D"), None);
    }

    #[test]
    fn unwatched_unknown_entries_are_released() {
        let reporter = HealthReporter::new();
        let rx = reporter.subscribe("x.Y");
        assert_eq!(*rx.borrow(), ServingStatus::SERVICE_UNKNOWN);
        assert_eq!(reporter.status("x.Y"), None);
        reporter.unsubscribe("x.Y", rx);
        assert!(!reporter.lock().services.contains_key("x.Y"));

        let rx = reporter.subscribe("x.Y");
        reporter.set_serving("x.Y");
        reporter.unsubscribe("x.Y", rx);
        assert_eq!(reporter.status("x.Y"), Some(ServingStatus::SERVING));
    }
}

/// The README's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
