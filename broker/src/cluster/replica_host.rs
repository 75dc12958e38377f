//! The broker as replication sees it (replication::ReplicaHost), and a
//! partition as a replica (replication::Replica).

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{Broker, Partition};
use crate::config::BrokerConfig;
use crate::log::{AppendError, ReadError};
use crate::replication::throttle::Throttle;
use crate::replication::{Replica, ReplicaHost};

impl ReplicaHost for Broker {
    type Replica = Partition;

    fn node_id(&self) -> i32 {
        self.node_id
    }

    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn broker_address(&self, id: i32) -> Option<String> {
        self.controller
            .with_image(|img| img.brokers.get(&id).map(|r| format!("{}:{}", r.host, r.port)))
    }

    fn client_security(&self) -> skein_client::ClientSecurity {
        self.inter_broker_security()
    }

    fn dynamic_u64(&self, key: &str) -> u64 {
        Broker::dynamic_u64(self, key)
    }

    fn leader_throttle(&self) -> &Mutex<Throttle> {
        &self.leader_throttle
    }

    fn follower_throttle(&self) -> &Mutex<Throttle> {
        &self.follower_throttle
    }
    fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    fn may_join_isr(&self, replica: i32) -> bool {
        self.controller.with_image(|img| img.can_lead(replica))
    }

    async fn propose_isr(self: &Arc<Self>, p: &Arc<Partition>, isr: Vec<i32>) {
        Broker::propose_isr(self, p, isr).await
    }

    fn notify_append(&self) {
        Broker::notify_append(self)
    }
}

impl Replica for Partition {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn is_adding(&self, replica: i32) -> bool {
        Partition::is_adding(self, replica)
    }

    fn log_start_offset(&self) -> i64 {
        Partition::log_start_offset(self)
    }

    fn log_end_offset(&self) -> i64 {
        Partition::log_end_offset(self)
    }

    fn high_watermark(&self) -> i64 {
        Partition::high_watermark(self)
    }

    fn latest_epoch(&self) -> Option<(i32, i64)> {
        Partition::latest_epoch(self)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        Partition::end_offset_for_epoch(self, epoch)
    }

    fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        lag_max_ms: i64,
    ) -> Option<Vec<i32>> {
        Partition::record_follower_fetch(self, replica, fetch_offset, log_start_offset, lag_max_ms)
    }

    fn isr_change_done(&self, accepted: bool) {
        Partition::isr_change_done(self, accepted)
    }

    async fn append_replicated(&self, records: Bytes) -> Result<i64, AppendError> {
        Partition::append_replicated(self, records).await
    }

    fn follower_high_watermark(&self, leader_hw: i64) {
        Partition::follower_high_watermark(self, leader_hw)
    }

    async fn follow_log_start_offset(&self, leader_start: i64) -> Result<i64, ReadError> {
        Partition::follow_log_start_offset(self, leader_start).await
    }

    async fn truncate_to(&self, offset: i64) -> io::Result<i64> {
        Partition::truncate_to(self, offset).await
    }

    async fn reset_to(&self, offset: i64) -> io::Result<()> {
        Partition::reset_to(self, offset).await
    }
}
