//! The 5-byte message framing shared by every streaming protocol: one flags byte and a
//! 4-byte big-endian length, then the payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Flag: the payload is compressed with the stream's encoding.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Flag (Connect): this is the end-of-stream message.
pub const FLAG_END_STREAM: u8 = 0x02;
/// Flag (gRPC-Web): this frame holds the trailers.
pub const FLAG_TRAILERS: u8 = 0x80;
/// Length of the envelope prefix.
pub const PREFIX_LEN: usize = 5;
/// The most the decoder reserves ahead of the bytes that have arrived (16 KiB, HTTP/2's
/// default frame size): a prefix declaring a large payload does not allocate it up front.
pub const RESERVE_CHUNK: usize = 16 * 1024;

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// The flags byte.
    pub flags: u8,
    /// The payload, as sent (possibly compressed).
    pub data: Bytes,
}

impl Envelope {
    /// An envelope with `flags` around `data`.
    pub fn new(flags: u8, data: impl Into<Bytes>) -> Self {
        Self {
            flags,
            data: data.into(),
        }
    }

    /// Whether the compressed flag is set.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }
}

/// Writes one envelope to `out`.
pub fn encode(flags: u8, data: &[u8], out: &mut BytesMut) {
    out.reserve(PREFIX_LEN + data.len());
    out.put_u8(flags);
    out.put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
    out.put_slice(data);
}

/// A frame declared longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TooLarge {
    /// The declared length.
    pub len: usize,
    /// The limit in force.
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "message length {} exceeds the limit of {} bytes",
            self.len, self.limit
        )
    }
}

impl std::error::Error for TooLarge {}

/// Incremental decoder: feed bytes into a buffer and take whole envelopes out.
///
/// The length check happens on the prefix, before any payload is buffered, so a peer cannot
/// make us hold more than `limit` bytes of one message. The buffer grows with the bytes that
/// arrive, never by the declared length: a prefix declaring 4 MiB followed by 100 bytes costs
/// about 100 bytes plus at most [`RESERVE_CHUNK`], not 4 MiB.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    limit: usize,
}

impl Decoder {
    /// A decoder refusing payloads longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// The flags and declared length of the envelope at the front of `bytes`, once its
    /// prefix has arrived.
    fn prefix(&self, bytes: &[u8]) -> Result<Option<(u8, usize)>, TooLarge> {
        let Some(prefix) = bytes.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        // The gRPC-Web trailers frame is metadata, not a message: it is bounded by the same
        // limit to keep memory use in check, but never reported as a message size.
        if len > self.limit {
            return Err(TooLarge {
                len,
                limit: self.limit,
            });
        }
        Ok(Some((prefix[0], len)))
    }

    /// Takes the next whole envelope off the front of `chunk` without copying (the payload
    /// shares `chunk`'s memory), if the chunk holds one; otherwise leaves it untouched.
    pub fn decode_shared(&self, chunk: &mut Bytes) -> Result<Option<Envelope>, TooLarge> {
        let Some((flags, len)) = self.prefix(chunk)? else {
            return Ok(None);
        };
        if chunk.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        chunk.advance(PREFIX_LEN);
        let data = chunk.split_to(len);
        Ok(Some(Envelope { flags, data }))
    }

    /// Takes the next whole envelope off the front of `buf`, if there is one.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Envelope>, TooLarge> {
        let Some((flags, len)) = self.prefix(buf)? else {
            return Ok(None);
        };
        if buf.len() < PREFIX_LEN + len {
            buf.reserve((PREFIX_LEN + len - buf.len()).min(RESERVE_CHUNK));
            return Ok(None);
        }
        buf.advance(PREFIX_LEN);
        let data = buf.split_to(len).freeze();
        Ok(Some(Envelope { flags, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_across_chunks() {
        let mut wire = BytesMut::new();
        encode(FLAG_COMPRESSED, b"hello", &mut wire);
        encode(0, b"", &mut wire);
        let dec = Decoder::new(100);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(env) = dec.decode(&mut buf).unwrap() {
                out.push(env);
            }
        }
        assert_eq!(out.len(), 2);
        assert!(out[0].is_compressed());
        assert_eq!(&out[0].data[..], b"hello");
        assert!(out[1].data.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_oversize_before_buffering() {
        let mut buf = BytesMut::from(&[0u8, 0, 0x10, 0, 0][..]);
        let err = Decoder::new(1024).decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            TooLarge {
                len: 0x100000,
                limit: 1024
            }
        );
    }

    #[test]
    fn a_large_declared_length_reserves_one_chunk_only() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0u8, 0, 0x40, 0, 0]);
        buf.extend_from_slice(&[7u8; 100]);
        assert!(Decoder::new(8 << 20).decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= 105 + RESERVE_CHUNK, "{}", buf.capacity());
    }

    proptest! {
        #[test]
        fn round_trip(msgs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
                      split in 1usize..64) {
            let mut wire = BytesMut::new();
            for (flags, data) in &msgs {
                encode(*flags, data, &mut wire);
            }
            let dec = Decoder::new(300);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in wire.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(env) = dec.decode(&mut buf).unwrap() {
                    out.push((env.flags, env.data.to_vec()));
                }
            }
            prop_assert_eq!(out, msgs);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let dec = Decoder::new(16);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
        }
    }
}
