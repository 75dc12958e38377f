//! The broker's background duties: registration and heartbeats to the
//! controller, ISR shrinking, checkpoints, retention and compaction, and the
//! controlled shutdown.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::controller::image::{Command, Endpoint, Reply};
use crate::controller::{Heartbeat, HeartbeatReply};
use crate::log::checkpoint;

/// The longest a controlled shutdown waits for the controller to move leadership
/// away (a pod's termination grace period must cover it plus the final flush).
pub const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Broker {
    pub(super) async fn register(&self) -> io::Result<i64> {
        let l = self.config.advertised_listener();
        loop {
            let cmd = Command::RegisterBroker {
                id: self.node_id,
                host: l.host.clone(),
                port: l.port,
                rack: self.config.get("broker.rack").filter(|r| !r.is_empty()),
                endpoints: self
                    .config
                    .advertised_listeners()
                    .into_iter()
                    .map(|a| Endpoint {
                        listener: a.name,
                        host: a.host,
                        port: a.port,
                    })
                    .collect(),
            };
            match self.controller.propose(cmd).await {
                Ok(Reply::BrokerEpoch(epoch)) => {
                    self.broker_epoch.store(epoch, Ordering::SeqCst);
                    let me = self.node_id;
                    self.controller
                        .wait_for(Duration::from_secs(30), |img| {
                            img.brokers.get(&me).is_some_and(|b| b.epoch >= epoch)
                        })
                        .await;
                    return Ok(epoch);
                }
                Ok(other) => return Err(io::Error::other(format!("registration refused: {other:?}"))),
                Err(e) => tracing::warn!("registration with the metadata quorum failed, retrying: {e}"),
            }
        }
    }

    pub(super) async fn heartbeat_loop(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.broker_heartbeat_interval_ms());
        // Failures are logged when they start, every 10 s while they last, and when they end.
        let mut failing_since: Option<std::time::Instant> = None;
        let mut last_warned = std::time::Instant::now();
        loop {
            let hb = Heartbeat {
                id: self.node_id,
                epoch: self.broker_epoch.load(Ordering::SeqCst),
                applied: *self.controller.subscribe().borrow(),
            };
            let failure = match self.controller.heartbeat(hb).await {
                Ok(HeartbeatReply::StaleEpoch) => {
                    tracing::warn!("the controller no longer knows this broker's epoch: registering again");
                    if let Err(e) = self.register().await {
                        tracing::warn!("re-registration failed: {e}");
                    }
                    continue;
                }
                Ok(HeartbeatReply::Ok { fenced }) => {
                    self.heartbeat_answered(fenced);
                    None
                }
                Ok(HeartbeatReply::NotController) => Some("the broker asked is not the active controller".to_string()),
                Err(e) => Some(e),
            };
            match (failure, failing_since) {
                (None, Some(since)) => {
                    tracing::info!(
                        failed_for_ms = since.elapsed().as_millis() as u64,
                        "heartbeats reach the active controller again"
                    );
                    failing_since = None;
                }
                (None, None) => {}
                (Some(e), None) => {
                    tracing::warn!("heartbeat to the active controller failed: {e}");
                    failing_since = Some(std::time::Instant::now());
                    last_warned = std::time::Instant::now();
                }
                (Some(e), Some(since)) if last_warned.elapsed() >= Duration::from_secs(10) => {
                    tracing::warn!(
                        failing_for_ms = since.elapsed().as_millis() as u64,
                        "heartbeats to the active controller still fail (it fences brokers it does not hear from): {e}"
                    );
                    last_warned = std::time::Instant::now();
                }
                (Some(_), Some(_)) => {}
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Leader side: drops followers that lag past `replica.lag.time.max.ms` from the ISR.
    pub(super) async fn isr_shrink_loop(self: Arc<Self>) {
        let lag = self.config.replica_lag_time_max_ms();
        let every = Duration::from_millis((lag as u64 / 2).clamp(10, 5_000));
        loop {
            tokio::time::sleep(every).await;
            for t in self.topics() {
                for p in t.all_partitions() {
                    if !p.is_leader(self.node_id) {
                        continue;
                    }
                    if let Some(isr) = p.shrink_candidate(lag) {
                        tracing::info!(topic = %p.topic, partition = p.index, ?isr, "shrinking the ISR");
                        self.propose_isr(&p, isr).await;
                    }
                }
            }
        }
    }

    /// Leader: asks the controller to set a partition's ISR.
    pub async fn propose_isr(self: &Arc<Self>, p: &Arc<Partition>, isr: Vec<i32>) {
        let st = p.replica_state();
        let shrink = isr.len() < st.isr.len();
        let cmd = Command::AlterPartition {
            topic: p.topic.clone(),
            partition: p.index,
            leader: self.node_id,
            leader_epoch: st.leader_epoch,
            partition_epoch: st.partition_epoch,
            isr,
        };
        let accepted = match self.controller.propose(cmd).await.and_then(refused) {
            Ok(_) => {
                if shrink {
                    self.metrics.isr_shrinks.inc();
                } else {
                    self.metrics.isr_expands.inc();
                }
                // Apply at once so that the next change starts from the new partition epoch.
                self.reconcile().await;
                true
            }
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, "ISR change refused, backing off: {e}");
                false
            }
        };
        p.isr_change_done(accepted);
    }

    /// Writes the recovery-point, log-start and high-watermark checkpoints.
    pub fn write_checkpoints(&self) -> io::Result<()> {
        let mut c = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        for t in self.topics() {
            for p in t.all_partitions() {
                if p.is_deleted() {
                    continue;
                }
                let (r, s) = p.checkpoint_offsets();
                let key = (t.name.clone(), p.index);
                c.recovery.insert(key.clone(), r);
                c.log_start.insert(key.clone(), s);
                c.high_watermark.insert(key, p.high_watermark());
            }
        }
        let hosted: std::collections::HashSet<(String, i32)> = self
            .topics()
            .iter()
            .flat_map(|t| t.all_partitions().into_iter().map(|p| (t.name.clone(), p.index)))
            .collect();
        c.recovery.retain(|k, _| hosted.contains(k));
        c.log_start.retain(|k, _| hosted.contains(k));
        c.high_watermark.retain(|k, _| hosted.contains(k));
        checkpoint::write(&self.log_dir.join(RECOVERY_CHECKPOINT), &c.recovery)?;
        checkpoint::write(&self.log_dir.join(LOG_START_CHECKPOINT), &c.log_start)?;
        checkpoint::write(&self.log_dir.join(HIGH_WATERMARK_CHECKPOINT), &c.high_watermark)
    }

    /// Runs retention and time-based flushes on every partition.
    pub fn run_housekeeping(&self, now: i64) {
        for t in self.topics() {
            for p in t.all_partitions() {
                p.housekeeping(now, self.config.producer_id_expiration_ms());
            }
        }
    }

    /// Compacts every partition that needs it (blocking).
    pub fn run_cleaner(&self, now: i64) {
        for t in self.topics() {
            for p in t.all_partitions() {
                match p.compact(now) {
                    Ok(Some(s)) => tracing::info!(
                        topic = %t.name,
                        partition = p.index,
                        records_read = s.records_read,
                        records_kept = s.records_kept,
                        bytes_before = s.bytes_before,
                        bytes_after = s.bytes_after,
                        "compacted"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(topic = %t.name, partition = p.index, "compaction failed: {e}"),
                }
            }
        }
    }

    /// SIGTERM in a cluster: ask the controller to move leadership away, so
    /// clients fail over before this broker stops rather than after it is fenced.
    /// Waits at most [`CONTROLLED_SHUTDOWN_TIMEOUT`], then stops anyway.
    pub async fn controlled_shutdown(self: &Arc<Self>) {
        if !self.config.controlled_shutdown_enable() {
            return;
        }
        let me = self.node_id;
        // Nothing to hand over: no other live broker, or no replica here.
        let (others, holds_replicas) = self.controller.with_image(|img| {
            (
                img.live_brokers().iter().any(|&b| b != me),
                img.topics
                    .values()
                    .flat_map(|t| &t.partitions)
                    .any(|p| p.replicas.contains(&me)),
            )
        });
        if !others || !holds_replicas {
            return;
        }
        let cmd = Command::ControlledShutdown {
            id: me,
            epoch: self.broker_epoch.load(Ordering::SeqCst),
        };
        let done = tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT, self.controller.propose(cmd)).await;
        match done {
            Ok(Ok(_)) => {
                self.reconcile().await;
                tracing::info!("controlled shutdown: leadership moved to other brokers");
            }
            _ => tracing::warn!("controlled shutdown not acknowledged; stopping anyway"),
        }
    }

    /// Orderly shutdown: flush every log, snapshot producer state, write checkpoints
    /// and the clean-shutdown marker so the next start skips recovery.
    pub fn shutdown(&self) -> io::Result<()> {
        self.fetchers.stop_all();
        let mut closed = Vec::new();
        for t in self.topics() {
            for p in t.all_partitions() {
                if let Some(end) = p.close_unsynced()? {
                    closed.push((p, end));
                }
            }
        }
        // One sync of the file system makes every log, index and snapshot durable:
        // a few fsyncs per partition took minutes with tens of thousands of them.
        crate::atomic_file::sync_file_system(&self.log_dir)?;
        for (p, end) in closed {
            p.mark_durable(end);
        }
        self.write_checkpoints()?;
        crate::atomic_file::replace(&self.log_dir.join(CLEAN_SHUTDOWN), b"")?;
        tracing::info!("clean shutdown complete");
        Ok(())
    }

    /// Background tasks: retention and flush checks, periodic checkpoints.
    pub fn spawn_background(self: &Arc<Self>) {
        let broker = Arc::clone(self);
        let retention_every = Duration::from_millis(self.config.retention_check_interval_ms().max(1));
        let flush_every = Duration::from_millis(self.config.flush_scheduler_interval_ms().clamp(1, 60_000));
        if self.config.cleaner_enabled() {
            let broker = Arc::clone(self);
            let backoff = Duration::from_millis(self.config.cleaner_backoff_ms().max(10));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(backoff).await;
                    let b = Arc::clone(&broker);
                    let _ = blocking(move || {
                        b.run_cleaner(now_ms());
                        Ok(())
                    })
                    .await;
                }
            });
        }
        tokio::spawn(async move {
            let tick = retention_every.min(flush_every).min(Duration::from_secs(60));
            let mut last_retention = std::time::Instant::now();
            let mut last_checkpoint = std::time::Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                let b = Arc::clone(&broker);
                let run_retention = last_retention.elapsed() >= retention_every;
                let run_checkpoint = last_checkpoint.elapsed() >= Duration::from_secs(60);
                let _ = blocking(move || -> io::Result<()> {
                    let now = now_ms();
                    for t in b.topics() {
                        for p in t.all_partitions() {
                            p.flush_if_due(now);
                        }
                    }
                    if run_retention {
                        b.run_housekeeping(now);
                    }
                    if run_checkpoint {
                        b.write_checkpoints()?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| tracing::warn!("background task failed: {e}"));
                if run_retention {
                    last_retention = std::time::Instant::now();
                }
                if run_checkpoint {
                    last_checkpoint = std::time::Instant::now();
                }
            }
        });
    }
}
