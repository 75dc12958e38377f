//! Decide: from the facts and the validated spec, every write of one reconcile,
//! in the order `execute` must make them. Pure: the clock comes in as `now`.
//!
//! The order is part of the decision and tested here: status is recorded
//! before the StatefulSet grows (a restarted operator then knows the new
//! brokers are a scale-up whose partitions must move), Events precede the
//! write they announce, and the final status is the last write.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use skein_client::AlterOp;

use super::build::{self, Settings};
use super::events::{Event, Phase, Reason};
use super::facts::{Facts, OwnedKind};
use super::validate::{self, Invalid, ValidCluster, Volumes};
use super::{roll, scale, status};
use crate::crd::{KafkaCluster, KafkaClusterStatus, ScalingStatus};

/// One write against the API server or the brokers.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Server-side apply of the status subresource.
    Status(Box<KafkaClusterStatus>),
    Event(Event),
    /// Grows one volume claim to `size` (a failure is reported as an Event and stops the reconcile).
    GrowClaim {
        claim: String,
        size: String,
    },
    /// Deletes the StatefulSet with orphan cascade; the next reconcile recreates
    /// it with the new claim template, its pods running on.
    ReplaceStatefulSet,
    /// A scaling step: against the brokers, or deleting volume claims.
    Scale(scale::Step),
    /// Sets or removes cluster-wide dynamic broker configs.
    AlterBrokerConfigs(Vec<AlterOp>),
    /// Deletes one broker pod (a rolling restart's step).
    RestartBroker(i32),
    /// Server-side apply of one desired object.
    Apply(serde_json::Value),
    /// Deletes an owned Service or ConfigMap the spec no longer needs.
    Delete {
        kind: OwnedKind,
        name: String,
    },
}

/// When to reconcile again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Only when the resource changes.
    OnChange,
    After(Duration),
}

/// Everything one reconcile does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub requeue: Requeue,
    /// The scale under way, for its metrics.
    pub scaling: Option<ScalingStatus>,
    /// The scale's plan id, for the logs of its moves.
    pub plan_id: String,
}

impl Plan {
    fn new(writes: Vec<Write>, requeue: Requeue) -> Plan {
        Plan {
            writes,
            requeue,
            scaling: None,
            plan_id: String::new(),
        }
    }
}

/// What `decide` reads besides the facts.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub settings: &'a Settings,
    pub now: jiff::Timestamp,
    /// How long moves in flight may go without progress before a scale is reported stalled.
    pub stall_after: jiff::SignedDuration,
}

/// Validates the spec of the observed cluster.
pub fn validate(facts: &Facts) -> Result<ValidCluster<'_>, Vec<Invalid>> {
    let kc = &facts.cluster;
    let recorded = kc.status.as_ref().and_then(|s| s.controllers);
    let volume_size = facts.statefulset.as_ref().and_then(|s| s.claim_size.as_deref());
    validate::validate(kc, recorded, volume_size)
}

/// The writes of one reconcile.
pub fn decide(facts: &Facts, valid: Result<ValidCluster<'_>, Vec<Invalid>>, inputs: &Inputs) -> Plan {
    let kc = &facts.cluster;
    if facts.paused {
        return Plan::new(
            vec![Write::Status(Box::new(status::paused_status(kc)))],
            Requeue::OnChange,
        );
    }
    if facts.statefulset.as_ref().is_some_and(|s| s.deleting) {
        // Being replaced for a new volume size: wait for it to go.
        return Plan::new(Vec::new(), Requeue::After(Duration::from_secs(1)));
    }
    let valid = match valid {
        Ok(v) => v,
        Err(errors) => return refuse(kc, &errors),
    };
    let scale_active = kc
        .status
        .as_ref()
        .and_then(|s| s.scaling.as_ref())
        .is_some_and(scale::active);
    if let (Volumes::Grow { bytes }, false) = (valid.volumes, scale_active) {
        return grow_volumes(facts, &valid, bytes);
    }
    run(facts, &valid, inputs)
}

