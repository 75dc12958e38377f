//! The consumer group protocol of KIP-848 as a pure state machine.
//!
//! The coordinator owns the assignment: each membership or subscription change
//! bumps the group epoch and recomputes a target assignment with a server-side
//! assignor (`uniform` or `range`). Members move towards their target
//! incrementally through heartbeats: first they are told to give up partitions
//! that are no longer theirs, and only partitions no other member still owns are
//! handed out, so a partition is never owned twice. Like `state.rs`, no I/O:
//! time comes in as `now`, topic metadata as a map.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// A topic partition, by topic id as KIP-848 names them.
pub type Tp = (Uuid, i32);

/// Topics known to the broker: name -> (id, partition count).
pub type TopicsView = BTreeMap<String, (Uuid, i32)>;

/// One member of a consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub subscribed: Vec<String>,
    /// What the member has been told it may own.
    pub assigned: BTreeSet<Tp>,
    /// What it last said it owns.
    pub owned: BTreeSet<Tp>,
    pub rebalance_timeout_ms: i32,
    pub last_heartbeat_ms: i64,
}

/// A ConsumerGroupHeartbeat, as the state machine sees it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    /// None: unchanged since the last heartbeat.
    pub subscribed: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// None: unchanged since the last heartbeat.
    pub owned: Option<Vec<Tp>>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<BTreeSet<Tp>>,
}

/// Leave epochs of the protocol.
const LEAVE: i32 = -1;
const STATIC_LEAVE: i32 = -2;

/// A KIP-848 consumer group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, BTreeSet<Tp>>,
    /// Partition counts the target was computed with.
    target_topics: TopicsView,
    /// The session timeout in force: the group's `consumer.session.timeout.ms`
    /// as of its last heartbeat, else the broker's default.
    pub session_timeout_ms: Option<i64>,
}

