//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct Heartbeat;

impl Handler for Heartbeat {
    type Request = HeartbeatRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    async fn handle(ctx: RequestContext, req: HeartbeatRequest) -> Option<HeartbeatResponse> {
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        let err = if !ctx
            .authz()
            .allows(Operation::Read, ResourceType::Group, &req.group_id.0)
        {
            Some(ResponseError::GroupAuthorizationFailed)
        } else {
            match ctx
                .groups()
                .coordinator()
                .check_coordinator(ctx.groups().host(), &req.group_id.0)
            {
                Err(e) => Some(e),
                Ok(()) => ctx.groups().coordinator().heartbeat(
                    &req.group_id.0,
                    &req.member_id,
                    instance.as_deref(),
                    req.generation_id,
                ),
            }
        };
        Some(HeartbeatResponse::default().with_error_code(err.map_or(0, |e| e.code())))
    }
}
