//! FindCoordinator (key 10): this broker coordinates every group (v4: batched keys).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::str_bytes;
use crate::cluster::Broker;
use crate::protocol::{Handler, RequestContext};

pub struct FindCoordinator;

const KEY_TYPE_GROUP: i8 = 0;

impl Handler for FindCoordinator {
    type Request = FindCoordinatorRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    async fn handle(
        broker: Arc<Broker>,
        ctx: RequestContext,
        req: FindCoordinatorRequest,
    ) -> Option<FindCoordinatorResponse> {
        let error = if req.key_type != KEY_TYPE_GROUP {
            // Transaction coordinators come with transactions.
            Some((
                ResponseError::CoordinatorNotAvailable,
                "Only group coordinators are supported.",
            ))
        } else {
            match broker.groups.ensure_offsets_topic(&broker).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!("cannot create the offsets topic: {e}");
                    Some((
                        ResponseError::CoordinatorNotAvailable,
                        "The offsets topic is not available.",
                    ))
                }
            }
        };
        let l = broker.config.advertised_listener();
        let resp = FindCoordinatorResponse::default();
        if ctx.api_version() >= 4 {
            let coordinators = req
                .coordinator_keys
                .into_iter()
                .map(|key: StrBytes| {
                    let c = Coordinator::default().with_key(key);
                    match error {
                        Some((e, msg)) => c
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(e.code())
                            .with_error_message(Some(str_bytes(msg))),
                        None => c
                            .with_node_id(BrokerId(broker.node_id))
                            .with_host(str_bytes(l.host.clone()))
                            .with_port(l.port as i32),
                    }
                })
                .collect();
            return Some(resp.with_coordinators(coordinators));
        }
        Some(match error {
            Some((e, msg)) => {
                let r = resp.with_error_code(e.code()).with_node_id(BrokerId(-1)).with_port(-1);
                if ctx.api_version() >= 1 {
                    r.with_error_message(Some(str_bytes(msg)))
                } else {
                    r
                }
            }
            None => resp
                .with_node_id(BrokerId(broker.node_id))
                .with_host(str_bytes(l.host))
                .with_port(l.port as i32),
        })
    }
}
