//! Aborted transactions of a log, and the `.txnindex` file each segment keeps
//! of those whose abort marker it holds (Kafka's TransactionIndex: entries of
//! version, producer id, first offset, last offset and last stable offset,
//! 34 bytes each). A `read_committed` fetch returns the aborted transactions
//! that overlap what it reads, so the consumer drops their records.
//!
//! The files are written as markers are appended and re-derived from the log
//! after the producer snapshot at start-up (see `Log::load_producer_state`),
//! so an entry lost in a crash comes back; what is read from disk is checked
//! like any other file: a partial entry, a wrong version or an offset outside
//! the segment is dropped, never trusted.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut};

use super::segment::file_stem;

pub const ENTRY_LEN: usize = 34;
const VERSION: i16 = 0;
/// A `.txnindex` larger than this is not read (a million aborts in one segment).
const MAX_FILE_BYTES: u64 = ENTRY_LEN as u64 * 1_000_000;

/// One aborted transaction on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Its first record here.
    pub first_offset: i64,
    /// Its abort marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        let mut b = &mut out[..];
        b.put_i16(VERSION);
        b.put_i64(self.producer_id);
        b.put_i64(self.first_offset);
        b.put_i64(self.last_offset);
        b.put_i64(self.last_stable_offset);
        out
    }

    fn decode(mut b: &[u8]) -> Option<AbortedTxn> {
        if b.len() < ENTRY_LEN || b.get_i16() != VERSION {
            return None;
        }
        let t = AbortedTxn {
            producer_id: b.get_i64(),
            first_offset: b.get_i64(),
            last_offset: b.get_i64(),
            last_stable_offset: b.get_i64(),
        };
        (t.first_offset >= 0 && t.first_offset <= t.last_offset).then_some(t)
    }
}

pub fn path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.txnindex", file_stem(base_offset)))
}

/// Appends one entry to the segment's file.
pub fn append(dir: &Path, base_offset: i64, t: &AbortedTxn) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(dir, base_offset))?;
    f.write_all(&t.encode())
}

/// The entries of a segment's file whose marker lies in `[base_offset, end)`;
/// none when there is no file.
pub fn read(dir: &Path, base_offset: i64, end: i64) -> io::Result<Vec<AbortedTxn>> {
    let p = path(dir, base_offset);
    let len = match std::fs::metadata(&p) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if len > MAX_FILE_BYTES {
        tracing::warn!(file = %p.display(), len, "ignoring an oversized transaction index");
        return Ok(Vec::new());
    }
    Ok(parse(&std::fs::read(&p)?, base_offset, end))
}

/// The well-formed entries of a `.txnindex` file's bytes whose marker lies in
/// `[base_offset, end)`; a torn last entry is ignored.
pub fn parse(bytes: &[u8], base_offset: i64, end: i64) -> Vec<AbortedTxn> {
    bytes
        .chunks_exact(ENTRY_LEN)
        .filter_map(AbortedTxn::decode)
        .filter(|t| t.last_offset >= base_offset && t.last_offset < end)
        .collect()
}

/// Replaces a segment's file with `entries` (removing it when there are none).
pub fn rewrite(dir: &Path, base_offset: i64, entries: &[AbortedTxn]) -> io::Result<()> {
    let p = path(dir, base_offset);
    if entries.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(|t| t.encode()).collect();
    crate::atomic_file::replace(&p, &bytes)
}

/// The aborted transactions a read of `[from, to)` must report: those whose
/// marker is at or after `from` and whose first record is before `to`.
/// `aborted` is ordered by marker offset.
pub fn overlapping(aborted: &[AbortedTxn], from: i64, to: i64) -> Vec<AbortedTxn> {
    let start = aborted.partition_point(|t| t.last_offset < from);
    aborted[start..]
        .iter()
        .filter(|t| t.first_offset < to)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_round_trip_through_the_file_and_bad_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), 100, &t(1, 100, 105)).unwrap();
        append(dir.path(), 100, &t(2, 101, 110)).unwrap();
        append(dir.path(), 100, &t(3, 102, 130)).unwrap(); // past the segment's end
        assert_eq!(
            read(dir.path(), 100, 120).unwrap(),
            vec![t(1, 100, 105), t(2, 101, 110)]
        );
        // A torn last entry, a wrong version and a first offset after the last are dropped.
        let mut bytes = std::fs::read(path(dir.path(), 100)).unwrap();
        let mut bad = t(4, 111, 112).encode();
        bad[1] = 9;
        bytes.extend_from_slice(&bad);
        bytes.extend_from_slice(&t(5, 115, 114).encode());
        bytes.extend_from_slice(&t(6, 116, 117).encode()[..20]);
        std::fs::write(path(dir.path(), 100), bytes).unwrap();
        assert_eq!(read(dir.path(), 100, 200).unwrap().len(), 3);
        rewrite(dir.path(), 100, &[t(1, 100, 105)]).unwrap();
        assert_eq!(read(dir.path(), 100, 200).unwrap(), vec![t(1, 100, 105)]);
        rewrite(dir.path(), 100, &[]).unwrap();
        assert!(!path(dir.path(), 100).exists());
        assert!(read(dir.path(), 100, 200).unwrap().is_empty());
    }

    #[test]
    fn a_read_reports_the_aborts_that_overlap_it() {
        let aborted = [t(1, 0, 10), t(2, 5, 20), t(3, 25, 30)];
        assert_eq!(overlapping(&aborted, 0, 5), vec![t(1, 0, 10)]);
        assert_eq!(overlapping(&aborted, 11, 25), vec![t(2, 5, 20)]);
        assert_eq!(overlapping(&aborted, 11, 26), vec![t(2, 5, 20), t(3, 25, 30)]);
        assert!(overlapping(&aborted, 31, 100).is_empty());
    }
}
