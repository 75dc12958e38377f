//! The topics and partitions this broker serves, and the state they share.
//!
//! Applies the metadata image (kept by the [`controller`](crate::controller)
//! quorum) to this broker: opens the logs of the replicas assigned here, takes
//! leader and follower roles, and runs each partition's [`Log`] on blocking
//! threads so the async runtime never waits on a disk. Admin changes (topics,
//! partitions, configs, ISR) are proposed to the controller, never applied
//! locally first. Protocol handlers call it; it never sees a socket.

pub mod partition;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{self, BrokerConfig, ConfigError, LogConfig};
use crate::controller::image::{Command, MetadataImage, Reply, NO_LEADER};
use crate::controller::{Controller, Heartbeat, HeartbeatReply};
use crate::log::checkpoint;
use crate::replication::fetcher::ReplicaFetchers;
use crate::replication::throttle::Throttle;
pub use partition::{Partition, RoleChange, StartOffsets};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A topic as this broker knows it: its id and configs (from the metadata
/// image) and the partitions it hosts a replica of.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Local replicas by partition index.
    pub partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
    pub overrides: RwLock<BTreeMap<String, String>>,
    /// Partitions in the cluster, hosted here or not.
    count: AtomicI32,
}

impl Topic {
    /// The local replica of partition `index`, if this broker hosts one.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
            .cloned()
    }
    /// How many partitions the topic has in the cluster.
    pub fn partition_count(&self) -> usize {
        self.count.load(Ordering::SeqCst).max(0) as usize
    }
    /// The local replicas.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A request to create a topic, already defaulted.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Explicit replica assignment per partition, if given.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// An error of an admin operation: a Kafka error code and a message for the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    pub code: ResponseError,
    pub message: String,
}

impl AdminError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for AdminError {
    fn from(e: ConfigError) -> Self {
        AdminError::new(ResponseError::InvalidConfig, e.to_string())
    }
}

impl From<skein_model::topic_name::TopicNameError> for AdminError {
    fn from(e: skein_model::topic_name::TopicNameError) -> Self {
        AdminError::new(ResponseError::InvalidTopicException, e.to_string())
    }
}

impl From<io::Error> for AdminError {
    fn from(e: io::Error) -> Self {
        AdminError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

/// The broker's shared state.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    pub cluster_id: String,
    log_dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// The metadata quorum: the image every decision here follows.
    pub controller: Arc<Controller>,
    /// This broker's registration epoch with the controller.
    broker_epoch: AtomicI64,
    /// Serialises applying the metadata image to local replicas.
    reconcile_lock: tokio::sync::Mutex<()>,
    fetchers: ReplicaFetchers,
    /// `leader.replication.throttled.rate`: bytes sent to replicas a reassignment adds.
    pub leader_throttle: std::sync::Mutex<Throttle>,
    /// `follower.replication.throttled.rate`: bytes fetched for replicas a reassignment adds.
    pub follower_throttle: std::sync::Mutex<Throttle>,
    /// Offsets checkpointed at the last run, used when a replica's log is opened.
    checkpoints: std::sync::Mutex<Checkpoints>,
    clean_start: bool,
    /// What opening the hosted logs found (reported at start-up).
    open_stats: std::sync::Mutex<crate::log::OpenStats>,
    /// Bumped after every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    next_producer_id: AtomicI64,
    producer_id_limit: AtomicI64,
    producer_id_lock: tokio::sync::Mutex<()>,
    /// Consumer groups and committed offsets.
    pub groups: crate::group::GroupCoordinator,
}

#[derive(Debug, Default)]
struct Checkpoints {
    recovery: checkpoint::Checkpoint,
    log_start: checkpoint::Checkpoint,
    high_watermark: checkpoint::Checkpoint,
}

const CLEAN_SHUTDOWN: &str = ".kafka_cleanshutdown";
const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";

fn not_found(name: &str) -> AdminError {
    AdminError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("The topic '{name}' does not exist."),
    )
}

