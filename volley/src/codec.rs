//! How messages become bytes: the [`Message`] trait every message type implements, and the
//! open [`Codec`] trait whose implementations are negotiated by name through content types.
//!
//! The runtime never touches a message library directly: it sees messages only through
//! [`Message`]. Every `buffa` message implements it already (blanket impl); another library
//! plugs in by implementing the four methods.
//!
//! A [`Codec`] turns any message into bytes and back. Two are built in and always present:
//! [`ProtoCodec`] (`proto`, binary protobuf, the default) and [`JsonCodec`] (`json`,
//! canonical proto3 JSON). Others are registered by name on a [`Router`](crate::Router)
//! ([`Router::codec`](crate::Router::codec)) and chosen by a client
//! ([`ClientConfig::codec`](crate::ClientConfig::codec)). A codec named `foo` is spoken as
//! `application/foo` (Connect unary), `application/connect+foo` (Connect streaming),
//! `application/grpc+foo`, `application/grpc-web+foo` and `encoding=foo` (Connect GET).
//!
//! A codec sees messages through erased handles, so one codec value serves every message
//! type: [`MessageRef`] when encoding (the message's own proto and JSON encodings, its proto
//! type name, and a downcast to the concrete type) and [`MessageSlot`] when decoding (a place
//! the codec fills from proto bytes, JSON, or a value of the concrete type).
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use volley::codec::{Codec, MessageRef, MessageSlot};
//! use volley::Error;
//!
//! /// JSON, spoken under another name.
//! struct Relabelled;
//!
//! impl Codec for Relabelled {
//!     fn name(&self) -> &str {
//!         "x-json"
//!     }
//!     fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
//!         message.encode_json(buf)
//!     }
//!     fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
//!         slot.decode_json(&bytes)
//!     }
//! }
//!
//! let router = volley::Router::new().codec(Relabelled);
//! # let _ = router;
//! ```
//!
//! Connect error bodies and end-of-stream messages are JSON whatever the codec, as the
//! protocol says; a codec only ever encodes and decodes the RPC's messages.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::{Code, Error};

/// A message the runtime can send and receive with the binary and JSON codecs.
pub trait Message: Sized + Send + Sync + 'static {
    /// Appends the binary protobuf encoding to `buf`.
    fn encode_proto(&self, buf: &mut BytesMut) -> Result<(), Error>;
    /// Decodes the binary protobuf encoding.
    fn decode_proto(bytes: Bytes) -> Result<Self, Error>;
    /// Appends the canonical proto3 JSON encoding to `buf`.
    fn encode_json(&self, buf: &mut BytesMut) -> Result<(), Error>;
    /// Decodes canonical proto3 JSON.
    fn decode_json(bytes: &[u8]) -> Result<Self, Error>;

    /// The binary protobuf encoding in a new buffer, after `headroom` zero bytes that the
    /// runtime fills with a frame prefix (so framing never copies the message). The default
    /// calls [`encode_proto`](Self::encode_proto); implement it to allocate once when the
    /// encoded size is known before writing.
    fn encode_proto_after(&self, headroom: usize) -> Result<BytesMut, Error> {
        let mut buf = BytesMut::with_capacity(headroom);
        buf.resize(headroom, 0);
        self.encode_proto(&mut buf)?;
        Ok(buf)
    }

    /// The message's fully qualified protobuf type name (`acme.v1.Greeting`), for codecs
    /// that key their behaviour on the type. The default is the empty string (unknown);
    /// `buffa` messages give their `MessageName::FULL_NAME`.
    fn full_name() -> &'static str {
        ""
    }
}

