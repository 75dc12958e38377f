//! The classic consumer group protocol as a pure state machine.
//!
//! No I/O and no clock of its own: every event carries `now` in milliseconds,
//! and the machine answers with outcomes (a response now, or "wait") plus the
//! responses owed to members that were waiting. The coordinator in `mod.rs`
//! turns those into network replies. States and rules follow Kafka's
//! GroupCoordinator: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

/// A group's state, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Coordinator settings (Kafka's `group.*` broker properties).
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i64,
}

impl GroupConfig {
    /// The coordinator's settings from the broker's properties.
    pub fn from_broker_config(c: &crate::config::BrokerConfig) -> GroupConfig {
        let (min_session_timeout_ms, max_session_timeout_ms) = c.group_session_timeout_bounds_ms();
        GroupConfig {
            min_session_timeout_ms,
            max_session_timeout_ms,
            initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms(),
        }
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
        }
    }
}

/// One member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat_ms: i64,
    /// Has sent JoinGroup in the current rebalance and waits for its response.
    pub awaiting_join: bool,
    /// Has sent SyncGroup and waits for the leader's assignment.
    pub awaiting_sync: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A JoinGroup request, as the state machine sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ asks a new member to rejoin with an id the coordinator gives it.
    pub require_known_member_id: bool,
}

/// The JoinGroup response owed to a member.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members: (member id, group instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
    pub skip_assignment: bool,
}

