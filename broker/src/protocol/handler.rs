//! The `Handler` trait: one Kafka API, its served versions and its handling.
//! Handlers import this module, never `protocol/mod.rs`, which imports them all
//! for its dispatch table.

use std::future::Future;
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Request, VersionRange};

use super::frame::ZeroCopy;
pub use super::session::{KafkaPrincipal, SecurityProtocol, Session};
use crate::cluster::parts::{Groups, Metadata, ProducerIds, Replicas};
use crate::cluster::Broker;
use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::quota::{AppliedQuota, ClientQuotas, QuotaType};
pub use crate::security::acl::{Authz, Operation, ResourceType};

/// What a handler knows about the request besides its body, and the parts of
/// the broker it may use (never the `Broker` itself: see `cluster/parts.rs`).
#[derive(Clone)]
pub struct RequestContext {
    pub header: RequestHeader,
    /// The connection's session: listener, security protocol, peer, principal.
    pub session: Arc<Session>,
    /// File ranges to send with `sendfile` in place of placeholders (Fetch).
    pub zero_copy: ZeroCopy,
    /// Lets the connection read its next request before this one is answered.
    pub detach: Detach,
    /// The request's size in bytes (what a produce quota counts).
    pub request_bytes: usize,
    /// The client quotas that apply to this request's user and client id.
    quotas: Option<Arc<ClientQuotas>>,
    /// Reached only through the parts below.
    broker: Arc<Broker>,
}

/// How a handler lets its connection go on before it answers. A connection
/// handles one request at a time, in order, as Kafka does; a Produce with
/// acks=all, once every partition is appended, only waits for the in-sync
/// replicas, and while it waits the connection may read and append the next
/// request. Appends stay in request order and responses are still written in
/// request order; what overlaps is the replication wait of pipelined requests.
#[derive(Clone, Default)]
pub struct Detach(Arc<Mutex<Option<tokio::sync::oneshot::Sender<bool>>>>);

impl Detach {
    /// A detach handle and what the connection waits on: `true` once the
    /// handler lets go (or finished well), `false` if it failed.
    pub fn new() -> (Detach, tokio::sync::oneshot::Receiver<bool>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Detach(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// The connection may read its next request now.
    pub fn release(&self) {
        self.finish(true);
    }

    /// The handler is done: the connection goes on if `ok`, else closes.
    /// Only the first of `release` and `finish` counts.
    pub fn finish(&self, ok: bool) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(ok);
        }
    }
}

impl std::fmt::Debug for Detach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Detach")
    }
}

impl RequestContext {
    pub fn new(broker: Arc<Broker>, header: RequestHeader, session: Arc<Session>, detach: Detach) -> RequestContext {
        RequestContext {
            header,
            session,
            zero_copy: ZeroCopy::default(),
            detach,
            request_bytes: 0,
            quotas: None,
            broker,
        }
    }

    /// Looks up the client quotas of this request's principal and client id
    /// (nothing to look up while no quota is set anywhere).
    pub(super) fn with_quotas(mut self, request_bytes: usize) -> RequestContext {
        self.request_bytes = request_bytes;
        let client_id = self.header.client_id.as_deref().unwrap_or("");
        let session = &self.session;
        self.quotas = self
            .broker
            .controller
            .with_image(|i| {
                if i.client_quotas.is_empty() {
                    return None;
                }
                ClientQuotas::resolve(&i.client_quotas, &session.principal().name, client_id)
            })
            .map(Arc::new);
        self
    }

    /// The quota of this type that applies to this request, if any.
    pub fn quota(&self, t: QuotaType) -> Option<&AppliedQuota> {
        self.quotas.as_deref().and_then(|q| q.get(t))
    }

    /// Records `value` against this request's quota of type `t` and returns
    /// the throttle time in ms (0 without a quota or within it). The caller
    /// puts it in the response; the connection is muted for it here.
    pub fn record_quota(&self, t: QuotaType, value: f64) -> u64 {
        let Some(q) = self.quota(t) else {
            return 0;
        };
        let throttle = self.broker.quotas.record(t, q, value, &self.broker.metrics);
        self.session.mute_for_ms(throttle);
        throttle
    }

    /// Takes back a value recorded against a quota (a response not sent).
    pub fn unrecord_quota(&self, t: QuotaType, value: f64) {
        if let Some(q) = self.quota(t) {
            self.broker.quotas.unrecord(t, q, value);
        }
    }