impl<T> Message for T
where
    T: buffa::Message
        + buffa::MessageName
        + serde::Serialize
        + serde::de::DeserializeOwned
        + 'static,
{
    fn full_name() -> &'static str {
        T::FULL_NAME
    }

    fn encode_proto(&self, buf: &mut BytesMut) -> Result<(), Error> {
        // Size first, then one exact reservation: the buffer never regrows mid-encode.
        let mut sizes = buffa::SizeCache::new();
        let size = buffa::checked_encode_size(self.compute_size(&mut sizes))
            .map_err(|e| Error::from_source(Code::Internal, e))?;
        buf.reserve(size as usize);
        self.write_to(&mut sizes, buf);
        Ok(())
    }

    fn encode_proto_after(&self, headroom: usize) -> Result<BytesMut, Error> {
        let mut sizes = buffa::SizeCache::new();
        let size = buffa::checked_encode_size(self.compute_size(&mut sizes))
            .map_err(|e| Error::from_source(Code::Internal, e))?;
        let mut buf = BytesMut::with_capacity(headroom + size as usize);
        buf.resize(headroom, 0);
        self.write_to(&mut sizes, &mut buf);
        Ok(buf)
    }

    fn decode_proto(bytes: Bytes) -> Result<Self, Error> {
        let mut bytes = bytes;
        T::decode(&mut bytes).map_err(|e| {
            Error::new(
                Code::InvalidArgument,
                format!("unmarshal protobuf message: {e}"),
            )
            .with_source(e)
        })
    }

    fn encode_json(&self, buf: &mut BytesMut) -> Result<(), Error> {
        use bytes::BufMut as _;
        serde_json::to_writer(buf.writer(), self).map_err(|e| Error::from_source(Code::Internal, e))
    }

    fn decode_json(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            // An empty body is the empty message, as with the binary codec.
            return serde_json::from_slice(b"{}")
                .map_err(|e| Error::from_source(Code::InvalidArgument, e));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                Code::InvalidArgument,
                format!("unmarshal JSON message: {e}"),
            )
            .with_source(e)
        })
    }
}

/// A codec: how messages become bytes and back, under a name negotiated in content types.
///
/// Implementations are shared by every call of a [`Router`](crate::Router) or
/// [`Client`](crate::Client) and see messages only through [`MessageRef`] and
/// [`MessageSlot`], so one value serves every message type. The name must be a lowercase
/// content-type token (`a`-`z`, `0`-`9`, `-`, `.`, `_`); registering a codec named `proto` or
/// `json` replaces the built-in one.
///
/// Decoding reads untrusted bytes: a codec must answer bad input with an error
/// ([`Code::InvalidArgument`] is usual), never panic, and bound what it allocates by the
/// input's size (the runtime has already applied the receive limit to `bytes`).
pub trait Codec: Any + Send + Sync {
    /// The name used in content types (`proto` in `application/grpc+proto`).
    fn name(&self) -> &str;
    /// Appends the encoding of `message` to `buf`.
    fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error>;
    /// Decodes one message from `bytes` into `slot`.
    fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error>;
}

impl fmt::Debug for dyn Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A shared codec is a codec: `Arc<dyn Codec>` can be handed to a router and a client, or
/// picked at run time (`[Arc::new(ProtoCodec), Arc::new(JsonCodec)]`).
impl<C: Codec + ?Sized> Codec for Arc<C> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
        (**self).encode(message, buf)
    }
    fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
        (**self).decode(bytes, slot)
    }
}

/// A codec in a `static` is a codec: `&'static dyn Codec` values are `Copy`, handy to pick
/// one at run time (`[&ProtoCodec as &dyn Codec, &JsonCodec]`).
impl<C: Codec + ?Sized> Codec for &'static C {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
        (**self).encode(message, buf)
    }
    fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
        (**self).decode(bytes, slot)
    }
}

/// Binary protobuf (`proto`): the default codec, always registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProtoCodec;

impl Codec for ProtoCodec {
    fn name(&self) -> &str {
        "proto"
    }
    fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
        message.encode_proto(buf)
    }
    fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
        slot.decode_proto(bytes)
    }
}

/// Canonical proto3 JSON (`json`), always registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn name(&self) -> &str {
        "json"
    }
    fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
        message.encode_json(buf)
    }
    fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
        slot.decode_json(&bytes)
    }
}

