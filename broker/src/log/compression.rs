//! Decompression of record batches, with a cap on what they may inflate to.
//!
//! kafka-protocol's own decompressors inflate a batch without any limit (and its
//! snappy reader zero-fills whatever length a block header claims), so a batch of
//! a few kilobytes can ask for gigabytes: a decompression bomb. Every place in the
//! broker that looks inside a compressed batch (compaction, ListOffsets by
//! timestamp, the group coordinator's replay, key validation on produce) decodes
//! through [`decode_batch`], which streams through the codec crates and stops at
//! [`MAX_INFLATED_BATCH_BYTES`]. The hot path never decompresses.

use std::io::Read;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

/// The most one batch may inflate to. Producers cap batches by their size before
/// compression (`batch.size`, `max.request.size`), so honest batches stay far
/// below this; anything larger is refused as corrupt.
pub const MAX_INFLATED_BATCH_BYTES: usize = 128 << 20;

/// Why a batch could not be decompressed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("batch inflates beyond {limit} bytes")]
    TooLarge { limit: usize },
    #[error("corrupt {codec:?} data: {reason}")]
    Corrupt { codec: Compression, reason: String },
}

/// Inflates the records section of a batch compressed with `codec`, refusing to
/// produce more than `limit` bytes.
pub fn decompress(data: &[u8], codec: Compression, limit: usize) -> Result<Bytes, DecompressError> {
    let corrupt = |e: &dyn std::fmt::Display| DecompressError::Corrupt {
        codec,
        reason: e.to_string(),
    };
    let out = match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(DecompressError::TooLarge { limit });
            }
            return Ok(Bytes::copy_from_slice(data));
        }
        // Java's GZIPInputStream reads concatenated members, and so does Kafka.
        Compression::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), limit).map_err(|e| corrupt(&e))?,
        Compression::Lz4 => {
            let mut decoder = lz4::Decoder::new(data).map_err(|e| corrupt(&e))?;
            let out = read_capped(&mut decoder, limit).map_err(|e| corrupt(&e))?;
            // The reader ends quietly at a truncated frame; `finish` tells.
            if out.is_some() {
                decoder.finish().1.map_err(|e| corrupt(&e))?;
            }
            out
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(|e| corrupt(&e))?;
            read_capped(decoder, limit).map_err(|e| corrupt(&e))?
        }
        Compression::Snappy => return snappy(data, limit),
    };
    match out {
        Some(v) => Ok(Bytes::from(v)),
        None => Err(DecompressError::TooLarge { limit }),
    }
}

/// Reads a stream to its end, or `None` once it passes `limit` bytes.
fn read_capped(reader: impl Read, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    Ok((out.len() <= limit).then_some(out))
}

/// The xerial framing Kafka's Java client writes: a 16-byte magic header, then
/// blocks of `[u32 length][raw snappy block]`. Without the header, one raw block.
/// Each block's claimed length is checked against the cap before any allocation.
fn snappy(data: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
    const MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
    const HEADER_LEN: usize = 16;
    let corrupt = |reason: String| DecompressError::Corrupt {
        codec: Compression::Snappy,
        reason,
    };
    let mut out = Vec::new();
    let inflate = |block: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
        if len > limit - out.len() {
            return Err(DecompressError::TooLarge { limit });
        }
        let start = out.len();
        out.resize(start + len, 0);
        let n = snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt(e.to_string()))?;
        out.truncate(start + n);
        Ok(())
    };
    if data.len() < HEADER_LEN || &data[..MAGIC.len()] != MAGIC {
        inflate(data, &mut out)?;
        return Ok(Bytes::from(out));
    }
    let mut rest = &data[HEADER_LEN..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(corrupt("truncated block length".into()));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if len > rest.len() {
            return Err(corrupt(format!("block of {len} bytes, {} present", rest.len())));
        }
        inflate(&rest[..len], &mut out)?;
        rest = &rest[len..];
    }
    Ok(Bytes::from(out))
}

/// Decodes one whole v2 batch (with its records), inflating at most `limit` bytes.
pub fn decode_batch(batch: &mut Bytes, limit: usize) -> anyhow::Result<RecordSet> {
    RecordBatchDecoder::decode_with_custom_compression(
        batch,
        Some(|records: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> {
            let section = records.split_off(0);
            Ok(decompress(&section, codec, limit)?)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zeros_compressed(codec: Compression, n: usize) -> Vec<u8> {
        let zeros = vec![0u8; n];
        match codec {
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(&zeros).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::stream::encode_all(&zeros[..], 19).unwrap(),
            Compression::Lz4 => {
                let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                e.write_all(&zeros).unwrap();
                e.finish().0
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_small_batch_that_inflates_past_the_cap_is_refused() {
        for codec in [Compression::Gzip, Compression::Zstd, Compression::Lz4] {
            let bomb = zeros_compressed(codec, 8 << 20);
            assert!(bomb.len() < 64 << 10, "{codec:?} bomb is {} bytes", bomb.len());
            assert_eq!(
                decompress(&bomb, codec, 1 << 20),
                Err(DecompressError::TooLarge { limit: 1 << 20 })
            );
            assert_eq!(decompress(&bomb, codec, 8 << 20).unwrap().len(), 8 << 20);
        }
    }

    #[test]
    fn a_snappy_block_claiming_four_gigabytes_allocates_nothing() {
        // Raw block: varint length 0xFFFFFFFF, then a literal that is not there.
        let raw = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(
            decompress(&raw, Compression::Snappy, 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
        // Framed: the same block behind xerial's header.
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        framed.extend_from_slice(&(raw.len() as u32).to_be_bytes());
        framed.extend_from_slice(&raw);
        assert_eq!(
            decompress(&framed, Compression::Snappy, 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
        // Many honest blocks that add up past the cap.
        let block = snap::raw::Encoder::new().compress_vec(&[7u8; 32 << 10]).unwrap();
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for _ in 0..40 {
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(
            decompress(&framed, Compression::Snappy, 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
        assert_eq!(
            decompress(&framed, Compression::Snappy, 2 << 20).unwrap().len(),
            40 * (32 << 10)
        );
    }

    #[test]
    fn truncated_or_garbage_compressed_data_is_corrupt_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Lz4,
            Compression::Snappy,
        ] {
            let truncated = zeros_compressed(
                if codec == Compression::Snappy {
                    Compression::Zstd
                } else {
                    codec
                },
                1000,
            );
            for data in [
                &b"garbage that is not compressed"[..],
                b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x10",
                &truncated[..truncated.len() / 2],
            ] {
                let r = decompress(data, codec, 1 << 20);
                assert!(
                    matches!(r, Err(DecompressError::Corrupt { .. })),
                    "{codec:?} {data:?}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn every_codec_round_trips_a_real_batch() {
        use crate::log::batch::tests::make_batch;
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = make_batch(50, 1000, -1, -1, -1, codec);
            let set = decode_batch(&mut b, MAX_INFLATED_BATCH_BYTES).unwrap();
            assert_eq!(set.records.len(), 50, "{codec:?}");
        }
    }
}
