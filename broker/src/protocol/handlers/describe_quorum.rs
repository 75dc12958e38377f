//! DescribeQuorum (key 55): the metadata quorum as its leader sees it: the
//! voters and observers (learners) with how far each has replicated the
//! metadata log. Another broker forwards the request to the leader, as Kafka's
//! brokers forward it to the active controller.
//!
//! Offsets here are Raft log indexes of Skein's metadata log; the leader epoch
//! is the Raft term. Fetch timestamps are not tracked (-1).

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use skein_client::{ClientSecurity, Connection};

use super::str_bytes;
use crate::controller::QuorumStatus;
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct DescribeQuorum;

/// The metadata log's name, as in KRaft.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// The client id of a forwarded request: its receiver answers, never forwards again.
const FORWARDED: &str = "skein-forwarded";

impl Handler for DescribeQuorum {
    type Request = DescribeQuorumRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(ctx: RequestContext, req: DescribeQuorumRequest) -> Option<DescribeQuorumResponse> {
        if !ctx.authz().allows_cluster(Operation::Describe) {
            return Some(
                DescribeQuorumResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            );
        }
        let version = ctx.api_version();
        let only_metadata_log = req
            .topics
            .iter()
            .all(|t| t.topic_name.0.as_str() == METADATA_TOPIC && t.partitions.iter().all(|p| p.partition_index == 0));
        if req.topics.is_empty() || !only_metadata_log {
            return Some(error(
                ResponseError::InvalidRequest,
                format!("DescribeQuorum describes {METADATA_TOPIC} partition 0 only"),
                version,
            ));
        }
        let q = ctx.metadata().quorum_status();
        if q.role == "leader" {
            return Some(describe(&ctx, &q, version));
        }
        let forwarded = ctx.header.client_id.as_ref().is_some_and(|c| c.as_str() == FORWARDED);
        let leader_address = q
            .leader
            .filter(|_| !forwarded)
            .and_then(|l| ctx.metadata().broker_address(l));
        let Some(address) = leader_address else {
            return Some(error(
                ResponseError::NotLeaderOrFollower,
                "the metadata quorum has no leader this broker can reach".into(),
                version,
            ));
        };
        match forward(&address, version, &req, &ctx.metadata().inter_broker_security()).await {
            Ok(resp) => Some(resp),
            Err(e) => Some(error(
                ResponseError::NotLeaderOrFollower,
                format!("cannot reach the metadata quorum's leader at {address}: {e}"),
                version,
            )),
        }
    }
}

async fn forward(
    address: &str,
    version: i16,
    req: &DescribeQuorumRequest,
    security: &ClientSecurity,
) -> std::io::Result<DescribeQuorumResponse> {
    let mut c = Connection::connect_with(address, FORWARDED.into(), Duration::from_secs(2), 1 << 20, security).await?;
    c.call(version, req, Duration::from_secs(5)).await
}

fn error(code: ResponseError, message: String, version: i16) -> DescribeQuorumResponse {
    let resp = DescribeQuorumResponse::default().with_error_code(code.code());
    if version >= 2 {
        resp.with_error_message(Some(str_bytes(message)))
    } else {
        resp
    }
}

fn describe(ctx: &RequestContext, q: &QuorumStatus, version: i16) -> DescribeQuorumResponse {
    let replicated = |id: i32| -> i64 {
        if id == q.node_id {
            q.last_log_index as i64
        } else {
            q.matched.get(&id).map_or(-1, |&i| i as i64)
        }
    };
    let state = |id: &i32| {
        ReplicaState::default()
            .with_replica_id(BrokerId(*id))
            .with_log_end_offset(replicated(*id))
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(-1)
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(q.node_id))
        .with_leader_epoch(q.term.min(i32::MAX as u64) as i32)
        .with_high_watermark(q.last_applied as i64)
        .with_current_voters(q.voters.iter().map(state).collect())
        .with_observers(q.learners.iter().map(state).collect());
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(str_bytes(METADATA_TOPIC.to_string())))
        .with_partitions(vec![partition])]);
    if version >= 2 {
        // The voters' CONTROLLER listeners, from controller.quorum.voters.
        let voters = ctx.config().voters().unwrap_or_default();
        resp.nodes = voters
            .iter()
            .filter_map(|v| {
                let (host, port) = v.address.rsplit_once(':')?;
                Some(
                    Node::default()
                        .with_node_id(BrokerId(v.id))
                        .with_listeners(vec![Listener::default()
                            .with_name(str_bytes(ctx.config().controller_listener_name()))
                            .with_host(str_bytes(host.to_string()))
                            .with_port(port.parse().ok()?)]),
                )
            })
            .collect();
    }
    resp
}
