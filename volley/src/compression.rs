//! Message compression: the [`Compression`] trait, the built-in algorithms, and an ordered,
//! user-extensible registry used for negotiation.
//!
//! Decompression is always bounded: a peer's gzip bomb stops at the receive limit and becomes
//! `resource_exhausted`, without inflating past it.

use std::io::Read;
use std::sync::Arc;

use crate::{Code, Error};

/// A compression algorithm.
pub trait Compression: Send + Sync + 'static {
    /// The name used in `*-encoding` headers (`gzip`).
    fn name(&self) -> &'static str;
    /// Appends the compressed form of `input` to `out`.
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()>;
    /// A reader yielding the decompressed form of `input`.
    fn decompressor<'a>(&self, input: &'a [u8]) -> Box<dyn Read + 'a>;
    /// Whether the decompressor's work is proportional to the output read from it, so that
    /// reading a first small slice of output is cheap enough to do on an async worker.
    /// Default `false`: every message is decompressed on the blocking pool. (Brotli is not:
    /// it may decode a whole window of up to 16 MiB before yielding its first byte.)
    fn output_paced(&self) -> bool {
        false
    }
}

/// Decompresses `input` with `algo`, failing with `resource_exhausted` past `limit` bytes.
///
/// An empty input is the empty message whatever the algorithm, as Go's implementations read
/// it (older klauspost/compress encoders send a 0-byte payload for an empty message).
pub fn decompress(algo: &dyn Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(input.len().saturating_mul(2).min(limit).min(1 << 20));
    let reader = algo.decompressor(input);
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::new(Code::Internal, format!("decompress {}: {e}", algo.name())).with_source(e)
        })?;
    if read > limit {
        return Err(Error::resource_exhausted(format!(
            "message is larger than the limit of {limit} bytes after decompression"
        )));
    }
    Ok(out)
}

/// The most output decompressed inline, on the async worker; larger messages are
/// decompressed again on the blocking pool.
const INLINE_OUTPUT: usize = 64 * 1024;

/// The blocking-pool slots for decompression: half the CPUs (at least one), so a flood of
/// expensive messages never takes every core from the async workers serving other calls.
fn decompression_slots() -> Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SLOTS
        .get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(2, usize::from);
            Arc::new(tokio::sync::Semaphore::new((cpus / 2).max(1)))
        })
        .clone()
}

/// [`decompress`] that cannot stall the async workers: with an output-paced algorithm
/// ([`Compression::output_paced`]: gzip, deflate, zstd) the first 64 KiB of output are
/// decompressed inline (cheap, and most messages are smaller); a message inflating past that,
/// or any message of another algorithm (brotli), is decompressed on tokio's blocking pool, at
/// most half the CPUs' worth at a time, still bounded by `limit`. Outside a tokio runtime it
/// decompresses inline.
pub(crate) async fn decompress_off_worker(
    algo: Arc<dyn Compression>,
    input: bytes::Bytes,
    limit: usize,
) -> Result<bytes::Bytes, Error> {
    if input.is_empty() {
        return Ok(bytes::Bytes::new());
    }
    if algo.output_paced() {
        let inline = limit.min(INLINE_OUTPUT);
        match decompress(algo.as_ref(), &input, inline) {
            Err(e) if e.code() == Code::ResourceExhausted && limit > inline => {}
            other => return other.map(bytes::Bytes::from),
        }
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return decompress(algo.as_ref(), &input, limit).map(bytes::Bytes::from);
    };
    let permit = decompression_slots()
        .acquire_owned()
        .await
        .map_err(|e| Error::internal(format!("decompression pool closed: {e}")))?;
    runtime
        .spawn_blocking(move || {
            let _permit = permit;
            decompress(algo.as_ref(), &input, limit).map(bytes::Bytes::from)
        })
        .await
        .map_err(|e| Error::internal(format!("decompression failed: {e}")))?
}

/// gzip (RFC 1952).
#[cfg(feature = "gzip")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Gzip;