/// A refused spec: status and (once per generation) an Event; nothing that runs changes.
fn refuse(kc: &KafkaCluster, errors: &[Invalid]) -> Plan {
    let mut writes = Vec::new();
    let recorded = kc.status.as_ref();
    if recorded.and_then(|s| s.phase.as_deref()) != Some(Phase::Invalid.as_str())
        || recorded.and_then(|s| s.observed_generation) != kc.metadata.generation
    {
        writes.push(Write::Event(Event::new(
            Reason::InvalidSpec,
            validate::messages(errors),
        )));
    }
    writes.push(Write::Status(Box::new(status::invalid_status(kc, errors))));
    Plan::new(writes, Requeue::OnChange)
}

/// A larger `storage.size`: grow every claim smaller than it (claims grown
/// outside the operator are left as they are), then replace the StatefulSet.
fn grow_volumes(facts: &Facts, valid: &ValidCluster, bytes: u64) -> Plan {
    let size = valid.cluster.spec.storage.size.clone();
    let mut writes: Vec<Write> = facts
        .claims
        .iter()
        .filter(|c| c.bytes < bytes)
        .map(|c| Write::GrowClaim {
            claim: c.name.clone(),
            size: size.clone(),
        })
        .collect();
    writes.push(Write::Event(Event::new(
        Reason::VolumesGrown,
        format!("volumes grown to {size}; recreating the StatefulSet (its pods keep running)"),
    )));
    writes.push(Write::ReplaceStatefulSet);
    Plan::new(writes, Requeue::After(Duration::from_secs(1)))
}

