//! Idempotent and transactional producer state of one partition (Kafka's
//! ProducerStateManager).
//!
//! For each producer id: its epoch and the metadata of its last five batches, so a
//! retried batch is recognised and answered with its original offset, a gap in
//! sequence numbers is refused, and an older epoch is fenced; and the first
//! offset of its open transaction, if one is open here: the smallest of those is
//! the first unstable offset, below which the last stable offset stays. A pure
//! state machine: the log feeds it batch headers and persists it in snapshot files.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;

use super::batch::BatchHeader;

/// How many recent batches are remembered per producer (the client's max in-flight).
pub const BATCHES_REMEMBERED: usize = 5;

/// A batch already in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// One producer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub last_timestamp: i64,
    /// The first offset of the producer's open transaction on this partition.
    pub txn_first_offset: Option<i64>,
}

/// The outcome of checking a batch against the producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// A retry of a batch already appended at this offset: answer with it, append nothing.
    Duplicate(BatchMetadata),
}

/// A batch that must be refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum SequenceError {
    #[error("producer epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch { got: i16, current: i16 },
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrder { expected: i32, got: i32 },
    /// A transaction marker older than the producer's epoch (a zombie coordinator).
    #[error("transaction marker epoch {got} is older than the producer's epoch {current}")]
    StaleMarker { got: i16, current: i16 },
}

