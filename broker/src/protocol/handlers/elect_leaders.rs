//! ElectLeaders (key 43): move leadership to the preferred replica (election
//! type 0), or give a leaderless partition whose in-sync replicas are all down
//! a leader from outside the ISR (type 1, unclean: an explicit admin request,
//! allowed whatever `unclean.leader.election.enable` says, as in Kafka).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::VersionRange;

use super::{str_bytes, topic_name};
use crate::controller::image::{Command, MetadataImage, NO_LEADER};
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct ElectLeaders;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// A partition and its election's error, if any.
type Outcome = (String, i32, Option<(ResponseError, String)>);

impl Handler for ElectLeaders {
    type Request = ElectLeadersRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(ctx: RequestContext, req: ElectLeadersRequest) -> Option<ElectLeadersResponse> {
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
            None => ctx.metadata().with_image(|img| {
                img.topics
                    .iter()
                    .flat_map(|(n, t)| (0..t.partitions.len() as i32).map(move |i| (n.clone(), i)))
                    .collect()
            }),
        };
        // Per partition: None (elected) or an error.
        let mut outcome: Vec<Outcome> = Vec::new();
        if !ctx.authz().allows_cluster(Operation::Alter) {
            for (t, p) in wanted {
                outcome.push((
                    t,
                    p,
                    Some((
                        ResponseError::ClusterAuthorizationFailed,
                        "Authorization failed.".to_string(),
                    )),
                ));
            }
            return Some(respond(outcome).with_error_code(ResponseError::ClusterAuthorizationFailed.code()));
        }
        // Partitions where the election has nothing to do: led by the preferred
        // replica (preferred), or led at all (unclean).
        let done = |img: &MetadataImage, t: &str, p: i32| {
            img.partition(t, p).is_some_and(|s| match election {
                PREFERRED => s.target_replicas().first() == Some(&s.leader),
                _ => s.leader != NO_LEADER,
            })
        };
        let already: Vec<(String, i32)> = ctx
            .metadata()
            .with_image(|img| wanted.iter().filter(|(t, p)| done(img, t, *p)).cloned().collect());
        let cmd = match election {
            PREFERRED => Command::ElectPreferredLeaders {
                partitions: Some(wanted.clone()),
            },
            UNCLEAN => Command::ElectUnclean {
                partitions: wanted.clone(),
            },
            other => {
                for (t, p) in wanted {
                    let msg = format!("Unknown election type {other}.");
                    outcome.push((t, p, Some((ResponseError::InvalidRequest, msg))));
                }
                return Some(respond(outcome));
            }
        };
        let committed = ctx.metadata().propose(cmd).await;
        for (t, p) in wanted {
            let (exists, elected) = ctx
                .metadata()
                .with_image(|img| (img.partition(&t, p).is_some(), done(img, &t, p)));
            let err = match &committed {
                _ if already.contains(&(t.clone(), p)) => Some((
                    ResponseError::ElectionNotNeeded,
                    match election {
                        PREFERRED => "The preferred replica already leads.",
                        _ => "The partition has a leader.",
                    }
                    .to_string(),
                )),
                Err(e) => Some((e.code, e.message.clone())),
                _ if !exists => Some((
                    ResponseError::UnknownTopicOrPartition,
                    format!("{t}-{p} does not exist"),
                )),
                _ if elected => None,
                _ => Some(match election {
                    PREFERRED => (
                        ResponseError::PreferredLeaderNotAvailable,
                        "The preferred replica is not live or not in the ISR.".to_string(),
                    ),
                    _ => (
                        ResponseError::EligibleLeadersNotAvailable,
                        "No replica of the partition is live.".to_string(),
                    ),
                }),
            };
            outcome.push((t, p, err));
        }
        Some(respond(outcome))
    }
}

/// Groups the outcomes by topic, in order.
fn respond(outcome: Vec<Outcome>) -> ElectLeadersResponse {
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
    ElectLeadersResponse::default().with_replica_election_results(results)
}
