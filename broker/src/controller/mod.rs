//! The metadata quorum: a Raft group (openraft, RPCs over tonic gRPC) whose log
//! is the cluster's metadata, as KRaft's `__cluster_metadata` is.
//!
//! Every broker runs a Raft node: the brokers named in `controller.quorum.voters`
//! vote, the others follow as learners. Each applies the committed log to its
//! own [`MetadataImage`](image::MetadataImage). The Raft leader is the *active
//! controller*: it commits the commands brokers propose, watches their
//! heartbeats and fences those that go quiet. This module owns consensus and
//! liveness; what a broker does with the image (open logs, lead, follow) is the
//! cluster module's job.

pub mod features;
pub mod image;
pub mod network;
pub mod pre_vote;
pub mod store;
pub mod voters;

/// Code generated from `proto/quorum.proto`.
pub mod proto {
    tonic::include_proto!("skein.quorum");
}

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use openraft::Raft;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::AdminError;
use image::{Command, MetadataImage, Reply};

openraft::declare_raft_types!(
    /// openraft's type configuration for the metadata log.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = QuorumNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A member of the metadata quorum as the log records it: where its
/// CONTROLLER listener is, and the directory id (KIP-858) of the log directory
/// that holds its copy of the metadata log. A voter is the pair (KIP-853): a
/// node that comes back with a new directory (its disk lost) is not the voter
/// it was, and votes only once it has been added again under the new id.
///
/// Serialized as openraft's `BasicNode` was (`addr`), so logs written before
/// directory ids read back with a nil one: "not yet reported".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumNode {
    pub addr: String,
    #[serde(default)]
    pub directory_id: Uuid,
}

impl QuorumNode {
    pub fn new(addr: impl Into<String>, directory_id: Uuid) -> Self {
        QuorumNode {
            addr: addr.into(),
            directory_id,
        }
    }
}

impl std::fmt::Display for QuorumNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (directory {})", self.addr, self.directory_id)
    }
}

/// A broker's liveness report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: i32,
    pub epoch: i64,
    /// The last metadata log index the broker has applied (Kafka's
    /// `currentMetadataOffset`): a fenced broker is unfenced only once it has
    /// caught up, so that it never serves with an image older than its fencing.
    #[serde(default)]
    pub applied: u64,
}

/// The active controller's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeartbeatReply {
    Ok {
        fenced: bool,
    },
    /// The broker is not registered under that epoch: it must register again.
    StaleEpoch,
    /// The receiver is not the active controller.
    NotController,
}

/// How long a broker-side call waits for an active controller.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one attempt at committing a proposal waits before trying again.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a learner may be without a broker registration before the active
/// controller stops replicating to it (a joining broker registers within it).
const LEARNER_GRACE: Duration = Duration::from_secs(30);

