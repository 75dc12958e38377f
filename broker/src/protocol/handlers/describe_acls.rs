//! DescribeAcls (key 29): the bindings a filter matches, grouped by resource
//! pattern. Needs DESCRIBE on the cluster; SECURITY_DISABLED without an
//! authorizer.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::VersionRange;

use super::create_acls::NO_AUTHORIZER;
use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext};
use crate::security::acl::AclFilter;

pub struct DescribeAcls;

impl Handler for DescribeAcls {
    type Request = DescribeAclsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

    async fn handle(ctx: RequestContext, req: DescribeAclsRequest) -> Option<DescribeAclsResponse> {
        let refuse = |e: ResponseError, m: String| {
            Some(
                DescribeAclsResponse::default()
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(m))),
            )
        };
        let authz = ctx.authz();
        if !authz.enabled() {
            return refuse(ResponseError::SecurityDisabled, NO_AUTHORIZER.into());
        }
        if !authz.allows_cluster(Operation::Describe) {
            return refuse(ResponseError::ClusterAuthorizationFailed, String::new());
        }
        let filter = match AclFilter::from_wire(
            req.resource_type_filter,
            req.resource_name_filter.as_deref(),
            req.pattern_type_filter,
            req.principal_filter.as_deref(),
            req.host_filter.as_deref(),
            req.operation,
            req.permission_type,
        ) {
            Ok(f) => f,
            Err(m) => return refuse(ResponseError::InvalidRequest, m),
        };
        let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
        ctx.metadata().with_image(|img| {
            for b in img.acls.0.bindings().filter(|b| filter.matches(b)) {
                by_resource
                    .entry((b.resource_type.code(), b.resource_name.clone(), b.pattern_type.code()))
                    .or_default()
                    .push(
                        AclDescription::default()
                            .with_principal(str_bytes(b.principal.clone()))
                            .with_host(str_bytes(b.host.clone()))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code()),
                    );
            }
        });
        let resources = by_resource
            .into_iter()
            .map(|((t, name, p), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(t)
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(p)
                    .with_acls(acls)
            })
            .collect();
        Some(DescribeAclsResponse::default().with_resources(resources))
    }
}
