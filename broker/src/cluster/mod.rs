//! The topics and partitions this broker serves, and the state they share.
//!
//! Applies the metadata image (kept by the [`controller`](crate::controller)
//! quorum) to this broker: opens the logs of the replicas assigned here, takes
//! leader and follower roles, and runs each partition's [`Log`] on blocking
//! threads so the async runtime never waits on a disk. Admin changes (topics,
//! partitions, configs, ISR) are proposed to the controller, never applied
//! locally first. Protocol handlers call it; it never sees a socket.

mod admin;
mod coordinator_host;
mod duties;
pub mod partition;
pub mod parts;
mod producer_ids;
mod reconcile;
mod replica_host;
mod txn_host;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::controller::image::{MetadataImage, Reply};
use crate::controller::Controller;
use crate::log::checkpoint;
use crate::metrics::{Metrics, TopicMetrics};
use crate::replication::fetcher::ReplicaFetchers;
use crate::replication::throttle::Throttle;
pub use partition::{Partition, RoleChange, StartOffsets};

pub use crate::clock::now_ms;
pub use crate::error::AdminError;

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
    /// Records and bytes in and out (`kafka_server_brokertopicmetrics_*`).
    pub metrics: TopicMetrics,
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
    /// Whether partition `index` exists in the cluster, hosted here or not
    /// (Kafka's metadata cache check: a group coordinator commits offsets for
    /// partitions that live on other brokers).
    pub fn has_partition(&self, index: i32) -> bool {
        usize::try_from(index).is_ok_and(|i| i < self.partition_count())
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
    /// When a heartbeat last reached the active controller (ms), and whether
    /// its answer said this broker is fenced: what tells a broker that its
    /// image may be stale (see `metadata_is_current`).
    heartbeat_ok_ms: AtomicI64,
    fenced_by_controller: AtomicBool,
    /// Serialises applying the metadata image to local replicas, and holds
    /// what the last application saw (so the next applies only what changed).
    reconcile_lock: tokio::sync::Mutex<reconcile::Reconciled>,
    fetchers: ReplicaFetchers<Partition>,
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
    /// Changes when a high watermark of a partition led here advances (each
    /// Partition holds a clone): wakes consumers' long-polling fetches.
    hw_advanced: Arc<watch::Sender<u64>>,
    /// Producer ids, in blocks from the metadata quorum.
    producer_ids: producer_ids::ProducerIdManager,
    /// Consumer groups and committed offsets.
    pub groups: crate::group::GroupCoordinator,
    /// Transactions of the transactional ids whose `__transaction_state` partition is led here.
    pub txns: crate::txn::TransactionCoordinator,
    /// Connections to other brokers for transaction markers, one per broker.
    marker_connections: txn_host::MarkerConnections,
    /// Prometheus metrics (`/metrics`).
    pub metrics: Metrics,
    /// Client quotas' measured rates (the quotas are in the metadata image).
    pub quotas: crate::quota::QuotaManager,
    /// Segment files in the log dir at an unclean start: the denominator of recovery progress.
    segments_at_start: Option<usize>,
    /// Set once start-up is done: logs recovered, registered, unfenced (or timed out waiting).
    started: AtomicBool,
    /// `authorizer.class.name` and its settings; None: everything is allowed.
    pub authorizer: Option<Arc<crate::security::acl::AuthorizerConfig>>,
    /// How this broker connects to its peers' inter-broker listener; its TLS
    /// follows the listener's stores (see `reload_inter_broker_security`).
    pub inter_broker_security: std::sync::RwLock<skein_client::ClientSecurity>,
}

/// How far opening the hosted logs has got (`/v1/status` during start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupProgress {
    pub segments_opened: usize,
    /// All segments to open after an unclean shutdown; after a clean one
    /// (opened without recovery, and not counted first) those opened so far.
    pub segments_total: usize,
    pub recovered_segments: usize,
    pub done: bool,
}

#[derive(Debug, Default)]
struct Checkpoints {
    recovery: checkpoint::Checkpoint,
    log_start: checkpoint::Checkpoint,
    high_watermark: checkpoint::Checkpoint,
}

const CLEAN_SHUTDOWN: &str = ".kafka_cleanshutdown";

