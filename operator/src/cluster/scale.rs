//! Changing the number of brokers: a pure state machine from what the cluster
//! is now to the one next step, so a reconcile interrupted anywhere is redone
//! from the facts and never repeats a finished move.
//!
//! Scale-up: the StatefulSet grows first; once every broker `0..n'` is ready and
//! registered, the partitions move to the classic placement over them, at most
//! `maxMovesInFlight` at a time under the replication throttle, and preferred
//! leaders are elected. Scale-down: refused below the largest replication
//! factor; otherwise every partition moves to the classic placement over the
//! brokers that stay, and only when no move is in flight, no leaving broker
//! holds a replica and every ISR is full does the StatefulSet shrink; then the
//! leaving brokers are unregistered and their volumes treated by
//! `storage.whenScaled`. Nothing here proceeds on a timeout: a move that stops
//! progressing is reported as stalled and waited on, or cancelled by annotation.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use skein_model::placement::RackedBroker;
use skein_model::plan::{plan, Assignments};

use crate::cluster::events::{Event, Reason};
use crate::crd::ScalingStatus;

pub const ADDING_BROKERS: &str = "AddingBrokers";
pub const REBALANCING: &str = "Rebalancing";
pub const DRAINING: &str = "Draining";
pub const REMOVING_BROKERS: &str = "RemovingBrokers";
pub const UNREGISTERING: &str = "Unregistering";
pub const RELEASING_VOLUMES: &str = "ReleasingVolumes";
pub const ELECTING_LEADERS: &str = "ElectingLeaders";
pub const COMPLETED: &str = "Completed";
pub const REFUSED: &str = "Refused";
pub const CANCELLED: &str = "Cancelled";

/// A reassignment in flight: its target replicas and the brokers it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub target: Vec<i32>,
    pub adding: Vec<i32>,
}

/// What the brokers report, as far as scaling needs it.
#[derive(Debug, Clone, Default)]
pub struct BrokerView {
    /// Registered broker ids, with whether each is fenced.
    pub registered: BTreeMap<i32, bool>,
    /// Each registered broker's `broker.rack`, where it has one.
    pub racks: BTreeMap<i32, String>,
    /// Replica lists by topic (during a reassignment, all replicas old and new).
    pub assignments: Assignments,
    /// In-sync replicas and leader of every partition.
    pub isr: BTreeMap<(String, i32), Vec<i32>>,
    pub leaders: BTreeMap<(String, i32), i32>,
    /// Reassignments in flight.
    pub ongoing: BTreeMap<(String, i32), InFlight>,
    /// Each partition's size (its largest replica), bytes.
    pub sizes: BTreeMap<(String, i32), u64>,
    /// Bytes each broker holds of each partition: (broker, topic, partition).
    pub held: BTreeMap<(i32, String, i32), u64>,
}

impl BrokerView {
    /// The largest replication factor of any topic, counting a moving
    /// partition's target, and a topic that has it.
    fn largest_rf(&self) -> Option<(usize, &str)> {
        self.assignments
            .iter()
            .flat_map(|(t, ps)| {
                ps.iter().enumerate().map(move |(p, r)| {
                    let rf = self
                        .ongoing
                        .get(&(t.clone(), p as i32))
                        .map_or(r.len(), |f| f.target.len());
                    (rf, t.as_str())
                })
            })
            .max_by_key(|(rf, _)| *rf)
    }

    /// Partitions whose ISR lacks one of their replicas.
    pub(crate) fn not_in_sync(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (t, ps) in &self.assignments {
            for (p, r) in ps.iter().enumerate() {
                let isr = self.isr.get(&(t.clone(), p as i32));
                if r.iter().any(|b| !isr.is_some_and(|i| i.contains(b))) {
                    out.push(format!("{t}-{p}"));
                }
            }
        }
        out
    }

    /// Partitions whose preferred replica is in sync but does not lead.
    pub(crate) fn not_preferred(&self) -> usize {
        self.assignments
            .iter()
            .flat_map(|(t, ps)| ps.iter().enumerate().map(move |(p, r)| (t.clone(), p as i32, r)))
            .filter(|(t, p, r)| {
                let key = (t.clone(), *p);
                let preferred = r.first().copied();
                preferred.is_some_and(|b| {
                    self.isr.get(&key).is_some_and(|i| i.contains(&b)) && self.leaders.get(&key) != Some(&b)
                })
            })
            .count()
    }
}

