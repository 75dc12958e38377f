//! Replica fetchers: one task per leader this broker follows, pulling every
//! partition it follows from that leader in one Fetch request, as Kafka's
//! `ReplicaFetcherThread` does. A partition with a new leader epoch is first
//! truncated to where its log agrees with the leader's (OffsetForLeaderEpoch).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;

use super::host::{Replica, ReplicaHost};
use skein_client::Connection;

type Key = (String, i32);

/// A followed partition, as its fetcher sees it.
struct Followed<R> {
    partition: Arc<R>,
    epoch: i32,
    /// Truncated to agree with the leader in this epoch; fetching may start.
    truncated: bool,
}

impl<R> Clone for Followed<R> {
    fn clone(&self) -> Self {
        Followed {
            partition: Arc::clone(&self.partition),
            epoch: self.epoch,
            truncated: self.truncated,
        }
    }
}

type FollowedMap<R> = Arc<Mutex<BTreeMap<Key, Followed<R>>>>;

struct FetcherTask<R> {
    partitions: FollowedMap<R>,
    wake: Arc<Notify>,
    handle: tokio::task::JoinHandle<()>,
}

/// The broker's replica fetchers, keyed by leader id.
pub struct ReplicaFetchers<R> {
    inner: Mutex<Fetchers<R>>,
}

struct Fetchers<R> {
    tasks: HashMap<i32, FetcherTask<R>>,
    /// The leader each followed partition is fetched from.
    leader_of: BTreeMap<Key, i32>,
}

impl<R> Default for ReplicaFetchers<R> {
    fn default() -> Self {
        ReplicaFetchers {
            inner: Mutex::new(Fetchers {
                tasks: HashMap::new(),
                leader_of: BTreeMap::new(),
            }),
        }
    }
}