fn refused(reply: Reply) -> Result<Reply, AdminError> {
    match reply {
        Reply::Error { code, message } => Err(AdminError::new(
            ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
            message,
        )),
        ok => Ok(ok),
    }
}

impl Broker {
    /// Opens the log directory. Partition logs open when the metadata image
    /// (replayed by the controller) says this broker hosts them.
    pub fn open(config: BrokerConfig, controller: Arc<Controller>) -> io::Result<Arc<Broker>> {
        let log_dir = config.log_dir();
        std::fs::create_dir_all(&log_dir)?;
        let marker = log_dir.join(CLEAN_SHUTDOWN);
        let clean = marker.exists();
        // From here on a crash is unclean until the next orderly shutdown.
        if clean {
            std::fs::remove_file(&marker)?;
        }
        let checkpoints = Checkpoints {
            recovery: checkpoint::read(&log_dir.join(RECOVERY_CHECKPOINT))?,
            log_start: checkpoint::read(&log_dir.join(LOG_START_CHECKPOINT))?,
            high_watermark: checkpoint::read(&log_dir.join(HIGH_WATERMARK_CHECKPOINT))?,
        };
        let (appended, _) = watch::channel(0);
        Ok(Arc::new(Broker {
            node_id: config.node_id(),
            cluster_id: config.cluster_id(),
            log_dir,
            topics: RwLock::new(BTreeMap::new()),
            controller,
            broker_epoch: AtomicI64::new(-1),
            reconcile_lock: tokio::sync::Mutex::new(()),
            fetchers: ReplicaFetchers::default(),
            leader_throttle: std::sync::Mutex::new(Throttle::new(now_ms())),
            follower_throttle: std::sync::Mutex::new(Throttle::new(now_ms())),
            checkpoints: std::sync::Mutex::new(checkpoints),
            clean_start: clean,
            open_stats: std::sync::Mutex::new(crate::log::OpenStats::default()),
            appended,
            next_producer_id: AtomicI64::new(0),
            producer_id_limit: AtomicI64::new(0),
            producer_id_lock: tokio::sync::Mutex::new(()),
            groups: crate::group::GroupCoordinator::new(
                config.group_config(),
                config.offsets_topic_partitions(),
                config.consumer_group_timeouts(),
            ),
            config,
        }))
    }

