//! The transaction coordinator: every transactional id whose
//! `__transaction_state` partition this broker leads. It runs the pure state
//! machine (`state.rs`), persists each transition to `__transaction_state`
//! before it takes effect (acks=all, through the coordinator host), and
//! drives a prepared transaction to completion: markers to every partition
//! in it, retried until each leader has written one, then Complete*. A
//! broker that takes over a partition finishes what its predecessor
//! prepared. It never talks to sockets; handlers and the broker call it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;

use super::log::{self as txn_log, TRANSACTION_STATE_TOPIC};
use super::state::{InitOutcome, TopicPartition, TxnError, TxnMetadata, TxnState, MAX_EPOCH, NO_PRODUCER_ID};
use crate::clock::now_ms;
use crate::coordinator::{CoordinatorHost, InternalLog, InternalTopic};
use crate::error::AdminError;

/// A transaction marker to write: who, how, and the coordinator's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// What the transaction coordinator needs of the broker beyond any coordinator's host.
pub trait TxnHost: CoordinatorHost {
    fn txn_coordinator(&self) -> &TransactionCoordinator;
    /// A new producer id (from the producer-id manager).
    fn new_producer_id(self: &Arc<Self>) -> impl Future<Output = Result<i64, AdminError>> + Send;
    /// Writes `marker` to each partition through its leader (acks=all);
    /// returns those that failed, to retry. A partition that no longer
    /// exists needs no marker and is not a failure.
    fn write_markers(
        self: &Arc<Self>,
        marker: Marker,
        partitions: Vec<TopicPartition>,
    ) -> impl Future<Output = Vec<(TopicPartition, ResponseError)>> + Send;
}

/// A transactional id's state as DescribeTransactions and ListTransactions show it.
pub type TxnListing = TxnMetadata;

/// The coordinator of the transactional ids hashed to partitions led here.
pub struct TransactionCoordinator {
    partitions: i32,
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// The leader epoch of each `__transaction_state` partition led here: the
    /// coordinator epoch its markers carry.
    epochs: Mutex<HashMap<i32, i32>>,
    /// One state change at a time per `__transaction_state` partition: a
    /// transition is computed, persisted and installed under it.
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Transactions a load found prepared (or fenced): the timer completes them.
    to_complete: Mutex<Vec<String>>,
    wake: tokio::sync::Notify,
    /// The longest partition load so far, in ms (a metric).
    load_time_max_ms: std::sync::atomic::AtomicU64,
    /// Markers now waiting for a partition without a leader (a metric).
    unknown_destination: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionCoordinator")
            .field("partitions", &self.partitions)
            .finish()
    }
}

fn error(code: ResponseError, message: impl Into<String>) -> TxnError {
    TxnError {
        code,
        message: message.into(),
    }
}

impl From<ResponseError> for TxnError {
    fn from(code: ResponseError) -> TxnError {
        error(code, "")
    }
}

impl TransactionCoordinator {
    pub fn new(partitions: i32) -> TransactionCoordinator {
        let partitions = partitions.max(1);
        TransactionCoordinator {
            partitions,
            txns: Mutex::new(HashMap::new()),
            epochs: Mutex::new(HashMap::new()),
            locks: (0..partitions).map(|_| tokio::sync::Mutex::new(())).collect(),
            to_complete: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
            load_time_max_ms: std::sync::atomic::AtomicU64::new(0),
            unknown_destination: std::sync::atomic::AtomicI64::new(0),
        }
    }

