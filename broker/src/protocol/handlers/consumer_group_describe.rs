//! ConsumerGroupDescribe (key 69): members, epochs and assignments of KIP-848 groups.
//! As Kafka: DESCRIBE on the group, and a group whose members subscribe to or
//! are assigned a topic the client may not DESCRIBE is answered
//! TOPIC_AUTHORIZATION_FAILED without its members.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
use kafka_protocol::protocol::VersionRange;
use uuid::Uuid;

use super::{authorized, str_bytes, topic_name};
use crate::group::consumer::Tp;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct ConsumerGroupDescribe;

impl Handler for ConsumerGroupDescribe {
    type Request = ConsumerGroupDescribeRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: ConsumerGroupDescribeRequest) -> Option<ConsumerGroupDescribeResponse> {
        let names: BTreeMap<Uuid, String> = ctx.replicas().topics().iter().map(|t| (t.id, t.name.clone())).collect();
        let assignment = |tps: &BTreeSet<Tp>| {
            let mut m: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for (t, p) in tps {
                m.entry(*t).or_default().push(*p);
            }
            Assignment::default().with_topic_partitions(
                m.into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(t)
                            .with_topic_name(topic_name(names.get(&t).cloned().unwrap_or_default()))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        };
        let include_operations = req.include_authorized_operations;
        let authz = ctx.authz();
        let groups = req
            .group_ids
            .into_iter()
            .map(|id| {
                let d = DescribedGroup::default().with_group_id(id.clone());
                if !authz.allows(Operation::Describe, ResourceType::Group, &id.0) {
                    return d.with_error_code(ResponseError::GroupAuthorizationFailed.code());
                }
                let ops = authz.operations(ResourceType::Group, &id.0);
                let d = d.with_authorized_operations(authorized(include_operations, ops));
                let Some(g) = ctx.groups().coordinator().consumer_group(&id.0) else {
                    return d
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_group_state(str_bytes("Dead"));
                };
                let topics: BTreeSet<String> = g
                    .members
                    .values()
                    .flat_map(|m| {
                        let assigned = m.assigned.iter().chain(g.target.get(&m.id).into_iter().flatten());
                        m.subscribed
                            .iter()
                            .cloned()
                            .chain(assigned.filter_map(|(t, _)| names.get(t).cloned()))
                    })
                    .collect();
                if !topics
                    .iter()
                    .all(|t| authz.allows(Operation::Describe, ResourceType::Topic, t))
                {
                    return d
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_error_message(Some(str_bytes(
                            "The group has described topic(s) that the client is not authorized to describe.",
                        )));
                }
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        Member::default()
                            .with_member_id(str_bytes(m.id.clone()))
                            .with_instance_id(m.instance_id.clone().map(str_bytes))
                            .with_rack_id(m.rack_id.clone().map(str_bytes))
                            .with_member_epoch(m.epoch)
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_subscribed_topic_names(m.subscribed.iter().map(|t| topic_name(t.clone())).collect())
                            .with_assignment(assignment(&m.assigned))
                            .with_target_assignment(assignment(g.target.get(&m.id).unwrap_or(&BTreeSet::new())))
                    })
                    .collect();
                d.with_group_state(str_bytes(g.state()))
                    .with_group_epoch(g.epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(str_bytes(g.assignor.clone()))
                    .with_members(members)
            })
            .collect();
        Some(ConsumerGroupDescribeResponse::default().with_groups(groups))
    }
}
