//! One segment of a partition log: `<base>.log`, `<base>.index`, `<base>.timeindex`
//! (and `<base>.txnindex`, written by the log when the segment holds abort markers).
//!
//! A segment is append-only. Its files are named by the 20-digit base offset, as in
//! Kafka, so tools that list a partition directory read it the same way.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::index::{OffsetIndex, TimeIndex};
use super::open_files::CachedFile;

/// File name stem of a segment starting at `base_offset`.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// One segment and its indexes.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    dir: PathBuf,
    /// Opened on demand: an idle segment may hold no file (see `open_files`).
    log: Arc<CachedFile>,
    size: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u64,
    bytes_since_last_index: u64,
    /// The next offset after the last batch of this segment.
    next_offset: i64,
    /// Largest batch max-timestamp seen, and the last offset of that batch.
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Timestamp of the first batch, for `segment.ms` rolls (Kafka's rollingBasedTimestamp).
    first_timestamp: Option<i64>,
    /// Wall-clock creation time, used when the first batch has no timestamp.
    created_ms: i64,
    /// The partition leader epoch of the last batch seen (-1: none).
    last_epoch: i32,
}

/// Result of scanning a segment's log file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecoveryResult {
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
    pub batches: usize,
}

impl Segment {
    /// Creates a new, empty segment.
    pub fn create(dir: &Path, base_offset: i64, index_interval_bytes: u64, now_ms: i64) -> io::Result<Segment> {
        let stem = file_stem(base_offset);
        for ext in ["log", "index", "timeindex", "txnindex"] {
            // A leftover from an earlier life of this offset range would corrupt reads.
            let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}")));
        }
        let (index, _) = OffsetIndex::open(&dir.join(format!("{stem}.index")))?;
        let (time_index, _) = TimeIndex::open(&dir.join(format!("{stem}.timeindex")))?;
        Self::open_files(dir, base_offset, index, time_index, index_interval_bytes, now_ms)
    }

    fn open_files(
        dir: &Path,
        base_offset: i64,
        index: OffsetIndex,
        time_index: TimeIndex,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<Segment> {
        let stem = file_stem(base_offset);
        let log = CachedFile::open(&dir.join(format!("{stem}.log")))?;
        let meta = log.get()?.metadata()?;
        let size = meta.len();
        // An existing segment's age is its file's (for segment.ms and retention).
        let created_ms = match meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        {
            Some(d) if size > 0 => d.as_millis() as i64,
            _ => now_ms,
        };
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log,
            size,
            index,
            time_index,
            index_interval_bytes,
            bytes_since_last_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_timestamp: None,
            created_ms,
            last_epoch: -1,
        })
    }

    /// Opens an existing segment. With `trust_indexes` (after a clean shutdown) only
    /// the tail after the last index entry is read; otherwise every batch is
    /// re-validated, the indexes are rebuilt and a torn tail is truncated.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        trust_indexes: bool,
        now_ms: i64,
    ) -> io::Result<(Segment, RecoveryResult)> {
        let stem = file_stem(base_offset);
        let (index_path, time_path) = (dir.join(format!("{stem}.index")), dir.join(format!("{stem}.timeindex")));
        let mut seg = Self::open_files(
            dir,
            base_offset,
            OffsetIndex::assume_empty(&index_path),
            TimeIndex::assume_empty(&time_path),
            index_interval_bytes,
            now_ms,
        )?;
        if seg.size == 0 {
            // An empty log has empty indexes, clean stop or not: an idle
            // partition costs no index reads, and whatever its index files
            // hold is cut at their first write.
            return Ok((seg, RecoveryResult::default()));
        }
        let (index, index_ok) = OffsetIndex::open(&index_path)?;
        let (time_index, time_ok) = TimeIndex::open(&time_path)?;
        (seg.index, seg.time_index) = (index, time_index);
        let index_consistent = seg.index.last().is_none_or(|(_, pos)| (pos as u64) < seg.size);
        if trust_indexes && index_ok && time_ok && index_consistent {
            let r = seg.load_tail()?;
            Ok((seg, r))
        } else {
            let r = seg.recover()?;
            Ok((seg, r))
        }
    }

    /// Reads the batches after the last index entry to find the segment's end and
    /// its max timestamp (cheap: at most one index interval of headers).
    fn load_tail(&mut self) -> io::Result<RecoveryResult> {
        let (start_rel, start_pos) = self.index.last().unwrap_or((0, 0));
        let _ = start_rel;
        if let Some((ts, rel)) = self.time_index.last() {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = self.base_offset + rel as i64;
        }
        let mut pos = start_pos as u64;
        let mut batches = 0;
        while pos < self.size {
            let h = match self.header_at(pos)? {
                Some(h) if pos + h.size() as u64 <= self.size => h,
                _ => break,
            };
            self.observe(&h);
            pos += h.size() as u64;
            batches += 1;
        }
        if self.first_timestamp.is_none() && self.size > 0 {
            if let Some(h) = self.header_at(0)? {
                self.first_timestamp = Some(h.max_timestamp);
            }
        }
        let truncated = self.size - pos;
        if truncated > 0 {
            self.truncate_file(pos)?;
        }
        Ok(RecoveryResult {
            truncated_bytes: truncated,
            batches,
        })
    }

    /// Re-validates every batch, rebuilding both indexes; truncates the first
    /// invalid batch and everything after it.
    pub fn recover(&mut self) -> io::Result<RecoveryResult> {
        self.index.clear()?;
        self.time_index.clear()?;
        self.bytes_since_last_index = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.first_timestamp = None;
        self.last_epoch = -1;
        let file = self.log.get()?;
        // From the start whatever an earlier recovery of this handle read:
        // the file's cursor is shared, and a second recovery (a truncation
        // after an unclean start) must not begin at the old end.
        (&*file).seek(io::SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(1 << 20, file.as_ref());
        let mut pos: u64 = 0;
        let mut batches = 0;
        let mut buf = Vec::new();
        loop {
            let mut head = [0u8; LOG_OVERHEAD];
            if read_full(&mut reader, &mut head)? < LOG_OVERHEAD {
                break;
            }
            let size = match batch::peek_size(&head) {
                Some(s) if s >= HEADER_LEN && pos + s as u64 <= self.size => s,
                _ => break,
            };
            buf.clear();
            buf.extend_from_slice(&head);
            buf.resize(size, 0);
            if read_full(&mut reader, &mut buf[LOG_OVERHEAD..])? < size - LOG_OVERHEAD {
                break;
            }
            let h = match batch::validate(&buf) {
                Ok(h) if h.base_offset >= self.next_offset => h,
                _ => break,
            };
            self.index_batch(&h, pos);
            pos += size as u64;
            batches += 1;
        }
        drop(reader);
        let truncated = self.size - pos;
        if truncated > 0 {
            self.truncate_file(pos)?;
        }
        self.write_indexes(false)?;
        Ok(RecoveryResult {
            truncated_bytes: truncated,
            batches,
        })
    }

    fn truncate_file(&mut self, pos: u64) -> io::Result<()> {
        self.log.get()?.set_len(pos)?;
        self.size = pos;
        self.index.truncate_to_position(pos as u32)?;
        let rel = (self.next_offset - self.base_offset) as u32;
        self.time_index.truncate_to_offset(rel.saturating_add(1))?;
        Ok(())
    }

    fn observe(&mut self, h: &BatchHeader) {
        self.next_offset = h.next_offset();
        self.last_epoch = h.partition_leader_epoch;
        if self.first_timestamp.is_none() {
            self.first_timestamp = Some(h.max_timestamp);
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
    }

    /// Adds index entries for a batch written at `pos`.
    fn index_batch(&mut self, h: &BatchHeader, pos: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        if self.bytes_since_last_index >= self.index_interval_bytes || (pos == 0 && self.index.is_empty()) {
            if pos > 0 {
                self.index.append(rel, pos as u32);
            }
            self.time_index.maybe_append(h.max_timestamp, rel);
            self.bytes_since_last_index = 0;
        }
        self.bytes_since_last_index += h.size() as u64;
        self.observe(h);
    }

    /// Appends one batch whose offsets are already assigned.
    /// Appends one batch, given as its (patched) header and its records, whose offsets are assigned.
    pub fn append(&mut self, head: &[u8], tail: &[u8], h: &BatchHeader) -> io::Result<()> {
        let pos = self.size;
        write_all_vectored(&*self.log.get()?, head, tail)?;
        self.size += (head.len() + tail.len()) as u64;
        self.index_batch(h, pos);
        Ok(())
    }

    /// Reads the batch header at `pos`, or None past the end.
    pub fn header_at(&self, pos: u64) -> io::Result<Option<BatchHeader>> {
        if pos + HEADER_LEN as u64 > self.size {
            return Ok(None);
        }
        let mut b = [0u8; HEADER_LEN];
        self.log.get()?.read_exact_at(&mut b, pos)?;
        Ok(BatchHeader::parse(&b).ok())
    }

    /// The position of the batch containing `offset` (or the first batch after it).
    pub fn position_of(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let mut pos = self.index.lookup(rel).map_or(0, |(_, p)| p as u64);
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// The length of the whole batches starting at `pos` that fit in `max_bytes`
    /// (at least the first one when `min_one`), read from their length fields only.
    pub fn whole_batches_len(&self, pos: u64, max_bytes: usize, min_one: bool) -> io::Result<usize> {
        let mut len = 0usize;
        let mut head = [0u8; LOG_OVERHEAD];
        let file = self.log.get()?;
        while pos + (len + LOG_OVERHEAD) as u64 <= self.size {
            file.read_exact_at(&mut head, pos + len as u64)?;
            let Some(size) = batch::peek_size(&head) else { break };
            if pos + (len + size) as u64 > self.size || (len + size > max_bytes && !(min_one && len == 0)) {
                break;
            }
            len += size;
        }
        Ok(len)
    }

    /// Reads `len` bytes at `pos` (clamped to the segment's end).
    pub fn read(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = (pos + len as u64).min(self.size);
        let mut buf = vec![0u8; end.saturating_sub(pos) as usize];
        self.log.get()?.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// The first batch whose max timestamp is >= `timestamp`, using the time index.
    pub fn find_by_timestamp(&self, timestamp: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start = self
            .time_index
            .lookup(timestamp)
            .map(|rel| self.base_offset + rel as i64);
        let mut pos = match start {
            Some(off) => self.position_of(off)?.map_or(0, |(p, _)| p),
            None => 0,
        };
        while let Some(h) = self.header_at(pos)? {
            if h.max_timestamp >= timestamp {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Cuts the segment so that its last offset is below `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        if let Some((pos, _)) = self.position_of(offset)? {
            self.truncate_file(pos)?;
            // Recompute the in-memory summary from the remaining batches.
            self.recover()?;
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    /// The leader epoch of the segment's last batch, if it has one.
    pub fn last_epoch(&self) -> Option<i32> {
        (self.size > 0 && self.last_epoch >= 0).then_some(self.last_epoch)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    /// When this segment started, for `segment.ms`.
    pub fn rolling_timestamp(&self) -> i64 {
        self.first_timestamp.filter(|t| *t >= 0).unwrap_or(self.created_ms)
    }
    /// The time retention compares against: the largest timestamp, or the file's age.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }

    /// Makes the segment's data and indexes durable.
    pub fn flush(&mut self) -> io::Result<()> {
        self.log.get()?.sync_data()?;
        self.write_indexes(true)
    }

    /// Writes the index entries made since the last write to the index files.
    pub fn write_indexes(&mut self, sync: bool) -> io::Result<()> {
        self.index.write(sync)?;
        self.time_index.write(sync)
    }

    /// A handle to the log file for lock-free reads (reopened if it was closed).
    pub fn file(&self) -> io::Result<Arc<File>> {
        self.log.get()
    }

    /// Deletes the segment's files.
    pub fn delete(self) -> io::Result<()> {
        let stem = file_stem(self.base_offset);
        for ext in ["log", "index", "timeindex", "txnindex"] {
            match std::fs::remove_file(self.dir.join(format!("{stem}.{ext}"))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn index_path(&self) -> &Path {
        self.index.path()
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes two buffers with as few `writev` calls as the kernel allows
/// (std's `write_all_vectored` is not stable).
fn write_all_vectored(mut file: &File, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = match file.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}
