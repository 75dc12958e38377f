//! DeleteRecords (key 21): move a partition's log start offset forward.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::protocol::VersionRange;

use super::read_error_code;
use crate::cluster::Broker;
use crate::protocol::{Handler, RequestContext};

pub struct DeleteRecords;

impl Handler for DeleteRecords {
    type Request = DeleteRecordsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(
        broker: Arc<Broker>,
        _: RequestContext,
        req: DeleteRecordsRequest,
    ) -> Option<DeleteRecordsResponse> {
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for dp in t.partitions {
                let r = DeleteRecordsPartitionResult::default()
                    .with_partition_index(dp.partition_index)
                    .with_low_watermark(-1);
                let r = match broker.leader_partition(t.name.0.as_str(), dp.partition_index) {
                    Err(e) => r.with_error_code(e.code()),
                    Ok(_) if dp.offset < -1 => r.with_error_code(ResponseError::OffsetOutOfRange.code()),
                    Ok(p) => match p.delete_records_before(dp.offset).await {
                        Ok(low) => r.with_low_watermark(low),
                        Err(e) => r.with_error_code(read_error_code(&e).code()),
                    },
                };
                partitions.push(r);
            }
            topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        Some(DeleteRecordsResponse::default().with_topics(topics))
    }
}
