//! AddOffsetsToTxn (key 25): the group's `__consumer_offsets` partition joins
//! the transaction, so TxnOffsetCommit's offsets are committed or aborted with it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::protocol::VersionRange;

use super::txn_error_code;
use crate::group::OFFSETS_TOPIC;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct AddOffsetsToTxn;

impl Handler for AddOffsetsToTxn {
    type Request = AddOffsetsToTxnRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    async fn handle(ctx: RequestContext, req: AddOffsetsToTxnRequest) -> Option<AddOffsetsToTxnResponse> {
        let id = req.transactional_id.0.as_str();
        let group = req.group_id.0.as_str();
        let authz = ctx.authz();
        let resp = AddOffsetsToTxnResponse::default();
        if !authz.allows(Operation::Write, ResourceType::TransactionalId, id) {
            return Some(resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
        }
        if !authz.allows(Operation::Read, ResourceType::Group, group) {
            return Some(resp.with_error_code(ResponseError::GroupAuthorizationFailed.code()));
        }
        let groups = ctx.groups();
        if let Err(e) = groups.coordinator().ensure_offsets_topic(groups.host()).await {
            tracing::warn!("cannot create the offsets topic: {e}");
            return Some(resp.with_error_code(ResponseError::CoordinatorNotAvailable.code()));
        }
        let partition = (OFFSETS_TOPIC.to_string(), groups.coordinator().partition_for(group));
        let txns = ctx.txns();
        let code = match txns
            .coordinator()
            .add_partitions(
                txns.host(),
                id,
                req.producer_id.0,
                req.producer_epoch,
                &[partition],
                crate::txn::TV_1,
            )
            .await
        {
            Ok(()) => 0,
            Err(e) => txn_error_code(e.code, ctx.api_version(), 2),
        };
        Some(resp.with_error_code(code))
    }
}
