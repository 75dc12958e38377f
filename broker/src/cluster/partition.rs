//! One partition replica as the broker serves it: its log behind a lock, run on
//! blocking threads; the offsets readers need without taking the lock; and its
//! role (leader or follower) with the leader's view of its followers.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::watch;

use super::{blocking, now_ms, Broker};
use crate::config::LogConfig;
use crate::controller::image::{PartitionImage, NO_LEADER};
use crate::log::{AppendError, AppendInfo, FileSlice, Log, OpenStats, ReadError, ReadResult};
use crate::replication::isr::{self, FollowerProgress};

/// This replica's role and, when leading, its followers' progress.
#[derive(Debug, Clone)]
pub struct ReplicaState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas a reassignment is adding (their fetches are throttled).
    pub adding: Vec<i32>,
    pub followers: BTreeMap<i32, FollowerProgress>,
    /// An AlterPartition for this partition is on its way to the controller.
    pub isr_change_in_flight: bool,
    /// ISR changes the controller refused in a row, and when the next may be proposed.
    pub isr_refusals: u32,
    pub isr_retry_at_ms: i64,
}

/// The offsets checkpointed for a partition at the last run.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOffsets {
    pub recovery_point: i64,
    pub log_start: i64,
    pub high_watermark: i64,
}

/// How applying the metadata image changed this replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    None,
    BecameLeader,
    /// A new leader or leader epoch to follow: truncate, then fetch.
    BecameFollower {
        leader: i32,
        epoch: i32,
    },
}

/// A partition hosted on this broker.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    /// The topic's counters (records and bytes in and out).
    pub metrics: crate::metrics::TopicMetrics,
    dir: PathBuf,
    log: Arc<Mutex<Log>>,
    /// Last offset + 1 of committed data: replicated to every ISR member.
    high_watermark: AtomicI64,
    hw_changed: watch::Sender<i64>,
    /// The broker's signal to consumers' long-polling fetches that a high
    /// watermark moved (data below it became readable); set by the broker
    /// when it opens the replica.
    pub hw_advanced: Arc<watch::Sender<u64>>,
    /// Woken when the low watermark may have moved (DeleteRecords waits on it).
    low_watermark_changed: tokio::sync::Notify,
    log_end_offset: AtomicI64,
    /// Follower: the leader's high watermark as of the last fetch (for DescribeLogDirs' lag).
    leader_high_watermark: AtomicI64,
    log_start_offset: AtomicI64,
    recovery_point: Arc<AtomicI64>,
    /// Held while an fsync runs, so that concurrent producers share one (group commit).
    flush_lock: tokio::sync::Mutex<()>,
    deleted: AtomicBool,
    /// The topic's min.insync.replicas, readable on the produce path without the log's lock.
    min_insync_replicas: AtomicI32,
    leader_epoch: AtomicI32,
    /// Leader: the log end offset when this leader's epoch began (followers must pass it to join the ISR).
    epoch_start: AtomicI64,
    replica: Mutex<ReplicaState>,
}

impl Partition {
    /// Opens (recovering if needed) the partition's log.
    pub fn open(
        topic: &str,
        index: i32,
        dir: &Path,
        config: LogConfig,
        start: StartOffsets,
        clean: bool,
    ) -> io::Result<(Partition, OpenStats)> {
        let min_isr = config.min_insync_replicas;
        let (log, stats) = Log::open(dir, config, start.recovery_point, start.log_start, clean, now_ms())?;
        let hw = start.high_watermark.clamp(log.log_start_offset(), log.log_end_offset());
        let p = Partition {
            topic: topic.to_string(),
            index,
            metrics: Default::default(),
            dir: dir.to_path_buf(),
            high_watermark: AtomicI64::new(hw),
            hw_changed: watch::channel(hw).0,
            hw_advanced: Arc::new(watch::channel(0).0),
            low_watermark_changed: tokio::sync::Notify::new(),
            leader_high_watermark: AtomicI64::new(hw),
            log_end_offset: AtomicI64::new(log.log_end_offset()),
            log_start_offset: AtomicI64::new(log.log_start_offset()),
            recovery_point: log.recovery_point_handle(),
            log: Arc::new(Mutex::new(log)),
            flush_lock: tokio::sync::Mutex::new(()),
            deleted: AtomicBool::new(false),
            min_insync_replicas: AtomicI32::new(min_isr),
            leader_epoch: AtomicI32::new(-1),
            epoch_start: AtomicI64::new(0),
            replica: Mutex::new(ReplicaState {
                leader: NO_LEADER,
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                adding: Vec::new(),
                followers: BTreeMap::new(),
                isr_change_in_flight: false,
                isr_refusals: 0,
                isr_retry_at_ms: 0,
            }),
        };
        Ok((p, stats))
    }