/// This broker's Raft node and, while it leads, the active controller's duties.
pub struct Controller {
    pub node_id: i32,
    pub raft: Raft<TypeConfig>,
    image: Arc<RwLock<MetadataImage>>,
    applied: watch::Receiver<u64>,
    /// host:port of this node's CONTROLLER listener.
    address: String,
    voters: Vec<crate::config::Voter>,
    /// Active controller only: when each broker last heartbeat.
    last_seen: Mutex<HashMap<i32, Instant>>,
    /// Active controller only: the metadata log index a fenced broker must
    /// have applied before it is unfenced (this controller's applied index at
    /// the broker's first heartbeat while fenced).
    catch_up: Mutex<HashMap<i32, u64>>,
    /// Proposals this node refused as the active controller, before or after
    /// committing them (`kafka_controller_kafkacontroller_proposalsrefused`).
    pub refused_proposals: prometheus_client::metrics::counter::Counter,
    session_timeout: Duration,
    /// The metadata log, read for its last entry (pre-votes compare logs).
    log: store::LogStore,
    /// When this voter last heard from a leader (or led, or granted a vote).
    leader_contact: Mutex<Instant>,
    /// openraft's leader lease (`election_timeout_max`): a voter that heard
    /// from a leader within it refuses votes, and pre-votes.
    lease: Duration,
    /// The spread of election waits past the lease (`election_timeout_min`).
    election_spread: Duration,
    /// This node's static `unclean.leader.election.enable`, used while it is
    /// the active controller (topic configs and dynamic configs override it).
    unclean_leader_election: bool,
    /// How this node calls its peers (plain, or mutual TLS).
    network: network::Network,
    /// The directory id of this node's log directory (meta.properties).
    pub directory_id: Uuid,
    /// `controller.quorum.bootstrap.servers`: where a node outside the initial
    /// voters finds the quorum (besides those voters).
    bootstrap: Vec<String>,
    /// Set when the quorum records this node's id as a voter under another
    /// directory: this node lost the disk that voter had, and must not vote
    /// until it has been added again (`voters.rs`).
    replacement: std::sync::atomic::AtomicBool,
    /// Active controller only: nodes that announced a directory other than
    /// their voter record's (replacements waiting to be added), by id.
    pub(crate) replacements: Mutex<BTreeMap<i32, QuorumNode>>,
    /// One voter change at a time (KIP-853).
    voter_change: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("node_id", &self.node_id).finish()
    }
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// One node's view of the metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuorumStatus {
    pub node_id: i32,
    /// leader, follower, candidate, learner or shutdown.
    pub role: &'static str,
    pub leader: Option<i32>,
    pub term: u64,
    pub last_log_index: u64,
    pub last_applied: u64,
    pub voters: Vec<i32>,
    pub learners: Vec<i32>,
    /// On the leader: the last log index each other member has replicated.
    pub matched: BTreeMap<i32, u64>,
    /// Every member's CONTROLLER listener and directory id, as the log records them.
    pub nodes: BTreeMap<i32, QuorumNode>,
    /// On the leader: nodes that came back with a new directory under a
    /// voter's id, waiting to replace it (observers until then).
    pub replacements: BTreeMap<i32, QuorumNode>,
    /// Whether a voter change is being committed (a joint configuration).
    pub changing: bool,
}

