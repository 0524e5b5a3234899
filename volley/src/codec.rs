//! How messages become bytes: the [`Message`] trait every message type implements, and the
//! named codecs (`proto`, `json`) negotiated through content types.
//!
//! The runtime never touches a message library directly: it sees messages only through
//! [`Message`]. Every `buffa` message implements it already (blanket impl); another library
//! plugs in by implementing the four methods.

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
}

impl<T> Message for T
where
    T: buffa::Message + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
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

/// A named codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Binary protobuf (`proto`).
    Proto,
    /// Canonical proto3 JSON (`json`).
    Json,
}

impl Codec {
    /// The name used in content types (`proto`, `json`).
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Proto => "proto",
            Codec::Json => "json",
        }
    }

    /// The codec for a content-type suffix; `proto` also answers to the empty suffix of gRPC.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "proto" => Some(Codec::Proto),
            "json" | "json; charset=utf-8" => Some(Codec::Json),
            _ => None,
        }
    }

    /// Encodes `message` with this codec.
    pub fn encode<M: Message>(self, message: &M, buf: &mut BytesMut) -> Result<(), Error> {
        match self {
            Codec::Proto => message.encode_proto(buf),
            Codec::Json => message.encode_json(buf),
        }
    }

    /// Encodes `message` into a new buffer after `headroom` zero bytes.
    pub(crate) fn encode_after<M: Message>(
        self,
        message: &M,
        headroom: usize,
    ) -> Result<BytesMut, Error> {
        match self {
            Codec::Proto => message.encode_proto_after(headroom),
            Codec::Json => {
                let mut buf = BytesMut::with_capacity(headroom + 64);
                buf.resize(headroom, 0);
                message.encode_json(&mut buf)?;
                Ok(buf)
            }
        }
    }

    /// Decodes a message with this codec.
    pub fn decode<M: Message>(self, bytes: Bytes) -> Result<M, Error> {
        match self {
            Codec::Proto => M::decode_proto(bytes),
            Codec::Json => M::decode_json(&bytes),
        }
    }
}
