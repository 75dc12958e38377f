//! Log compaction (Kafka's LogCleaner): keep the latest record per key.
//!
//! Cleaning works on the segments below the active one, which never change once
//! rolled, so the expensive part (reading, decompressing, choosing survivors,
//! writing new segment files) runs without the log's lock; produce and fetch go
//! on meanwhile. Only the final swap of files takes the lock. Offsets of
//! surviving records never change: batches are rewritten with the same offsets,
//! timestamps, producer ids and compression, minus the records that lost.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

use super::compression::{decode_batch, MAX_INFLATED_BATCH_BYTES};

use super::batch::{self, BatchHeader};
use super::txn_index::AbortedTxn;

/// A rolled segment to clean: its base offset and a handle to its `.log` file.
#[derive(Debug, Clone)]
pub struct SegmentInput {
    pub base_offset: i64,
    pub file: Arc<File>,
    pub size: u64,
}

/// A cleaned segment, written next to the original as `<base>.log.cleaned`.
#[derive(Debug)]
pub struct SegmentOutput {
    pub base_offset: i64,
    pub path: PathBuf,
    pub bytes: u64,
}

/// What a cleaning pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub records_read: u64,
    pub records_kept: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn read_batches(seg: &SegmentInput) -> io::Result<Vec<Bytes>> {
    let mut buf = vec![0u8; seg.size as usize];
    seg.file.read_exact_at(&mut buf, 0)?;
    let buf = Bytes::from(buf);
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(size) = batch::peek_size(&buf[pos..]) {
        if pos + size > buf.len() {
            break;
        }
        out.push(buf.slice(pos..pos + size));
        pos += size;
    }
    Ok(out)
}

fn compression_of(h: &BatchHeader) -> Compression {
    match h.attributes & 0x07 {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Cleans `segments` (oldest first, all below the active segment): a record
/// survives if no later record in these segments has its key; tombstones older
/// than `delete_horizon_ms` are dropped too, and so are the batches of
/// `aborted` transactions (they never win over committed data). Control
/// batches are kept as they are. The caller passes only segments below the
/// first unstable offset.
pub fn clean(
    dir: &Path,
    segments: &[SegmentInput],
    delete_horizon_ms: i64,
    aborted: &[AbortedTxn],
) -> io::Result<(Vec<SegmentOutput>, CleanStats)> {
    let is_aborted = |h: &BatchHeader| {
        h.is_transactional()
            && aborted.iter().any(|t| {
                t.producer_id == h.producer_id && t.first_offset <= h.base_offset && h.base_offset <= t.last_offset
            })
    };
    let mut stats = CleanStats::default();
    // Pass 1: the last offset of every key.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for seg in segments {
        for b in read_batches(seg)? {
            let h = BatchHeader::parse(&b).map_err(io::Error::other)?;
            if h.is_control() || is_aborted(&h) {
                continue;
            }
            let mut bb = b.clone();
            let set = decode_batch(&mut bb, MAX_INFLATED_BATCH_BYTES).map_err(|e| io::Error::other(e.to_string()))?;
            for r in set.records {
                if let Some(k) = r.key {
                    latest.insert(k, r.offset);
                }
            }
        }
    }
    // Pass 2: rewrite each segment with the survivors.
    let mut outputs = Vec::new();
    for seg in segments {
        let path = dir.join(format!("{}.log.cleaned", super::segment::file_stem(seg.base_offset)));
        let mut out = BytesMut::new();
        for b in read_batches(seg)? {
            let h = BatchHeader::parse(&b).map_err(io::Error::other)?;
            stats.bytes_before += b.len() as u64;
            if h.is_control() {
                out.extend_from_slice(&b);
                continue;
            }
            if is_aborted(&h) {
                stats.records_read += h.records_count.max(0) as u64;
                continue;
            }
            let mut bb = b.clone();
            let set = decode_batch(&mut bb, MAX_INFLATED_BATCH_BYTES).map_err(|e| io::Error::other(e.to_string()))?;
            stats.records_read += set.records.len() as u64;
            let total = set.records.len();
            let kept: Vec<_> = set
                .records
                .into_iter()
                .filter(|r| match &r.key {
                    None => true,
                    Some(k) => {
                        latest.get(k) == Some(&r.offset) && !(r.value.is_none() && r.timestamp < delete_horizon_ms)
                    }
                })
                .collect();
            stats.records_kept += kept.len() as u64;
            if kept.len() == total {
                out.extend_from_slice(&b);
            } else if !kept.is_empty() {
                let mut kept = kept;
                if h.base_sequence < 0 {
                    // Without a producer id records carry no sequence; give them the
                    // offset-relative values the encoder needs to keep them in one batch.
                    let first = kept[0].offset;
                    for r in &mut kept {
                        r.sequence = (r.offset - first) as i32 - 1;
                    }
                }
                let mut enc = BytesMut::new();
                let opts = RecordEncodeOptions {
                    version: 2,
                    compression: compression_of(&h),
                };
                RecordBatchEncoder::encode(&mut enc, kept.iter(), &opts)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                out.extend_from_slice(&enc);
            }
        }
        stats.bytes_after += out.len() as u64;
        std::fs::write(&path, &out)?;
        File::open(&path)?.sync_all()?;
        outputs.push(SegmentOutput {
            base_offset: seg.base_offset,
            path,
            bytes: out.len() as u64,
        });
    }
    Ok((outputs, stats))
}
