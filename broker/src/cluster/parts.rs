//! The parts of a broker a request handler may use, each a narrow view of
//! the `Broker`: the replicas hosted here, the metadata (the quorum's image
//! and the admin operations that propose to it), the group and transaction
//! coordinators, the
//! producer-id allocator. A handler reaches them through its request context
//! and never holds the `Broker` itself, so what a Kafka API can touch is
//! written here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;

use super::{AdminError, Broker, NewTopic, Partition, Topic};
use crate::controller::image::{Command, MetadataImage, Reply};
use crate::controller::QuorumStatus;
use crate::group::{GroupCoordinator, GroupHost};
use crate::replication::ReplicaHost;

/// Partitions hosted here: looking them up, waiting for their appends.
#[derive(Clone, Copy)]
pub struct Replicas<'a>(pub(super) &'a Arc<Broker>);

impl<'a> Replicas<'a> {
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.0.topic(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.0.topic_by_id(id)
    }

    /// Every topic hosted here.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.0.topics()
    }

    /// A partition this broker leads, with a current image, else Kafka's error.
    pub fn leader_partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, ResponseError> {
        self.0.leader_partition(topic, index)
    }

    /// A partition a consumer may read here: led here, or (KIP-392) followed here.
    pub fn readable_partition(
        &self,
        topic: &str,
        index: i32,
        from_followers: bool,
    ) -> Result<Arc<Partition>, ResponseError> {
        self.0.readable_partition(topic, index, from_followers)
    }

    /// KIP-392: the in-sync replica in the consumer's rack to read from instead of here.
    pub fn preferred_read_replica(&self, p: &Partition, client_rack: &str) -> Option<i32> {
        self.0.preferred_read_replica(p, client_rack)
    }

    /// Appends a produced batch to a partition led here, waking fetches waiting on appends.
    pub async fn append(
        &self,
        p: &Partition,
        records: bytes::Bytes,
    ) -> Result<crate::log::AppendInfo, crate::log::AppendError> {
        p.append_verified(self.0, records).await
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.0.subscribe_appends()
    }

    pub fn subscribe_high_watermarks(&self) -> watch::Receiver<u64> {
        self.0.subscribe_high_watermarks()
    }

    /// What the replication code needs of this broker (follower fetches, throttles).
    pub fn host(&self) -> &'a Arc<impl ReplicaHost<Replica = Partition>> {
        self.0
    }
}

/// The metadata quorum as handlers see it: the image, proposals, and the
/// admin operations built on them.
#[derive(Clone, Copy)]
pub struct Metadata<'a>(pub(super) &'a Arc<Broker>);

impl Metadata<'_> {
    pub fn with_image<T>(&self, f: impl FnOnce(&MetadataImage) -> T) -> T {
        self.0.controller.with_image(f)
    }

    pub async fn propose(&self, cmd: Command) -> Result<Reply, AdminError> {
        self.0.controller.propose(cmd).await
    }

    /// How this broker connects to its peers' inter-broker listener.
    pub fn inter_broker_security(&self) -> skein_client::ClientSecurity {
        self.0.inter_broker_security()
    }

    /// Whether this broker's image is fresh enough to act on (see `Broker::metadata_is_current`).
    pub fn is_current(&self) -> bool {
        self.0.metadata_is_current()
    }

    pub fn quorum_status(&self) -> QuorumStatus {
        self.0.controller.quorum_status()
    }

    /// The id Metadata and DescribeCluster give clients as the controller.
    pub fn controller_id_for_clients(&self) -> i32 {
        self.0.controller_id_for_clients()
    }

    /// `host:port` of a registered broker.
    pub fn broker_address(&self, id: i32) -> Option<String> {
        ReplicaHost::broker_address(self.0.as_ref(), id)
    }

    pub fn validate_new_topic(&self, t: &NewTopic) -> Result<(), AdminError> {
        self.0.validate_new_topic(t)
    }

    pub async fn create_topic(&self, t: NewTopic) -> Result<Arc<Topic>, AdminError> {
        self.0.create_topic(t).await
    }

    pub async fn auto_create_topic(&self, name: &str) -> Result<Arc<Topic>, AdminError> {
        self.0.auto_create_topic(name).await
    }

    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        self.0.create_partitions(name, count, assignments, validate_only).await
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        self.0.delete_topic(name).await
    }

    pub async fn unregister_broker(&self, id: i32) -> Result<(), AdminError> {
        self.0.unregister_broker(id).await
    }

    /// AddRaftVoter on the active controller.
    pub async fn add_voter(&self, id: i32, directory_id: uuid::Uuid, timeout: Duration) -> Result<(), AdminError> {
        self.0.controller.add_voter(id, directory_id, timeout).await
    }

    /// RemoveRaftVoter on the active controller.
    pub async fn remove_voter(&self, id: i32, directory_id: uuid::Uuid) -> Result<(), AdminError> {
        self.0.controller.remove_voter(id, directory_id).await
    }

    /// UpdateRaftVoter on the active controller.
    pub async fn update_voter(&self, id: i32, directory_id: uuid::Uuid, address: String) -> Result<(), AdminError> {
        self.0.controller.update_voter(id, directory_id, address).await
    }

    pub async fn set_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        self.0.set_topic_configs(name, overrides, validate_only).await
    }

    pub async fn set_broker_configs(
        &self,
        resource: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        self.0.set_broker_configs(resource, configs, validate_only).await
    }

    /// UpdateFeatures: all applied, or none.
    pub async fn update_features(&self, updates: &[(String, i16, i8)], validate_only: bool) -> Result<(), AdminError> {
        self.0.update_features(updates, validate_only).await
    }

    pub async fn set_group_configs(
        &self,
        group: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        self.0.set_group_configs(group, configs, validate_only).await
    }

    pub fn broker_overrides(&self, resource: &str) -> BTreeMap<String, String> {
        self.0.broker_overrides(resource)
    }

    pub fn group_overrides(&self, group: &str) -> BTreeMap<String, String> {
        self.0.group_overrides(group)
    }
}