    fn txns(&self) -> MutexGuard<'_, HashMap<String, TxnMetadata>> {
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `__transaction_state` partition that owns `transactional_id`.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        txn_log::partition_for(transactional_id, self.partitions)
    }

    fn lock_for(&self, transactional_id: &str) -> &tokio::sync::Mutex<()> {
        &self.locks[self.partition_for(transactional_id) as usize]
    }

    /// Creates `__transaction_state` if it does not exist (compacted, as in Kafka).
    pub async fn ensure_topic(&self, host: &Arc<impl CoordinatorHost>) -> Result<(), AdminError> {
        let c = host.config();
        let rf = c.transaction_state_replication_factor();
        let live_rf = rf.min(host_brokers(host));
        let mut configs = std::collections::BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert(
            "segment.bytes".to_string(),
            c.transaction_state_segment_bytes().to_string(),
        );
        configs.insert(
            "min.insync.replicas".to_string(),
            c.transaction_state_min_isr().min(i32::from(live_rf.max(1))).to_string(),
        );
        host.ensure_internal_topic(&InternalTopic {
            name: TRANSACTION_STATE_TOPIC,
            partitions: self.partitions,
            replication_factor: rf,
            configs,
        })
        .await
    }

    /// Whether this broker coordinates `transactional_id` (creating the topic first).
    pub async fn check_coordinator(
        &self,
        host: &Arc<impl CoordinatorHost>,
        transactional_id: &str,
    ) -> Result<(), TxnError> {
        self.ensure_topic(host)
            .await
            .map_err(|e| error(ResponseError::CoordinatorNotAvailable, e.message))?;
        crate::coordinator::check_coordinator(
            host.as_ref(),
            TRANSACTION_STATE_TOPIC,
            self.partition_for(transactional_id),
        )
        .map_err(TxnError::from)
    }

    /// Persists `next` to `__transaction_state`, then installs it.
    async fn persist(&self, host: &Arc<impl CoordinatorHost>, next: TxnMetadata) -> Result<(), TxnError> {
        let value = (next.state != TxnState::Dead).then(|| txn_log::value(&next));
        let batch = crate::log::batch::encode_records(
            &[(Some(txn_log::key(&next.transactional_id)), value)],
            now_ms(),
            Compression::None,
        )
        .map_err(|e| error(ResponseError::UnknownServerError, e))?;
        let index = self.partition_for(&next.transactional_id);
        host.append_internal(TRANSACTION_STATE_TOPIC, index, batch)
            .await
            .map_err(|code| match code {
                ResponseError::NotCoordinator => error(code, "this broker no longer coordinates the transaction"),
                _ => error(
                    ResponseError::CoordinatorNotAvailable,
                    "cannot write the transaction state",
                ),
            })?;
        let mut txns = self.txns();
        if next.state == TxnState::Dead {
            txns.remove(&next.transactional_id);
        } else {
            txns.insert(next.transactional_id.clone(), next);
        }
        Ok(())
    }

    /// InitProducerId with a transactional id: (producer id, epoch).
    pub async fn init_producer_id(
        &self,
        host: &Arc<impl TxnHost>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: (i64, i16),
    ) -> Result<(i64, i16), TxnError> {
        let max = host.config().transaction_max_timeout_ms();
        if timeout_ms <= 0 || timeout_ms > max {
            return Err(error(
                ResponseError::InvalidTransactionTimeout,
                format!("transaction timeout {timeout_ms} ms is not in 1..={max} (transaction.max.timeout.ms)"),
            ));
        }
        self.check_coordinator(host, transactional_id).await?;
        let _g = self.lock_for(transactional_id).lock().await;
        let now = now_ms();
        let current = self.txns().get(transactional_id).cloned();
        let outcome = match current {
            None => {
                if expected.0 != NO_PRODUCER_ID {
                    return Err(error(
                        ResponseError::InvalidProducerIdMapping,
                        format!("{transactional_id} has no producer {}", expected.0),
                    ));
                }
                let id = host.new_producer_id().await.map_err(|e| error(e.code, e.message))?;
                InitOutcome::Ready(TxnMetadata::new(transactional_id, id, timeout_ms, now))
            }
            Some(m) => {
                let fresh = if m.producer_epoch >= MAX_EPOCH {
                    Some(host.new_producer_id().await.map_err(|e| error(e.code, e.message))?)
                } else {
                    None
                };
                m.init_producer_id(timeout_ms, expected, || fresh.unwrap_or(m.producer_id), now)?
            }
        };
        match outcome {
            InitOutcome::Ready(next) => {
                let answer = (next.producer_id, next.producer_epoch);
                self.persist(host, next).await?;
                Ok(answer)
            }
            InitOutcome::FenceThenAbort(fenced) => {
                // The old producer's open transaction is aborted with the bumped
                // epoch; the new producer retries once its markers are written.
                self.persist(host, fenced.clone()).await?;
                if let Some(abort) = fenced.abort_by_coordinator(now_ms()) {
                    self.persist(host, abort).await?;
                    self.spawn_completion(host, transactional_id);
                }
                Err(error(
                    ResponseError::ConcurrentTransactions,
                    format!("aborting the open transaction of {transactional_id}'s previous producer"),
                ))
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn's offsets partition), by a
    /// client of `client_version`: `TV_2` when a leader adds the partition a
    /// `Produce` v12 or `TxnOffsetCommit` v5 writes to.
    pub async fn add_partitions(
        &self,
        host: &Arc<impl TxnHost>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        client_version: i16,
    ) -> Result<(), TxnError> {
        self.check_coordinator(host, transactional_id).await?;
        let _g = self.lock_for(transactional_id).lock().await;
        let m = self.current(transactional_id)?;
        if let Some(next) = m.add_partitions_as(producer_id, epoch, partitions, client_version, now_ms())? {
            self.persist(host, next).await?;
        }
        Ok(())
    }

    /// KIP-890 part 1: whether the transaction of this producer includes the
    /// partition (a partition leader asks before the first transactional batch).
    pub async fn verify_partition(
        &self,
        host: &Arc<impl TxnHost>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TopicPartition,
    ) -> Result<(), TxnError> {
        self.check_coordinator(host, transactional_id).await?;
        let m = self.current(transactional_id)?;
        if m.producer_id != producer_id || m.producer_epoch != epoch {
            return Err(error(
                ResponseError::InvalidProducerEpoch,
                "the producer is not the current one",
            ));
        }
        if m.state != TxnState::Ongoing || !m.partitions.contains(partition) {
            return Err(error(
                ResponseError::InvalidTxnState,
                "the partition is not in the producer's open transaction",
            ));
        }
        Ok(())
    }

    fn current(&self, transactional_id: &str) -> Result<TxnMetadata, TxnError> {
        self.txns().get(transactional_id).cloned().ok_or_else(|| {
            error(
                ResponseError::InvalidProducerIdMapping,
                format!("{transactional_id} has no producer: call InitProducerId first"),
            )
        })
    }

    /// EndTxn: prepares the commit or abort, answers, and completes it in
    /// the background. `v2`: EndTxn v5 (transaction version 2), which bumps
    /// the epoch. The answer is the producer id and epoch to go on with.
    pub async fn end(
        &self,
        host: &Arc<impl TxnHost>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        v2: bool,
    ) -> Result<(i64, i16), TxnError> {
        self.check_coordinator(host, transactional_id).await?;
        let g = self.lock_for(transactional_id).lock().await;
        let m = self.current(transactional_id)?;
        let next = if v2 {
            let fresh = if m.producer_epoch >= MAX_EPOCH && m.next_producer_id == NO_PRODUCER_ID {
                Some(host.new_producer_id().await.map_err(|e| error(e.code, e.message))?)
            } else {
                None
            };
            m.end_v2(producer_id, epoch, commit, || fresh.unwrap_or(m.producer_id), now_ms())?
        } else {
            m.end(producer_id, epoch, commit, now_ms())?
        };
        let Some(next) = next else {
            return Ok(m.producer());
        };
        let answer = next.producer();
        self.persist(host, next).await?;
        drop(g);
        self.spawn_completion(host, transactional_id);
        Ok(answer)
    }

    fn spawn_completion(&self, host: &Arc<impl TxnHost>, transactional_id: &str) {
        let (host, id) = (Arc::clone(host), transactional_id.to_string());
        tokio::spawn(async move {
            let c = host.txn_coordinator();
            c.finish_fence(&host, &id).await;
            c.complete(&host, &id).await
        });
    }

    /// A fence left by a crash between its two writes (PrepareEpochFence)
    /// moves on to PrepareAbort, as the fencing InitProducerId would have.
    async fn finish_fence(&self, host: &Arc<impl TxnHost>, transactional_id: &str) {
        let _g = self.lock_for(transactional_id).lock().await;
        let Ok(m) = self.current(transactional_id) else { return };
        if m.state == TxnState::PrepareEpochFence {
            if let Some(abort) = m.abort_by_coordinator(now_ms()) {
                if let Err(e) = self.persist(host, abort).await {
                    tracing::warn!(transactional_id, "cannot abort a fenced transaction: {}", e.message);
                }
            }
        }
    }

    /// Writes the markers of a prepared transaction until every partition has
    /// one, then persists Complete*. Stops if this broker stops coordinating it.
    async fn complete(&self, host: &Arc<impl TxnHost>, transactional_id: &str) {
        let Ok(m) = self.current(transactional_id) else { return };
        let commit = match m.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return,
        };
        let index = self.partition_for(transactional_id);
        let Some(coordinator_epoch) = self
            .epochs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
            .copied()
        else {
            return;
        };
        let marker = Marker {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit,
            coordinator_epoch,
        };
        let mut left: Vec<TopicPartition> = m.partitions.iter().cloned().collect();
        let mut backoff = Duration::from_millis(20);
        // This completion's share of the markers waiting for a leader.
        let waiting = WaitingMarkers::new(&self.unknown_destination);
        while !left.is_empty() {
            let failed = host.write_markers(marker, left).await;
            left = failed.iter().map(|(tp, _)| tp.clone()).collect();
            waiting.set(
                failed
                    .iter()
                    .filter(|(_, e)| *e == ResponseError::LeaderNotAvailable)
                    .count() as i64,
            );
            if left.is_empty() {
                break;
            }
            if crate::coordinator::check_coordinator(host.as_ref(), TRANSACTION_STATE_TOPIC, index).is_err() {
                // Whoever leads the partition now finishes the transaction.
                return;
            }
            tracing::debug!(transactional_id, failed = ?failed, "retrying transaction markers");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        let _g = self.lock_for(transactional_id).lock().await;
        let Ok(now) = self.current(transactional_id) else {
            return;
        };
        if now != m {
            return;
        }
        if let Some(done) = m.complete(now_ms()) {
            if let Err(e) = self.persist(host, done).await {
                tracing::warn!(transactional_id, "cannot complete the transaction: {}", e.message);
                // Retried by the timer while this broker still coordinates it.
                self.to_complete
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(transactional_id.to_string());
            }
        }
    }

    /// `skeinctl txn abort`, and the reaper: aborts an open transaction with a bumped epoch.
    pub async fn abort_by_coordinator(
        &self,
        host: &Arc<impl TxnHost>,
        transactional_id: &str,
    ) -> Result<bool, TxnError> {
        self.check_coordinator(host, transactional_id).await?;
        let g = self.lock_for(transactional_id).lock().await;
        let m = self.current(transactional_id)?;
        let Some(next) = m.abort_by_coordinator(now_ms()) else {
            return Ok(false);
        };
        self.persist(host, next).await?;
        drop(g);
        self.spawn_completion(host, transactional_id);
        Ok(true)
    }

    /// A snapshot of the transactions coordinated here.
    pub fn list(&self) -> Vec<TxnListing> {
        let mut all: Vec<_> = self.txns().values().cloned().collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Kafka's TransactionMarkerChannelManager queues: markers waiting for a
    /// partition without a leader, and completions waiting for a retry.
    pub fn marker_queues(&self) -> (i64, i64) {
        let retries = self.to_complete.lock().unwrap_or_else(|e| e.into_inner()).len();
        (
            self.unknown_destination
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(0),
            retries as i64,
        )
    }

    /// The longest `__transaction_state` partition load so far, in ms.
    pub fn load_time_max_ms(&self) -> u64 {
        self.load_time_max_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn describe(&self, transactional_id: &str) -> Option<TxnListing> {
        self.txns().get(transactional_id).cloned()
    }

    /// Aborts transactions past their timeout and expires idle ids; completes
    /// those a load found prepared. Runs until the runtime stops.
    pub fn spawn_timer(host: &Arc<impl TxnHost>) {
        let host = Arc::clone(host);
        tokio::spawn(async move {
            let abort_every = Duration::from_millis(host.config().transaction_abort_interval_ms().max(10) as u64);
            let expire_every = host.config().transaction_remove_interval_ms().max(10);
            let mut last_expiry = now_ms();
            loop {
                let c = host.txn_coordinator();
                tokio::select! {
                    _ = tokio::time::sleep(abort_every) => {}
                    _ = c.wake.notified() => {}
                }
                let pending = std::mem::take(&mut *c.to_complete.lock().unwrap_or_else(|e| e.into_inner()));
                for id in pending {
                    c.spawn_completion(&host, &id);
                }
                let now = now_ms();
                let timed_out: Vec<String> = c
                    .txns()
                    .values()
                    .filter(|m| m.timed_out(now))
                    .map(|m| m.transactional_id.clone())
                    .collect();
                for id in timed_out {
                    match c.abort_by_coordinator(&host, &id).await {
                        Ok(true) => tracing::info!(transactional_id = %id, "aborted a transaction past its timeout"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::debug!(transactional_id = %id, "cannot abort a timed-out transaction: {}", e.message)
                        }
                    }
                }
                if now - last_expiry >= expire_every {
                    last_expiry = now;
                    c.expire(&host, now).await;
                }
            }
        });
    }

    /// Removes ids idle past `transactional.id.expiration.ms` (a tombstone each).
    async fn expire(&self, host: &Arc<impl TxnHost>, now: i64) {
        let after = host.config().transactional_id_expiration_ms();
        let idle: Vec<String> = self
            .txns()
            .values()
            .filter(|m| m.expire(after, now).is_some())
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in idle {
            let _g = self.lock_for(&id).lock().await;
            let Ok(m) = self.current(&id) else { continue };
            if let Some(dead) = m.expire(after, now_ms()) {
                if self.persist(host, dead).await.is_ok() {
                    tracing::info!(transactional_id = %id, "expired an idle transactional id");
                }
            }
        }
    }

    /// Replays one `__transaction_state` partition (blocking); returns the ids loaded.
    fn load_partition(&self, p: &dyn InternalLog) -> std::io::Result<usize> {
        let mut loaded: HashMap<String, TxnMetadata> = HashMap::new();
        crate::coordinator::replay(p, |_, r| {
            let Some(id) = r.key.as_deref().and_then(txn_log::decode_key) else {
                return;
            };
            match r.value.as_deref().and_then(|v| txn_log::decode_value(&id, v)) {
                Some(m) => {
                    loaded.insert(id, m);
                }
                None => {
                    loaded.remove(&id);
                }
            }
        })?;
        let n = loaded.len();
        let unfinished: Vec<String> = loaded
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
                )
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        {
            let mut txns = self.txns();
            txns.retain(|id, _| self.partition_for(id) != p.index());
            txns.extend(loaded);
        }
        self.epochs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.index(), p.leader_epoch());
        if !unfinished.is_empty() {
            self.to_complete
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(unfinished);
            self.wake.notify_one();
        }
        Ok(n)
    }
}

/// One completion's count in the unknown-destination gauge, taken back when it ends.
struct WaitingMarkers<'a> {
    total: &'a std::sync::atomic::AtomicI64,
    mine: std::sync::atomic::AtomicI64,
}

impl<'a> WaitingMarkers<'a> {
    fn new(total: &'a std::sync::atomic::AtomicI64) -> Self {
        WaitingMarkers {
            total,
            mine: std::sync::atomic::AtomicI64::new(0),
        }
    }

    fn set(&self, n: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let before = self.mine.swap(n, Relaxed);
        self.total.fetch_add(n - before, Relaxed);
    }
}

impl Drop for WaitingMarkers<'_> {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// Registered brokers, as a replication-factor bound.
fn host_brokers(host: &Arc<impl CoordinatorHost>) -> i16 {
    host.live_brokers().clamp(1, i16::MAX as usize) as i16
}

impl crate::coordinator::Coordinator for TransactionCoordinator {
    fn topic(&self) -> &'static str {
        TRANSACTION_STATE_TOPIC
    }

    fn became_leader(&self, p: &dyn InternalLog) {
        let started = std::time::Instant::now();
        let loaded = tokio::task::block_in_place(|| self.load_partition(p));
        let elapsed_ms = started.elapsed().as_millis() as u64;
        self.load_time_max_ms
            .fetch_max(elapsed_ms, std::sync::atomic::Ordering::Relaxed);
        match loaded {
            Ok(n) => tracing::info!(
                partition = p.index(),
                transactional_ids = n,
                elapsed_ms,
                "loaded transactions from {TRANSACTION_STATE_TOPIC}"
            ),
            Err(e) => tracing::error!(partition = p.index(), "cannot load {TRANSACTION_STATE_TOPIC}: {e}"),
        }
    }

    fn lost_leadership(&self, index: i32) {
        self.txns().retain(|id, _| self.partition_for(id) != index);
        self.epochs.lock().unwrap_or_else(|e| e.into_inner()).remove(&index);
    }
}