    /// The most a byte quota of type `t` lets one response carry (Fetch).
    pub fn quota_window_max(&self, t: QuotaType) -> Option<f64> {
        self.quota(t).map(|q| self.broker.quotas.max_value_in_window(q))
    }

    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    /// Partitions hosted here.
    pub fn replicas(&self) -> Replicas<'_> {
        self.broker.replicas()
    }

    /// The metadata image, proposals and admin operations.
    pub fn metadata(&self) -> Metadata<'_> {
        self.broker.metadata()
    }

    /// The group coordinator.
    pub fn groups(&self) -> Groups<'_> {
        self.broker.group_parts()
    }

    pub fn txns(&self) -> crate::cluster::parts::Transactions<'_> {
        self.broker.txn_parts()
    }

    pub fn producer_ids(&self) -> ProducerIds<'_> {
        self.broker.producer_ids()
    }

    /// This broker's static configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.broker.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.broker.metrics
    }

    pub fn node_id(&self) -> i32 {
        self.broker.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.broker.cluster_id
    }

    /// What this request's principal may do: the ACLs as they stand now.
    /// Take it once per request; every check on it is a few hash lookups.
    pub fn authz(&self) -> Authz {
        match &self.broker.authorizer {
            None => Authz::open(),
            Some(config) => Authz::new(
                self.broker.controller.with_image(|i| Arc::clone(&i.acls.0)),
                Arc::clone(config),
                self.session.principal().to_string(),
                self.session.peer.ip().to_string(),
            ),
        }
    }
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("header", &self.header)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// One Kafka API.
pub trait Handler: Send + Sync + 'static {
    /// The request type; its `Response` is what the handler returns.
    type Request: Request<Response: Throttled> + Send + 'static;
    /// Versions this broker serves.
    const VERSIONS: VersionRange;
    /// Versions advertised in ApiVersions (wider than served only where clients need it).
    const ADVERTISED: VersionRange = Self::VERSIONS;

    /// Whether this request is free of the request-time quota
    /// (`request_percentage`): ApiVersions, SASL and followers' fetches are.
    fn exempt_from_request_quota(_request: &Self::Request) -> bool {
        false
    }

    /// Handles one request. `None` sends no response (Produce with acks=0).
    fn handle(
        ctx: RequestContext,
        request: Self::Request,
    ) -> impl Future<Output = Option<<Self::Request as Request>::Response>> + Send;
}

/// A response's `throttle_time_ms`, where its API has one (a quota's throttle
/// time reaches the client through it; versions without the field omit it).
pub trait Throttled {
    fn throttle_time_ms(&self) -> i32 {
        0
    }
    fn set_throttle_time_ms(&mut self, _ms: i32) {}
}

macro_rules! throttled {
    ($($response:ident),* $(,)?) => {
        $(impl Throttled for kafka_protocol::messages::$response {
            fn throttle_time_ms(&self) -> i32 {
                self.throttle_time_ms
            }
            fn set_throttle_time_ms(&mut self, ms: i32) {
                self.throttle_time_ms = ms;
            }
        })*
    };
}

throttled!(
    ProduceResponse,
    FetchResponse,
    ListOffsetsResponse,
    MetadataResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    FindCoordinatorResponse,
    JoinGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    SyncGroupResponse,
    DescribeGroupsResponse,
    ListGroupsResponse,
    ApiVersionsResponse,
    CreateTopicsResponse,
    DeleteTopicsResponse,
    DeleteRecordsResponse,
    InitProducerIdResponse,
    OffsetForLeaderEpochResponse,
    AddPartitionsToTxnResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    TxnOffsetCommitResponse,
    DescribeConfigsResponse,
    AlterConfigsResponse,
    CreatePartitionsResponse,
    IncrementalAlterConfigsResponse,
    DescribeClusterResponse,
    UnregisterBrokerResponse,
    UpdateFeaturesResponse,
    AddRaftVoterResponse,
    RemoveRaftVoterResponse,
    UpdateRaftVoterResponse,
    DeleteGroupsResponse,
    OffsetDeleteResponse,
    ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse,
    DescribeLogDirsResponse,
    ElectLeadersResponse,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse,
    DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse,
    DescribeAclsResponse,
    CreateAclsResponse,
    DeleteAclsResponse,
    DescribeClientQuotasResponse,
    AlterClientQuotasResponse,
    DescribeProducersResponse,
    DescribeTransactionsResponse,
    ListTransactionsResponse,
);

// No throttle_time_ms in these APIs.
impl Throttled for kafka_protocol::messages::DescribeQuorumResponse {}
impl Throttled for kafka_protocol::messages::WriteTxnMarkersResponse {}
impl Throttled for kafka_protocol::messages::SaslHandshakeResponse {}
impl Throttled for kafka_protocol::messages::SaslAuthenticateResponse {}