impl Controller {
    /// Opens the metadata log, starts the Raft node and its gRPC listener, and
    /// joins the quorum (initialising it on first start, or asking to learn).
    pub async fn start(config: &BrokerConfig) -> io::Result<Arc<Controller>> {
        let node_id = config.node_id();
        let meta =
            crate::log::meta_properties::ensure(&config.log_dir(), &config.cluster_id(), node_id).map_err(io_error)?;
        let directory_id = Uuid::parse_str(&meta.directory_id).unwrap_or_default();
        let dir = config.log_dir().join("__cluster_metadata-0");
        let listener = config.controller_listener();
        let address = config
            .advertised_controller_address()
            .unwrap_or_else(|| "127.0.0.1:0".to_string());
        let mut voters = config.voters().map_err(io_error)?;
        let bootstrap = config.quorum_bootstrap_servers().map_err(io_error)?;
        // Without voters or bootstrap servers (or with only this node as one),
        // this node is a quorum of its own.
        if voters.is_empty() && bootstrap.iter().all(|b| *b == address) {
            voters.push(crate::config::Voter {
                id: node_id,
                address: address.clone(),
            });
        }
        let election = config.election_timeout_ms().max(10);
        let raft_config = openraft::Config {
            cluster_name: config.cluster_id(),
            election_timeout_min: election,
            election_timeout_max: election * 2,
            heartbeat_interval: (election / 5).max(5),
            install_snapshot_timeout: 10_000,
            snapshot_max_chunk_size: network::SNAPSHOT_CHUNK_BYTES,
            max_payload_entries: network::MAX_PAYLOAD_ENTRIES,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.metadata_entries_between_snapshots()),
            // A follower further behind than this gets the snapshot instead.
            max_in_snapshot_log_to_keep: config.metadata_entries_between_snapshots().min(1000),
            // Elections are started by `elect_when_leader_lost`, after a pre-vote.
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(io_error)?;
        let log = store::LogStore::open(&dir)?;
        let image = Arc::new(RwLock::new(MetadataImage::default()));
        let (applied_tx, applied) = watch::channel(0u64);
        let sm = store::StateMachine::open(&dir, Arc::clone(&image), applied_tx)?;
        let log_reader = log.clone();
        let network = network::Network {
            tls: quorum_tls(config, node_id, Arc::clone(&image))?,
        };
        let raft = Raft::new(node_id as u64, Arc::new(raft_config), network.clone(), log, sm)
            .await
            .map_err(io_error)?;
        let controller = Arc::new(Controller {
            node_id,
            raft,
            image,
            applied,
            address: address.clone(),
            voters: voters.clone(),
            last_seen: Mutex::new(HashMap::new()),
            catch_up: Mutex::new(HashMap::new()),
            refused_proposals: Default::default(),
            log: log_reader,
            leader_contact: Mutex::new(Instant::now()),
            lease: Duration::from_millis(election * 2),
            election_spread: Duration::from_millis(election),
            session_timeout: Duration::from_millis(config.broker_session_timeout_ms()),
            unclean_leader_election: config.unclean_leader_election_enable(),
            network,
            directory_id,
            bootstrap,
            replacement: Default::default(),
            replacements: Default::default(),
            voter_change: Default::default(),
        });
        if let Some(l) = listener {
            let host = if l.host.is_empty() { "0.0.0.0" } else { l.host.as_str() };
            let tcp = tokio::net::TcpListener::bind((host, l.port))
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {host}:{}: {e}", l.port)))?;
            tracing::info!(node_id, "metadata quorum listening on {}", tcp.local_addr()?);
            let service = proto::quorum_server::QuorumServer::new(network::QuorumService {
                controller: Arc::clone(&controller),
            })
            .max_decoding_message_size(network::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(network::MAX_MESSAGE_BYTES);
            let server = tonic::transport::Server::builder().add_service(service);
            match controller.network.tls.clone() {
                Some(tls) => {
                    tokio::spawn(Arc::clone(&tls).watch());
                    let incoming = tls.incoming(tcp, config.controller_listener_name());
                    tokio::spawn(async move {
                        if let Err(e) = server.serve_with_incoming(incoming).await {
                            tracing::error!("metadata quorum listener failed: {e}");
                        }
                    });
                }
                None => {
                    let incoming = tonic::transport::server::TcpIncoming::from(tcp).with_nodelay(Some(true));
                    tokio::spawn(async move {
                        if let Err(e) = server.serve_with_incoming(incoming).await {
                            tracing::error!("metadata quorum listener failed: {e}");
                        }
                    });
                }
            }
        }
        let initialized = controller.raft.is_initialized().await.map_err(io_error)?;
        if voters.iter().any(|v| v.id == node_id) && !initialized {
            if let Some(recorded) = controller.recorded_elsewhere().await {
                // This node's disk is gone but its voter record is not: it
                // must not start a quorum of its own, nor vote as that voter.
                controller.replacement.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!(
                    node_id,
                    %directory_id,
                    %recorded,
                    "the metadata quorum records this node as a voter with another log directory: \
                     following as an observer until the voter is replaced (RemoveRaftVoter, then AddRaftVoter)"
                );
            } else {
                // Every voter initialises with the same set (directory ids are
                // reported later), so all write the same first entry.
                let members: BTreeMap<u64, QuorumNode> = voters
                    .iter()
                    .map(|v| (v.id as u64, QuorumNode::new(&v.address, Uuid::nil())))
                    .collect();
                if let Err(e) = controller.raft.initialize(members).await {
                    tracing::debug!("quorum already initialised: {e}");
                }
            }
        }
        // Every node reports its listener and directory to the active
        // controller: a learner asks to follow, a voter claims its record.
        let c = Arc::clone(&controller);
        tokio::spawn(async move { c.announce_until_heard().await });
        let c = Arc::clone(&controller);
        tokio::spawn(async move { c.elect_when_leader_lost().await });
        let c = Arc::clone(&controller);
        let auto_rebalance = config
            .auto_leader_rebalance_enable()
            .then(|| Duration::from_millis(config.leader_imbalance_check_interval_ms()));
        tokio::spawn(async move { c.active_controller_duties(auto_rebalance).await });
        Ok(controller)
    }

    /// Reads the current image.
    pub fn with_image<T>(&self, f: impl FnOnce(&MetadataImage) -> T) -> T {
        f(&self.image.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A watch of the last applied metadata log index, sent after every applied batch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Waits until `pred` holds for the image, or the timeout passes.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&MetadataImage) -> bool) -> bool {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.with_image(&pred) {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return self.with_image(&pred);
            }
        }
    }

    /// The active controller's node id, if known.
    pub fn active_controller(&self) -> Option<i32> {
        self.raft.metrics().borrow().current_leader.map(|l| l as i32)
    }

