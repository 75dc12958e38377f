//! The broker as its group coordinator sees it (group::GroupHost), and a
//! partition as an `__consumer_offsets` log (group::OffsetsLog).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{Broker, NewTopic, Partition};
use crate::config::BrokerConfig;
use crate::error::AdminError;
use crate::group::consumer::TopicsView;
use crate::group::{GroupCoordinator, GroupHost, OffsetsLog, OFFSETS_TOPIC};

impl GroupHost for Broker {
    fn node_id(&self) -> i32 {
        self.node_id
    }

    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn coordinator(&self) -> &GroupCoordinator {
        &self.groups
    }

    fn offsets_leader(&self, index: i32) -> Option<i32> {
        self.controller.with_image(|img| {
            img.topics
                .get(OFFSETS_TOPIC)
                .map(|_| img.partition(OFFSETS_TOPIC, index).map_or(-1, |p| p.leader))
        })
    }

    fn leads_offsets_partition(&self, index: i32) -> bool {
        self.leader_partition(OFFSETS_TOPIC, index).is_ok()
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

    async fn ensure_offsets_topic(self: &Arc<Self>, partitions: i32) -> Result<(), AdminError> {
        if self.topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("segment.bytes".to_string(), "104857600".to_string());
        let live = self.broker_ids().len().max(1) as i16;
        let t = NewTopic {
            name: OFFSETS_TOPIC.into(),
            partitions,
            replication_factor: self.config.offsets_topic_replication_factor().min(live),
            assignments: Vec::new(),
            configs,
        };
        match self.create_topic(t).await {
            Err(e) if e.code != ResponseError::TopicAlreadyExists => Err(e),
            Err(_) => {
                // Another request is creating it: wait until this broker has applied it,
                // so that every caller finds the coordinators ready.
                self.wait_for_topic(OFFSETS_TOPIC).await;
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    async fn append_offsets(self: &Arc<Self>, index: i32, batch: Bytes) -> Result<(), ResponseError> {
        let partition = self
            .leader_partition(OFFSETS_TOPIC, index)
            .map_err(|_| ResponseError::NotCoordinator)?;
        let info = partition.append(self, batch).await.map_err(|e| {
            tracing::error!(partition = index, "cannot write to {OFFSETS_TOPIC}: {e}");
            ResponseError::CoordinatorNotAvailable
        })?;
        // Commits are acknowledged once every in-sync replica has them (acks=all).
        partition
            .wait_for_replication(info.last_offset + 1, std::time::Duration::from_secs(5))
            .await
            .map_err(|e| match e {
                ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
                _ => ResponseError::RequestTimedOut,
            })
    }
}

impl OffsetsLog for Partition {
    fn index(&self) -> i32 {
        self.index
    }

    fn log_start_offset(&self) -> i64 {
        Partition::log_start_offset(self)
    }

    fn read_from(&self, offset: i64, max_bytes: usize) -> std::io::Result<Vec<u8>> {
        self.read_blocking(offset, max_bytes)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}
