//! OffsetDelete (key 47): removes committed offsets of topics a group no longer consumes.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct OffsetDelete;

impl Handler for OffsetDelete {
    type Request = OffsetDeleteRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: OffsetDeleteRequest) -> Option<OffsetDeleteResponse> {
        // DELETE on the group, then READ on each topic (Kafka's checks).
        let authz = ctx.authz();
        let resp = OffsetDeleteResponse::default();
        if !authz.allows(Operation::Delete, ResourceType::Group, &req.group_id.0) {
            return Some(resp.with_error_code(ResponseError::GroupAuthorizationFailed.code()));
        }
        let readable = |t: &str| authz.allows(Operation::Read, ResourceType::Topic, t);
        let wanted: Vec<(String, i32)> = req
            .topics
            .iter()
            .filter(|t| readable(t.name.0.as_str()))
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.0.to_string(), p.partition_index))
            })
            .collect();
        let outcome = ctx
            .groups()
            .coordinator()
            .delete_offsets(ctx.groups().host(), &req.group_id.0, &wanted)
            .await;
        let per_partition = match outcome {
            Err(e) => return Some(resp.with_error_code(e.code())),
            Ok(p) => p,
        };
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let err = if !readable(t.name.0.as_str()) {
                            Some(ResponseError::TopicAuthorizationFailed)
                        } else {
                            per_partition
                                .iter()
                                .find(|(tp, _)| tp.0 == t.name.0.as_str() && tp.1 == p.partition_index)
                                .and_then(|(_, e)| *e)
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(err.map_or(0, |e| e.code()))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(resp.with_topics(topics))
    }
}
