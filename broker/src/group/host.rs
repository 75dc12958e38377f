//! What the group coordinator needs of the broker it runs in, as two narrow
//! traits: `cluster::Broker` implements [`GroupHost`] and `cluster::Partition`
//! implements [`OffsetsLog`]. The coordinator never names either type, so the
//! arrow points one way: cluster → group.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::consumer::TopicsView;
use super::GroupCoordinator;
use crate::config::BrokerConfig;
use crate::error::AdminError;

/// The broker as the coordinator sees it.
pub trait GroupHost: Send + Sync + 'static {
    fn node_id(&self) -> i32;
    /// The broker's properties (offsets retention, consumer-group defaults and bounds).
    fn config(&self) -> &BrokerConfig;
    /// This broker's coordinator.
    fn coordinator(&self) -> &GroupCoordinator;
    /// The leader of `__consumer_offsets` partition `index` in the metadata
    /// image (-1 for none); None while the topic does not exist.
    fn offsets_leader(&self, index: i32) -> Option<i32>;
    /// Whether this broker has taken up its leadership of that partition.
    fn leads_offsets_partition(&self, index: i32) -> bool;
    /// Every topic's id and partition count, for the KIP-848 assignors.
    fn topics_view(&self) -> TopicsView;
    /// Whether the partition exists in the cluster (hosted here or not).
    fn has_partition(&self, topic: &str, partition: i32) -> bool;
    /// A group's own configs (resource type GROUP).
    fn group_configs(&self, group: &str) -> BTreeMap<String, String>;
    /// Creates `__consumer_offsets` (compacted, `partitions` partitions) unless it
    /// exists, and waits until this broker has applied it.
    fn ensure_offsets_topic(self: &Arc<Self>, partitions: i32) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Appends `batch` to `__consumer_offsets` partition `index`, led here, and
    /// waits until every in-sync replica has it (acks=all).
    fn append_offsets(
        self: &Arc<Self>,
        index: i32,
        batch: Bytes,
    ) -> impl Future<Output = Result<(), ResponseError>> + Send;
}

/// A `__consumer_offsets` partition, read when this broker takes up its leadership.
pub trait OffsetsLog {
    fn index(&self) -> i32;
    fn log_start_offset(&self) -> i64;
    /// Up to `max_bytes` of whole batches from `offset` (blocking; empty at the end).
    fn read_from(&self, offset: i64, max_bytes: usize) -> std::io::Result<Vec<u8>>;
}
