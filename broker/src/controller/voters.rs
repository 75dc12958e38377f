//! The quorum's voter set at run time (KIP-853): how a node reports itself to
//! the active controller, how a replaced disk is kept from voting, and the
//! single voter changes behind AddRaftVoter, RemoveRaftVoter and
//! UpdateRaftVoter.
//!
//! A voter is a node id and the directory id of the log directory that holds
//! its copy of the metadata log. The voter set lives in the log (openraft's
//! membership); `controller.quorum.voters` only seeds it when a new cluster
//! starts. A change is committed as openraft's joint configuration, one at a
//! time, and a node becomes a voter only once it has replicated the log as an
//! observer (a learner).
//!
//! Disk loss: a node whose log directory is new gets a new directory id. If
//! the log still records its id as a voter with the old directory, the node
//! follows as an observer and neither votes nor stands for election (it may
//! have voted in a term it no longer remembers) until that voter is removed
//! and the node is added again under its new directory id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{network, Controller, QuorumNode};

/// The quorum's membership as openraft stores it.
type Membership = std::sync::Arc<openraft::StoredMembership<u64, QuorumNode>>;
use crate::error::AdminError;

/// A node's report of itself to the active controller (the `Announce` RPC).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announce {
    pub id: i32,
    /// host:port of its CONTROLLER listener.
    pub address: String,
    pub directory_id: Uuid,
    /// Set by a node that passed the announcement on: its receiver answers.
    #[serde(default)]
    pub forwarded: bool,
}

/// The active controller's answer to an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    /// The log records the node's id as a voter with another directory.
    pub replacement: bool,
}

/// What a node asks a peer before starting a new quorum (the `Probe` RPC).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub id: i32,
}

/// What the peer's copy of the log records for the asking node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReply {
    pub initialized: bool,
    pub recorded: Option<QuorumNode>,
}

/// How far behind the leader's log a new voter may be when it is added.
const CAUGHT_UP_ENTRIES: u64 = network::MAX_PAYLOAD_ENTRIES;

fn not_controller() -> AdminError {
    AdminError::new(
        ResponseError::NotLeaderOrFollower,
        "this node is not the active controller",
    )
}