    /// This node's view of the metadata quorum (`/v1/status`, DescribeQuorum).
    pub fn quorum_status(&self) -> QuorumStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let role = match m.state {
            openraft::ServerState::Leader => "leader",
            openraft::ServerState::Candidate => "candidate",
            openraft::ServerState::Follower => "follower",
            openraft::ServerState::Learner => "learner",
            openraft::ServerState::Shutdown => "shutdown",
        };
        QuorumStatus {
            node_id: self.node_id,
            role,
            leader: m.current_leader.map(|l| l as i32),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied: m.last_applied.map_or(0, |l| l.index),
            voters: membership.voter_ids().map(|id| id as i32).collect(),
            learners: membership.learner_ids().map(|id| id as i32).collect(),
            nodes: membership.nodes().map(|(id, n)| (*id as i32, n.clone())).collect(),
            replacements: self.replacements.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            changing: membership.get_joint_config().len() > 1,
            matched: m
                .replication
                .map(|r| {
                    r.into_iter()
                        .map(|(id, log)| (id as i32, log.map_or(0, |l| l.index)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active_controller() == Some(self.node_id)
    }

    pub(crate) fn address_of(&self, id: i32) -> Option<String> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership()
            .get_node(&(id as u64))
            .map(|n| n.addr.clone())
            .or_else(|| self.voters.iter().find(|v| v.id == id).map(|v| v.address.clone()))
    }

    /// Commits a command on the active controller, wherever it is, and returns
    /// its reply once this broker's own image holds the change too, so the
    /// caller reads its own write (a broker's image can trail the controller's
    /// by a replication round).
    pub async fn propose(&self, cmd: Command) -> Result<Reply, AdminError> {
        let deadline = Instant::now() + PROPOSE_TIMEOUT;
        loop {
            let attempt = match self.active_controller() {
                Some(id) if id == self.node_id => self.commit_local(cmd.clone()).await,
                Some(id) => self.propose_remote(id, &cmd).await,
                None => Err("no active controller".to_string()),
            };
            match attempt {
                Ok((reply, index)) => {
                    let left = deadline.saturating_duration_since(Instant::now()).max(ATTEMPT_TIMEOUT);
                    if !self.wait_applied(index, left).await {
                        tracing::warn!("metadata entry {index} is committed but not yet applied here after {left:?}");
                    }
                    return Ok(reply);
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(AdminError::new(
                        ResponseError::RequestTimedOut,
                        format!("the metadata quorum did not commit the change: {e}"),
                    ))
                }
                Err(e) => tracing::debug!("proposal not committed yet: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until this broker has applied the metadata log up to `index`.
    async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    async fn propose_remote(&self, id: i32, cmd: &Command) -> Result<(Reply, u64), String> {
        let address = self
            .address_of(id)
            .ok_or_else(|| format!("no address for controller {id}"))?;
        let mut client = self.network.client(&address).map_err(|e| e.to_string())?;
        let p = network::payload(cmd).map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(ATTEMPT_TIMEOUT, client.propose(p))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        network::decode::<Result<(Reply, u64), String>>(reply.get_ref()).map_err(|e| e.to_string())?
    }

    /// Commits a command if this node is the active controller.
    pub async fn propose_local(&self, cmd: Command) -> Result<Reply, String> {
        self.commit_local(cmd).await.map(|(reply, _)| reply)
    }

    /// Commits a command if this node is the active controller, and returns its
    /// reply and log index.
    ///
    /// Bounded like a remote proposal: a leader that steps down and then has its
    /// uncommitted tail replaced by a snapshot from the new leader is never told
    /// what became of the entry (openraft answers only entries it truncates or
    /// applies), so an unbounded wait could hang, e.g. a restarting broker's
    /// registration.
    pub async fn commit_local(&self, cmd: Command) -> Result<(Reply, u64), String> {
        // A command the image refuses now is answered without a log entry: a
        // refused proposal retried in a loop must not grow the metadata log.
        if let Some(refusal) = self
            .is_active()
            .then(|| self.with_image(|img| img.precheck(&cmd)))
            .flatten()
        {
            self.refused_proposals.inc();
            return Ok((refusal, *self.applied.borrow()));
        }
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.raft.client_write(cmd)).await {
            Ok(Ok(r)) => {
                if matches!(r.data, Reply::Error { .. }) {
                    self.refused_proposals.inc();
                }
                Ok((r.data, r.log_id.index))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("not committed within {ATTEMPT_TIMEOUT:?}")),
        }
    }

    /// Notes that this voter heard from a leader (an accepted AppendEntries or
    /// snapshot) or granted a vote: its election wait starts again.
    pub fn leader_contact(&self) {
        *self.leader_contact.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn since_leader_contact(&self) -> Duration {
        self.leader_contact.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }

    /// Answers a pre-vote: would this node vote for the candidate now?
    pub fn pre_vote_local(&self, req: &pre_vote::PreVoteRequest) -> pre_vote::PreVoteResponse {
        let i_lead = self.is_active();
        let since = self.since_leader_contact();
        let granted =
            self.may_vote() && pre_vote::grant(i_lead, since, self.lease, req.last_log_id, self.log.last_log_id());
        tracing::debug!(
            candidate = req.candidate,
            granted,
            since_ms = since.as_millis() as u64,
            "pre-vote"
        );
        pre_vote::PreVoteResponse { granted }
    }

    /// The election timer (openraft's own is off): a voter that has not heard
    /// from a leader for a random wait past the lease asks the other voters for
    /// a pre-vote and starts an election only when a majority would vote for
    /// it. A voter cut off from the others therefore never raises the term,
    /// and cannot depose a healthy leader when it comes back.
    async fn elect_when_leader_lost(self: Arc<Self>) {
        // Fine enough that two voters' random waits rarely fall in one tick.
        let tick = (self.election_spread / 20).max(Duration::from_millis(5));
        let mut wait = self.next_election_wait();
        loop {
            tokio::time::sleep(tick).await;
            let m = self.raft.metrics().borrow().clone();
            if m.state == openraft::ServerState::Leader {
                self.leader_contact();
                continue;
            }
            let me = self.node_id as u64;
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            if !voters.contains(&me) || self.since_leader_contact() < wait || !self.may_vote() {
                continue;
            }
            let req = pre_vote::PreVoteRequest {
                candidate: me,
                last_log_id: self.log.last_log_id(),
            };
            let started = Instant::now();
            let granted = self.pre_vote_round(&voters, &req).await;
            // A leader heard from (or a vote granted) while the round ran makes
            // its answers stale: standing now would depose a leader just elected.
            let interrupted = self.since_leader_contact() < started.elapsed();
            if interrupted {
                tracing::debug!("a leader appeared during the pre-vote: not standing");
            } else if pre_vote::won(granted, voters.len()) {
                tracing::info!(
                    granted,
                    voters = voters.len(),
                    term = m.current_term,
                    "pre-vote won: standing for election"
                );
                if let Err(e) = self.raft.trigger().elect().await {
                    tracing::warn!("cannot start an election: {e}");
                }
            } else {
                tracing::debug!(granted, voters = voters.len(), "pre-vote lost: the term stays");
            }
            // Whatever came of it, the next attempt waits a fresh random while.
            self.leader_contact();
            wait = self.next_election_wait();
        }
    }

    /// Asks the other voters for a pre-vote; returns the grants, this node's
    /// own included, as soon as they are a majority or all have answered.
    async fn pre_vote_round(&self, voters: &[u64], req: &pre_vote::PreVoteRequest) -> usize {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut asks: FuturesUnordered<_> = voters
            .iter()
            .filter(|&&v| v != req.candidate)
            .map(|&v| self.ask_pre_vote(v, req))
            .collect();
        let mut granted = 1;
        while !pre_vote::won(granted, voters.len()) {
            match asks.next().await {
                Some(true) => granted += 1,
                Some(false) => {}
                None => break,
            }
        }
        granted
    }

    fn next_election_wait(&self) -> Duration {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i32(self.node_id);
        pre_vote::election_wait(self.lease, self.election_spread, h.finish())
    }

    async fn ask_pre_vote(&self, voter: u64, req: &pre_vote::PreVoteRequest) -> bool {
        let Some(address) = self.address_of(voter as i32) else {
            return false;
        };
        let (Ok(mut client), Ok(p)) = (self.network.client(&address), network::payload(req)) else {
            return false;
        };
        match tokio::time::timeout(self.election_spread, client.pre_vote(p)).await {
            Ok(Ok(reply)) => network::decode::<pre_vote::PreVoteResponse>(reply.get_ref()).is_ok_and(|r| r.granted),
            _ => false,
        }
    }

    /// Active controller: records a broker's heartbeat; unfences it if it is back.
    pub async fn heartbeat_local(&self, hb: Heartbeat) -> HeartbeatReply {
        if !self.is_active() {
            return HeartbeatReply::NotController;
        }
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hb.id, Instant::now());
        let reg = self.with_image(|img| img.brokers.get(&hb.id).cloned());
        match reg {
            Some(b) if b.epoch == hb.epoch => {
                if !b.fenced {
                    return HeartbeatReply::Ok { fenced: false };
                }
                let target = *self
                    .catch_up
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(hb.id)
                    .or_insert_with(|| *self.applied.borrow());
                if hb.applied < target {
                    return HeartbeatReply::Ok { fenced: true };
                }
                let cmd = Command::UnfenceBroker {
                    id: hb.id,
                    epoch: hb.epoch,
                };
                match self.propose_local(cmd).await {
                    Ok(Reply::Ok) => {
                        self.catch_up.lock().unwrap_or_else(|e| e.into_inner()).remove(&hb.id);
                        HeartbeatReply::Ok { fenced: false }
                    }
                    Ok(other) => {
                        tracing::debug!(broker = hb.id, "unfencing refused: {other:?}");
                        HeartbeatReply::Ok { fenced: true }
                    }
                    Err(e) => {
                        tracing::debug!(broker = hb.id, "unfencing not committed: {e}");
                        HeartbeatReply::Ok { fenced: true }
                    }
                }
            }
            _ => HeartbeatReply::StaleEpoch,
        }
    }

    /// Sends a heartbeat to the active controller.
    pub async fn heartbeat(&self, hb: Heartbeat) -> Result<HeartbeatReply, String> {
        match self.active_controller() {
            Some(id) if id == self.node_id => {
                // A leader cut off from the other voters still believes it
                // leads; its own broker must not take its stale image for current.
                let voters = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .voter_ids()
                    .count();
                // Recorded first: its broker is alive, and is never fenced by its own controller.
                let reply = self.heartbeat_local(hb).await;
                if voters > 1 {
                    match tokio::time::timeout(Duration::from_secs(2), self.raft.ensure_linearizable()).await {
                        Ok(Ok(_)) => {}
                        _ => return Err("this node leads the metadata quorum but no majority answers it".into()),
                    }
                }
                Ok(reply)
            }
            Some(id) => {
                let address = self.address_of(id).ok_or("no address for the active controller")?;
                let mut client = self.network.client(&address).map_err(|e| e.to_string())?;
                let p = network::payload(&hb).map_err(|e| e.to_string())?;
                let reply = tokio::time::timeout(Duration::from_secs(2), client.heartbeat(p))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                network::decode(reply.get_ref()).map_err(|e| e.to_string())
            }
            None => Err("no active controller".into()),
        }
    }

    /// Whether `topic` allows unclean leader election: its own config, else the
    /// dynamic broker config (this controller's, else the cluster default),
    /// else this node's static setting (Kafka's order of precedence).
    fn unclean_allowed(&self, img: &MetadataImage, topic: &str) -> bool {
        const KEY: &str = "unclean.leader.election.enable";
        img.topics
            .get(topic)
            .and_then(|t| t.configs.get(KEY))
            .or_else(|| img.broker_config(self.node_id, KEY))
            .map_or(self.unclean_leader_election, |v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Stops replicating the metadata log to learners whose broker was unregistered
    /// (UnregisterBroker). A learner joins before it registers, so only one
    /// missing from the registrations for a while is removed.
    async fn forget_unregistered_learners(&self, since: &mut HashMap<u64, Instant>) {
        let learners: Vec<u64> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .learner_ids()
            .collect();
        let now = Instant::now();
        since.retain(|id, _| learners.contains(id));
        let mut gone = std::collections::BTreeSet::new();
        for id in learners {
            if self.with_image(|img| img.brokers.contains_key(&(id as i32))) {
                since.remove(&id);
            } else if now.duration_since(*since.entry(id).or_insert(now)) > LEARNER_GRACE {
                gone.insert(id);
            }
        }
        if gone.is_empty() {
            return;
        }
        tracing::info!(learners = ?gone, "no longer replicating the metadata log to unregistered brokers");
        if let Err(e) = self
            .raft
            .change_membership(openraft::ChangeMembers::RemoveNodes(gone), false)
            .await
        {
            tracing::warn!("removing unregistered learners failed: {e}");
        }
    }

    /// While this node is the active controller: fence brokers whose heartbeats
    /// stopped, elect unclean leaders where that is allowed and needed, and move
    /// leadership back to preferred replicas.
    async fn active_controller_duties(self: Arc<Self>, auto_rebalance: Option<Duration>) {
        let tick = (self.session_timeout / 8).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut leading_since: Option<Instant> = None;
        let mut last_rebalance = Instant::now();
        let mut unregistered_since: HashMap<u64, Instant> = HashMap::new();
        loop {
            tokio::time::sleep(tick).await;
            if !self.is_active() {
                leading_since = None;
                continue;
            }
            let now = Instant::now();
            if leading_since.is_none() {
                // A new active controller gives every broker a full session to check in.
                leading_since = Some(now);
                last_rebalance = now;
                self.catch_up.lock().unwrap_or_else(|e| e.into_inner()).clear();
                let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.clear();
                for id in self.with_image(|img| img.brokers.keys().copied().collect::<Vec<_>>()) {
                    seen.insert(id, now);
                }
            }
            let expired: Vec<(i32, i64)> = {
                let seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
                self.with_image(|img| {
                    img.brokers
                        .values()
                        .filter(|b| !b.fenced)
                        .filter(|b| {
                            seen.get(&b.id)
                                .is_none_or(|t| now.duration_since(*t) > self.session_timeout)
                        })
                        .map(|b| (b.id, b.epoch))
                        .collect()
                })
            };
            for (id, epoch) in expired {
                tracing::warn!(broker = id, "no heartbeat within broker.session.timeout.ms: fencing");
                if let Err(e) = self.propose_local(Command::FenceBroker { id, epoch }).await {
                    tracing::warn!(broker = id, "fencing not committed: {e}");
                }
            }
            self.forget_unregistered_learners(&mut unregistered_since).await;
            self.finish_voter_change().await;
            let unclean = self.with_image(|img| {
                img.unclean_election_candidates()
                    .into_iter()
                    .filter(|(t, _)| self.unclean_allowed(img, t))
                    .collect::<Vec<_>>()
            });
            if !unclean.is_empty() {
                tracing::warn!(
                    partitions = ?unclean,
                    "unclean leader election: no in-sync replica is live; records the new leader lacks are lost"
                );
                if let Err(e) = self.propose_local(Command::ElectUnclean { partitions: unclean }).await {
                    tracing::warn!("unclean election not committed: {e}");
                }
            }
            if let Some(every) = auto_rebalance {
                if last_rebalance.elapsed() >= every {
                    last_rebalance = Instant::now();
                    if self.with_image(image::MetadataImage::has_preferred_leader_imbalance) {
                        tracing::info!("moving leadership back to preferred replicas");
                        let _ = self
                            .propose_local(Command::ElectPreferredLeaders { partitions: None })
                            .await;
                    }
                }
            }
        }
    }
}

/// The quorum's TLS: Some when the CONTROLLER listener is mapped to SSL in
/// `listener.security.protocol.map` (its `listener.name.controller.ssl.*`
/// stores: voters present their certificate and check their peers' against
/// the trust store). SASL is not served on the quorum.
fn quorum_tls(
    config: &BrokerConfig,
    node_id: i32,
    image: Arc<RwLock<MetadataImage>>,
) -> io::Result<Option<Arc<network::QuorumTls>>> {
    let name = config.controller_listener_name();
    let protocol = config.security_protocol_map().get(&name).cloned().unwrap_or_default();
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    match protocol.as_str() {
        "" | "PLAINTEXT" => Ok(None),
        "SSL" => {
            let config = config.clone();
            let settings = move || {
                let img = image.read().unwrap_or_else(|e| e.into_inner());
                crate::security::tls::TlsSettings::from_config(&img.effective_config(&config, node_id), &name)
            };
            let tls = network::QuorumTls::new(settings).map_err(|e| invalid(e.to_string()))?;
            Ok(Some(Arc::new(tls)))
        }
        other => Err(invalid(format!(
            "listener {name}: the metadata quorum serves PLAINTEXT or SSL (mutual TLS), not {other}"
        ))),
    }
}
