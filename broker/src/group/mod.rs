//! The group coordinator: consumer groups and their committed offsets.
//!
//! Owns the state machine of every group (`state.rs`, pure) and the cache of
//! committed offsets, whose source of truth is the compacted internal topic
//! `__consumer_offsets` (`offsets.rs`). It parks JoinGroup and SyncGroup
//! requests that must wait for other members and answers them when the state
//! machine says so. It never talks to sockets; protocol handlers call it. It
//! keeps no notion of how many brokers there are: a group belongs to the
//! `__consumer_offsets` partition its id hashes to.

pub mod consumer;
mod host;
pub mod offsets;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;

use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::coordinator::{InternalLog, InternalTopic};
use crate::error::AdminError;
pub use host::GroupHost;
pub use offsets::CommittedOffset;
use state::{Completions, Group, GroupConfig, JoinRequest, JoinResult, Reply, SyncResult};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A group and the members waiting on it.
struct GroupEntry {
    group: Group,
    join_waiters: HashMap<String, oneshot::Sender<JoinResult>>,
    sync_waiters: HashMap<String, oneshot::Sender<SyncResult>>,
}

impl GroupEntry {
    fn deliver(&mut self, c: Completions) {
        for (id, r) in c.joins {
            if let Some(tx) = self.join_waiters.remove(&id) {
                let _ = tx.send(r);
            }
        }
        for (id, r) in c.syncs {
            if let Some(tx) = self.sync_waiters.remove(&id) {
                let _ = tx.send(r);
            }
        }
    }
}

/// An offset committed in a transaction that is still open: (group, topic, partition, offset).
type PendingOffset = (String, String, i32, CommittedOffset);

/// Offsets committed by one group: (topic, partition) -> offset.
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// The coordinator of every group on this broker.
pub struct GroupCoordinator {
    config: GroupConfig,
    offsets_partitions: i32,
    groups: Mutex<HashMap<String, GroupEntry>>,
    /// Groups of the KIP-848 consumer protocol.
    consumer_groups: Mutex<HashMap<String, consumer::ConsumerGroup>>,
    /// (session timeout, heartbeat interval) of consumer-protocol members.
    consumer_timeouts: (i64, i32),
    offsets: Mutex<HashMap<String, GroupOffsets>>,
    /// Offsets committed in open transactions (TxnOffsetCommit), by producer
    /// id: they join `offsets` when the commit marker is written, and are
    /// dropped by an abort.
    txn_offsets: Mutex<HashMap<i64, Vec<PendingOffset>>>,
    /// Serialises writes to `__consumer_offsets` with the cache updates that follow them.
    commit_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("offsets_partitions", &self.offsets_partitions)
            .finish()
    }
}

/// A member's view of a group for DescribeGroups.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<state::Member>,
}

