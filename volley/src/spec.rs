//! Static descriptions of RPC methods, emitted by generated code.

/// The shape of an RPC: how many messages flow each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// One request, one response.
    Unary,
    /// Many requests, one response.
    ClientStream,
    /// One request, many responses.
    ServerStream,
    /// Many requests, many responses.
    BidiStream,
}

impl StreamType {
    /// Whether the client sends a stream of messages.
    pub const fn is_client_streaming(self) -> bool {
        matches!(self, StreamType::ClientStream | StreamType::BidiStream)
    }

    /// Whether the server sends a stream of messages.
    pub const fn is_server_streaming(self) -> bool {
        matches!(self, StreamType::ServerStream | StreamType::BidiStream)
    }
}

/// The method's `idempotency_level` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Idempotency {
    /// No statement made.
    #[default]
    Unknown,
    /// No side effects: safe for Connect GET.
    NoSideEffects,
    /// Idempotent, but may have side effects.
    Idempotent,
}

/// A method's static description: its path, stream type and idempotency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    /// The HTTP path, `/package.Service/Method`.
    pub procedure: &'static str,
    /// How many messages flow each way.
    pub stream_type: StreamType,
    /// The idempotency level.
    pub idempotency: Idempotency,
}

impl Spec {
    /// A spec for `procedure` (`/package.Service/Method`).
    pub const fn new(
        procedure: &'static str,
        stream_type: StreamType,
        idempotency: Idempotency,
    ) -> Self {
        Self {
            procedure,
            stream_type,
            idempotency,
        }
    }

    /// The fully-qualified service name (`package.Service`).
    pub fn service(&self) -> &'static str {
        let path = self.procedure.trim_start_matches('/');
        path.rsplit_once('/').map_or(path, |(s, _)| s)
    }

    /// The method name (`Method`).
    pub fn method(&self) -> &'static str {
        self.procedure.rsplit_once('/').map_or("", |(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_path() {
        let spec = Spec::new("/a.b.Svc/Do", StreamType::Unary, Idempotency::Unknown);
        assert_eq!(spec.service(), "a.b.Svc");
        assert_eq!(spec.method(), "Do");
        assert!(StreamType::BidiStream.is_client_streaming());
        assert!(!StreamType::ClientStream.is_server_streaming());
    }
}
