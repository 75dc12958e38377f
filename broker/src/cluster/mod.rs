//! The topics and partitions this broker serves, and the state they share.
//!
//! Owns the metadata image (topics, their ids, partition counts and config
//! overrides, persisted under `<log.dirs>/__skein_metadata/`) and each
//! partition's [`Log`], which it runs on blocking threads so the async runtime
//! never waits on a disk. Protocol handlers call it; it never sees a socket.

pub mod partition;
pub mod placement;
pub mod topic_name;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{self, BrokerConfig, ConfigError, LogConfig};
use crate::log::checkpoint;
pub use partition::Partition;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A topic: its id, partitions and config overrides.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: RwLock<Vec<Arc<Partition>>>,
    pub overrides: RwLock<BTreeMap<String, String>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let parts = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(index).ok().and_then(|i| parts.get(i).cloned())
    }
    pub fn partition_count(&self) -> usize {
        self.partitions.read().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().unwrap_or_else(|e| e.into_inner()).clone()
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
    /// Serialises topic creation, deletion and partition changes.
    admin_lock: tokio::sync::Mutex<()>,
    /// Bumped after every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    next_producer_id: AtomicI64,
    producer_id_limit: AtomicI64,
    producer_id_lock: std::sync::Mutex<()>,
    /// Consumer groups and committed offsets.
    pub groups: crate::group::GroupCoordinator,
}

