//! ConsumerGroupHeartbeat (key 68): the KIP-848 consumer group protocol.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::VersionRange;
use uuid::Uuid;

use super::str_bytes;
use crate::group::consumer::{HeartbeatRequest, Tp};
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct ConsumerGroupHeartbeat;

impl Handler for ConsumerGroupHeartbeat {
    type Request = ConsumerGroupHeartbeatRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    async fn handle(ctx: RequestContext, req: ConsumerGroupHeartbeatRequest) -> Option<ConsumerGroupHeartbeatResponse> {
        let resp = ConsumerGroupHeartbeatResponse::default();
        // READ on the group, DESCRIBE on every subscribed topic (Kafka's checks).
        let authz = ctx.authz();
        if !authz.allows(Operation::Read, ResourceType::Group, &req.group_id.0) {
            return Some(resp.with_error_code(kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code()));
        }
        let hidden: Vec<&str> = req
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|t| t.0.as_str())
            .filter(|t| !authz.allows(Operation::Describe, ResourceType::Topic, t))
            .collect();
        if !hidden.is_empty() {
            return Some(
                resp.with_error_code(kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Not authorized to describe the topics: {}",
                        hidden.join(", ")
                    )))),
            );
        }
        if req.group_id.0.is_empty() {
            return Some(resp.with_error_code(kafka_protocol::error::ResponseError::InvalidGroupId.code()));
        }
        if let Err(e) = ctx
            .groups()
            .coordinator()
            .ensure_offsets_topic(ctx.groups().host())
            .await
        {
            return Some(
                resp.with_error_code(kafka_protocol::error::ResponseError::CoordinatorNotAvailable.code())
                    .with_error_message(Some(str_bytes(e.message))),
            );
        }
        let hb = HeartbeatRequest {
            member_id: req.member_id.to_string(),
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.map(|s| s.to_string()),
            rack_id: req.rack_id.map(|s| s.to_string()),
            client_id: ctx.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            client_host: format!("/{}", ctx.session.peer.ip()),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed: req
                .subscribed_topic_names
                .map(|v| v.into_iter().map(|t| t.0.to_string()).collect()),
            server_assignor: req.server_assignor.map(|s| s.to_string()),
            owned: req.topic_partitions.map(|tps| {
                tps.into_iter()
                    .flat_map(|t| t.partitions.into_iter().map(move |p| (t.topic_id, p)))
                    .collect()
            }),
        };
        match ctx
            .groups()
            .coordinator()
            .consumer_heartbeat(ctx.groups().host(), &req.group_id.0, hb)
        {
            Err(e) => Some(resp.with_error_code(e.code())),
            Ok((r, interval)) => Some(
                resp.with_member_id(Some(str_bytes(r.member_id)))
                    .with_member_epoch(r.member_epoch)
                    .with_heartbeat_interval_ms(interval)
                    .with_assignment(
                        r.assignment
                            .map(|a| Assignment::default().with_topic_partitions(by_topic(&a))),
                    ),
            ),
        }
    }
}

fn by_topic(tps: &BTreeSet<Tp>) -> Vec<TopicPartitions> {
    let mut m: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        m.entry(*t).or_default().push(*p);
    }
    m.into_iter()
        .map(|(t, ps)| TopicPartitions::default().with_topic_id(t).with_partitions(ps))
        .collect()
}
