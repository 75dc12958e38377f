//! Decide: from the facts and the validated spec, every write of one reconcile,
//! in the order `execute` must make them. Pure: the clock comes in as `now`.
//!
//! The order is part of the decision and tested here: status is recorded
//! before the StatefulSet grows (a restarted operator then knows the new
//! brokers are a scale-up whose partitions must move), Events precede the
//! write they announce, and the final status is the last write.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use skein_client::AlterOp;

use super::build::{self, Names, Settings};
use super::events::{Event, Phase, Reason};
use super::facts::{Facts, OwnedKind};
use super::listeners::{self, SecretNames, OPERATOR_LEAF};
use super::validate::{self, Invalid, ValidCluster, Volumes};
use super::{quorum, roll, scale, status};
use crate::certificates::issue::{self as certs_issue, Usage};
use crate::certificates::material::{Material, Provided, FORCE_RENEW};
use crate::certificates::plan::{self as certs, Policy, Step as CertStep};
use crate::crd::{CaSpec, CaStatus};
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
    /// Carries out a CA's certificate steps and writes its Secrets.
    Certificates(Box<CertificateWrite>),
    /// Adds or removes one voter of the metadata quorum.
    Voter(quorum::VoterStep),
}

/// One CA's certificate steps, with everything `execute` needs to take them.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateWrite {
    /// The CA's Secrets as read.
    pub material: Material,
    pub steps: Vec<CertStep>,
    /// The leaves that should exist, with what each is for.
    pub wanted: BTreeMap<String, Usage>,
    /// Each leaf's subject common name.
    pub common_names: BTreeMap<String, String>,
    pub policy: Policy,
    /// The key Secret, the trust bundle Secret, and the leaves' Secret (if it has leaves).
    pub key_secret: String,
    pub cert_secret: String,
    pub leaves_secret: Option<String>,
    /// The `skein.dev/force-renew` value handled once this is done.
    pub force_renew: Option<String>,
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
    /// How long a Secret change takes to reach every pod (and be reloaded).
    pub propagation: jiff::SignedDuration,
}

