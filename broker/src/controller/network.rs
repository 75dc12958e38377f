//! The quorum's gRPC: openraft's network (client side) and the `Quorum` service
//! (server side) that feeds incoming RPCs to the local Raft node and controller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::proto::quorum_client::QuorumClient;
use super::proto::quorum_server::Quorum;
use super::proto::Payload;
use super::{Controller, QuorumNode, TypeConfig};
use crate::security::tls::{ClientAuth, SettingsSource, TlsError, TlsListener, TlsSettings, HANDSHAKE_TIMEOUT};

type NodeId = u64;

/// The largest quorum message either end sends or accepts. tonic's default of
/// 4 MiB is too small once payloads are JSON: a snapshot chunk of bytes
/// encodes as up to four characters per byte, and an AppendEntries carries up
/// to `MAX_PAYLOAD_ENTRIES` entries, each a command of at most 10,000 new
/// partitions (CreateTopics refuses more). Peers are still bounded: a larger
/// message is refused, never allocated.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Snapshot bytes per InstallSnapshot request (openraft sends a snapshot in
/// chunks of this size): at most 4 MiB of JSON each.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;

/// Log entries per AppendEntries request.
pub const MAX_PAYLOAD_ENTRIES: u64 = 64;

/// JSON-encodes a value into a gRPC payload.
pub fn payload<T: Serialize>(v: &T) -> Result<Payload, tonic::Status> {
    serde_json::to_vec(v)
        .map(|json| Payload { json })
        .map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Decodes a gRPC payload.
pub fn decode<T: DeserializeOwned>(p: &Payload) -> Result<T, tonic::Status> {
    serde_json::from_slice(&p.json).map_err(|e| tonic::Status::invalid_argument(e.to_string()))
}

/// The quorum's mutual TLS (CONTROLLER mapped to SSL): what a voter serves
/// and what it presents and trusts when it calls a peer. Both follow the
/// CONTROLLER listener's stores: when their files change, new connections in
/// and new clients out use the new certificate and trust store.
pub struct QuorumTls {
    pub listener: Arc<TlsListener>,
    /// The CONTROLLER listener's settings now (dynamic overrides included).
    source: SettingsSource,
    client: RwLock<tonic::transport::ClientTlsConfig>,
    /// Counts the client config's swaps: a peer connection made before the
    /// last one is made again, so it presents the current certificate.
    generation: AtomicU64,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTls")
            .field("listener", &self.listener.settings())
            .finish_non_exhaustive()
    }
}

impl QuorumTls {
    /// From the CONTROLLER listener's settings, which `settings` gives now.
    pub fn new(
        settings: impl Fn() -> Result<TlsSettings, TlsError> + Send + Sync + 'static,
    ) -> Result<QuorumTls, TlsError> {
        let source: SettingsSource = Arc::new(move || settings().map(for_the_quorum));
        let settings = source()?;
        let client = client_tls(&settings)?;
        Ok(QuorumTls {
            source,
            listener: Arc::new(TlsListener::new(settings)?),
            client: RwLock::new(client),
            generation: AtomicU64::new(0),
        })
    }

    /// Follows the stores until the task is dropped: a change that makes a
    /// usable config is served to new connections and used for new clients.
    pub async fn watch(self: Arc<Self>) {
        let this = Arc::clone(&self);
        Arc::clone(&self.listener)
            .watch_with(Some(self.source.clone()), move || {
                match client_tls(&this.listener.settings()) {
                    Ok(c) => {
                        *this.client.write().unwrap_or_else(|e| e.into_inner()) = c;
                        this.generation.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!("{e}; the quorum's clients keep the previous TLS configuration"),
                }
            })
            .await
    }

    /// Serves `service` on `tcp` over TLS: each connection's handshake runs
    /// on its own task, bounded in time, and a refused one is logged with the
    /// peer's address as Kafka logs a failed authentication (tonic's own TLS
    /// drops them silently, so an untrusted voter would leave no trace).
    pub fn incoming(
        self: Arc<Self>,
        tcp: tokio::net::TcpListener,
        listener_name: String,
    ) -> impl futures_util::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(listener = %listener_name, "metadata quorum cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                if tx.is_closed() {
                    return;
                }
                let (me, tx, listener_name) = (Arc::clone(&self), tx.clone(), listener_name.clone());
                tokio::spawn(async move {
                    if let Some(s) = me
                        .listener
                        .accept(stream, peer, &listener_name, HANDSHAKE_TIMEOUT)
                        .await
                    {
                        let _ = tx.send(Ok(s)).await;
                    }
                });
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) })
    }
}