/// Everything one decision reads.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// `spec.replicas`.
    pub target: i32,
    pub generation: i64,
    /// The StatefulSet's replicas now (None: not created yet).
    pub statefulset: Option<i32>,
    /// Broker pods: (ordinal, ready).
    pub pods: &'a [(i32, bool)],
    /// None when the brokers could not be asked.
    pub brokers: Option<&'a BrokerView>,
    /// Ordinals that have a volume claim.
    pub claims: &'a [i32],
    /// `storage.whenScaled: Delete`.
    pub delete_claims: bool,
    pub max_moves_in_flight: usize,
    /// Replication throttle, bytes per second.
    pub throttle: i64,
    /// The cancel annotation is set.
    pub cancel: bool,
    /// The scaling status recorded last.
    pub previous: Option<&'a ScalingStatus>,
    pub now: jiff::Timestamp,
    /// How long in-flight moves may go without progress before they are reported.
    pub stall_after: jiff::SignedDuration,
}

/// One thing the reconciler does against the brokers or the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Starts these reassignments (topic, partition, target replicas).
    Reassign(Vec<(String, i32, Vec<i32>)>),
    /// Cancels these reassignments.
    Cancel(Vec<(String, i32)>),
    /// Sets leader/follower.replication.throttled.rate cluster-wide.
    SetThrottle(i64),
    /// Removes the throttle.
    ClearThrottle,
    ElectPreferredLeaders,
    Unregister(Vec<i32>),
    /// Deletes the volume claims of these ordinals.
    DeleteClaims(Vec<i32>),
}

/// The next step: the StatefulSet's replicas, what to do, the status to record
/// and an Event to publish (warning, reason, message).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub statefulset_replicas: i32,
    pub steps: Vec<Step>,
    pub status: Option<ScalingStatus>,
    pub event: Option<Event>,
}

/// Whether a recorded change is still under way.
pub fn active(st: &ScalingStatus) -> bool {
    st.phase != COMPLETED
}

/// Decides the next step of scaling.
pub fn decide(i: &Input) -> Decision {
    let current = i.statefulset.unwrap_or(i.target);
    let prev = i.previous.filter(|p| active(p));
    // Brokers registered beyond the target with no change recorded: a status
    // lost after a shrink. Removing them is the same change's tail.
    let stray = i.brokers.is_some_and(|b| b.registered.keys().any(|id| *id >= i.target));
    if current == i.target && prev.is_none() && !stray {
        return Decision {
            statefulset_replicas: current,
            steps: Vec::new(),
            status: i.previous.cloned(),
            event: None,
        };
    }
    let mut st = match prev {
        Some(p) if p.to == i.target => p.clone(),
        _ => ScalingStatus {
            phase: String::new(),
            from: current,
            to: i.target,
            plan_id: format!("{current}-to-{}-g{}", i.target, i.generation),
            last_progress_time: Some(Time(i.now)),
            ..Default::default()
        },
    };
    let old_phase = i.previous.map(|p| p.phase.clone()).unwrap_or_default();
    let old_stalled = prev.is_some_and(|p| p.stalled);
    let mut d = Decision {
        statefulset_replicas: current,
        steps: Vec::new(),
        status: None,
        event: None,
    };
    step(i, current, &mut st, &mut d);
    if st.stalled && !old_stalled {
        d.event = Some(Event::new(Reason::RebalanceStalled, st.message.clone()));
    } else if st.phase != old_phase || st.plan_id != i.previous.map(|p| p.plan_id.clone()).unwrap_or_default() {
        let reason = match st.phase.as_str() {
            REFUSED => Reason::ScaleDownRefused,
            COMPLETED => Reason::ScalingCompleted,
            CANCELLED => Reason::ScalingCancelled,
            _ => Reason::Scaling,
        };
        let note = format!(
            "{} -> {} brokers: {}{}",
            st.from,
            st.to,
            st.phase,
            if st.message.is_empty() {
                String::new()
            } else {
                format!(" ({})", st.message)
            }
        );
        d.event = Some(Event::new(reason, note));
    }
    d.status = Some(st);
    d
}