const METADATA_DIR: &str = "__skein_metadata";
const CLEAN_SHUTDOWN: &str = ".kafka_cleanshutdown";
const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    /// Opens the log directory, loading every topic and recovering every partition.
    pub fn open(config: BrokerConfig) -> io::Result<Arc<Broker>> {
        let log_dir = config.log_dir();
        std::fs::create_dir_all(log_dir.join(METADATA_DIR))?;
        let marker = log_dir.join(CLEAN_SHUTDOWN);
        let clean = marker.exists();
        // From here on a crash is unclean until the next orderly shutdown.
        if clean {
            std::fs::remove_file(&marker)?;
        }
        let recovery = checkpoint::read(&log_dir.join(RECOVERY_CHECKPOINT))?;
        let starts = checkpoint::read(&log_dir.join(LOG_START_CHECKPOINT))?;
        let (appended, _) = watch::channel(0);
        let broker = Broker {
            node_id: config.node_id(),
            cluster_id: config.cluster_id(),
            log_dir: log_dir.clone(),
            topics: RwLock::new(BTreeMap::new()),
            admin_lock: tokio::sync::Mutex::new(()),
            appended,
            next_producer_id: AtomicI64::new(0),
            producer_id_limit: AtomicI64::new(0),
            producer_id_lock: std::sync::Mutex::new(()),
            groups: crate::group::GroupCoordinator::new(
                config.group_config(),
                config.offsets_topic_partitions(),
                config.consumer_group_timeouts(),
            ),
            config,
        };
        let started = std::time::Instant::now();
        let mut stats = (0usize, 0usize, 0u64);
        for entry in std::fs::read_dir(log_dir.join(METADATA_DIR))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("topic") {
                continue;
            }
            let meta = TopicMeta::read(&path)?;
            let cfg = LogConfig::resolve(&broker.config, &meta.overrides);
            let mut parts = Vec::new();
            for p in 0..meta.partitions {
                let key = (meta.name.clone(), p);
                let dir = log_dir.join(format!("{}-{p}", meta.name));
                let rp = recovery.get(&key).copied().unwrap_or(0);
                let start = starts.get(&key).copied().unwrap_or(0);
                let (part, s) = Partition::open(&meta.name, p, &dir, cfg.clone(), rp, start, clean)?;
                stats.0 += s.segments;
                stats.1 += s.recovered_segments;
                stats.2 += s.truncated_bytes;
                parts.push(Arc::new(part));
            }
            let topic = Topic {
                name: meta.name.clone(),
                id: meta.id,
                partitions: RwLock::new(parts),
                overrides: RwLock::new(meta.overrides),
            };
            broker.topics_write().insert(meta.name, Arc::new(topic));
        }
        tracing::info!(
            clean_shutdown = clean,
            topics = broker.topics_read().len(),
            segments = stats.0,
            recovered_segments = stats.1,
            truncated_bytes = stats.2,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "log directory {} loaded",
            log_dir.display()
        );
        broker.reserve_producer_ids()?;
        let commits = broker.groups.load(&broker)?;
        if commits > 0 {
            tracing::info!(
                records = commits,
                "loaded committed offsets from {}",
                crate::group::OFFSETS_TOPIC
            );
        }
        Ok(Arc::new(broker))
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

    /// The ids of live brokers (this one, until the cluster work adds more).
    pub fn broker_ids(&self) -> Vec<i32> {
        vec![self.node_id]
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
        topic_name::validate(&t.name)?;
        if self.topic(&t.name).is_some() {
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let brokers = self.broker_ids();
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
            if t.replication_factor as usize > brokers.len() {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only {} broker(s) are registered.",
                        t.replication_factor, t.replication_factor, brokers.len()
                    ),
                ));
            }
        }
        for (k, v) in &t.configs {
            config::validate_topic_config(k, Some(v))?;
        }
        Ok(())
    }

    /// Creates a topic (validated first) and its partition logs.
    pub async fn create_topic(self: &Arc<Self>, t: NewTopic) -> Result<Arc<Topic>, AdminError> {
        let _guard = self.admin_lock.lock().await;
        self.validate_new_topic(&t)?;
        let partitions = if t.assignments.is_empty() {
            t.partitions
        } else {
            t.assignments.len() as i32
        };
        let meta = TopicMeta {
            name: t.name.clone(),
            id: random_uuid(),
            partitions,
            overrides: t.configs.clone(),
        };
        let broker = Arc::clone(self);
        let topic = blocking(move || -> io::Result<Topic> {
            let cfg = LogConfig::resolve(&broker.config, &meta.overrides);
            let mut parts = Vec::new();
            for p in 0..meta.partitions {
                let dir = broker.log_dir.join(format!("{}-{p}", meta.name));
                let (part, _) = Partition::open(&meta.name, p, &dir, cfg.clone(), 0, 0, true)?;
                parts.push(Arc::new(part));
            }
            meta.write(&broker.metadata_path(&meta.name))?;
            Ok(Topic {
                name: meta.name.clone(),
                id: meta.id,
                partitions: RwLock::new(parts),
                overrides: RwLock::new(meta.overrides),
            })
        })
        .await?;
        let topic = Arc::new(topic);
        self.topics_write().insert(t.name.clone(), Arc::clone(&topic));
        tracing::info!(topic = %t.name, partitions, "created topic");
        Ok(topic)
    }

    /// Creates a topic with the broker's defaults, for auto-creation.
    pub async fn auto_create_topic(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>, AdminError> {
        let t = NewTopic {
            name: name.to_string(),
            partitions: self.config.num_partitions(),
            replication_factor: self
                .config
                .default_replication_factor()
                .min(self.broker_ids().len() as i16),
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        };
        match self.create_topic(t).await {
            Err(e) if e.code == ResponseError::TopicAlreadyExists => self.topic(name).ok_or(e),
            other => other,
        }
    }

    /// Deletes a topic: its metadata first (so a crash cannot resurrect half of it), then its data.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<(), AdminError> {
        let _guard = self.admin_lock.lock().await;
        if !self.config.delete_topic_enable() {
            return Err(AdminError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        let topic = self.topics_write().remove(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("This server does not host topic '{name}'."),
            )
        })?;
        let path = self.metadata_path(name);
        let dirs: Vec<PathBuf> = topic.all_partitions().iter().map(|p| p.dir().to_path_buf()).collect();
        for p in topic.all_partitions() {
            p.mark_deleted();
        }
        blocking(move || -> io::Result<()> {
            std::fs::remove_file(&path)?;
            for dir in dirs {
                let doomed = dir.with_extension(format!("{}-delete", random_uuid().simple()));
                if std::fs::rename(&dir, &doomed).is_ok() {
                    std::fs::remove_dir_all(&doomed)?;
                }
            }
            Ok(())
        })
        .await?;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Raises a topic's partition count.
    pub async fn create_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let _guard = self.admin_lock.lock().await;
        let topic = self.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        let current = topic.partition_count() as i32;
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
        if let Some(a) = &assignments {
            let brokers = self.broker_ids();
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
        }
        if validate_only {
            return Ok(());
        }
        let broker = Arc::clone(self);
        let topic2 = Arc::clone(&topic);
        let new_parts = blocking(move || -> io::Result<Vec<Arc<Partition>>> {
            let cfg = LogConfig::resolve(&broker.config, &topic2.overrides());
            let mut parts = Vec::new();
            for p in current..count {
                let dir = broker.log_dir.join(format!("{}-{p}", topic2.name));
                parts.push(Arc::new(
                    Partition::open(&topic2.name, p, &dir, cfg.clone(), 0, 0, true)?.0,
                ));
            }
            let meta = TopicMeta {
                name: topic2.name.clone(),
                id: topic2.id,
                partitions: count,
                overrides: topic2.overrides(),
            };
            meta.write(&broker.metadata_path(&topic2.name))?;
            Ok(parts)
        })
        .await?;
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(new_parts);
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (validated first) and applies them to its logs.
    pub async fn set_topic_configs(
        self: &Arc<Self>,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let _guard = self.admin_lock.lock().await;
        let topic = self.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        for (k, v) in &overrides {
            config::validate_topic_config(k, Some(v))?;
        }
        if validate_only {
            return Ok(());
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: topic.id,
            partitions: topic.partition_count() as i32,
            overrides: overrides.clone(),
        };
        let path = self.metadata_path(name);
        blocking(move || meta.write(&path)).await?;
        let cfg = LogConfig::resolve(&self.config, &overrides);
        *topic.overrides.write().unwrap_or_else(|e| e.into_inner()) = overrides;
        for p in topic.all_partitions() {
            p.set_config(cfg.clone());
        }
        Ok(())
    }

    fn metadata_path(&self, topic: &str) -> PathBuf {
        self.log_dir.join(METADATA_DIR).join(format!("{topic}.topic"))
    }

    /// Hands out a producer id, persisting the allocator a block at a time so ids are never reused.
    pub fn allocate_producer_id(&self) -> io::Result<i64> {
        let _g = self.producer_id_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.next_producer_id.load(Ordering::SeqCst) >= self.producer_id_limit.load(Ordering::SeqCst) {
            self.reserve_producer_ids()?;
        }
        Ok(self.next_producer_id.fetch_add(1, Ordering::SeqCst))
    }

    fn reserve_producer_ids(&self) -> io::Result<()> {
        let path = self.log_dir.join(METADATA_DIR).join("producer-id-block");
        let start = match std::fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let start = start.max(self.producer_id_limit.load(Ordering::SeqCst));
        write_atomic(&path, (start + PRODUCER_ID_BLOCK).to_string().as_bytes())?;
        self.next_producer_id.store(start, Ordering::SeqCst);
        self.producer_id_limit
            .store(start + PRODUCER_ID_BLOCK, Ordering::SeqCst);
        Ok(())
    }

    /// Writes the recovery-point and log-start checkpoints.
    pub fn write_checkpoints(&self) -> io::Result<()> {
        let mut rp = checkpoint::Checkpoint::new();
        let mut ls = checkpoint::Checkpoint::new();
        for t in self.topics() {
            for p in t.all_partitions() {
                let (r, s) = p.checkpoint_offsets();
                rp.insert((t.name.clone(), p.index), r);
                ls.insert((t.name.clone(), p.index), s);
            }
        }
        checkpoint::write(&self.log_dir.join(RECOVERY_CHECKPOINT), &rp)?;
        checkpoint::write(&self.log_dir.join(LOG_START_CHECKPOINT), &ls)
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

    /// Orderly shutdown: flush every log, snapshot producer state, write checkpoints
    /// and the clean-shutdown marker so the next start skips recovery.
    pub fn shutdown(&self) -> io::Result<()> {
        let now = now_ms();
        for t in self.topics() {
            for p in t.all_partitions() {
                p.close(now)?;
            }
        }
        self.write_checkpoints()?;
        write_atomic(&self.log_dir.join(CLEAN_SHUTDOWN), b"")?;
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

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A topic's persisted metadata: `key=value` lines, config overrides prefixed `config.`.
#[derive(Debug, Clone, PartialEq)]
struct TopicMeta {
    name: String,
    id: Uuid,
    partitions: i32,
    overrides: BTreeMap<String, String>,
}

impl TopicMeta {
    fn write(&self, path: &Path) -> io::Result<()> {
        let mut s = format!("name={}\nid={}\npartitions={}\n", self.name, self.id, self.partitions);
        for (k, v) in &self.overrides {
            s.push_str(&format!("config.{k}={v}\n"));
        }
        write_atomic(path, s.as_bytes())
    }

    fn read(path: &Path) -> io::Result<TopicMeta> {
        let text = std::fs::read_to_string(path)?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
        let mut meta = TopicMeta {
            name: String::new(),
            id: Uuid::nil(),
            partitions: 0,
            overrides: BTreeMap::new(),
        };
        for line in text.lines() {
            let (k, v) = line.split_once('=').ok_or_else(|| bad("malformed line"))?;
            match k {
                "name" => meta.name = v.to_string(),
                "id" => meta.id = v.parse().map_err(|_| bad("bad id"))?,
                "partitions" => meta.partitions = v.parse().map_err(|_| bad("bad partition count"))?,
                _ => {
                    if let Some(key) = k.strip_prefix("config.") {
                        meta.overrides.insert(key.to_string(), v.to_string());
                    }
                }
            }
        }
        if meta.name.is_empty() || meta.partitions <= 0 {
            return Err(bad("incomplete topic metadata"));
        }
        Ok(meta)
    }
}