/// The consumer-group coordinator, and the broker services it runs on.
#[derive(Clone, Copy)]
pub struct Groups<'a>(pub(super) &'a Arc<Broker>);

impl<'a> Groups<'a> {
    pub fn coordinator(&self) -> &'a GroupCoordinator {
        &self.0.groups
    }

    /// What the coordinator needs of this broker (the offsets topic's partitions).
    pub fn host(&self) -> &'a Arc<impl GroupHost> {
        self.0
    }
}

/// The transaction coordinator, and the broker services it runs on.
#[derive(Clone, Copy)]
pub struct Transactions<'a>(pub(super) &'a Arc<Broker>);

impl<'a> Transactions<'a> {
    pub fn coordinator(&self) -> &'a crate::txn::TransactionCoordinator {
        &self.0.txns
    }

    /// What the coordinator needs of this broker (`__transaction_state`, producer ids, markers).
    pub fn host(&self) -> &'a Arc<impl crate::txn::TxnHost> {
        self.0
    }

    /// KIP-890: whether the partition is in the producer's open transaction
    /// (part 1), or with `add` (part 2, a client of transaction version 2)
    /// that it is now, asked of its coordinator.
    pub async fn verify(
        &self,
        transactional_id: &str,
        producer: (i64, i16),
        tp: (String, i32),
        add: bool,
    ) -> Result<(), ResponseError> {
        self.0.verify_txn_partition(transactional_id, producer, tp, add).await
    }

    /// WriteTxnMarkers: a marker for a partition led here.
    pub async fn write_marker(&self, topic: &str, index: i32, marker: crate::txn::Marker) -> Result<(), ResponseError> {
        self.0.write_marker_here(topic, index, marker).await
    }
}

/// Producer ids, in blocks from the metadata quorum.
#[derive(Clone, Copy)]
pub struct ProducerIds<'a>(pub(super) &'a Arc<Broker>);

impl ProducerIds<'_> {
    pub async fn allocate(&self) -> Result<i64, AdminError> {
        self.0.allocate_producer_id().await
    }
}

impl Broker {
    pub fn replicas(self: &Arc<Self>) -> Replicas<'_> {
        Replicas(self)
    }

    pub fn metadata(self: &Arc<Self>) -> Metadata<'_> {
        Metadata(self)
    }

    pub fn group_parts(self: &Arc<Self>) -> Groups<'_> {
        Groups(self)
    }

    pub fn txn_parts(self: &Arc<Self>) -> Transactions<'_> {
        Transactions(self)
    }

    pub fn producer_ids(self: &Arc<Self>) -> ProducerIds<'_> {
        ProducerIds(self)
    }
}
