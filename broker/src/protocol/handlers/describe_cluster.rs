//! DescribeCluster (key 60): the brokers and the controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::VersionRange;

use super::{authorized, str_bytes};
use crate::protocol::handler::{Handler, RequestContext, ResourceType};
use crate::security::acl::CLUSTER_NAME;

pub struct DescribeCluster;

impl Handler for DescribeCluster {
    type Request = DescribeClusterRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(ctx: RequestContext, req: DescribeClusterRequest) -> Option<DescribeClusterResponse> {
        let mut resp = DescribeClusterResponse::default()
            .with_cluster_id(str_bytes(ctx.cluster_id().to_string()))
            .with_controller_id(BrokerId(ctx.metadata().controller_id_for_clients()))
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_authorized_operations(authorized(
                req.include_cluster_authorized_operations,
                ctx.authz().operations(ResourceType::Cluster, CLUSTER_NAME),
            ));
        if req.endpoint_type != 1 {
            // Only broker endpoints exist (no separate controller listeners yet).
            return Some(
                resp.with_error_code(ResponseError::UnsupportedEndpointType.code())
                    .with_error_message(Some(str_bytes("Only endpoint type 1 (brokers) is supported."))),
            );
        }
        // v2 (KIP-1073) may ask for fenced brokers too, marked as such.
        let include_fenced = ctx.api_version() >= 2 && req.include_fenced_brokers;
        resp.brokers = ctx.metadata().with_image(|img| {
            img.brokers
                .values()
                .filter(|b| include_fenced || !b.fenced)
                .map(|b| {
                    let (host, port) = b.address_for(&ctx.session.listener);
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(str_bytes(host.to_string()))
                        .with_port(port as i32)
                        .with_rack(b.rack.clone().map(str_bytes))
                        .with_is_fenced(b.fenced)
                })
                .collect()
        });
        Some(resp)
    }
}
