//! DescribeTransactions (key 65, KIP-664): a transactional id's state, from
//! its coordinator (NOT_COORDINATOR elsewhere). DESCRIBE on the id.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct DescribeTransactions;

impl Handler for DescribeTransactions {
    type Request = DescribeTransactionsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: DescribeTransactionsRequest) -> Option<DescribeTransactionsResponse> {
        let authz = ctx.authz();
        let txns = ctx.txns();
        let mut states = Vec::new();
        for id in req.transactional_ids {
            let s = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            if !authz.allows(Operation::Describe, ResourceType::TransactionalId, id.0.as_str()) {
                states.push(s.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
                continue;
            }
            if let Err(e) = txns.coordinator().check_coordinator(txns.host(), id.0.as_str()).await {
                states.push(s.with_error_code(e.code.code()));
                continue;
            }
            let Some(m) = txns.coordinator().describe(id.0.as_str()) else {
                states.push(s.with_error_code(ResponseError::TransactionalIdNotFound.code()));
                continue;
            };
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.partitions {
                // Topics the caller may not describe are left out, as in Kafka.
                if authz.allows(Operation::Describe, ResourceType::Topic, t) {
                    topics.entry(t.clone()).or_default().push(*p);
                }
            }
            states.push(
                s.with_transaction_state(str_bytes(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    ),
            );
        }
        Some(DescribeTransactionsResponse::default().with_transaction_states(states))
    }
}
