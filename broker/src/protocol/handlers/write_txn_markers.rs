//! WriteTxnMarkers (key 27): a transaction coordinator on another broker asks
//! this one, the leader of the partitions, to write commit or abort markers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext};
use crate::txn::Marker;

pub struct WriteTxnMarkers;

impl Handler for WriteTxnMarkers {
    type Request = WriteTxnMarkersRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 1 };

    async fn handle(ctx: RequestContext, req: WriteTxnMarkersRequest) -> Option<WriteTxnMarkersResponse> {
        let allowed = ctx.authz().allows_cluster(Operation::ClusterAction);
        let mut markers = Vec::new();
        for m in req.markers {
            let marker = Marker {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                commit: m.transaction_result,
                coordinator_epoch: m.coordinator_epoch,
            };
            let mut topics = Vec::new();
            for t in m.topics {
                let mut partitions = Vec::new();
                for p in t.partition_indexes {
                    let code = if !allowed {
                        ResponseError::ClusterAuthorizationFailed.code()
                    } else {
                        match ctx.txns().write_marker(t.name.0.as_str(), p, marker).await {
                            Ok(()) => 0,
                            Err(e) => e.code(),
                        }
                    };
                    partitions.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(p)
                            .with_error_code(code),
                    );
                }
                topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions),
                );
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(topics),
            );
        }
        Some(WriteTxnMarkersResponse::default().with_markers(markers))
    }
}
