//! The admin client: bootstrap, version negotiation, routing and retries, and
//! one method per admin operation with typed results.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};

use crate::connection::Connection;
use crate::error::Error;
use crate::security::ClientSecurity;

/// The largest admin response accepted (a peer's length is not trusted).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How the admin client identifies itself and how long it waits.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub client_id: String,
    /// How long one request may take on the wire.
    pub request_timeout: Duration,
    /// How long an operation keeps retrying retriable errors.
    pub timeout: Duration,
    /// TLS and SASL for secured listeners (Kafka's client properties).
    pub security: ClientSecurity,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            client_id: "skein-admin".into(),
            request_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
            security: ClientSecurity::plaintext(),
        }
    }
}

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// The cluster as DescribeCluster reports it.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

/// One partition of a topic, from Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

impl PartitionInfo {
    /// Fewer in-sync replicas than replicas.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// A topic with its partitions, from Metadata.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: String,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// A topic to create: counts (None for the broker's defaults) or explicit replica lists.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    /// Replica lists by partition index; when set, the counts must be None.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// What DescribeConfigs and IncrementalAlterConfigs act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// One broker, or None for the cluster-wide default.
    Broker(Option<i32>),
    Group(String),
}

impl ConfigResource {
    fn type_code(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) => 4,
            ConfigResource::Group(_) => 32,
        }
    }

    fn name(&self) -> String {
        match self {
            ConfigResource::Topic(n) | ConfigResource::Group(n) => n.clone(),
            ConfigResource::Broker(id) => id.map(|i| i.to_string()).unwrap_or_default(),
        }
    }

    /// A named broker answers for itself; anything else goes to any broker.
    fn route(&self) -> Route {
        match self {
            ConfigResource::Broker(Some(id)) => Route::Broker(*id),
            _ => Route::Any,
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's ConfigSource code (1 dynamic topic, 4 static broker, 5 default, ...).
    pub source: i8,
    pub read_only: bool,
}

impl ConfigEntry {
    /// Kafka's name for the source.
    pub fn source_name(&self) -> &'static str {
        match self.source {
            1 => "DYNAMIC_TOPIC_CONFIG",
            2 => "DYNAMIC_BROKER_CONFIG",
            3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            4 => "STATIC_BROKER_CONFIG",
            5 => "DEFAULT_CONFIG",
            6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
            7 => "CLIENT_METRICS_CONFIG",
            8 => "DYNAMIC_GROUP_CONFIG",
            _ => "UNKNOWN",
        }
    }
}

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

impl AlterOp {
    fn to_wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            AlterOp::Set(k, v) => (k, 0, Some(v)),
            AlterOp::Delete(k) => (k, 1, None),
            AlterOp::Append(k, v) => (k, 2, Some(v)),
            AlterOp::Subtract(k, v) => (k, 3, Some(v)),
        };
        AlterableConfig::default()
            .with_name(str_bytes(name))
            .with_config_operation(op)
            .with_value(value.map(str_bytes))
    }
}

/// A reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A member of the metadata quorum (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumMember {
    pub id: i32,
    /// The directory id of its copy of the metadata log (KIP-853); nil if not reported.
    pub directory_id: uuid::Uuid,
    /// How far it has replicated the metadata log (a Raft log index); -1 if unknown.
    pub log_end_offset: i64,
}

/// The metadata quorum as its leader reports it (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumMember>,
    /// Brokers that follow the metadata log without voting.
    pub observers: Vec<QuorumMember>,
    /// Members' CONTROLLER listeners (host:port) by node id (DescribeQuorum v2).
    pub endpoints: BTreeMap<i32, String>,
}

impl QuorumInfo {
    /// How many entries `id` is behind the leader's log end; None if not a member.
    pub fn lag(&self, id: i32) -> Option<i64> {
        let end = self.voters.iter().find(|m| m.id == self.leader_id)?.log_end_offset;
        let m = self.voters.iter().chain(&self.observers).find(|m| m.id == id)?;
        Some((end - m.log_end_offset).max(0))
    }
}

/// A transaction as ListTransactions gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
    pub coordinator: i32,
}

/// A transaction as DescribeTransactions gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the open transaction began (ms), -1 when none is open.
    pub start_time_ms: i64,
    pub coordinator: i32,
    pub partitions: Vec<(String, i32)>,
}

/// A producer a partition has state for (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The first offset of its open transaction here, -1 when none.
    pub current_txn_start_offset: i64,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    pub coordinator: i32,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// Its partitions, by topic, for a group of the consumer protocol (empty otherwise).
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// The partitions in a consumer group member's assignment (Kafka's
/// ConsumerProtocolAssignment: a version, then the body); none if it is not one.
fn consumer_assignment(bytes: &[u8]) -> Vec<(String, Vec<i32>)> {
    use kafka_protocol::protocol::Decodable;
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    // Newer versions only add fields: read them as the newest this crate knows.
    let version = version.clamp(0, 3);
    ConsumerProtocolAssignment::decode(&mut buf, version)
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .map(|tp| (tp.topic.0.to_string(), tp.partitions))
                .collect()
        })
        .unwrap_or_default()
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub coordinator: i32,
    pub members: Vec<GroupMember>,
}

/// Where a request must go.
#[derive(Debug, Clone)]
enum Route {
    Any,
    Controller,
    Broker(i32),
}

/// One open connection and the versions its broker speaks.
struct Peer {
    conn: Connection,
    versions: HashMap<i16, (i16, i16)>,
}

