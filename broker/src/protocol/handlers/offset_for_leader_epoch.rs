//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch (KIP-101/279).
//!
//! A single broker has had one leader epoch per partition, so the answer for any
//! epoch at or above it is the log end offset. Replication adds the epoch history.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct OffsetForLeaderEpoch;

impl Handler for OffsetForLeaderEpoch {
    type Request = OffsetForLeaderEpochRequest;
    const VERSIONS: VersionRange = VersionRange { min: 2, max: 4 };

    async fn handle(ctx: RequestContext, req: OffsetForLeaderEpochRequest) -> Option<OffsetForLeaderEpochResponse> {
        // A follower (replica id set) needs CLUSTER_ACTION; a client DESCRIBE on each topic.
        let authz = ctx.authz();
        let follower_allowed = req.replica_id.0 < 0 || authz.allows_cluster(Operation::ClusterAction);
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let allowed = follower_allowed
                    && (req.replica_id.0 >= 0
                        || authz.allows(Operation::Describe, ResourceType::Topic, t.topic.0.as_str()));
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let r = EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                        if !allowed {
                            return r.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let part = match ctx.replicas().leader_partition(t.topic.0.as_str(), p.partition) {
                            Ok(part) => part,
                            Err(e) => return r.with_error_code(e.code()),
                        };
                        let epoch = part.leader_epoch();
                        if p.current_leader_epoch >= 0 && p.current_leader_epoch < epoch {
                            return r.with_error_code(ResponseError::FencedLeaderEpoch.code());
                        }
                        if p.current_leader_epoch > epoch {
                            return r.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                        }
                        let (found, end) = part.end_offset_for_epoch(p.leader_epoch);
                        r.with_leader_epoch(found).with_end_offset(end)
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(partitions)
            })
            .collect();
        Some(OffsetForLeaderEpochResponse::default().with_topics(topics))
    }
}
