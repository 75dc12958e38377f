//! The quorum's gRPC: openraft's network (client side) and the `Quorum` service
//! (server side) that feeds incoming RPCs to the local Raft node and controller.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::proto::quorum_client::QuorumClient;
use super::proto::quorum_server::Quorum;
use super::proto::Payload;
use super::{Controller, TypeConfig};

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
/// and what it presents and trusts when it calls a peer.
#[derive(Debug, Clone)]
pub struct QuorumTls {
    pub server: tonic::transport::ServerTlsConfig,
    client: tonic::transport::ClientTlsConfig,
}

impl QuorumTls {
    /// From PEM: this node's certificate chain and key, and the CA its peers' certificates come from.
    pub fn from_pem(chain: &[u8], key: &[u8], trust: &[u8]) -> QuorumTls {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
        let identity = Identity::from_pem(chain, key);
        QuorumTls {
            server: ServerTlsConfig::new()
                .identity(identity.clone())
                .client_ca_root(Certificate::from_pem(trust)),
            client: ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(trust))
                .identity(identity),
        }
    }
}

/// How a node calls its peers: plain HTTP/2, or mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub tls: Option<QuorumTls>,
}

impl Network {
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
            endpoint = endpoint
                .tls_config(tls.client.clone().domain_name(host))
                .map_err(|e| bad(&e))?;
        }
        Ok(QuorumClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            client: self.client(&node.addr),
        }
    }
}

/// The connection to one peer.
pub struct Peer {
    target: NodeId,
    client: Result<QuorumClient<Channel>, tonic::Status>,
}

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        req: &Req,
        timeout: Duration,
        rpc: impl AsyncFnOnce(QuorumClient<Channel>, Payload) -> Result<tonic::Response<Payload>, tonic::Status>,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
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
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(&rpc, option.hard_ttl(), async |mut c, p| c.append_entries(p).await)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(&rpc, option.hard_ttl(), async |mut c, p| c.install_snapshot(p).await)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
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
        let result = self.controller.raft.vote(rpc).await;
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
        let (id, address): (i32, String) = decode(req.get_ref())?;
        let result = self.controller.add_learner_local(id, address).await;
        payload(&result).map(tonic::Response::new)
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