#[derive(Default)]
struct Metadata {
    brokers: BTreeMap<i32, String>,
    controller: Option<i32>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Peer>>>;

/// Runs `$body` (a block that may `.await` and use `?`) until it succeeds, fails
/// for good, or the admin's deadline passes; metadata is refreshed before each retry.
///
/// A macro rather than a method taking an async closure: rustc cannot prove the
/// future of an `AsyncFnMut` argument `Send` for every lifetime, and the operator
/// runs admin calls on a multi-threaded runtime.
macro_rules! retry {
    ($admin:expr, $what:expr, $body:block) => {{
        let admin: &Admin = $admin;
        let what: &str = $what;
        let deadline = Instant::now() + admin.opts.timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt: Result<_, Error> = async $body.await;
            match attempt {
                Ok(v) => break Ok(v),
                Err(e) if e.is_retriable() => {
                    if Instant::now() + backoff >= deadline {
                        break Err(Error::Timeout(format!("{what}: {e}")));
                    }
                    tracing::debug!(what, error = %e, "retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    let _ = admin.refresh_metadata().await;
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// A Kafka admin client.
pub struct Admin {
    bootstrap: Vec<String>,
    opts: AdminOptions,
    peers: Mutex<HashMap<String, Slot>>,
    meta: Mutex<Metadata>,
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// `Ok` for error code 0, else the typed error.
fn check(code: i16, message: Option<&StrBytes>) -> Result<(), Error> {
    match code.err() {
        None => Ok(()),
        Some(e) => Err(Error::kafka(e, message.map(|m| m.as_str()))),
    }
}

impl Admin {
    /// An admin client that bootstraps through `bootstrap` ("host:port,host:port").
    /// Nothing is connected until the first operation.
    pub fn new(bootstrap: &str, opts: AdminOptions) -> Admin {
        Admin {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            opts,
            peers: Mutex::new(HashMap::new()),
            meta: Mutex::new(Metadata::default()),
        }
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Metadata> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, address: &str) -> Slot {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.entry(address.to_string()).or_default().clone()
    }

    /// Sends one request to `address`, opening (and negotiating) a connection
    /// first if needed; a failed connection is dropped so the next call reopens it.
    async fn call_at<R: Request>(
        &self,
        address: &str,
        build: &(dyn Fn(i16) -> R + Sync),
    ) -> Result<R::Response, Error> {
        let slot = self.slot(address);
        let mut guard = slot.lock().await;
        let peer = match guard.as_mut() {
            Some(p) => p,
            None => guard.insert(self.open(address).await?),
        };
        let version = negotiate::<R>(&peer.versions)?;
        match peer
            .conn
            .call(version, &build(version), self.opts.request_timeout)
            .await
        {
            Ok(r) => Ok(r),
            Err(e) => {
                *guard = None;
                // A frame that cannot be encoded or decoded is not a reachability problem.
                if e.kind() == std::io::ErrorKind::InvalidData {
                    return Err(Error::Protocol(format!("{address}: {e}")));
                }
                Err(e.into())
            }
        }
    }

    async fn open(&self, address: &str) -> Result<Peer, Error> {
        let mut conn = Connection::connect_with(
            address,
            self.opts.client_id.clone(),
            self.opts.request_timeout,
            MAX_RESPONSE_BYTES,
            &self.opts.security,
        )
        .await
        .map_err(|e| match e.kind() {
            // SASL refused, or TLS failed (tokio-rustls reports it as invalid data).
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidData => {
                Error::Authentication(format!("{address}: {e}"))
            }
            _ => Error::Io(e),
        })?;
        let req = ApiVersionsRequest::default()
            .with_client_software_name(str_bytes("skein-admin"))
            .with_client_software_version(str_bytes(env!("CARGO_PKG_VERSION")));
        let mut resp = conn.call(3, &req, self.opts.request_timeout).await?;
        if resp.error_code == ResponseError::UnsupportedVersion.code() {
            // The broker lists what it speaks; v0 is understood by every broker.
            resp = conn
                .call(0, &ApiVersionsRequest::default(), self.opts.request_timeout)
                .await?;
        }
        check(resp.error_code, None)?;
        let versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(Peer { conn, versions })
    }

    /// Every broker known, then the bootstrap list: where a request for any broker may go.
    fn any_addresses(&self) -> Vec<String> {
        let mut all: Vec<String> = self.meta().brokers.values().cloned().collect();
        for b in &self.bootstrap {
            if !all.contains(b) {
                all.push(b.clone());
            }
        }
        all
    }

    /// The address of the controller or of a named broker, refreshing metadata when it is not known.
    async fn resolve(&self, route: &Route) -> Result<String, Error> {
        let known = |m: &Metadata| match route {
            Route::Any => None,
            Route::Controller => m.controller.and_then(|c| m.brokers.get(&c).cloned()),
            Route::Broker(id) => m.brokers.get(id).cloned(),
        };
        if let Some(a) = known(&self.meta()) {
            return Ok(a);
        }
        self.refresh_metadata().await?;
        known(&self.meta()).ok_or_else(|| match route {
            Route::Broker(id) => Error::kafka(
                ResponseError::BrokerNotAvailable,
                Some(format!("broker {id} is not in the cluster")),
            ),
            _ => Error::kafka(ResponseError::NotController, Some("no controller is known")),
        })
    }

    /// Sends one request along a route.
    async fn send<R: Request>(&self, route: &Route, build: &(dyn Fn(i16) -> R + Sync)) -> Result<R::Response, Error> {
        match route {
            Route::Any => self.send_to_any(build).await,
            _ => {
                let address = self.resolve(route).await?;
                self.call_at(&address, build).await
            }
        }
    }

    /// Sends one request to the first broker that answers.
    async fn send_to_any<R: Request>(&self, build: &(dyn Fn(i16) -> R + Sync)) -> Result<R::Response, Error> {
        let mut last = None;
        for a in self.any_addresses() {
            match self.call_at(&a, build).await {
                Ok(r) => return Ok(r),
                Err(e @ (Error::Io(_) | Error::Unreachable(_))) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unreachable(
            last.map(|e| e.to_string())
                .unwrap_or_else(|| "no bootstrap servers".into()),
        ))
    }

    /// Reloads the broker list and the controller id.
    pub async fn refresh_metadata(&self) -> Result<(), Error> {
        let resp = self.metadata_request(Some(Vec::new())).await?;
        self.learn(&resp);
        Ok(())
    }

    fn learn(&self, resp: &MetadataResponse) {
        let mut m = self.meta();
        m.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        m.controller = Some(resp.controller_id.0).filter(|c| *c >= 0);
    }

    async fn metadata_request(&self, topics: Option<Vec<MetadataRequestTopic>>) -> Result<MetadataResponse, Error> {
        self.send_to_any(&|v| {
            // v4 added the flag; before it, a broker auto-creates as configured.
            MetadataRequest::default()
                .with_topics(topics.clone())
                .with_allow_auto_topic_creation(v < 4)
        })
        .await
    }

    /// The cluster id, the controller and every broker (fenced ones included).
    pub async fn describe_cluster(&self) -> Result<ClusterInfo, Error> {
        retry!(self, "describe cluster", {
            let r = self
                .send(&Route::Any, &|v| {
                    // Fenced brokers are listed from v2 (KIP-1073).
                    DescribeClusterRequest::default().with_include_fenced_brokers(v >= 2)
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())?;
            Ok(ClusterInfo {
                cluster_id: r.cluster_id.to_string(),
                controller_id: r.controller_id.0,
                brokers: r
                    .brokers
                    .iter()
                    .map(|b| BrokerInfo {
                        id: b.broker_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                        fenced: b.is_fenced,
                    })
                    .collect(),
            })
        })
    }

    /// Topics with their partitions: all of them (None) or the ones named, in
    /// which case a missing topic is UNKNOWN_TOPIC_OR_PARTITION.
    pub async fn describe_topics(&self, names: Option<&[String]>) -> Result<Vec<TopicInfo>, Error> {
        let topics = names.map(|n| {
            n.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect::<Vec<_>>()
        });
        retry!(self, "describe topics", {
            let resp = self.metadata_request(topics.clone()).await?;
            self.learn(&resp);
            let mut out = Vec::new();
            for t in &resp.topics {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                check(t.error_code, Some(&str_bytes(format!("topic {name}"))))?;
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                out.push(TopicInfo {
                    name,
                    id: t.topic_id.to_string(),
                    internal: t.is_internal,
                    partitions,
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// Creates a topic; `validate_only` checks it without creating it.
    pub async fn create_topic(&self, t: &NewTopic, validate_only: bool) -> Result<(), Error> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(&t.name))
            .with_num_partitions(if t.assignments.is_empty() {
                t.partitions.unwrap_or(-1)
            } else {
                -1
            })
            .with_replication_factor(if t.assignments.is_empty() {
                t.replication_factor.unwrap_or(-1)
            } else {
                -1
            })
            .with_assignments(
                t.assignments
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(i as i32)
                            .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
            .with_configs(
                t.configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            );
        let timeout_ms = self.timeout_ms();
        retry!(self, "create topic", {
            let r = self
                .send(&Route::Controller, &|_| {
                    CreateTopicsRequest::default()
                        .with_topics(vec![topic.clone()])
                        .with_timeout_ms(timeout_ms)
                        .with_validate_only(validate_only)
                })
                .await?;
            let t = r
                .topics
                .first()
                .ok_or_else(|| Error::Protocol("no topic in CreateTopics response".into()))?;
            check(t.error_code, t.error_message.as_ref())
        })
    }

    /// Raises a topic's partition count to `count`.
    pub async fn create_partitions(&self, topic: &str, count: i32, validate_only: bool) -> Result<(), Error> {
        let timeout_ms = self.timeout_ms();
        retry!(self, "create partitions", {
            let r = self
                .send(&Route::Controller, &|_| {
                    CreatePartitionsRequest::default()
                        .with_topics(vec![CreatePartitionsTopic::default()
                            .with_name(topic_name(topic))
                            .with_count(count)
                            .with_assignments(None)])
                        .with_timeout_ms(timeout_ms)
                        .with_validate_only(validate_only)
                })
                .await?;
            let t = r
                .results
                .first()
                .ok_or_else(|| Error::Protocol("no topic in CreatePartitions response".into()))?;
            check(t.error_code, t.error_message.as_ref())
        })
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), Error> {
        let timeout_ms = self.timeout_ms();
        retry!(self, "delete topic", {
            let r = self
                .send(&Route::Controller, &|v| {
                    let req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
                    if v >= 6 {
                        req.with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name(topic)))])
                    } else {
                        req.with_topic_names(vec![topic_name(topic)])
                    }
                })
                .await?;
            let t = r
                .responses
                .first()
                .ok_or_else(|| Error::Protocol("no topic in DeleteTopics response".into()))?;
            check(t.error_code, t.error_message.as_ref())
        })
    }

    /// UnregisterBroker: forgets a stopped broker that holds no replicas, so it
    /// is no longer listed. Refused for a running broker or one with replicas.
    pub async fn unregister_broker(&self, id: i32) -> Result<(), Error> {
        retry!(self, "unregister broker", {
            let r = self
                .send(&Route::Controller, &|_| {
                    UnregisterBrokerRequest::default().with_broker_id(BrokerId(id))
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())
        })
    }

    /// DescribeQuorum: the metadata quorum's leader, voters and observers with
    /// how far each has replicated the metadata log.
    pub async fn describe_quorum(&self) -> Result<QuorumInfo, Error> {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        retry!(self, "describe quorum", {
            let r = self
                .send(&Route::Any, &|_| {
                    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                        .with_topic_name(topic_name("__cluster_metadata"))
                        .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())?;
            let p = r
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or_else(|| Error::Protocol("no partition in DescribeQuorum response".into()))?;
            check(p.error_code, p.error_message.as_ref())?;
            let members = |v: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                v.iter()
                    .map(|m| QuorumMember {
                        id: m.replica_id.0,
                        directory_id: m.replica_directory_id,
                        log_end_offset: m.log_end_offset,
                    })
                    .collect()
            };
            let endpoints = r
                .nodes
                .iter()
                .filter_map(|n| {
                    let l = n.listeners.first()?;
                    Some((n.node_id.0, format!("{}:{}", l.host.as_str(), l.port)))
                })
                .collect();
            Ok(QuorumInfo {
                leader_id: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                high_watermark: p.high_watermark,
                voters: members(&p.current_voters),
                observers: members(&p.observers),
                endpoints,
            })
        })
    }

    /// AddRaftVoter: makes a node that follows the metadata log a voter, once
    /// it has caught up. A nil directory id means the node's current one.
    pub async fn add_raft_voter(&self, id: i32, directory_id: uuid::Uuid) -> Result<(), Error> {
        // The controller's wait for the node to catch up ends before this call's own timeout.
        let timeout_ms = (self.timeout_ms() - 5_000).max(1_000);
        retry!(self, "add voter", {
            let r = self
                .send(&Route::Any, &|_| {
                    AddRaftVoterRequest::default()
                        .with_cluster_id(None)
                        .with_timeout_ms(timeout_ms)
                        .with_voter_id(id)
                        .with_voter_directory_id(directory_id)
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())
        })
    }

    /// RemoveRaftVoter: the node stops voting (it follows the log while it
    /// runs). A nil directory id matches the voter's.
    pub async fn remove_raft_voter(&self, id: i32, directory_id: uuid::Uuid) -> Result<(), Error> {
        retry!(self, "remove voter", {
            let r = self
                .send(&Route::Any, &|_| {
                    RemoveRaftVoterRequest::default()
                        .with_cluster_id(None)
                        .with_voter_id(id)
                        .with_voter_directory_id(directory_id)
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())
        })
    }

    /// Every config of a resource with its value and source.
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>, Error> {
        retry!(self, "describe configs", {
            let r = self
                .send(&resource.route(), &|_| {
                    DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
                        .with_resource_type(resource.type_code())
                        .with_resource_name(str_bytes(resource.name()))
                        // null asks for every config (kafka-protocol's default is an empty list).
                        .with_configuration_keys(None)])
                })
                .await?;
            let res = r
                .results
                .first()
                .ok_or_else(|| Error::Protocol("no resource in DescribeConfigs response".into()))?;
            check(res.error_code, res.error_message.as_ref())?;
            Ok(res
                .configs
                .iter()
                .map(|c| ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.as_ref().map(|v| v.to_string()),
                    source: c.config_source,
                    read_only: c.read_only,
                })
                .collect())
        })
    }

    /// Applies SET/DELETE/APPEND/SUBTRACT operations to a resource's configs.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterOp],
        validate_only: bool,
    ) -> Result<(), Error> {
        let wire: Vec<AlterableConfig> = ops.iter().map(AlterOp::to_wire).collect();
        retry!(self, "alter configs", {
            let r = self
                .send(&resource.route(), &|_| {
                    IncrementalAlterConfigsRequest::default()
                        .with_resources(vec![AlterConfigsResource::default()
                            .with_resource_type(resource.type_code())
                            .with_resource_name(str_bytes(resource.name()))
                            .with_configs(wire.clone())])
                        .with_validate_only(validate_only)
                })
                .await?;
            let res = r
                .responses
                .first()
                .ok_or_else(|| Error::Protocol("no resource in IncrementalAlterConfigs response".into()))?;
            check(res.error_code, res.error_message.as_ref())
        })
    }

    /// Starts (Some(replicas)) or cancels (None) reassignments; one result per partition.
    pub async fn alter_partition_reassignments(
        &self,
        changes: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<((String, i32), Result<(), Error>)>, Error> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for (t, p, replicas) in changes {
            by_topic.entry(t).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*p)
                    .with_replicas(replicas.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect())),
            );
        }
        let topics: Vec<ReassignableTopic> = by_topic
            .into_iter()
            .map(|(t, ps)| {
                ReassignableTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(ps)
            })
            .collect();
        let timeout_ms = self.timeout_ms();
        retry!(self, "alter partition reassignments", {
            let r = self
                .send(&Route::Controller, &|_| {
                    AlterPartitionReassignmentsRequest::default()
                        .with_timeout_ms(timeout_ms)
                        .with_topics(topics.clone())
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())?;
            Ok(r.responses
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            (t.name.0.to_string(), p.partition_index),
                            check(p.error_code, p.error_message.as_ref()),
                        )
                    })
                })
                .collect())
        })
    }

    /// Every reassignment in progress.
    pub async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, Error> {
        let timeout_ms = self.timeout_ms();
        retry!(self, "list partition reassignments", {
            let r = self
                .send(&Route::Controller, &|_| {
                    ListPartitionReassignmentsRequest::default()
                        .with_timeout_ms(timeout_ms)
                        .with_topics(None)
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())?;
            let ids = |v: &Vec<BrokerId>| v.iter().map(|b| b.0).collect::<Vec<_>>();
            Ok(r.topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| OngoingReassignment {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        replicas: ids(&p.replicas),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    })
                })
                .collect())
        })
    }

    /// Elects preferred (or, with `preferred` false, unclean) leaders of the
    /// partitions given, or of every partition (None). ELECTION_NOT_NEEDED is success.
    pub async fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<((String, i32), Result<(), Error>)>, Error> {
        let topic_partitions = partitions.map(|ps| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in ps {
                by_topic.entry(t).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| TopicPartitions::default().with_topic(topic_name(t)).with_partitions(ps))
                .collect::<Vec<_>>()
        });
        let timeout_ms = self.timeout_ms();
        retry!(self, "elect leaders", {
            let r = self
                .send(&Route::Controller, &|_| {
                    ElectLeadersRequest::default()
                        .with_election_type(if preferred { 0 } else { 1 })
                        .with_topic_partitions(topic_partitions.clone())
                        .with_timeout_ms(timeout_ms)
                })
                .await?;
            check(r.error_code, None)?;
            Ok(r.replica_election_results
                .iter()
                .flat_map(|t| {
                    t.partition_result.iter().map(|p| {
                        let outcome = if p.error_code == ResponseError::ElectionNotNeeded.code() {
                            Ok(())
                        } else {
                            check(p.error_code, p.error_message.as_ref())
                        };
                        ((t.topic.0.to_string(), p.partition_id), outcome)
                    })
                })
                .collect())
        })
    }

