//! Dynamic messages for Volley: serve and call services known only at run time, from an
//! encoded `FileDescriptorSet` or from a server's gRPC reflection, with the binary and the
//! JSON codec.
//!
//! Volley's [`Message`] trait decodes without a descriptor (`decode_proto(bytes)`), so a
//! message whose type is only known at run time is split in two:
//!
//! - what the runtime hands over is an **undecoded payload**: a [`Dynamic`] holding the
//!   bytes and the codec they arrived in. A handler (or the caller of a client) decodes it
//!   with the method's descriptor: [`Dynamic::decode`];
//! - what the runtime sends is **self-describing**: a [`Dynamic`] made from a
//!   `prost_reflect::DynamicMessage` ([`Dynamic::new`]) encodes itself in either codec. A
//!   payload given its descriptor with [`Dynamic::described`] does too, and is transcoded
//!   only when the codecs differ (binary to binary is forwarded untouched).
//!
//! [`Schema`] loads the descriptors ([`Schema::from_file_descriptor_set`],
//! [`Schema::from_file`], [`Schema::from_reflection`]) and lists every method with a
//! [`Spec`](volley::Spec) made at run time ([`Method::spec`]), to register with
//! [`Router`](volley::Router) or call with [`Client`](volley::Client).
//!
//! ```
//! use prost_reflect::DynamicMessage;
//! use volley::Message as _;
//! use volley_dynamic::Dynamic;
//!
//! # fn main() -> Result<(), volley::Error> {
//! // A descriptor set with one message, `demo.Ping { string text = 1; }`, made by hand.
//! let set = prost_reflect::prost_types::FileDescriptorSet {
//!     file: vec![prost_reflect::prost_types::FileDescriptorProto {
//!         name: Some("demo.proto".into()),
//!         package: Some("demo".into()),
//!         syntax: Some("proto3".into()),
//!         message_type: vec![prost_reflect::prost_types::DescriptorProto {
//!             name: Some("Ping".into()),
//!             field: vec![prost_reflect::prost_types::FieldDescriptorProto {
//!                 name: Some("text".into()),
//!                 json_name: Some("text".into()),
//!                 number: Some(1),
//!                 r#type: Some(9), // string
//!                 label: Some(1),
//!                 ..Default::default()
//!             }],
//!             ..Default::default()
//!         }],
//!         ..Default::default()
//!     }],
//! };
//! let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(set).unwrap();
//! let ping = pool.get_message_by_name("demo.Ping").unwrap();
//!
//! // JSON in, as a server receives it...
//! let payload = Dynamic::decode_json(br#"{"text":"hi"}"#)?;
//! let message: DynamicMessage = payload.decode(&ping)?;
//! // ...binary out, as a client sends it.
//! let mut binary = bytes::BytesMut::new();
//! Dynamic::new(message).encode_proto(&mut binary)?;
//! assert_eq!(&binary[..], b"\x0a\x02hi");
//! # Ok(())
//! # }
//! ```

mod schema;

use bytes::{BufMut as _, Bytes, BytesMut};
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage as _};
use volley::{Code, Error, Message};

pub use crate::schema::{Method, Schema};
/// The descriptor library this crate builds on, re-exported so its types match.
pub use prost_reflect;

/// The two encodings every message has (the [`Message`] trait's), which a payload is kept in
/// until it is decoded: codecs built on them (the built-in `proto` and `json`, and user
/// codecs that delegate to either) hand a [`Dynamic`] its bytes in one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Binary protobuf.
    Proto,
    /// Canonical proto3 JSON.
    Json,
}

impl Encoding {
    /// `proto` or `json`.
    pub const fn name(self) -> &'static str {
        match self {
            Encoding::Proto => "proto",
            Encoding::Json => "json",
        }
    }
}

/// A message whose type is known only at run time: an undecoded payload, a payload with its
/// descriptor, or a decoded `DynamicMessage`. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct Dynamic(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// As received: the bytes and the codec they are in.
    Encoded { codec: Encoding, bytes: Bytes },
    /// Received bytes plus the descriptor to transcode them with.
    Described {
        codec: Encoding,
        bytes: Bytes,
        descriptor: MessageDescriptor,
    },
    /// Decoded.
    Message(DynamicMessage),
}

impl Dynamic {
    /// A self-describing message: it encodes in either codec.
    pub fn new(message: DynamicMessage) -> Self {
        Dynamic(Repr::Message(message))
    }

    /// An undecoded payload of `bytes` in `codec` (what the runtime hands over when it
    /// receives one).
    pub fn encoded(codec: Encoding, bytes: Bytes) -> Self {
        Dynamic(Repr::Encoded { codec, bytes })
    }

