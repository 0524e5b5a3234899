//! Descriptions of RPC methods: emitted by generated code, or made at run time from
//! descriptors with [`Spec::interned`].

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
///
/// Built with [`Spec::new`] (a `const fn`, as generated code does); fields may be added, so it
/// cannot be built with a struct literal outside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Spec {
    /// The HTTP path, `/package.Service/Method`.
    pub procedure: &'static str,
    /// How many messages flow each way.
    pub stream_type: StreamType,
    /// The idempotency level.
    pub idempotency: Idempotency,
    /// The method's `MethodOptions`, binary-encoded (custom options included), as generated
    /// code records them; empty when none were set.
    pub options: &'static [u8],
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
            options: &[],
        }
    }

    /// A spec for a procedure named at run time (from descriptors, reflection or
    /// configuration), for services without generated code.
    ///
    /// The name is interned: the first spec made for a given path keeps one copy of it for
    /// the life of the process, and later ones reuse it. That keeps `Spec` `Copy` and its
    /// `procedure` a plain `&'static str`, so calls never allocate or count references for
    /// it, whether the name was generated or not; the cost is that memory grows with the
    /// number of distinct names ever interned. Intern names from a schema, never paths a
    /// peer chose.
    ///
    /// ```
    /// use volley::{Idempotency, Spec, StreamType};
    ///
    /// let name = format!("/{}/{}", "greet.v1.GreetService", "Greet");
    /// let spec = Spec::interned(&name, StreamType::Unary, Idempotency::Unknown);
    /// assert_eq!(spec.procedure, "/greet.v1.GreetService/Greet");
    /// assert_eq!(spec.method(), "Greet");
    /// ```
    pub fn interned(procedure: &str, stream_type: StreamType, idempotency: Idempotency) -> Self {
        Self::new(intern(procedure), stream_type, idempotency)
    }

    /// The same spec with the method's encoded `MethodOptions`.
    pub const fn with_options(mut self, options: &'static [u8]) -> Self {
        self.options = options;
        self
    }

    /// The raw bytes of a length-delimited option (a string, bytes or message option) with
    /// field number `number`, e.g. a custom `(acme.required_role) = "admin"` option. The last
    /// occurrence wins, as protobuf parsing does.
    pub fn option_bytes(&self, number: u32) -> Option<&'static [u8]> {
        crate::wire::Fields::new(self.options)
            .map_while(Result::ok)
            .filter_map(|(n, v)| match v {
                crate::wire::Value::Bytes(b) if n == number => Some(b),
                _ => None,
            })
            .last()
    }

    /// The value of a varint option (bool, enum or integer) with field number `number`.
    pub fn option_varint(&self, number: u32) -> Option<u64> {
        crate::wire::Fields::new(self.options)
            .map_while(Result::ok)
            .filter_map(|(n, v)| match v {
                crate::wire::Value::Varint(x) if n == number => Some(x),
                _ => None,
            })
            .last()
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

/// The process-wide table of interned procedure names.
fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
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
        // field 50001 (string) = "admin", field 34 (idempotency_level) = 1
        const OPTS: &[u8] = &[
            0x8a, 0xb5, 0x18, 5, b'a', b'd', b'm', b'i', b'n', 0x90, 0x02, 1,
        ];
        let spec = spec.with_options(OPTS);
        assert_eq!(spec.option_bytes(50001), Some(&b"admin"[..]));
        assert_eq!(spec.option_varint(34), Some(1));
        assert_eq!(spec.option_bytes(7), None);
    }

    #[test]
    fn interned_names_are_shared() {
        let a = Spec::interned(
            &String::from("/x.Svc/Run"),
            StreamType::ServerStream,
            Idempotency::Unknown,
        );
        let b = Spec::interned("/x.Svc/Run", StreamType::ServerStream, Idempotency::Unknown);
        assert!(std::ptr::eq(a.procedure, b.procedure));
        assert_eq!((a.service(), a.method()), ("x.Svc", "Run"));
        assert_eq!(a, b);
    }
}
