//! One partition as the broker serves it: its log behind a lock, run on blocking
//! threads, plus the offsets readers need without taking the lock.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::{blocking, now_ms, Broker};
use crate::config::LogConfig;
use crate::log::{AppendError, AppendInfo, FileSlice, Log, OpenStats, ReadError, ReadResult};

/// A partition hosted on this broker.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    dir: PathBuf,
    log: Arc<Mutex<Log>>,
    /// Last offset + 1 of committed data; equal to the log end offset on one broker.
    high_watermark: AtomicI64,
    log_start_offset: AtomicI64,
    recovery_point: Arc<AtomicI64>,
    /// Held while an fsync runs, so that concurrent producers share one (group commit).
    flush_lock: tokio::sync::Mutex<()>,
    deleted: AtomicBool,
    /// The topic's min.insync.replicas, readable on the produce path without the log's lock.
    min_insync_replicas: AtomicI32,
    pub leader_epoch: i32,
}

impl Partition {
    /// Opens (recovering if needed) the partition's log.
    pub fn open(
        topic: &str,
        index: i32,
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        log_start: i64,
        clean: bool,
    ) -> io::Result<(Partition, OpenStats)> {
        let min_isr = config.min_insync_replicas;
        let (log, stats) = Log::open(dir, config, recovery_point, log_start, clean, now_ms())?;
        let p = Partition {
            topic: topic.to_string(),
            index,
            dir: dir.to_path_buf(),
            high_watermark: AtomicI64::new(log.log_end_offset()),
            log_start_offset: AtomicI64::new(log.log_start_offset()),
            recovery_point: log.recovery_point_handle(),
            log: Arc::new(Mutex::new(log)),
            flush_lock: tokio::sync::Mutex::new(()),
            deleted: AtomicBool::new(false),
            min_insync_replicas: AtomicI32::new(min_isr),
            leader_epoch: 0,
        };
        Ok((p, stats))
    }

    fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-written in memory
        // in a way reads depend on (offsets move only after a write succeeds).
        log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a produce request's records; with `flush.messages` reached, waits for
    /// an fsync shared with every producer that arrived meanwhile.
    pub async fn append(&self, broker: &Broker, records: Bytes) -> Result<AppendInfo, AppendError> {
        let log = Arc::clone(&self.log);
        let epoch = self.leader_epoch;
        let (info, end, start) = tokio::task::spawn_blocking(move || {
            let mut log = Self::lock(&log);
            let info = log.append(&records, now_ms(), epoch)?;
            Ok::<_, AppendError>((info, log.log_end_offset(), log.log_start_offset()))
        })
        .await
        .map_err(|e| AppendError::Io(io::Error::other(e.to_string())))??;
        self.high_watermark.fetch_max(end, Ordering::SeqCst);
        self.log_start_offset.store(start, Ordering::SeqCst);
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
            let (files, upto, rp) = Self::lock(&log).flush_handle();
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
    ) -> Result<Option<FileSlice>, ReadError> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || Self::lock(&log).read_slice(offset, max_bytes, min_one_batch))
            .await
            .map_err(|e| ReadError::Io(io::Error::other(e.to_string())))?
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
        Ok(start)
    }

    /// The topic's `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> i32 {
        self.min_insync_replicas.load(Ordering::Relaxed)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::SeqCst)
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
        let (inputs, horizon) = {
            let log = Self::lock(&self.log);
            match log.cleanable_segments() {
                Some(inputs) => (inputs, now - log.config().delete_retention_ms),
                None => return Ok(None),
            }
        };
        let (outputs, stats) = crate::log::cleaner::clean(&self.dir, &inputs, horizon)?;
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

    /// Flushes and snapshots at shutdown (blocking).
    pub fn close(&self, now: i64) -> io::Result<()> {
        if self.is_deleted() {
            return Ok(());
        }
        Self::lock(&self.log).close(now)
    }
}
