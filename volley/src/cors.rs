//! CORS for browser clients (connect-web, grpc-web) calling from another origin.

use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::stream::{Body, empty_body};

/// Headers browsers must be allowed to read for the protocols to work.
const PROTOCOL_EXPOSED: &str = "grpc-status, grpc-message, grpc-status-details-bin, grpc-encoding, connect-content-encoding, content-encoding";

/// CORS settings: which origins may call, and which response headers they may read.
///
/// Turn it on with [`Router::cors`](crate::Router::cors):
///
/// ```
/// use volley::{Cors, Router};
///
/// let router = Router::new().cors(
///     Cors::allow_origins(["https://app.example"])
///         .expose_headers(["x-request-id"])
///         .max_age(600),
/// );
/// # let _ = router;
/// ```
///
/// More in the [browsers guide](crate::guide::browsers).
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Option<Vec<String>>,
    expose: Vec<String>,
    max_age_secs: Option<u32>,
}

impl Cors {
    /// Allows every origin (the origin is echoed back) and exposes the protocol headers.
    pub fn allow_any_origin() -> Self {
        Self::default()
    }

    /// Allows only the given origins (`https://app.example`).
    pub fn allow_origins(origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            origins: Some(origins.into_iter().map(Into::into).collect()),
            ..Self::default()
        }
    }

    /// Also exposes these response headers (and `trailer-` forms of them) to scripts.
    pub fn expose_headers(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        for n in names {
            let n: String = n.into();
            self.expose.push(format!("trailer-{n}"));
            self.expose.push(n);
        }
        self
    }

    /// How long browsers may cache a preflight (default 7200 s).
    pub fn max_age(mut self, secs: u32) -> Self {
        self.max_age_secs = Some(secs);
        self
    }

    fn allowed(&self, origin: &HeaderValue) -> bool {
        match &self.origins {
            None => true,
            Some(list) => list.iter().any(|o| o.as_bytes() == origin.as_bytes()),
        }
    }

    /// Answers a preflight request.
    pub(crate) fn preflight(&self, request: &HeaderMap) -> http::Response<Body> {
        let mut res = http::Response::new(empty_body());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let Some(origin) = request.get(header::ORIGIN) else {
            return res;
        };
        if !self.allowed(origin) {
            return res;
        }
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        if let Some(req_headers) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, req_headers.clone());
        }
        let max_age = self.max_age_secs.unwrap_or(7200);
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age));
        h.insert(
            header::VARY,
            HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
        );
        res
    }

    /// Adds CORS headers to an actual response.
    pub(crate) fn decorate(&self, origin: &HeaderValue, h: &mut HeaderMap) {
        if !self.allowed(origin) {
            return;
        }
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        let mut expose = PROTOCOL_EXPOSED.to_string();
        for e in &self.expose {
            expose.push_str(", ");
            expose.push_str(e);
        }
        if let Ok(v) = HeaderValue::from_str(&expose) {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}
