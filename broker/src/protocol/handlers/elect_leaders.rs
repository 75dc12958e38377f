//! ElectLeaders (key 43): move leadership to the preferred replica (election
//! type 0). Unclean elections (type 1) are refused: Skein never elects a replica
//! outside the ISR.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::VersionRange;

use super::{str_bytes, topic_name};
use crate::cluster::Broker;
use crate::controller::image::Command;
use crate::protocol::{Handler, RequestContext};

pub struct ElectLeaders;

const PREFERRED: i8 = 0;

/// A partition and its election's error, if any.
type Outcome = (String, i32, Option<(ResponseError, String)>);

impl Handler for ElectLeaders {
    type Request = ElectLeadersRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(
        broker: Arc<Broker>,
        ctx: RequestContext,
        req: ElectLeadersRequest,
    ) -> Option<ElectLeadersResponse> {
        // v0 has no election type: it is always a preferred election.
        let election = if ctx.api_version() >= 1 {
            req.election_type
        } else {
            PREFERRED
        };
        let wanted: Vec<(String, i32)> = match &req.topic_partitions {
            Some(tps) => tps
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.0.to_string(), p)))
                .collect(),
            None => broker.controller.with_image(|img| {
                img.topics
                    .iter()
                    .flat_map(|(n, t)| (0..t.partitions.len() as i32).map(move |i| (n.clone(), i)))
                    .collect()
            }),
        };
        // Per partition: None (elected or already led by the preferred replica) or an error.
        let mut outcome: Vec<Outcome> = Vec::new();
        if election != PREFERRED {
            for (t, p) in wanted {
                let msg = "Unclean leader election is disabled.".to_string();
                outcome.push((t, p, Some((ResponseError::InvalidRequest, msg))));
            }
        } else {
            let already: Vec<(String, i32)> = broker.controller.with_image(|img| {
                wanted
                    .iter()
                    .filter(|(t, p)| {
                        img.partition(t, *p)
                            .is_some_and(|s| s.target_replicas().first() == Some(&s.leader))
                    })
                    .cloned()
                    .collect()
            });
            let cmd = Command::ElectPreferredLeaders {
                partitions: Some(wanted.clone()),
            };
            let committed = broker.controller.propose(cmd).await;
            for (t, p) in wanted {
                let state = broker.controller.with_image(|img| img.partition(&t, p).cloned());
                let err = match (&committed, state) {
                    _ if already.contains(&(t.clone(), p)) => Some((
                        ResponseError::ElectionNotNeeded,
                        "The preferred replica already leads.".to_string(),
                    )),
                    (Err(e), _) => Some((e.code, e.message.clone())),
                    (_, None) => Some((
                        ResponseError::UnknownTopicOrPartition,
                        format!("{t}-{p} does not exist"),
                    )),
                    (_, Some(s)) if s.target_replicas().first() == Some(&s.leader) => None,
                    (_, Some(_)) => Some((
                        ResponseError::PreferredLeaderNotAvailable,
                        "The preferred replica is not live or not in the ISR.".to_string(),
                    )),
                };
                outcome.push((t, p, err));
            }
        }
        let mut results: Vec<ReplicaElectionResult> = Vec::new();
        for (t, p, err) in outcome {
            let r = PartitionResult::default().with_partition_id(p);
            let r = match err {
                Some((code, msg)) => r.with_error_code(code.code()).with_error_message(Some(str_bytes(msg))),
                None => r,
            };
            match results.iter_mut().find(|x| x.topic.0.as_str() == t) {
                Some(x) => x.partition_result.push(r),
                None => results.push(
                    ReplicaElectionResult::default()
                        .with_topic(topic_name(t))
                        .with_partition_result(vec![r]),
                ),
            }
        }
        Some(ElectLeadersResponse::default().with_replica_election_results(results))
    }
}
