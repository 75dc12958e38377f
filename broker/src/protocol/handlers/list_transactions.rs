//! ListTransactions (key 66, KIP-664): the transactions this broker
//! coordinates, filtered by state, producer id and (v1) open duration; only
//! the ids the caller may describe.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::clock::now_ms;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};
use crate::txn::TxnState;

pub struct ListTransactions;

impl Handler for ListTransactions {
    type Request = ListTransactionsRequest;
    // v2 (a transactional id pattern, KIP-1152) is not served.
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    async fn handle(ctx: RequestContext, req: ListTransactionsRequest) -> Option<ListTransactionsResponse> {
        let authz = ctx.authz();
        let known: Vec<&str> = TxnState::ALL.iter().map(|s| s.name()).collect();
        let unknown = req
            .state_filters
            .iter()
            .filter(|s| !known.contains(&s.as_str()))
            .cloned()
            .collect();
        let now = now_ms();
        let states = ctx
            .txns()
            .coordinator()
            .list()
            .into_iter()
            .filter(|m| req.state_filters.is_empty() || req.state_filters.iter().any(|s| s.as_str() == m.state.name()))
            .filter(|m| {
                req.producer_id_filters.is_empty() || req.producer_id_filters.contains(&ProducerId(m.producer_id))
            })
            // duration_filter: open at least this long (-1: any).
            .filter(|m| req.duration_filter < 0 || (m.start_ms >= 0 && now - m.start_ms >= req.duration_filter))
            .filter(|m| authz.allows(Operation::Describe, ResourceType::TransactionalId, &m.transactional_id))
            .map(|m| {
                TransactionState::default()
                    .with_transactional_id(TransactionalId(str_bytes(m.transactional_id)))
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_transaction_state(str_bytes(m.state.name()))
            })
            .collect();
        Some(
            ListTransactionsResponse::default()
                .with_unknown_state_filters(unknown)
                .with_transaction_states(states),
        )
    }
}
