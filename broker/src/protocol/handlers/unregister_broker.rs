//! UnregisterBroker (key 64): forget a stopped broker that holds no replicas,
//! so Metadata and DescribeCluster stop listing it (what an operator does after
//! draining and removing a broker). The controller refuses a running broker and
//! one that still holds replicas, with a message naming why.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct UnregisterBroker;

impl Handler for UnregisterBroker {
    type Request = UnregisterBrokerRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: UnregisterBrokerRequest) -> Option<UnregisterBrokerResponse> {
        if !ctx.authz().allows_cluster(Operation::Alter) {
            return Some(
                UnregisterBrokerResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            );
        }
        let resp = UnregisterBrokerResponse::default();
        Some(match ctx.metadata().unregister_broker(req.broker_id.0).await {
            Ok(()) => resp,
            Err(e) => resp
                .with_error_code(e.code.code())
                .with_error_message(Some(str_bytes(e.message))),
        })
    }
}