    /// Sizes in bytes of the partitions a broker holds, by (topic, partition).
    pub async fn describe_log_dirs(&self, broker: i32) -> Result<BTreeMap<(String, i32), i64>, Error> {
        retry!(self, "describe log dirs", {
            let r = self
                .send(&Route::Broker(broker), &|_| {
                    DescribeLogDirsRequest::default().with_topics(None)
                })
                .await?;
            check(r.error_code, None)?;
            let mut sizes = BTreeMap::new();
            for dir in &r.results {
                check(dir.error_code, None)?;
                for t in &dir.topics {
                    for p in &t.partitions {
                        *sizes.entry((t.name.0.to_string(), p.partition_index)).or_insert(0) += p.partition_size;
                    }
                }
            }
            Ok(sizes)
        })
    }

    /// The size of every partition: the largest of its replicas' sizes (a
    /// replica still catching up is smaller than its leader).
    pub async fn partition_sizes(&self) -> Result<BTreeMap<(String, i32), u64>, Error> {
        let cluster = self.describe_cluster().await?;
        let mut sizes: BTreeMap<(String, i32), u64> = BTreeMap::new();
        for b in cluster.brokers.iter().filter(|b| !b.fenced) {
            for (tp, size) in self.describe_log_dirs(b.id).await? {
                let s = sizes.entry(tp).or_insert(0);
                *s = (*s).max(size.max(0) as u64);
            }
        }
        Ok(sizes)
    }