#[cfg(feature = "gzip")]
impl Compression for Gzip {
    fn output_paced(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "gzip"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        enc.write_all(input)?;
        enc.finish()?;
        Ok(())
    }
    fn decompressor<'a>(&self, input: &'a [u8]) -> Box<dyn Read + 'a> {
        Box::new(flate2::read::GzDecoder::new(input))
    }
}

/// deflate: the zlib format (RFC 1950), as HTTP's `deflate` coding means.
#[cfg(feature = "gzip")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Deflate;

#[cfg(feature = "gzip")]
impl Compression for Deflate {
    fn output_paced(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "deflate"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(out, flate2::Compression::fast());
        enc.write_all(input)?;
        enc.finish()?;
        Ok(())
    }
    fn decompressor<'a>(&self, input: &'a [u8]) -> Box<dyn Read + 'a> {
        Box::new(flate2::read::ZlibDecoder::new(input))
    }
}

/// Brotli.
#[cfg(feature = "br")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Brotli;

#[cfg(feature = "br")]
impl Compression for Brotli {
    fn name(&self) -> &'static str {
        "br"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write;
        let mut enc = brotli::CompressorWriter::new(out, 4096, 4, 22);
        enc.write_all(input)?;
        enc.flush()?;
        Ok(())
    }
    fn decompressor<'a>(&self, input: &'a [u8]) -> Box<dyn Read + 'a> {
        Box::new(brotli::Decompressor::new(input, 4096))
    }
}

/// Zstandard.
#[cfg(feature = "zstd")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Zstd;

#[cfg(feature = "zstd")]
impl Compression for Zstd {
    fn output_paced(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "zstd"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let compressed = zstd::bulk::compress(input, 3)?;
        out.extend_from_slice(&compressed);
        Ok(())
    }
    fn decompressor<'a>(&self, input: &'a [u8]) -> Box<dyn Read + 'a> {
        match zstd::stream::read::Decoder::with_buffer(input) {
            Ok(d) => Box::new(d),
            Err(e) => Box::new(FailingReader(Some(e))),
        }
    }
}

#[cfg(feature = "zstd")]
struct FailingReader(Option<std::io::Error>);

#[cfg(feature = "zstd")]
impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| std::io::Error::other("decoder failed")))
    }
}

/// The algorithms a server or client accepts, in order of preference.
///
/// The default holds every built-in algorithm the enabled features provide. Set one on a
/// [`Router`](crate::Router::compression) or a
/// [`ClientConfig`](crate::ClientConfig::compression); custom algorithms implement
/// [`Compression`].
///
/// ```
/// use volley::compression::{Compression, Registry};
///
/// /// A toy "compression" that stores bytes as they are, under its own name.
/// struct Stored;
///
/// impl Compression for Stored {
///     fn name(&self) -> &'static str {
///         "x-stored"
///     }
///     fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
///         out.extend_from_slice(input);
///         Ok(())
///     }
///     fn decompressor<'a>(&self, input: &'a [u8]) -> Box<dyn std::io::Read + 'a> {
///         Box::new(input)
///     }
/// }
///
/// // Only the custom algorithm; `Registry::default().with(Stored)` would add it to the
/// // built-in ones (gzip and deflate with the default features), at the lowest preference.
/// let registry = Registry::empty().with(Stored).with_min_size(512);
/// assert_eq!(registry.accept_header(), "x-stored");
/// let router = volley::Router::new().compression(registry);
/// # let _ = router;
/// ```
#[derive(Clone)]
pub struct Registry {
    algos: Vec<Arc<dyn Compression>>,
    min_size: usize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("algos", &self.names().collect::<Vec<_>>())
            .field("min_size", &self.min_size)
            .finish()
    }
}

impl Default for Registry {
    /// Every built-in algorithm the enabled features provide, preferring gzip, then zstd, br
    /// and deflate; a 1 KiB minimum size before compressing outgoing messages.
    fn default() -> Self {
        #[allow(unused_mut)] // reason: with no compression feature enabled nothing is pushed
        let mut r = Self::empty();
        #[cfg(feature = "gzip")]
        r.push(Gzip);
        #[cfg(feature = "zstd")]
        r.push(Zstd);
        #[cfg(feature = "br")]
        r.push(Brotli);
        #[cfg(feature = "gzip")]
        r.push(Deflate);
        r
    }
}