/// Producer states of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// KIP-890 part 1: producers whose transaction coordinator confirmed this
    /// partition is in their open transaction (with that epoch). Held in
    /// memory only, and cleared by the producer's next marker, so a produce
    /// that arrives after its transaction ended cannot start a new one here.
    verified: HashMap<i64, i16>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStateManager {
    /// Checks a batch (without changing state).
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if h.is_control() {
            // A marker ends the producer's transaction; the coordinator bumps
            // the epoch to fence, never lowers it.
            return match self.producers.get(&h.producer_id) {
                Some(e) if h.producer_epoch < e.epoch => Err(SequenceError::StaleMarker {
                    got: h.producer_epoch,
                    current: e.epoch,
                }),
                _ => Ok(SequenceCheck::Append),
            };
        }
        if !h.has_producer_id() {
            return Ok(SequenceCheck::Append);
        }
        if h.base_sequence < 0 {
            // No sequence (a coordinator's transactional write): only the epoch is checked.
            return match self.producers.get(&h.producer_id) {
                Some(e) if h.producer_epoch < e.epoch => Err(SequenceError::InvalidProducerEpoch {
                    got: h.producer_epoch,
                    current: e.epoch,
                }),
                _ => Ok(SequenceCheck::Append),
            };
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // A new producer (or one whose state expired) must start at sequence 0.
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    expected: 0,
                    got: h.base_sequence,
                })
            };
        };
        if h.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                got: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            // A bumped epoch resets the sequence.
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    expected: 0,
                    got: h.base_sequence,
                })
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if h.base_sequence != expected {
            return Err(SequenceError::OutOfOrder {
                expected,
                got: h.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch (with its assigned offsets).
    pub fn update(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_timestamp: h.max_timestamp,
            txn_first_offset: None,
        });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = h.max_timestamp;
        if h.is_control() {
            // A commit or abort marker closes the transaction; its sequence is -1.
            entry.txn_first_offset = None;
            self.verified.remove(&h.producer_id);
            return;
        }
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
        }
        if h.base_sequence >= 0 {
            entry.batches.push_back(BatchMetadata {
                first_seq: h.base_sequence,
                last_seq: h.last_sequence(),
                first_offset: h.base_offset,
                last_offset: h.last_offset(),
                timestamp: h.max_timestamp,
            });
            while entry.batches.len() > BATCHES_REMEMBERED {
                entry.batches.pop_front();
            }
        }
    }

    /// Drops producers idle for longer than `expiration_ms`.
    /// Forgets producers idle for `expiration_ms`; returns whether any was.
    /// A producer with an open transaction is kept: its marker is still to come.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> bool {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.txn_first_offset.is_some() || now_ms - e.last_timestamp < expiration_ms);
        self.producers.len() != before
    }

    /// A copy of the entries of the given producers, for checking a request before applying it.
    pub fn subset(&self, ids: impl Iterator<Item = i64>) -> ProducerStateManager {
        let mut producers = HashMap::new();
        for id in ids {
            if let Some(e) = self.producers.get(&id) {
                producers.insert(id, e.clone());
            }
        }
        ProducerStateManager {
            producers,
            verified: HashMap::new(),
        }
    }

    /// Whether appending `h` would start a transaction here (a transactional
    /// data batch of a producer with no transaction open here, or of a newer
    /// epoch): its coordinator must confirm the partition first.
    pub fn starts_transaction(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && !self
                .producers
                .get(&h.producer_id)
                .is_some_and(|e| e.epoch == h.producer_epoch && e.txn_first_offset.is_some())
    }

    /// The coordinator confirmed the producer's transaction includes this partition.
    pub fn mark_verified(&mut self, producer_id: i64, epoch: i16) {
        self.verified.insert(producer_id, epoch);
    }

    /// Whether `h` may start a transaction: its producer was verified with its epoch.
    pub fn is_verified(&self, h: &BatchHeader) -> bool {
        self.verified.get(&h.producer_id) == Some(&h.producer_epoch)
    }

    /// The first offset of the earliest open transaction: the last stable
    /// offset is at most this.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.values().filter_map(|e| e.txn_first_offset).min()
    }

    /// Producers with a transaction open here: (producer id, epoch, first offset, last timestamp).
    pub fn open_transactions(&self) -> Vec<(i64, i16, i64, i64)> {
        let mut open: Vec<_> = self
            .producers
            .iter()
            .filter_map(|(id, e)| e.txn_first_offset.map(|o| (*id, e.epoch, o, e.last_timestamp)))
            .collect();
        open.sort_unstable_by_key(|t| t.2);
        open
    }

    /// Every producer: (id, entry), for DescribeProducers.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Serialises the state: a version, a count, then per producer its id, epoch,
    /// last timestamp, open transaction's first offset (-1: none; version 2)
    /// and batches; a CRC32C of everything before it closes the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&2u16.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot written by [`encode`](Self::encode); None if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<ProducerStateManager> {
        use bytes::Buf;
        if bytes.len() < 10 {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return None;
        }
        let mut b = body;
        let version = b.get_u16();
        if version != 1 && version != 2 {
            return None;
        }
        let n = b.get_u32();
        let mut producers = HashMap::new();
        let fixed = if version == 2 { 27 } else { 19 };
        for _ in 0..n {
            if b.remaining() < fixed {
                return None;
            }
            let id = b.get_i64();
            let epoch = b.get_i16();
            let last_timestamp = b.get_i64();
            let txn_first_offset = if version == 2 {
                Some(b.get_i64()).filter(|o| *o >= 0)
            } else {
                None
            };
            let nb = b.get_u8() as usize;
            if b.remaining() < nb * 32 {
                return None;
            }
            let batches = (0..nb)
                .map(|_| BatchMetadata {
                    first_seq: b.get_i32(),
                    last_seq: b.get_i32(),
                    first_offset: b.get_i64(),
                    last_offset: b.get_i64(),
                    timestamp: b.get_i64(),
                })
                .collect();
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                    txn_first_offset,
                },
            );
        }
        Some(ProducerStateManager {
            producers,
            verified: HashMap::new(),
        })
    }
}

/// Name of the snapshot taken at `offset` (Kafka's `<offset>.snapshot`).
pub fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

/// Writes a snapshot atomically.
pub fn write_snapshot(dir: &Path, offset: i64, state: &ProducerStateManager) -> io::Result<()> {
    crate::atomic_file::replace(&dir.join(snapshot_name(offset)), &state.encode())
}

