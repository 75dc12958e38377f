//! The leader's side of replication: what a follower's Fetch (replica id set)
//! tells the leader, and the throttle on replicas a reassignment is adding.
//! The Fetch handler calls these; it keeps no replication state of its own.

use std::sync::{Arc, Mutex};

use super::host::{Replica, ReplicaHost};
use super::throttle::Throttle;
use crate::clock::now_ms;

/// Records how far `replica` has replicated `p` (its fetch offset and log
/// start), once per Fetch and before any waiting. When that brings the replica
/// back into the ISR, the expansion is proposed to the controller in the
/// background, unless the replica may not join (it is fenced or in controlled
/// shutdown, and the controller would refuse it: KIP-841).
pub fn record_follower_fetch<H: ReplicaHost>(
    host: &Arc<H>,
    p: Arc<H::Replica>,
    replica: i32,
    fetch_offset: i64,
    log_start_offset: i64,
) {
    let lag_max_ms = host.config().replica_lag_time_max_ms();
    let Some(isr) = p.record_follower_fetch(replica, fetch_offset, log_start_offset, lag_max_ms) else {
        return;
    };
    if !host.may_join_isr(replica) {
        // Fenced or shutting down: the controller would refuse it. Not a
        // refusal to back off from: the check is local and the replica joins
        // on its first fetch after it is unfenced.
        p.isr_change_done(true);
        return;
    }
    tracing::info!(topic = %p.topic(), partition = p.index(), ?isr, "expanding the ISR");
    let h = Arc::clone(host);
    tokio::spawn(async move { h.propose_isr(&p, isr).await });
}

/// `leader.replication.throttled.rate` on the reads of one follower's fetch:
/// only replicas a reassignment is adding are throttled.
pub struct LeaderThrottle<'a> {
    bucket: &'a Mutex<Throttle>,
    rate: u64,
}

impl<'a> LeaderThrottle<'a> {
    /// The throttle for `replica` reading `p`, or None when it is not throttled.
    pub fn for_replica<H: ReplicaHost>(host: &'a H, p: &H::Replica, replica: i32) -> Option<LeaderThrottle<'a>> {
        (replica >= 0 && p.is_adding(replica)).then(|| LeaderThrottle {
            bucket: host.leader_throttle(),
            rate: host.dynamic_u64("leader.replication.throttled.rate"),
        })
    }

    /// Reserves up to `want` bytes for one read, or None when the bucket is
    /// empty (concurrent followers' reads then share it instead of each
    /// overdrawing it); `refund` returns the reservation after `charge`.
    pub fn reserve(&self, want: u64) -> Option<u64> {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(self.rate, now_ms(), want)
    }

    pub fn refund(&self, reserved: u64) {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner()).refund(reserved);
    }

    /// Charges the bytes a read returned.
    pub fn charge(&self, bytes: usize) {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner()).charge(bytes);
    }
}