    /// The codec and bytes of an undecoded payload; `None` for a decoded message.
    pub fn as_encoded(&self) -> Option<(Encoding, &Bytes)> {
        match &self.0 {
            Repr::Encoded { codec, bytes } | Repr::Described { codec, bytes, .. } => {
                Some((*codec, bytes))
            }
            Repr::Message(_) => None,
        }
    }

    /// Decodes with `descriptor` (binary or proto3 JSON, whichever the payload is in). A
    /// decoded message is returned as is if it is of that type. An empty JSON body is the
    /// empty message, as with the binary codec.
    pub fn decode(&self, descriptor: &MessageDescriptor) -> Result<DynamicMessage, Error> {
        match &self.0 {
            Repr::Encoded { codec, bytes } | Repr::Described { codec, bytes, .. } => {
                decode(*codec, bytes, descriptor)
            }
            Repr::Message(m) if m.descriptor() == *descriptor => Ok(m.clone()),
            Repr::Message(m) => Err(Error::new(
                Code::InvalidArgument,
                format!(
                    "expected a {}, got a {}",
                    descriptor.full_name(),
                    m.descriptor().full_name()
                ),
            )),
        }
    }

    /// The same payload, able to encode itself in either codec: it is transcoded with
    /// `descriptor` only when sent in a codec other than the one it arrived in. A decoded
    /// message is left as it is.
    pub fn described(self, descriptor: MessageDescriptor) -> Self {
        match self.0 {
            Repr::Encoded { codec, bytes } | Repr::Described { codec, bytes, .. } => {
                Dynamic(Repr::Described {
                    codec,
                    bytes,
                    descriptor,
                })
            }
            m @ Repr::Message(_) => Dynamic(m),
        }
    }

    /// Encodes with `codec` into `buf`.
    fn encode(&self, codec: Encoding, buf: &mut BytesMut) -> Result<(), Error> {
        match &self.0 {
            Repr::Encoded { codec: c, bytes }
            | Repr::Described {
                codec: c, bytes, ..
            } if *c == codec => {
                buf.extend_from_slice(bytes);
                Ok(())
            }
            Repr::Encoded { codec: c, .. } => Err(Error::internal(format!(
                "a {} payload without its descriptor cannot be sent as {}: decode it or call \
                 Dynamic::described first",
                c.name(),
                codec.name()
            ))),
            Repr::Described {
                codec: c,
                bytes,
                descriptor,
            } => encode_message(&decode(*c, bytes, descriptor)?, codec, buf),
            Repr::Message(m) => encode_message(m, codec, buf),
        }
    }
}

impl From<DynamicMessage> for Dynamic {
    fn from(message: DynamicMessage) -> Self {
        Dynamic::new(message)
    }
}

fn decode(
    codec: Encoding,
    bytes: &Bytes,
    descriptor: &MessageDescriptor,
) -> Result<DynamicMessage, Error> {
    match codec {
        Encoding::Proto => DynamicMessage::decode(descriptor.clone(), bytes.clone()).map_err(|e| {
            Error::new(
                Code::InvalidArgument,
                format!("unmarshal protobuf message: {e}"),
            )
            .with_source(e)
        }),
        Encoding::Json => {
            let text: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
            let mut de = serde_json::Deserializer::from_slice(text);
            DynamicMessage::deserialize(descriptor.clone(), &mut de)
                .and_then(|m| de.end().map(|()| m))
                .map_err(|e| {
                    Error::new(
                        Code::InvalidArgument,
                        format!("unmarshal JSON message: {e}"),
                    )
                    .with_source(e)
                })
        }
    }
}

fn encode_message(
    message: &DynamicMessage,
    codec: Encoding,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    match codec {
        Encoding::Proto => {
            buf.reserve(prost::Message::encoded_len(message));
            prost::Message::encode(message, buf).map_err(|e| Error::from_source(Code::Internal, e))
        }
        Encoding::Json => {
            let mut ser = serde_json::Serializer::new(buf.writer());
            serde::Serialize::serialize(message, &mut ser)
                .map_err(|e| Error::from_source(Code::Internal, e))
        }
    }
}

impl Message for Dynamic {
    fn encode_proto(&self, buf: &mut BytesMut) -> Result<(), Error> {
        self.encode(Encoding::Proto, buf)
    }

    fn decode_proto(bytes: Bytes) -> Result<Self, Error> {
        Ok(Dynamic::encoded(Encoding::Proto, bytes))
    }

    fn encode_json(&self, buf: &mut BytesMut) -> Result<(), Error> {
        self.encode(Encoding::Json, buf)
    }

    fn decode_json(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Dynamic::encoded(
            Encoding::Json,
            Bytes::copy_from_slice(bytes),
        ))
    }
}
