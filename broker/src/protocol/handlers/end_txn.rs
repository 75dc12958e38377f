//! EndTxn (key 26): commit or abort. The coordinator answers once the
//! PrepareCommit or PrepareAbort is persisted, and writes the markers after.
//! v5 is transaction version 2 (KIP-890 part 2): the epoch is bumped with
//! every commit or abort and the answer carries the producer id and epoch
//! the producer goes on with.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;

use super::txn_error_code;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct EndTxn;

impl Handler for EndTxn {
    type Request = EndTxnRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    async fn handle(ctx: RequestContext, req: EndTxnRequest) -> Option<EndTxnResponse> {
        let id = req.transactional_id.0.as_str();
        let resp = EndTxnResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if !ctx.authz().allows(Operation::Write, ResourceType::TransactionalId, id) {
            return Some(resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
        }
        let txns = ctx.txns();
        let v2 = ctx.api_version() >= 5;
        match txns
            .coordinator()
            .end(
                txns.host(),
                id,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
                v2,
            )
            .await
        {
            Ok((producer_id, epoch)) if v2 => Some(
                resp.with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(epoch),
            ),
            Ok(_) => Some(resp),
            Err(e) => {
                tracing::debug!(transactional_id = id, "EndTxn refused: {:?} {}", e.code, e.message);
                Some(resp.with_error_code(txn_error_code(e.code, ctx.api_version(), 2)))
            }
        }
    }
}