fn step(i: &Input, current: i32, st: &mut ScalingStatus, d: &mut Decision) {
    st.stalled = false;
    if i.cancel {
        st.phase = CANCELLED.into();
        st.message = "cancelled by the skein.dev/cancel-scaling annotation; remove it to resume".into();
        let ongoing: Vec<(String, i32)> = i
            .brokers
            .map(|b| b.ongoing.keys().cloned().collect())
            .unwrap_or_default();
        if !ongoing.is_empty() {
            d.steps.push(Step::Cancel(ongoing));
        }
        d.steps.push(Step::ClearThrottle);
        return;
    }
    if i.target > current {
        // Grow first: new brokers register, then partitions move onto them.
        st.phase = ADDING_BROKERS.into();
        st.message = format!("starting brokers {}..{}", current, i.target - 1);
        d.statefulset_replicas = i.target;
        return;
    }
    let Some(view) = i.brokers else {
        st.message = "waiting for the brokers to answer".into();
        if st.phase.is_empty() {
            st.phase = if i.target < current { DRAINING } else { REBALANCING }.into();
        }
        return;
    };
    if i.target < current {
        if let Some((rf, topic)) = view.largest_rf().filter(|(rf, _)| *rf > i.target as usize) {
            st.phase = REFUSED.into();
            st.message = format!(
                "{} brokers cannot hold topic {topic} with replication factor {rf}; lower its replication factor first",
                i.target
            );
            return;
        }
        st.phase = DRAINING.into();
        let stay: Vec<i32> = (0..i.target).collect();
        if moves(i, view, &stay, st, d) {
            let held: Vec<i32> = leaving_replicas(view, i.target);
            if held.is_empty() {
                st.phase = REMOVING_BROKERS.into();
                st.message = format!("stopping brokers {}..{}", i.target, current - 1);
                d.statefulset_replicas = i.target;
            } else {
                st.message = format!("leaving brokers still hold replicas: {held:?}");
            }
        }
        return;
    }
    // At the target size: brokers beyond it are removed (the tail of a
    // scale-down, or what a lost status left), then everything is placed over
    // the brokers there are.
    let left: Vec<i32> = i.pods.iter().map(|p| p.0).filter(|o| *o >= i.target).collect();
    if !left.is_empty() {
        st.phase = REMOVING_BROKERS.into();
        st.message = format!("waiting for pods {left:?} to stop");
        return;
    }
    let registered: Vec<i32> = view.registered.keys().copied().filter(|b| *b >= i.target).collect();
    if !registered.is_empty() {
        st.phase = UNREGISTERING.into();
        st.message = format!("unregistering brokers {registered:?}");
        d.steps.push(Step::Unregister(registered));
        return;
    }
    let claims: Vec<i32> = i.claims.iter().copied().filter(|o| *o >= i.target).collect();
    if i.delete_claims && !claims.is_empty() {
        st.phase = RELEASING_VOLUMES.into();
        st.message = format!("deleting the volumes of brokers {claims:?} (storage.whenScaled: Delete)");
        d.steps.push(Step::DeleteClaims(claims));
        return;
    }
    let missing: Vec<i32> = (0..i.target)
        .filter(|b| !i.pods.contains(&(*b, true)) || view.registered.get(b) != Some(&false))
        .collect();
    if !missing.is_empty() {
        st.phase = ADDING_BROKERS.into();
        st.message = format!("waiting for brokers {missing:?} to be ready and registered");
        return;
    }
    if st.phase != ELECTING_LEADERS {
        st.phase = REBALANCING.into();
    }
    let all: Vec<i32> = (0..i.target).collect();
    if !moves(i, view, &all, st, d) {
        st.phase = REBALANCING.into();
        return;
    }
    if view.not_preferred() > 0 {
        st.phase = ELECTING_LEADERS.into();
        st.message = format!("{} partitions not led by their preferred replica", view.not_preferred());
        d.steps.push(Step::ElectPreferredLeaders);
        return;
    }
    st.phase = COMPLETED.into();
    st.message = String::new();
    st.estimated_seconds_left = None;
    d.steps.push(Step::ClearThrottle);
}

