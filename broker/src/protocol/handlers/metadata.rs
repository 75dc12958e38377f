//! Metadata (key 3): brokers, topics and partition leaders; auto-creates topics.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::VersionRange;
use uuid::Uuid;

use super::{authorized, str_bytes, topic_name, OPERATIONS_NOT_REQUESTED};
use crate::cluster::Topic;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};
use crate::security::acl::CLUSTER_NAME;
use skein_model::topic_name;

pub struct Metadata;

impl Handler for Metadata {
    type Request = MetadataRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

    async fn handle(ctx: RequestContext, req: MetadataRequest) -> Option<MetadataResponse> {
        let version = ctx.api_version();
        // Before v4 a Metadata request always allowed auto-creation.
        let allow_create = (version < 4 || req.allow_auto_topic_creation) && ctx.config().auto_create_topics();
        let requested = match req.topics {
            // v0 sends an empty list for "all topics"; v1+ sends null.
            Some(t) if !(version == 0 && t.is_empty()) => Some(t),
            _ => None,
        };
        // Topics the principal may not DESCRIBE are left out of "all topics"
        // and answered TOPIC_AUTHORIZATION_FAILED when named, whether or not
        // they exist; auto-creation needs CREATE on the cluster or the topic.
        let authz = ctx.authz();
        let describable = |name: &str| authz.allows(Operation::Describe, ResourceType::Topic, name);
        let may_create = |name: &str| {
            authz.allows_cluster(Operation::Create) || authz.allows(Operation::Create, ResourceType::Topic, name)
        };
        let mut topics = Vec::new();
        match requested {
            None => topics.extend(
                ctx.replicas()
                    .topics()
                    .iter()
                    .filter(|t| describable(&t.name))
                    .map(|t| describe(&ctx, t, version)),
            ),
            Some(list) => {
                for t in list {
                    let result = match (&t.name, t.topic_id) {
                        (Some(name), _) if !describable(name.0.as_str()) => error_topic(
                            Some(name.0.as_str()),
                            Uuid::nil(),
                            ResponseError::TopicAuthorizationFailed,
                        ),
                        (Some(name), _) => {
                            let name = name.0.as_str();
                            by_name(&ctx, name, allow_create, may_create(name), version).await
                        }
                        (None, id) => match ctx.replicas().topic_by_id(id) {
                            Some(topic) if describable(&topic.name) => describe(&ctx, &topic, version),
                            Some(_) => error_topic(None, id, ResponseError::TopicAuthorizationFailed),
                            None => error_topic(None, id, ResponseError::UnknownTopicId),
                        },
                    };
                    topics.push(result);
                }
            }
        }
        if req.include_topic_authorized_operations {
            for t in topics.iter_mut().filter(|t| t.error_code == 0) {
                let name = t.name.as_ref().map(|n| n.0.as_str()).unwrap_or_default();
                t.topic_authorized_operations = authz.operations(ResourceType::Topic, name);
            }
        }
        let brokers = ctx.metadata().with_image(|img| {
            img.brokers
                .values()
                .filter(|b| !b.fenced)
                .map(|b| {
                    let (host, port) = b.address_for(&ctx.session.listener);
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(str_bytes(host.to_string()))
                        .with_port(port as i32)
                        .with_rack(if version >= 1 {
                            b.rack.clone().map(str_bytes)
                        } else {
                            None
                        })
                })
                .collect()
        });
        Some(
            MetadataResponse::default()
                .with_brokers(brokers)
                .with_cluster_id(Some(str_bytes(ctx.cluster_id().to_string())))
                .with_controller_id(BrokerId(ctx.metadata().controller_id_for_clients()))
                .with_topics(topics)
                .with_cluster_authorized_operations(authorized(
                    version <= 10 && req.include_cluster_authorized_operations,
                    authz.operations(ResourceType::Cluster, CLUSTER_NAME),
                )),
        )
    }
}

async fn by_name(
    ctx: &RequestContext,
    name: &str,
    allow_create: bool,
    may_create: bool,
    version: i16,
) -> MetadataResponseTopic {
    if let Some(topic) = ctx.replicas().topic(name) {
        return describe(ctx, &topic, version);
    }
    if topic_name::validate(name).is_err() {
        return error_topic(Some(name), Uuid::nil(), ResponseError::InvalidTopicException);
    }
    if !allow_create {
        return error_topic(Some(name), Uuid::nil(), ResponseError::UnknownTopicOrPartition);
    }
    if !may_create {
        return error_topic(Some(name), Uuid::nil(), ResponseError::TopicAuthorizationFailed);
    }
    match ctx.metadata().auto_create_topic(name).await {
        Ok(topic) => describe(ctx, &topic, version),
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

fn describe(ctx: &RequestContext, topic: &Topic, version: i16) -> MetadataResponseTopic {
    // A broker whose image may be stale does not name itself leader (read
    // before the image's lock is taken: the check reads the image too).
    let me_current = ctx.metadata().is_current();
    let me = ctx.node_id();
    let partitions = ctx.metadata().with_image(|img| {
        let Some(t) = img.topics.get(&topic.name) else {
            return Vec::new();
        };
        let live = img.live_brokers();
        t.partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
                let offline: Vec<i32> = p.replicas.iter().copied().filter(|r| !live.contains(r)).collect();
                let leader_alive = live.contains(&p.leader) && (p.leader != me || me_current);
                let r = MetadataResponsePartition::default()
                    .with_partition_index(i as i32)
                    .with_leader_id(BrokerId(if leader_alive { p.leader } else { -1 }))
                    .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_offline_replicas(if version >= 5 { ids(&offline) } else { Vec::new() });
                if leader_alive {
                    r
                } else {
                    r.with_error_code(ResponseError::LeaderNotAvailable.code())
                }
            })
            .collect()
    });
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
