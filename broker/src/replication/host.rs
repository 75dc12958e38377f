//! What replication needs of the broker and of a partition, as narrow traits:
//! `cluster::Broker` implements [`ReplicaHost`] and `cluster::Partition`
//! implements [`Replica`]. Replication never names either type, so the arrow
//! points one way: cluster → replication.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::throttle::Throttle;
use crate::config::BrokerConfig;
use crate::log::{AppendError, ReadError};

/// The broker, as its replica fetchers and the leader's bookkeeping see it.
pub trait ReplicaHost: Send + Sync + 'static {
    type Replica: Replica;
    fn node_id(&self) -> i32;
    fn config(&self) -> &BrokerConfig;
    /// `host:port` of a broker's client listener, from the metadata image.
    fn broker_address(&self, id: i32) -> Option<String>;
    /// How to connect to a peer's inter-broker listener (TLS, SASL).
    fn client_security(&self) -> skein_client::ClientSecurity;
    /// A dynamic broker config as a number (the throttle rates).
    fn dynamic_u64(&self, key: &str) -> u64;
    fn leader_throttle(&self) -> &Mutex<Throttle>;
    fn follower_throttle(&self) -> &Mutex<Throttle>;
    /// The broker's metrics (throttled replication bytes).
    fn metrics(&self) -> &crate::metrics::Metrics;
    /// Whether `replica` may join an ISR: live and not shutting down (KIP-841).
    fn may_join_isr(&self, replica: i32) -> bool;
    /// Proposes a new ISR for `p` to the controller.
    fn propose_isr(self: &Arc<Self>, p: &Arc<Self::Replica>, isr: Vec<i32>) -> impl Future<Output = ()> + Send;
    /// Wakes the waiters on appended data (long-polling fetches).
    fn notify_append(&self);
}

/// One partition's replica, as replication sees it.
pub trait Replica: Send + Sync + 'static {
    fn topic(&self) -> &str;
    fn index(&self) -> i32;
    /// Whether a reassignment is adding `replica` to this partition.
    fn is_adding(&self, replica: i32) -> bool;
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    fn high_watermark(&self) -> i64;
    /// The latest leader epoch in the log and its start offset.
    fn latest_epoch(&self) -> Option<(i32, i64)>;
    /// (epoch, end offset) of `epoch` in this log, as OffsetForLeaderEpoch answers.
    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64);
    /// Leader: records a follower's fetch; Some(new ISR) when it rejoins
    /// (caught up within `lag_max_ms`).
    fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        lag_max_ms: i64,
    ) -> Option<Vec<i32>>;
    /// Leader: the ISR change in flight is over: committed (`accepted`), or
    /// refused or abandoned (the next one then backs off).
    fn isr_change_done(&self, accepted: bool);
    /// Follower: appends batches fetched from the leader; returns the new log end.
    fn append_replicated(&self, records: Bytes) -> impl Future<Output = Result<i64, AppendError>> + Send;
    /// Follower: takes the leader's high watermark.
    fn follower_high_watermark(&self, leader_hw: i64);
    /// Follower: moves the log start offset up to the leader's.
    fn follow_log_start_offset(&self, leader_start: i64) -> impl Future<Output = Result<i64, ReadError>> + Send;
    /// Follower: drops the log from `offset` on; returns the new log end.
    fn truncate_to(&self, offset: i64) -> impl Future<Output = io::Result<i64>> + Send;
    /// Follower: empties the log and restarts it at `offset` (the leader's start is past our end).
    fn reset_to(&self, offset: i64) -> impl Future<Output = io::Result<()>> + Send;
}
