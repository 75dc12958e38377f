//! SyncGroup (key 14): the leader hands out assignments; every member gets its own.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct SyncGroup;

impl Handler for SyncGroup {
    type Request = SyncGroupRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    async fn handle(ctx: RequestContext, req: SyncGroupRequest) -> Option<SyncGroupResponse> {
        if !ctx
            .authz()
            .allows(Operation::Read, ResourceType::Group, &req.group_id.0)
        {
            return Some(SyncGroupResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code()));
        }
        if let Err(e) = ctx
            .groups()
            .coordinator()
            .check_coordinator(ctx.groups().host(), &req.group_id.0)
        {
            return Some(SyncGroupResponse::default().with_error_code(e.code()));
        }
        let assignments = req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect();
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        let r = ctx
            .groups()
            .coordinator()
            .sync(
                &req.group_id.0,
                &req.member_id,
                instance.as_deref(),
                req.generation_id,
                assignments,
            )
            .await;
        let mut resp = SyncGroupResponse::default()
            .with_error_code(r.error.map_or(0, |e| e.code()))
            .with_assignment(r.assignment);
        if ctx.api_version() >= 5 {
            resp = resp
                .with_protocol_type(r.protocol_type.map(str_bytes))
                .with_protocol_name(r.protocol.map(str_bytes));
        }
        Some(resp)
    }
}