/// Segment files in the partition directories under `log_dir` (not the metadata log's).
fn count_segments(log_dir: &std::path::Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(log_dir) else {
        return 0;
    };
    dirs.filter_map(Result::ok)
        .filter(|d| d.file_name() != "__cluster_metadata-0")
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flat_map(|files| files.filter_map(Result::ok))
        .filter(|f| f.file_name().to_string_lossy().ends_with(".log"))
        .count()
}
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
    /// This broker's config now: its static config with the dynamic
    /// overrides of the metadata image (the cluster's, then its own).
    pub fn effective_config(&self) -> BrokerConfig {
        self.controller
            .with_image(|img| img.effective_config(&self.config, self.node_id))
    }

    /// A TLS listener's settings as they are now, for its reload checks.
    pub fn tls_settings_source(self: &Arc<Self>, listener: &str) -> crate::security::tls::SettingsSource {
        let broker = Arc::downgrade(self);
        let listener = listener.to_string();
        Arc::new(move || {
            let config = match broker.upgrade() {
                Some(b) => b.effective_config(),
                None => {
                    return Err(crate::security::tls::TlsError {
                        listener: listener.clone(),
                        reason: "the broker is shutting down".into(),
                    })
                }
            };
            crate::security::tls::TlsSettings::from_config(&config, &listener)
        })
    }

    /// How this broker connects to its peers' inter-broker listener now.
    pub fn inter_broker_security(&self) -> skein_client::ClientSecurity {
        self.inter_broker_security
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the inter-broker listener's stores again (they changed): new
    /// connections to peers present the new certificate and trust the new
    /// trust store; an unusable change keeps the previous settings.
    pub fn reload_inter_broker_security(&self) {
        match crate::security::inter_broker::client_security(&self.effective_config()) {
            Ok(s) => *self.inter_broker_security.write().unwrap_or_else(|e| e.into_inner()) = s,
            Err(e) => tracing::warn!("{e}; connections to peers keep the previous TLS configuration"),
        }
    }

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
        let hw_advanced = Arc::new(watch::channel(0).0);
        // Counted (a listing of every partition's directory) only when they
        // must be recovered: a clean start opens them in about the time the
        // count would take, and 100,000 listings are a second of it.
        let segments_at_start = (!clean).then(|| count_segments(&log_dir));
        let metrics = Metrics::new().with_controller_counters(controller.refused_proposals.clone());
        let authorizer = config.authorizer().map(Arc::new);
        let inter_broker_security = match crate::security::inter_broker::client_security(&config) {
            Ok(s) => s,
            // A cluster of one (no voters configured) has no peers to reach:
            // its inter-broker settings are only wrong if it ever gets some.
            Err(e) if config.voters().map(|v| v.is_empty()).unwrap_or(false) => {
                tracing::warn!(
                    "the inter-broker client is not usable ({e}); this broker has no peers, so nothing needs it"
                );
                skein_client::ClientSecurity::plaintext()
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        Ok(Arc::new(Broker {
            node_id: config.node_id(),
            cluster_id: config.cluster_id(),
            log_dir,
            topics: RwLock::new(BTreeMap::new()),
            controller,
            broker_epoch: AtomicI64::new(-1),
            heartbeat_ok_ms: AtomicI64::new(now_ms()),
            fenced_by_controller: AtomicBool::new(false),
            reconcile_lock: tokio::sync::Mutex::new(reconcile::Reconciled::default()),
            fetchers: ReplicaFetchers::default(),
            leader_throttle: std::sync::Mutex::new(Throttle::new(now_ms())),
            follower_throttle: std::sync::Mutex::new(Throttle::new(now_ms())),
            checkpoints: std::sync::Mutex::new(checkpoints),
            clean_start: clean,
            open_stats: std::sync::Mutex::new(crate::log::OpenStats::default()),
            appended,
            hw_advanced,
            producer_ids: producer_ids::ProducerIdManager::new(),
            groups: crate::group::GroupCoordinator::new(
                crate::group::state::GroupConfig::from_broker_config(&config),
                config.offsets_topic_partitions(),
                config.consumer_group_timeouts(),
            ),
            txns: crate::txn::TransactionCoordinator::new(config.transaction_state_partitions()),
            marker_connections: Default::default(),
            quotas: crate::quota::QuotaManager::new(config.quota_windows()),
            config,
            metrics,
            segments_at_start,
            started: AtomicBool::new(false),
            authorizer,
            inter_broker_security: std::sync::RwLock::new(inter_broker_security),
        }))
    }

    /// How far start-up has got opening (and, after a crash, recovering) the logs.
    pub fn startup_progress(&self) -> StartupProgress {
        let stats = *self.open_stats.lock().unwrap_or_else(|e| e.into_inner());
        StartupProgress {
            segments_opened: stats.segments,
            segments_total: self.segments_at_start.unwrap_or(0).max(stats.segments),
            recovered_segments: stats.recovered_segments,
            done: self.started.load(Ordering::SeqCst),
        }
    }

    /// Ready for clients (`/readyz`): started, and registered and unfenced in the
    /// metadata this broker has applied (the controller unfences a broker only
    /// once it has caught up with the metadata log).
    pub fn is_ready(&self) -> bool {
        self.started.load(Ordering::SeqCst) && self.is_registered_and_unfenced()
    }

    /// Whether this broker may act on the leadership its image gives it: the
    /// image has it registered and unfenced, a heartbeat reached the active
    /// controller within `broker.session.timeout.ms`, and the controller's last
    /// answer did not say it is fenced. A broker cut off from the quorum (the
    /// controller fences it after that timeout), or back but not yet caught up
    /// with the metadata log, may have been replaced as leader without its image
    /// showing it yet; it must not send clients to itself meanwhile.
    pub fn metadata_is_current(&self) -> bool {
        let quiet = now_ms() - self.heartbeat_ok_ms.load(Ordering::SeqCst);
        quiet <= self.config.broker_session_timeout_ms() as i64
            && !self.fenced_by_controller.load(Ordering::SeqCst)
            && self.is_registered_and_unfenced()
    }

    fn is_registered_and_unfenced(&self) -> bool {
        let me = self.node_id;
        let epoch = self.broker_epoch.load(Ordering::SeqCst);
        self.controller
            .with_image(|img| img.brokers.get(&me).is_some_and(|b| !b.fenced && b.epoch == epoch))
    }

    /// Records the active controller's answer to a heartbeat.
    pub(super) fn heartbeat_answered(&self, fenced: bool) {
        self.heartbeat_ok_ms.store(now_ms(), Ordering::SeqCst);
        self.fenced_by_controller.store(fenced, Ordering::SeqCst);
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
        self.started.store(true, Ordering::SeqCst);
        Ok(())
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
    /// UNKNOWN_TOPIC_OR_PARTITION if it does not exist, NOT_LEADER_OR_FOLLOWER if another
    /// broker leads it or this broker's metadata may be stale (`metadata_is_current`).
    pub fn leader_partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, ResponseError> {
        match self.partition(topic, index).filter(|p| !p.is_deleted()) {
            Some(p) if p.is_leader(self.node_id) && self.metadata_is_current() => Ok(p),
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

    /// The local replica a consumer may read: the leader's, or with a fetch
    /// that can follow a preferred replica (v11+, KIP-392) a follower's, read
    /// up to its high watermark. Errors as [`Broker::leader_partition`].
    pub fn readable_partition(
        &self,
        topic: &str,
        index: i32,
        from_followers: bool,
    ) -> Result<Arc<Partition>, ResponseError> {
        match self.leader_partition(topic, index) {
            Err(ResponseError::NotLeaderOrFollower) if from_followers => {}
            other => return other,
        }
        match self.partition(topic, index).filter(|p| !p.is_deleted()) {
            Some(p) if self.metadata_is_current() && p.replica_state().replicas.contains(&self.node_id) => Ok(p),
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }

    /// KIP-392, on the leader of `p`: the in-sync replica a consumer in
    /// `client_rack` should read from instead (RackAwareReplicaSelector), or
    /// None to read here (no selector, no rack, the leader's own rack, or no
    /// live in-sync replica there). Of several, the lowest id: stable, so a
    /// consumer is not moved back and forth.
    pub fn preferred_read_replica(&self, p: &Partition, client_rack: &str) -> Option<i32> {
        if client_rack.is_empty() || !self.config.rack_aware_fetching() {
            return None;
        }
        if self.config.get("broker.rack").as_deref() == Some(client_rack) {
            return None;
        }
        let isr = p.replica_state().isr;
        self.controller.with_image(|img| {
            isr.iter()
                .copied()
                .filter(|id| *id != self.node_id)
                .filter(|id| {
                    img.brokers
                        .get(id)
                        .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(client_rack))
                })
                .min()
        })
    }

    /// The ids of live (registered, unfenced) brokers.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.controller.with_image(MetadataImage::live_brokers)
    }

    /// A watch that changes after every append, for long-polling fetches.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A watch that changes when a high watermark of a partition led here
    /// advances, for consumers' long-polling fetches.
    pub fn subscribe_high_watermarks(&self) -> watch::Receiver<u64> {
        self.hw_advanced.subscribe()
    }

    pub(crate) fn notify_append(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Runs blocking work (disk I/O) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("blocking task failed: {e}"))))
}
