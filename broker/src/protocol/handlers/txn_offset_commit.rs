//! TxnOffsetCommit (key 28): a transactional producer commits a consumer
//! group's offsets inside its transaction; they take effect with the commit
//! marker and vanish with an abort. v3+ (KIP-447) carry the consumer's
//! generation and member id, checked like OffsetCommit's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::VersionRange;

use super::txn_error_code;
use crate::cluster::now_ms;
use crate::group::CommittedOffset;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct TxnOffsetCommit;

impl Handler for TxnOffsetCommit {
    type Request = TxnOffsetCommitRequest;
    // v5 (transaction version 2) is not served yet.
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    async fn handle(ctx: RequestContext, req: TxnOffsetCommitRequest) -> Option<TxnOffsetCommitResponse> {
        let group = req.group_id.0.to_string();
        let id = req.transactional_id.0.as_str();
        let version = ctx.api_version();
        let authz = ctx.authz();
        let groups = ctx.groups();
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        let request_error = if !authz.allows(Operation::Write, ResourceType::TransactionalId, id) {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !authz.allows(Operation::Read, ResourceType::Group, &group) {
            Some(ResponseError::GroupAuthorizationFailed)
        } else if let Err(e) = groups.coordinator().check_coordinator(groups.host(), &group) {
            Some(e)
        } else if req.generation_id >= 0 || !req.member_id.is_empty() {
            groups
                .coordinator()
                .check_commit(&group, &req.member_id, instance.as_deref(), req.generation_id)
                .err()
        } else {
            None
        };
        let max_metadata = ctx.config().offset_metadata_max_bytes();
        let now = now_ms();
        let mut plan = Vec::new();
        for t in req.topics {
            let topic_allowed = authz.allows(Operation::Read, ResourceType::Topic, t.name.0.as_str());
            let topic = ctx.replicas().topic(t.name.0.as_str());
            let parts: Vec<(i32, Result<CommittedOffset, ResponseError>)> = t
                .partitions
                .into_iter()
                .map(|p| {
                    let metadata = p.committed_metadata.map(|m| m.to_string()).unwrap_or_default();
                    let r = if let Some(e) = request_error {
                        Err(e)
                    } else if !topic_allowed {
                        Err(ResponseError::TopicAuthorizationFailed)
                    } else if !topic.as_ref().is_some_and(|t| t.has_partition(p.partition_index)) {
                        Err(ResponseError::UnknownTopicOrPartition)
                    } else if metadata.len() > max_metadata {
                        Err(ResponseError::OffsetMetadataTooLarge)
                    } else {
                        Ok(CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata,
                            commit_timestamp: now,
                        })
                    };
                    (p.partition_index, r)
                })
                .collect();
            plan.push((t.name, parts));
        }
        let commits: Vec<(String, i32, CommittedOffset)> = plan
            .iter()
            .flat_map(|(t, parts)| {
                parts
                    .iter()
                    .filter_map(move |(p, r)| r.as_ref().ok().map(|c| (t.0.to_string(), *p, c.clone())))
            })
            .collect();
        let write_error = groups
            .coordinator()
            .txn_commit(groups.host(), &group, (req.producer_id.0, req.producer_epoch), commits)
            .await
            .err();
        let code = |e: ResponseError| txn_error_code(e, version, 3);
        let topics = plan
            .into_iter()
            .map(|(name, parts)| {
                TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, r)| {
                            let c = match r {
                                Ok(_) => write_error.map_or(0, code),
                                Err(e) => code(e),
                            };
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(c)
                        })
                        .collect(),
                )
            })
            .collect();
        Some(TxnOffsetCommitResponse::default().with_topics(topics))
    }
}
