//! Compression for raw requests and responses, implemented straight on the codec crates (not
//! through volley) so the tests check volley against independent encoders and decoders.

use std::io::{Read, Write};

use anyhow::{Context, bail};

/// Every encoding the matrix covers; `identity` means none.
pub const ENCODINGS: [&str; 5] = ["identity", "gzip", "br", "zstd", "deflate"];

/// Compresses `data` with the named encoding.
pub fn compress(encoding: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match encoding {
        "identity" => data.to_vec(),
        "gzip" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data)?;
            enc.finish()?
        }
        "deflate" => {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data)?;
            enc.finish()?
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                enc.write_all(data)?;
            }
            out
        }
        "zstd" => zstd::bulk::compress(data, 3)?,
        other => bail!("unknown encoding {other}"),
    })
}

/// Decompresses `data` with the named encoding.
pub fn decompress(encoding: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    match encoding {
        "identity" => out.extend_from_slice(data),
        "gzip" => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(data).read_to_end(&mut out)?;
        }
        "br" => {
            brotli::Decompressor::new(data, 4096).read_to_end(&mut out)?;
        }
        "zstd" => {
            zstd::stream::read::Decoder::new(data)?.read_to_end(&mut out)?;
        }
        other => bail!("unknown encoding {other}"),
    }
    Ok(out)
}

/// A gzip bomb: a valid gzip stream of `mib` MiB of zeros that is about a thousandth of that
/// size on the wire. Built from one raw-deflate chunk of 1 MiB of zeros ended by a full flush
/// (so it references nothing before it) and repeated, without ever running the compressor
/// over the whole inflated size.
pub fn gzip_bomb(mib: usize) -> anyhow::Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress};
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut chunk = |input: &[u8], flush: FlushCompress| -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 * 1024);
        let start_in = deflate.total_in();
        loop {
            let consumed = usize::try_from(deflate.total_in() - start_in)?;
            let status = deflate.compress_vec(&input[consumed..], &mut out, flush)?;
            let consumed = usize::try_from(deflate.total_in() - start_in)?;
            // Done once all input is in and the flush fitted in the spare capacity.
            if status == flate2::Status::StreamEnd
                || (consumed == input.len() && out.len() < out.capacity())
            {
                break;
            }
            out.reserve(64 * 1024);
        }
        Ok(out)
    };
    // After a full flush nothing refers back past it, so the chunk is valid anywhere in the
    // stream and repeating it is repeating its megabyte of zeros.
    let one_mib = chunk(&zeros, FlushCompress::Full)?;
    let tail = chunk(&[], FlushCompress::Finish)?;
    // CRC-32 of `mib` MiB of zeros by combining (O(log n)), not by hashing a GiB.
    let copy = |c: &flate2::Crc| {
        let mut out = flate2::Crc::new();
        out.combine(c);
        out
    };
    let mut block = flate2::Crc::new();
    block.update(&zeros);
    let mut crc = flate2::Crc::new();
    let mut n = mib;
    while n > 0 {
        if n & 1 == 1 {
            crc.combine(&block);
        }
        let twice = copy(&block);
        block.combine(&twice);
        n >>= 1;
    }
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..mib {
        out.extend_from_slice(&one_mib);
    }
    out.extend_from_slice(&tail);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    let size = u32::try_from((mib * CHUNK) % (1 << 32)).context("size")?;
    out.extend_from_slice(&size.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        for enc in ENCODINGS {
            let packed = compress(enc, &data).unwrap();
            if enc != "identity" {
                assert!(packed.len() < data.len(), "{enc}");
            }
            assert_eq!(decompress(enc, &packed).unwrap(), data, "{enc}");
        }
    }

    #[test]
    fn the_bomb_is_a_valid_gzip_stream_of_zeros() {
        let mib = 5;
        let bomb = gzip_bomb(mib).unwrap();
        assert!(bomb.len() < mib * 4096, "{} bytes", bomb.len());
        // The decoder checks the CRC and size in the trailer.
        let inflated = decompress("gzip", &bomb).unwrap();
        assert_eq!(inflated.len(), mib << 20);
        assert!(inflated.iter().all(|&b| b == 0));
    }
}
