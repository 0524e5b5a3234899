//! A raw HTTP/2 client that writes and reads frames itself, for tests of peers that
//! misbehave in ways a real client library will not: a zero flow-control window, more streams
//! than the server allows, a socket never read. Headers are sent as HPACK literals (no
//! indexing, no Huffman), which every decoder must accept; received header blocks are not
//! decoded.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Frame type DATA.
pub const DATA: u8 = 0x0;
/// Frame type HEADERS.
pub const HEADERS: u8 = 0x1;
/// Frame type RST_STREAM.
pub const RST_STREAM: u8 = 0x3;
/// Frame type SETTINGS.
pub const SETTINGS: u8 = 0x4;
/// Frame type PING.
pub const PING: u8 = 0x6;
/// Frame type GOAWAY.
pub const GOAWAY: u8 = 0x7;
/// Frame type WINDOW_UPDATE.
pub const WINDOW_UPDATE: u8 = 0x8;

/// Flag END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// Flag ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// Flag END_HEADERS (HEADERS).
pub const END_HEADERS: u8 = 0x4;

/// Setting SETTINGS_MAX_CONCURRENT_STREAMS.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// Setting SETTINGS_INITIAL_WINDOW_SIZE.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Error code REFUSED_STREAM.
pub const REFUSED_STREAM: u32 = 0x7;

/// One frame read.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame type.
    pub kind: u8,
    /// Its flags.
    pub flags: u8,
    /// Its stream identifier.
    pub stream: u32,
    /// Its payload.
    pub payload: Bytes,
}

impl Frame {
    /// The settings of a SETTINGS frame.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect()
    }

    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A cleartext HTTP/2 connection driven frame by frame.
#[derive(Debug)]
pub struct RawH2 {
    tcp: TcpStream,
    buf: BytesMut,
}

impl RawH2 {
    /// Connects, then sends the connection preface and a SETTINGS frame with `settings`.
    pub async fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut conn = Self {
            tcp,
            buf: BytesMut::new(),
        };
        conn.tcp
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await?;
        let mut payload = BytesMut::new();
        for (id, value) in settings {
            payload.put_u16(*id);
            payload.put_u32(*value);
        }
        conn.write_frame(SETTINGS, 0, 0, &payload).await?;
        Ok(conn)
    }

    /// Writes one frame.
    pub async fn write_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let mut frame = BytesMut::with_capacity(9 + payload.len());
        let len = u32::try_from(payload.len())?;
        frame.put_slice(&len.to_be_bytes()[1..]);
        frame.put_u8(kind);
        frame.put_u8(flags);
        frame.put_u32(stream & 0x7fff_ffff);
        frame.put_slice(payload);
        self.tcp.write_all(&frame).await?;
        Ok(())
    }

    /// Opens stream `stream` with a POST to `path` carrying `headers` (names lowercase), as
    /// one HEADERS frame.
    pub async fn post(
        &mut self,
        stream: u32,
        path: &str,
        headers: &[(&str, &str)],
        end_stream: bool,
    ) -> anyhow::Result<()> {
        let mut block = BytesMut::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", path),
        ]
        .iter()
        .chain(headers)
        {
            // Literal header field without indexing, new name.
            block.put_u8(0);
            hpack_string(&mut block, name.as_bytes());
            hpack_string(&mut block, value.as_bytes());
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.write_frame(HEADERS, flags, stream, &block).await
    }

    /// Sends a DATA frame on `stream`.
    pub async fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> anyhow::Result<()> {
        let flags = if end_stream { END_STREAM } else { 0 };
        self.write_frame(DATA, flags, stream, data).await
    }

    /// Resets `stream` with error code CANCEL.
    pub async fn cancel(&mut self, stream: u32) -> anyhow::Result<()> {
        self.write_frame(RST_STREAM, 0, stream, &0x8u32.to_be_bytes())
            .await
    }

    /// Reads the next frame within `within`; `None` when the server closed the connection.
    /// SETTINGS and PING frames are acknowledged (and returned).
    pub async fn read_frame(&mut self, within: Duration) -> anyhow::Result<Option<Frame>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let mut head = self.buf.split_to(9);
                    let _ = head.split_to(3);
                    let kind = head.get_u8();
                    let flags = head.get_u8();
                    let stream = head.get_u32() & 0x7fff_ffff;
                    let payload = self.buf.split_to(len).freeze();
                    let frame = Frame {
                        kind,
                        flags,
                        stream,
                        payload,
                    };
                    if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                        self.write_frame(SETTINGS, ACK, 0, &[]).await?;
                    }
                    if frame.kind == PING && frame.flags & ACK == 0 {
                        let payload = frame.payload.clone();
                        self.write_frame(PING, ACK, 0, &payload).await?;
                    }
                    return Ok(Some(frame));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) => n,
                // A reset is the server closing too.
                Ok(Err(_)) => return Ok(None),
                Err(_) => bail!("no frame within {within:?}"),
            };
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads frames until one matches `pred`, within `within` in all; `None` when the
    /// connection closed first.
    pub async fn read_until(
        &mut self,
        within: Duration,
        mut pred: impl FnMut(&Frame) -> bool,
    ) -> anyhow::Result<Option<Frame>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .read_frame(left)
                .await
                .with_context(|| format!("waiting {within:?} for a frame"))?
            {
                Some(frame) if pred(&frame) => return Ok(Some(frame)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    /// Whether the server closed the connection within `within` (frames read meanwhile are
    /// discarded).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        matches!(self.read_until(within, |_| false).await, Ok(None))
    }
}

/// An HPACK string literal (no Huffman coding) with its 7-bit prefixed length.
fn hpack_string(out: &mut BytesMut, s: &[u8]) {
    let mut len = s.len();
    if len < 127 {
        out.put_u8(len as u8);
    } else {
        out.put_u8(127);
        len -= 127;
        while len >= 128 {
            out.put_u8((len % 128) as u8 | 0x80);
            len /= 128;
        }
        out.put_u8(len as u8);
    }
    out.put_slice(s);
}
