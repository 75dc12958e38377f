//! DescribeQuorum (key 55): the metadata quorum as its leader sees it: the
//! voters and observers (learners) with how far each has replicated the
//! metadata log. Another broker forwards the request to the leader, as Kafka's
//! brokers forward it to the active controller.
//!
//! Offsets here are Raft log indexes of Skein's metadata log; the leader epoch
//! is the Raft term. Fetch timestamps are not tracked (-1). From v2 each
//! replica carries its directory id and `nodes` the members' CONTROLLER
//! listeners, as the log records them (KIP-853). A node that came back with a
//! new directory under a voter's id is listed as an observer with that
//! directory: the one to add once the old voter is removed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::VersionRange;

use super::raft_voters::forward_to_active_controller;
use super::str_bytes;
use crate::controller::QuorumStatus;
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct DescribeQuorum;

/// The metadata log's name, as in KRaft.
const METADATA_TOPIC: &str = "__cluster_metadata";

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
        match forward_to_active_controller(&ctx, &req, std::time::Duration::from_secs(5)).await {
            Ok(resp) => Some(resp),
            Err(m) => Some(error(ResponseError::NotLeaderOrFollower, m, version)),
        }
    }
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
    let directory = |id: i32| q.nodes.get(&id).map(|n| n.directory_id).unwrap_or_default();
    let state = |id: &i32| {
        ReplicaState::default()
            .with_replica_id(BrokerId(*id))
            .with_replica_directory_id(directory(*id))
            .with_log_end_offset(replicated(*id))
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(-1)
    };
    let replacements = q.replacements.iter().map(|(id, n)| {
        ReplicaState::default()
            .with_replica_id(BrokerId(*id))
            .with_replica_directory_id(n.directory_id)
            .with_log_end_offset(-1)
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(-1)
    });
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(q.node_id))
        .with_leader_epoch(q.term.min(i32::MAX as u64) as i32)
        .with_high_watermark(q.last_applied as i64)
        .with_current_voters(q.voters.iter().map(state).collect())
        .with_observers(q.learners.iter().map(state).chain(replacements).collect());
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(str_bytes(METADATA_TOPIC.to_string())))
        .with_partitions(vec![partition])]);
    if version >= 2 {
        // Every member's CONTROLLER listener, as the metadata log records it.
        resp.nodes = q
            .nodes
            .iter()
            .filter_map(|(id, n)| {
                let (host, port) = n.addr.rsplit_once(':')?;
                Some(
                    Node::default()
                        .with_node_id(BrokerId(*id))
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
