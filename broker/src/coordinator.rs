//! What a coordinator needs of the broker it runs in, for any coordinator
//! whose state lives in a compacted, replicated internal topic: the group
//! coordinator (`__consumer_offsets`) and the transaction coordinator
//! (`__transaction_state`). A coordinator for a key is the leader of the
//! partition the key hashes to; it loads that partition when the broker takes
//! up its leadership and appends to it with acks=all. `cluster::Broker`
//! implements [`CoordinatorHost`] and `cluster::Partition` implements
//! [`InternalLog`]; coordinators never name either type, so the arrow points
//! one way: cluster → coordinators.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Record;

use crate::config::BrokerConfig;
use crate::error::AdminError;
use crate::log::batch::BatchHeader;
use crate::log::compression::{decode_batch, MAX_INFLATED_BATCH_BYTES};

/// An internal topic a coordinator keeps its state in, as it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: &'static str,
    pub partitions: i32,
    /// Wanted replicas; fewer while fewer brokers are registered.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy=compact` and the like).
    pub configs: BTreeMap<String, String>,
}

/// The broker as a coordinator sees it.
pub trait CoordinatorHost: Send + Sync + 'static {
    fn node_id(&self) -> i32;
    /// The broker's properties.
    fn config(&self) -> &BrokerConfig;
    /// Brokers registered with the quorum (an internal topic's replication factor is at most this).
    fn live_brokers(&self) -> usize;
    /// The leader of partition `index` of internal topic `topic` in the
    /// metadata image (-1 for none); None while the topic does not exist.
    fn internal_leader(&self, topic: &str, index: i32) -> Option<i32>;
    /// Whether this broker has taken up its leadership of that partition.
    fn leads_internal_partition(&self, topic: &str, index: i32) -> bool;
    /// Creates the topic unless it exists, and waits until this broker has applied it.
    fn ensure_internal_topic(
        self: &Arc<Self>,
        t: &InternalTopic,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Appends `batch` to partition `index` of `topic`, led here, and waits
    /// until every in-sync replica has it (acks=all). NOT_COORDINATOR when
    /// this broker does not lead the partition.
    fn append_internal(
        self: &Arc<Self>,
        topic: &'static str,
        index: i32,
        batch: Bytes,
    ) -> impl Future<Output = Result<(), ResponseError>> + Send;
}

/// An internal topic's partition, read when this broker takes up its leadership.
pub trait InternalLog {
    fn index(&self) -> i32;
    /// The leader epoch this broker leads it in (a transaction coordinator's epoch).
    fn leader_epoch(&self) -> i32;
    fn log_start_offset(&self) -> i64;
    /// Up to `max_bytes` of whole batches from `offset` (blocking; empty at the end).
    fn read_from(&self, offset: i64, max_bytes: usize) -> std::io::Result<Vec<u8>>;
}

/// A coordinator, as the broker tells it which of its topic's partitions it leads.
pub trait Coordinator: Send + Sync {
    /// The internal topic its state lives in.
    fn topic(&self) -> &'static str;
    /// This broker now leads partition `p`: load it (blocking).
    fn became_leader(&self, p: &dyn InternalLog);
    /// Another broker leads partition `index` now (or none does): forget its keys here.
    fn lost_leadership(&self, index: i32);
}

/// Whether this broker coordinates the keys of partition `index` of `topic`:
/// it leads it. NOT_COORDINATOR sends the client back to FindCoordinator;
/// before the topic exists every broker may answer.
pub fn check_coordinator(host: &impl CoordinatorHost, topic: &str, index: i32) -> Result<(), ResponseError> {
    match host.internal_leader(topic, index) {
        None => Ok(()),
        Some(l) if l == host.node_id() => {
            if host.leads_internal_partition(topic, index) {
                Ok(())
            } else {
                // Led here by the image but not applied yet: the load is in progress.
                Err(ResponseError::CoordinatorLoadInProgress)
            }
        }
        Some(l) if l >= 0 => Err(ResponseError::NotCoordinator),
        _ => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// Replays a partition from its log start: `each` sees every record with the
/// header of its batch (control batches included). Returns the records seen.
pub fn replay(p: &(impl InternalLog + ?Sized), mut each: impl FnMut(&BatchHeader, Record)) -> std::io::Result<usize> {
    let mut count = 0;
    let mut offset = p.log_start_offset();
    loop {
        let bytes = p.read_from(offset, 8 << 20)?;
        if bytes.is_empty() {
            return Ok(count);
        }
        let mut buf = Bytes::from(bytes);
        while !buf.is_empty() {
            // Advance by the batch header, not by its records: an empty batch
            // must not make the replay read the same offset forever.
            let header = BatchHeader::parse(&buf).map_err(std::io::Error::other)?;
            if header.next_offset() <= offset {
                return Err(std::io::Error::other(format!(
                    "a batch at {} does not advance past offset {offset}",
                    header.base_offset
                )));
            }
            offset = header.next_offset();
            let set =
                decode_batch(&mut buf, MAX_INFLATED_BATCH_BYTES).map_err(|e| std::io::Error::other(e.to_string()))?;
            for r in set.records {
                count += 1;
                each(&header, r);
            }
        }
    }
}