/// A voter is authenticated by its certificate (client certificates are
/// always required) and speaks gRPC (ALPN h2).
fn for_the_quorum(mut settings: TlsSettings) -> TlsSettings {
    settings.client_auth = ClientAuth::Required;
    settings.alpn = vec![b"h2".to_vec()];
    settings
}

/// tonic's client config from the stores: this node's certificate and key
/// (decrypted with `ssl.key.password` if need be) and the trust store.
fn client_tls(settings: &TlsSettings) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let pem = settings.pem_stores()?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pem.trust))
        .identity(Identity::from_pem(&pem.chain, &pem.key)))
}

/// How a node calls its peers: plain HTTP/2, or mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub tls: Option<Arc<QuorumTls>>,
}

impl Network {
    /// Which TLS client config `client` would use now (0 without TLS).
    fn generation(&self) -> u64 {
        self.tls.as_ref().map_or(0, |t| t.generation.load(Ordering::Relaxed))
    }

    /// A lazily connected client for `host:port`.
    pub fn client(&self, address: &str) -> Result<QuorumClient<Channel>, tonic::Status> {
        let bad = |e: &dyn std::fmt::Display| tonic::Status::invalid_argument(format!("bad address {address}: {e}"));
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| bad(&e))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            // The peer's certificate must name the host this node dials.
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let config = tls.client.read().unwrap_or_else(|e| e.into_inner()).clone();
            endpoint = endpoint.tls_config(config.domain_name(host)).map_err(|e| bad(&e))?;
        }
        Ok(QuorumClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &QuorumNode) -> Peer {
        Peer {
            target,
            client: self.client(&node.addr),
            generation: self.generation(),
            address: node.addr.clone(),
            network: self.clone(),
        }
    }
}

/// The connection to one peer.
pub struct Peer {
    target: NodeId,
    client: Result<QuorumClient<Channel>, tonic::Status>,
    /// The TLS generation `client` was made with.
    generation: u64,
    address: String,
    network: Network,
}

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        req: &Req,
        timeout: Duration,
        rpc: impl AsyncFnOnce(QuorumClient<Channel>, Payload) -> Result<tonic::Response<Payload>, tonic::Status>,
    ) -> Result<Resp, RPCError<NodeId, QuorumNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let generation = self.network.generation();
        if generation != self.generation {
            self.client = self.network.client(&self.address);
            self.generation = generation;
        }
        let client = self
            .client
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let p = payload(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = match tokio::time::timeout(timeout, rpc(client, p)).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Ok(Err(status)) => return Err(RPCError::Network(NetworkError::new(&status))),
            Err(elapsed) => return Err(RPCError::Unreachable(Unreachable::new(&elapsed))),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
        self.call(&rpc, option.hard_ttl(), async |mut c, p| c.append_entries(p).await)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(&rpc, option.hard_ttl(), async |mut c, p| c.install_snapshot(p).await)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
        self.call(&rpc, option.hard_ttl(), async |mut c, p| c.vote(p).await)
            .await
    }
}

/// The `Quorum` gRPC service of this broker.
pub struct QuorumService {
    pub controller: Arc<Controller>,
}

#[tonic::async_trait]
impl Quorum for QuorumService {
    async fn append_entries(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        let result = self.controller.raft.append_entries(rpc).await;
        // Anything but a higher vote comes from the current leader.
        if matches!(&result, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.controller.leader_contact();
        }
        payload(&result).map(tonic::Response::new)
    }