/// The encode side of a message, as a [`Codec`] sees it.
#[derive(Clone, Copy)]
pub struct MessageRef<'a> {
    inner: &'a dyn ErasedEncode,
}

impl<'a> MessageRef<'a> {
    /// Wraps a message (to call a codec directly, in tests or in another codec).
    pub fn new<M: Message>(message: &'a M) -> Self {
        Self { inner: message }
    }

    /// Appends the message's binary protobuf encoding to `buf`.
    pub fn encode_proto(&self, buf: &mut BytesMut) -> Result<(), Error> {
        self.inner.encode_proto(buf)
    }

    /// Appends the message's canonical proto3 JSON encoding to `buf`.
    pub fn encode_json(&self, buf: &mut BytesMut) -> Result<(), Error> {
        self.inner.encode_json(buf)
    }

    /// The message's fully qualified protobuf type name, empty when its library gives none
    /// (see [`Message::full_name`]).
    pub fn full_name(&self) -> &'static str {
        self.inner.full_name()
    }

    /// The message as [`Any`], to downcast to its concrete type.
    pub fn as_any(&self) -> &'a dyn Any {
        let inner: &'a dyn ErasedEncode = self.inner;
        inner.as_any()
    }

    /// The message as `M`, when it is one.
    pub fn downcast_ref<M: 'static>(&self) -> Option<&'a M> {
        self.as_any().downcast_ref()
    }
}

impl fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRef")
            .field("full_name", &self.full_name())
            .finish_non_exhaustive()
    }
}

/// The decode side of a message, as a [`Codec`] sees it: an empty place for one message of
/// the type the call expects. A codec fills it once, with
/// [`decode_proto`](Self::decode_proto), [`decode_json`](Self::decode_json) or
/// [`put`](Self::put); a codec that leaves it empty fails the call with `internal`.
pub struct MessageSlot<'a> {
    inner: &'a mut dyn ErasedDecode,
}

impl<'a> MessageSlot<'a> {
    /// Wraps an empty (or to-be-replaced) place for an `M`.
    pub fn new<M: Message>(slot: &'a mut Option<M>) -> Self {
        Self { inner: slot }
    }

    /// Fills the slot from the binary protobuf encoding (zero-copy for view types).
    pub fn decode_proto(self, bytes: Bytes) -> Result<(), Error> {
        self.inner.decode_proto(bytes)
    }

    /// Fills the slot from canonical proto3 JSON (an empty input is the empty message).
    pub fn decode_json(self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.decode_json(bytes)
    }

    /// The expected message's fully qualified protobuf type name, empty when unknown.
    pub fn full_name(&self) -> &'static str {
        self.inner.full_name()
    }

    /// Fills the slot with `message`; an error (`internal`) when the call expects another
    /// type.
    pub fn put<M: 'static>(self, message: M) -> Result<(), Error> {
        match self.inner.as_any_mut().downcast_mut::<Option<M>>() {
            Some(slot) => {
                *slot = Some(message);
                Ok(())
            }
            None => Err(Error::internal(format!(
                "codec produced a {}, the call expects {}",
                std::any::type_name::<M>(),
                self.inner.rust_name()
            ))),
        }
    }

    /// The slot as [`Any`]: an `Option<M>` for the expected message type `M`.
    pub fn as_any_mut(&mut self) -> &mut dyn Any {
        self.inner.as_any_mut()
    }
}

impl fmt::Debug for MessageSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageSlot")
            .field("full_name", &self.inner.full_name())
            .finish_non_exhaustive()
    }
}