impl ConsumerGroup {
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            assignor: "uniform".into(),
            ..Default::default()
        }
    }

    /// Kafka's names: Empty, Assigning (target not computed), Reconciling, Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch < self.assignment_epoch || self.target.get(&m.id) != Some(&m.assigned))
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat. `new_member_id` is used when a v0 member joins without an id.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &TopicsView,
        now: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<HeartbeatResult, ResponseError> {
        if req.member_epoch == LEAVE || req.member_epoch == STATIC_LEAVE {
            if self.members.remove(&req.member_id).is_some() {
                self.target.remove(&req.member_id);
                self.epoch += 1;
            }
            return Ok(HeartbeatResult {
                member_id: req.member_id,
                member_epoch: req.member_epoch,
                assignment: None,
            });
        }
        if let Some(a) = &req.server_assignor {
            if a != "uniform" && a != "range" {
                return Err(ResponseError::UnsupportedAssignor);
            }
        }
        let mut bump = false;
        let id = if req.member_epoch == 0 {
            let id = if req.member_id.is_empty() {
                new_member_id()
            } else {
                req.member_id.clone()
            };
            // A static member that rejoins takes over its previous incarnation's place.
            if let Some(instance) = &req.instance_id {
                if let Some(old) = self
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                    .map(|m| m.id.clone())
                {
                    let mut m = self.members.remove(&old).expect("found");
                    let t = self.target.remove(&old);
                    m.id = id.clone();
                    m.epoch = 0;
                    m.owned.clear();
                    m.assigned.clear();
                    if let Some(t) = t {
                        self.target.insert(id.clone(), t);
                    }
                    self.members.insert(id.clone(), m);
                }
            }
            if !self.members.contains_key(&id) {
                self.members.insert(
                    id.clone(),
                    ConsumerMember {
                        id: id.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: req.rack_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        epoch: 0,
                        subscribed: Vec::new(),
                        assigned: BTreeSet::new(),
                        owned: BTreeSet::new(),
                        rebalance_timeout_ms: req.rebalance_timeout_ms,
                        last_heartbeat_ms: now,
                    },
                );
                bump = true;
            } else {
                let m = self.members.get_mut(&id).expect("present");
                m.epoch = 0;
                m.owned.clear();
            }
            id
        } else {
            let m = self.members.get(&req.member_id).ok_or(ResponseError::UnknownMemberId)?;
            if req.member_epoch > m.epoch || (req.member_epoch < m.epoch && !self.same_as_previous(m, &req)) {
                return Err(ResponseError::FencedMemberEpoch);
            }
            req.member_id.clone()
        };
        if let Some(a) = req.server_assignor.as_ref() {
            if *a != self.assignor {
                self.assignor = a.clone();
                bump = true;
            }
        }
        {
            let m = self.members.get_mut(&id).expect("present");
            m.last_heartbeat_ms = now;
            if let Some(s) = req.subscribed {
                let mut s = s;
                s.sort();
                if s != m.subscribed {
                    m.subscribed = s;
                    bump = true;
                }
            }
            if let Some(owned) = req.owned {
                m.owned = owned.into_iter().collect();
            }
        }
        if bump {
            self.epoch += 1;
        }
        let subscribed_topics: TopicsView = self.subscribed_view(topics);
        if self.assignment_epoch < self.epoch || subscribed_topics != self.target_topics {
            self.compute_target(&subscribed_topics);
        }
        Ok(self.reconcile(&id))
    }

    /// A member one epoch behind that reports what it was last given is not a zombie:
    /// its heartbeat crossed the response that moved it forward.
    fn same_as_previous(&self, m: &ConsumerMember, req: &HeartbeatRequest) -> bool {
        req.member_epoch == m.epoch - 1
            && req
                .owned
                .as_ref()
                .is_some_and(|o| o.iter().all(|tp| m.assigned.contains(tp)))
    }

    fn subscribed_view(&self, topics: &TopicsView) -> TopicsView {
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| m.subscribed.iter()).collect();
        topics
            .iter()
            .filter(|(n, _)| names.contains(n))
            .map(|(n, v)| (n.clone(), *v))
            .collect()
    }

    /// The server-side assignors: `uniform` spreads all subscribed partitions
    /// round-robin over the members that subscribe to them (keeping partitions
    /// with their current owner where balance allows); `range` gives each member
    /// a contiguous range of every topic it subscribes to.
    fn compute_target(&mut self, topics: &TopicsView) {
        let mut target: BTreeMap<String, BTreeSet<Tp>> =
            self.members.keys().map(|id| (id.clone(), BTreeSet::new())).collect();
        for (name, &(tid, count)) in topics {
            let subs: Vec<&String> = self
                .members
                .values()
                .filter(|m| m.subscribed.contains(name))
                .map(|m| &m.id)
                .collect();
            if subs.is_empty() {
                continue;
            }
            let n = subs.len() as i32;
            if self.assignor == "range" {
                let (per, extra) = (count / n, count % n);
                let mut start = 0;
                for (i, id) in subs.iter().enumerate() {
                    let len = per + i32::from((i as i32) < extra);
                    for p in start..start + len {
                        target.get_mut(*id).expect("member").insert((tid, p));
                    }
                    start += len;
                }
            } else {
                // Sticky where possible: each member keeps up to its fair share of what it has.
                let quota = |i: usize| (count / n + i32::from((i as i32) < count % n)) as usize;
                let mut unassigned: Vec<i32> = Vec::new();
                let mut taken: BTreeMap<&String, usize> = BTreeMap::new();
                let owner = |p: i32| {
                    subs.iter()
                        .position(|id| self.members[*id].assigned.contains(&(tid, p)))
                };
                for p in 0..count {
                    match owner(p) {
                        Some(i) if taken.get(subs[i]).copied().unwrap_or(0) < quota(i) => {
                            *taken.entry(subs[i]).or_default() += 1;
                            target.get_mut(subs[i]).expect("member").insert((tid, p));
                        }
                        _ => unassigned.push(p),
                    }
                }
                for p in unassigned {
                    let i = (0..subs.len())
                        .find(|&i| taken.get(subs[i]).copied().unwrap_or(0) < quota(i))
                        .expect("quota covers count");
                    *taken.entry(subs[i]).or_default() += 1;
                    target.get_mut(subs[i]).expect("member").insert((tid, p));
                }
            }
        }
        self.target = target;
        self.target_topics = topics.clone();
        self.assignment_epoch = self.epoch;
    }

    /// Moves one member towards its target: revoke first, then take free partitions.
    fn reconcile(&mut self, id: &str) -> HeartbeatResult {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let others: BTreeSet<Tp> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(|m| m.assigned.iter().chain(m.owned.iter()).copied())
            .collect();
        let m = self.members.get_mut(id).expect("present");
        let joining = m.epoch == 0;
        let owned = if joining { BTreeSet::new() } else { m.owned.clone() };
        let must_revoke: BTreeSet<Tp> = owned.difference(&target).copied().collect();
        let before = m.assigned.clone();
        if !must_revoke.is_empty() {
            m.assigned = owned.intersection(&target).copied().collect();
        } else {
            m.epoch = self.assignment_epoch;
            m.assigned = target
                .iter()
                .filter(|tp| owned.contains(tp) || !others.contains(tp))
                .copied()
                .collect();
        }
        let changed = m.assigned != before || joining;
        HeartbeatResult {
            member_id: id.to_string(),
            member_epoch: m.epoch,
            assignment: changed.then(|| m.assigned.clone()),
        }
    }

    /// Removes members whose session expired; true if any was.
    pub fn expire(&mut self, now: i64, session_timeout_ms: i64) -> bool {
        let before = self.members.len();
        self.members
            .retain(|_, m| now - m.last_heartbeat_ms <= session_timeout_ms);
        let removed = self.members.len() != before;
        if removed {
            let ids: BTreeSet<String> = self.members.keys().cloned().collect();
            self.target.retain(|id, _| ids.contains(id));
            self.epoch += 1;
        }
        removed
    }

    /// OffsetCommit check for a member of this group.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        let m = self.members.get(member_id).ok_or(ResponseError::UnknownMemberId)?;
        if epoch != m.epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(count: i32) -> (TopicsView, Uuid) {
        let id = Uuid::from_u128(7);
        (BTreeMap::from([("t".to_string(), (id, count))]), id)
    }

    fn hb(g: &mut ConsumerGroup, id: &str, epoch: i32, owned: Option<Vec<Tp>>, t: &TopicsView) -> HeartbeatResult {
        let req = HeartbeatRequest {
            member_id: id.into(),
            member_epoch: epoch,
            subscribed: if epoch == 0 { Some(vec!["t".into()]) } else { None },
            rebalance_timeout_ms: 1000,
            owned,
            ..Default::default()
        };
        g.heartbeat(req, t, 0, || unreachable!()).unwrap()
    }

    #[test]
    fn a_lone_member_gets_every_partition() {
        let (t, id) = topics(4);
        let mut g = ConsumerGroup::new("g");
        let r = hb(&mut g, "a", 0, None, &t);
        assert_eq!(r.member_epoch, 1);
        assert_eq!(r.assignment.unwrap().len(), 4);
        assert_eq!(g.state(), "Stable");
        let _ = id;
    }

    #[test]
    fn partitions_move_only_after_their_owner_revokes_them() {
        let (t, id) = topics(4);
        let mut g = ConsumerGroup::new("g");
        let a = hb(&mut g, "a", 0, None, &t);
        let all: Vec<Tp> = a.assignment.clone().unwrap().into_iter().collect();
        hb(&mut g, "a", 1, Some(all.clone()), &t);
        // b joins: its target is half, but a still owns everything.
        let b = hb(&mut g, "b", 0, None, &t);
        assert_eq!(b.assignment.as_ref().map(|a| a.len()), Some(0));
        assert_eq!(g.state(), "Reconciling");
        // a is told to keep only its half...
        let a2 = hb(&mut g, "a", 1, Some(all.clone()), &t);
        let kept = a2.assignment.unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(a2.member_epoch, 1, "still revoking: no new epoch");
        // ...and once it says it revoked, it moves to the new epoch and b gets the rest.
        let a3 = hb(&mut g, "a", 1, Some(kept.iter().copied().collect()), &t);
        assert_eq!(a3.member_epoch, g.assignment_epoch);
        let b2 = hb(&mut g, "b", b.member_epoch, Some(vec![]), &t);
        let got = b2.assignment.unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.is_disjoint(&kept));
        assert!(got.iter().all(|(tid, _)| *tid == id));
        hb(&mut g, "b", b2.member_epoch, Some(got.into_iter().collect()), &t);
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn leaving_and_session_expiry_free_partitions_and_stale_epochs_are_fenced() {
        let (t, _) = topics(2);
        let mut g = ConsumerGroup::new("g");
        let a = hb(&mut g, "a", 0, None, &t);
        hb(&mut g, "b", 0, None, &t);
        assert!(matches!(
            g.heartbeat(
                HeartbeatRequest {
                    member_id: "a".into(),
                    member_epoch: a.member_epoch + 5,
                    ..Default::default()
                },
                &t,
                0,
                || unreachable!()
            ),
            Err(ResponseError::FencedMemberEpoch)
        ));
        assert!(matches!(
            g.heartbeat(
                HeartbeatRequest {
                    member_id: "zz".into(),
                    member_epoch: 3,
                    ..Default::default()
                },
                &t,
                0,
                || unreachable!()
            ),
            Err(ResponseError::UnknownMemberId)
        ));
        hb(&mut g, "a", -1, None, &t);
        assert!(!g.members.contains_key("a"));
        assert!(g.expire(100_000, 45_000));
        assert!(g.members.is_empty());
    }

    #[test]
    fn range_assignor_gives_contiguous_ranges() {
        let (t, id) = topics(5);
        let mut g = ConsumerGroup::new("g");
        let mut req = HeartbeatRequest {
            member_id: "a".into(),
            subscribed: Some(vec!["t".into()]),
            server_assignor: Some("range".into()),
            ..Default::default()
        };
        g.heartbeat(req.clone(), &t, 0, || unreachable!()).unwrap();
        req.member_id = "b".into();
        g.heartbeat(req, &t, 0, || unreachable!()).unwrap();
        assert_eq!(g.target["a"], BTreeSet::from([(id, 0), (id, 1), (id, 2)]));
        assert_eq!(g.target["b"], BTreeSet::from([(id, 3), (id, 4)]));
        assert!(matches!(
            g.heartbeat(
                HeartbeatRequest {
                    server_assignor: Some("magic".into()),
                    ..Default::default()
                },
                &t,
                0,
                || unreachable!()
            ),
            Err(ResponseError::UnsupportedAssignor)
        ));
    }
}
