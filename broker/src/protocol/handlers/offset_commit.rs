//! OffsetCommit (key 8): validated against the group's generation, then written
//! to `__consumer_offsets`. A member removed from the group (for example after
//! exceeding max.poll.interval.ms) gets UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION,
//! so its late commit cannot overwrite the new owner's progress.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::VersionRange;

use crate::cluster::now_ms;
use crate::group::CommittedOffset;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct OffsetCommit;

/// A partition of the request: the commit to write, or the error to answer with.
pub type PartitionPlan = (i32, Result<CommittedOffset, ResponseError>);

/// A partition as OffsetCommit and TxnOffsetCommit send it: index, offset,
/// leader epoch, metadata.
pub type CommitRequest = (i32, i64, i32, Option<kafka_protocol::protocol::StrBytes>);

/// What to do with each partition of one topic of an (Txn)OffsetCommit:
/// `request_error` for all when the request as a whole is refused, else
/// READ on the topic, the partition's existence and the metadata's size.
pub fn plan_topic(
    ctx: &RequestContext,
    topic_name: &str,
    partitions: impl IntoIterator<Item = CommitRequest>,
    request_error: Option<ResponseError>,
) -> Vec<PartitionPlan> {
    let topic = ctx.replicas().topic(topic_name);
    let topic_allowed = ctx.authz().allows(Operation::Read, ResourceType::Topic, topic_name);
    let max_metadata = ctx.config().offset_metadata_max_bytes();
    let now = now_ms();
    partitions
        .into_iter()
        .map(|(index, offset, leader_epoch, metadata)| {
            let metadata = metadata.map(|m| m.to_string()).unwrap_or_default();
            let r = if let Some(e) = request_error {
                Err(e)
            } else if !topic_allowed {
                Err(ResponseError::TopicAuthorizationFailed)
            } else if !topic.as_ref().is_some_and(|t| t.has_partition(index)) {
                Err(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > max_metadata {
                Err(ResponseError::OffsetMetadataTooLarge)
            } else {
                Ok(CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp: now,
                })
            };
            (index, r)
        })
        .collect()
}

/// The commits to write of a planned request.
pub fn commits_of(plan: &[(TopicName, Vec<PartitionPlan>)]) -> Vec<(String, i32, CommittedOffset)> {
    plan.iter()
        .flat_map(|(t, parts)| {
            parts
                .iter()
                .filter_map(move |(p, r)| r.as_ref().ok().map(|c| (t.0.to_string(), *p, c.clone())))
        })
        .collect()
}

impl Handler for OffsetCommit {
    type Request = OffsetCommitRequest;
    const VERSIONS: VersionRange = VersionRange { min: 2, max: 9 };

    async fn handle(ctx: RequestContext, req: OffsetCommitRequest) -> Option<OffsetCommitResponse> {
        let group = req.group_id.0.to_string();
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        tracing::debug!(group, member = %req.member_id, generation = req.generation_id_or_member_epoch, "offset commit");
        // READ on the group, then READ on each topic (Kafka's order).
        let authz = ctx.authz();
        let group_error = if !authz.allows(Operation::Read, ResourceType::Group, &group) {
            Some(ResponseError::GroupAuthorizationFailed)
        } else if group.is_empty() {
            Some(ResponseError::InvalidGroupId)
        } else {
            ctx.groups()
                .coordinator()
                .check_commit(
                    &group,
                    &req.member_id,
                    instance.as_deref(),
                    req.generation_id_or_member_epoch,
                )
                .err()
        };
        // Per partition: Ok(commit) to write, or the error to answer.
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
                let planned = plan_topic(&ctx, t.name.0.as_str(), parts, group_error);
                (t.name, planned)
            })
            .collect();
        let commits = commits_of(&plan);
        let write_error = ctx
            .groups()
            .coordinator()
            .commit(ctx.groups().host(), &group, commits)
            .await
            .err();
        let topics = plan
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|(p, r)| {
                        let code = match r {
                            Ok(_) => write_error.map_or(0, |e| e.code()),
                            Err(e) => e.code(),
                        };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(OffsetCommitResponse::default().with_topics(topics))
    }
}