/// Validates the spec of the observed cluster.
pub fn validate(facts: &Facts) -> Result<ValidCluster<'_>, Vec<Invalid>> {
    let kc = &facts.cluster;
    let volume_size = facts.statefulset.as_ref().and_then(|s| s.claim_size.as_deref());
    validate::validate(kc, volume_size)
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
    let mut decision = scale::decide(&scale::Input {
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
    // Certificates first: pods cannot start without them.
    let mut writes = Vec::new();
    let mut next_check = None;
    let mut authorities = Vec::new();
    if let Some(certs) = &facts.certificates {
        let brokers = current.unwrap_or(0).max(valid.replicas);
        for (write, check, status) in certificate_writes(kc, names, certs, brokers, inputs) {
            writes.extend(write);
            next_check = next_check.into_iter().chain(check).min();
            authorities.push(status);
        }
    }
    if decision.statefulset_replicas > current.unwrap_or(valid.replicas) {
        writes.push(Write::Status(Box::new(status_of(&decision))));
    }
    // The quorum's voters toward spec.controllers, one change per reconcile.
    let voters = facts.quorum.as_ref().map(|q| {
        let ready = observed.pods.iter().filter(|p| p.2).map(|p| p.0).collect();
        let previous = kc
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Voters"));
        quorum::decide(kc.spec.controllers, q, &ready, previous, kc.metadata.generation)
    });
    if let Some(v) = &voters {
        writes.extend(v.event.clone().map(Write::Event));
        writes.extend(v.step.map(Write::Voter));
        // A broker leaves only once it no longer votes.
        if let Some(highest) = v.voters.iter().max() {
            let keep = (*highest + 1).min(current.unwrap_or(0));
            if decision.statefulset_replicas < keep {
                decision.statefulset_replicas = keep;
            }
        }
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
    if decision.statefulset_replicas > kc.spec.replicas {
        // Brokers still draining keep their external Services.
        desired.external_services = build::external_services(kc, names, decision.statefulset_replicas);
    }
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

    let voters_settled = voters.as_ref().is_none_or(|v| v.condition.status == "True");
    let mut st = status_of(&decision);
    if let Some(v) = voters {
        crate::crd::set_condition(&mut st.conditions, v.condition);
        st.voters = Some(v.voters);
    }
    st.certificate_authorities = authorities;
    st.listeners = super::init::listener_status(kc, names, &facts.external);
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
        && st.roll.as_ref().is_none_or(|r| r.phase == roll::COMPLETED)
        && voters_settled;
    writes.push(Write::Status(Box::new(st)));
    let mut requeue = Duration::from_secs(if settled { 60 } else { 5 });
    if let Some(t) = next_check {
        // A renewal or a propagation wait falls due: look again then.
        let wait = t.duration_since(inputs.now).unsigned_abs().max(Duration::from_secs(1));
        requeue = requeue.min(wait);
    }
    Plan {
        writes,
        requeue: Requeue::After(requeue),
        plan_id: decision.status.as_ref().map(|s| s.plan_id.clone()).unwrap_or_default(),
        scaling: decision.status,
    }
}

/// The certificate steps of both CAs (with their Events), and when each next falls due.
fn certificate_writes(
    kc: &KafkaCluster,
    names: &Names,
    certs: &super::facts::CertificateFacts,
    brokers: i32,
    inputs: &Inputs,
) -> Vec<(Vec<Write>, Option<jiff::Timestamp>, CaStatus)> {
    let secrets = SecretNames::new(names);
    let force = kc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FORCE_RENEW))
        .cloned();
    let broker_cn = listeners::broker_common_name(names);
    let mut cluster_wanted: BTreeMap<String, Usage> = (0..brokers)
        .map(|o| {
            let usage = Usage::Broker {
                dns_names: listeners::broker_dns_names(kc, names, o),
            };
            (names.pod(o), usage)
        })
        .collect();
    cluster_wanted.insert(OPERATOR_LEAF.into(), Usage::Client);
    let cluster_names = cluster_wanted
        .keys()
        .map(|l| {
            let cn = if l == OPERATOR_LEAF {
                listeners::operator_common_name(names)
            } else {
                broker_cn.clone()
            };
            (l.clone(), cn)
        })
        .collect();
    let spec = &kc.spec.certificates;
    [
        (
            "cluster",
            &certs.cluster_ca,
            &spec.cluster_ca,
            cluster_wanted,
            cluster_names,
            &secrets.cluster_ca,
            &secrets.cluster_ca_cert,
            Some(secrets.brokers.clone()),
        ),
        (
            "clients",
            &certs.clients_ca,
            &spec.clients_ca,
            BTreeMap::new(),
            BTreeMap::new(),
            &secrets.clients_ca,
            &secrets.clients_ca_cert,
            None,
        ),
    ]
    .into_iter()
    .map(|(what, material, ca, wanted, common_names, key, cert, leaves)| {
        let policy = policy(ca, inputs.propagation);
        if let Some(Provided::Unusable(why)) = &material.provided {
            // Nothing is signed with a CA that is not there; what runs keeps running.
            let status = CaStatus {
                name: what.into(),
                phase: "Unusable".into(),
                generations: material.cas.keys().copied().collect(),
                not_after: material
                    .cas
                    .values()
                    .next_back()
                    .and_then(|c| certs_issue::read(&c.cert_pem).ok())
                    .map(|r| r.not_after.to_string()),
            };
            let event = Event::new(Reason::CaUnusable, format!("{what} CA (generate: false): {why}"));
            let retry = inputs.now + jiff::SignedDuration::from_secs(10);
            return (vec![Write::Event(event)], Some(retry), status);
        }
        let forced = force.is_some() && force != material.force_renew_handled;
        let state = material.state(&wanted, forced);
        let d = certs::decide(&state, &policy, inputs.now);
        let mut generations: Vec<u32> = state.cas.iter().map(|c| c.generation).collect();
        let mut not_after = state.cas.last().map(|c| c.not_after);
        for step in &d.steps {
            match step {
                CertStep::CreateCa | CertStep::AddCa { .. } => {
                    generations.push(generations.last().map_or(1, |g| g + 1));
                    not_after = Some(match &material.provided {
                        Some(Provided::Ca(p)) => certs_issue::read(&p.cert_pem)
                            .map(|r| r.not_after)
                            .unwrap_or(inputs.now),
                        _ => inputs.now + policy.ca_validity,
                    });
                }
                CertStep::DropCa { generation } => generations.retain(|g| g != generation),
                _ => {}
            }
        }
        let status = CaStatus {
            name: what.into(),
            phase: d.phase.as_str().into(),
            generations,
            not_after: not_after.map(|t| t.to_string()),
        };
        let mut writes = Vec::new();
        for step in &d.steps {
            let event = match step {
                CertStep::AddCa { generation } => Some(Event::new(
                    Reason::CaReplacing,
                    match &ca.secret_name {
                        Some(secret) if !ca.generate => format!("{what} CA: the new CA in Secret {secret} (generation {generation}) joins the trust bundle; certificates move to it once the bundle has reached every pod"),
                        _ => format!("{what} CA: a new key (generation {generation}) joins the trust bundle; certificates move to it once the bundle has reached every pod"),
                    },
                )),
                CertStep::DropCa { generation } => Some(Event::new(
                    Reason::CaReplaced,
                    format!("{what} CA: every certificate is the new key's; generation {generation} leaves the trust bundle"),
                )),
                _ => None,
            };
            writes.extend(event.map(Write::Event));
        }
        // A force-renew that comes while a replacement is under way is that
        // replacement's: recorded as handled, so it does not start another.
        let absorbed = forced && state.cas.len() > 1;
        if !d.steps.is_empty() || absorbed {
            writes.push(Write::Certificates(Box::new(CertificateWrite {
                material: material.clone(),
                steps: d.steps,
                wanted,
                common_names,
                policy,
                key_secret: key.clone(),
                cert_secret: cert.clone(),
                leaves_secret: leaves,
                force_renew: if forced {
                    force.clone()
                } else {
                    material.force_renew_handled.clone()
                },
            })));
        }
        (writes, d.next_check, status)
    })
    .collect()
}