impl JoinResult {
    /// A failed join.
    pub fn error(e: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(e),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// The SyncGroup response owed to a member.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    /// A failed sync.
    pub fn error(e: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(e),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// What an event means for the member that sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<T> {
    Now(T),
    /// The response comes later, in [`Completions`], for this member id.
    Wait(String),
}

/// Responses owed to waiting members after an event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Completions {
    pub joins: Vec<(String, JoinResult)>,
    pub syncs: Vec<(String, SyncResult)>,
}

impl Completions {
    fn append(&mut self, mut other: Completions) {
        self.joins.append(&mut other.joins);
        self.syncs.append(&mut other.syncs);
    }
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending_members: BTreeMap<String, i64>,
    /// When the join phase ends even if members are missing.
    rebalance_deadline_ms: i64,
    /// The join phase of a group that was empty does not end before this.
    initial_delay_until_ms: i64,
    config: GroupConfig,
    next_member_seq: u64,
}

impl Group {
    pub fn new(id: &str, config: GroupConfig) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: 0,
            config,
            next_member_seq: 0,
        }
    }

    fn new_member_id(&mut self, client_id: &str, now: i64) -> String {
        self.next_member_seq += 1;
        // Unique within the group; the random part keeps ids unguessable across restarts.
        let _ = now;
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    fn member_by_instance(&self, instance: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.group_instance_id.as_deref() == Some(instance))
            .map(|m| m.id.clone())
    }

    /// Handles JoinGroup.
    pub fn join(&mut self, req: JoinRequest, now: i64) -> (Reply<JoinResult>, Completions) {
        let none = Completions::default();
        if self.state == GroupState::Dead {
            return (
                Reply::Now(JoinResult::error(
                    ResponseError::CoordinatorNotAvailable,
                    &req.member_id,
                )),
                none,
            );
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return (
                Reply::Now(JoinResult::error(ResponseError::InvalidSessionTimeout, &req.member_id)),
                none,
            );
        }
        if req.protocols.is_empty() || req.protocol_type.is_empty() || !self.supports(&req) {
            return (
                Reply::Now(JoinResult::error(
                    ResponseError::InconsistentGroupProtocol,
                    &req.member_id,
                )),
                none,
            );
        }
        if req.member_id.is_empty() {
            return self.join_unknown_member(req, now);
        }
        let known = self.members.contains_key(&req.member_id);
        if !known {
            if self.pending_members.remove(&req.member_id).is_some() {
                return self.add_member_and_rebalance(req.member_id.clone(), req, now);
            }
            return (
                Reply::Now(JoinResult::error(ResponseError::UnknownMemberId, &req.member_id)),
                none,
            );
        }
        if let Some(instance) = &req.group_instance_id {
            if self.member_by_instance(instance).as_deref() != Some(req.member_id.as_str()) {
                return (
                    Reply::Now(JoinResult::error(ResponseError::FencedInstanceId, &req.member_id)),
                    none,
                );
            }
        }
        self.join_known_member(req, now)
    }

    fn supports(&self, req: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(req.protocol_type.as_str()) {
            return false;
        }
        // Some protocol must be supported by every member, this one included.
        req.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != req.member_id)
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn join_unknown_member(&mut self, req: JoinRequest, now: i64) -> (Reply<JoinResult>, Completions) {
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = self.member_by_instance(&instance) {
                return self.replace_static_member(old_id, req, now);
            }
            let id = self.new_member_id(&req.client_id, now);
            return self.add_member_and_rebalance(id, req, now);
        }
        let id = self.new_member_id(&req.client_id, now);
        if req.require_known_member_id {
            self.pending_members.insert(id.clone(), now);
            return (
                Reply::Now(JoinResult::error(ResponseError::MemberIdRequired, &id)),
                Completions::default(),
            );
        }
        self.add_member_and_rebalance(id, req, now)
    }

    /// A static member restarted: it takes over its old member's place. In a
    /// stable group with the same protocols it gets its assignment back without a rebalance.
    fn replace_static_member(
        &mut self,
        old_id: String,
        req: JoinRequest,
        now: i64,
    ) -> (Reply<JoinResult>, Completions) {
        let mut member = self.members.remove(&old_id).expect("found by instance id");
        let new_id = self.new_member_id(&req.client_id, now);
        let same_protocols = member.protocols == req.protocols;
        let mut completions = Completions::default();
        // The fenced old instance, if it was waiting, hears FENCED_INSTANCE_ID.
        if member.awaiting_join {
            completions.joins.push((
                old_id.clone(),
                JoinResult::error(ResponseError::FencedInstanceId, &old_id),
            ));
        }
        if member.awaiting_sync {
            completions
                .syncs
                .push((old_id.clone(), SyncResult::error(ResponseError::FencedInstanceId)));
        }
        member.id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.protocols = req.protocols.clone();
        member.last_heartbeat_ms = now;
        member.awaiting_join = false;
        member.awaiting_sync = false;
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if same_protocols => {
                let result = self.join_result_for(&new_id, false);
                (Reply::Now(result), completions)
            }
            _ => {
                let (reply, more) = self.join_known_member(
                    JoinRequest {
                        member_id: new_id,
                        ..req
                    },
                    now,
                );
                completions.append(more);
                (reply, completions)
            }
        }
    }

    fn add_member_and_rebalance(&mut self, id: String, req: JoinRequest, now: i64) -> (Reply<JoinResult>, Completions) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heartbeat_ms: now,
                awaiting_join: true,
                awaiting_sync: false,
            },
        );
        let completions = self.prepare_rebalance(now);
        let mut more = self.try_complete_join(now);
        more.append(completions);
        self.reply_for(&id, more)
    }

    fn join_known_member(&mut self, req: JoinRequest, now: i64) -> (Reply<JoinResult>, Completions) {
        let id = req.member_id.clone();
        let changed = {
            let m = self.members.get_mut(&id).expect("known member");
            let changed = m.protocols != req.protocols;
            m.protocols = req.protocols;
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.last_heartbeat_ms = now;
            changed
        };
        match self.state {
            GroupState::PreparingRebalance => {
                self.members.get_mut(&id).expect("known").awaiting_join = true;
                let more = self.try_complete_join(now);
                self.reply_for(&id, more)
            }
            GroupState::CompletingRebalance | GroupState::Stable if !changed && self.leader.as_deref() != Some(&id) => {
                // Same metadata: the current generation stands.
                (Reply::Now(self.join_result_for(&id, false)), Completions::default())
            }
            GroupState::CompletingRebalance if !changed => {
                (Reply::Now(self.join_result_for(&id, true)), Completions::default())
            }
            _ => {
                self.members.get_mut(&id).expect("known").awaiting_join = true;
                let mut completions = self.prepare_rebalance(now);
                completions.append(self.try_complete_join(now));
                self.reply_for(&id, completions)
            }
        }
    }

    /// Takes the member's own result out of the completions, if it is there.
    fn reply_for(&mut self, id: &str, mut completions: Completions) -> (Reply<JoinResult>, Completions) {
        if let Some(i) = completions.joins.iter().position(|(m, _)| m == id) {
            let (_, r) = completions.joins.remove(i);
            return (Reply::Now(r), completions);
        }
        (Reply::Wait(id.to_string()), completions)
    }

    /// Moves to PreparingRebalance; followers waiting for an assignment are told to rejoin.
    fn prepare_rebalance(&mut self, now: i64) -> Completions {
        let mut completions = Completions::default();
        for m in self.members.values_mut() {
            if m.awaiting_sync {
                m.awaiting_sync = false;
                completions
                    .syncs
                    .push((m.id.clone(), SyncResult::error(ResponseError::RebalanceInProgress)));
            }
        }
        let max_rebalance = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0);
        if self.state != GroupState::PreparingRebalance {
            if self.state == GroupState::Empty {
                self.initial_delay_until_ms = now + self.config.initial_rebalance_delay_ms.min(max_rebalance);
            }
            self.rebalance_deadline_ms = now + max_rebalance;
            self.state = GroupState::PreparingRebalance;
        }
        completions
    }

    /// Ends the join phase once every member has rejoined (or the deadline passed).
    fn try_complete_join(&mut self, now: i64) -> Completions {
        if self.state != GroupState::PreparingRebalance {
            return Completions::default();
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        let delay_over = now >= self.initial_delay_until_ms;
        let deadline = now >= self.rebalance_deadline_ms;
        if !(deadline || (all_joined && delay_over)) {
            return Completions::default();
        }
        // Members that did not rejoin in time are removed.
        self.members.retain(|_, m| m.awaiting_join);
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return Completions::default();
        }
        self.protocol = Some(self.select_protocol());
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        let mut completions = Completions::default();
        for id in ids {
            let leader = self.leader.as_deref() == Some(id.as_str());
            let m = self.members.get_mut(&id).expect("member");
            m.awaiting_join = false;
            m.assignment = Bytes::new();
            completions.joins.push((id.clone(), self.join_result_for(&id, leader)));
        }
        completions
    }

    /// Kafka's rule: among protocols every member supports, each member votes for
    /// its most preferred; the most votes win (ties: the first in a member's list).
    fn select_protocol(&self) -> String {
        let first = self.members.values().next().expect("members");
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == *n)))
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((vote, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == vote) {
                    v.0 += 1;
                }
            }
        }
        let best = votes.iter().map(|(n, _)| *n).max().unwrap_or(0);
        votes
            .iter()
            .find(|(n, _)| *n == best)
            .map(|(_, c)| (*c).clone())
            .unwrap_or_default()
    }

    fn join_result_for(&self, id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if with_members || leader == id {
            self.members
                .values()
                .map(|m| (m.id.clone(), m.group_instance_id.clone(), m.metadata_for(&protocol)))
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// Checks that a member and generation are current (SyncGroup, Heartbeat, OffsetCommit).
    pub fn check_member(&self, member_id: &str, instance: Option<&str>, generation: i32) -> Result<(), ResponseError> {
        let Some(m) = self.members.get(member_id) else {
            if let Some(i) = instance {
                if self.member_by_instance(i).is_some() {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
            return Err(ResponseError::UnknownMemberId);
        };
        if let (Some(i), Some(mi)) = (instance, m.group_instance_id.as_deref()) {
            if i != mi {
                return Err(ResponseError::FencedInstanceId);
            }
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Handles SyncGroup. `assignments` is non-empty only from the leader.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> (Reply<SyncResult>, Completions) {
        let none = Completions::default();
        if let Err(e) = self.check_member(member_id, instance, generation) {
            return (Reply::Now(SyncResult::error(e)), none);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat_ms = now;
        }
        match self.state {
            GroupState::PreparingRebalance => (Reply::Now(SyncResult::error(ResponseError::RebalanceInProgress)), none),
            GroupState::Stable => {
                let a = self.members[member_id].assignment.clone();
                (Reply::Now(self.sync_result(a)), none)
            }
            GroupState::CompletingRebalance => {
                self.members.get_mut(member_id).expect("checked").awaiting_sync = true;
                if self.leader.as_deref() != Some(member_id) {
                    return (Reply::Wait(member_id.to_string()), none);
                }
                let mut by_member: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                let mut completions = Completions::default();
                for m in self.members.values_mut() {
                    m.assignment = by_member.remove(&m.id).unwrap_or_default();
                }
                self.state = GroupState::Stable;
                let waiting: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.awaiting_sync)
                    .map(|m| m.id.clone())
                    .collect();
                for id in waiting {
                    let m = self.members.get_mut(&id).expect("member");
                    m.awaiting_sync = false;
                    let a = m.assignment.clone();
                    completions.syncs.push((id, self.sync_result(a)));
                }
                let pos = completions
                    .syncs
                    .iter()
                    .position(|(id, _)| id == member_id)
                    .expect("leader waits");
                let (_, mine) = completions.syncs.remove(pos);
                (Reply::Now(mine), completions)
            }
            GroupState::Empty | GroupState::Dead => {
                (Reply::Now(SyncResult::error(ResponseError::UnknownMemberId)), none)
            }
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment,
        }
    }

    /// Handles Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if let Err(e) = self.check_member(member_id, instance, generation) {
            // A member of the previous generation is told to rejoin, not that it is unknown.
            if e == ResponseError::IllegalGeneration && self.state == GroupState::PreparingRebalance {
                self.members.get_mut(member_id).expect("known").last_heartbeat_ms = now;
                return Some(ResponseError::RebalanceInProgress);
            }
            return Some(e);
        }
        self.members.get_mut(member_id).expect("checked").last_heartbeat_ms = now;
        match self.state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ => None,
        }
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(&mut self, member_id: &str, instance: Option<&str>, now: i64) -> (Option<ResponseError>, Completions) {
        let id = match (member_id.is_empty(), instance) {
            (true, Some(i)) => match self.member_by_instance(i) {
                Some(id) => id,
                None => return (Some(ResponseError::UnknownMemberId), Completions::default()),
            },
            _ => member_id.to_string(),
        };
        let Some(m) = self.members.get(&id) else {
            return (Some(ResponseError::UnknownMemberId), Completions::default());
        };
        if let (Some(i), Some(mi)) = (instance, m.group_instance_id.as_deref()) {
            if i != mi {
                return (Some(ResponseError::FencedInstanceId), Completions::default());
            }
        }
        (None, self.remove_member(&id, now))
    }

    fn remove_member(&mut self, id: &str, now: i64) -> Completions {
        let mut completions = Completions::default();
        if let Some(m) = self.members.remove(id) {
            if m.awaiting_join {
                completions
                    .joins
                    .push((m.id.clone(), JoinResult::error(ResponseError::UnknownMemberId, &m.id)));
            }
            if m.awaiting_sync {
                completions
                    .syncs
                    .push((m.id.clone(), SyncResult::error(ResponseError::UnknownMemberId)));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.state = GroupState::Empty;
                    self.protocol = None;
                    self.leader = None;
                } else {
                    completions.append(self.prepare_rebalance(now));
                    completions.append(self.try_complete_join(now));
                }
            }
            GroupState::PreparingRebalance => completions.append(self.try_complete_join(now)),
            _ => {}
        }
        completions
    }

    /// Expires members past their session timeout and ends a join phase whose
    /// deadline or initial delay has passed.
    pub fn tick(&mut self, now: i64) -> Completions {
        let mut completions = Completions::default();
        self.pending_members.retain(|_, since| now - *since < 300_000);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && now - m.last_heartbeat_ms > m.session_timeout_ms as i64)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            completions.append(self.remove_member(&id, now));
        }
        completions.append(self.try_complete_join(now));
        completions
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the coordinator may forget the group: no members, none that was
    /// given a member id and has yet to rejoin with it (MEMBER_ID_REQUIRED),
    /// and no rebalance under way.
    pub fn is_removable(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty() && self.state == GroupState::Empty
    }

    /// Topics the members subscribe to, read from the consumer protocol's
    /// subscription metadata (version, then an array of topic names).
    pub fn subscribed_topics(&self) -> Vec<String> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return Vec::new();
        }
        let mut topics = Vec::new();
        for m in self.members.values() {
            let Some((_, meta)) = m.protocols.first() else { continue };
            let mut b: &[u8] = meta;
            if b.len() < 6 {
                continue;
            }
            b = &b[2..];
            let n = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            b = &b[4..];
            for _ in 0..n.max(0) {
                if b.len() < 2 {
                    break;
                }
                let len = i16::from_be_bytes([b[0], b[1]]) as usize;
                if b.len() < 2 + len {
                    break;
                }
                topics.push(String::from_utf8_lossy(&b[2..2 + len]).to_string());
                b = &b[2 + len..];
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Marks the group deleted.
    pub fn mark_dead(&mut self) {
        self.state = GroupState::Dead;
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