    /// Every group of the cluster (each broker lists the groups it coordinates).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, Error> {
        let cluster = self.describe_cluster().await?;
        let mut out = Vec::new();
        for b in cluster.brokers.iter().filter(|b| !b.fenced) {
            let r = retry!(self, "list groups", {
                self.send(&Route::Broker(b.id), &|_| ListGroupsRequest::default()).await
            })?;
            check(r.error_code, None)?;
            out.extend(r.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                coordinator: b.id,
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// The broker that coordinates `group`.
    async fn coordinator(&self, group: &str) -> Result<i32, Error> {
        self.coordinator_of(0, group).await
    }

    /// The broker that coordinates `key` (key type 0: a group, 1: a transactional id).
    async fn coordinator_of(&self, key_type: i8, key: &str) -> Result<i32, Error> {
        let r = self
            .send(&Route::Any, &|v| {
                let req = FindCoordinatorRequest::default().with_key_type(key_type);
                if v >= 4 {
                    req.with_coordinator_keys(vec![str_bytes(key)])
                } else {
                    req.with_key(str_bytes(key))
                }
            })
            .await?;
        let (code, message, node) = match r.coordinators.first() {
            Some(c) => (c.error_code, c.error_message.clone(), c.node_id.0),
            None => (r.error_code, r.error_message.clone(), r.node_id.0),
        };
        check(code, message.as_ref())?;
        Ok(node)
    }

    /// A group's state and members, from its coordinator.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, Error> {
        retry!(self, "describe group", {
            let coordinator = self.coordinator(group).await?;
            let r = self
                .send(&Route::Broker(coordinator), &|_| {
                    DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))])
                })
                .await?;
            let g = r
                .groups
                .first()
                .ok_or_else(|| Error::Protocol("no group in DescribeGroups response".into()))?;
            check(g.error_code, g.error_message.as_ref())?;
            Ok(GroupDescription {
                group_id: g.group_id.0.to_string(),
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                protocol: g.protocol_data.to_string(),
                coordinator,
                members: g
                    .members
                    .iter()
                    .map(|m| GroupMember {
                        member_id: m.member_id.to_string(),
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                        assignment: if g.protocol_type.as_str() == "consumer" {
                            consumer_assignment(&m.member_assignment)
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
            })
        })
    }