impl<R> std::fmt::Debug for ReplicaFetchers<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaFetchers")
            .field("leaders", &lock(&self.inner).tasks.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Replica> ReplicaFetchers<R> {
    /// Sets what to follow of the partitions of `topics`: leader id ->
    /// (partition, leader epoch). Partitions of those topics not named stop
    /// being followed; other topics' partitions are left as they are. A
    /// fetcher left with nothing to follow stops. Costs the named partitions,
    /// not every partition followed.
    pub fn update<H: ReplicaHost<Replica = R>>(
        &self,
        broker: &Arc<H>,
        topics: &BTreeSet<String>,
        wanted: BTreeMap<i32, Vec<(Arc<R>, i32)>>,
    ) {
        let mut inner = lock(&self.inner);
        let Fetchers { tasks, leader_of } = &mut *inner;
        let wanted_leader: HashMap<Key, i32> = wanted
            .iter()
            .flat_map(|(leader, parts)| {
                parts
                    .iter()
                    .map(move |(p, _)| ((p.topic().to_string(), p.index()), *leader))
            })
            .collect();
        let mut touched: BTreeSet<i32> = wanted.keys().copied().collect();
        for topic in topics {
            let gone: Vec<(Key, i32)> = leader_of
                .range((topic.clone(), i32::MIN)..=(topic.clone(), i32::MAX))
                .filter(|(k, l)| wanted_leader.get(*k) != Some(*l))
                .map(|(k, l)| (k.clone(), *l))
                .collect();
            for (key, leader) in gone {
                leader_of.remove(&key);
                if let Some(t) = tasks.get(&leader) {
                    lock(&t.partitions).remove(&key);
                    touched.insert(leader);
                }
            }
        }
        for (leader, parts) in wanted {
            let task = tasks.entry(leader).or_insert_with(|| {
                let partitions = Arc::new(Mutex::new(BTreeMap::new()));
                let wake = Arc::new(Notify::new());
                let handle = tokio::spawn(run(
                    Arc::downgrade(broker),
                    leader,
                    Arc::clone(&partitions),
                    Arc::clone(&wake),
                ));
                FetcherTask {
                    partitions,
                    wake,
                    handle,
                }
            });
            let mut st = lock(&task.partitions);
            for (p, epoch) in parts {
                let key = (p.topic().to_string(), p.index());
                leader_of.insert(key.clone(), leader);
                match st.get_mut(&key) {
                    Some(f) if f.epoch == epoch && Arc::ptr_eq(&f.partition, &p) => {}
                    _ => {
                        st.insert(
                            key,
                            Followed {
                                partition: p,
                                epoch,
                                truncated: false,
                            },
                        );
                    }
                }
            }
        }
        for leader in touched {
            let Some(t) = tasks.get(&leader) else { continue };
            if lock(&t.partitions).is_empty() {
                t.handle.abort();
                tasks.remove(&leader);
            } else {
                t.wake.notify_one();
            }
        }
    }

    /// Stops every fetcher (shutdown).
    pub fn stop_all(&self) {
        let mut inner = lock(&self.inner);
        inner.leader_of.clear();
        for (_, t) in inner.tasks.drain() {
            t.handle.abort();
        }
    }
}

async fn run<H: ReplicaHost>(broker: Weak<H>, leader: i32, partitions: FollowedMap<H::Replica>, wake: Arc<Notify>) {
    let mut conn: Option<Connection> = None;
    loop {
        let Some(b) = broker.upgrade() else { return };
        let backoff = Duration::from_millis(b.config().replica_fetch_backoff_ms().max(10));
        let followed: Vec<(Key, Followed<H::Replica>)> =
            lock(&partitions).iter().map(|(k, f)| (k.clone(), f.clone())).collect();
        if followed.is_empty() {
            drop(b);
            wake.notified().await;
            continue;
        }
        if conn.is_none() {
            let address = b.broker_address(leader);
            let Some(address) = address else {
                drop(b);
                tokio::time::sleep(backoff).await;
                continue;
            };
            let client_id = format!("skein-replica-fetcher-{}-{leader}", b.node_id());
            // A response holds at most the requested bytes plus one batch over, and
            // no batch is larger than the request frame that brought it.
            let max_response = b.config().replica_fetch_response_max_bytes() + b.config().socket_request_max_bytes();
            let security = b.client_security();
            match Connection::connect_with(&address, client_id, Duration::from_secs(2), max_response, &security).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(leader, "cannot reach the leader at {address}: {e}");
                    drop(b);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let pending: Vec<&(Key, Followed<H::Replica>)> = followed.iter().filter(|(_, f)| !f.truncated).collect();
        let result = if pending.is_empty() {
            fetch(&b, c, &partitions, &followed).await
        } else {
            truncate(&b, c, &partitions, &pending).await
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                drop(b);
                tokio::time::sleep(backoff).await;
            }
            Err(e) => {
                tracing::debug!(leader, "replica fetch failed: {e}");
                conn = None;
                drop(b);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

fn still_current<R>(partitions: &Mutex<BTreeMap<Key, Followed<R>>>, key: &Key, f: &Followed<R>) -> bool {
    lock(partitions)
        .get(key)
        .is_some_and(|now| now.epoch == f.epoch && Arc::ptr_eq(&now.partition, &f.partition))
}

/// Truncates each partition to the offset where it agrees with the leader.
/// Ok(false) if some partition must be retried.
async fn truncate<H: ReplicaHost>(
    broker: &Arc<H>,
    conn: &mut Connection,
    partitions: &Mutex<BTreeMap<Key, Followed<H::Replica>>>,
    pending: &[&(Key, Followed<H::Replica>)],
) -> std::io::Result<bool> {
    let mut ask: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut done = Vec::new();
    for (key, f) in pending {
        match f.partition.latest_epoch() {
            Some((epoch, _)) => ask.entry(key.0.clone()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(key.1)
                    .with_current_leader_epoch(f.epoch)
                    .with_leader_epoch(epoch),
            ),
            // Nothing written under any epoch: nothing can diverge.
            None => done.push((key.clone(), (*f).clone())),
        }
    }
    let mut all_ok = true;
    if !ask.is_empty() {
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(broker.node_id()))
            .with_topics(
                ask.into_iter()
                    .map(|(t, ps)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = conn.call(3, &req, Duration::from_secs(10)).await?;
        let asked: HashMap<&Key, &Followed<H::Replica>> = pending.iter().map(|(k, f)| (k, f)).collect();
        for t in resp.topics {
            for pr in t.partitions {
                let key = (t.topic.0.to_string(), pr.partition);
                let Some(&f) = asked.get(&key) else {
                    continue;
                };
                if pr.error_code != 0 {
                    tracing::debug!(topic = %key.0, partition = key.1, code = pr.error_code, "OffsetForLeaderEpoch refused");
                    all_ok = false;
                    continue;
                }
                let p = &f.partition;
                let mine = p.latest_epoch().map_or(-1, |(e, _)| e);
                let target = truncation_target(
                    (pr.leader_epoch, pr.end_offset),
                    mine,
                    p.high_watermark(),
                    p.log_start_offset(),
                    |epoch| p.end_offset_for_epoch(epoch).1,
                );
                if target < p.log_end_offset() {
                    tracing::info!(
                        topic = %key.0,
                        partition = key.1,
                        from = p.log_end_offset(),
                        to = target,
                        "truncating a divergent tail before following the new leader"
                    );
                    p.truncate_to(target).await?;
                }
                done.push((key, f.clone()));
            }
        }
    }
    let mut st = lock(partitions);
    for (key, f) in done {
        if let Some(now) = st.get_mut(&key) {
            if now.epoch == f.epoch && Arc::ptr_eq(&now.partition, &f.partition) {
                now.truncated = true;
            }
        }
    }
    Ok(all_ok)
}

/// Where a follower cuts its log before following a new leader, from the
/// leader's OffsetForLeaderEpoch answer `(epoch, end offset)`: the leader's end
/// of that epoch (bounded by this log's own end of it when the leader's epoch
/// is older than this log's latest), or, when the leader knows no epoch this
/// old, the high watermark. Never below this log's start: the records below it
/// are gone already, and an unknown (-1) offset is no place to cut.
pub fn truncation_target(
    (leader_epoch, leader_end): (i32, i64),
    my_latest_epoch: i32,
    high_watermark: i64,
    log_start: i64,
    my_end_for_epoch: impl Fn(i32) -> i64,
) -> i64 {
    let target = if leader_epoch < 0 || leader_end < 0 {
        high_watermark
    } else if leader_epoch < my_latest_epoch {
        leader_end.min(my_end_for_epoch(leader_epoch))
    } else {
        leader_end
    };
    target.max(log_start)
}

/// One Fetch for every followed partition; appends what comes back.
async fn fetch<H: ReplicaHost>(
    broker: &Arc<H>,
    conn: &mut Connection,
    partitions: &Mutex<BTreeMap<Key, Followed<H::Replica>>>,
    followed: &[(Key, Followed<H::Replica>)],
) -> std::io::Result<bool> {
    let wait = broker.config().replica_fetch_wait_max_ms();
    let max = broker.config().replica_fetch_max_bytes();
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    let rate = broker.dynamic_u64("follower.replication.throttled.rate");
    let now = crate::clock::now_ms();
    let throttled = |f: &Followed<H::Replica>| f.partition.is_adding(broker.node_id());
    // Replicas a reassignment is adding fetch at follower.replication.throttled.rate:
    // this fetch reads at most what it reserved of the bucket, split between them.
    let adding = followed.iter().filter(|(_, f)| throttled(f)).count() as u64;
    let reserved = (adding > 0)
        .then(|| lock(broker.follower_throttle()).reserve(rate, now, max.max(1) as u64 * adding))
        .flatten();
    let throttled_max = reserved.map_or(0, |r| (r / adding.max(1)).clamp(1, max.max(1) as u64) as i32);
    for (key, f) in followed {
        if throttled(f) && reserved.is_none() {
            continue;
        }
        let max = if throttled(f) { throttled_max } else { max };
        topics.entry(key.0.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(key.1)
                .with_current_leader_epoch(f.epoch)
                .with_fetch_offset(f.partition.log_end_offset())
                .with_log_start_offset(f.partition.log_start_offset())
                .with_partition_max_bytes(max),
        );
    }
    if topics.is_empty() {
        return Ok(false);
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_max_wait_ms(wait)
        .with_min_bytes(1)
        .with_max_bytes(broker.config().replica_fetch_response_max_bytes() as i32)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let timeout = Duration::from_millis(wait.max(0) as u64) + Duration::from_secs(10);
    let resp = conn.call(12, &req, timeout).await?;
    let mut all_ok = resp.error_code == 0;
    // By key, not by a scan per answer: a follower of 100,000 partitions would
    // otherwise compare keys 10^10 / 2 times per fetch.
    let asked: HashMap<&Key, &Followed<H::Replica>> = followed.iter().map(|(k, f)| (k, f)).collect();
    for t in resp.responses {
        for pd in t.partitions {
            let key = (t.topic.0.to_string(), pd.partition_index);
            let Some(&f) = asked.get(&key) else {
                continue;
            };
            if !still_current(partitions, &key, f) {
                continue;
            }
            if pd.error_code != 0 {
                all_ok = false;
                let code = ResponseError::try_from_code(pd.error_code);
                tracing::debug!(topic = %key.0, partition = key.1, ?code, "replica fetch refused");
                if code == Some(ResponseError::OffsetOutOfRange) && pd.log_start_offset > f.partition.log_end_offset() {
                    // The leader deleted what this replica still needs: start over at its log start.
                    f.partition.reset_to(pd.log_start_offset).await?;
                }
                continue;
            }
            if let Some(records) = pd.records.filter(|r| !r.is_empty()) {
                if throttled(f) {
                    lock(broker.follower_throttle()).charge(records.len());
                    broker
                        .metrics()
                        .follower_reassignment_bytes
                        .inc_by(records.len() as u64);
                }
                if let Err(e) = f.partition.append_replicated(records).await {
                    tracing::warn!(topic = %key.0, partition = key.1, "cannot append replicated batches: {e}");
                    // Re-check against the leader before trying again.
                    if let Some(now) = lock(partitions).get_mut(&key) {
                        now.truncated = false;
                    }
                    all_ok = false;
                    continue;
                }
                broker.notify_append();
            }
            f.partition.follower_high_watermark(pd.high_watermark);
            // DeleteRecords on the leader: the follower drops the same prefix,
            // so deleted records do not come back after a failover.
            if pd.log_start_offset > f.partition.log_start_offset() {
                if let Err(e) = f.partition.follow_log_start_offset(pd.log_start_offset).await {
                    tracing::warn!(topic = %key.0, partition = key.1, "cannot move the log start offset: {e}");
                }
            }
        }
    }
    if let Some(r) = reserved {
        lock(broker.follower_throttle()).refund(r);
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::truncation_target;

    #[test]
    fn an_empty_partition_is_never_cut_to_minus_one() {
        // Empty log (start 0, end 0), high watermark not known yet (-1).
        assert_eq!(truncation_target((-1, -1), -1, -1, 0, |_| -1), 0);
        assert_eq!(truncation_target((3, -1), -1, -1, 0, |_| -1), 0);
        assert_eq!(
            truncation_target((2, 10), 5, 0, 0, |_| -1),
            0,
            "this log has no end for the epoch"
        );
    }

    #[test]
    fn a_follower_cuts_to_the_leaders_end_of_the_epoch() {
        assert_eq!(truncation_target((4, 120), 4, 100, 0, |_| 130), 120);
        assert_eq!(
            truncation_target((3, 120), 4, 100, 0, |_| 110),
            110,
            "its own end of the older epoch"
        );
        assert_eq!(
            truncation_target((-1, -1), 4, 100, 0, |_| 110),
            100,
            "the high watermark"
        );
        assert_eq!(
            truncation_target((3, 40), 4, 30, 50, |_| 60),
            50,
            "never below the log start"
        );
    }
}
