//! Metadata (key 3): brokers, topics and partition leaders; auto-creates topics.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::VersionRange;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::cluster::{topic_name as names, Broker, Topic};
use crate::protocol::{Handler, RequestContext};

pub struct Metadata;

/// `topic_authorized_operations` when the client did not ask for them.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

impl Handler for Metadata {
    type Request = MetadataRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

    async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: MetadataRequest) -> Option<MetadataResponse> {
        let version = ctx.api_version();
        // Before v4 a Metadata request always allowed auto-creation.
        let allow_create = (version < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics();
        let requested = match req.topics {
            // v0 sends an empty list for "all topics"; v1+ sends null.
            Some(t) if !(version == 0 && t.is_empty()) => Some(t),
            _ => None,
        };
        let mut topics = Vec::new();
        match requested {
            None => topics.extend(broker.topics().iter().map(|t| describe(&broker, t))),
            Some(list) => {
                for t in list {
                    let result = match (&t.name, t.topic_id) {
                        (Some(name), _) => by_name(&broker, name.0.as_str(), allow_create).await,
                        (None, id) => match broker.topic_by_id(id) {
                            Some(topic) => describe(&broker, &topic),
                            None => error_topic(None, id, ResponseError::UnknownTopicId),
                        },
                    };
                    topics.push(result);
                }
            }
        }
        let l = broker.config.advertised_listener();
        let brokers = vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(str_bytes(l.host))
            .with_port(l.port as i32)];
        Some(
            MetadataResponse::default()
                .with_brokers(brokers)
                .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
                .with_controller_id(BrokerId(broker.node_id))
                .with_topics(topics)
                .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED),
        )
    }
}

async fn by_name(broker: &Arc<Broker>, name: &str, allow_create: bool) -> MetadataResponseTopic {
    if let Some(topic) = broker.topic(name) {
        return describe(broker, &topic);
    }
    if let Err(e) = names::validate(name) {
        return error_topic(Some(name), Uuid::nil(), e.code);
    }
    if !allow_create {
        return error_topic(Some(name), Uuid::nil(), ResponseError::UnknownTopicOrPartition);
    }
    match broker.auto_create_topic(name).await {
        Ok(topic) => describe(broker, &topic),
        Err(e) => {
            tracing::warn!(topic = name, "auto-creation failed: {e}");
            error_topic(Some(name), Uuid::nil(), e.code)
        }
    }
}

fn error_topic(name: Option<&str>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(code.code())
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn describe(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let partitions = topic
        .all_partitions()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(broker.node_id))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(vec![BrokerId(broker.node_id)])
                .with_isr_nodes(vec![BrokerId(broker.node_id)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