/// Writes a snapshot atomically but without fsync: for a shutdown that syncs the
/// whole file system once afterwards.
pub fn write_snapshot_unsynced(dir: &Path, offset: i64, state: &ProducerStateManager) -> io::Result<()> {
    crate::atomic_file::replace_unsynced(&dir.join(snapshot_name(offset)), &state.encode())
}

/// The newest readable snapshot at or below `max_offset`, removing newer or damaged ones.
pub fn latest_snapshot(dir: &Path, max_offset: i64) -> io::Result<Option<(i64, ProducerStateManager)>> {
    let mut offsets: Vec<i64> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        if let Some(o) = snapshot_offset(&e?.file_name().to_string_lossy()) {
            offsets.push(o);
        }
    }
    latest_snapshot_of(dir, offsets, max_offset)
}

/// The offset a snapshot file's name gives, if it is one.
pub fn snapshot_offset(file_name: &str) -> Option<i64> {
    file_name.strip_suffix(".snapshot").and_then(|stem| stem.parse().ok())
}

/// [`latest_snapshot`] among the snapshots at `offsets` (a listing of `dir` the caller made).
pub fn latest_snapshot_of(
    dir: &Path,
    mut offsets: Vec<i64>,
    max_offset: i64,
) -> io::Result<Option<(i64, ProducerStateManager)>> {
    offsets.sort_unstable();
    while let Some(o) = offsets.pop() {
        let path = dir.join(snapshot_name(o));
        if o <= max_offset {
            if let Some(state) = std::fs::read(&path).ok().and_then(|b| ProducerStateManager::decode(&b)) {
                // Keep the newest good snapshot only.
                for older in offsets {
                    let _ = std::fs::remove_file(dir.join(snapshot_name(older)));
                }
                return Ok(Some((o, state)));
            }
        }
        let _ = std::fs::remove_file(path);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, n: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: n - 1,
            base_timestamp: 1,
            max_timestamp: 1,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn in_sequence_batches_append_and_retries_return_the_original_offset() {
        let mut s = ProducerStateManager::default();
        let b0 = batch(1, 0, 0, 10, 0);
        assert_eq!(s.check(&b0), Ok(SequenceCheck::Append));
        s.update(&b0);
        let b1 = batch(1, 0, 10, 5, 10);
        assert_eq!(s.check(&b1), Ok(SequenceCheck::Append));
        s.update(&b1);
        match s.check(&batch(1, 0, 0, 10, 999)) {
            Ok(SequenceCheck::Duplicate(m)) => assert_eq!(m.first_offset, 0),
            other => panic!("{other:?}"),
        }
        match s.check(&batch(1, 0, 10, 5, 999)) {
            Ok(SequenceCheck::Duplicate(m)) => assert_eq!(m.first_offset, 10),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let mut s = ProducerStateManager::default();
        s.update(&batch(1, 0, 0, 10, 0));
        assert_eq!(
            s.check(&batch(1, 0, 11, 1, 10)),
            Err(SequenceError::OutOfOrder { expected: 10, got: 11 })
        );
        assert_eq!(
            s.check(&batch(2, 0, 5, 1, 10)),
            Err(SequenceError::OutOfOrder { expected: 0, got: 5 })
        );
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_newer_one_restarts_sequences() {
        let mut s = ProducerStateManager::default();
        s.update(&batch(1, 3, 0, 10, 0));
        assert_eq!(
            s.check(&batch(1, 2, 10, 1, 10)),
            Err(SequenceError::InvalidProducerEpoch { got: 2, current: 3 })
        );
        assert_eq!(s.check(&batch(1, 4, 0, 1, 10)), Ok(SequenceCheck::Append));
        assert!(matches!(
            s.check(&batch(1, 4, 7, 1, 10)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        s.update(&batch(1, 4, 0, 1, 10));
        assert_eq!(s.get(1).unwrap().epoch, 4);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStateManager::default();
        for i in 0..7 {
            s.update(&batch(1, 0, i, 1, i as i64));
        }
        assert_eq!(s.get(1).unwrap().batches.len(), BATCHES_REMEMBERED);
        assert!(matches!(
            s.check(&batch(1, 0, 2, 1, 99)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        // Sequence 0 fell out of the window: neither duplicate nor next in line.
        assert!(matches!(
            s.check(&batch(1, 0, 0, 1, 99)),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut s = ProducerStateManager::default();
        s.update(&batch(1, 0, 0, 1, 0));
        let mut near_max = batch(1, 0, 1, 1, 1);
        near_max.base_sequence = i32::MAX - 1;
        let mut st = ProducerStateManager::default();
        st.update(&near_max); // seqs MAX-1 .. MAX-1
        let mut last = batch(1, 0, i32::MAX, 2, 2); // MAX, then wraps to 0
        assert_eq!(st.check(&last), Ok(SequenceCheck::Append));
        st.update(&last);
        last = batch(1, 0, 1, 1, 4);
        assert_eq!(st.check(&last), Ok(SequenceCheck::Append));
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::default();
        s.update(&batch(1, 0, 0, 10, 0));
        s.update(&batch(9, 2, 0, 3, 10));
        write_snapshot(dir.path(), 13, &s).unwrap();
        let (o, loaded) = latest_snapshot(dir.path(), 100).unwrap().unwrap();
        assert_eq!((o, &loaded), (13, &s));
        assert!(latest_snapshot(dir.path(), 12).unwrap().is_none());
        let mut bytes = s.encode();
        bytes[7] ^= 1;
        assert!(ProducerStateManager::decode(&bytes).is_none());
    }

    fn txn(pid: i64, epoch: i16, seq: i32, n: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..batch(pid, epoch, seq, n, offset)
        }
    }

    fn marker(pid: i64, epoch: i16, offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x30,
            ..batch(pid, epoch, -1, 1, offset)
        }
    }

    #[test]
    fn a_transaction_is_open_from_its_first_batch_to_its_marker() {
        let mut s = ProducerStateManager::default();
        s.update(&batch(9, 0, 0, 1, 0)); // idempotent, not transactional
        assert_eq!(s.first_unstable_offset(), None);
        s.update(&txn(1, 0, 0, 2, 1));
        s.update(&txn(2, 0, 0, 1, 3));
        s.update(&txn(1, 0, 2, 1, 4));
        assert_eq!(s.first_unstable_offset(), Some(1));
        assert_eq!(
            s.open_transactions().iter().map(|t| (t.0, t.2)).collect::<Vec<_>>(),
            vec![(1, 1), (2, 3)]
        );
        s.update(&marker(1, 0, 5));
        assert_eq!(s.first_unstable_offset(), Some(3));
        // The next transaction of producer 1 opens at its own first batch.
        s.update(&txn(1, 0, 3, 1, 6));
        assert_eq!(s.get(1).unwrap().txn_first_offset, Some(6));
        s.update(&marker(2, 1, 7)); // fenced by the coordinator with a bumped epoch
        assert_eq!(s.get(2).unwrap().epoch, 1);
        assert_eq!(s.first_unstable_offset(), Some(6));
        // The old epoch's data is refused after the fencing marker; so is an older marker.
        assert!(matches!(
            s.check(&txn(2, 0, 1, 1, 8)),
            Err(SequenceError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(
            s.check(&marker(2, 0, 8)),
            Err(SequenceError::StaleMarker { got: 0, current: 1 })
        );
        // An open transaction survives expiry and a snapshot.
        assert!(s.expire(1_000_000, 10));
        assert_eq!(s.first_unstable_offset(), Some(6));
        assert_eq!(ProducerStateManager::decode(&s.encode()), Some(s));
    }
}
