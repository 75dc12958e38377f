//! TxnOffsetCommit (key 28): a transactional producer commits a consumer
//! group's offsets inside its transaction; they take effect with the commit
//! marker and vanish with an abort. v3+ (KIP-447) carry the consumer's
//! generation and member id, checked like OffsetCommit's. From v5
//! (transaction version 2) the client sends no AddOffsetsToTxn: the group's
//! `__consumer_offsets` partition is added to the transaction here, through
//! its coordinator, before the offsets are taken.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::VersionRange;

use super::offset_commit::{commits_of, plan_topic, PartitionPlan};
use super::txn_error_code;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct TxnOffsetCommit;

impl Handler for TxnOffsetCommit {
    type Request = TxnOffsetCommitRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

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
        } else if let Some(e) = (req.generation_id >= 0 || !req.member_id.is_empty())
            .then(|| {
                groups
                    .coordinator()
                    .check_commit(&group, &req.member_id, instance.as_deref(), req.generation_id)
                    .err()
            })
            .flatten()
        {
            Some(e)
        } else if version >= 5 {
            let offsets = (
                crate::group::OFFSETS_TOPIC.to_string(),
                groups.coordinator().partition_for(&group),
            );
            ctx.txns()
                .verify(id, (req.producer_id.0, req.producer_epoch), offsets, true)
                .await
                .err()
                .map(|e| match e {
                    // The transaction coordinator's transient errors: retried
                    // here, not a reason to look the group's coordinator up again.
                    ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::BrokerNotAvailable
                    | ResponseError::NetworkException => ResponseError::CoordinatorLoadInProgress,
                    // As Kafka's AddPartitionsToTxnManager answers a fenced producer.
                    ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
                    e => e,
                })
        } else {
            None
        };
        let plan: Vec<(TopicName, Vec<PartitionPlan>)> = req
            .topics
            .into_iter()
            .map(|t| {
                let parts = t.partitions.into_iter().map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata,
                    )
                });
                let planned = plan_topic(&ctx, t.name.0.as_str(), parts, request_error);
                (t.name, planned)
            })
            .collect();
        let commits = commits_of(&plan);
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