    /// A group's committed offsets, by (topic, partition).
    pub async fn committed_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>, Error> {
        retry!(self, "fetch committed offsets", {
            let coordinator = self.coordinator(group).await?;
            let r = self
                .send(&Route::Broker(coordinator), &|v| {
                    if v >= 8 {
                        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(str_bytes(group)))
                            .with_topics(None)])
                    } else {
                        OffsetFetchRequest::default()
                            .with_group_id(GroupId(str_bytes(group)))
                            .with_topics(None)
                    }
                })
                .await?;
            // v8+ answers per group; earlier versions at the top level. Either
            // way: (topic, partition, committed offset, error code).
            let (code, rows): (i16, Vec<(&TopicName, i32, i64, i16)>) = match r.groups.first() {
                Some(g) => (
                    g.error_code,
                    g.topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(move |p| (&t.name, p.partition_index, p.committed_offset, p.error_code))
                        })
                        .collect(),
                ),
                None => (
                    r.error_code,
                    r.topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(move |p| (&t.name, p.partition_index, p.committed_offset, p.error_code))
                        })
                        .collect(),
                ),
            };
            check(code, None)?;
            let mut out = BTreeMap::new();
            for (topic, partition, offset, code) in rows {
                check(code, None)?;
                if offset >= 0 {
                    out.insert((topic.0.to_string(), partition), offset);
                }
            }
            Ok(out)
        })
    }

    /// The leader of a partition.
    async fn leader_of(&self, topic: &str, partition: i32) -> Result<i32, Error> {
        let topics = self.describe_topics(Some(&[topic.to_string()])).await?;
        let leader = topics
            .iter()
            .find(|t| t.name == topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
            .map(|p| p.leader)
            .ok_or_else(|| {
                Error::kafka(
                    ResponseError::UnknownTopicOrPartition,
                    Some(format!("{topic}-{partition}")),
                )
            })?;
        if leader < 0 {
            return Err(Error::kafka(
                ResponseError::LeaderNotAvailable,
                Some(format!("{topic}-{partition}")),
            ));
        }
        Ok(leader)
    }

    /// Every transactional id the brokers coordinate (ListTransactions on each).
    pub async fn list_transactions(&self) -> Result<Vec<TransactionListing>, Error> {
        let cluster = self.describe_cluster().await?;
        let mut out = Vec::new();
        for b in cluster.brokers.iter().filter(|b| !b.fenced) {
            let r = retry!(self, "list transactions", {
                self.send(&Route::Broker(b.id), &|_| {
                    ListTransactionsRequest::default().with_duration_filter(-1)
                })
                .await
            })?;
            check(r.error_code, None)?;
            out.extend(r.transaction_states.iter().map(|t| TransactionListing {
                transactional_id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                state: t.transaction_state.to_string(),
                coordinator: b.id,
            }));
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out.dedup_by(|a, b| a.transactional_id == b.transactional_id);
        Ok(out)
    }

    /// A transactional id's transaction, from its coordinator.
    pub async fn describe_transaction(&self, transactional_id: &str) -> Result<TransactionDescription, Error> {
        retry!(self, "describe transaction", {
            let coordinator = self.coordinator_of(1, transactional_id).await?;
            let r = self
                .send(&Route::Broker(coordinator), &|_| {
                    DescribeTransactionsRequest::default()
                        .with_transactional_ids(vec![TransactionalId(str_bytes(transactional_id))])
                })
                .await?;
            let t = r
                .transaction_states
                .first()
                .ok_or_else(|| Error::Protocol("no transaction in DescribeTransactions response".into()))?;
            check(t.error_code, None)?;
            Ok(TransactionDescription {
                transactional_id: t.transactional_id.0.to_string(),
                state: t.transaction_state.to_string(),
                producer_id: t.producer_id.0,
                producer_epoch: t.producer_epoch,
                timeout_ms: t.transaction_timeout_ms,
                start_time_ms: t.transaction_start_time_ms,
                coordinator,
                partitions: t
                    .topics
                    .iter()
                    .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.0.to_string(), *p)))
                    .collect(),
            })
        })
    }

    /// The producers a partition's leader has state for (DescribeProducers).
    pub async fn describe_producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerInfo>, Error> {
        retry!(self, "describe producers", {
            let leader = self.leader_of(topic, partition).await?;
            let r = self
                .send(&Route::Broker(leader), &|_| {
                    DescribeProducersRequest::default().with_topics(vec![
                        describe_producers_request::TopicRequest::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(vec![partition]),
                    ])
                })
                .await?;
            let p = r
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or_else(|| Error::Protocol("no partition in DescribeProducers response".into()))?;
            check(p.error_code, p.error_message.as_ref())?;
            Ok(p.active_producers
                .iter()
                .map(|s| ProducerInfo {
                    producer_id: s.producer_id.0,
                    producer_epoch: s.producer_epoch,
                    last_sequence: s.last_sequence,
                    last_timestamp: s.last_timestamp,
                    current_txn_start_offset: s.current_txn_start_offset,
                })
                .collect())
        })
    }

    /// Aborts a hanging transaction on one partition: an abort marker written
    /// by its leader for the producer (what `kafka-transactions.sh abort`
    /// does; needs CLUSTER_ACTION). The producer's epoch must be current there.
    pub async fn abort_hanging_transaction(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), Error> {
        retry!(self, "abort transaction", {
            let leader = self.leader_of(topic, partition).await?;
            let r = self
                .send(&Route::Broker(leader), &|_| {
                    WriteTxnMarkersRequest::default().with_markers(vec![
                        write_txn_markers_request::WritableTxnMarker::default()
                            .with_producer_id(ProducerId(producer_id))
                            .with_producer_epoch(producer_epoch)
                            .with_transaction_result(false)
                            .with_coordinator_epoch(coordinator_epoch)
                            .with_topics(vec![write_txn_markers_request::WritableTxnMarkerTopic::default()
                                .with_name(topic_name(topic))
                                .with_partition_indexes(vec![partition])]),
                    ])
                })
                .await?;
            for m in &r.markers {
                for t in &m.topics {
                    for p in &t.partitions {
                        check(p.error_code, None)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// The log end offsets (high watermarks) of partitions, asked of their leaders.
    pub async fn end_offsets(&self, partitions: &[(String, i32)]) -> Result<BTreeMap<(String, i32), i64>, Error> {
        let names: Vec<String> = partitions
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        retry!(self, "list offsets", {
            let topics = self.describe_topics(Some(&names)).await?;
            let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
            for (t, p) in partitions {
                let leader = topics
                    .iter()
                    .find(|ti| &ti.name == t)
                    .and_then(|ti| ti.partitions.iter().find(|pi| pi.partition == *p))
                    .map(|pi| pi.leader)
                    .ok_or_else(|| Error::kafka(ResponseError::UnknownTopicOrPartition, Some(format!("{t}-{p}"))))?;
                if leader < 0 {
                    return Err(Error::kafka(
                        ResponseError::LeaderNotAvailable,
                        Some(format!("{t}-{p}")),
                    ));
                }
                by_leader.entry(leader).or_default().entry(t).or_default().push(*p);
            }
            let mut out = BTreeMap::new();
            for (leader, tps) in &by_leader {
                let req_topics: Vec<ListOffsetsTopic> = tps
                    .iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default().with_name(topic_name(t)).with_partitions(
                            ps.iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(-1)
                                })
                                .collect(),
                        )
                    })
                    .collect();
                let r = self
                    .send(&Route::Broker(*leader), &|_| {
                        ListOffsetsRequest::default()
                            .with_replica_id(BrokerId(-1))
                            .with_topics(req_topics.clone())
                    })
                    .await?;
                for t in &r.topics {
                    for p in &t.partitions {
                        check(p.error_code, None)?;
                        out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                    }
                }
            }
            Ok(out)
        })
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.opts.request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}

/// The version to send: the highest both sides speak.
fn negotiate<R: Request>(broker: &HashMap<i16, (i16, i16)>) -> Result<i16, Error> {
    let unsupported = || Error::UnsupportedVersion {
        api: std::any::type_name::<R>().rsplit("::").next().unwrap_or("request"),
    };
    let (min, max) = *broker.get(&R::KEY).ok_or_else(unsupported)?;
    let v = max.min(R::VERSIONS.max);
    if v < min.max(R::VERSIONS.min) {
        return Err(unsupported());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    #[test]
    fn the_highest_version_both_sides_speak_is_chosen() {
        let broker: HashMap<i16, (i16, i16)> =
            [(MetadataRequest::KEY, (0, 12)), (CreateTopicsRequest::KEY, (2, 99))].into();
        assert_eq!(
            negotiate::<MetadataRequest>(&broker).unwrap(),
            12.min(MetadataRequest::VERSIONS.max)
        );
        assert_eq!(
            negotiate::<CreateTopicsRequest>(&broker).unwrap(),
            CreateTopicsRequest::VERSIONS.max
        );
        let e = negotiate::<DeleteTopicsRequest>(&broker).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsupportedVersion {
                    api: "DeleteTopicsRequest"
                }
            ),
            "{e}"
        );
        let old: HashMap<i16, (i16, i16)> = [(MetadataRequest::KEY, (99, 100))].into();
        assert!(negotiate::<MetadataRequest>(&old).is_err());
    }

    #[test]
    fn retriable_errors_are_the_ones_a_new_leader_or_controller_can_fix() {
        assert!(Error::kafka(ResponseError::NotController, None::<String>).is_retriable());
        assert!(Error::kafka(ResponseError::NotLeaderOrFollower, None::<String>).is_retriable());
        assert!(!Error::kafka(ResponseError::TopicAlreadyExists, None::<String>).is_retriable());
        assert!(!Error::kafka(ResponseError::InvalidConfig, None::<String>).is_retriable());
    }
}

/// An ACL binding as the ACL APIs carry it, with Kafka's names
/// (`Topic`, `Literal`, `Read`, `Allow`) for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry {
    pub resource_type: String,
    pub resource_name: String,
    pub pattern_type: String,
    pub principal: String,
    pub host: String,
    pub operation: String,
    pub permission: String,
}

