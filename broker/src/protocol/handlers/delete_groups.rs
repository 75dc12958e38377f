//! DeleteGroups (key 42): removes groups without members and their committed offsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct DeleteGroups;

impl Handler for DeleteGroups {
    type Request = DeleteGroupsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(ctx: RequestContext, req: DeleteGroupsRequest) -> Option<DeleteGroupsResponse> {
        let authz = ctx.authz();
        let mut results = Vec::with_capacity(req.groups_names.len());
        for id in req.groups_names {
            let err = if !authz.allows(Operation::Delete, ResourceType::Group, &id.0) {
                Some(ResponseError::GroupAuthorizationFailed)
            } else {
                ctx.groups()
                    .coordinator()
                    .delete(ctx.groups().host(), &id.0)
                    .await
                    .err()
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(err.map_or(0, |e| e.code())),
            );
        }
        Some(DeleteGroupsResponse::default().with_results(results))
    }
}
