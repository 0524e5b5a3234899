//! One module per wire protocol. Each knows its content types, how a request head is read,
//! how a response head, end of stream and errors are written, and the client's mirror image.
//! The message pipeline itself (framing, compression, limits) is shared by all three, in the
//! crate-private `stream` module.

pub(crate) mod connect;
pub(crate) mod grpc;
pub(crate) mod grpc_web;

use crate::codec::Codec;

/// The three wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// Connect: unary as plain HTTP, streams enveloped.
    #[default]
    Connect,
    /// gRPC over HTTP/2 with trailers.
    Grpc,
    /// gRPC-Web: trailers in the body; any HTTP version.
    GrpcWeb,
}

impl Protocol {
    /// The protocol's name (`connect`, `grpc`, `grpc_web`), as tracing records it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Connect => "connect",
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc_web",
        }
    }
}

/// What a request's content type says: protocol, codec, and the variant within the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentType {
    pub(crate) protocol: Protocol,
    pub(crate) codec: Codec,
    /// Connect: an un-enveloped unary body. gRPC-Web: the base64 text variant.
    pub(crate) variant: bool,
}

/// Outcome of reading a content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classified {
    Known(ContentType),
    /// A recognised protocol with a codec we do not have.
    UnknownCodec(Protocol),
    /// Not an RPC content type at all.
    Unknown,
}

/// Classifies a request content type (parameters such as `charset` are ignored).
pub(crate) fn classify(content_type: &str) -> Classified {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some(rest) = base.strip_prefix("application/") else {
        return Classified::Unknown;
    };
    let (protocol, variant, sub) = if let Some(sub) = rest.strip_prefix("grpc-web-text") {
        (Protocol::GrpcWeb, true, sub)
    } else if let Some(sub) = rest.strip_prefix("grpc-web") {
        (Protocol::GrpcWeb, false, sub)
    } else if let Some(sub) = rest.strip_prefix("grpc") {
        (Protocol::Grpc, false, sub)
    } else if let Some(sub) = rest.strip_prefix("connect+") {
        return match Codec::from_name(sub) {
            Some(codec) => Classified::Known(ContentType {
                protocol: Protocol::Connect,
                codec,
                variant: false,
            }),
            None => Classified::UnknownCodec(Protocol::Connect),
        };
    } else {
        return match Codec::from_name(rest) {
            Some(codec) => Classified::Known(ContentType {
                protocol: Protocol::Connect,
                codec,
                variant: true,
            }),
            None => Classified::Unknown,
        };
    };
    let codec = match sub {
        "" => Some(Codec::Proto),
        s => s.strip_prefix('+').and_then(Codec::from_name),
    };
    match codec {
        Some(codec) => Classified::Known(ContentType {
            protocol,
            codec,
            variant,
        }),
        None if sub.starts_with('+') => Classified::UnknownCodec(protocol),
        None => Classified::Unknown,
    }
}

/// The response content type for a request's content type.
pub(crate) fn response_content_type(ct: ContentType) -> String {
    match (ct.protocol, ct.variant) {
        (Protocol::Connect, true) => format!("application/{}", ct.codec.name()),
        (Protocol::Connect, false) => format!("application/connect+{}", ct.codec.name()),
        (Protocol::Grpc, _) => format!("application/grpc+{}", ct.codec.name()),
        (Protocol::GrpcWeb, false) => format!("application/grpc-web+{}", ct.codec.name()),
        (Protocol::GrpcWeb, true) => format!("application/grpc-web-text+{}", ct.codec.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(s: &str) -> ContentType {
        match classify(s) {
            Classified::Known(ct) => ct,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn classifies_every_protocol() {
        assert_eq!(known("application/grpc").protocol, Protocol::Grpc);
        assert_eq!(known("application/grpc+json").codec, Codec::Json);
        assert!(known("application/grpc-web-text+proto").variant);
        assert_eq!(known("application/grpc-web").protocol, Protocol::GrpcWeb);
        assert!(!known("application/connect+json").variant);
        assert!(known("application/json; charset=utf-8").variant);
        assert_eq!(known("Application/Proto").codec, Codec::Proto);
        assert_eq!(
            classify("application/grpc+cbor"),
            Classified::UnknownCodec(Protocol::Grpc)
        );
        assert_eq!(
            classify("application/connect+xml"),
            Classified::UnknownCodec(Protocol::Connect)
        );
        assert_eq!(classify("text/html"), Classified::Unknown);
        assert_eq!(classify("application/xml"), Classified::Unknown);
        assert_eq!(classify("application/grpcfoo"), Classified::Unknown);
    }
}