/// Kafka's codes and names: resource types, pattern types, operations, permissions.
pub mod acl_codes {
    pub const RESOURCE_TYPES: &[(i8, &str)] = &[
        (1, "Any"),
        (2, "Topic"),
        (3, "Group"),
        (4, "Cluster"),
        (5, "TransactionalId"),
        (6, "DelegationToken"),
        (7, "User"),
    ];
    pub const PATTERN_TYPES: &[(i8, &str)] = &[(1, "Any"), (2, "Match"), (3, "Literal"), (4, "Prefixed")];
    pub const OPERATIONS: &[(i8, &str)] = &[
        (1, "Any"),
        (2, "All"),
        (3, "Read"),
        (4, "Write"),
        (5, "Create"),
        (6, "Delete"),
        (7, "Alter"),
        (8, "Describe"),
        (9, "ClusterAction"),
        (10, "DescribeConfigs"),
        (11, "AlterConfigs"),
        (12, "IdempotentWrite"),
        (13, "CreateTokens"),
        (14, "DescribeTokens"),
    ];
    pub const PERMISSIONS: &[(i8, &str)] = &[(1, "Any"), (2, "Deny"), (3, "Allow")];

    /// The code of a name (case and `-`/`_` ignored: `cluster-action`, `CLUSTER_ACTION`).
    pub fn code(table: &[(i8, &str)], name: &str) -> Option<i8> {
        let norm = |s: &str| s.replace(['-', '_'], "").to_ascii_lowercase();
        table.iter().find(|(_, n)| norm(n) == norm(name)).map(|(c, _)| *c)
    }