    /// Joins the cluster: registers with the controller, waits for the metadata
    /// log to catch up, opens the hosted replicas, then keeps them in step with
    /// the image and heartbeats until the process ends.
    pub async fn start(self: &Arc<Self>) -> io::Result<()> {
        let started = std::time::Instant::now();
        let epoch = self.register().await?;
        self.reconcile().await;
        let stats = *self.open_stats.lock().unwrap_or_else(|e| e.into_inner());
        tracing::info!(
            node_id = self.node_id,
            broker_epoch = epoch,
            topics = self.topics().len(),
            clean_shutdown = self.clean_start,
            segments = stats.segments,
            recovered_segments = stats.recovered_segments,
            truncated_bytes = stats.truncated_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "registered with the metadata quorum; log directory {} loaded",
            self.log_dir.display()
        );
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            let mut rx = broker.controller.subscribe();
            while rx.changed().await.is_ok() {
                broker.reconcile().await;
            }
        });
        let broker = Arc::clone(self);
        tokio::spawn(async move { broker.heartbeat_loop().await });
        let broker = Arc::clone(self);
        tokio::spawn(async move { broker.isr_shrink_loop().await });
        // Wait until the controller has unfenced this broker, so clients find it in Metadata.
        let me = self.node_id;
        let timeout = Duration::from_millis(self.config.broker_session_timeout_ms().max(5_000));
        if !self
            .controller
            .wait_for(timeout, |img| img.brokers.get(&me).is_some_and(|b| !b.fenced))
            .await
        {
            tracing::warn!("not unfenced by the controller yet; serving anyway");
        }
        // Take the roles the unfencing gave this broker before clients arrive.
        self.reconcile().await;
        Ok(())
    }

    async fn register(&self) -> io::Result<i64> {
        let l = self.config.advertised_listener();
        loop {
            let cmd = Command::RegisterBroker {
                id: self.node_id,
                host: l.host.clone(),
                port: l.port,
                rack: self.config.get("broker.rack").filter(|r| !r.is_empty()),
            };
            match self.controller.propose(cmd).await {
                Ok(Reply::BrokerEpoch(epoch)) => {
                    self.broker_epoch.store(epoch, Ordering::SeqCst);
                    let me = self.node_id;
                    self.controller
                        .wait_for(Duration::from_secs(30), |img| {
                            img.brokers.get(&me).is_some_and(|b| b.epoch >= epoch)
                        })
                        .await;
                    return Ok(epoch);
                }
                Ok(other) => return Err(io::Error::other(format!("registration refused: {other:?}"))),
                Err(e) => tracing::warn!("registration with the metadata quorum failed, retrying: {e}"),
            }
        }
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.broker_heartbeat_interval_ms());
        loop {
            let hb = Heartbeat {
                id: self.node_id,
                epoch: self.broker_epoch.load(Ordering::SeqCst),
            };
            match self.controller.heartbeat(hb).await {
                Ok(HeartbeatReply::StaleEpoch) => {
                    tracing::warn!("the controller no longer knows this broker's epoch: registering again");
                    if let Err(e) = self.register().await {
                        tracing::warn!("re-registration failed: {e}");
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("heartbeat failed: {e}"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Leader side: drops followers that lag past `replica.lag.time.max.ms` from the ISR.
    async fn isr_shrink_loop(self: Arc<Self>) {
        let lag = self.config.replica_lag_time_max_ms();
        let every = Duration::from_millis((lag as u64 / 2).clamp(10, 5_000));
        loop {
            tokio::time::sleep(every).await;
            for t in self.topics() {
                for p in t.all_partitions() {
                    if !p.is_leader(self.node_id) {
                        continue;
                    }
                    if let Some(isr) = p.shrink_candidate(lag) {
                        tracing::info!(topic = %p.topic, partition = p.index, ?isr, "shrinking the ISR");
                        self.propose_isr(&p, isr).await;
                    }
                }
            }
        }
    }

    /// Leader: asks the controller to set a partition's ISR.
    pub async fn propose_isr(self: &Arc<Self>, p: &Arc<Partition>, isr: Vec<i32>) {
        let st = p.replica_state();
        let cmd = Command::AlterPartition {
            topic: p.topic.clone(),
            partition: p.index,
            leader: self.node_id,
            leader_epoch: st.leader_epoch,
            partition_epoch: st.partition_epoch,
            isr,
        };
        match self.controller.propose(cmd).await.and_then(refused) {
            Ok(_) => {
                // Apply at once so that the next change starts from the new partition epoch.
                self.reconcile().await;
            }
            Err(e) => tracing::debug!(topic = %p.topic, partition = p.index, "ISR change refused: {e}"),
        }
        p.isr_change_done();
    }

    /// Brings local replicas in line with the metadata image: opens the logs of
    /// replicas assigned here, deletes those no longer assigned, takes leader
    /// and follower roles, and points the replica fetchers at the leaders.
    pub async fn reconcile(self: &Arc<Self>) {
        let _guard = self.reconcile_lock.lock().await;
        let me = self.node_id;
        let image = self.controller.with_image(|img| img.clone());
        // Topics gone from the image: delete their local data.
        let gone: Vec<Arc<Topic>> = self
            .topics_read()
            .values()
            .filter(|t| image.topics.get(&t.name).is_none_or(|ti| ti.id != t.id))
            .cloned()
            .collect();
        for t in gone {
            self.topics_write().remove(&t.name);
            let parts = t.all_partitions();
            self.remove_replicas(&t.name, parts).await;
        }
        let mut follow: BTreeMap<i32, Vec<(Arc<Partition>, i32)>> = BTreeMap::new();
        for (name, ti) in &image.topics {
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
            let mut removed = Vec::new();
            for (index, pi) in ti.partitions.iter().enumerate() {
                let index = index as i32;
                let local = topic.partition(index);
                if !pi.replicas.contains(&me) {
                    if let Some(p) = local {
                        topic
                            .partitions
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&index);
                        removed.push(p);
                    }
                    continue;
                }
                let p = match local {
                    Some(p) => {
                        if configs_changed {
                            p.set_config(cfg.clone());
                        }
                        p
                    }
                    None => match self.open_replica(name, index, cfg.clone()).await {
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
                            continue;
                        }
                    },
                };
                match p.apply_image(me, pi) {
                    RoleChange::BecameLeader => {
                        tracing::info!(topic = %name, partition = index, leader_epoch = pi.leader_epoch, isr = ?pi.isr, "leading");
                        if name == crate::group::OFFSETS_TOPIC {
                            self.groups.became_leader(&p);
                        }
                        self.notify_append();
                    }
                    RoleChange::BecameFollower { leader, epoch } => {
                        tracing::info!(topic = %name, partition = index, leader, leader_epoch = epoch, "following");
                        if name == crate::group::OFFSETS_TOPIC {
                            self.groups.lost_leadership(index);
                        }
                    }
                    RoleChange::None => {}
                }
                let st = p.replica_state();
                if st.leader != me && st.leader != NO_LEADER {
                    follow
                        .entry(st.leader)
                        .or_default()
                        .push((Arc::clone(&p), st.leader_epoch));
                } else if st.leader == NO_LEADER && name == crate::group::OFFSETS_TOPIC {
                    self.groups.lost_leadership(index);
                }
            }
            if is_new {
                self.topics_write().insert(name.clone(), topic);
            }
            if !removed.is_empty() {
                self.remove_replicas(name, removed).await;
            }
        }
        self.fetchers.update(self, follow);
    }

    async fn open_replica(&self, topic: &str, index: i32, cfg: LogConfig) -> io::Result<Arc<Partition>> {
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
        let clean = self.clean_start;
        let name = topic.to_string();
        let (p, stats) = blocking(move || Partition::open(&name, index, &dir, cfg, start, clean)).await?;
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
        Ok(Arc::new(p))
    }

    /// Deletes the data of replicas no longer assigned here.
    async fn remove_replicas(&self, topic: &str, parts: Vec<Arc<Partition>>) {
        if parts.is_empty() {
            return;
        }
        for p in &parts {
            p.mark_deleted();
            if topic == crate::group::OFFSETS_TOPIC {
                self.groups.lost_leadership(p.index);
            }
        }
        let dirs: Vec<PathBuf> = parts.iter().map(|p| p.dir().to_path_buf()).collect();
        let result = blocking(move || -> io::Result<()> {
            for dir in dirs {
                let doomed = dir.with_extension(format!("{}-delete", random_uuid().simple()));
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

    fn topics_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }
    fn topics_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics_read().get(name).cloned()
    }
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics_read().values().find(|t| t.id == id).cloned()
    }
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics_read().values().cloned().collect()
    }
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic).and_then(|t| t.partition(index))
    }

    /// The local replica of a partition this broker leads, or the error a client gets:
    /// UNKNOWN_TOPIC_OR_PARTITION if it does not exist, NOT_LEADER_OR_FOLLOWER if another broker leads it.
    pub fn leader_partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, ResponseError> {
        match self.partition(topic, index).filter(|p| !p.is_deleted()) {
            Some(p) if p.is_leader(self.node_id) => Ok(p),
            Some(_) => Err(ResponseError::NotLeaderOrFollower),
            None => {
                let exists = self.controller.with_image(|img| img.partition(topic, index).is_some());
                Err(if exists {
                    ResponseError::NotLeaderOrFollower
                } else {
                    ResponseError::UnknownTopicOrPartition
                })
            }
        }
    }

    /// The ids of live (registered, unfenced) brokers.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.controller.with_image(MetadataImage::live_brokers)
    }

    /// A watch that changes after every append, for long-polling fetches.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }
    pub(crate) fn notify_append(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Validates a new topic (name, counts, assignment, configs) without creating it.
    pub fn validate_new_topic(&self, t: &NewTopic) -> Result<(), AdminError> {
        skein_model::topic_name::validate(&t.name)?;
        if self.controller.with_image(|img| img.topics.contains_key(&t.name)) {
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let brokers = self
            .controller
            .with_image(|img| img.brokers.keys().copied().collect::<Vec<_>>());
        if !t.assignments.is_empty() {
            for (p, replicas) in t.assignments.iter().enumerate() {
                let mut seen = replicas.clone();
                seen.sort_unstable();
                seen.dedup();
                if replicas.is_empty() || seen.len() != replicas.len() || replicas.iter().any(|b| !brokers.contains(b))
                {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Invalid replica assignment for partition {p}: {replicas:?} (brokers: {brokers:?})"),
                    ));
                }
            }
        } else {
            if t.partitions <= 0 {
                return Err(AdminError::new(
                    ResponseError::InvalidPartitions,
                    "Number of partitions must be larger than 0.",
                ));
            }
            if t.replication_factor <= 0 {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    "Replication factor must be larger than 0.",
                ));
            }
            let live = self.controller.with_image(MetadataImage::placeable_brokers).len();
            if t.replication_factor as usize > live {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only {} broker(s) are registered.",
                        t.replication_factor, t.replication_factor, live
                    ),
                ));
            }
        }
        for (k, v) in &t.configs {
            config::validate_topic_config(k, Some(v))?;
        }
        Ok(())
    }

    /// Creates a topic (validated first) through the controller, and waits until
    /// this broker has applied it.
    pub async fn create_topic(self: &Arc<Self>, t: NewTopic) -> Result<Arc<Topic>, AdminError> {
        self.validate_new_topic(&t)?;
        let assignments = if t.assignments.is_empty() {
            self.controller
                .with_image(|img| img.place(0, t.partitions, t.replication_factor))
                .map_err(|e| AdminError::new(ResponseError::InvalidReplicationFactor, e.to_string()))?
        } else {
            t.assignments.clone()
        };
        let partitions = assignments.len();
        let cmd = Command::CreateTopic {
            name: t.name.clone(),
            id: random_uuid(),
            configs: t.configs.clone(),
            assignments,
        };
        refused(self.controller.propose(cmd).await?)?;
        self.await_image(|img| img.topics.contains_key(&t.name)).await;
        tracing::info!(topic = %t.name, partitions, "created topic");
        self.topic(&t.name).ok_or_else(|| not_found(&t.name))
    }

    /// The "controller" Metadata and DescribeCluster name: this broker, as in
    /// KRaft, where it is a live broker rather than the quorum's leader. Every
    /// broker forwards controller requests (CreateTopics, ElectLeaders, ...) to
    /// the active controller, and naming the broker the client is already
    /// talking to means a client never waits on a controller that just died:
    /// librdkafka caches the controller id until its next metadata refresh.
    pub fn controller_id_for_clients(&self) -> i32 {
        self.node_id
    }

    /// Waits until the local image satisfies `pred`, then applies it to local replicas.
    async fn await_image(self: &Arc<Self>, pred: impl Fn(&MetadataImage) -> bool) {
        self.controller.wait_for(Duration::from_secs(10), pred).await;
        self.reconcile().await;
    }

    /// Waits until the topic is in the image and applied to this broker's replicas.
    pub async fn wait_for_topic(self: &Arc<Self>, name: &str) {
        self.await_image(|img| img.topics.contains_key(name)).await;
    }

    /// Creates a topic with the broker's defaults, for auto-creation.
    pub async fn auto_create_topic(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>, AdminError> {
        let live = self
            .controller
            .with_image(MetadataImage::placeable_brokers)
            .len()
            .max(1);
        let t = NewTopic {
            name: name.to_string(),
            partitions: self.config.num_partitions(),
            replication_factor: self.config.default_replication_factor().min(live as i16),
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        };
        match self.create_topic(t).await {
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                self.wait_for_topic(name).await;
                self.topic(name).ok_or(e)
            }
            other => other,
        }
    }

    /// Deletes a topic through the controller; every replica's data is removed when the brokers apply it.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<(), AdminError> {
        if !self.config.delete_topic_enable() {
            return Err(AdminError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        refused(
            self.controller
                .propose(Command::DeleteTopic { name: name.to_string() })
                .await?,
        )?;
        self.await_image(|img| !img.topics.contains_key(name)).await;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Raises a topic's partition count; new partitions are placed by the classic rule.
    pub async fn create_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let (current, rf) = self
            .controller
            .with_image(|img| {
                img.topics.get(name).map(|t| {
                    (
                        t.partitions.len() as i32,
                        t.partitions.first().map_or(1, |p| p.target_replicas().len() as i16),
                    )
                })
            })
            .ok_or_else(|| not_found(name))?;
        if count < current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
            ));
        }
        if count == current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic already has {current} partitions."),
            ));
        }
        let assignments = match assignments {
            Some(a) => {
                let brokers = self
                    .controller
                    .with_image(|img| img.brokers.keys().copied().collect::<Vec<_>>());
                if a.len() as i32 != count - current {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "Increasing the number of partitions by {} but {} assignments provided.",
                            count - current,
                            a.len()
                        ),
                    ));
                }
                if a.iter().any(|r| r.is_empty() || r.iter().any(|b| !brokers.contains(b))) {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Unknown broker in assignment {a:?}"),
                    ));
                }
                a
            }
            None => self
                .controller
                .with_image(|img| img.place(current, count - current, rf))
                .map_err(|e| AdminError::new(ResponseError::InvalidReplicationFactor, e.to_string()))?,
        };
        if validate_only {
            return Ok(());
        }
        refused(
            self.controller
                .propose(Command::CreatePartitions {
                    name: name.to_string(),
                    assignments,
                })
                .await?,
        )?;
        self.await_image(|img| img.topics.get(name).is_some_and(|t| t.partitions.len() as i32 >= count))
            .await;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (validated first) through the controller.
    pub async fn set_topic_configs(
        self: &Arc<Self>,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if !self.controller.with_image(|img| img.topics.contains_key(name)) {
            return Err(not_found(name));
        }
        for (k, v) in &overrides {
            config::validate_topic_config(k, Some(v))?;
        }
        if validate_only {
            return Ok(());
        }
        let cmd = Command::SetTopicConfigs {
            name: name.to_string(),
            configs: overrides.clone(),
        };
        refused(self.controller.propose(cmd).await?)?;
        self.await_image(|img| img.topics.get(name).is_some_and(|t| t.configs == overrides))
            .await;
        Ok(())
    }

    /// A dynamic broker config (throttle rates): the metadata image's value for this
    /// broker, else the cluster-wide one, else the static config.
    pub fn dynamic_u64(&self, key: &str) -> u64 {
        self.controller
            .with_image(|img| {
                img.broker_config(self.node_id, key)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or_else(|| self.config.static_u64(key))
    }

    /// The dynamic configs of broker resource `resource` ("" for all brokers).
    pub fn broker_overrides(&self, resource: &str) -> BTreeMap<String, String> {
        self.controller
            .with_image(|img| img.broker_configs.get(resource).cloned())
            .unwrap_or_default()
    }

    /// Replaces the dynamic configs of a broker resource through the controller.
    pub async fn set_broker_configs(
        self: &Arc<Self>,
        resource: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if !resource.is_empty() && resource.parse::<i32>().is_err() {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("Invalid broker id '{resource}'"),
            ));
        }
        for (k, v) in &configs {
            config::validate_dynamic_broker_config(k, v)?;
        }
        if validate_only {
            return Ok(());
        }
        let cmd = Command::SetBrokerConfigs {
            resource: resource.to_string(),
            configs: configs.clone(),
        };
        refused(self.controller.propose(cmd).await?)?;
        let resource = resource.to_string();
        self.controller
            .wait_for(Duration::from_secs(10), |img| {
                img.broker_configs.get(&resource).cloned().unwrap_or_default() == configs
            })
            .await;
        Ok(())
    }

    /// The dynamic configs of a group (empty for a group with none, or no such group).
    pub fn group_overrides(&self, group: &str) -> BTreeMap<String, String> {
        self.controller
            .with_image(|img| img.group_configs.get(group).cloned())
            .unwrap_or_default()
    }

    /// Replaces the dynamic configs of a group through the controller.
    pub async fn set_group_configs(
        self: &Arc<Self>,
        group: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if group.is_empty() {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "Group name must not be empty",
            ));
        }
        for (k, v) in &configs {
            config::validate_group_config(&self.config, k, v)?;
        }
        if validate_only {
            return Ok(());
        }
        let cmd = Command::SetGroupConfigs {
            group: group.to_string(),
            configs: configs.clone(),
        };
        refused(self.controller.propose(cmd).await?)?;
        let group = group.to_string();
        self.controller
            .wait_for(Duration::from_secs(10), |img| {
                img.group_configs.get(&group).cloned().unwrap_or_default() == configs
            })
            .await;
        Ok(())
    }

    /// Hands out a producer id from a block the controller allocated to this broker,
    /// so two brokers never hand out the same id.
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        let _g = self.producer_id_lock.lock().await;
        if self.next_producer_id.load(Ordering::SeqCst) >= self.producer_id_limit.load(Ordering::SeqCst) {
            let reply = self
                .controller
                .propose(Command::AllocateProducerIds { broker: self.node_id })
                .await?;
            let Reply::ProducerIds(start) = refused(reply)? else {
                return Err(AdminError::new(
                    ResponseError::UnknownServerError,
                    "no producer-id block",
                ));
            };
            self.next_producer_id.store(start, Ordering::SeqCst);
            self.producer_id_limit
                .store(start + crate::controller::image::PRODUCER_ID_BLOCK, Ordering::SeqCst);
        }
        Ok(self.next_producer_id.fetch_add(1, Ordering::SeqCst))
    }

    /// Writes the recovery-point, log-start and high-watermark checkpoints.
    pub fn write_checkpoints(&self) -> io::Result<()> {
        let mut c = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        for t in self.topics() {
            for p in t.all_partitions() {
                if p.is_deleted() {
                    continue;
                }
                let (r, s) = p.checkpoint_offsets();
                let key = (t.name.clone(), p.index);
                c.recovery.insert(key.clone(), r);
                c.log_start.insert(key.clone(), s);
                c.high_watermark.insert(key, p.high_watermark());
            }
        }
        let hosted: std::collections::HashSet<(String, i32)> = self
            .topics()
            .iter()
            .flat_map(|t| t.all_partitions().into_iter().map(|p| (t.name.clone(), p.index)))
            .collect();
        c.recovery.retain(|k, _| hosted.contains(k));
        c.log_start.retain(|k, _| hosted.contains(k));
        c.high_watermark.retain(|k, _| hosted.contains(k));
        checkpoint::write(&self.log_dir.join(RECOVERY_CHECKPOINT), &c.recovery)?;
        checkpoint::write(&self.log_dir.join(LOG_START_CHECKPOINT), &c.log_start)?;
        checkpoint::write(&self.log_dir.join(HIGH_WATERMARK_CHECKPOINT), &c.high_watermark)
    }

    /// Runs retention and time-based flushes on every partition.
    pub fn run_housekeeping(&self, now: i64) {
        for t in self.topics() {
            for p in t.all_partitions() {
                p.housekeeping(now, self.config.producer_id_expiration_ms());
            }
        }
    }

    /// Compacts every partition that needs it (blocking).
    pub fn run_cleaner(&self, now: i64) {
        for t in self.topics() {
            for p in t.all_partitions() {
                match p.compact(now) {
                    Ok(Some(s)) => tracing::info!(
                        topic = %t.name,
                        partition = p.index,
                        records_read = s.records_read,
                        records_kept = s.records_kept,
                        bytes_before = s.bytes_before,
                        bytes_after = s.bytes_after,
                        "compacted"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(topic = %t.name, partition = p.index, "compaction failed: {e}"),
                }
            }
        }
    }

    /// SIGTERM in a cluster: ask the controller to move leadership away, so
    /// clients fail over before this broker stops rather than after it is fenced.
    pub async fn controlled_shutdown(self: &Arc<Self>) {
        if !self.config.controlled_shutdown_enable() {
            return;
        }
        let me = self.node_id;
        let others = self
            .controller
            .with_image(|img| img.live_brokers().iter().any(|&b| b != me));
        if !others {
            return;
        }
        let cmd = Command::ControlledShutdown {
            id: me,
            epoch: self.broker_epoch.load(Ordering::SeqCst),
        };
        let done = tokio::time::timeout(Duration::from_secs(5), self.controller.propose(cmd)).await;
        match done {
            Ok(Ok(_)) => {
                self.reconcile().await;
                tracing::info!("controlled shutdown: leadership moved to other brokers");
            }
            _ => tracing::warn!("controlled shutdown not acknowledged; stopping anyway"),
        }
    }

    /// Orderly shutdown: flush every log, snapshot producer state, write checkpoints
    /// and the clean-shutdown marker so the next start skips recovery.
    pub fn shutdown(&self) -> io::Result<()> {
        self.fetchers.stop_all();
        let now = now_ms();
        for t in self.topics() {
            for p in t.all_partitions() {
                p.close(now)?;
            }
        }
        self.write_checkpoints()?;
        crate::atomic_file::replace(&self.log_dir.join(CLEAN_SHUTDOWN), b"")?;
        tracing::info!("clean shutdown complete");
        Ok(())
    }

    /// Background tasks: retention and flush checks, periodic checkpoints.
    pub fn spawn_background(self: &Arc<Self>) {
        let broker = Arc::clone(self);
        let retention_every = Duration::from_millis(self.config.retention_check_interval_ms().max(1));
        let flush_every = Duration::from_millis(self.config.flush_scheduler_interval_ms().clamp(1, 60_000));
        if self.config.cleaner_enabled() {
            let broker = Arc::clone(self);
            let backoff = Duration::from_millis(self.config.cleaner_backoff_ms().max(10));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(backoff).await;
                    let b = Arc::clone(&broker);
                    let _ = blocking(move || {
                        b.run_cleaner(now_ms());
                        Ok(())
                    })
                    .await;
                }
            });
        }
        tokio::spawn(async move {
            let tick = retention_every.min(flush_every).min(Duration::from_secs(60));
            let mut last_retention = std::time::Instant::now();
            let mut last_checkpoint = std::time::Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                let b = Arc::clone(&broker);
                let run_retention = last_retention.elapsed() >= retention_every;
                let run_checkpoint = last_checkpoint.elapsed() >= Duration::from_secs(60);
                let _ = blocking(move || -> io::Result<()> {
                    let now = now_ms();
                    for t in b.topics() {
                        for p in t.all_partitions() {
                            p.flush_if_due(now);
                        }
                    }
                    if run_retention {
                        b.run_housekeeping(now);
                    }
                    if run_checkpoint {
                        b.write_checkpoints()?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| tracing::warn!("background task failed: {e}"));
                if run_retention {
                    last_retention = std::time::Instant::now();
                }
                if run_checkpoint {
                    last_checkpoint = std::time::Instant::now();
                }
            }
        });
    }
}

/// Runs blocking work (disk I/O) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("blocking task failed: {e}"))))
}

/// A random v4 UUID (topic ids), from the OS's randomness.
pub fn random_uuid() -> Uuid {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        // Fall back to the clock and a hasher's random keys; unique enough for ids.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(now_ms());
        b[..8].copy_from_slice(&h.finish().to_be_bytes());
        b[8..].copy_from_slice(&(now_ms() as u64).to_be_bytes());
    }
    uuid::Builder::from_random_bytes(b).into_uuid()
}
