//! LeaveGroup (key 13): one member (v0-2) or a batch of members (v3+) leave.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct LeaveGroup;

impl Handler for LeaveGroup {
    type Request = LeaveGroupRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    async fn handle(ctx: RequestContext, req: LeaveGroupRequest) -> Option<LeaveGroupResponse> {
        let group = req.group_id.0.to_string();
        if !ctx.authz().allows(Operation::Read, ResourceType::Group, &group) {
            return Some(LeaveGroupResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code()));
        }
        if ctx.api_version() < 3 {
            let err = ctx.groups().coordinator().leave(&group, &req.member_id, None);
            return Some(LeaveGroupResponse::default().with_error_code(err.map_or(0, |e| e.code())));
        }
        let members = req
            .members
            .into_iter()
            .map(|m| {
                let instance = m.group_instance_id.as_ref().map(|s| s.to_string());
                let err = ctx
                    .groups()
                    .coordinator()
                    .leave(&group, &m.member_id, instance.as_deref());
                MemberResponse::default()
                    .with_member_id(m.member_id)
                    .with_group_instance_id(m.group_instance_id)
                    .with_error_code(err.map_or(0, |e| e.code()))
            })
            .collect();
        Some(LeaveGroupResponse::default().with_members(members))
    }
}
