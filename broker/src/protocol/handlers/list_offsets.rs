//! ListOffsets (key 2): earliest, latest, by timestamp (through the time index), max timestamp.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::protocol::VersionRange;

use super::read_error_code;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct ListOffsets;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

impl Handler for ListOffsets {
    type Request = ListOffsetsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 7 };

    async fn handle(ctx: RequestContext, req: ListOffsetsRequest) -> Option<ListOffsetsResponse> {
        // leader_epoch exists from v4.
        let with_epoch = ctx.api_version() >= 4;
        // isolation_level 1 (read_committed, v2+): the latest offset is the last stable offset.
        let read_committed = req.isolation_level == 1;
        let authz = ctx.authz();
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let allowed = authz.allows(Operation::Describe, ResourceType::Topic, t.name.0.as_str());
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for lp in t.partitions {
                let r = ListOffsetsPartitionResponse::default()
                    .with_partition_index(lp.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1);
                if !allowed {
                    partitions.push(r.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                    continue;
                }
                let p = match ctx.replicas().leader_partition(t.name.0.as_str(), lp.partition_index) {
                    Ok(p) => p,
                    Err(e) => {
                        partitions.push(r.with_error_code(e.code()));
                        continue;
                    }
                };
                let r = if with_epoch {
                    r.with_leader_epoch(p.leader_epoch())
                } else {
                    r
                };
                let r = match lp.timestamp {
                    LATEST if read_committed => r.with_offset(p.last_stable_offset()),
                    LATEST => r.with_offset(p.high_watermark()),
                    EARLIEST => r.with_offset(p.log_start_offset()),
                    ts if ts == MAX_TIMESTAMP || ts >= 0 => match p.offset_for_timestamp(ts).await {
                        Ok(Some((timestamp, offset))) => r.with_timestamp(timestamp).with_offset(offset),
                        Ok(None) => r,
                        Err(e) => r.with_error_code(read_error_code(&e).code()),
                    },
                    _ => r.with_error_code(ResponseError::InvalidRequest.code()),
                };
                partitions.push(r);
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        Some(ListOffsetsResponse::default().with_topics(topics))
    }
}
