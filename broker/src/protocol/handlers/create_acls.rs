//! CreateAcls (key 30): adds ACL bindings to the metadata log. Needs ALTER on
//! the cluster; SECURITY_DISABLED without an authorizer, as Kafka. A binding
//! with an unknown code, ANY, MATCH or an invalid name gets INVALID_REQUEST on
//! its own; the valid ones are committed together.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{acl_change_refused, propose, str_bytes};
use crate::controller::image::Command;
use crate::protocol::handler::{Handler, RequestContext};
use crate::security::acl::AclBinding;

pub struct CreateAcls;

/// Kafka's message when no authorizer is configured.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

impl Handler for CreateAcls {
    type Request = CreateAclsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

    async fn handle(ctx: RequestContext, req: CreateAclsRequest) -> Option<CreateAclsResponse> {
        let authz = ctx.authz();
        let refusal = acl_change_refused(&authz);
        let parsed: Vec<Result<AclBinding, (ResponseError, String)>> = req
            .creations
            .iter()
            .map(|c| match &refusal {
                Some(r) => Err(r.clone()),
                None => AclBinding::from_wire(
                    c.resource_type,
                    &c.resource_name,
                    c.resource_pattern_type,
                    &c.principal,
                    &c.host,
                    c.operation,
                    c.permission_type,
                )
                .map_err(|m| (ResponseError::InvalidRequest, m)),
            })
            .collect();
        let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
        let committed: Result<(), (ResponseError, String)> = if valid.is_empty() {
            Ok(())
        } else {
            propose(&ctx, Command::CreateAcls { bindings: valid }).await
        };
        let results = parsed
            .into_iter()
            .map(|p| {
                let outcome = p.map(|_| ()).and_then(|()| committed.clone());
                match outcome {
                    Ok(()) => AclCreationResult::default(),
                    Err((e, m)) => AclCreationResult::default()
                        .with_error_code(e.code())
                        .with_error_message((!m.is_empty()).then(|| str_bytes(m))),
                }
            })
            .collect();
        Some(CreateAclsResponse::default().with_results(results))
    }
}