/// Brokers `target..` that still hold a replica.
fn leaving_replicas(view: &BrokerView, target: i32) -> Vec<i32> {
    let mut held = BTreeSet::new();
    for r in view.assignments.values().flatten() {
        held.extend(r.iter().copied().filter(|b| *b >= target));
    }
    held.into_iter().collect()
}

/// One round of moves towards the classic placement over `brokers`: starts
/// what the in-flight limit allows and records progress. True once nothing is
/// left to move, nothing is in flight and every ISR is full.
fn moves(i: &Input, view: &BrokerView, brokers: &[i32], st: &mut ScalingStatus, d: &mut Decision) -> bool {
    // Partitions in flight are left to finish (planned at their target, then
    // skipped); the rest are planned afresh by the model's plan.
    let mut effective = view.assignments.clone();
    for ((t, p), f) in &view.ongoing {
        if let Some(r) = effective.get_mut(t).and_then(|ps| ps.get_mut(*p as usize)) {
            *r = f.target.clone();
        }
    }
    let racked: Vec<RackedBroker> = brokers
        .iter()
        .map(|&id| RackedBroker {
            id,
            rack: view.racks.get(&id).cloned(),
        })
        .collect();
    let planned = match plan(&effective, &racked, &view.sizes) {
        Ok(p) => p,
        Err(e) => {
            st.message = format!("no plan: {e}");
            return false;
        }
    };
    let todo: Vec<(String, i32, Vec<i32>)> = planned
        .moves
        .iter()
        .filter(|m| !view.ongoing.contains_key(&(m.topic.clone(), m.partition)))
        .map(|m| (m.topic.clone(), m.partition, m.target.clone()))
        .collect();
    let mut left_bytes: u64 = planned
        .moves
        .iter()
        .filter(|m| !view.ongoing.contains_key(&(m.topic.clone(), m.partition)))
        .map(|m| m.bytes.unwrap_or(0))
        .sum();
    for ((t, p), f) in &view.ongoing {
        let size = view.sizes.get(&(t.clone(), *p)).copied().unwrap_or(0);
        for b in &f.adding {
            let have = view.held.get(&(*b, t.clone(), *p)).copied().unwrap_or(0);
            left_bytes += size.saturating_sub(have);
        }
    }
    let in_flight = view.ongoing.len();
    let left_parts = (todo.len() + in_flight) as i64;
    let left_bytes = left_bytes as i64;

    // Progress only moves forward; a plan that grew (new topics, new data) grows the totals.
    let (done_parts, done_bytes) = (st.partitions_done, st.bytes_done);
    st.partitions_total = st.partitions_total.max(st.partitions_done + left_parts);
    st.bytes_total = st.bytes_total.max(st.bytes_done + left_bytes);
    st.partitions_done = st.partitions_done.max(st.partitions_total - left_parts);
    st.bytes_done = st.bytes_done.max(st.bytes_total - left_bytes);
    st.partitions_in_flight = in_flight as i64;
    st.estimated_seconds_left = Some((left_bytes + i.throttle - 1) / i.throttle.max(1));
    if st.partitions_done > done_parts || st.bytes_done > done_bytes || st.last_progress_time.is_none() {
        st.last_progress_time = Some(Time(i.now));
    }

    if left_parts == 0 {
        let lagging = view.not_in_sync();
        if lagging.is_empty() {
            return true;
        }
        st.message = format!(
            "waiting for {} partitions to be fully in sync: {}",
            lagging.len(),
            lagging.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
        return false;
    }
    let slots = i.max_moves_in_flight.max(1).saturating_sub(in_flight);
    let start: Vec<(String, i32, Vec<i32>)> = todo.into_iter().take(slots).collect();
    if !start.is_empty() {
        d.steps.push(Step::SetThrottle(i.throttle));
        d.steps.push(Step::Reassign(start));
    }
    st.message = format!(
        "{} of {} partition moves done, {in_flight} in flight; {} of {} bytes copied",
        st.partitions_done, st.partitions_total, st.bytes_done, st.bytes_total
    );
    let since = st
        .last_progress_time
        .as_ref()
        .map_or(jiff::SignedDuration::ZERO, |t| i.now.duration_since(t.0));
    if in_flight > 0 && since > i.stall_after {
        st.stalled = true;
        st.message = format!(
            "no progress for {}s with {in_flight} moves in flight; waiting (annotate skein.dev/cancel-scaling=true to cancel)",
            since.as_secs()
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use skein_model::placement::assign_replicas;

    /// A fake cluster: the StatefulSet, pods, the quorum's registrations and the
    /// partitions, advanced one tick (5 s) at a time.
    #[derive(Debug, Clone)]
    struct World {
        statefulset: i32,
        down: BTreeSet<i32>,
        registered: BTreeSet<i32>,
        claims: BTreeSet<i32>,
        assignments: Assignments,
        leaders: BTreeMap<(String, i32), i32>,
        /// In flight: target, ticks left.
        ongoing: BTreeMap<(String, i32), (Vec<i32>, u32)>,
        stalled: bool,
        throttle: Option<i64>,
        now: jiff::Timestamp,
        /// `broker.rack` of brokers that have one.
        racks: BTreeMap<i32, String>,
    }

    impl World {
        fn new(brokers: i32, topics: &[(&str, i32, i16)]) -> World {
            let all: Vec<i32> = (0..brokers).collect();
            let assignments: Assignments = topics
                .iter()
                .map(|(t, p, rf)| (t.to_string(), assign_replicas(&all, 0, *p, *rf).unwrap()))
                .collect();
            let leaders = assignments
                .iter()
                .flat_map(|(t, ps)| ps.iter().enumerate().map(move |(p, r)| ((t.clone(), p as i32), r[0])))
                .collect();
            World {
                statefulset: brokers,
                down: BTreeSet::new(),
                registered: all.iter().copied().collect(),
                claims: all.iter().copied().collect(),
                assignments,
                leaders,
                ongoing: BTreeMap::new(),
                stalled: false,
                throttle: None,
                now: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
                racks: BTreeMap::new(),
            }
        }

        fn pods(&self) -> Vec<(i32, bool)> {
            (0..self.statefulset).map(|o| (o, !self.down.contains(&o))).collect()
        }

        fn view(&self) -> BrokerView {
            let mut v = BrokerView {
                registered: self.registered.iter().map(|b| (*b, self.down.contains(b))).collect(),
                racks: self.racks.clone(),
                ..Default::default()
            };
            for (t, ps) in &self.assignments {
                let mut reported = Vec::new();
                for (p, r) in ps.iter().enumerate() {
                    let key = (t.clone(), p as i32);
                    let mut all = r.clone();
                    if let Some((target, _)) = self.ongoing.get(&key) {
                        for b in target {
                            if !all.contains(b) {
                                all.push(*b);
                            }
                        }
                        v.ongoing.insert(
                            key.clone(),
                            InFlight {
                                target: target.clone(),
                                adding: target.iter().copied().filter(|b| !r.contains(b)).collect(),
                            },
                        );
                    }
                    v.isr.insert(
                        key.clone(),
                        r.iter().copied().filter(|b| !self.down.contains(b)).collect(),
                    );
                    v.leaders.insert(key.clone(), self.leaders[&key]);
                    v.sizes.insert(key, 1000);
                    reported.push(all);
                }
                v.assignments.insert(t.clone(), reported);
            }
            v
        }

        fn apply(&mut self, d: &Decision) {
            // The invariant: the StatefulSet never drops a broker that holds a replica.
            if d.statefulset_replicas < self.statefulset {
                for (t, ps) in &self.assignments {
                    for (p, r) in ps.iter().enumerate() {
                        assert!(
                            r.iter().all(|b| *b < d.statefulset_replicas),
                            "StatefulSet lowered to {} while {t}-{p} is on {r:?}",
                            d.statefulset_replicas
                        );
                    }
                }
                assert!(self.ongoing.is_empty(), "StatefulSet lowered with moves in flight");
            }
            self.statefulset = d.statefulset_replicas;
            for s in &d.steps {
                match s {
                    Step::Reassign(moves) => {
                        for (t, p, target) in moves {
                            let key = (t.clone(), *p);
                            assert!(!self.ongoing.contains_key(&key), "{t}-{p} reassigned while in flight");
                            // A finished move is never done again.
                            assert_ne!(&self.assignments[t][*p as usize], target, "{t}-{p} moved twice");
                            self.ongoing.insert(key, (target.clone(), 2));
                        }
                    }
                    Step::Cancel(keys) => {
                        for k in keys {
                            self.ongoing.remove(k);
                        }
                    }
                    Step::SetThrottle(r) => self.throttle = Some(*r),
                    Step::ClearThrottle => self.throttle = None,
                    Step::ElectPreferredLeaders => {
                        for (t, ps) in &self.assignments {
                            for (p, r) in ps.iter().enumerate() {
                                if !self.down.contains(&r[0]) {
                                    self.leaders.insert((t.clone(), p as i32), r[0]);
                                }
                            }
                        }
                    }
                    Step::Unregister(ids) => {
                        for b in ids {
                            assert!(*b >= self.statefulset, "unregistered broker {b} still has a pod");
                            self.registered.remove(b);
                        }
                    }
                    Step::DeleteClaims(ids) => {
                        for b in ids {
                            assert!(*b >= self.statefulset, "deleted the volume of running broker {b}");
                            self.claims.remove(b);
                        }
                    }
                }
            }
        }

        /// Time passes: pods start and stop, moves progress unless stalled.
        fn tick(&mut self) {
            self.now += jiff::SignedDuration::from_secs(5);
            for b in 0..self.statefulset {
                self.claims.insert(b);
                if !self.down.contains(&b) {
                    self.registered.insert(b);
                }
            }
            self.down.retain(|b| *b < self.statefulset);
            if self.stalled {
                return;
            }
            let mut finished = Vec::new();
            for (key, (target, left)) in self.ongoing.iter_mut() {
                if target.iter().any(|b| self.down.contains(b) || *b >= self.statefulset) {
                    continue;
                }
                *left -= 1;
                if *left == 0 {
                    finished.push((key.clone(), target.clone()));
                }
            }
            for ((t, p), target) in finished {
                self.ongoing.remove(&(t.clone(), p));
                self.assignments.get_mut(&t).unwrap()[p as usize] = target.clone();
                let leader = self.leaders[&(t.clone(), p)];
                if !target.contains(&leader) {
                    self.leaders.insert((t, p), target[0]);
                }
            }
        }
    }

    fn decide_in(w: &World, target: i32, previous: Option<&ScalingStatus>, cancel: bool) -> Decision {
        let view = w.view();
        let pods = w.pods();
        let claims: Vec<i32> = w.claims.iter().copied().collect();
        decide(&Input {
            target,
            generation: 1,
            statefulset: Some(w.statefulset),
            pods: &pods,
            brokers: Some(&view),
            claims: &claims,
            delete_claims: true,
            max_moves_in_flight: 2,
            throttle: 100,
            cancel,
            previous,
            now: w.now,
            stall_after: jiff::SignedDuration::from_secs(60),
        })
    }

    /// Runs the operator against the world until the change completes; returns the phases seen.
    fn converge(w: &mut World, target: i32, mut status: Option<ScalingStatus>) -> (Vec<String>, Option<ScalingStatus>) {
        let mut phases: Vec<String> = Vec::new();
        for _ in 0..400 {
            let d = decide_in(w, target, status.as_ref(), false);
            w.apply(&d);
            status = d.status.clone();
            if let Some(st) = &status {
                if phases.last() != Some(&st.phase) {
                    phases.push(st.phase.clone());
                }
                if st.phase == COMPLETED && d.steps.iter().all(|s| *s == Step::ClearThrottle) {
                    return (phases, status);
                }
            } else {
                return (phases, status);
            }
            w.tick();
        }
        panic!("did not converge: {status:?} {w:?}");
    }

    fn classic(w: &World, n: i32) -> bool {
        let all: Vec<i32> = (0..n).collect();
        w.assignments
            .values()
            .all(|ps| *ps == assign_replicas(&all, 0, ps.len() as i32, ps[0].len() as i16).unwrap())
    }

    #[test]
    fn scaling_up_grows_first_then_moves_then_elects() {
        let mut w = World::new(3, &[("orders", 6, 3), ("__consumer_offsets", 4, 3)]);
        let (phases, st) = converge(&mut w, 5, None);
        assert_eq!(phases, vec![ADDING_BROKERS, REBALANCING, ELECTING_LEADERS, COMPLETED]);
        let st = st.unwrap();
        assert_eq!((st.from, st.to, st.plan_id.as_str()), (3, 5, "3-to-5-g1"));
        assert_eq!(st.partitions_done, st.partitions_total);
        assert!(st.partitions_total > 0 && st.bytes_done == st.bytes_total);
        assert!(classic(&w, 5));
        assert_eq!(w.throttle, None, "the throttle is removed at the end");
        assert!(w
            .leaders
            .iter()
            .all(|((t, p), l)| w.assignments[t][*p as usize][0] == *l));
    }

    #[test]
    fn scaling_up_over_racks_spreads_every_partition_over_them() {
        let mut w = World::new(2, &[("orders", 8, 2)]);
        // Zones a, a, b, b: the classic rule alone would keep partition 0 on 0 and 1, both in a.
        w.racks = (0..4).map(|b| (b, if b < 2 { "a" } else { "b" }.to_string())).collect();
        let (phases, _) = converge(&mut w, 4, None);
        assert_eq!(phases.last().map(String::as_str), Some(COMPLETED));
        for r in &w.assignments["orders"] {
            let zones: BTreeSet<&str> = r.iter().map(|b| w.racks[b].as_str()).collect();
            assert_eq!(zones.len(), 2, "{r:?}");
        }
    }

    #[test]
    fn scaling_down_drains_then_shrinks_then_unregisters_then_releases_volumes() {
        let mut w = World::new(5, &[("orders", 10, 3)]);
        let (phases, _) = converge(&mut w, 3, None);
        assert_eq!(
            phases,
            vec![
                DRAINING,
                REMOVING_BROKERS,
                UNREGISTERING,
                RELEASING_VOLUMES,
                ELECTING_LEADERS,
                COMPLETED
            ]
        );
        assert!(classic(&w, 3));
        assert_eq!(w.registered, BTreeSet::from([0, 1, 2]));
        assert_eq!(w.claims, BTreeSet::from([0, 1, 2]));
    }

    #[test]
    fn a_scale_down_below_the_largest_replication_factor_is_refused_and_changes_nothing() {
        let w = World::new(3, &[("a", 3, 2), ("__consumer_offsets", 2, 3)]);
        let d = decide_in(&w, 2, None, false);
        assert_eq!(d.statefulset_replicas, 3);
        assert!(d.steps.is_empty());
        let st = d.status.unwrap();
        assert_eq!(st.phase, REFUSED);
        assert!(st.message.contains("__consumer_offsets") && st.message.contains("replication factor 3"));
        let event = d.event.unwrap();
        assert!(event.reason.warning());
        assert_eq!(event.reason.as_str(), "ScaleDownRefused");
    }

    #[test]
    fn a_stalled_move_is_reported_and_waited_on_never_passed() {
        let mut w = World::new(4, &[("t", 8, 2)]);
        let mut status = None;
        let mut stalled_event = false;
        w.stalled = true;
        for _ in 0..60 {
            let d = decide_in(&w, 3, status.as_ref(), false);
            w.apply(&d);
            assert_eq!(w.statefulset, 4, "never shrinks while moves are stuck");
            stalled_event |= d.event.as_ref().is_some_and(|e| e.reason == Reason::RebalanceStalled);
            status = d.status;
            w.tick();
        }
        let st = status.clone().unwrap();
        assert!(st.stalled && st.message.contains("no progress"), "{st:?}");
        assert!(stalled_event);
        // Cancelled by annotation: moves in flight are cancelled, nothing shrinks.
        let d = decide_in(&w, 3, status.as_ref(), true);
        assert!(matches!(d.steps[0], Step::Cancel(ref k) if !k.is_empty()));
        w.apply(&d);
        assert_eq!(d.status.as_ref().unwrap().phase, CANCELLED);
        assert_eq!(w.statefulset, 4);
        // The annotation removed and the moves unstuck, the scale-down completes.
        w.stalled = false;
        let (_, st) = converge(&mut w, 3, d.status);
        assert_eq!(st.unwrap().phase, COMPLETED);
        assert!(classic(&w, 3));
    }

    #[test]
    fn a_new_target_mid_way_replans_from_where_the_cluster_is() {
        let mut w = World::new(3, &[("t", 12, 2)]);
        let mut status = None;
        for _ in 0..6 {
            let d = decide_in(&w, 6, status.as_ref(), false);
            w.apply(&d);
            status = d.status;
            w.tick();
        }
        assert_eq!(w.statefulset, 6);
        let (_, st) = converge(&mut w, 4, status);
        let st = st.unwrap();
        assert_eq!((st.from, st.to), (6, 4));
        assert!(classic(&w, 4));
        assert_eq!(w.statefulset, 4);
    }

    #[test]
    fn nothing_to_do_at_the_target_size() {
        let w = World::new(3, &[("t", 3, 3)]);
        let d = decide_in(&w, 3, None, false);
        assert_eq!(
            d,
            Decision {
                statefulset_replicas: 3,
                steps: vec![],
                status: None,
                event: None
            }
        );
    }

    #[derive(Debug, Clone)]
    enum Fault {
        /// A broker pod dies and stays down for some ticks.
        PodDown(i32, u8),
        /// Moves stop progressing for some ticks.
        Stall(u8),
        /// The operator restarts and its last status write was lost (the
        /// reconciler writes status before growing the StatefulSet, after the
        /// other steps, so only a write that followed steps can be lost).
        RestartLosingStatus,
        /// The target changes.
        Retarget(i32),
        Nothing,
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            (0i32..6, 1u8..6).prop_map(|(b, n)| Fault::PodDown(b, n)),
            (1u8..20).prop_map(Fault::Stall),
            Just(Fault::RestartLosingStatus),
            (3i32..7).prop_map(Fault::Retarget),
            Just(Fault::Nothing),
            Just(Fault::Nothing),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn under_any_faults_no_replica_is_dropped_and_the_change_converges(
            start in 3i32..6,
            target in 3i32..7,
            faults in proptest::collection::vec(fault(), 0..40),
        ) {
            let mut w = World::new(start, &[("a", 7, 3), ("b", 5, 2), ("__consumer_offsets", 4, 3)]);
            let mut status: Option<ScalingStatus> = None;
            let mut older: Option<ScalingStatus> = None;
            let mut target = target;
            let mut down_for: BTreeMap<i32, u8> = BTreeMap::new();
            let mut stall_for = 0u8;
            let mut grew = false;
            for f in faults {
                match f {
                    Fault::PodDown(b, n) => {
                        if b < w.statefulset {
                            w.down.insert(b);
                            down_for.insert(b, n);
                        }
                    }
                    Fault::Stall(n) => stall_for = n,
                    Fault::RestartLosingStatus => {
                        if !grew {
                            status = older.clone();
                        }
                    }
                    Fault::Retarget(t) => target = t,
                    Fault::Nothing => {}
                }
                w.stalled = stall_for > 0;
                stall_for = stall_for.saturating_sub(1);
                // `apply` asserts the invariants on every decision.
                let d = decide_in(&w, target, status.as_ref(), false);
                grew = d.statefulset_replicas > w.statefulset;
                w.apply(&d);
                older = status.replace(d.status.clone().unwrap_or_default()).or(older);
                if d.status.is_none() { status = None; }
                w.tick();
                down_for.retain(|b, n| { *n -= 1; if *n == 0 { w.down.remove(b); } *n > 0 });
            }
            // Faults stop: it converges to the target on the classic placement.
            w.down.clear();
            w.stalled = false;
            let (_, st) = converge(&mut w, target, status);
            prop_assert_eq!(w.statefulset, target);
            prop_assert!(classic(&w, target), "{:?}", w.assignments);
            prop_assert!(w.registered.iter().all(|b| *b < target));
            if let Some(st) = st { prop_assert_eq!(st.phase, COMPLETED); }
        }
    }
}