    pub fn name(table: &[(i8, &str)], code: i8) -> String {
        table
            .iter()
            .find(|(c, _)| *c == code)
            .map_or_else(|| format!("Unknown({code})"), |(_, n)| n.to_string())
    }
}

/// A DescribeAcls/DeleteAcls filter: `None` matches any value.
#[derive(Debug, Clone, Default)]
pub struct AclFilterSpec {
    pub resource_type: Option<i8>,
    pub resource_name: Option<String>,
    /// Some(2) (MATCH): the patterns that cover `resource_name`.
    pub pattern_type: Option<i8>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<i8>,
    pub permission: Option<i8>,
}

/// A SCRAM credential as DescribeUserScramCredentials lists it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    pub user: String,
    pub mechanism: String,
    pub iterations: i32,
}

/// A client quota entity: `user` and/or `client-id`, each a name or the
/// default (`None` inside the `Some`): `user=alice`, `client-id=<default>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct QuotaEntity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
}

impl QuotaEntity {
    /// The (entity type, name) pairs of the wire (None: the default).
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::new();
        if let Some(u) = &self.user {
            out.push(("user", u.as_deref()));
        }
        if let Some(c) = &self.client_id {
            out.push(("client-id", c.as_deref()));
        }
        out
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .components()
            .iter()
            .map(|(t, n)| format!("{t}={}", n.unwrap_or("<default>")))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// One entity's quotas as DescribeClientQuotas lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientQuotaEntry {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

fn acl_entry(t: i8, resource: &str, p: i8, principal: &str, host: &str, op: i8, perm: i8) -> AclEntry {
    use acl_codes::{OPERATIONS, PATTERN_TYPES, PERMISSIONS, RESOURCE_TYPES};
    AclEntry {
        resource_type: acl_codes::name(RESOURCE_TYPES, t),
        resource_name: resource.to_string(),
        pattern_type: acl_codes::name(PATTERN_TYPES, p),
        principal: principal.to_string(),
        host: host.to_string(),
        operation: acl_codes::name(OPERATIONS, op),
        permission: acl_codes::name(PERMISSIONS, perm),
    }
}

impl Admin {
    /// CreateAcls: adds bindings (codes as [`acl_codes`]); the first refusal is the error.
    pub async fn create_acls(&self, bindings: &[AclEntry]) -> Result<(), Error> {
        use acl_codes::*;
        use kafka_protocol::messages::create_acls_request::AclCreation;
        let mut creations = Vec::new();
        for b in bindings {
            let bad = |what: &str, v: &str| Error::Protocol(format!("unknown {what} {v}"));
            creations.push(
                AclCreation::default()
                    .with_resource_type(
                        code(RESOURCE_TYPES, &b.resource_type).ok_or_else(|| bad("resource type", &b.resource_type))?,
                    )
                    .with_resource_name(str_bytes(&b.resource_name))
                    .with_resource_pattern_type(
                        code(PATTERN_TYPES, &b.pattern_type).ok_or_else(|| bad("pattern type", &b.pattern_type))?,
                    )
                    .with_principal(str_bytes(&b.principal))
                    .with_host(str_bytes(&b.host))
                    .with_operation(code(OPERATIONS, &b.operation).ok_or_else(|| bad("operation", &b.operation))?)
                    .with_permission_type(
                        code(PERMISSIONS, &b.permission).ok_or_else(|| bad("permission", &b.permission))?,
                    ),
            );
        }
        retry!(self, "create acls", {
            let r = self
                .send(&Route::Any, &|_| {
                    CreateAclsRequest::default().with_creations(creations.clone())
                })
                .await?;
            for x in &r.results {
                check(x.error_code, x.error_message.as_ref())?;
            }
            Ok(())
        })
    }

