//! DescribeProducers (key 61, KIP-664): the producers a partition led here
//! has state for, with the first offset of each one's open transaction (what
//! `skeinctl txn describe-producers` and `kafka-transactions.sh` show to find a
//! hanging transaction). READ on the topic.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct DescribeProducers;

impl Handler for DescribeProducers {
    type Request = DescribeProducersRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: DescribeProducersRequest) -> Option<DescribeProducersResponse> {
        let authz = ctx.authz();
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let allowed = authz.allows(Operation::Read, ResourceType::Topic, t.name.0.as_str());
                let partitions = t
                    .partition_indexes
                    .into_iter()
                    .map(|index| {
                        let r = PartitionResponse::default().with_partition_index(index);
                        if !allowed {
                            return r.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let p = match ctx.replicas().leader_partition(t.name.0.as_str(), index) {
                            Ok(p) => p,
                            Err(e) => return r.with_error_code(e.code()),
                        };
                        let mut producers: Vec<ProducerState> = p
                            .producer_states()
                            .into_iter()
                            .map(|(id, e)| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(id))
                                    .with_producer_epoch(i32::from(e.epoch))
                                    .with_last_sequence(e.batches.back().map_or(-1, |b| b.last_seq))
                                    .with_last_timestamp(e.last_timestamp)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(e.txn_first_offset.unwrap_or(-1))
                            })
                            .collect();
                        producers.sort_by_key(|s| s.producer_id.0);
                        r.with_active_producers(producers)
                    })
                    .collect();
                TopicResponse::default().with_name(t.name).with_partitions(partitions)
            })
            .collect();
        Some(DescribeProducersResponse::default().with_topics(topics))
    }
}
