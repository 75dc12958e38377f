//! FindCoordinator (key 10): the coordinator of a group (key type 0) is the
//! leader of its `__consumer_offsets` partition, that of a transactional id
//! (key type 1) the leader of its `__transaction_state` partition (v4: batched keys).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct FindCoordinator;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

impl Handler for FindCoordinator {
    type Request = FindCoordinatorRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    async fn handle(ctx: RequestContext, req: FindCoordinatorRequest) -> Option<FindCoordinatorResponse> {
        let error = if req.key_type == KEY_TYPE_TRANSACTION {
            match ctx.txns().coordinator().ensure_topic(ctx.txns().host()).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!("cannot create the transaction state topic: {e}");
                    Some((
                        ResponseError::CoordinatorNotAvailable,
                        "The transaction state topic is not available.",
                    ))
                }
            }
        } else if req.key_type != KEY_TYPE_GROUP {
            Some((ResponseError::InvalidRequest, "Unknown coordinator key type."))
        } else {
            match ctx
                .groups()
                .coordinator()
                .ensure_offsets_topic(ctx.groups().host())
                .await
            {
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
        let is_txn = req.key_type == KEY_TYPE_TRANSACTION;
        let topic = if is_txn {
            crate::txn::TRANSACTION_STATE_TOPIC
        } else {
            crate::group::OFFSETS_TOPIC
        };
        let index_of = |key: &str| {
            if is_txn {
                ctx.txns().coordinator().partition_for(key)
            } else {
                ctx.groups().coordinator().partition_for(key)
            }
        };
        let locate = |key: &str| -> Option<(i32, String, i32)> {
            let index = index_of(key);
            ctx.metadata().with_image(|img| {
                let leader = img.partition(topic, index)?.leader;
                let b = img.brokers.get(&leader).filter(|b| !b.fenced)?;
                let (host, port) = b.address_for(&ctx.session.listener);
                Some((leader, host.to_string(), port as i32))
            })
        };
        // DESCRIBE on the group (or transactional id) the key names.
        let authz = ctx.authz();
        let key_type = req.key_type;
        let error_for = |key: &str| -> Option<(ResponseError, &'static str)> {
            if key_type == KEY_TYPE_GROUP && !authz.allows(Operation::Describe, ResourceType::Group, key) {
                return Some((
                    ResponseError::GroupAuthorizationFailed,
                    "Not authorized to describe the group.",
                ));
            }
            if key_type == KEY_TYPE_TRANSACTION
                && !authz.allows(Operation::Describe, ResourceType::TransactionalId, key)
            {
                return Some((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "Not authorized to describe the transactional id.",
                ));
            }
            error
        };
        let resp = FindCoordinatorResponse::default();
        if ctx.api_version() >= 4 {
            let coordinators = req
                .coordinator_keys
                .into_iter()
                .map(|key: StrBytes| {
                    let found = locate(key.as_str());
                    let error = error_for(key.as_str());
                    let c = Coordinator::default().with_key(key);
                    match (error, found) {
                        (None, Some((id, host, port))) => {
                            c.with_node_id(BrokerId(id)).with_host(str_bytes(host)).with_port(port)
                        }
                        (error, _) => {
                            let (e, msg) = error.unwrap_or((
                                ResponseError::CoordinatorNotAvailable,
                                "The coordinator's partition has no leader.",
                            ));
                            c.with_node_id(BrokerId(-1))
                                .with_port(-1)
                                .with_error_code(e.code())
                                .with_error_message(Some(str_bytes(msg)))
                        }
                    }
                })
                .collect();
            return Some(resp.with_coordinators(coordinators));
        }
        let found = locate(req.key.as_str());
        Some(match (error_for(req.key.as_str()), found) {
            (None, Some((id, host, port))) => resp
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port),
            (error, _) => {
                let (e, msg) = error.unwrap_or((
                    ResponseError::CoordinatorNotAvailable,
                    "The coordinator's partition has no leader.",
                ));
                let r = resp.with_error_code(e.code()).with_node_id(BrokerId(-1)).with_port(-1);
                if ctx.api_version() >= 1 {
                    r.with_error_message(Some(str_bytes(msg)))
                } else {
                    r
                }
            }
        })
    }
}