    /// DescribeAcls: the bindings a filter matches.
    pub async fn describe_acls(&self, f: &AclFilterSpec) -> Result<Vec<AclEntry>, Error> {
        retry!(self, "describe acls", {
            let r = self
                .send(&Route::Any, &|_| {
                    DescribeAclsRequest::default()
                        .with_resource_type_filter(f.resource_type.unwrap_or(1))
                        .with_resource_name_filter(f.resource_name.as_deref().map(str_bytes))
                        .with_pattern_type_filter(f.pattern_type.unwrap_or(1))
                        .with_principal_filter(f.principal.as_deref().map(str_bytes))
                        .with_host_filter(f.host.as_deref().map(str_bytes))
                        .with_operation(f.operation.unwrap_or(1))
                        .with_permission_type(f.permission.unwrap_or(1))
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())?;
            let mut out = Vec::new();
            for res in &r.resources {
                for a in &res.acls {
                    out.push(acl_entry(
                        res.resource_type,
                        &res.resource_name,
                        res.pattern_type,
                        &a.principal,
                        &a.host,
                        a.operation,
                        a.permission_type,
                    ));
                }
            }
            Ok(out)
        })
    }

    /// DeleteAcls: removes what the filter matches; returns what was removed.
    pub async fn delete_acls(&self, f: &AclFilterSpec) -> Result<Vec<AclEntry>, Error> {
        use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(f.resource_type.unwrap_or(1))
            .with_resource_name_filter(f.resource_name.as_deref().map(str_bytes))
            .with_pattern_type_filter(f.pattern_type.unwrap_or(1))
            .with_principal_filter(f.principal.as_deref().map(str_bytes))
            .with_host_filter(f.host.as_deref().map(str_bytes))
            .with_operation(f.operation.unwrap_or(1))
            .with_permission_type(f.permission.unwrap_or(1));
        retry!(self, "delete acls", {
            let r = self
                .send(&Route::Any, &|_| {
                    DeleteAclsRequest::default().with_filters(vec![filter.clone()])
                })
                .await?;
            let Some(result) = r.filter_results.first() else {
                return Err(Error::Protocol("DeleteAcls answered no filter".into()));
            };
            check(result.error_code, result.error_message.as_ref())?;
            Ok(result
                .matching_acls
                .iter()
                .map(|m| {
                    acl_entry(
                        m.resource_type,
                        &m.resource_name,
                        m.pattern_type,
                        &m.principal,
                        &m.host,
                        m.operation,
                        m.permission_type,
                    )
                })
                .collect())
        })
    }

    /// AlterUserScramCredentials upsertion: the salt is random and only the
    /// salted password leaves this process (KIP-554), never the password.
    pub async fn upsert_scram_credential(
        &self,
        user: &str,
        mechanism: &str,
        password: &str,
        iterations: i32,
    ) -> Result<(), Error> {
        use crate::scram::ScramHash;
        use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
        let (code, hash) = match mechanism.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => (1, ScramHash::Sha256),
            "SCRAM-SHA-512" => (2, ScramHash::Sha512),
            other => return Err(Error::Protocol(format!("unknown SCRAM mechanism {other}"))),
        };
        let mut salt = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| Error::Protocol("no random source".into()))?;
        let salted = hash.salted_password(password, &salt, iterations.max(1) as u32);
        let upsertion = ScramCredentialUpsertion::default()
            .with_name(str_bytes(user))
            .with_mechanism(code)
            .with_iterations(iterations)
            .with_salt(bytes::Bytes::copy_from_slice(&salt))
            .with_salted_password(bytes::Bytes::from(salted));
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]))
            .await
    }

    /// AlterUserScramCredentials deletion of one user's credential for a mechanism.
    pub async fn delete_scram_credential(&self, user: &str, mechanism: &str) -> Result<(), Error> {
        use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
        let code = match mechanism.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => 1,
            "SCRAM-SHA-512" => 2,
            other => return Err(Error::Protocol(format!("unknown SCRAM mechanism {other}"))),
        };
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default().with_name(str_bytes(user)).with_mechanism(code),
        ]))
        .await
    }

    async fn alter_scram(&self, req: AlterUserScramCredentialsRequest) -> Result<(), Error> {
        retry!(self, "alter user scram credentials", {
            let r = self.send(&Route::Any, &|_| req.clone()).await?;
            for x in &r.results {
                check(x.error_code, x.error_message.as_ref())?;
            }
            Ok(())
        })
    }

    /// DescribeUserScramCredentials: the mechanisms and iterations of every
    /// user, or of the users named (one without credentials is left out).
    pub async fn describe_scram_credentials(
        &self,
        users: Option<&[String]>,
    ) -> Result<Vec<ScramCredentialInfo>, Error> {
        use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
        let names = users.map(|u| {
            u.iter()
                .map(|n| UserName::default().with_name(str_bytes(n)))
                .collect::<Vec<_>>()
        });
        retry!(self, "describe user scram credentials", {
            let r = self
                .send(&Route::Any, &|_| {
                    DescribeUserScramCredentialsRequest::default().with_users(names.clone())
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())?;
            let mut out = Vec::new();
            for u in &r.results {
                if u.error_code == ResponseError::ResourceNotFound.code() {
                    continue;
                }
                check(u.error_code, u.error_message.as_ref())?;
                for c in &u.credential_infos {
                    out.push(ScramCredentialInfo {
                        user: u.user.to_string(),
                        mechanism: if c.mechanism == 2 {
                            "SCRAM-SHA-512"
                        } else {
                            "SCRAM-SHA-256"
                        }
                        .into(),
                        iterations: c.iterations,
                    });
                }
            }
            Ok(out)
        })
    }

    /// AlterClientQuotas on one entity: each key set to a value, or removed (None).
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        ops: &[(String, Option<f64>)],
        validate_only: bool,
    ) -> Result<(), Error> {
        use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
        let entry = EntryData::default()
            .with_entity(
                entity
                    .components()
                    .into_iter()
                    .map(|(t, n)| {
                        EntityData::default()
                            .with_entity_type(str_bytes(t))
                            .with_entity_name(n.map(str_bytes))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|(k, v)| {
                        OpData::default()
                            .with_key(str_bytes(k))
                            .with_value(v.unwrap_or(0.0))
                            .with_remove(v.is_none())
                    })
                    .collect(),
            );
        let req = AlterClientQuotasRequest::default()
            .with_entries(vec![entry])
            .with_validate_only(validate_only);
        retry!(self, "alter client quotas", {
            let r = self.send(&Route::Any, &|_| req.clone()).await?;
            for e in &r.entries {
                check(e.error_code, e.error_message.as_ref())?;
            }
            Ok(())
        })
    }

    /// DescribeClientQuotas: every entity with a quota, or those whose user
    /// or client id is the one named (`Some(None)`: the default).
    pub async fn describe_client_quotas(&self, filter: &QuotaEntity) -> Result<Vec<ClientQuotaEntry>, Error> {
        use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
        let components: Vec<ComponentData> = filter
            .components()
            .into_iter()
            .map(|(t, n)| {
                ComponentData::default()
                    .with_entity_type(str_bytes(t))
                    .with_match_type(if n.is_some() { 0 } else { 1 })
                    .with_match(n.map(str_bytes))
            })
            .collect();
        retry!(self, "describe client quotas", {
            let r = self
                .send(&Route::Any, &|_| {
                    DescribeClientQuotasRequest::default().with_components(components.clone())
                })
                .await?;
            check(r.error_code, r.error_message.as_ref())?;
            let mut out = Vec::new();
            for e in r.entries.iter().flatten() {
                let mut entity = QuotaEntity::default();
                for part in &e.entity {
                    let name = Some(part.entity_name.as_ref().map(|n| n.to_string()));
                    match part.entity_type.as_str() {
                        "user" => entity.user = name,
                        "client-id" => entity.client_id = name,
                        _ => {}
                    }
                }
                let values = e.values.iter().map(|v| (v.key.to_string(), v.value)).collect();
                out.push(ClientQuotaEntry { entity, values });
            }
            Ok(out)
        })
    }
}
