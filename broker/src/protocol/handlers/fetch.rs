//! Fetch (key 1): long-polling reads of stored batches, sent as they are on disk.
//!
//! KIP-392: with `replica.selector.class` RackAwareReplicaSelector, the leader
//! answers a consumer in another rack (`rack_id`, v11+) with the in-sync
//! replica of its rack as `preferred_read_replica`, and followers serve
//! consumers' fetches up to their high watermark (only where the selector is
//! on: Kafka's followers always do, but a consumer with stale metadata would
//! then read a deposed leader's divergent tail before it is truncated).
//!
//! v4-12 are served: they name topics, so no topic-id lookup is needed. Fetch
//! sessions (KIP-227) are not kept: every response has session id 0, which tells
//! clients to send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;
use tokio::time::Instant;

use super::read_error_code;
use crate::cluster::Partition;
use crate::metrics::Timed;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};
use crate::quota::QuotaType;
use crate::replication::leader::{self, LeaderThrottle};

pub struct Fetch;

/// Longest wait a client may ask for, so a bad max_wait_ms cannot pin a connection.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

impl Handler for Fetch {
    type Request = FetchRequest;
    const VERSIONS: VersionRange = VersionRange { min: 4, max: 12 };

    /// Followers' fetches are replication, not a client's use.
    fn exempt_from_request_quota(req: &FetchRequest) -> bool {
        req.replica_id.0 >= 0
    }

    async fn handle(ctx: RequestContext, req: FetchRequest) -> Option<FetchResponse> {
        let started = Instant::now();
        let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
        let deadline = Instant::now() + wait;
        let min_bytes = req.min_bytes.max(0) as usize;
        let mut max_bytes = if req.max_bytes <= 0 {
            usize::MAX
        } else {
            req.max_bytes as usize
        };
        // A consumer under a byte quota asks for no more than one window of it.
        let quota = if req.replica_id.0 < 0 {
            ctx.quota_window_max(QuotaType::Fetch)
        } else {
            None
        };
        if let Some(window) = quota {
            max_bytes = max_bytes.min(window.max(1.0) as usize);
        }
        let read_committed = req.isolation_level == 1;
        // A follower's fetch (replica id set) tells the leader how far it has
        // replicated; record that once, before any waiting.
        let replica = req.replica_id.0;
        // A follower needs CLUSTER_ACTION on the cluster, a consumer READ on
        // each topic; a topic it may not read is answered TOPIC_AUTHORIZATION_FAILED.
        let authz = ctx.authz();
        let follower_allowed = replica < 0 || authz.allows_cluster(Operation::ClusterAction);
        let allowed: Vec<bool> = req
            .topics
            .iter()
            .map(|ft| {
                if replica >= 0 {
                    follower_allowed
                } else {
                    authz.allows(Operation::Read, ResourceType::Topic, ft.topic.0.as_str())
                }
            })
            .collect();
        if replica >= 0 && follower_allowed {
            for ft in &req.topics {
                for fp in &ft.partitions {
                    let Ok(p) = ctx.replicas().leader_partition(ft.topic.0.as_str(), fp.partition) else {
                        continue;
                    };
                    if fp.current_leader_epoch >= 0 && fp.current_leader_epoch != p.leader_epoch() {
                        continue;
                    }
                    leader::record_follower_fetch(
                        ctx.replicas().host(),
                        p,
                        replica,
                        fp.fetch_offset,
                        fp.log_start_offset,
                    );
                }
            }
        }
        // Subscribe before the first read so an append in between is not missed.
        // Consumers also wake when a high watermark moves (they read below it);
        // followers read to the log end and wake on appends only.
        let mut appended = ctx.replicas().subscribe_appends();
        let mut advanced = ctx.replicas().subscribe_high_watermarks();
        loop {
            appended.borrow_and_update();
            advanced.borrow_and_update();
            let pass = read_all(&ctx, &req, &allowed, max_bytes, read_committed).await;
            let expired = Instant::now() >= deadline;
            if pass.bytes >= min_bytes.max(1) || pass.any_error || expired || wait.is_zero() {
                // Over its byte rate, a consumer gets an empty response with
                // the throttle time, and what it would have read stays unread.
                if quota.is_some() {
                    let throttle = ctx.record_quota(QuotaType::Fetch, pass.bytes as f64);
                    if throttle > 0 {
                        ctx.unrecord_quota(QuotaType::Fetch, pass.bytes as f64);
                        ctx.zero_copy.clear();
                        ctx.metrics().request_time(Timed::FetchConsumer, started.elapsed());
                        return Some(
                            FetchResponse::default()
                                .with_session_id(0)
                                .with_throttle_time_ms(i32::try_from(throttle).unwrap_or(i32::MAX)),
                        );
                    }
                }
                record_metrics(&ctx, &pass, replica >= 0, started);
                return Some(
                    FetchResponse::default()
                        .with_responses(pass.responses)
                        .with_session_id(0),
                );
            }
            let woken = async {
                if replica >= 0 {
                    appended.changed().await
                } else {
                    tokio::select! {
                        r = appended.changed() => r,
                        r = advanced.changed() => r,
                    }
                }
            };
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                continue; // deadline: one last read, then answer
            }
        }
    }
}

/// What one pass over the requested partitions read.
struct Pass {
    responses: Vec<FetchableTopicResponse>,
    /// Record bytes in the response.
    bytes: usize,
    any_error: bool,
    /// Record bytes per partition read for a consumer, for the topics' BytesOut.
    sent: Vec<(Arc<Partition>, usize)>,
}

