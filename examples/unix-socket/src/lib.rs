//! A Volley server listening on a Unix domain socket, and a client that calls it through the
//! socket: no TCP port, access governed by the socket file's permissions. The client's base
//! URI still names the scheme and the `:authority` (`http://localhost`); the socket path
//! replaces the TCP connect.

use std::path::Path;

use buffa_types::google::protobuf::StringValue;
use volley::client::HttpTransport;
use volley::{
    Client, ClientConfig, Error, Idempotency, Protocol, Request, Response, Router, Spec, StreamType,
};

/// Answers with the request's text and the HTTP version it arrived over.
pub const WHOAMI: Spec = Spec::new(
    "/uds.v1.Local/WhoAmI",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);

async fn whoami(request: Request<StringValue>) -> Result<Response<StringValue>, Error> {
    let answer = format!(
        "{} over {}, peer address {:?}",
        request.message().value,
        request
            .http_version()
            .map_or_else(|| "an unknown version".to_owned(), |v| format!("{v:?}")),
        request.peer_addr()
    );
    Ok(Response::new(StringValue::from(answer)))
}

/// The router served on the socket.
pub fn router() -> Router {
    Router::new().unary(WHOAMI, whoami)
}

/// A client for the socket at `path`, speaking `protocol`.
pub fn client(path: &Path, protocol: Protocol) -> Result<Client<HttpTransport>, Error> {
    Client::new(
        ClientConfig::new("http://localhost")?
            .protocol(protocol)
            .unix_socket(path),
    )
}