impl Registry {
    /// A registry with no algorithm (identity only).
    pub fn empty() -> Self {
        Self {
            algos: Vec::new(),
            min_size: 1024,
        }
    }

    /// Adds an algorithm at the lowest preference, replacing one with the same name.
    pub fn push(&mut self, algo: impl Compression) -> &mut Self {
        self.algos.retain(|a| a.name() != algo.name());
        self.algos.push(Arc::new(algo));
        self
    }

    /// Builder form of [`push`](Self::push).
    pub fn with(mut self, algo: impl Compression) -> Self {
        self.push(algo);
        self
    }

    /// Messages smaller than this are sent uncompressed (default 1024 bytes).
    pub fn with_min_size(mut self, min_size: usize) -> Self {
        self.min_size = min_size;
        self
    }

    /// The minimum size to compress.
    pub fn min_size(&self) -> usize {
        self.min_size
    }

    /// Looks up an algorithm by name (`identity` is not an algorithm).
    pub fn get(&self, name: &str) -> Option<Arc<dyn Compression>> {
        self.algos.iter().find(|a| a.name() == name).cloned()
    }

    /// The names, in order of preference.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.algos.iter().map(|a| a.name())
    }

    /// The `accept-encoding` value advertising every algorithm (`gzip,zstd,br,deflate`).
    pub fn accept_header(&self) -> String {
        self.names().collect::<Vec<_>>().join(",")
    }

    /// Picks the algorithm to answer with: the request's own encoding when the peer accepts
    /// it, else the first of ours the peer lists in `accept`.
    pub(crate) fn negotiate(
        &self,
        request_encoding: Option<&Arc<dyn Compression>>,
        accept: Option<&str>,
    ) -> Option<Arc<dyn Compression>> {
        if let Some(algo) = request_encoding {
            return Some(algo.clone());
        }
        let accept = accept?;
        crate::headers::split_list(accept)
            .map(|item| item.split(';').next().unwrap_or("").trim())
            .find_map(|name| self.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Registry {
        Registry::default()
    }

    /// The algorithms this build has (the compression features vary).
    fn names() -> Vec<String> {
        all()
            .accept_header()
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_algorithm_round_trips() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for name in names() {
            let name = name.as_str();
            let algo = all().get(name).unwrap();
            let mut out = Vec::new();
            algo.compress(&data, &mut out).unwrap();
            assert!(out.len() < data.len(), "{name} compresses");
            assert_eq!(decompress(algo.as_ref(), &out, data.len()).unwrap(), data);
            let err = decompress(algo.as_ref(), &out, data.len() - 1).unwrap_err();
            assert_eq!(err.code(), Code::ResourceExhausted, "{name} bounded");
        }
    }

    #[test]
    fn empty_input_is_the_empty_message() {
        for name in names() {
            let name = name.as_str();
            let algo = all().get(name).unwrap();
            assert_eq!(decompress(algo.as_ref(), b"", 0).unwrap(), b"", "{name}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for name in names() {
            let name = name.as_str();
            let algo = all().get(name).unwrap();
            assert!(
                decompress(algo.as_ref(), b"\x00\x01garbage", 100).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    #[cfg(all(feature = "gzip", feature = "zstd", feature = "br"))]
    fn negotiation_prefers_the_request_encoding() {
        let r = all();
        let gz = r.get("gzip");
        assert_eq!(r.negotiate(gz.as_ref(), Some("br")).unwrap().name(), "gzip");
        assert_eq!(
            r.negotiate(None, Some("snappy, br;q=1, gzip"))
                .unwrap()
                .name(),
            "br"
        );
        assert!(r.negotiate(None, Some("snappy")).is_none());
        assert_eq!(r.accept_header(), "gzip,zstd,br,deflate");
    }
}
