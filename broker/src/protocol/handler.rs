//! The `Handler` trait: one Kafka API, its served versions and its handling.
//! Handlers import this module, never `protocol/mod.rs`, which imports them all
//! for its dispatch table.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Request, VersionRange};

use super::frame::ZeroCopy;
use crate::cluster::Broker;

/// What a handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub header: RequestHeader,
    pub peer: SocketAddr,
    /// The name of the listener the client connected to: its brokers' addresses
    /// are that listener's (`advertised.listeners`).
    pub listener: Arc<str>,
    /// File ranges to send with `sendfile` in place of placeholders (Fetch).
    pub zero_copy: ZeroCopy,
}

impl RequestContext {
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
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
        broker: Arc<Broker>,
        ctx: RequestContext,
        request: Self::Request,
    ) -> impl Future<Output = Option<<Self::Request as Request>::Response>> + Send;
}