impl Controller {
    /// Whether this node may vote, and stand for election: not while the log
    /// records its id as a voter with another directory, nor, before its log
    /// says anything, once a peer has said so.
    pub fn may_vote(&self) -> bool {
        let recorded = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&(self.node_id as u64))
            .map(|n| n.directory_id);
        match recorded {
            Some(d) if !d.is_nil() => d == self.directory_id,
            _ => !self.replacement.load(Ordering::SeqCst),
        }
    }

    /// Answers a vote request, refusing it while this node may not vote.
    pub async fn vote_local(
        &self,
        req: openraft::raft::VoteRequest<u64>,
    ) -> Result<openraft::raft::VoteResponse<u64>, openraft::error::RaftError<u64>> {
        if self.may_vote() {
            return self.raft.vote(req).await;
        }
        let mine = self.raft.metrics().borrow().vote;
        tracing::debug!(candidate = %req.vote, "vote refused: this node replaces a voter's lost disk");
        Ok(openraft::raft::VoteResponse {
            vote: if mine > req.vote { mine } else { req.vote },
            vote_granted: false,
            last_log_id: self.log.last_log_id(),
        })
    }

    /// Answers a probe: what this node's log records for `id`.
    pub async fn probe_local(&self, probe: &Probe) -> ProbeReply {
        let initialized = self.raft.is_initialized().await.unwrap_or(false);
        let recorded = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&(probe.id as u64))
            .cloned();
        ProbeReply { initialized, recorded }
    }

    /// The addresses a node outside the log's membership can ask: the active
    /// controller if known, the configured voters and the bootstrap servers.
    fn quorum_addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .active_controller()
            .filter(|id| *id != self.node_id)
            .and_then(|id| self.address_of(id))
            .into_iter()
            .chain(
                self.voters
                    .iter()
                    .filter(|v| v.id != self.node_id)
                    .map(|v| v.address.clone()),
            )
            .chain(self.bootstrap.iter().cloned())
            .filter(|a| *a != self.address)
            .collect();
        let mut seen = BTreeSet::new();
        out.retain(|a| seen.insert(a.clone()));
        out
    }

    /// Before a configured voter with an empty log starts a new quorum: does a
    /// peer's log record this node as a voter with another directory? Then the
    /// quorum exists and this node's disk was lost. Peers that do not answer
    /// count as new (all voters of a new cluster start with empty logs).
    pub(super) async fn recorded_elsewhere(&self) -> Option<Uuid> {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let probe = Probe { id: self.node_id };
        let mut asks: FuturesUnordered<_> = self
            .quorum_addresses()
            .into_iter()
            .map(|address| {
                let probe = probe.clone();
                async move {
                    let mut client = self.network.client(&address).ok()?;
                    let p = network::payload(&probe).ok()?;
                    let reply = tokio::time::timeout(Duration::from_secs(2), client.probe(p))
                        .await
                        .ok()?
                        .ok()?;
                    network::decode::<ProbeReply>(reply.get_ref()).ok()
                }
            })
            .collect();
        while let Some(reply) = asks.next().await {
            if let Some(ProbeReply {
                recorded: Some(node), ..
            }) = reply
            {
                if !node.directory_id.is_nil() && node.directory_id != self.directory_id {
                    return Some(node.directory_id);
                }
            }
        }
        None
    }

    /// Reports this node's listener and directory to the active controller
    /// until it has been heard: a new node then follows the log, a voter's
    /// record gets its directory id, a replaced disk is noted as one. A
    /// replacement goes on reporting itself (every active controller must
    /// know of it) until it has been added under its new directory.
    pub(super) async fn announce_until_heard(&self) {
        let me = Announce {
            id: self.node_id,
            address: self.address.clone(),
            directory_id: self.directory_id,
            forwarded: false,
        };
        loop {
            let result = if self.is_active() {
                Some(self.announce_local(&me).await.map_err(|e| e.message))
            } else {
                self.announce_remote(&me).await
            };
            match result {
                Some(Ok(a)) if a.replacement => {
                    if !self.replacement.swap(true, Ordering::SeqCst) {
                        tracing::warn!(
                            node_id = self.node_id,
                            directory_id = %self.directory_id,
                            "the metadata quorum records this node as a voter with another log directory: \
                             following as an observer until the voter is replaced (RemoveRaftVoter, then AddRaftVoter)"
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
                Some(Ok(_)) => {
                    tracing::info!(
                        node_id = self.node_id,
                        directory_id = %self.directory_id,
                        "reported to the metadata quorum"
                    );
                    return;
                }
                Some(Err(e)) => tracing::debug!("announcement refused: {e}"),
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn announce_remote(&self, me: &Announce) -> Option<Result<Announced, String>> {
        for address in self.quorum_addresses() {
            let Ok(mut client) = self.network.client(&address) else {
                continue;
            };
            let p = network::payload(me).ok()?;
            match tokio::time::timeout(Duration::from_secs(5), client.announce(p)).await {
                Ok(Ok(reply)) => match network::decode::<Result<Announced, String>>(reply.get_ref()) {
                    Ok(Ok(a)) => return Some(Ok(a)),
                    Ok(Err(e)) => tracing::debug!(%address, "announcement not taken: {e}"),
                    Err(e) => tracing::debug!(%address, "bad answer to an announcement: {e}"),
                },
                // A peer from before directory ids: ask to learn the old way.
                Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                    let p = network::payload(&(me.id, me.address.clone())).ok()?;
                    if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(5), client.join(p)).await {
                        if let Ok(Ok(())) = network::decode::<Result<(), String>>(reply.get_ref()) {
                            return Some(Ok(Announced { replacement: false }));
                        }
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Handles an announcement: as the active controller, or by passing it
    /// on to the active controller once.
    pub async fn announce(&self, a: Announce) -> Result<Announced, String> {
        if self.is_active() {
            return self.announce_local(&a).await.map_err(|e| e.message);
        }
        if a.forwarded {
            return Err("not the active controller".into());
        }
        let leader = self
            .active_controller()
            .and_then(|id| self.address_of(id))
            .ok_or("no active controller")?;
        let mut client = self.network.client(&leader).map_err(|e| e.to_string())?;
        let p = network::payload(&Announce { forwarded: true, ..a }).map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(Duration::from_secs(5), client.announce(p))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        network::decode::<Result<Announced, String>>(reply.get_ref()).map_err(|e| e.to_string())?
    }

    /// Active controller: completes a voter change a previous active
    /// controller left half done (a joint configuration), to its target.
    pub(super) async fn finish_voter_change(&self) {
        let Ok(_one) = self.voter_change.try_lock() else {
            return;
        };
        let m = self.raft.metrics().borrow().membership_config.clone();
        let Some(target) = m.membership().get_joint_config().last().cloned() else {
            return;
        };
        if m.membership().get_joint_config().len() < 2 {
            return;
        }
        tracing::info!(voters = ?target, "completing the voter change a previous active controller began");
        if let Err(e) = self
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(target), true)
            .await
        {
            tracing::warn!("completing the voter change failed: {e}");
        }
    }

    /// Active controller: takes a node's report of itself.
    pub async fn announce_local(&self, a: &Announce) -> Result<Announced, AdminError> {
        if !self.is_active() {
            return Err(not_controller());
        }
        let m = self.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        let id = a.id as u64;
        // A nil directory comes from a node that predates directory ids
        // (the old `Join`): it keeps whatever is recorded.
        let directory_id = match membership.get_node(&id) {
            Some(n) if a.directory_id.is_nil() => n.directory_id,
            _ => a.directory_id,
        };
        let reported = QuorumNode::new(&a.address, directory_id);
        let is_voter = membership.voter_ids().any(|v| v == id);
        match membership.get_node(&id) {
            Some(recorded) if is_voter && !recorded.directory_id.is_nil() && recorded.directory_id != directory_id => {
                tracing::warn!(
                    node = a.id,
                    voter_directory = %recorded.directory_id,
                    directory = %directory_id,
                    "a node came back with a new log directory under a voter's id: it follows as an observer \
                     and does not vote until the voter is replaced"
                );
                self.pending_replacements().insert(a.id, reported);
                return Ok(Announced { replacement: true });
            }
            Some(recorded) if *recorded == reported => {}
            // A voter's first report (its directory claimed) or a new
            // listener; a learner's new record. Neither changes who votes.
            Some(_) => self.set_node(a.id, reported).await?,
            None => {
                self.raft
                    .add_learner(id, reported, false)
                    .await
                    .map_err(|e| AdminError::new(ResponseError::RequestTimedOut, e.to_string()))?;
            }
        }
        self.pending_replacements().remove(&a.id);
        Ok(Announced { replacement: false })
    }

    async fn set_node(&self, id: i32, node: QuorumNode) -> Result<(), AdminError> {
        self.raft
            .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id as u64, node)])), true)
            .await
            .map(|_| ())
            .map_err(|e| AdminError::new(ResponseError::RequestTimedOut, e.to_string()))
    }

    /// What every voter change starts with: this node is the active
    /// controller, no other change is under way (KIP-853's one at a time),
    /// and the membership to change.
    fn begin_change(&self) -> Result<(tokio::sync::MutexGuard<'_, ()>, Membership), AdminError> {
        if !self.is_active() {
            return Err(not_controller());
        }
        let guard = self
            .voter_change
            .try_lock()
            .map_err(|_| AdminError::new(ResponseError::RequestTimedOut, "another voter change is in progress"))?;
        let m = self.raft.metrics().borrow().membership_config.clone();
        if m.membership().get_joint_config().len() > 1 {
            return Err(AdminError::new(
                ResponseError::RequestTimedOut,
                "a voter change is still being committed",
            ));
        }
        Ok((guard, m))
    }

    fn pending_replacements(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, QuorumNode>> {
        self.replacements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Active controller: AddRaftVoter. The node must follow the log as an
    /// observer with that directory; it becomes a voter once it has caught up.
    pub async fn add_voter(&self, id: i32, directory_id: Uuid, timeout: Duration) -> Result<(), AdminError> {
        let (_one, m) = self.begin_change()?;
        let membership = m.membership();
        let nid = id as u64;
        if membership.voter_ids().any(|v| v == nid) {
            let d = membership.get_node(&nid).map(|n| n.directory_id).unwrap_or_default();
            return Err(AdminError::new(
                ResponseError::DuplicateVoter,
                format!("node {id} is already a voter (directory {d})"),
            ));
        }
        let replacement = self.pending_replacements().get(&id).cloned();
        let node = match (membership.get_node(&nid), replacement) {
            (_, Some(r)) if r.directory_id == directory_id || directory_id.is_nil() => r,
            (Some(n), _) if n.directory_id == directory_id || directory_id.is_nil() => n.clone(),
            (Some(n), _) if n.directory_id.is_nil() => QuorumNode::new(&n.addr, directory_id),
            // Retriable: the node with that directory may not have reported
            // itself to this active controller yet.
            (Some(n), _) => {
                return Err(AdminError::new(
                    ResponseError::RequestTimedOut,
                    format!(
                        "node {id} follows the metadata log from directory {}; no node with directory \
                         {directory_id} has reported itself",
                        n.directory_id
                    ),
                ))
            }
            (None, _) => {
                return Err(AdminError::new(
                    ResponseError::RequestTimedOut,
                    format!(
                        "node {id} does not follow the metadata log: start it with \
                         controller.quorum.bootstrap.servers naming this quorum, then add it"
                    ),
                ))
            }
        };
        if membership.get_node(&nid) != Some(&node) {
            self.set_node(id, node.clone()).await?;
        }
        self.wait_caught_up(id, timeout).await?;
        tracing::info!(node = id, directory_id = %node.directory_id, "adding a voter to the metadata quorum");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([nid])), true)
            .await
            .map_err(|e| AdminError::new(ResponseError::RequestTimedOut, format!("voter {id} not added: {e}")))?;
        self.pending_replacements().remove(&id);
        Ok(())
    }

    /// Waits until `id` has replicated the log to within a batch of this
    /// leader's last entry.
    async fn wait_caught_up(&self, id: i32, timeout: Duration) -> Result<(), AdminError> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&(id as u64)).cloned())
                .flatten()
                .map_or(0, |l| l.index);
            if matched + CAUGHT_UP_ENTRIES >= last {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AdminError::new(
                    ResponseError::RequestTimedOut,
                    format!("node {id} has replicated the metadata log to {matched} of {last}: not caught up within {timeout:?}"),
                ));
            }
            if !self.is_active() {
                return Err(not_controller());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Active controller: RemoveRaftVoter. The node stays an observer while it
    /// runs. A nil directory id matches any.
    pub async fn remove_voter(&self, id: i32, directory_id: Uuid) -> Result<(), AdminError> {
        let (_one, m) = self.begin_change()?;
        let membership = m.membership();
        let nid = id as u64;
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let recorded = membership.get_node(&nid).map(|n| n.directory_id).unwrap_or_default();
        if !voters.contains(&nid) {
            return Err(AdminError::new(
                ResponseError::VoterNotFound,
                format!("node {id} is not a voter"),
            ));
        }
        if !directory_id.is_nil() && !recorded.is_nil() && recorded != directory_id {
            return Err(AdminError::new(
                ResponseError::VoterNotFound,
                format!("voter {id} has directory {recorded}, not {directory_id}"),
            ));
        }
        if voters.len() == 1 {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("node {id} is the only voter: the metadata quorum needs one"),
            ));
        }
        tracing::info!(node = id, directory_id = %recorded, "removing a voter from the metadata quorum");
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([nid])), true)
            .await
            .map_err(|e| AdminError::new(ResponseError::RequestTimedOut, format!("voter {id} not removed: {e}")))?;
        // A replacement waiting for this voter's removal is now the observer
        // under its id: one observer per id, with the directory that runs.
        let replacement = self.pending_replacements().get(&id).cloned();
        if let Some(node) = replacement {
            self.set_node(id, node).await?;
            self.pending_replacements().remove(&id);
        }
        Ok(())
    }

    /// Active controller: UpdateRaftVoter, a voter's new CONTROLLER listener.
    pub async fn update_voter(&self, id: i32, directory_id: Uuid, address: String) -> Result<(), AdminError> {
        let (_one, m) = self.begin_change()?;
        let membership = m.membership();
        let nid = id as u64;
        let recorded = membership
            .get_node(&nid)
            .filter(|_| membership.voter_ids().any(|v| v == nid))
            .ok_or_else(|| AdminError::new(ResponseError::VoterNotFound, format!("node {id} is not a voter")))?;
        if !recorded.directory_id.is_nil() && recorded.directory_id != directory_id {
            return Err(AdminError::new(
                ResponseError::VoterNotFound,
                format!("voter {id} has directory {}, not {directory_id}", recorded.directory_id),
            ));
        }
        let node = QuorumNode::new(address, directory_id);
        if *recorded != node {
            self.set_node(id, node).await?;
        }
        Ok(())
    }
}
