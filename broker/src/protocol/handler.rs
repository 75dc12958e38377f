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
            broker,
        }
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
    type Request: Request + Send + 'static;
    /// Versions this broker serves.
    const VERSIONS: VersionRange;
    /// Versions advertised in ApiVersions (wider than served only where clients need it).
    const ADVERTISED: VersionRange = Self::VERSIONS;

    /// Handles one request. `None` sends no response (Produce with acks=0).
    fn handle(
        ctx: RequestContext,
        request: Self::Request,
    ) -> impl Future<Output = Option<<Self::Request as Request>::Response>> + Send;
}