/// A CA spec as the certificate plan takes it: leaves live as long as their CA.
fn policy(ca: &CaSpec, propagation: jiff::SignedDuration) -> Policy {
    let days = |d: i32| jiff::SignedDuration::from_hours(24 * i64::from(d));
    Policy {
        ca_validity: days(ca.validity_days),
        ca_renewal: days(ca.renewal_days),
        leaf_validity: days(ca.validity_days),
        leaf_renewal: days(ca.renewal_days),
        propagation,
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
            nodes: Default::default(),
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
            propagation: jiff::SignedDuration::from_secs(180),
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
    fn a_draining_broker_keeps_its_external_service_until_it_leaves() {
        use crate::crd::{ListenerSpec, ListenerType};
        let mut f = facts(4, 3);
        f.cluster.spec.listeners = vec![ListenerSpec {
            name: "ext".into(),
            port: 9094,
            type_: ListenerType::Nodeport,
            tls: false,
            authentication: None,
            network_policy_peers: Vec::new(),
            configuration: Default::default(),
        }];
        // Broker 3 still holds a replica: it drains before it stops.
        if let Some(view) = f.observed.view.as_mut() {
            view.assignments.insert("t".into(), vec![vec![3, 0]]);
            view.leaders.insert(("t".into(), 0), 3);
            view.isr.insert(("t".into(), 0), vec![3, 0]);
        }
        let plan = plan_of(&f);
        let services: Vec<&str> = plan
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Apply(o) if o["kind"] == "Service" => o["metadata"]["name"].as_str(),
                _ => None,
            })
            .collect();
        assert!(
            plan.writes.iter().any(|w| statefulset_replicas(w) == Some(4)),
            "{:?}",
            plan.writes
        );
        assert!(services.contains(&"demo-3-ext"), "{services:?}");
        assert!(services.contains(&"demo-ext-bootstrap"), "{services:?}");
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

    /// `facts(running, spec)` with a TLS + SCRAM listener and no Secrets yet.
    pub(crate) fn secured_facts(running: i32, spec: i32) -> Facts {
        use crate::crd::{AuthenticationType, ListenerAuthentication, ListenerSpec, ListenerType};
        let mut f = facts(running, spec);
        f.cluster.spec.listeners = vec![ListenerSpec {
            name: "tls".into(),
            port: 9094,
            type_: ListenerType::Internal,
            tls: true,
            authentication: Some(ListenerAuthentication {
                type_: AuthenticationType::ScramSha512,
            }),
            network_policy_peers: Vec::new(),
            configuration: Default::default(),
        }];
        f.names = Names::new(&f.cluster, "cluster.local");
        let material = |name: &str| Material {
            name: name.into(),
            ..Default::default()
        };
        f.certificates = Some(super::super::facts::CertificateFacts {
            cluster_ca: material("demo-cluster-ca"),
            clients_ca: material("demo-clients-ca"),
        });
        f
    }

    #[test]
    fn a_secured_cluster_gets_its_certificates_before_anything_is_applied() {
        let plan = plan_of(&secured_facts(3, 3));
        let Some(Write::Certificates(cluster)) = plan.writes.first() else {
            panic!("{:?}", plan.writes)
        };
        assert_eq!(cluster.steps[0], CertStep::CreateCa);
        let Some(Write::Status(st)) = plan.writes.last() else {
            panic!()
        };
        let phases: Vec<(&str, &str, &[u32])> = st
            .certificate_authorities
            .iter()
            .map(|c| (c.name.as_str(), c.phase.as_str(), &c.generations[..]))
            .collect();
        assert_eq!(
            phases,
            [("cluster", "Creating", &[1][..]), ("clients", "Creating", &[1][..])]
        );
        let mut leaves: Vec<&str> = cluster.wanted.keys().map(String::as_str).collect();
        leaves.sort();
        assert_eq!(leaves, ["demo-0", "demo-1", "demo-2", "operator"]);
        assert_eq!(cluster.common_names["demo-1"], "demo-broker");
        assert_eq!(cluster.leaves_secret.as_deref(), Some("demo-brokers"));
        let Some(Write::Certificates(clients)) = plan.writes.get(1) else {
            panic!("{:?}", plan.writes)
        };
        assert_eq!(
            (clients.key_secret.as_str(), clients.steps.len()),
            ("demo-clients-ca", 1)
        );
        let first_apply = position(&plan, |w| matches!(w, Write::Apply(_))).unwrap();
        assert!(first_apply > 1);
        let sts = plan
            .writes
            .iter()
            .find_map(|w| match w {
                Write::Apply(o) if o["kind"] == "StatefulSet" => Some(o.clone()),
                _ => None,
            })
            .unwrap();
        let volumes = sts["spec"]["template"]["spec"]["volumes"].to_string();
        for secret in ["demo-brokers", "demo-cluster-ca-cert", "demo-clients-ca-cert"] {
            assert!(volumes.contains(secret), "{secret}: {volumes}");
        }
        // The key material is never in a printed plan.
        assert!(!format!("{plan:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_secured_cluster_with_its_certificates_in_place_writes_none() {
        use crate::certificates::issue::Usage;
        let mut f = secured_facts(3, 3);
        let plan = plan_of(&f);
        let Some(Write::Certificates(w)) = plan.writes.first().cloned() else {
            panic!()
        };
        let mut m = w.material.clone();
        let cn = |l: &str| w.common_names[l].clone();
        let wanted: BTreeMap<String, Usage> = w.wanted.clone();
        m.apply(&w.steps, &wanted, &cn, &w.policy, jiff::Timestamp::UNIX_EPOCH)
            .unwrap();
        f.certificates.as_mut().unwrap().cluster_ca = m;
        let mut clients = f.certificates.as_ref().unwrap().clients_ca.clone();
        clients
            .apply(
                &[CertStep::CreateCa],
                &BTreeMap::new(),
                &cn,
                &w.policy,
                jiff::Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        f.certificates.as_mut().unwrap().clients_ca = clients;
        let plan = plan_of(&f);
        assert!(
            !plan.writes.iter().any(|w| matches!(w, Write::Certificates(_))),
            "{:?}",
            plan.writes
        );
    }

    #[test]
    fn a_force_renew_during_a_replacement_is_that_replacement_s() {
        let mut f = secured_facts(3, 3);
        let policy = policy(&CaSpec::default(), jiff::SignedDuration::from_secs(180));
        let now = jiff::Timestamp::UNIX_EPOCH;
        let cn = |_: &str| "x".to_string();
        let certs = f.certificates.as_mut().unwrap();
        for ca in [&mut certs.cluster_ca, &mut certs.clients_ca] {
            ca.apply(
                &[CertStep::CreateCa, CertStep::AddCa { generation: 2 }],
                &BTreeMap::new(),
                &cn,
                &policy,
                now,
            )
            .unwrap();
        }
        f.cluster
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(FORCE_RENEW.into(), "again".into());
        let plan = plan_of(&f);
        let handled: Vec<(Vec<CertStep>, Option<String>)> = plan
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Certificates(c) => Some((c.steps.clone(), c.force_renew.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(handled.len(), 2, "{handled:?}");
        for (steps, force) in handled {
            assert!(!steps.iter().any(|s| matches!(s, CertStep::AddCa { .. })), "{steps:?}");
            assert_eq!(force.as_deref(), Some("again"));
        }
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
