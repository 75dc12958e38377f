//! The partition log: segments on disk, offsets, retention, recovery, producer state.
//!
//! Owns everything under `<log.dirs>/<topic>-<partition>/`. It is synchronous and
//! knows nothing of sockets or the protocol: callers (the partition layer in
//! `cluster`) run it on blocking threads. It must never hand out a batch that is
//! not whole, and never acknowledge a batch it has not written.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod compression;
pub mod index;
pub mod leader_epoch;
pub mod meta_properties;
pub mod open_files;
pub mod producer_state;
pub mod segment;
pub mod txn_index;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use batch::{BatchError, BatchHeader};
use producer_state::{ProducerStateManager, SequenceCheck, SequenceError};
use segment::Segment;

use crate::config::LogConfig;

/// Why an append was refused. The produce handler maps each to its Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// Records the topic's configuration refuses (Kafka's INVALID_RECORD), each
    /// as its index in the request's records with the reason (Produce's
    /// RecordErrors, from which clients tell the bad records from the rest).
    #[error("{message}")]
    InvalidRecord {
        message: String,
        records: Vec<(i32, String)>,
    },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// KIP-890 part 1: a transactional batch that would start a transaction
    /// here without its coordinator's confirmation (a late or stray write).
    #[error("producer {producer_id} has no verified open transaction on this partition")]
    Unverified { producer_id: i64 },
}

/// Why a read or an offset lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is outside [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Compaction keeps the last record per key, so a compacted topic refuses records
/// without one, as Kafka's LogValidator does (decompressing under the cap).
/// Indexes count records from the first batch of the request, as Kafka's do.
fn require_keys<'a>(batches: impl Iterator<Item = &'a [u8]>) -> Result<(), AppendError> {
    let mut index = 0i32;
    let mut keyless = Vec::new();
    for batch in batches {
        let mut buf = bytes::Bytes::copy_from_slice(batch);
        let set = compression::decode_batch(&mut buf, compression::MAX_INFLATED_BATCH_BYTES).map_err(|e| {
            AppendError::InvalidRecord {
                message: format!("Cannot decode the records of a batch: {e}"),
                records: Vec::new(),
            }
        })?;
        for r in &set.records {
            if r.key.is_none() {
                keyless.push((index, "Compacted topic cannot accept message without key.".to_string()));
            }
            index += 1;
        }
    }
    match keyless.first() {
        None => Ok(()),
        Some((first, reason)) => Err(AppendError::InvalidRecord {
            message: format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the \
                 first error at batch index {first}: {reason}",
                keyless.len()
            ),
            records: keyless,
        }),
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// True if every batch was a retry of one already in the log.
    pub duplicate: bool,
    /// True when `flush.messages` says the log must now be fsynced before acknowledging.
    pub needs_flush: bool,
}

/// Whole batches read from the log.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub bytes: Vec<u8>,
}

/// A byte range of a segment file holding whole batches: what a fetch sends.
/// Holding the file keeps the range readable even if retention unlinks it.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<std::fs::File>,
    pub position: u64,
    pub len: usize,
}

/// One partition's log.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    next_offset: i64,
    /// Offsets below this are known to be on disk (fsynced).
    recovery_point: Arc<AtomicI64>,
    producers: ProducerStateManager,
    /// The offset of a producer snapshot on disk that holds the state as it is
    /// now (nothing appended or expired since), so a shutdown need not write it again.
    snapshot_current_at: Option<i64>,
    /// Whether the directory may hold a producer snapshot (false only when it
    /// held none at open and none was written since).
    snapshots_on_disk: bool,
    unflushed_messages: i64,
    last_flush_ms: i64,
    /// Segments below this offset were compacted in this process's life.
    cleaner_point: i64,
    epochs: leader_epoch::LeaderEpochCache,
    /// Aborted transactions whose marker is in the log, by marker offset
    /// (mirrored in the segments' `.txnindex` files).
    aborted: Vec<txn_index::AbortedTxn>,
}

