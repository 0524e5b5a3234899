//! Zero-copy request messages: [`View`].
//!
//! A handler normally receives an owned message: decoding copies every string and bytes field
//! into its own allocation (and builds a `HashMap` per map field). A handler that takes a
//! [`View`] instead gets buffa's borrowed view of the request — strings as `&str`, bytes as
//! `&[u8]`, repeated and map fields as views — pointing into the received buffer, which the
//! `View` keeps alive. Decode-heavy calls (many strings per request) get much cheaper.
//!
//! Code generation chooses views per method (`volley-build`'s `Config::request_views`, the
//! plugin's `request_views` option); any buffa message with generated views works by hand too,
//! as `Request<View<Foo>>` or `Streaming<View<Foo>>`.

use std::fmt;
use std::ops::Deref;

use buffa::HasMessageView;
use buffa::view::OwnedView;
use bytes::{Bytes, BytesMut};

use crate::codec::Message;
use crate::{Code, Error};

/// A message `M` received as a zero-copy view of its binary encoding.
///
/// It dereferences to buffa's generated owned-view handle for `M` (`FooOwnedView` for a
/// message `Foo`), whose accessors borrow from the buffer: `request.message().name()` is a
/// `&str` into the request body, and `request.message().view()` is the whole `FooView<'_>`
/// (fields as struct members, sub-messages, repeated and map views).
///
/// As a [`Message`]:
///
/// - binary protobuf decodes without allocating per field: the view borrows the received
///   buffer (after decompression, when the request was compressed);
/// - JSON decodes into the owned `M`, which is then encoded to binary and viewed: a JSON
///   request costs one more encode and a small view decode than with an owned handler, so
///   views pay off for binary clients and cost a little for JSON ones;
/// - binary encoding writes the buffer the view was decoded from (for a view built from JSON,
///   the re-encoded message), unknown fields included;
/// - JSON encoding goes through the owned message ([`to_owned_message`](Self::to_owned_message)).
///
/// A view keeps its whole buffer alive while it lives, even if the handler only keeps one
/// string of it; owned messages are easier to store, modify and move across tasks. Convert
/// with [`to_owned_message`](Self::to_owned_message) when a request outlives its call.
pub struct View<M: HasMessageView> {
    handle: M::ViewHandle,
}

impl<M: HasMessageView> View<M> {
    /// Decodes a view of the binary encoding in `bytes`, borrowing from it.
    pub fn decode(bytes: Bytes) -> Result<Self, Error> {
        M::decode_view_handle(bytes)
            .map(|handle| Self { handle })
            .map_err(|e| {
                Error::new(
                    Code::InvalidArgument,
                    format!("unmarshal protobuf message: {e}"),
                )
                .with_source(e)
            })
    }

    /// A view of `message`, by encoding it and viewing the encoding.
    pub fn from_owned(message: &M) -> Result<Self, Error> {
        OwnedView::<M::View<'static>>::from_owned(message)
            .map(|owned| Self {
                handle: M::ViewHandle::from(owned),
            })
            .map_err(|e| Error::new(Code::InvalidArgument, format!("view of a message: {e}")))
    }

    /// The binary encoding the view borrows from.
    pub fn bytes(&self) -> &Bytes {
        self.handle.as_ref().bytes()
    }

    /// Copies the view into the owned message.
    pub fn to_owned_message(&self) -> M {
        self.handle.as_ref().to_owned_message()
    }

    /// The generated owned-view handle (`FooOwnedView`).
    pub fn handle(&self) -> &M::ViewHandle {
        &self.handle
    }

    /// Unwraps the generated owned-view handle (`FooOwnedView`).
    pub fn into_handle(self) -> M::ViewHandle {
        self.handle
    }
}

impl<M: HasMessageView> Deref for View<M> {
    type Target = M::ViewHandle;

    fn deref(&self) -> &M::ViewHandle {
        &self.handle
    }
}

impl<M: HasMessageView> Clone for View<M>
where
    M::ViewHandle: Clone,
{
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl<M: HasMessageView> fmt::Debug for View<M>
where
    M::ViewHandle: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt(f)
    }
}

impl<M> Message for View<M>
where
    M: HasMessageView + Message,
{
    fn encode_proto(&self, buf: &mut BytesMut) -> Result<(), Error> {
        buf.extend_from_slice(self.bytes());
        Ok(())
    }

    fn encode_proto_after(&self, headroom: usize) -> Result<BytesMut, Error> {
        let mut buf = BytesMut::with_capacity(headroom + self.bytes().len());
        buf.resize(headroom, 0);
        buf.extend_from_slice(self.bytes());
        Ok(buf)
    }

    fn decode_proto(bytes: Bytes) -> Result<Self, Error> {
        Self::decode(bytes)
    }

    fn encode_json(&self, buf: &mut BytesMut) -> Result<(), Error> {
        self.to_owned_message().encode_json(buf)
    }

    fn decode_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_owned(&M::decode_json(bytes)?)
    }

    fn full_name() -> &'static str {
        M::full_name()
    }
}

#[cfg(test)]
mod tests {
    use buffa_types::google::protobuf::StringValue;

    use super::*;

    fn message() -> StringValue {
        StringValue {
            value: "volley views \u{2713}".into(),
            ..Default::default()
        }
    }

    #[test]
    fn binary_decode_borrows_the_buffer_and_round_trips() {
        let bytes = Bytes::from(buffa::Message::encode_to_vec(&message()));
        let view = <View<StringValue> as Message>::decode_proto(bytes.clone()).unwrap();
        let value = view.view().value;
        assert_eq!(value, message().value);
        assert!(bytes.as_ptr_range().contains(&value.as_ptr()));
        assert_eq!(view.to_owned_message(), message());
        let mut out = BytesMut::new();
        view.encode_proto(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn json_is_decoded_and_encoded_through_the_owned_message() {
        let mut json = BytesMut::new();
        message().encode_json(&mut json).unwrap();
        let view = View::<StringValue>::decode_json(&json).unwrap();
        assert_eq!(view.view().value, message().value);
        assert_eq!(view.to_owned_message(), message());
        let mut again = BytesMut::new();
        view.encode_json(&mut again).unwrap();
        assert_eq!(again, json);
    }

    #[test]
    fn bad_input_is_invalid_argument() {
        for bytes in [
            &[0x0a, 0x05, b'a'][..],   // truncated string
            &[0x0a, 0x02, 0xff, 0xfe], // invalid UTF-8
            &[0xff, 0xff, 0xff],       // bad tag
        ] {
            let err = View::<StringValue>::decode_proto(Bytes::copy_from_slice(bytes)).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bytes:?}");
        }
        let err = View::<StringValue>::decode_json(b"5").unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
}
