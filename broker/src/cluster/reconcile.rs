//! Applying the metadata image to this broker's replicas: open the logs of
//! replicas assigned here, delete the ones no longer assigned, take leader and
//! follower roles, and point the replica fetchers at the leaders.
//!
//! Each application looks only at the topics whose image changed since the
//! last one (Kafka's `MetadataDelta`): the image shares unchanged topics
//! (`Arc<TopicImage>`, copied on write), so what changed is found by pointer,
//! and a metadata entry that moves one partition costs one topic's work, not
//! a walk of every partition the cluster has.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::config::LogConfig;
use crate::controller::image::{TopicImage, NO_LEADER};

/// The topic images the last reconcile applied (shared with the metadata
/// image, so an unchanged topic is the same pointer). None before the first.
#[derive(Debug, Default)]
pub struct Reconciled {
    topics: Option<BTreeMap<String, Arc<TopicImage>>>,
}

/// Topic images by name: the part of the metadata image a reconcile reads.
pub type TopicImages = BTreeMap<String, Arc<TopicImage>>;

/// The topics of `now` that differ from `seen` (new or changed, by pointer)
/// and the topics of `seen` that `now` no longer has, in name order. One
/// merge walk of the two sorted maps: no allocation but the answer.
pub fn changed_topics(seen: &TopicImages, now: &TopicImages) -> Vec<String> {
    let mut changed = Vec::new();
    let mut a = seen.iter().peekable();
    let mut b = now.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return changed,
            (Some((name, _)), None) => {
                changed.push((*name).clone());
                a.next();
            }
            (None, Some((name, _))) => {
                changed.push((*name).clone());
                b.next();
            }
            (Some((x, xt)), Some((y, yt))) => match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    changed.push((*x).clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    changed.push((*y).clone());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(xt, yt) {
                        changed.push((*y).clone());
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// The roles one reconcile changed, logged when it is done: each at INFO when
/// there are a few; a start or a failover moving thousands logs each at DEBUG
/// and one summary at INFO (100,000 lines would be a second of a start).
#[derive(Default)]
struct RoleChanges {
    led: Vec<(String, i32, i32, Vec<i32>)>,
    followed: Vec<(String, i32, i32, i32)>,
}

impl RoleChanges {
    const ONE_BY_ONE_AT_MOST: usize = 64;

    fn log(&self) {
        let each_at_info = self.led.len() + self.followed.len() <= Self::ONE_BY_ONE_AT_MOST;
        for (topic, partition, leader_epoch, isr) in &self.led {
            if each_at_info {
                tracing::info!(topic = %topic, partition, leader_epoch, ?isr, "leading");
            } else {
                tracing::debug!(topic = %topic, partition, leader_epoch, ?isr, "leading");
            }
        }
        for (topic, partition, leader, leader_epoch) in &self.followed {
            if each_at_info {
                tracing::info!(topic = %topic, partition, leader, leader_epoch, "following");
            } else {
                tracing::debug!(topic = %topic, partition, leader, leader_epoch, "following");
            }
        }
        if !each_at_info {
            tracing::info!(
                leading = self.led.len(),
                following = self.followed.len(),
                "replicas took new roles (each logged at debug level)"
            );
        }
    }
}

impl Broker {
    /// Brings local replicas in line with the metadata image: opens the logs of
    /// replicas assigned here, deletes those no longer assigned, takes leader
    /// and follower roles, and points the replica fetchers at the leaders.
    /// What to do is decided by [`replica_changes`]; this only carries it out.
    pub async fn reconcile(self: &Arc<Self>) {
        let mut reconciled = self.reconcile_lock.lock().await;
        let me = self.node_id;
        let first = reconciled.topics.is_none();
        let seen = reconciled.topics.get_or_insert_with(BTreeMap::new);
        // The changed topics' images, taken under the image's lock (pointers only).
        let (names, image): (Vec<String>, TopicImages) = self.controller.with_image(|img| {
            let names = changed_topics(seen, &img.topics);
            let image = names
                .iter()
                .filter_map(|n| img.topics.get(n).map(|t| (n.clone(), Arc::clone(t))))
                .collect();
            (names, image)
        });
        let names: BTreeSet<String> = names.into_iter().collect();
        // The first reconcile also looks at every local topic (deleted while this broker was down).
        let local: BTreeMap<String, LocalTopic> = self
            .topics_read()
            .values()
            .filter(|t| first || names.contains(&t.name))
            .map(|t| {
                let partitions = t
                    .partitions
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .copied()
                    .collect();
                (t.name.clone(), LocalTopic { id: t.id, partitions })
            })
            .collect();
        let changes = replica_changes(&image, me, &local);
        for name in &changes.delete_topics {
            let removed = self.topics_write().remove(name);
            self.metrics.remove_topic(name);
            if let Some(t) = removed {
                let parts = t.all_partitions();
                self.remove_replicas(&t.name, parts).await;
            }
        }
        let mut opened = self.open_new_replicas(&image, &changes).await;
        let mut role_changes = RoleChanges::default();
        let mut follow: BTreeMap<i32, Vec<(Arc<Partition>, i32)>> = BTreeMap::new();
        // Topics to look at again next time (a log that would not open).
        let mut again: BTreeSet<String> = BTreeSet::new();
        for (name, ti) in &image {
            // A new topic becomes visible to requests only once its local replicas are open.
            let (topic, is_new) = match self.topic(name) {
                Some(t) => (t, false),
                None => (
                    Arc::new(Topic {
                        name: name.clone(),
                        id: ti.id,
                        partitions: RwLock::new(BTreeMap::new()),
                        overrides: RwLock::new(ti.configs.clone()),
                        count: AtomicI32::new(0),
                        metrics: self.metrics.topic(name),
                    }),
                    true,
                ),
            };
            topic.count.store(ti.partitions.len() as i32, Ordering::SeqCst);
            let configs_changed = topic.overrides() != ti.configs;
            if configs_changed {
                *topic.overrides.write().unwrap_or_else(|e| e.into_inner()) = ti.configs.clone();
            }
            let cfg = LogConfig::resolve(&self.config, &ti.configs);
            let removed: Vec<Arc<Partition>> = changes
                .close
                .iter()
                .filter(|(t, _)| t == name)
                .filter_map(|(_, index)| {
                    topic
                        .partitions
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(index)
                })
                .collect();
            let mine = changes.roles.range((name.clone(), i32::MIN)..=(name.clone(), i32::MAX));
            for ((_, index), role) in mine {
                let index = *index;
                let Some(pi) = ti.partitions.get(index as usize) else {
                    continue;
                };
                let p = match topic.partition(index) {
                    Some(p) => {
                        if configs_changed {
                            p.set_config(cfg.clone());
                        }
                        p
                    }
                    None => {
                        let open = match opened.remove(&(name.clone(), index)) {
                            Some(r) => r,
                            None => self.open_replica(name, index, cfg.clone()).await,
                        };
                        match open {
                            Ok(p) => {
                                topic
                                    .partitions
                                    .write()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(index, Arc::clone(&p));
                                p
                            }
                            Err(e) => {
                                tracing::error!(topic = %name, partition = index, "cannot open the replica's log: {e}");
                                again.insert(name.clone());
                                continue;
                            }
                        }
                    }
                };
                match p.apply_image(me, pi) {
                    RoleChange::BecameLeader => {
                        role_changes
                            .led
                            .push((name.clone(), index, pi.leader_epoch, pi.isr.clone()));
                        if let Some(c) = self.coordinator_of(name) {
                            c.became_leader(p.as_ref());
                        }
                        self.notify_append();
                    }
                    RoleChange::BecameFollower { leader, epoch } => {
                        role_changes.followed.push((name.clone(), index, leader, epoch));
                        if let Some(c) = self.coordinator_of(name) {
                            c.lost_leadership(index);
                        }
                    }
                    RoleChange::None => {}
                }
                match *role {
                    ReplicaRole::Follow { leader, epoch } => follow.entry(leader).or_default().push((p, epoch)),
                    ReplicaRole::Leaderless => {
                        if let Some(c) = self.coordinator_of(name) {
                            c.lost_leadership(index);
                        }
                    }
                    ReplicaRole::Lead => {}
                }
            }
            if is_new {
                self.topics_write().insert(name.clone(), topic);
            }
            if !removed.is_empty() {
                self.remove_replicas(name, removed).await;
            }
        }
        let followed_topics: BTreeSet<String> = names.iter().chain(local.keys()).cloned().collect();
        self.fetchers.update(self, &followed_topics, follow);
        role_changes.log();
        for name in &names {
            match image.get(name) {
                Some(t) if !again.contains(name) => {
                    seen.insert(name.clone(), Arc::clone(t));
                }
                _ => {
                    seen.remove(name);
                }
            }
        }
    }

    /// Opens the logs of the replicas assigned here that are not open yet on
    /// `num.recovery.threads.per.data.dir` threads, each opening its share in
    /// turn: a start with many partitions is mostly these opens (and recoveries
    /// after a crash), and a blocking task per log would add a thread hand-off
    /// to each. A log whose task failed is opened again by the caller.
    async fn open_new_replicas(
        self: &Arc<Self>,
        image: &TopicImages,
        changes: &ReplicaChanges,
    ) -> std::collections::HashMap<(String, i32), io::Result<Arc<Partition>>> {
        let mut configs: BTreeMap<&str, LogConfig> = BTreeMap::new();
        let threads = self.config.num_recovery_threads().max(1);
        let mut shares: Vec<Vec<(String, i32, LogConfig)>> = (0..threads).map(|_| Vec::new()).collect();
        let mut n = 0;
        for (name, index) in changes.roles.keys() {
            let Some(ti) = image.get(name) else { continue };
            if self.topic(name).is_some_and(|t| t.partition(*index).is_some()) {
                continue;
            }
            let cfg = configs
                .entry(name.as_str())
                .or_insert_with(|| LogConfig::resolve(&self.config, &ti.configs))
                .clone();
            shares[n % threads].push((name.clone(), *index, cfg));
            n += 1;
        }
        let tasks: Vec<_> = shares
            .into_iter()
            .filter(|share| !share.is_empty())
            .map(|share| {
                let broker = Arc::clone(self);
                tokio::task::spawn_blocking(move || {
                    share
                        .into_iter()
                        .map(|(name, index, cfg)| {
                            let r = broker.open_replica_now(&name, index, cfg);
                            ((name, index), r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut opened = std::collections::HashMap::with_capacity(n);
        for task in tasks {
            match task.await {
                Ok(logs) => opened.extend(logs),
                Err(e) => tracing::error!("a task opening logs failed: {e}"),
            }
        }
        opened
    }

    async fn open_replica(self: &Arc<Self>, topic: &str, index: i32, cfg: LogConfig) -> io::Result<Arc<Partition>> {
        let broker = Arc::clone(self);
        let topic = topic.to_string();
        blocking(move || broker.open_replica_now(&topic, index, cfg)).await
    }

    /// Opens (recovering if need be) one replica's log (blocking).
    fn open_replica_now(&self, topic: &str, index: i32, cfg: LogConfig) -> io::Result<Arc<Partition>> {
        let key = (topic.to_string(), index);
        let start = {
            let c = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
            StartOffsets {
                recovery_point: c.recovery.get(&key).copied().unwrap_or(0),
                log_start: c.log_start.get(&key).copied().unwrap_or(0),
                high_watermark: c.high_watermark.get(&key).copied().unwrap_or(0),
            }
        };
        let dir = self.log_dir.join(format!("{topic}-{index}"));
        let (p, stats) = Partition::open(topic, index, &dir, cfg, start, self.clean_start)?;
        {
            let mut total = self.open_stats.lock().unwrap_or_else(|e| e.into_inner());
            total.segments += stats.segments;
            total.recovered_segments += stats.recovered_segments;
            total.truncated_bytes += stats.truncated_bytes;
        }
        if stats.recovered_segments > 0 || stats.truncated_bytes > 0 {
            tracing::info!(
                topic,
                partition = index,
                recovered_segments = stats.recovered_segments,
                truncated_bytes = stats.truncated_bytes,
                "recovered the log after an unclean shutdown"
            );
        }
        let mut p = p;
        p.metrics = self.metrics.topic(topic);
        p.hw_advanced = Arc::clone(&self.hw_advanced);
        Ok(Arc::new(p))
    }

    /// Deletes the data of replicas no longer assigned here.
    async fn remove_replicas(&self, topic: &str, parts: Vec<Arc<Partition>>) {
        if parts.is_empty() {
            return;
        }
        for p in &parts {
            p.mark_deleted();
            if let Some(c) = self.coordinator_of(topic) {
                c.lost_leadership(p.index);
            }
        }
        let dirs: Vec<PathBuf> = parts.iter().map(|p| p.dir().to_path_buf()).collect();
        let result = blocking(move || -> io::Result<()> {
            for dir in dirs {
                let doomed = dir.with_extension(format!("{}-delete", Uuid::new_v4().simple()));
                if std::fs::rename(&dir, &doomed).is_ok() {
                    std::fs::remove_dir_all(&doomed)?;
                }
            }
            Ok(())
        })
        .await;
        match result {
            Ok(()) => tracing::info!(topic, partitions = parts.len(), "deleted local replicas"),
            Err(e) => tracing::warn!(topic, "cannot delete local replicas: {e}"),
        }
    }

    /// Waits until the local image satisfies `pred`, then applies it to local replicas.
    pub(super) async fn await_image(self: &Arc<Self>, pred: impl Fn(&crate::controller::image::MetadataImage) -> bool) {
        self.controller.wait_for(Duration::from_secs(10), pred).await;
        self.reconcile().await;
    }

    /// Waits until the topic is in the image and applied to this broker's replicas.
    pub async fn wait_for_topic(self: &Arc<Self>, name: &str) {
        self.await_image(|img| img.topics.contains_key(name)).await;
    }
}

/// A topic as this broker holds it: its id and the partitions it has a replica of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTopic {
    pub id: Uuid,
    pub partitions: BTreeSet<i32>,
}

/// The role this broker's replica of a partition must take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRole {
    Lead,
    Follow {
        leader: i32,
        epoch: i32,
    },
    /// No leader is elected (every replica of the ISR is down).
    Leaderless,
}

/// What applying an image to this broker's replicas takes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplicaChanges {
    /// Topics whose local data must go: gone from the image, or re-created under a new id.
    pub delete_topics: Vec<String>,
    /// Local replicas of live topics that are no longer assigned here.
    pub close: Vec<(String, i32)>,
    /// Replicas assigned here that have no local log yet.
    pub open: Vec<(String, i32)>,
    /// Every replica assigned here, with its role.
    pub roles: BTreeMap<(String, i32), ReplicaRole>,
}

/// Decides, from the images of some topics and what this broker holds of
/// them, which replicas to open, close and delete, and which to lead or
/// follow. A topic held but absent from `image` is deleted: callers pass the
/// images of every topic they pass in `local`. Pure: no locks, no disks.
pub fn replica_changes(image: &TopicImages, me: i32, local: &BTreeMap<String, LocalTopic>) -> ReplicaChanges {
    let mut c = ReplicaChanges::default();
    for (name, held) in local {
        match image.get(name) {
            Some(ti) if ti.id == held.id => {}
            _ => c.delete_topics.push(name.clone()),
        }
    }
    for (name, ti) in image {
        let held = local.get(name).filter(|l| l.id == ti.id).map(|l| &l.partitions);
        for (index, pi) in ti.partitions.iter().enumerate() {
            let index = index as i32;
            let is_local = held.is_some_and(|h| h.contains(&index));
            if !pi.replicas.contains(&me) {
                if is_local {
                    c.close.push((name.clone(), index));
                }
                continue;
            }
            if !is_local {
                c.open.push((name.clone(), index));
            }
            let role = if pi.leader == me {
                ReplicaRole::Lead
            } else if pi.leader == NO_LEADER {
                ReplicaRole::Leaderless
            } else {
                ReplicaRole::Follow {
                    leader: pi.leader,
                    epoch: pi.leader_epoch,
                }
            };
            c.roles.insert((name.clone(), index), role);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::{Command, MetadataImage, Reply};

    /// An image of brokers 0..3 with topic `t` (3 partitions, rf 2) by the classic rule.
    fn image() -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 0..3 {
            let Reply::BrokerEpoch(epoch) = img.apply(Command::RegisterBroker {
                id,
                host: "localhost".into(),
                port: 9092,
                rack: None,
                endpoints: Vec::new(),
            }) else {
                panic!("registration refused")
            };
            img.apply(Command::UnfenceBroker { id, epoch });
        }
        let assignments = img.place(0, 3, 2).unwrap();
        img.apply(Command::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(7),
            configs: BTreeMap::new(),
            assignments,
        });
        img
    }

    fn held(id: u128, partitions: &[i32]) -> BTreeMap<String, LocalTopic> {
        [(
            "t".to_string(),
            LocalTopic {
                id: Uuid::from_u128(id),
                partitions: partitions.iter().copied().collect(),
            },
        )]
        .into()
    }

    #[test]
    fn only_topics_new_changed_or_gone_since_the_last_reconcile_are_looked_at() {
        let mut img = image();
        for name in ["a", "u", "z"] {
            img.apply(Command::CreateTopic {
                name: name.into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignments: vec![vec![1]],
            });
        }
        assert_eq!(
            changed_topics(&TopicImages::new(), &img.topics),
            vec!["a", "t", "u", "z"]
        );
        let seen = img.topics.clone();
        assert!(changed_topics(&seen, &img.topics).is_empty());
        // One partition's ISR changes, one topic goes, one comes: those three, in name order.
        let p = img.partition("t", 0).unwrap().clone();
        img.apply(Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![p.leader],
        });
        img.apply(Command::DeleteTopic { name: "a".into() });
        img.apply(Command::CreateTopic {
            name: "b".into(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            assignments: vec![vec![0]],
        });
        assert_eq!(changed_topics(&seen, &img.topics), vec!["a", "b", "t"]);
        // A command that changes nothing here (a broker fenced that holds none of `u`, `z`) copies nothing else.
        let seen = img.topics.clone();
        let epoch = img.brokers[&2].epoch;
        img.apply(Command::FenceBroker { id: 2, epoch });
        assert_eq!(changed_topics(&seen, &img.topics), vec!["t"]);
    }

    #[test]
    fn a_new_topic_opens_the_replicas_assigned_here_and_takes_their_roles() {
        // Partitions 0 [0,1], 1 [1,2], 2 [2,0]: broker 0 holds 0 and 2, leads 0, follows 2 on broker 2.
        let c = replica_changes(&image().topics, 0, &BTreeMap::new());
        assert_eq!(c.open, vec![("t".to_string(), 0), ("t".to_string(), 2)]);
        assert!(c.close.is_empty() && c.delete_topics.is_empty());
        assert_eq!(c.roles[&("t".to_string(), 0)], ReplicaRole::Lead);
        assert_eq!(
            c.roles[&("t".to_string(), 2)],
            ReplicaRole::Follow { leader: 2, epoch: 0 }
        );
    }

    #[test]
    fn a_replica_no_longer_assigned_here_is_closed_and_nothing_is_reopened() {
        let c = replica_changes(&image().topics, 0, &held(7, &[0, 1, 2]));
        assert_eq!(c.close, vec![("t".to_string(), 1)]);
        assert!(c.open.is_empty());
    }

    #[test]
    fn a_topic_gone_or_recreated_under_a_new_id_is_deleted_and_reopened() {
        let c = replica_changes(&image().topics, 0, &held(8, &[0, 2]));
        assert_eq!(c.delete_topics, vec!["t".to_string()]);
        assert_eq!(c.open.len(), 2, "the new topic's replicas open afresh");
        let c = replica_changes(&TopicImages::new(), 0, &held(7, &[0]));
        assert_eq!(c.delete_topics, vec!["t".to_string()]);
        assert!(c.roles.is_empty());
    }
}