/// What [`MessageRef`] erases: every [`Message`] is one.
trait ErasedEncode: Send + Sync {
    fn encode_proto(&self, buf: &mut BytesMut) -> Result<(), Error>;
    fn encode_json(&self, buf: &mut BytesMut) -> Result<(), Error>;
    fn full_name(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
}

impl<M: Message> ErasedEncode for M {
    fn encode_proto(&self, buf: &mut BytesMut) -> Result<(), Error> {
        Message::encode_proto(self, buf)
    }
    fn encode_json(&self, buf: &mut BytesMut) -> Result<(), Error> {
        Message::encode_json(self, buf)
    }
    fn full_name(&self) -> &'static str {
        M::full_name()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What [`MessageSlot`] erases: an `Option<M>` for every [`Message`] `M`.
trait ErasedDecode {
    fn decode_proto(&mut self, bytes: Bytes) -> Result<(), Error>;
    fn decode_json(&mut self, bytes: &[u8]) -> Result<(), Error>;
    fn full_name(&self) -> &'static str;
    fn rust_name(&self) -> &'static str;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<M: Message> ErasedDecode for Option<M> {
    fn decode_proto(&mut self, bytes: Bytes) -> Result<(), Error> {
        *self = Some(M::decode_proto(bytes)?);
        Ok(())
    }
    fn decode_json(&mut self, bytes: &[u8]) -> Result<(), Error> {
        *self = Some(M::decode_json(bytes)?);
        Ok(())
    }
    fn full_name(&self) -> &'static str {
        M::full_name()
    }
    fn rust_name(&self) -> &'static str {
        std::any::type_name::<M>()
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The codec of a call: the built-in ones on a direct path (no virtual call, exact-size
/// proto encoding with headroom, zero-copy proto decoding), others behind the trait.
#[derive(Clone)]
pub(crate) enum CodecHandle {
    Proto,
    Json,
    Custom(Arc<dyn Codec>),
}

impl fmt::Debug for CodecHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for CodecHandle {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CodecHandle::Proto, CodecHandle::Proto) | (CodecHandle::Json, CodecHandle::Json) => {
                true
            }
            (CodecHandle::Custom(a), CodecHandle::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for CodecHandle {}

impl CodecHandle {
    /// The handle for `codec`: the built-in codec types map to their direct paths, also
    /// when shared as an `Arc<dyn Codec>`.
    pub(crate) fn of<C: Codec>(codec: C) -> Self {
        let any: &dyn Any = &codec;
        if let Some(shared) = any.downcast_ref::<Arc<dyn Codec>>() {
            return Self::shared(shared.clone());
        }
        if let Some(&borrowed) = any.downcast_ref::<&'static dyn Codec>() {
            let inner: &dyn Any = borrowed;
            if inner.is::<ProtoCodec>() {
                return CodecHandle::Proto;
            } else if inner.is::<JsonCodec>() {
                return CodecHandle::Json;
            }
        }
        if any.is::<ProtoCodec>() {
            CodecHandle::Proto
        } else if any.is::<JsonCodec>() {
            CodecHandle::Json
        } else {
            CodecHandle::Custom(Arc::new(codec))
        }
    }

    fn shared(codec: Arc<dyn Codec>) -> Self {
        let any: &dyn Any = &*codec;
        if any.is::<ProtoCodec>() {
            CodecHandle::Proto
        } else if any.is::<JsonCodec>() {
            CodecHandle::Json
        } else {
            CodecHandle::Custom(codec)
        }
    }

    /// The name used in content types.
    pub(crate) fn name(&self) -> &str {
        match self {
            CodecHandle::Proto => "proto",
            CodecHandle::Json => "json",
            CodecHandle::Custom(c) => c.as_ref().name(),
        }
    }

    /// Whether this is the built-in binary protobuf codec.
    pub(crate) fn is_proto(&self) -> bool {
        matches!(self, CodecHandle::Proto)
    }

    /// Encodes `message` into a new buffer after `headroom` zero bytes.
    pub(crate) fn encode_after<M: Message>(
        &self,
        message: &M,
        headroom: usize,
    ) -> Result<BytesMut, Error> {
        match self {
            CodecHandle::Proto => message.encode_proto_after(headroom),
            CodecHandle::Json => {
                let mut buf = BytesMut::with_capacity(headroom + 64);
                buf.resize(headroom, 0);
                message.encode_json(&mut buf)?;
                Ok(buf)
            }
            CodecHandle::Custom(codec) => {
                let mut buf = BytesMut::with_capacity(headroom + 64);
                buf.resize(headroom, 0);
                codec.encode(MessageRef::new(message), &mut buf)?;
                Ok(buf)
            }
        }
    }

    /// Appends `message`, encoded with this codec, to `buf`.
    pub(crate) fn encode_into<M: Message>(
        &self,
        message: &M,
        buf: &mut BytesMut,
    ) -> Result<(), Error> {
        match self {
            CodecHandle::Proto => message.encode_proto(buf),
            CodecHandle::Json => message.encode_json(buf),
            CodecHandle::Custom(codec) => codec.encode(MessageRef::new(message), buf),
        }
    }

    /// Decodes a message with this codec.
    pub(crate) fn decode<M: Message>(&self, bytes: Bytes) -> Result<M, Error> {
        match self {
            CodecHandle::Proto => M::decode_proto(bytes),
            CodecHandle::Json => M::decode_json(&bytes),
            CodecHandle::Custom(codec) => {
                let mut slot = None;
                codec.decode(bytes, MessageSlot::new(&mut slot))?;
                slot.ok_or_else(|| {
                    Error::internal(format!(
                        "codec {:?} produced no message",
                        codec.as_ref().name()
                    ))
                })
            }
        }
    }
}

/// The handle for `codec`, after checking its name.
///
/// # Panics
///
/// When the codec's name is not a lowercase content-type token.
pub(crate) fn checked<C: Codec>(codec: C) -> CodecHandle {
    let name = codec.name();
    assert!(
        valid_name(name),
        "codec name {name:?} is not a lowercase content-type token"
    );
    CodecHandle::of(codec)
}

/// Whether `name` can be a codec name: a lowercase content-type token.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

/// The codecs a router accepts, by name: the built-in ones unless replaced, then the
/// registered ones.
#[derive(Clone, Default)]
pub(crate) struct Codecs {
    custom: Vec<Arc<dyn Codec>>,
}

impl fmt::Debug for Codecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Codecs {
    /// Adds (or replaces, by name) a codec.
    ///
    /// # Panics
    ///
    /// When the codec's name is not a lowercase content-type token.
    pub(crate) fn register<C: Codec>(&mut self, codec: C) {
        let handle = checked(codec);
        self.custom.retain(|c| c.as_ref().name() != handle.name());
        // Registering a built-in codec type again restores it.
        if let CodecHandle::Custom(c) = handle {
            self.custom.push(c);
        }
    }

    /// The codec named `name` (as in a content type), if accepted.
    pub(crate) fn get(&self, name: &str) -> Option<CodecHandle> {
        if !self.custom.is_empty()
            && let Some(c) = self.custom.iter().find(|c| c.as_ref().name() == name)
        {
            return Some(CodecHandle::Custom(c.clone()));
        }
        match name {
            "proto" => Some(CodecHandle::Proto),
            "json" | "json; charset=utf-8" => Some(CodecHandle::Json),
            _ => None,
        }
    }

    /// Whether only the built-in codecs are accepted.
    pub(crate) fn is_default(&self) -> bool {
        self.custom.is_empty()
    }

    /// The accepted names, built-in first.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names = vec!["proto", "json"];
        for c in &self.custom {
            if !names.contains(&c.as_ref().name()) {
                names.push(c.as_ref().name());
            }
        }
        names
    }
}

/// The built-in codecs alone (where no registry is at hand).
pub(crate) static DEFAULT_CODECS: Codecs = Codecs { custom: Vec::new() };

#[cfg(test)]
mod tests {
    use buffa_types::google::protobuf::StringValue;