impl crate::coordinator::Coordinator for GroupCoordinator {
    fn topic(&self) -> &'static str {
        OFFSETS_TOPIC
    }

    fn became_leader(&self, p: &dyn InternalLog) {
        self.load(p)
    }

    fn lost_leadership(&self, index: i32) {
        self.forget(index)
    }
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, offsets_partitions: i32, consumer_timeouts: (i64, i32)) -> GroupCoordinator {
        GroupCoordinator {
            config,
            offsets_partitions,
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            consumer_timeouts,
            offsets: Mutex::new(HashMap::new()),
            txn_offsets: Mutex::new(HashMap::new()),
            commit_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, GroupEntry>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn consumer_groups(&self) -> MutexGuard<'_, HashMap<String, consumer::ConsumerGroup>> {
        self.consumer_groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// ConsumerGroupHeartbeat (KIP-848): joins, leaves, and moves a member towards its target assignment.
    pub fn consumer_heartbeat(
        &self,
        host: &Arc<impl GroupHost>,
        group_id: &str,
        req: consumer::HeartbeatRequest,
    ) -> Result<(consumer::HeartbeatResult, i32), ResponseError> {
        if self.groups().get(group_id).is_some_and(|e| !e.group.is_empty()) {
            // The id belongs to a live classic group.
            return Err(ResponseError::GroupIdNotFound);
        }
        let topics = host.topics_view();
        let mut groups = self.consumer_groups();
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(|| consumer::ConsumerGroup::new(group_id));
        tracing::debug!(group = group_id, member = %req.member_id, epoch = req.member_epoch, "consumer group heartbeat");
        let overrides = host.group_configs(group_id);
        let value = |key, default| crate::config::group_config_value(host.config(), &overrides, key).unwrap_or(default);
        g.session_timeout_ms = Some(value("consumer.session.timeout.ms", self.consumer_timeouts.0));
        let interval = value("consumer.heartbeat.interval.ms", self.consumer_timeouts.1.into());
        let r = g.heartbeat(req, &topics, now_ms(), || uuid::Uuid::new_v4().to_string())?;
        Ok((r, interval as i32))
    }

    /// A consumer-protocol group, for ConsumerGroupDescribe.
    pub fn consumer_group(&self, group_id: &str) -> Option<consumer::ConsumerGroup> {
        self.consumer_groups().get(group_id).cloned()
    }

    fn offsets(&self) -> MutexGuard<'_, HashMap<String, GroupOffsets>> {
        self.offsets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This broker now leads an `__consumer_offsets` partition: replay it into
    /// the cache, so the groups it owns are coordinated here.
    fn load(&self, p: &dyn InternalLog) {
        let started = std::time::Instant::now();
        match tokio::task::block_in_place(|| self.load_partition(p)) {
            Ok(n) => tracing::info!(
                partition = p.index(),
                records = n,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "loaded committed offsets from {OFFSETS_TOPIC}"
            ),
            Err(e) => tracing::error!(partition = p.index(), "cannot load {OFFSETS_TOPIC}: {e}"),
        }
    }

    /// Another broker leads an `__consumer_offsets` partition now: forget its groups here.
    fn forget(&self, partition: i32) {
        let owned = |g: &str| self.partition_for(g) == partition;
        self.offsets().retain(|g, _| !owned(g));
        self.groups().retain(|g, _| !owned(g));
        self.consumer_groups().retain(|g, _| !owned(g));
    }

    /// Replays one `__consumer_offsets` partition into the cache (blocking).
    fn load_partition(&self, p: &dyn InternalLog) -> std::io::Result<usize> {
        let mut count = 0;
        let mut cache = self.offsets();
        cache.retain(|g, _| self.partition_for(g) != p.index());
        // Transactional commits wait for their producer's marker.
        let mut open: HashMap<i64, Vec<PendingOffset>> = HashMap::new();
        let apply = |cache: &mut HashMap<String, GroupOffsets>,
                     group: String,
                     topic: String,
                     partition: i32,
                     value: Option<CommittedOffset>| {
            match value {
                Some(v) => {
                    cache.entry(group).or_default().insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = cache.get_mut(&group) {
                        g.remove(&(topic, partition));
                    }
                }
            }
        };
        crate::coordinator::replay(p, |h, r| {
            let Some(key) = r.key.as_deref() else { return };
            if h.is_control() {
                let done = open.remove(&h.producer_id).unwrap_or_default();
                if crate::log::batch::control_key_is_commit(key) {
                    for (group, topic, partition, v) in done {
                        apply(&mut cache, group, topic, partition, Some(v));
                    }
                }
                return;
            }
            if let Some(offsets::OffsetRecord::Offset {
                group,
                topic,
                partition,
                value,
            }) = offsets::decode(key, r.value.as_deref())
            {
                count += 1;
                match value {
                    Some(v) if h.is_transactional() => open
                        .entry(h.producer_id)
                        .or_default()
                        .push((group, topic, partition, v)),
                    _ => apply(&mut cache, group, topic, partition, value),
                }
            }
        })?;
        cache.retain(|_, o| !o.is_empty());
        drop(cache);
        let mut pending = self.txn_offsets();
        for list in pending.values_mut() {
            list.retain(|(g, ..)| self.partition_for(g) != p.index());
        }
        for (pid, list) in open {
            pending.entry(pid).or_default().extend(list);
        }
        pending.retain(|_, l| !l.is_empty());
        Ok(count)
    }

    fn txn_offsets(&self) -> MutexGuard<'_, HashMap<i64, Vec<PendingOffset>>> {
        self.txn_offsets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// TxnOffsetCommit: writes the commits to `__consumer_offsets` in the
    /// producer's transaction; they take effect with its commit marker.
    pub async fn txn_commit(
        &self,
        host: &Arc<impl GroupHost>,
        group_id: &str,
        producer: (i64, i16),
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        if commits.is_empty() {
            return Ok(());
        }
        self.ensure_offsets_topic(host).await.map_err(|e| e.code)?;
        let records: Vec<(Option<Bytes>, Option<Bytes>)> = commits
            .iter()
            .map(|(t, p, v)| {
                (
                    Some(offsets::offset_key(group_id, t, *p)),
                    Some(offsets::offset_value(v)),
                )
            })
            .collect();
        let batch = crate::log::batch::encode_transactional(&records, producer.0, producer.1, now_ms())
            .map_err(|_| ResponseError::UnknownServerError)?;
        let _g = self.commit_lock.lock().await;
        host.append_internal(OFFSETS_TOPIC, self.partition_for(group_id), batch)
            .await?;
        self.txn_offsets()
            .entry(producer.0)
            .or_default()
            .extend(commits.into_iter().map(|(t, p, v)| (group_id.to_string(), t, p, v)));
        Ok(())
    }

    /// A transaction marker was written to `__consumer_offsets` partition
    /// `index`: the producer's offsets there take effect (commit) or are dropped.
    pub fn complete_txn(&self, index: i32, producer_id: i64, commit: bool) {
        let done: Vec<PendingOffset> = {
            let mut pending = self.txn_offsets();
            let Some(list) = pending.get_mut(&producer_id) else {
                return;
            };
            let (here, rest): (Vec<_>, Vec<_>) = list.drain(..).partition(|(g, ..)| self.partition_for(g) == index);
            *list = rest;
            if list.is_empty() {
                pending.remove(&producer_id);
            }
            here
        };
        if commit {
            let mut cache = self.offsets();
            for (group, topic, partition, v) in done {
                cache.entry(group).or_default().insert((topic, partition), v);
            }
        }
    }

    /// Whether a transaction still open has committed an offset of the
    /// group's partition (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.txn_offsets()
            .values()
            .flatten()
            .any(|(g, t, p, _)| g == group_id && t == topic && *p == partition)
    }

    /// Whether this broker coordinates `group`: it leads the group's
    /// `__consumer_offsets` partition. NOT_COORDINATOR sends the client back to
    /// FindCoordinator; before the topic exists every broker may answer.
    pub fn check_coordinator(&self, host: &Arc<impl GroupHost>, group: &str) -> Result<(), ResponseError> {
        crate::coordinator::check_coordinator(host.as_ref(), OFFSETS_TOPIC, self.partition_for(group))
    }

    /// The `__consumer_offsets` partition that owns `group`.
    pub fn partition_for(&self, group: &str) -> i32 {
        offsets::partition_for(group, self.offsets_partitions)
    }

    /// Creates `__consumer_offsets` if it does not exist (compacted, as in Kafka).
    pub async fn ensure_offsets_topic(&self, host: &Arc<impl GroupHost>) -> Result<(), AdminError> {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("segment.bytes".to_string(), "104857600".to_string());
        let topic = InternalTopic {
            name: OFFSETS_TOPIC,
            partitions: self.offsets_partitions,
            replication_factor: host.config().offsets_topic_replication_factor(),
            configs,
        };
        host.ensure_internal_topic(&topic).await
    }

    /// JoinGroup: answers at once or when the join phase completes.
    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let rx = {
            let mut groups = self.groups();
            let entry = groups.entry(group_id.to_string()).or_insert_with(|| GroupEntry {
                group: Group::new(group_id, self.config),
                join_waiters: HashMap::new(),
                sync_waiters: HashMap::new(),
            });
            let (reply, completions) = entry.group.join(req.clone(), now_ms());
            entry.deliver(completions);
            match reply {
                Reply::Now(r) => return r,
                Reply::Wait(member) => {
                    let (tx, rx) = oneshot::channel();
                    entry.join_waiters.insert(member, tx);
                    rx
                }
            }
        };
        rx.await
            .unwrap_or_else(|_| JoinResult::error(ResponseError::RebalanceInProgress, &req.member_id))
    }

    /// SyncGroup: the leader's assignment, or this member's once the leader sends it.
    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let rx = {
            let mut groups = self.groups();
            let Some(entry) = groups.get_mut(group_id) else {
                return SyncResult::error(ResponseError::UnknownMemberId);
            };
            let (reply, completions) = entry.group.sync(member_id, instance, generation, assignments, now_ms());
            entry.deliver(completions);
            match reply {
                Reply::Now(r) => return r,
                Reply::Wait(member) => {
                    let (tx, rx) = oneshot::channel();
                    entry.sync_waiters.insert(member, tx);
                    rx
                }
            }
        };
        rx.await
            .unwrap_or_else(|_| SyncResult::error(ResponseError::RebalanceInProgress))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        let mut groups = self.groups();
        match groups.get_mut(group_id) {
            Some(entry) => entry.group.heartbeat(member_id, instance, generation, now_ms()),
            None => Some(ResponseError::UnknownMemberId),
        }
    }

    /// LeaveGroup for one member; `None` means it left.
    pub fn leave(&self, group_id: &str, member_id: &str, instance: Option<&str>) -> Option<ResponseError> {
        let mut groups = self.groups();
        let Some(entry) = groups.get_mut(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let (err, completions) = entry.group.leave(member_id, instance, now_ms());
        entry.deliver(completions);
        err
    }

    /// Checks whether a commit from this member and generation may be applied.
    /// Admin and standalone commits (generation -1, no member) apply only to a group without members.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(g) = self.consumer_groups().get(group_id).filter(|g| !g.members.is_empty()) {
            // KIP-848 groups check the member epoch instead of a generation.
            return if generation < 0 && member_id.is_empty() {
                Err(ResponseError::UnknownMemberId)
            } else {
                g.check_commit(member_id, generation)
            };
        }
        let groups = self.groups();
        let Some(entry) = groups.get(group_id) else {
            return if generation < 0 && member_id.is_empty() {
                Ok(())
            } else {
                // The group is unknown (e.g. after a restart): the member must rejoin.
                Err(ResponseError::UnknownMemberId)
            };
        };
        let g = &entry.group;
        if generation < 0 && member_id.is_empty() {
            return if g.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        if g.state == state::GroupState::CompletingRebalance && g.check_member(member_id, instance, generation).is_ok()
        {
            return Err(ResponseError::RebalanceInProgress);
        }
        g.check_member(member_id, instance, generation)
    }

    /// Writes commits to `__consumer_offsets`, then to the cache.
    pub async fn commit(
        &self,
        host: &Arc<impl GroupHost>,
        group_id: &str,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        if commits.is_empty() {
            return Ok(());
        }
        self.ensure_offsets_topic(host).await.map_err(|e| e.code)?;
        let records: Vec<(Bytes, Option<Bytes>)> = commits
            .iter()
            .map(|(t, p, v)| (offsets::offset_key(group_id, t, *p), Some(offsets::offset_value(v))))
            .collect();
        let _g = self.commit_lock.lock().await;
        self.append(host, group_id, records).await?;
        let mut cache = self.offsets();
        let entry = cache.entry(group_id.to_string()).or_default();
        for (t, p, v) in commits {
            entry.insert((t, p), v);
        }
        Ok(())
    }

    async fn append(
        &self,
        host: &Arc<impl GroupHost>,
        group_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ResponseError> {
        let pairs: Vec<(Option<Bytes>, Option<Bytes>)> = records.into_iter().map(|(k, v)| (Some(k), v)).collect();
        let batch = crate::log::batch::encode_records(&pairs, now_ms(), Compression::None)
            .map_err(|_| ResponseError::UnknownServerError)?;
        host.append_internal(OFFSETS_TOPIC, self.partition_for(group_id), batch)
            .await
    }

    /// The committed offsets of a group.
    pub fn committed(&self, group_id: &str) -> GroupOffsets {
        self.offsets().get(group_id).cloned().unwrap_or_default()
    }

    /// (group id, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let groups = self.groups();
        let mut out: Vec<_> = groups
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    e.group.protocol_type.clone().unwrap_or_default(),
                    e.group.state.name(),
                )
            })
            .collect();
        let consumer_groups = self.consumer_groups();
        for (id, g) in consumer_groups.iter() {
            if !groups.contains_key(id) {
                out.push((id.clone(), "consumer".to_string(), g.state()));
            }
        }
        for id in self.offsets().keys() {
            if !groups.contains_key(id) && !consumer_groups.contains_key(id) {
                out.push((id.clone(), "consumer".to_string(), "Empty"));
            }
        }
        out.sort();
        out
    }

    /// DescribeGroups; None if the group is unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        if let Some(e) = self.groups().get(group_id) {
            let g = &e.group;
            return Some(GroupDescription {
                state: g.state.name(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocol: g.protocol.clone().unwrap_or_default(),
                members: g.members.values().cloned().collect(),
            });
        }
        self.offsets().contains_key(group_id).then(|| GroupDescription {
            state: "Empty",
            protocol_type: "consumer".into(),
            protocol: String::new(),
            members: Vec::new(),
        })
    }

    /// DeleteGroups: only groups without members; their offsets get tombstones.
    pub async fn delete(&self, host: &Arc<impl GroupHost>, group_id: &str) -> Result<(), ResponseError> {
        let known = {
            let groups = self.groups();
            match groups.get(group_id) {
                Some(e) if !e.group.is_empty() => return Err(ResponseError::NonEmptyGroup),
                Some(_) => true,
                None => false,
            }
        };
        let committed = self.committed(group_id);
        if !known && committed.is_empty() {
            return Err(ResponseError::GroupIdNotFound);
        }
        if !committed.is_empty() {
            let tombstones = committed
                .keys()
                .map(|(t, p)| (offsets::offset_key(group_id, t, *p), None))
                .collect();
            let _g = self.commit_lock.lock().await;
            self.append(host, group_id, tombstones).await?;
            self.offsets().remove(group_id);
        }
        if let Some(mut e) = self.groups().remove(group_id) {
            e.group.mark_dead();
        }
        Ok(())
    }

    /// OffsetDelete: removes the given offsets unless a live member is subscribed
    /// to their topic (GROUP_SUBSCRIBED_TO_TOPIC). Returns each partition's error.
    pub async fn delete_offsets(
        &self,
        host: &Arc<impl GroupHost>,
        group_id: &str,
        wanted: &[(String, i32)],
    ) -> Result<Vec<((String, i32), Option<ResponseError>)>, ResponseError> {
        let subscribed: Vec<String> = {
            let groups = self.groups();
            let known = groups.contains_key(group_id) || self.offsets().contains_key(group_id);
            if !known {
                return Err(ResponseError::GroupIdNotFound);
            }
            groups
                .get(group_id)
                .map(|e| e.group.subscribed_topics())
                .unwrap_or_default()
        };
        let mut results = Vec::with_capacity(wanted.len());
        let mut tombstones = Vec::new();
        for (t, p) in wanted {
            if subscribed.contains(t) {
                results.push(((t.clone(), *p), Some(ResponseError::GroupSubscribedToTopic)));
            } else if !host.has_partition(t, *p) {
                results.push(((t.clone(), *p), Some(ResponseError::UnknownTopicOrPartition)));
            } else {
                results.push(((t.clone(), *p), None));
                if self.committed(group_id).contains_key(&(t.clone(), *p)) {
                    tombstones.push((offsets::offset_key(group_id, t, *p), None));
                }
            }
        }
        if !tombstones.is_empty() {
            let _g = self.commit_lock.lock().await;
            self.append(host, group_id, tombstones).await?;
            if let Some(g) = self.offsets().get_mut(group_id) {
                for ((t, p), e) in &results {
                    if e.is_none() {
                        g.remove(&(t.clone(), *p));
                    }
                }
            }
        }
        Ok(results)
    }

    /// Removes offsets of groups without members that were committed more than
    /// `retention_ms` ago (Kafka's offsets.retention.minutes), with tombstones.
    pub async fn expire_offsets(&self, host: &Arc<impl GroupHost>, now: i64, retention_ms: i64) -> usize {
        let expired: Vec<(String, Vec<(String, i32)>)> = {
            let groups = self.groups();
            self.offsets()
                .iter()
                .filter(|(g, _)| groups.get(*g).is_none_or(|e| e.group.is_empty()))
                .map(|(g, o)| {
                    let old = o
                        .iter()
                        .filter(|(_, c)| now - c.commit_timestamp > retention_ms)
                        .map(|(k, _)| k.clone())
                        .collect();
                    (g.clone(), old)
                })
                .filter(|(_, old): &(String, Vec<(String, i32)>)| !old.is_empty())
                .collect()
        };
        let mut removed = 0;
        for (group, keys) in expired {
            let tombstones = keys
                .iter()
                .map(|(t, p)| (offsets::offset_key(&group, t, *p), None))
                .collect();
            let _g = self.commit_lock.lock().await;
            if self.append(host, &group, tombstones).await.is_err() {
                continue;
            }
            let mut cache = self.offsets();
            if let Some(o) = cache.get_mut(&group) {
                for k in &keys {
                    o.remove(k);
                }
                if o.is_empty() {
                    cache.remove(&group);
                }
            }
            removed += keys.len();
        }
        removed
    }

    /// Expires members and completes join phases; runs every 100 ms.
    pub fn tick(&self) {
        let now = now_ms();
        {
            let mut consumer_groups = self.consumer_groups();
            let offsets = self.offsets();
            for g in consumer_groups.values_mut() {
                g.expire(now, g.session_timeout_ms.unwrap_or(self.consumer_timeouts.0));
            }
            consumer_groups.retain(|id, g| !g.members.is_empty() || offsets.contains_key(id));
        }
        // Lock order everywhere: groups, then consumer_groups, then offsets.
        let mut groups = self.groups();
        let offsets = self.offsets();
        for e in groups.values_mut() {
            let c = e.group.tick(now);
            e.deliver(c);
        }
        groups.retain(|id, e| !(e.group.is_removable() && e.join_waiters.is_empty() && !offsets.contains_key(id)));
    }

    /// Starts the timer task and the offsets expiry task.
    pub fn spawn_timer(host: &Arc<impl GroupHost>) {
        let b = Arc::downgrade(host);
        let every = Duration::from_millis(host.config().offsets_retention_check_interval_ms().max(10));
        let retention = host.config().offsets_retention_ms();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(b) = b.upgrade() else { return };
                let n = b.coordinator().expire_offsets(&b, now_ms(), retention).await;
                if n > 0 {
                    tracing::info!(offsets = n, "expired committed offsets");
                }
            }
        });
        let b = Arc::downgrade(host);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match b.upgrade() {
                    Some(b) => b.coordinator().tick(),
                    None => return,
                }
            }
        });
    }
}
