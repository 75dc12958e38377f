//! DeleteAcls (key 31): removes the bindings each filter matches and names
//! them per filter. Needs ALTER on the cluster; SECURITY_DISABLED without an
//! authorizer. Filters match the bindings as this broker's image holds them
//! when the request arrives; the deletion of all matched bindings is one
//! metadata command.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{acl_change_refused, propose, str_bytes};
use crate::controller::image::Command;
use crate::protocol::handler::{Handler, RequestContext};
use crate::security::acl::{AclBinding, AclFilter};

pub struct DeleteAcls;

impl Handler for DeleteAcls {
    type Request = DeleteAclsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

    async fn handle(ctx: RequestContext, req: DeleteAclsRequest) -> Option<DeleteAclsResponse> {
        let authz = ctx.authz();
        let refusal = acl_change_refused(&authz);
        let matched: Vec<Result<Vec<AclBinding>, (ResponseError, String)>> = req
            .filters
            .iter()
            .map(|f| {
                if let Some(r) = &refusal {
                    return Err(r.clone());
                }
                let filter = AclFilter::from_wire(
                    f.resource_type_filter,
                    f.resource_name_filter.as_deref(),
                    f.pattern_type_filter,
                    f.principal_filter.as_deref(),
                    f.host_filter.as_deref(),
                    f.operation,
                    f.permission_type,
                )
                .map_err(|m| (ResponseError::InvalidRequest, m))?;
                Ok(ctx
                    .metadata()
                    .with_image(|img| img.acls.0.bindings().filter(|b| filter.matches(b)).cloned().collect()))
            })
            .collect();
        let all: BTreeSet<AclBinding> = matched.iter().flatten().flatten().cloned().collect();
        let committed: Result<(), (ResponseError, String)> = if all.is_empty() {
            Ok(())
        } else {
            let bindings = all.into_iter().collect();
            propose(&ctx, Command::DeleteAcls { bindings }).await
        };
        let results = matched
            .into_iter()
            .map(|m| match m.and_then(|bindings| committed.clone().map(|()| bindings)) {
                Err((e, msg)) => DeleteAclsFilterResult::default()
                    .with_error_code(e.code())
                    .with_error_message((!msg.is_empty()).then(|| str_bytes(msg))),
                Ok(bindings) => DeleteAclsFilterResult::default().with_matching_acls(
                    bindings
                        .into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(str_bytes(b.resource_name))
                                .with_pattern_type(b.pattern_type.code())
                                .with_principal(str_bytes(b.principal))
                                .with_host(str_bytes(b.host))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect(),
                ),
            })
            .collect();
        Some(DeleteAclsResponse::default().with_filter_results(results))
    }
}
