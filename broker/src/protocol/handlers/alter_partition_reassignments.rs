//! AlterPartitionReassignments (key 45): start or cancel moving partitions to
//! new replicas. The controller adds the target replicas, waits for them to join
//! the ISR, moves leadership if needed and then drops the old ones; a null
//! replica list cancels and restores the original set.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::controller::image::{Command, Reply};
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct AlterPartitionReassignments;

impl Handler for AlterPartitionReassignments {
    type Request = AlterPartitionReassignmentsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(
        ctx: RequestContext,
        req: AlterPartitionReassignmentsRequest,
    ) -> Option<AlterPartitionReassignmentsResponse> {
        if !ctx.authz().allows_cluster(Operation::Alter) {
            return Some(
                AlterPartitionReassignmentsResponse::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            );
        }
        let mut responses = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in t.partitions {
                let cmd = Command::Reassign {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    target: p.replicas.map(|r| r.into_iter().map(|b| b.0).collect()),
                };
                let r = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                partitions.push(match ctx.metadata().propose(cmd).await {
                    Ok(Reply::Error { code, message }) => {
                        r.with_error_code(code).with_error_message(Some(str_bytes(message)))
                    }
                    Ok(_) => r,
                    Err(e) => r
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message))),
                });
            }
            responses.push(
                ReassignableTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        Some(AlterPartitionReassignmentsResponse::default().with_responses(responses))
    }
}