/// Counts the answered fetch: its time, its partitions' errors, and for
/// consumers (not followers) the bytes each topic sent.
fn record_metrics(ctx: &RequestContext, pass: &Pass, follower: bool, started: Instant) {
    let m = ctx.metrics();
    m.request_time(
        if follower {
            Timed::FetchFollower
        } else {
            Timed::FetchConsumer
        },
        started.elapsed(),
    );
    if pass.any_error {
        for p in pass.responses.iter().flat_map(|t| &t.partitions) {
            m.error(ApiKey::Fetch, p.error_code);
        }
    }
    if !follower {
        for (p, bytes) in &pass.sent {
            p.metrics.bytes_out.inc_by(*bytes as u64);
        }
    }
}

/// One pass over the requested partitions.
async fn read_all(
    ctx: &RequestContext,
    req: &FetchRequest,
    allowed: &[bool],
    max_bytes: usize,
    read_committed: bool,
) -> Pass {
    ctx.zero_copy.clear();
    let mut sent = Vec::new();
    let mut total = 0usize;
    let mut any_error = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    for (ft, &allowed) in req.topics.iter().zip(allowed) {
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()));
            if read_committed {
                pd.aborted_transactions = Some(Vec::new());
            }
            if !allowed {
                any_error = true;
                partitions.push(pd.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            // KIP-392: where the rack-aware selector is on, a consumer whose
            // fetch can follow a preferred read replica (v11+) may also read a
            // follower here. Elsewhere followers refuse consumers, as before.
            let from_followers = req.replica_id.0 < 0 && ctx.api_version() >= 11 && ctx.config().rack_aware_fetching();
            let (p, leading) = match ctx.replicas().leader_partition(ft.topic.0.as_str(), fp.partition) {
                Ok(p) => (p, true),
                Err(ResponseError::NotLeaderOrFollower) if from_followers => {
                    match ctx
                        .replicas()
                        .readable_partition(ft.topic.0.as_str(), fp.partition, true)
                    {
                        Ok(p) => (p, false),
                        Err(e) => {
                            any_error = true;
                            partitions.push(pd.with_error_code(e.code()));
                            continue;
                        }
                    }
                }
                Err(e) => {
                    any_error = true;
                    partitions.push(pd.with_error_code(e.code()));
                    continue;
                }
            };
            // KIP-320: a client that names its leader epoch is told when it is behind or ahead.
            let epoch = p.leader_epoch();
            if fp.current_leader_epoch >= 0 && fp.current_leader_epoch != epoch {
                any_error = true;
                let code = if fp.current_leader_epoch < epoch {
                    ResponseError::FencedLeaderEpoch
                } else {
                    ResponseError::UnknownLeaderEpoch
                };
                partitions.push(pd.with_error_code(code.code()));
                continue;
            }
            let hw = p.high_watermark();
            // Below the first open transaction: what read_committed consumers may
            // read. Followers read to the log end and need no LSO (no second
            // lock of the log on the replication path).
            let lso = if req.replica_id.0 >= 0 {
                hw
            } else {
                p.last_stable_offset()
            };
            pd = pd
                .with_high_watermark(hw)
                .with_last_stable_offset(lso)
                .with_log_start_offset(p.log_start_offset());
            // The leader points a consumer in another rack at a replica in its
            // own, and sends no records: the client fetches there next.
            if leading && from_followers {
                let rack = req.rack_id.as_str();
                if let Some(r) = ctx.replicas().preferred_read_replica(&p, rack) {
                    partitions.push(pd.with_preferred_read_replica(BrokerId(r)));
                    continue;
                }
            }
            let budget = max_bytes
                .saturating_sub(total)
                .min(fp.partition_max_bytes.max(0) as usize);
            // Only the first partition with data may exceed the limits, by one whole batch.
            let min_one = total == 0;
            if budget == 0 && !min_one {
                partitions.push(pd);
                continue;
            }
            // A replica being added by a reassignment is fed at leader.replication.throttled.rate.
            let throttle = LeaderThrottle::for_replica(ctx.replicas().host().as_ref(), &p, req.replica_id.0);
            let reserved = match &throttle {
                Some(t) => match t.reserve(budget.max(1) as u64) {
                    Some(r) => Some(r),
                    None => {
                        partitions.push(pd);
                        continue;
                    }
                },
                None => None,
            };
            let budget = reserved.map_or(budget, |r| budget.min(r as usize));
            // Consumers read only what every in-sync replica has; followers read to the log end.
            // read_committed consumers only what no open transaction may still abort.
            let limit = if req.replica_id.0 >= 0 {
                i64::MAX
            } else if read_committed {
                lso
            } else {
                hw
            };
            let read = p.read_slice(fp.fetch_offset, budget, min_one, limit).await;
            if let (Some(t), Some(r)) = (&throttle, reserved) {
                t.refund(r);
            }
            match read {
                Ok(Some(slice)) => {
                    if let Some(t) = &throttle {
                        t.charge(slice.len);
                        ctx.metrics().leader_reassignment_bytes.inc_by(slice.len as u64);
                    }
                    total += slice.len;
                    if req.replica_id.0 < 0 {
                        sent.push((Arc::clone(&p), slice.len));
                    }
                    pd.records = Some(ctx.zero_copy.placeholder(slice));
                    if read_committed {
                        // The aborted transactions the records read may hold; the consumer drops them.
                        pd.aborted_transactions = Some(
                            p.aborted_between(fp.fetch_offset, limit)
                                .into_iter()
                                .map(|t| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(t.producer_id))
                                        .with_first_offset(t.first_offset)
                                })
                                .collect(),
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    any_error = true;
                    pd.error_code = read_error_code(&e).code();
                }
            }
            partitions.push(pd);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_partitions(partitions),
        );
    }
    Pass {
        responses,
        bytes: total,
        any_error,
        sent,
    }
}
