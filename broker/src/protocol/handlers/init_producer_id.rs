//! InitProducerId (key 22): producer ids for idempotent producers, and for
//! transactional ones from their transaction coordinator (epoch bump, fencing).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct InitProducerId;

impl Handler for InitProducerId {
    type Request = InitProducerIdRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    async fn handle(ctx: RequestContext, req: InitProducerIdRequest) -> Option<InitProducerIdResponse> {
        let resp = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        // A transactional producer needs WRITE on its transactional id; an
        // idempotent one IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).
        let authz = ctx.authz();
        if let Some(id) = &req.transactional_id {
            if !authz.allows(Operation::Write, ResourceType::TransactionalId, id) {
                return Some(resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
            }
        } else if !authz.allows_cluster(Operation::IdempotentWrite)
            && !authz.allows_any(Operation::Write, ResourceType::Topic)
        {
            return Some(resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code()));
        }
        if let Some(id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
            let txns = ctx.txns();
            let expected = (req.producer_id.0, req.producer_epoch);
            return Some(
                match txns
                    .coordinator()
                    .init_producer_id(txns.host(), id, req.transaction_timeout_ms, expected)
                    .await
                {
                    Ok((pid, epoch)) => resp.with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
                    Err(e) => {
                        tracing::debug!(transactional_id = %id.as_str(), "InitProducerId refused: {:?} {}", e.code, e.message);
                        resp.with_error_code(super::txn_error_code(e.code, ctx.api_version(), 4))
                    }
                },
            );
        }
        // As in Kafka, an idempotent producer (even one bumping its epoch, KIP-360)
        // gets a fresh producer id with epoch 0.
        match ctx.producer_ids().allocate().await {
            Ok(id) => Some(resp.with_producer_id(ProducerId(id)).with_producer_epoch(0)),
            Err(e) => {
                tracing::warn!("cannot allocate a producer id: {e}");
                Some(resp.with_error_code(ResponseError::CoordinatorLoadInProgress.code()))
            }
        }
    }
}
