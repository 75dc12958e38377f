//! ListGroups (key 16): every group, filtered by state (v4+) and type (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct ListGroups;

impl Handler for ListGroups {
    type Request = ListGroupsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    async fn handle(ctx: RequestContext, req: ListGroupsRequest) -> Option<ListGroupsResponse> {
        let v = ctx.api_version();
        // DESCRIBE on the cluster lists every group; else those the principal may DESCRIBE.
        let authz = ctx.authz();
        let all = authz.allows_cluster(Operation::Describe);
        let groups = ctx
            .groups()
            .coordinator()
            .list()
            .into_iter()
            .filter(|(id, _, _)| all || authz.allows(Operation::Describe, ResourceType::Group, id))
            .filter(|(_, _, state)| {
                req.states_filter.is_empty() || req.states_filter.iter().any(|s| s.as_str().eq_ignore_ascii_case(state))
            })
            // Every group here uses the classic protocol.
            .filter(|_| {
                req.types_filter.is_empty()
                    || req
                        .types_filter
                        .iter()
                        .any(|t| t.as_str().eq_ignore_ascii_case("classic"))
            })
            .map(|(id, protocol_type, state)| {
                let mut g = ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(id)))
                    .with_protocol_type(str_bytes(protocol_type));
                if v >= 4 {
                    g = g.with_group_state(str_bytes(state));
                }
                if v >= 5 {
                    g = g.with_group_type(str_bytes("classic"));
                }
                g
            })
            .collect();
        Some(ListGroupsResponse::default().with_groups(groups))
    }
}
