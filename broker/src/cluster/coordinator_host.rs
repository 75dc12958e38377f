//! The broker as its coordinators see it (coordinator::CoordinatorHost,
//! group::GroupHost), and a partition as an internal topic's log
//! (coordinator::InternalLog).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{Broker, NewTopic, Partition};
use crate::config::BrokerConfig;
use crate::coordinator::{Coordinator, CoordinatorHost, InternalLog, InternalTopic};
use crate::error::AdminError;
use crate::group::consumer::TopicsView;
use crate::group::{GroupCoordinator, GroupHost};

impl CoordinatorHost for Broker {
    fn node_id(&self) -> i32 {
        self.node_id
    }

    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn live_brokers(&self) -> usize {
        self.broker_ids().len()
    }

    fn internal_leader(&self, topic: &str, index: i32) -> Option<i32> {
        self.controller.with_image(|img| {
            img.topics
                .get(topic)
                .map(|_| img.partition(topic, index).map_or(-1, |p| p.leader))
        })
    }

    fn leads_internal_partition(&self, topic: &str, index: i32) -> bool {
        self.leader_partition(topic, index).is_ok()
    }

    async fn ensure_internal_topic(self: &Arc<Self>, t: &InternalTopic) -> Result<(), AdminError> {
        if self.topic(t.name).is_some() {
            return Ok(());
        }
        let live = self.live_brokers().clamp(1, i16::MAX as usize) as i16;
        let new = NewTopic {
            name: t.name.into(),
            partitions: t.partitions,
            replication_factor: t.replication_factor.min(live),
            assignments: Vec::new(),
            configs: t.configs.clone(),
        };
        match self.create_topic(new).await {
            Err(e) if e.code != ResponseError::TopicAlreadyExists => Err(e),
            Err(_) => {
                // Another request is creating it: wait until this broker has applied it,
                // so that every caller finds the coordinators ready.
                self.wait_for_topic(t.name).await;
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    async fn append_internal(
        self: &Arc<Self>,
        topic: &'static str,
        index: i32,
        batch: Bytes,
    ) -> Result<(), ResponseError> {
        let partition = self
            .leader_partition(topic, index)
            .map_err(|_| ResponseError::NotCoordinator)?;
        let info = partition.append(self, batch).await.map_err(|e| match e {
            // A transactional write of a fenced producer (TxnOffsetCommit).
            crate::log::AppendError::Sequence(_) => ResponseError::ProducerFenced,
            e => {
                tracing::error!(partition = index, "cannot write to {topic}: {e}");
                ResponseError::CoordinatorNotAvailable
            }
        })?;
        // A coordinator's writes are acknowledged once every in-sync replica has them (acks=all).
        partition
            .wait_for_replication(info.last_offset + 1, std::time::Duration::from_secs(5))
            .await
            .map_err(|e| match e {
                ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
                _ => ResponseError::RequestTimedOut,
            })
    }
}

impl Broker {
    /// The coordinator whose state lives in internal topic `topic`, if any.
    pub(super) fn coordinator_of(&self, topic: &str) -> Option<&dyn Coordinator> {
        let coordinators: [&dyn Coordinator; 2] = [&self.groups, &self.txns];
        coordinators.into_iter().find(|c| c.topic() == topic)
    }
}

impl GroupHost for Broker {
    fn coordinator(&self) -> &GroupCoordinator {
        &self.groups
    }

    fn topics_view(&self) -> TopicsView {
        self.topics()
            .iter()
            .map(|t| (t.name.clone(), (t.id, t.partition_count() as i32)))
            .collect()
    }

    fn has_partition(&self, topic: &str, partition: i32) -> bool {
        self.topic(topic).is_some_and(|t| t.has_partition(partition))
    }

    fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.group_overrides(group)
    }
}

impl InternalLog for Partition {
    fn index(&self) -> i32 {
        self.index
    }

    fn leader_epoch(&self) -> i32 {
        Partition::leader_epoch(self)
    }

    fn log_start_offset(&self) -> i64 {
        Partition::log_start_offset(self)
    }

    fn read_from(&self, offset: i64, max_bytes: usize) -> std::io::Result<Vec<u8>> {
        self.read_blocking(offset, max_bytes)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}