    use super::*;

    struct Shouting;

    impl Codec for Shouting {
        fn name(&self) -> &str {
            "shout"
        }
        fn encode(&self, message: MessageRef<'_>, buf: &mut BytesMut) -> Result<(), Error> {
            let s = message
                .downcast_ref::<StringValue>()
                .ok_or_else(|| Error::internal("not a StringValue"))?;
            buf.extend_from_slice(s.value.to_uppercase().as_bytes());
            Ok(())
        }
        fn decode(&self, bytes: Bytes, slot: MessageSlot<'_>) -> Result<(), Error> {
            let value = std::str::from_utf8(&bytes)
                .map_err(|e| Error::invalid_argument(e.to_string()))?
                .to_lowercase();
            slot.put(StringValue {
                value,
                ..Default::default()
            })
        }
    }

    #[test]
    fn a_custom_codec_round_trips_through_the_handle() {
        let handle = CodecHandle::of(Shouting);
        let message = StringValue {
            value: "hi".into(),
            ..Default::default()
        };
        let buf = handle.encode_after(&message, 5).unwrap();
        assert_eq!(&buf[..], b"\0\0\0\0\0HI");
        let back: StringValue = handle.decode(Bytes::from_static(b"HI")).unwrap();
        assert_eq!(back, message);
        // The wrong message type is an internal error, not a panic.
        let err = handle.decode::<buffa_types::google::protobuf::Int32Value>(Bytes::new());
        assert_eq!(err.unwrap_err().code(), Code::Internal);
        assert_eq!(
            <StringValue as Message>::full_name(),
            "google.protobuf.StringValue"
        );
    }