    async fn vote(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let rpc: VoteRequest<NodeId> = decode(req.get_ref())?;
        let result = self.controller.vote_local(rpc).await;
        if matches!(&result, Ok(r) if r.vote_granted) {
            self.controller.leader_contact();
        }
        payload(&result).map(tonic::Response::new)
    }

    async fn install_snapshot(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req.get_ref())?;
        let result = self.controller.raft.install_snapshot(rpc).await;
        if result.is_ok() {
            self.controller.leader_contact();
        }
        payload(&result).map(tonic::Response::new)
    }

    async fn pre_vote(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let rpc: super::pre_vote::PreVoteRequest = decode(req.get_ref())?;
        payload(&self.controller.pre_vote_local(&rpc)).map(tonic::Response::new)
    }

    async fn propose(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let cmd = decode(req.get_ref())?;
        let result = self.controller.commit_local(cmd).await;
        payload(&result).map(tonic::Response::new)
    }

    async fn join(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        // From a node that predates directory ids (see `announce`).
        let (id, address): (i32, String) = decode(req.get_ref())?;
        let a = super::voters::Announce {
            id,
            address,
            directory_id: uuid::Uuid::nil(),
            forwarded: false,
        };
        let result = self
            .controller
            .announce_local(&a)
            .await
            .map(|_| ())
            .map_err(|e| e.message);
        payload(&result).map(tonic::Response::new)
    }

    async fn announce(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let a = decode(req.get_ref())?;
        let result = self.controller.announce(a).await;
        payload(&result).map(tonic::Response::new)
    }

    async fn probe(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let p = decode(req.get_ref())?;
        payload(&self.controller.probe_local(&p).await).map(tonic::Response::new)
    }

    async fn heartbeat(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        let hb = decode(req.get_ref())?;
        let result = self.controller.heartbeat_local(hb).await;
        payload(&result).map(tonic::Response::new)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, StoredMembership, Vote};

    use super::*;
    use crate::controller::image::Command;

    /// What travels on the wire for a payload: the JSON and gRPC's 5-byte frame header.
    fn wire_len<T: Serialize>(v: &T) -> usize {
        payload(v).unwrap().json.len() + 5
    }

    fn snapshot_chunk(bytes: usize) -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote: Vote::new_committed(7, 0),
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(7, 0), 1_000_000)),
                last_membership: StoredMembership::default(),
                snapshot_id: "7-0-1000000".into(),
            },
            offset: 0,
            // The worst case for JSON: every byte three digits and a comma.
            data: vec![255u8; bytes],
            done: false,
        }
    }

    #[test]
    fn the_largest_snapshot_chunk_fits_the_message_limit() {
        assert!(wire_len(&snapshot_chunk(SNAPSHOT_CHUNK_BYTES as usize)) <= MAX_MESSAGE_BYTES);
        // What failed before: openraft's default 3 MiB chunk against tonic's default 4 MiB limit.
        assert!(wire_len(&snapshot_chunk(3 << 20)) > 4 << 20);
    }

    #[test]
    fn the_largest_append_entries_fits_the_message_limit() {
        // MAX_PAYLOAD_ENTRIES entries, each the largest topic CreateTopics lets
        // through: 10,000 partitions of RF 3 over six-digit broker ids, a name of
        // 249 characters and configs.
        let create = Command::CreateTopic {
            name: "t".repeat(249),
            id: uuid::Uuid::nil(),
            configs: BTreeMap::from([("retention.ms".to_string(), "604800000".to_string())]),
            assignments: (0..10_000)
                .map(|p| vec![100_000 + p, 200_000 + p, 300_000 + p])
                .collect(),
        };
        let entries = (0..MAX_PAYLOAD_ENTRIES)
            .map(|i| Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(7, 0), i),
                payload: EntryPayload::Normal(create.clone()),
            })
            .collect();
        let rpc = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(7, 0),
            prev_log_id: None,
            entries,
            leader_commit: None,
        };
        let len = wire_len(&rpc);
        assert!(len <= MAX_MESSAGE_BYTES, "{len} bytes");
    }
}