/// How a log was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpenStats {
    pub segments: usize,
    pub recovered_segments: usize,
    pub truncated_bytes: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`. After an unclean stop (`clean == false`)
    /// every segment from the recovery point on is re-validated and a torn tail is cut.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset: i64,
        clean: bool,
        now_ms: i64,
    ) -> io::Result<(Log, OpenStats)> {
        // One listing serves the segments and the producer snapshots.
        let listing = match std::fs::read_dir(dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                std::fs::read_dir(dir)?
            }
            Err(e) => return Err(e),
        };
        let mut bases: Vec<i64> = Vec::new();
        let mut snapshots: Vec<i64> = Vec::new();
        let mut has_epoch_checkpoint = false;
        for e in listing {
            let name = e?.file_name().to_string_lossy().to_string();
            if name == leader_epoch::FILE_NAME {
                has_epoch_checkpoint = true;
            } else if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(b) = stem.parse::<i64>() {
                    bases.push(b);
                }
            } else if let Some(o) = producer_state::snapshot_offset(&name) {
                snapshots.push(o);
            } else if name.ends_with(".tmp") || name.ends_with(".cleaned") {
                let _ = std::fs::remove_file(dir.join(&name));
            }
        }
        bases.sort_unstable();
        let mut stats = OpenStats::default();
        let mut segments = BTreeMap::new();
        let mut truncated_at: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            if truncated_at.is_some() {
                // Everything after a truncation point is unreachable: remove it.
                let (seg, _) = Segment::open(dir, base, config.index_interval_bytes, true, now_ms)?;
                seg.delete()?;
                continue;
            }
            let is_last = i + 1 == bases.len();
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let trust = clean || next_base <= recovery_point;
            let (seg, r) = Segment::open(dir, base, config.index_interval_bytes, trust, now_ms)?;
            stats.segments += 1;
            if !trust {
                stats.recovered_segments += 1;
            }
            stats.truncated_bytes += r.truncated_bytes;
            if r.truncated_bytes > 0 && !is_last {
                truncated_at = Some(seg.next_offset());
            }
            segments.insert(base, seg);
        }
        let mut log_start = log_start_offset;
        if segments.is_empty() {
            let base = log_start.max(0);
            segments.insert(base, Segment::create(dir, base, config.index_interval_bytes, now_ms)?);
        }
        let first_base = *segments.keys().next().expect("at least one segment");
        let next_offset = segments.values().next_back().map_or(first_base, |s| s.next_offset());
        log_start = log_start.max(first_base).min(next_offset);
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: log_start,
            next_offset,
            recovery_point: Arc::new(AtomicI64::new(recovery_point.min(next_offset))),
            producers: ProducerStateManager::default(),
            snapshot_current_at: None,
            snapshots_on_disk: !snapshots.is_empty(),
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            cleaner_point: 0,
            epochs: leader_epoch::LeaderEpochCache::load_if(dir, has_epoch_checkpoint)?,
            aborted: Vec::new(),
        };
        for (base, seg) in &log.segments {
            log.aborted.extend(txn_index::read(dir, *base, seg.next_offset())?);
        }
        log.aborted.sort_by_key(|t| t.last_offset);
        log.aborted.retain(|t| t.last_offset >= log.log_start_offset);
        log.epochs.forget_from(next_offset);
        log.catch_up_epochs()?;
        log.load_producer_state(Some(snapshots))?;
        Ok((log, stats))
    }

    /// Rebuilds the leader epoch cache from the batches when the log's last batch
    /// has an epoch the cache does not know (its file is written without fsync).
    /// Reads batch headers from the latest known epoch's start only, and nothing
    /// when the last batch's epoch is the cache's latest (the usual case).
    fn catch_up_epochs(&mut self) -> io::Result<()> {
        let Some(last) = self.segments.values().rev().find_map(Segment::last_epoch) else {
            return Ok(());
        };
        if self.epochs.latest_epoch().is_some_and(|e| e >= last) {
            return Ok(());
        }
        let from = self
            .epochs
            .latest_start()
            .unwrap_or(self.log_start_offset)
            .max(self.log_start_offset);
        let mut batches = Vec::new();
        each_header_from(&self.segments, from, |h| {
            batches.push((h.partition_leader_epoch, h.base_offset))
        })?;
        if self.epochs.catch_up(batches.into_iter())? {
            tracing::info!(dir = %self.dir.display(), epochs = ?self.epochs.latest_epoch(), "rebuilt the leader epoch cache from the log");
        }
        Ok(())
    }

    /// Restores producer state: the newest snapshot, then the batches after it.
    /// `snapshots`: the snapshot offsets in the directory, if the caller just listed it.
    fn load_producer_state(&mut self, snapshots: Option<Vec<i64>>) -> io::Result<()> {
        let found = match snapshots {
            Some(offsets) => producer_state::latest_snapshot_of(&self.dir, offsets, self.next_offset)?,
            None => producer_state::latest_snapshot(&self.dir, self.next_offset)?,
        };
        self.snapshot_current_at = found.as_ref().map(|(o, _)| *o).filter(|&o| o == self.next_offset);
        let (from, state) = found.unwrap_or_default();
        let from = from.max(self.log_start_offset);
        self.producers = state;
        // Aborted transactions whose markers follow the snapshot are derived
        // again from the log (an index entry may not have reached the disk).
        let loaded = self
            .aborted
            .split_off(self.aborted.partition_point(|t| t.last_offset < from));
        let (producers, aborted) = (&mut self.producers, &mut self.aborted);
        let mut failed = None;
        each_batch_from(&self.segments, from, |seg, pos, h| {
            let control = if h.is_control() {
                match seg.read(pos, h.size()) {
                    Ok(b) => batch::control_type(&b),
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                }
            } else {
                None
            };
            aborted.extend(track(producers, h, control));
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if self.aborted[self.aborted.partition_point(|t| t.last_offset < from)..] != loaded[..] {
            self.rewrite_txn_indexes(from)?;
        }
        Ok(())
    }

    /// Writes the `.txnindex` of every segment that holds offsets from `from` on.
    fn rewrite_txn_indexes(&self, from: i64) -> io::Result<()> {
        for (base, seg) in &self.segments {
            if seg.next_offset() <= from && *base < from {
                continue;
            }
            let end = seg.next_offset();
            let entries: Vec<_> = self
                .aborted
                .iter()
                .filter(|t| t.last_offset >= *base && t.last_offset < end)
                .copied()
                .collect();
            txn_index::rewrite(&self.dir, *base, &entries)?;
        }
        Ok(())
    }

    /// Feeds an appended batch to the producer state; an abort marker is
    /// recorded as an aborted transaction (in memory and in `.txnindex`).
    fn track_appended(&mut self, h: &BatchHeader, bytes: &[u8]) -> io::Result<()> {
        let control = if h.is_control() {
            batch::control_type(bytes)
        } else {
            None
        };
        if let Some(t) = track(&mut self.producers, h, control) {
            txn_index::append(&self.dir, self.active().base_offset, &t)?;
            self.aborted.push(t);
        }
        Ok(())
    }

    /// The first offset of the earliest transaction still open here.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset()
    }

    /// The aborted transactions a read of `[from, to)` must report.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<txn_index::AbortedTxn> {
        txn_index::overlapping(&self.aborted, from, to)
    }

    /// Every aborted transaction with a marker in the log (the cleaner drops their data).
    pub fn aborted(&self) -> &[txn_index::AbortedTxn] {
        &self.aborted
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Validates and appends a produce request's records for this partition.
    pub fn append(&mut self, records: &[u8], now_ms: i64, leader_epoch: i32) -> Result<AppendInfo, AppendError> {
        let batches = batch::split_batches(records)?;
        if batches.is_empty() {
            return Err(BatchError::Truncated(0).into());
        }
        for (h, _) in &batches {
            if h.size() > self.config.max_message_bytes {
                return Err(AppendError::TooLarge {
                    size: h.size(),
                    max: self.config.max_message_bytes,
                });
            }
        }
        if self.config.compact {
            let data = batches.iter().filter(|(h, _)| !h.is_control());
            require_keys(data.map(|(_, range)| &records[range.clone()]))?;
        }
        // Check every batch before writing any, against a scratch copy of the
        // producers involved, so a request is applied whole or not at all.
        let mut scratch = self.producers.subset(batches.iter().map(|(h, _)| h.producer_id));
        let mut plan = Vec::with_capacity(batches.len());
        let mut next = self.next_offset;
        for (h, range) in &batches {
            match scratch.check(h)? {
                SequenceCheck::Duplicate(m) => plan.push((None, m.first_offset, m.last_offset)),
                SequenceCheck::Append => {
                    let mut assigned = *h;
                    assigned.base_offset = next;
                    scratch.update(&assigned);
                    plan.push((Some(range.clone()), next, assigned.last_offset()));
                    next = assigned.next_offset();
                }
            }
        }
        let log_append_time = if self.config.log_append_time { now_ms } else { -1 };
        let mut info = AppendInfo {
            base_offset: plan[0].1,
            last_offset: plan[plan.len() - 1].2,
            log_append_time,
            duplicate: plan.iter().all(|(r, _, _)| r.is_none()),
            needs_flush: false,
        };
        for (range, base, _) in plan {
            let Some(range) = range else { continue };
            // Only the header changes; the records are written from the request as they are.
            let (head, tail) = records[range].split_at(batch::HEADER_LEN);
            let mut head: [u8; batch::HEADER_LEN] = head.try_into().expect("validated batches hold a header");
            batch::set_base_offset(&mut head, base);
            batch::set_partition_leader_epoch(&mut head, leader_epoch);
            if self.config.log_append_time {
                batch::set_log_append_time_split(&mut head, tail, now_ms);
            }
            let h = BatchHeader::parse(&head)?;
            self.maybe_roll(h.size(), now_ms)?;
            self.epochs.assign(leader_epoch, base)?;
            self.active_mut().append(&head, tail, &h)?;
            if h.is_control() {
                let whole = [&head[..], tail].concat();
                self.track_appended(&h, &whole)?;
            } else {
                self.producers.update(&h);
            }
            self.next_offset = h.next_offset();
            self.unflushed_messages += h.records_count as i64;
        }
        if self.unflushed_messages >= self.config.flush_messages {
            info.needs_flush = true;
        }
        Ok(info)
    }

    /// [`append`](Self::append) for a producer's request: a transactional
    /// batch that would start a transaction here must have been verified with
    /// its coordinator (KIP-890 part 1).
    pub fn append_verified(
        &mut self,
        records: &[u8],
        now_ms: i64,
        leader_epoch: i32,
    ) -> Result<AppendInfo, AppendError> {
        if let Ok(h) = BatchHeader::parse(records) {
            if self.producers.starts_transaction(&h) && !self.producers.is_verified(&h) {
                return Err(AppendError::Unverified {
                    producer_id: h.producer_id,
                });
            }
        }
        self.append(records, now_ms, leader_epoch)
    }

    /// Whether appending a batch with this header needs its coordinator's confirmation first.
    pub fn needs_verification(&self, h: &BatchHeader) -> bool {
        self.producers.starts_transaction(h) && !self.producers.is_verified(h)
    }

    pub fn mark_verified(&mut self, producer_id: i64, epoch: i16) {
        self.producers.mark_verified(producer_id, epoch);
    }

    /// Appends batches fetched from the leader as they are: offsets, epochs and
    /// timestamps were assigned there. They must continue this log exactly.
    pub fn append_as_follower(&mut self, records: &[u8], now_ms: i64) -> Result<i64, AppendError> {
        let batches = batch::split_batches(records)?;
        for (h, range) in &batches {
            if h.base_offset != self.next_offset {
                return Err(AppendError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "replicated batch at offset {} does not continue the log end {}",
                        h.base_offset, self.next_offset
                    ),
                )));
            }
            let (head, tail) = records[range.clone()].split_at(batch::HEADER_LEN);
            self.maybe_roll(h.size(), now_ms)?;
            self.epochs.assign(h.partition_leader_epoch, h.base_offset)?;
            self.active_mut().append(head, tail, h)?;
            self.track_appended(h, &records[range.clone()])?;
            self.next_offset = h.next_offset();
            self.unflushed_messages += h.records_count as i64;
        }
        Ok(self.next_offset)
    }

    /// Removes everything at and after `offset` (a follower's divergent tail),
    /// with the epochs and producer state that came from it.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> io::Result<()> {
        if offset >= self.next_offset {
            return Ok(());
        }
        let offset = offset.max(self.log_start_offset);
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in doomed {
            if base > offset || self.segments.len() > 1 {
                if let Some(seg) = self.segments.remove(&base) {
                    seg.delete()?;
                }
            }
        }
        match self.segments.range_mut(..=offset).next_back() {
            Some((_, seg)) => seg.truncate_to(offset)?,
            None => {
                self.segments.insert(
                    offset,
                    Segment::create(&self.dir, offset, self.config.index_interval_bytes, now_ms)?,
                );
            }
        }
        self.next_offset = self.active().next_offset();
        self.recovery_point.fetch_min(self.next_offset, Ordering::SeqCst);
        self.epochs.truncate_from(self.next_offset)?;
        // Producer state after the cut is rebuilt from the last snapshot before it.
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(o) = name.strip_suffix(".snapshot").and_then(|s| s.parse::<i64>().ok()) {
                if o > self.next_offset {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        self.load_producer_state(None)
    }

    /// Empties the log and restarts it at `offset`: a follower whose position the
    /// leader has already deleted starts over at the leader's log start.
    pub fn reset_to(&mut self, offset: i64, now_ms: i64) -> io::Result<()> {
        for (_, seg) in std::mem::take(&mut self.segments) {
            seg.delete()?;
        }
        self.segments.insert(
            offset,
            Segment::create(&self.dir, offset, self.config.index_interval_bytes, now_ms)?,
        );
        self.log_start_offset = offset;
        self.next_offset = offset;
        self.recovery_point.store(offset, Ordering::SeqCst);
        self.epochs.truncate_from(i64::MIN)?;
        self.producers = ProducerStateManager::default();
        self.snapshot_current_at = None;
        self.aborted.clear();
        Ok(())
    }

    /// OffsetForLeaderEpoch: (largest epoch <= `epoch`, its end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.next_offset)
    }

    /// Records that `epoch` starts at `offset` (a new leader's epoch starts at
    /// its log end); the checkpoint file follows with the epoch's first batch.
    pub fn assign_epoch(&mut self, epoch: i32, offset: i64) -> io::Result<()> {
        self.epochs.begin(epoch, offset);
        Ok(())
    }

    /// The latest leader epoch written in this log, and where it starts.
    pub fn latest_epoch(&self) -> Option<(i32, i64)> {
        self.epochs.latest_epoch().zip(self.epochs.latest_start())
    }

    /// Rolls a new segment if the next batch would overflow the active one, or it is too old.
    fn maybe_roll(&mut self, incoming: usize, now_ms: i64) -> io::Result<()> {
        let active = self.active();
        let full = active.size() > 0 && active.size() + incoming as u64 > self.config.segment_bytes;
        let old = active.size() > 0 && now_ms - active.rolling_timestamp() > self.config.segment_ms;
        let offsets_overflow = self.next_offset - active.base_offset > i32::MAX as i64 - 1;
        if full || old || offsets_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset. The old one is fsynced in
    /// the background, then the recovery point moves past it; a producer snapshot is
    /// taken at the roll, as Kafka does.
    pub fn roll(&mut self, now_ms: i64) -> io::Result<()> {
        let base = self.next_offset;
        if self.active().base_offset == base {
            return Ok(());
        }
        // The old segment is immutable from here: its index files get their last entries.
        self.active_mut().write_indexes(false)?;
        let old = self.active().file()?;
        let seg = Segment::create(&self.dir, base, self.config.index_interval_bytes, now_ms)?;
        self.segments.insert(base, seg);
        let _ = producer_state::write_snapshot(&self.dir, base, &self.producers);
        self.snapshots_on_disk = true;
        self.prune_snapshots(base);
        let rp = Arc::clone(&self.recovery_point);
        std::thread::spawn(move || {
            if old.sync_data().is_ok() {
                rp.fetch_max(base, Ordering::SeqCst);
            }
        });
        Ok(())
    }

    fn prune_snapshots(&self, keep_from: i64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(o) = name.strip_suffix(".snapshot").and_then(|s| s.parse::<i64>().ok()) {
                if o < keep_from && o < self.log_start_offset {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Locates whole batches starting with the one containing `offset`, up to
    /// `max_bytes`, but always at least one whole batch when `min_one_batch`.
    /// None when there is nothing to send.
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>, ReadError> {
        self.read_slice_below(offset, max_bytes, min_one_batch, i64::MAX)
    }

    /// [`read_slice`](Self::read_slice), returning only batches that end below
    /// `limit` (the high watermark, for consumers). `limit` is a batch boundary.
    pub fn read_slice_below(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        limit: i64,
    ) -> Result<Option<FileSlice>, ReadError> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.next_offset,
            });
        }
        if offset >= self.next_offset.min(limit) {
            return Ok(None);
        }
        let candidates = self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(offset + 1..));
        for (_, seg) in candidates {
            let Some((position, _)) = seg.position_of(offset)? else {
                continue;
            };
            let end = if limit < seg.next_offset() {
                seg.position_of(limit)?.map_or(seg.size(), |(p, _)| p)
            } else {
                seg.size()
            };
            let room = (end.saturating_sub(position) as usize).min(max_bytes);
            let len = seg.whole_batches_len(position, room, min_one_batch && end > position)?;
            if len == 0 {
                return Ok(None);
            }
            return Ok(Some(FileSlice {
                file: seg.file()?,
                position,
                len,
            }));
        }
        Ok(None)
    }

    /// Reads the batches [`read_slice`](Self::read_slice) locates.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<ReadResult, ReadError> {
        use std::os::unix::fs::FileExt;
        let Some(slice) = self.read_slice(offset, max_bytes, min_one_batch)? else {
            return Ok(ReadResult::default());
        };
        let mut bytes = vec![0u8; slice.len];
        slice.file.read_exact_at(&mut bytes, slice.position)?;
        Ok(ReadResult { bytes })
    }

    /// ListOffsets by timestamp: the first record with timestamp >= `timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, ReadError> {
        for seg in self.segments.values() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            if let Some((pos, h)) = seg.find_by_timestamp(timestamp)? {
                let bytes = seg.read(pos, h.size())?;
                let found = if h.is_log_append_time() {
                    // One time for every record: the first one still in the log.
                    (h.max_timestamp >= timestamp && h.last_offset() >= self.log_start_offset)
                        .then(|| (h.base_offset.max(self.log_start_offset), h.max_timestamp))
                } else {
                    batch::record_timestamps(&bytes)
                        .into_iter()
                        .find(|&(o, t)| t >= timestamp && o >= self.log_start_offset)
                };
                if let Some((o, t)) = found {
                    return Ok(Some((t, o)));
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the record with the largest timestamp (the first such).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, ReadError> {
        let best =
            self.segments
                .values()
                .filter(|s| s.max_timestamp() >= 0)
                .fold(None::<&Segment>, |best, s| match best {
                    Some(b) if b.max_timestamp() >= s.max_timestamp() => Some(b),
                    _ => Some(s),
                });
        let Some(seg) = best else { return Ok(None) };
        let target = seg.max_timestamp();
        if let Some((pos, h)) = seg.find_by_timestamp(target)? {
            let bytes = seg.read(pos, h.size())?;
            if let Some((o, t)) = batch::record_timestamps(&bytes).into_iter().find(|&(_, t)| t == target) {
                return Ok(Some((t, o)));
            }
        }
        Ok(Some((target, seg.offset_of_max_timestamp())))
    }

    /// Deletes segments past `retention.ms` or over `retention.bytes`; returns how many.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        if !self.config.delete {
            return Ok(0);
        }
        let mut deleted = 0;
        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            // An expired active segment is rolled first so that it can go too (as Kafka does).
            let active = self.active();
            if self.segments.len() == 1 && active.size() > 0 && now_ms - active.largest_timestamp() > retention_ms {
                self.roll(now_ms)?;
            }
            while self.segments.len() > 1 {
                let oldest = self.segments.values().next().expect("non-empty");
                if now_ms - oldest.largest_timestamp() <= retention_ms {
                    break;
                }
                self.delete_oldest_segment()?;
                deleted += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut total: u64 = self.segments.values().map(Segment::size).sum();
            while self.segments.len() > 1 {
                let oldest = self.segments.values().next().expect("non-empty").size();
                if total.saturating_sub(oldest) < self.config.retention_bytes as u64 {
                    break;
                }
                total -= oldest;
                self.delete_oldest_segment()?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    fn delete_oldest_segment(&mut self) -> io::Result<()> {
        let Some((&base, _)) = self.segments.iter().next() else {
            return Ok(());
        };
        let seg = self.segments.remove(&base).expect("present");
        seg.delete()?;
        let first = *self.segments.keys().next().expect("the active segment stays");
        self.log_start_offset = self.log_start_offset.max(first);
        self.forget_aborted_before_start();
        Ok(())
    }

    /// Aborted transactions wholly before the log start concern no reader.
    fn forget_aborted_before_start(&mut self) {
        let start = self.log_start_offset;
        self.aborted.retain(|t| t.last_offset >= start);
    }

    /// The rolled segments to compact, if the topic is compacted and the share of
    /// not-yet-cleaned bytes reaches `min.cleanable.dirty.ratio`.
    pub fn cleanable_segments(&self) -> Option<Vec<cleaner::SegmentInput>> {
        if !self.config.compact || self.segments.len() < 2 {
            return None;
        }
        // Nothing at or above the first unstable offset is cleaned: whether
        // its records are aborted is not known yet.
        let unstable = self.producers.first_unstable_offset().unwrap_or(i64::MAX);
        let rolled: Vec<&Segment> = self
            .segments
            .values()
            .take(self.segments.len() - 1)
            .filter(|s| s.next_offset() <= unstable)
            .collect();
        let total: u64 = rolled.iter().map(|s| s.size()).sum();
        let dirty: u64 = rolled
            .iter()
            .filter(|s| s.base_offset >= self.cleaner_point)
            .map(|s| s.size())
            .sum();
        if total == 0 || dirty == 0 || (dirty as f64 / total as f64) < self.config.min_cleanable_dirty_ratio {
            return None;
        }
        // A segment whose file cannot be opened now is cleaned at a later pass.
        rolled
            .into_iter()
            .map(|s| {
                Ok(cleaner::SegmentInput {
                    base_offset: s.base_offset,
                    file: s.file()?,
                    size: s.size(),
                })
            })
            .collect::<io::Result<Vec<_>>>()
            .ok()
    }

    /// Puts cleaned segment files in place of the originals (which readers holding
    /// their files can still finish reading) and rebuilds their indexes.
    pub fn swap_cleaned(&mut self, outputs: Vec<cleaner::SegmentOutput>, now_ms: i64) -> io::Result<()> {
        let active = self.active().base_offset;
        for out in outputs {
            if out.base_offset == active || !self.segments.contains_key(&out.base_offset) {
                // Deleted by retention meanwhile (or, impossibly, became active): drop the result.
                let _ = std::fs::remove_file(&out.path);
                continue;
            }
            let old = self.segments.remove(&out.base_offset).expect("checked");
            let next = old.next_offset();
            drop(old);
            let stem = segment::file_stem(out.base_offset);
            std::fs::rename(&out.path, self.dir.join(format!("{stem}.log")))?;
            for ext in ["index", "timeindex"] {
                let _ = std::fs::remove_file(self.dir.join(format!("{stem}.{ext}")));
            }
            let (seg, _) = Segment::open(
                &self.dir,
                out.base_offset,
                self.config.index_interval_bytes,
                false,
                now_ms,
            )?;
            self.cleaner_point = self.cleaner_point.max(next);
            self.segments.insert(out.base_offset, seg);
        }
        Ok(())
    }

    /// DeleteRecords: moves the log start offset to `offset` (<= the log end) and
    /// removes the segments wholly below it.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, ReadError> {
        if offset > self.next_offset || offset < 0 {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.next_offset,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
        }
        while self.segments.len() > 1 {
            let mut it = self.segments.values();
            let _oldest = it.next().expect("non-empty");
            let second_base = it.next().expect("two segments").base_offset;
            if second_base > self.log_start_offset {
                break;
            }
            let base = *self.segments.keys().next().expect("non-empty");
            self.segments.remove(&base).expect("present").delete()?;
        }
        self.forget_aborted_before_start();
        Ok(self.log_start_offset)
    }

    /// fsyncs the active segment (all older ones were synced at roll) and moves the recovery point.
    pub fn flush(&mut self, now_ms: i64) -> io::Result<()> {
        let end = self.next_offset;
        self.active_mut().flush()?;
        self.recovery_point.fetch_max(end, Ordering::SeqCst);
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// The files not yet known to be synced, the offset they cover, and the
    /// recovery point to advance: lets a group commit fsync without holding the log.
    pub fn flush_handle(&self) -> io::Result<(Vec<Arc<std::fs::File>>, i64, Arc<AtomicI64>)> {
        let rp = self.recovery_point();
        let files = self
            .segments
            .values()
            .filter(|s| s.next_offset() > rp || s.base_offset >= rp)
            .map(Segment::file)
            .collect::<io::Result<_>>()?;
        Ok((files, self.next_offset, Arc::clone(&self.recovery_point)))
    }

    /// The shared recovery point, readable without the log's lock.
    pub fn recovery_point_handle(&self) -> Arc<AtomicI64> {
        Arc::clone(&self.recovery_point)
    }

    /// Marks pending messages as flushed by a group commit that covered them.
    pub fn mark_flushed(&mut self, now_ms: i64) {
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
    }

    /// Whether `flush.ms` has passed since the last flush with data pending.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.recovery_point() < self.next_offset && now_ms - self.last_flush_ms >= self.config.flush_ms
    }

    /// Flushes and writes a producer snapshot: a clean close of one log.
    pub fn close(&mut self, now_ms: i64) -> io::Result<()> {
        self.flush(now_ms)?;
        for seg in self.segments.values_mut() {
            seg.flush()?;
        }
        if !self.needs_snapshot() {
            return Ok(());
        }
        self.snapshots_on_disk = true;
        producer_state::write_snapshot(&self.dir, self.next_offset, &self.producers)
    }

    /// Whether a clean close must write a producer snapshot: not for a log that
    /// holds no batch and no producer and has no older snapshot to supersede
    /// (opening it finds the same state with nothing to read: an idle partition
    /// costs no snapshot file).
    fn needs_snapshot(&self) -> bool {
        self.snapshots_on_disk || !self.producers.is_empty() || self.next_offset > self.log_start_offset
    }

    /// The first half of a broker's clean shutdown: writes the indexes and a
    /// producer snapshot without fsync and returns the log end offset. The broker
    /// then syncs the file system once (one `syncfs` instead of several fsyncs
    /// per partition) and calls [`Log::mark_durable`] with that offset.
    pub fn close_unsynced(&mut self) -> io::Result<i64> {
        for seg in self.segments.values_mut() {
            seg.write_indexes(false)?;
        }
        if self.snapshot_current_at != Some(self.next_offset) && self.needs_snapshot() {
            self.snapshots_on_disk = true;
            producer_state::write_snapshot_unsynced(&self.dir, self.next_offset, &self.producers)?;
            self.snapshot_current_at = Some(self.next_offset);
        }
        Ok(self.next_offset)
    }

    /// Moves the recovery point to `offset`, which the caller has made durable.
    pub fn mark_durable(&mut self, offset: i64) {
        self.recovery_point
            .fetch_max(offset.min(self.next_offset), Ordering::SeqCst);
        self.unflushed_messages = 0;
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::SeqCst)
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn segment_bases(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn producers(&self) -> &ProducerStateManager {
        &self.producers
    }
    /// Drops producer state idle past `producer.id.expiration.ms`.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) {
        if self.producers.expire(now_ms, expiration_ms) {
            self.snapshot_current_at = None;
        }
    }
}

/// Calls `f` with the header of every batch from the one holding `offset` to the log end.
fn each_header_from(
    segments: &BTreeMap<i64, Segment>,
    offset: i64,
    mut f: impl FnMut(&batch::BatchHeader),
) -> io::Result<()> {
    each_batch_from(segments, offset, |_, _, h| f(h))
}

/// Every batch from `offset` on, with its segment and position in it.
fn each_batch_from(
    segments: &BTreeMap<i64, Segment>,
    mut offset: i64,
    mut f: impl FnMut(&Segment, u64, &batch::BatchHeader),
) -> io::Result<()> {
    for seg in segments.values() {
        if seg.next_offset() <= offset {
            continue;
        }
        let Some((mut pos, _)) = seg.position_of(offset)? else {
            continue;
        };
        while let Some(h) = seg.header_at(pos)? {
            f(seg, pos, &h);
            pos += h.size() as u64;
            offset = h.next_offset();
        }
    }
    Ok(())
}

/// Feeds one batch to the producer state. A marker closes its producer's
/// transaction; an abort marker closing one that wrote here is returned as an
/// aborted transaction.
fn track(
    producers: &mut ProducerStateManager,
    h: &BatchHeader,
    control: Option<batch::ControlType>,
) -> Option<txn_index::AbortedTxn> {
    let first = if h.is_control() {
        producers.get(h.producer_id).and_then(|e| e.txn_first_offset)
    } else {
        None
    };
    producers.update(h);
    match (control, first) {
        (Some(batch::ControlType::Abort), Some(first_offset)) => Some(txn_index::AbortedTxn {
            producer_id: h.producer_id,
            first_offset,
            last_offset: h.base_offset,
            last_stable_offset: producers.first_unstable_offset().unwrap_or(h.next_offset()),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
