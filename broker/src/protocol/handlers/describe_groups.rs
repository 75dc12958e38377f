//! DescribeGroups (key 15): state, protocol and members of groups.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::VersionRange;

use kafka_protocol::error::ResponseError;

use super::{authorized, str_bytes};
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct DescribeGroups;

impl Handler for DescribeGroups {
    type Request = DescribeGroupsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    async fn handle(ctx: RequestContext, req: DescribeGroupsRequest) -> Option<DescribeGroupsResponse> {
        let v = ctx.api_version();
        let include_operations = req.include_authorized_operations;
        let authz = ctx.authz();
        let groups = req
            .groups
            .into_iter()
            .map(|id| {
                let mut g = DescribedGroup::default().with_group_id(id.clone());
                if !authz.allows(Operation::Describe, ResourceType::Group, &id.0) {
                    return g.with_error_code(ResponseError::GroupAuthorizationFailed.code());
                }
                if v >= 3 {
                    let ops = authz.operations(ResourceType::Group, &id.0);
                    g = g.with_authorized_operations(authorized(include_operations, ops));
                }
                let Some(d) = ctx.groups().coordinator().describe(&id.0) else {
                    // Kafka describes an unknown group as Dead, without an error.
                    return g.with_group_state(str_bytes("Dead"));
                };
                let members = d
                    .members
                    .iter()
                    .map(|m| {
                        let metadata = m
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == d.protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        let dm = DescribedGroupMember::default()
                            .with_member_id(str_bytes(m.id.clone()))
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_member_metadata(metadata)
                            .with_member_assignment(m.assignment.clone());
                        if v >= 4 {
                            dm.with_group_instance_id(m.group_instance_id.clone().map(str_bytes))
                        } else {
                            dm
                        }
                    })
                    .collect();
                g.with_group_state(str_bytes(d.state))
                    .with_protocol_type(str_bytes(d.protocol_type))
                    .with_protocol_data(str_bytes(d.protocol))
                    .with_members(members)
            })
            .collect();
        Some(DescribeGroupsResponse::default().with_groups(groups))
    }
}
