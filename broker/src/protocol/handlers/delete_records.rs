//! DeleteRecords (key 21): move a partition's log start offset forward, on
//! the leader and then on every in-sync replica.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::protocol::VersionRange;

use super::read_error_code;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct DeleteRecords;

impl Handler for DeleteRecords {
    type Request = DeleteRecordsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(ctx: RequestContext, req: DeleteRecordsRequest) -> Option<DeleteRecordsResponse> {
        let timeout = Duration::from_millis(req.timeout_ms.clamp(0, 300_000) as u64);
        // Every partition's prefix is dropped on the leader first; then the
        // answers wait, side by side, for the ISR to drop it too.
        let authz = ctx.authz();
        let mut pending = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let allowed = authz.allows(Operation::Delete, ResourceType::Topic, t.name.0.as_str());
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for dp in t.partitions {
                let r = DeleteRecordsPartitionResult::default()
                    .with_partition_index(dp.partition_index)
                    .with_low_watermark(-1);
                partitions.push(
                    match ctx.replicas().leader_partition(t.name.0.as_str(), dp.partition_index) {
                        _ if !allowed => Err(r.with_error_code(ResponseError::TopicAuthorizationFailed.code())),
                        Err(e) => Err(r.with_error_code(e.code())),
                        Ok(_) if dp.offset < -1 => Err(r.with_error_code(ResponseError::OffsetOutOfRange.code())),
                        Ok(p) => match p.delete_records_before(dp.offset).await {
                            Ok(start) => Ok((r, p, start)),
                            Err(e) => Err(r.with_error_code(read_error_code(&e).code())),
                        },
                    },
                );
            }
            pending.push((t.name, partitions));
        }
        let mut topics = Vec::with_capacity(pending.len());
        for (name, partitions) in pending {
            let mut results = Vec::with_capacity(partitions.len());
            for p in partitions {
                results.push(match p {
                    Err(r) => r,
                    Ok((r, p, start)) => match p.wait_for_low_watermark(start, timeout).await {
                        Ok(low) => r.with_low_watermark(low),
                        Err(code) => r.with_error_code(code.code()),
                    },
                });
            }
            topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(name)
                    .with_partitions(results),
            );
        }
        Some(DeleteRecordsResponse::default().with_topics(topics))
    }
}
