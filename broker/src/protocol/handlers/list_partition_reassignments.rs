//! ListPartitionReassignments (key 46): the reassignments in progress, from the
//! metadata image: all replicas, and those being added and removed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};
use kafka_protocol::protocol::VersionRange;

use super::topic_name;
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct ListPartitionReassignments;

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|&b| BrokerId(b)).collect()
}

impl Handler for ListPartitionReassignments {
    type Request = ListPartitionReassignmentsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(
        ctx: RequestContext,
        req: ListPartitionReassignmentsRequest,
    ) -> Option<ListPartitionReassignmentsResponse> {
        if !ctx.authz().allows_cluster(Operation::Describe) {
            return Some(
                ListPartitionReassignmentsResponse::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            );
        }
        let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let topics = ctx.metadata().with_image(|img| {
            img.topics
                .iter()
                .filter_map(|(name, t)| {
                    let only: Option<&Vec<i32>> = match &wanted {
                        None => None,
                        Some(w) => Some(&w.iter().find(|(n, _)| n == name)?.1),
                    };
                    let partitions: Vec<OngoingPartitionReassignment> = t
                        .partitions
                        .iter()
                        .enumerate()
                        .filter(|(i, p)| {
                            (!p.adding.is_empty() || !p.removing.is_empty())
                                && only.is_none_or(|o| o.contains(&(*i as i32)))
                        })
                        .map(|(i, p)| {
                            OngoingPartitionReassignment::default()
                                .with_partition_index(i as i32)
                                .with_replicas(ids(&p.replicas))
                                .with_adding_replicas(ids(&p.adding))
                                .with_removing_replicas(ids(&p.removing))
                        })
                        .collect();
                    (!partitions.is_empty()).then(|| {
                        OngoingTopicReassignment::default()
                            .with_name(topic_name(name.clone()))
                            .with_partitions(partitions)
                    })
                })
                .collect()
        });
        Some(ListPartitionReassignmentsResponse::default().with_topics(topics))
    }
}
