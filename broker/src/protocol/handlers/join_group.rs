//! JoinGroup (key 11): the first phase of a rebalance (MEMBER_ID_REQUIRED round trip from v4).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::group::state::JoinRequest;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct JoinGroup;

impl Handler for JoinGroup {
    type Request = JoinGroupRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

    async fn handle(ctx: RequestContext, req: JoinGroupRequest) -> Option<JoinGroupResponse> {
        let v = ctx.api_version();
        let group_id = req.group_id.0.to_string();
        if !ctx.authz().allows(Operation::Read, ResourceType::Group, &group_id) {
            return Some(
                JoinGroupResponse::default()
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                    .with_generation_id(-1),
            );
        }
        if group_id.is_empty() {
            return Some(
                JoinGroupResponse::default()
                    .with_error_code(ResponseError::InvalidGroupId.code())
                    .with_generation_id(-1),
            );
        }
        if let Err(e) = ctx
            .groups()
            .coordinator()
            .check_coordinator(ctx.groups().host(), &group_id)
        {
            return Some(
                JoinGroupResponse::default()
                    .with_error_code(e.code())
                    .with_generation_id(-1),
            );
        }
        let join = JoinRequest {
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|s| s.to_string()),
            client_id: ctx.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            client_host: format!("/{}", ctx.session.peer.ip()),
            session_timeout_ms: req.session_timeout_ms,
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if v == 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: v >= 4,
        };
        let r = ctx.groups().coordinator().join(&group_id, join).await;
        let members = r
            .members
            .into_iter()
            .map(|(id, instance, metadata)| {
                let m = JoinGroupResponseMember::default()
                    .with_member_id(str_bytes(id))
                    .with_metadata(metadata);
                if v >= 5 {
                    m.with_group_instance_id(instance.map(str_bytes))
                } else {
                    m
                }
            })
            .collect();
        let mut resp = JoinGroupResponse::default()
            .with_error_code(r.error.map_or(0, |e| e.code()))
            .with_generation_id(r.generation)
            .with_protocol_name(if v >= 7 {
                r.protocol.map(str_bytes)
            } else {
                Some(str_bytes(r.protocol.unwrap_or_default()))
            })
            .with_leader(str_bytes(r.leader))
            .with_member_id(str_bytes(r.member_id))
            .with_members(members);
        if v >= 7 {
            resp = resp.with_protocol_type(r.protocol_type.map(str_bytes));
        }
        Some(resp)
    }
}