    fn replica(&self) -> MutexGuard<'_, ReplicaState> {
        self.replica.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the replica state.
    pub fn replica_state(&self) -> ReplicaState {
        self.replica().clone()
    }

    /// How many replicas are in sync (without copying the replica state).
    pub fn isr_len(&self) -> usize {
        self.replica().isr.len()
    }

    /// Whether a reassignment is adding `replica` to this partition (its traffic is throttled).
    pub fn is_adding(&self, replica: i32) -> bool {
        self.replica().adding.contains(&replica)
    }

    /// The leader epoch this replica knows.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::SeqCst)
    }

    /// Whether this broker (`me`) leads the partition.
    pub fn is_leader(&self, me: i32) -> bool {
        self.replica().leader == me
    }

    /// Takes the partition's state from the metadata image.
    pub fn apply_image(&self, me: i32, img: &PartitionImage) -> RoleChange {
        let now = now_ms();
        let mut st = self.replica();
        let new_epoch = img.leader_epoch != st.leader_epoch || img.leader != st.leader;
        st.replicas = img.replicas.clone();
        st.isr = img.isr.clone();
        st.adding = img.adding.clone();
        st.partition_epoch = img.partition_epoch;
        // A smaller ISR may release a DeleteRecords waiting on a lagging member.
        self.low_watermark_changed.notify_waiters();
        if !new_epoch {
            drop(st);
            if self.is_leader(me) {
                self.update_high_watermark(None);
            }
            return RoleChange::None;
        }
        st.leader = img.leader;
        st.leader_epoch = img.leader_epoch;
        st.isr_change_in_flight = false;
        st.isr_refusals = 0;
        st.isr_retry_at_ms = 0;
        self.leader_epoch.store(img.leader_epoch, Ordering::SeqCst);
        if img.leader == me {
            st.followers = img
                .replicas
                .iter()
                .filter(|&&r| r != me)
                .map(|&r| (r, FollowerProgress::new(now)))
                .collect();
            drop(st);
            // The new epoch starts at the current log end (Kafka's epoch-start offset).
            let mut log = Self::lock(&self.log);
            let end = log.log_end_offset();
            if let Err(e) = log.assign_epoch(img.leader_epoch, end) {
                tracing::warn!(topic = %self.topic, partition = self.index, "cannot record leader epoch: {e}");
            }
            drop(log);
            self.epoch_start.store(end, Ordering::SeqCst);
            self.update_high_watermark(None);
            RoleChange::BecameLeader
        } else {
            st.followers.clear();
            if img.leader == NO_LEADER || !img.replicas.contains(&me) {
                return RoleChange::None;
            }
            RoleChange::BecameFollower {
                leader: img.leader,
                epoch: img.leader_epoch,
            }
        }
    }

    /// Leader: recomputes the high watermark from the ISR's progress; returns the new value.
    fn update_high_watermark(&self, leader_end: Option<i64>) -> i64 {
        let end = leader_end.unwrap_or_else(|| self.log_end_offset.load(Ordering::SeqCst));
        let st = self.replica();
        if let Some(hw) = isr::high_watermark(st.leader, end, &st.isr, &st.followers) {
            drop(st);
            self.advance_high_watermark(hw);
        }
        self.high_watermark()
    }

    fn advance_high_watermark(&self, hw: i64) {
        let old = self.high_watermark.fetch_max(hw, Ordering::SeqCst);
        if hw > old {
            self.hw_changed.send_replace(hw);
            // A consumer waiting for data of this partition reads only below the
            // high watermark: with replicas, the append woke it too early and
            // the follower's fetch that moves the watermark must wake it again
            // (Kafka completes delayed fetches on a high watermark change).
            self.hw_advanced.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Leader: records a follower's fetch. Returns an ISR to propose if the
    /// follower may join it (caught up within `lag_max_ms`) and no change is in
    /// flight or backing off after a refusal.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        lag_max_ms: i64,
    ) -> Option<Vec<i32>> {
        let now = now_ms();
        let end = self.log_end_offset.load(Ordering::SeqCst);
        {
            let mut st = self.replica();
            if !st.replicas.contains(&replica) {
                return None;
            }
            let f = st
                .followers
                .entry(replica)
                .or_insert_with(|| FollowerProgress::new(now));
            f.fetched(fetch_offset, end, now);
            if log_start_offset > f.log_start_offset {
                f.log_start_offset = log_start_offset;
                self.low_watermark_changed.notify_waiters();
            }
        }
        let hw = self.update_high_watermark(Some(end));
        let epoch_start = self.epoch_start.load(Ordering::SeqCst);
        let mut st = self.replica();
        if st.isr_change_in_flight || now < st.isr_retry_at_ms {
            return None;
        }
        if !isr::may_join(replica, &st.isr, &st.followers, hw, epoch_start, now, lag_max_ms) {
            return None;
        }
        st.isr_change_in_flight = true;
        let mut isr = st.isr.clone();
        isr.push(replica);
        Some(isr)
    }

    /// Leader: the ISR without members that lag past `lag_max_ms`, if any do.
    pub fn shrink_candidate(&self, lag_max_ms: i64) -> Option<Vec<i32>> {
        let mut st = self.replica();
        let now = now_ms();
        if st.isr_change_in_flight || now < st.isr_retry_at_ms {
            return None;
        }
        let lagging = isr::lagging_replicas(st.leader, &st.isr, &st.followers, now, lag_max_ms);
        if lagging.is_empty() {
            return None;
        }
        st.isr_change_in_flight = true;
        Some(st.isr.iter().copied().filter(|r| !lagging.contains(r)).collect())
    }

    /// The proposed ISR change was committed (`accepted`), or refused or
    /// abandoned: another may be sent, after a backoff that grows with refusals.
    pub fn isr_change_done(&self, accepted: bool) {
        let mut st = self.replica();
        st.isr_change_in_flight = false;
        if accepted {
            st.isr_refusals = 0;
            st.isr_retry_at_ms = 0;
        } else {
            st.isr_refusals = st.isr_refusals.saturating_add(1);
            st.isr_retry_at_ms = now_ms() + isr::isr_retry_backoff_ms(st.isr_refusals);
        }
    }

    /// Leader, acks=all: waits until every ISR member has `offset`. Fails if
    /// leadership moves, or when the ISR shrank below `min.insync.replicas`.
    pub async fn wait_for_replication(&self, offset: i64, timeout: Duration) -> Result<(), ResponseError> {
        let epoch = self.leader_epoch();
        let mut rx = self.hw_changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.leader_epoch() != epoch {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            if self.high_watermark() >= offset {
                let isr = self.isr_len() as i32;
                return if isr < self.min_insync_replicas() {
                    Err(ResponseError::NotEnoughReplicasAfterAppend)
                } else {
                    Ok(())
                };
            }
            // The epoch check above needs a wake-up too: poll at least every 100 ms.
            let wake = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            let _ = tokio::time::timeout_at(wake, rx.changed()).await;
            if tokio::time::Instant::now() >= deadline && self.high_watermark() < offset {
                return Err(ResponseError::RequestTimedOut);
            }
        }
    }

    /// Follower: appends batches fetched from the leader; returns the new log end.
    /// The caller wakes the waiters on appended data (`ReplicaHost::notify_append`).
    pub async fn append_replicated(&self, records: Bytes) -> Result<i64, AppendError> {
        // On the calling worker, as the leader's append (see `append`).
        let end = Self::lock(&self.log).append_as_follower(&records, now_ms())?;
        self.log_end_offset.store(end, Ordering::SeqCst);
        Ok(end)
    }

    /// Follower: takes the leader's high watermark (never past this replica's end).
    pub fn follower_high_watermark(&self, leader_hw: i64) {
        if leader_hw < 0 {
            return; // the leader does not know it yet (an error answer, or a leader just elected)
        }
        let end = self.log_end_offset.load(Ordering::SeqCst);
        self.leader_high_watermark.store(leader_hw, Ordering::SeqCst);
        let hw = leader_hw.min(end);
        // A follower's high watermark may also move back after truncation.
        self.high_watermark.store(hw, Ordering::SeqCst);
    }

    /// Follower: moves the log start offset up to the leader's, within what
    /// this replica knows to be committed (Kafka bounds it the same way).
    pub async fn follow_log_start_offset(&self, leader_start: i64) -> Result<i64, ReadError> {
        let target = leader_start.min(self.high_watermark());
        if target <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        let log = Arc::clone(&self.log);
        let start = tokio::task::spawn_blocking(move || Self::lock(&log).delete_records_before(target))
            .await
            .map_err(|e| ReadError::Io(io::Error::other(e.to_string())))??;
        self.log_start_offset.store(start, Ordering::SeqCst);
        Ok(start)
    }

    /// Follower: cuts the log at `offset` (its divergent tail).
    pub async fn truncate_to(&self, offset: i64) -> io::Result<i64> {
        let log = Arc::clone(&self.log);
        let end = blocking(move || {
            let mut log = Self::lock(&log);
            log.truncate_to(offset, now_ms())?;
            Ok(log.log_end_offset())
        })
        .await?;
        self.log_end_offset.store(end, Ordering::SeqCst);
        self.high_watermark.fetch_min(end, Ordering::SeqCst);
        Ok(end)
    }

    /// Follower: empties the log and restarts it at the leader's log start.
    pub async fn reset_to(&self, offset: i64) -> io::Result<()> {
        let log = Arc::clone(&self.log);
        blocking(move || Self::lock(&log).reset_to(offset, now_ms())).await?;
        self.log_end_offset.store(offset, Ordering::SeqCst);
        self.log_start_offset.store(offset, Ordering::SeqCst);
        self.high_watermark.store(offset, Ordering::SeqCst);
        Ok(())
    }

    /// (latest epoch, its start) of this replica's log.
    pub fn latest_epoch(&self) -> Option<(i32, i64)> {
        Self::lock(&self.log).latest_epoch()
    }

    /// OffsetForLeaderEpoch: (largest epoch <= `epoch`, its end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        Self::lock(&self.log).end_offset_for_epoch(epoch)
    }

    /// (size in bytes, offsets this replica lags behind the committed end): DescribeLogDirs.
    pub fn size_and_lag(&self, me: i32) -> (i64, i64) {
        let size = Self::lock(&self.log).size_bytes() as i64;
        let end = self.log_end_offset();
        let committed = if self.is_leader(me) {
            self.high_watermark()
        } else {
            self.leader_high_watermark.load(Ordering::SeqCst)
        };
        (size, (committed - end).max(0))
    }

    /// The log end offset (readable without the lock).
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::SeqCst)
    }

    fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-written in memory
        // in a way reads depend on (offsets move only after a write succeeds).
        log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a produce request's records; with `flush.messages` reached, waits for
    /// an fsync shared with every producer that arrived meanwhile.
    pub async fn append(&self, broker: &Broker, records: Bytes) -> Result<AppendInfo, AppendError> {
        self.append_checked(broker, records, false).await
    }

    /// A producer's append: a batch that would start a transaction here needs
    /// its coordinator's confirmation first (KIP-890 part 1, [`mark_verified`](Self::mark_verified)).
    pub async fn append_verified(&self, broker: &Broker, records: Bytes) -> Result<AppendInfo, AppendError> {
        self.append_checked(broker, records, true).await
    }

    /// Whether a batch with this header must be verified with its coordinator before it is appended.
    pub fn needs_verification(&self, h: &crate::log::batch::BatchHeader) -> bool {
        Self::lock(&self.log).needs_verification(h)
    }

    /// The coordinator confirmed this partition is in the producer's open transaction.
    pub fn mark_verified(&self, producer_id: i64, epoch: i16) {
        Self::lock(&self.log).mark_verified(producer_id, epoch);
    }

    async fn append_checked(&self, broker: &Broker, records: Bytes, verify: bool) -> Result<AppendInfo, AppendError> {
        let epoch = self.leader_epoch();
        // On the calling worker, as Kafka's request handler threads append: a
        // write into the page cache takes microseconds, and a hand-off to the
        // blocking pool cost two thread switches per partition per request
        // (half of three brokers' CPU at 35 MB/s of acks=all RF=3). fsyncs
        // (`flush_through`) and copying reads stay on the blocking pool.
        let (info, end, start) = {
            let mut log = Self::lock(&self.log);
            let info = if verify {
                log.append_verified(&records, now_ms(), epoch)?
            } else {
                log.append(&records, now_ms(), epoch)?
            };
            (info, log.log_end_offset(), log.log_start_offset())
        };
        self.log_end_offset.fetch_max(end, Ordering::SeqCst);
        self.log_start_offset.store(start, Ordering::SeqCst);
        self.update_high_watermark(None);
        if !info.duplicate {
            broker.notify_append();
        }
        if info.needs_flush {
            self.flush_through(end).await?;
        }
        Ok(info)
    }

    /// Makes every offset below `end` durable. Whoever holds the flush lock syncs
    /// everything appended so far, so waiters behind it usually find their data
    /// already covered and return without a second fsync.
    async fn flush_through(&self, end: i64) -> io::Result<()> {
        let _g = self.flush_lock.lock().await;
        if self.recovery_point.load(Ordering::SeqCst) >= end {
            return Ok(());
        }
        let log = Arc::clone(&self.log);
        blocking(move || {
            let (files, upto, rp) = Self::lock(&log).flush_handle()?;
            for f in files {
                f.sync_data()?;
            }
            rp.fetch_max(upto, Ordering::SeqCst);
            Self::lock(&log).mark_flushed(now_ms());
            Ok(())
        })
        .await
    }

    /// Reads whole batches from `offset`.
    pub async fn read(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<ReadResult, ReadError> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || Self::lock(&log).read(offset, max_bytes, min_one_batch))
            .await
            .map_err(|e| ReadError::Io(io::Error::other(e.to_string())))?
    }

    /// Reads whole batches from `offset` on the calling thread (start-up replay).
    pub fn read_blocking(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>, ReadError> {
        Ok(Self::lock(&self.log).read(offset, max_bytes, true)?.bytes)
    }

    /// Locates whole batches from `offset` for a zero-copy send.
    pub async fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        limit: i64,
    ) -> Result<Option<FileSlice>, ReadError> {
        // On the calling worker: an index lookup and a few header reads from
        // the page cache; the bytes themselves go by `sendfile` later.
        Self::lock(&self.log).read_slice_below(offset, max_bytes, min_one_batch, limit)
    }

    /// ListOffsets by timestamp (or -3 for the max timestamp): (timestamp, offset).
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, ReadError> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || {
            let log = Self::lock(&log);
            if timestamp == -3 {
                log.max_timestamp_offset()
            } else {
                log.offset_for_timestamp(timestamp)
            }
        })
        .await
        .map_err(|e| ReadError::Io(io::Error::other(e.to_string())))?
    }

    /// DeleteRecords: moves the log start offset; returns the new low watermark.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, ReadError> {
        let log = Arc::clone(&self.log);
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target > hw {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end: hw,
            });
        }
        let start = tokio::task::spawn_blocking(move || Self::lock(&log).delete_records_before(target))
            .await
            .map_err(|e| ReadError::Io(io::Error::other(e.to_string())))??;
        self.log_start_offset.store(start, Ordering::SeqCst);
        self.low_watermark_changed.notify_waiters();
        Ok(start)
    }

    /// Leader: the smallest log start offset over the ISR (-1 if not known yet).
    pub fn low_watermark(&self) -> i64 {
        let st = self.replica();
        isr::low_watermark(st.leader, self.log_start_offset(), &st.isr, &st.followers)
    }

    /// Leader, DeleteRecords: waits until every ISR member has dropped the
    /// records below `offset` (Kafka's DelayedDeleteRecords), so that no
    /// failover brings them back. Returns the low watermark.
    pub async fn wait_for_low_watermark(&self, offset: i64, timeout: Duration) -> Result<i64, ResponseError> {
        let epoch = self.leader_epoch();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.low_watermark_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.leader_epoch() != epoch {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            let low = self.low_watermark();
            if low >= offset {
                return Ok(low);
            }
            // The epoch check above needs a wake-up too: poll at least every 100 ms.
            let wake = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            let _ = tokio::time::timeout_at(wake, changed).await;
            if tokio::time::Instant::now() >= deadline && self.low_watermark() < offset {
                return Err(ResponseError::RequestTimedOut);
            }
        }
    }

    /// The topic's `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> i32 {
        self.min_insync_replicas.load(Ordering::Relaxed)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::SeqCst)
    }
    /// The last stable offset: the high watermark, or the first offset of the
    /// earliest transaction still open here if that is lower.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        match Self::lock(&self.log).first_unstable_offset() {
            Some(o) => o.min(hw),
            None => hw,
        }
    }
    /// The aborted transactions a read of `[from, to)` must report.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<crate::log::txn_index::AbortedTxn> {
        Self::lock(&self.log).aborted_between(from, to)
    }
    /// Producers with state here (DescribeProducers).
    pub fn producer_states(&self) -> Vec<(i64, crate::log::producer_state::ProducerEntry)> {
        Self::lock(&self.log)
            .producers()
            .entries()
            .map(|(id, e)| (id, e.clone()))
            .collect()
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::SeqCst)
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::SeqCst);
    }
    pub fn set_config(&self, config: LogConfig) {
        self.min_insync_replicas
            .store(config.min_insync_replicas, Ordering::Relaxed);
        Self::lock(&self.log).set_config(config);
    }
    /// (recovery point, log start offset) for the checkpoint files.
    pub fn checkpoint_offsets(&self) -> (i64, i64) {
        let log = Self::lock(&self.log);
        (log.recovery_point(), log.log_start_offset())
    }

    /// Retention and producer expiry (blocking; called from the background task).
    pub fn housekeeping(&self, now: i64, producer_expiration_ms: i64) {
        let mut log = Self::lock(&self.log);
        match log.apply_retention(now) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(topic = %self.topic, partition = self.index, segments = n, log_start_offset = log.log_start_offset(), "retention deleted segments")
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, "retention failed: {e}")
            }
        }
        log.expire_producers(now, producer_expiration_ms);
        self.log_start_offset.store(log.log_start_offset(), Ordering::SeqCst);
    }

    /// One compaction pass if the log needs one (blocking). The log is locked only
    /// to pick the segments and to swap the results in.
    pub fn compact(&self, now: i64) -> io::Result<Option<crate::log::cleaner::CleanStats>> {
        let (inputs, horizon, aborted) = {
            let log = Self::lock(&self.log);
            match log.cleanable_segments() {
                Some(inputs) => (inputs, now - log.config().delete_retention_ms, log.aborted().to_vec()),
                None => return Ok(None),
            }
        };
        let (outputs, stats) = crate::log::cleaner::clean(&self.dir, &inputs, horizon, &aborted)?;
        Self::lock(&self.log).swap_cleaned(outputs, now)?;
        Ok(Some(stats))
    }

    /// Flushes if `flush.ms` has passed (blocking).
    pub fn flush_if_due(&self, now: i64) {
        let mut log = Self::lock(&self.log);
        if log.flush_due(now) {
            if let Err(e) = log.flush(now) {
                tracing::warn!(topic = %self.topic, partition = self.index, "flush failed: {e}");
            }
        }
    }

    /// Shutdown, first half (blocking): indexes and a producer snapshot written
    /// without fsync; returns the log end offset to mark durable once the
    /// broker has synced the file system (None for a deleted partition).
    pub fn close_unsynced(&self) -> io::Result<Option<i64>> {
        if self.is_deleted() {
            return Ok(None);
        }
        Self::lock(&self.log).close_unsynced().map(Some)
    }

    /// Shutdown, second half: the file system was synced with the log at `end`.
    pub fn mark_durable(&self, end: i64) {
        Self::lock(&self.log).mark_durable(end);
    }
}