/// A runnable cluster: the next scaling step, dynamic configs, the next roll
/// step, the desired objects, and status.
fn run(facts: &Facts, valid: &ValidCluster, inputs: &Inputs) -> Plan {
    let kc = valid.cluster;
    let names = &facts.names;
    let observed = &facts.observed;
    let current = facts.current_replicas();
    let previous = kc.status.as_ref().and_then(|s| s.scaling.clone());
    let pods: Vec<(i32, bool)> = observed.pods.iter().map(|p| (p.0, p.2)).collect();
    let claims: Vec<i32> = facts
        .claims
        .iter()
        .filter(|c| !c.deleting)
        .filter_map(|c| c.ordinal)
        .collect();
    let decision = scale::decide(&scale::Input {
        target: valid.replicas,
        generation: kc.metadata.generation.unwrap_or(0),
        statefulset: current,
        pods: &pods,
        brokers: observed.view.as_ref(),
        claims: &claims,
        delete_claims: valid.delete_claims_when_scaled,
        max_moves_in_flight: valid.max_moves_in_flight,
        throttle: valid.throttle,
        cancel: valid.cancel_scaling,
        previous: previous.as_ref(),
        now: inputs.now,
        stall_after: inputs.stall_after,
    });
    let status_of = |decision: &scale::Decision| {
        status::next_status(
            kc,
            observed,
            decision.statefulset_replicas,
            decision.status.clone(),
            names.bootstrap_servers(),
            build::cluster_id(kc),
            names.selector_string(),
        )
    };
    let mut writes = Vec::new();
    if decision.statefulset_replicas > current.unwrap_or(valid.replicas) {
        writes.push(Write::Status(Box::new(status_of(&decision))));
    }
    writes.extend(decision.event.clone().map(Write::Event));
    writes.extend(decision.steps.iter().cloned().map(Write::Scale));
    let scaling_active = decision.status.as_ref().is_some_and(scale::active);
    if let Some(current) = &facts.broker_configs {
        let ops = dynamic_config_ops(kc, current, scaling_active);
        if !ops.is_empty() {
            writes.push(Write::AlterBrokerConfigs(ops));
        }
    }

    // A rolling restart, when no scale is under way.
    let roll = if scaling_active {
        kc.status.as_ref().and_then(|s| s.roll.clone())
    } else {
        let previous = kc.status.as_ref().and_then(|s| s.roll.clone());
        let update_revision = facts.statefulset.as_ref().and_then(|s| s.update_revision.as_deref());
        let pods: Vec<roll::PodState> = observed.revisions.values().cloned().collect();
        if roll::due(previous.as_ref(), update_revision, &pods) {
            let rf = facts.roll.clone().unwrap_or_default();
            let d = roll::decide(&roll::Input {
                pods: &pods,
                update_revision,
                replicas: decision.statefulset_replicas,
                brokers: observed.view.as_ref(),
                min_isr: &rf.min_isr,
                quorum_leader: rf.quorum_leader,
                allow_unavailable: &kc.spec.rolling_update.allow_unavailable_topics,
                previous: previous.as_ref(),
            });
            writes.extend(d.event.map(Write::Event));
            writes.extend(d.delete_pod.map(Write::RestartBroker));
            if d.elect_preferred {
                writes.push(Write::Scale(scale::Step::ElectPreferredLeaders));
            }
            d.status
        } else {
            previous
        }
    };

    // The desired objects under one field manager; owned ones no longer built go.
    let mut desired = build::build(kc, inputs.settings);
    set_replicas(&mut desired.statefulset, decision.statefulset_replicas);
    let objects = desired.objects();
    let built = |kind: OwnedKind, name: &str| {
        objects
            .iter()
            .any(|o| o["kind"] == kind.as_str() && o["metadata"]["name"] == name)
    };
    let deletes: Vec<Write> = facts
        .owned
        .iter()
        .filter(|o| !built(o.kind, &o.name))
        .map(|o| Write::Delete {
            kind: o.kind,
            name: o.name.clone(),
        })
        .collect();
    writes.extend(objects.into_iter().map(Write::Apply));
    writes.extend(deletes);

    let mut st = status_of(&decision);
    status::with_roll(&mut st, roll, kc.metadata.generation);
    let old_phase = kc.status.as_ref().and_then(|s| s.phase.clone());
    if st.phase != old_phase {
        let phase = st.phase.as_deref().and_then(Phase::parse).unwrap_or(Phase::Reconciling);
        let note = st
            .conditions
            .iter()
            .find(|c| c.status == "True" && c.type_ != "Ready")
            .or_else(|| st.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        writes.push(Write::Event(Event::new(
            Reason::Phase(phase),
            format!(
                "phase {} -> {}: {note}",
                old_phase.as_deref().unwrap_or("-"),
                phase.as_str()
            ),
        )));
    }
    let settled = st.phase.as_deref() == Some(Phase::Ready.as_str())
        && !st.scaling.as_ref().is_some_and(scale::active)
        && st.roll.as_ref().is_none_or(|r| r.phase == roll::COMPLETED);
    writes.push(Write::Status(Box::new(st)));
    Plan {
        writes,
        requeue: Requeue::After(Duration::from_secs(if settled { 60 } else { 5 })),
        plan_id: decision.status.as_ref().map(|s| s.plan_id.clone()).unwrap_or_default(),
        scaling: decision.status,
    }
}

fn set_replicas(sts: &mut StatefulSet, replicas: i32) {
    if let Some(spec) = sts.spec.as_mut() {
        spec.replicas = Some(replicas);
    }
}

/// The brokers' dynamic keys of `spec.config` as cluster-wide dynamic defaults,
/// and removals of the ones the spec no longer has (the replication throttle is
/// the scale's while one is under way).
fn dynamic_config_ops(
    kc: &KafkaCluster,
    current: &std::collections::BTreeMap<String, String>,
    scaling: bool,
) -> Vec<AlterOp> {
    let throttle = |k: &str| k.ends_with(".replication.throttled.rate");
    let mut ops = Vec::new();
    for key in skein_broker::config::DYNAMIC_BROKER_CONFIGS {
        if scaling && throttle(key) {
            continue;
        }
        match (kc.spec.config.get(*key), current.get(*key)) {
            (Some(want), have) if have != Some(want) => ops.push(AlterOp::Set(key.to_string(), want.clone())),
            (None, Some(_)) => ops.push(AlterOp::Delete(key.to_string())),
            _ => {}
        }
    }
    ops
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::build::tests::fixture;
    use crate::cluster::build::Names;
    use crate::cluster::facts::{Claim, Owned, StatefulSetFacts};
    use crate::cluster::scale::BrokerView;
    use crate::cluster::status::Observed;

    /// A running cluster of `running` ready brokers whose spec asks for `spec`.
    pub(crate) fn facts(running: i32, spec: i32) -> Facts {
        let mut kc = fixture();
        kc.spec.replicas = spec;
        kc.metadata.generation = Some(2);
        let names = Names::new(&kc, "cluster.local");
        let mut f = Facts::of(kc, names);
        f.statefulset = Some(StatefulSetFacts {
            replicas: Some(running),
            update_revision: Some("r1".into()),
            claim_size: Some("20Gi".into()),
            deleting: false,
        });
        f.observed = Observed {
            pods: (0..running).map(|i| (i, format!("demo-{i}"), true)).collect(),
            registered: Some((0..running).collect()),
            view: Some(BrokerView {
                registered: (0..running).map(|i| (i, false)).collect(),
                ..Default::default()
            }),
            revisions: (0..running)
                .map(|i| {
                    let pod = roll::PodState {
                        ordinal: i,
                        ready: true,
                        terminating: false,
                        revision: Some("r1".into()),
                    };
                    (i, pod)
                })
                .collect(),
            partitions: None,
        };
        f.claims = (0..running)
            .map(|i| Claim {
                name: format!("data-demo-{i}"),
                ordinal: Some(i),
                bytes: 20 << 30,
                deleting: false,
            })
            .collect();
        f
    }

    pub(crate) fn plan_of(f: &Facts) -> Plan {
        let settings = Settings::default();
        let inputs = Inputs {
            settings: &settings,
            now: jiff::Timestamp::UNIX_EPOCH,
            stall_after: jiff::SignedDuration::from_secs(600),
        };
        decide(f, validate(f), &inputs)
    }

    fn position(plan: &Plan, what: impl Fn(&Write) -> bool) -> Option<usize> {
        plan.writes.iter().position(what)
    }

    fn statefulset_replicas(w: &Write) -> Option<i64> {
        match w {
            Write::Apply(o) if o["kind"] == "StatefulSet" => o["spec"]["replicas"].as_i64(),
            _ => None,
        }
    }

    #[test]
    fn status_is_recorded_before_the_statefulset_grows() {
        let plan = plan_of(&facts(3, 4));
        let status = position(&plan, |w| matches!(w, Write::Status(_))).expect("a status write");
        let grow = position(&plan, |w| statefulset_replicas(w) == Some(4)).expect("the StatefulSet grows");
        assert!(status < grow, "{:?}", plan.writes);
        let Write::Status(first) = &plan.writes[status] else {
            unreachable!()
        };
        assert_eq!(first.scaling.as_ref().map(|s| (s.from, s.to)), Some((3, 4)));
    }

    #[test]
    fn a_steady_cluster_applies_its_objects_and_ends_with_status() {
        let plan = plan_of(&facts(3, 3));
        assert!(
            matches!(plan.writes.last(), Some(Write::Status(_))),
            "{:?}",
            plan.writes
        );
        let applied: Vec<&str> = plan
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Apply(o) => o["kind"].as_str(),
                _ => None,
            })
            .collect();
        assert_eq!(
            applied,
            [
                "ServiceAccount",
                "Service",
                "Service",
                "ConfigMap",
                "StatefulSet",
                "PodDisruptionBudget"
            ]
        );
        assert_eq!(plan.writes.iter().filter(|w| matches!(w, Write::Status(_))).count(), 1);
        assert!(!plan
            .writes
            .iter()
            .any(|w| matches!(w, Write::Scale(_) | Write::RestartBroker(_))));
    }

    #[test]
    fn a_refused_spec_changes_nothing_and_says_so_once_per_generation() {
        let mut f = facts(3, 3);
        f.cluster
            .spec
            .config
            .insert("listeners".into(), "PLAINTEXT://:1".into());
        let plan = plan_of(&f);
        assert_eq!(plan.requeue, Requeue::OnChange);
        let Some(Write::Event(ev)) = plan.writes.first() else {
            panic!("{:?}", plan.writes)
        };
        assert_eq!(ev.reason, Reason::InvalidSpec);
        let Some(Write::Status(st)) = plan.writes.last() else {
            panic!("{:?}", plan.writes)
        };
        assert_eq!(st.phase.as_deref(), Some("Invalid"));
        assert_eq!(plan.writes.len(), 2);
        // Recorded for this generation: no second Event.
        f.cluster.status = Some((**st).clone());
        assert_eq!(plan_of(&f).writes.len(), 1);
    }

    #[test]
    fn a_paused_cluster_only_records_that_it_is_paused() {
        let mut f = facts(3, 4);
        f.paused = true;
        let plan = plan_of(&f);
        let [Write::Status(st)] = &plan.writes[..] else {
            panic!("{:?}", plan.writes)
        };
        assert_eq!(st.phase.as_deref(), Some("Paused"));
    }

    #[test]
    fn a_statefulset_being_replaced_is_waited_for() {
        let mut f = facts(3, 3);
        f.statefulset.as_mut().unwrap().deleting = true;
        let plan = plan_of(&f);
        assert!(plan.writes.is_empty());
        assert_eq!(plan.requeue, Requeue::After(Duration::from_secs(1)));
    }

    #[test]
    fn a_larger_volume_grows_the_smaller_claims_then_replaces_the_statefulset() {
        let mut f = facts(3, 3);
        f.cluster.spec.storage.size = "30Gi".into();
        f.claims[1].bytes = 30 << 30; // grown by hand: left alone
        let plan = plan_of(&f);
        let grown: Vec<&str> = plan
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::GrowClaim { claim, .. } => Some(claim.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(grown, ["data-demo-0", "data-demo-2"]);
        assert_eq!(plan.writes.last(), Some(&Write::ReplaceStatefulSet));
    }

    #[test]
    fn a_smaller_volume_is_refused() {
        let mut f = facts(3, 3);
        f.cluster.spec.storage.size = "10Gi".into();
        let errors = validate(&f).unwrap_err();
        assert!(matches!(errors[..], [Invalid::VolumesShrink { .. }]), "{errors:?}");
    }

    #[test]
    fn owned_objects_the_spec_no_longer_builds_are_deleted_after_the_applies() {
        let mut f = facts(3, 3);
        f.owned = vec![
            Owned {
                kind: OwnedKind::Service,
                name: "demo-brokers".into(),
            },
            Owned {
                kind: OwnedKind::Service,
                name: "demo-external-0".into(),
            },
        ];
        let plan = plan_of(&f);
        let deletes: Vec<&Write> = plan
            .writes
            .iter()
            .filter(|w| matches!(w, Write::Delete { .. }))
            .collect();
        assert_eq!(
            deletes,
            [&Write::Delete {
                kind: OwnedKind::Service,
                name: "demo-external-0".into()
            }]
        );
        let last_apply = plan.writes.iter().rposition(|w| matches!(w, Write::Apply(_))).unwrap();
        assert!(position(&plan, |w| matches!(w, Write::Delete { .. })).unwrap() > last_apply);
    }

    #[test]
    fn an_outdated_pod_is_restarted_and_its_event_comes_first() {
        let mut f = facts(3, 3);
        f.statefulset.as_mut().unwrap().update_revision = Some("r2".into());
        f.roll = Some(Default::default());
        let plan = plan_of(&f);
        let restart = position(&plan, |w| matches!(w, Write::RestartBroker(_))).expect("a restart");
        let event = position(&plan, |w| matches!(w, Write::Event(e) if e.reason == Reason::Rolling)).unwrap();
        assert!(event < restart, "{:?}", plan.writes);
    }

    #[test]
    fn dynamic_configs_follow_the_spec() {
        let mut f = facts(3, 3);
        f.cluster
            .spec
            .config
            .insert("unclean.leader.election.enable".into(), "true".into());
        f.broker_configs = Some([("follower.replication.throttled.rate".to_string(), "9".to_string())].into());
        let plan = plan_of(&f);
        let ops = plan.writes.iter().find_map(|w| match w {
            Write::AlterBrokerConfigs(ops) => Some(ops.clone()),
            _ => None,
        });
        let ops = ops.expect("configs altered");
        assert_eq!(
            ops,
            [
                AlterOp::Delete("follower.replication.throttled.rate".into()),
                AlterOp::Set("unclean.leader.election.enable".into(), "true".into()),
            ]
        );
    }
}