    #[test]
    fn built_in_codec_types_take_the_direct_path() {
        assert_eq!(CodecHandle::of(ProtoCodec), CodecHandle::Proto);
        assert_eq!(CodecHandle::of(JsonCodec), CodecHandle::Json);
        assert!(matches!(CodecHandle::of(Shouting), CodecHandle::Custom(_)));
        let shared: [Arc<dyn Codec>; 3] = [
            Arc::new(ProtoCodec),
            Arc::new(JsonCodec),
            Arc::new(Shouting),
        ];
        let [proto, json, shout] = shared;
        assert_eq!(CodecHandle::of(proto), CodecHandle::Proto);
        assert_eq!(CodecHandle::of(json), CodecHandle::Json);
        let shout = CodecHandle::of(shout);
        let borrowed: [&'static dyn Codec; 3] = [&ProtoCodec, &JsonCodec, &Shouting];
        assert_eq!(CodecHandle::of(borrowed[0]), CodecHandle::Proto);
        assert_eq!(CodecHandle::of(borrowed[1]), CodecHandle::Json);
        assert_eq!(CodecHandle::of(borrowed[2]).name(), "shout");
        assert!(matches!(&shout, CodecHandle::Custom(c) if c.as_ref().name() == "shout"));
    }

    #[test]
    fn the_registry_finds_by_name_and_replaces() {
        let mut codecs = Codecs::default();
        assert_eq!(codecs.get("proto"), Some(CodecHandle::Proto));
        assert_eq!(codecs.get("shout"), None);
        codecs.register(Shouting);
        assert_eq!(codecs.get("shout").unwrap().name(), "shout");
        assert_eq!(codecs.names(), ["proto", "json", "shout"]);
        codecs.register(Shouting);
        assert_eq!(codecs.names().len(), 3);
    }

    #[test]
    #[should_panic(expected = "content-type token")]
    fn a_bad_name_is_refused() {
        struct Bad;
        impl Codec for Bad {
            fn name(&self) -> &str {
                "Not Ok"
            }
            fn encode(&self, _: MessageRef<'_>, _: &mut BytesMut) -> Result<(), Error> {
                Ok(())
            }
            fn decode(&self, _: Bytes, _: MessageSlot<'_>) -> Result<(), Error> {
                Ok(())
            }
        }
        Codecs::default().register(Bad);
    }
}
