//! The status of a KafkaCluster from what was observed: pure.

use crate::cluster::events::Phase;
use crate::cluster::validate::{messages, Invalid};
use crate::crd::{condition, set_condition, BrokerStatus, KafkaCluster, KafkaClusterStatus, ScalingStatus};

/// What the reconciler saw of the running cluster.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Broker pods: (ordinal, pod name, ready).
    pub pods: Vec<(i32, String, bool)>,
    /// Per broker id: (partitions led, under-replicated partitions hosted); None when
    /// the brokers could not be asked.
    pub partitions: Option<std::collections::BTreeMap<i32, (i32, i32)>>,
    /// Broker ids registered with the quorum, when known.
    pub registered: Option<Vec<i32>>,
    /// What the brokers reported, when they could be asked.
    pub view: Option<crate::cluster::scale::BrokerView>,
    /// Each pod's revision and state, for rolling restarts.
    pub revisions: std::collections::BTreeMap<i32, crate::cluster::roll::PodState>,
    /// The nodes broker pods are placed on.
    pub nodes: std::collections::BTreeSet<String>,
}

/// Records a rolling restart: status.roll, the RollingUpdate condition, and
/// phase Rolling while it runs (a broker down for its restart is the roll's, not a fault).
pub fn with_roll(st: &mut KafkaClusterStatus, roll: Option<crate::crd::RollStatus>, generation: Option<i64>) {
    use crate::cluster::roll::{BLOCKED, COMPLETED};
    let (active, reason, message) = match &roll {
        Some(r) if r.phase == BLOCKED => (false, "RollBlocked", r.message.clone()),
        Some(r) if r.phase != COMPLETED => (true, r.phase.as_str(), r.message.clone()),
        Some(r) => (false, "Completed", format!("brokers {:?} restarted", r.restarted)),
        None => (false, "UpToDate", String::new()),
    };
    set_condition(
        &mut st.conditions,
        condition("RollingUpdate", active, reason, message, generation),
    );
    if active
        && matches!(
            st.phase.as_deref().and_then(Phase::parse),
            Some(Phase::Ready | Phase::Degraded | Phase::Reconciling)
        )
    {
        st.phase = Some(Phase::Rolling.as_str().into());
    }
    st.roll = roll;
}

/// The next status: phase, the four conditions, counts and per-broker rows.
/// `want` is the brokers the StatefulSet runs now (during a scale-down, more
/// than `spec.replicas` until the drain is done); `scaling` the change under way.
pub fn next_status(
    kc: &KafkaCluster,
    observed: &Observed,
    want: i32,
    scaling: Option<ScalingStatus>,
    bootstrap: String,
    cluster_id: String,
    selector: String,
) -> KafkaClusterStatus {
    let generation = kc.metadata.generation;
    let old = kc.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.observed_generation = generation;
    st.replicas = observed.pods.len() as i32;
    st.ready_replicas = observed.pods.iter().filter(|p| p.2).count() as i32;
    st.selector = Some(selector);
    st.controllers = Some(old.controllers.unwrap_or(kc.spec.controllers));
    st.bootstrap_servers = Some(bootstrap);
    st.cluster_id = Some(cluster_id);
    st.brokers = observed
        .pods
        .iter()
        .map(|(id, pod, ready)| {
            let counts = observed
                .partitions
                .as_ref()
                .map(|m| m.get(id).copied().unwrap_or((0, 0)));
            BrokerStatus {
                id: *id,
                pod: pod.clone(),
                ready: *ready,
                partitions_led: counts.map(|c| c.0),
                under_replicated: counts.map(|c| c.1),
            }
        })
        .collect();

    let under_replicated: i32 = st.brokers.iter().filter_map(|b| b.under_replicated).sum();
    let all_registered = observed
        .registered
        .as_ref()
        .is_none_or(|ids| (0..want).all(|i| ids.contains(&i)));
    let ready = st.ready_replicas == want && st.replicas == want && all_registered;
    let was_up = crate::crd::condition::is_true(&old.conditions, "Ready")
        || crate::crd::condition::is_true(&old.conditions, "Degraded");
    let (phase, degraded_msg) = if ready && under_replicated == 0 {
        (Phase::Ready, String::new())
    } else if ready {
        (
            Phase::Degraded,
            format!("{under_replicated} under-replicated partitions"),
        )
    } else if was_up && ready_among(observed, old.replicas.min(want)) < old.replicas.min(want) {
        // A broker that was up is not: degraded. New brokers of a scale-up are only starting.
        (
            Phase::Degraded,
            format!("{} of {want} brokers ready", st.ready_replicas),
        )
    } else {
        (Phase::Reconciling, String::new())
    };
    let scaling_active = scaling.as_ref().is_some_and(|s| {
        crate::cluster::scale::active(s)
            && s.phase != crate::cluster::scale::REFUSED
            && s.phase != crate::cluster::scale::CANCELLED
    });
    let phase = if scaling_active && phase != Phase::Degraded {
        Phase::Scaling
    } else {
        phase
    };
    let g = generation;
    let ready_msg = format!("{} of {want} brokers ready", st.ready_replicas);
    set_condition(
        &mut st.conditions,
        condition(
            "Ready",
            phase == Phase::Ready,
            if phase == Phase::Ready {
                "AllBrokersReady"
            } else {
                "BrokersNotReady"
            },
            ready_msg,
            g,
        ),
    );
    set_condition(
        &mut st.conditions,
        condition(
            "Degraded",
            phase == Phase::Degraded,
            if phase == Phase::Degraded {
                "BrokersUnavailable"
            } else {
                "AsExpected"
            },
            degraded_msg,
            g,
        ),
    );
    set_condition(
        &mut st.conditions,
        condition(
            "Reconciling",
            phase == Phase::Reconciling,
            if phase == Phase::Reconciling {
                "BrokersStarting"
            } else {
                "Reconciled"
            },
            if phase == Phase::Reconciling {
                format!("waiting for {want} brokers")
            } else {
                String::new()
            },
            g,
        ),
    );
    let (scaling_true, reason, message) = match &scaling {
        Some(s) if s.stalled => (true, "ReassignmentStalled", s.message.clone()),
        Some(s) if s.phase == crate::cluster::scale::REFUSED => (false, "ScaleDownRefused", s.message.clone()),
        Some(s) if s.phase == crate::cluster::scale::CANCELLED => (false, "Cancelled", s.message.clone()),
        Some(s) if crate::cluster::scale::active(s) => (true, s.phase.as_str(), s.message.clone()),
        Some(s) => (false, "Completed", format!("{} -> {} brokers", s.from, s.to)),
        None => (false, "Stable", String::new()),
    };
    set_condition(
        &mut st.conditions,
        condition("Scaling", scaling_true, reason, message, g),
    );
    st.scaling = scaling;
    st.phase = Some(phase.as_str().into());
    st
}

/// Ready pods among ordinals `0..n`.
fn ready_among(observed: &Observed, n: i32) -> i32 {
    observed.pods.iter().filter(|(id, _, ready)| *id < n && *ready).count() as i32
}

/// The status of a spec that cannot be run: nothing was applied.
pub fn invalid_status(kc: &KafkaCluster, errors: &[Invalid]) -> KafkaClusterStatus {
    let mut st = kc.status.clone().unwrap_or_default();
    let g = kc.metadata.generation;
    st.observed_generation = g;
    set_condition(
        &mut st.conditions,
        condition("Ready", false, "InvalidSpec", messages(errors), g),
    );
    set_condition(
        &mut st.conditions,
        condition(
            "Reconciling",
            false,
            "InvalidSpec",
            "the spec is refused; nothing was changed",
            g,
        ),
    );
    st.phase = Some(Phase::Invalid.as_str().into());
    st
}

/// The status of a cluster whose reconciliation is paused by annotation.
pub fn paused_status(kc: &KafkaCluster) -> KafkaClusterStatus {
    let mut st = kc.status.clone().unwrap_or_default();
    let g = kc.metadata.generation;
    set_condition(
        &mut st.conditions,
        condition(
            "Reconciling",
            false,
            "Paused",
            format!("annotation {} is set", super::PAUSE_ANNOTATION),
            g,
        ),
    );
    st.phase = Some(Phase::Paused.as_str().into());
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::build::tests::fixture;

    fn observe(ready: &[bool]) -> Observed {
        Observed {
            pods: ready
                .iter()
                .enumerate()
                .map(|(i, r)| (i as i32, format!("demo-{i}"), *r))
                .collect(),
            partitions: None,
            registered: None,
            view: None,
            revisions: Default::default(),
            nodes: Default::default(),
        }
    }

    fn phase_after(kc: &KafkaCluster, ready: &[bool]) -> KafkaClusterStatus {
        next_status(
            kc,
            &observe(ready),
            kc.spec.replicas,
            None,
            "b:9092".into(),
            "id".into(),
            "s".into(),
        )
    }

    #[test]
    fn a_new_cluster_reconciles_then_is_ready_then_degraded_when_a_broker_goes() {
        let mut kc = fixture();
        kc.metadata.generation = Some(4);
        let st = phase_after(&kc, &[false, false, true]);
        assert_eq!(st.phase.as_deref(), Some("Reconciling"));
        kc.status = Some(st);
        let st = phase_after(&kc, &[true, true, true]);
        assert_eq!(st.phase.as_deref(), Some("Ready"));
        assert!(st.conditions.iter().all(|c| c.observed_generation == Some(4)));
        kc.status = Some(st);
        let st = phase_after(&kc, &[true, true]);
        assert_eq!(st.phase.as_deref(), Some("Degraded"), "{:?}", st.conditions);
        kc.status = Some(st);
        let st = phase_after(&kc, &[true, false, true]);
        assert_eq!(st.phase.as_deref(), Some("Degraded"));
        kc.status = Some(st);
        assert_eq!(phase_after(&kc, &[true, true, true]).phase.as_deref(), Some("Ready"));
    }

    #[test]
    fn under_replicated_partitions_degrade_a_cluster_whose_pods_are_ready() {
        let kc = fixture();
        let mut o = observe(&[true, true, true]);
        o.partitions = Some([(0, (3, 0)), (1, (3, 2)), (2, (3, 0))].into());
        let st = next_status(&kc, &o, kc.spec.replicas, None, "b".into(), "i".into(), "s".into());
        assert_eq!(st.phase.as_deref(), Some("Degraded"));
        assert_eq!(st.brokers[1].under_replicated, Some(2));
        assert_eq!(st.brokers[1].partitions_led, Some(3));
    }

    #[test]
    fn controllers_are_recorded_once() {
        let mut kc = fixture();
        let st = phase_after(&kc, &[true, true, true]);
        assert_eq!(st.controllers, Some(3));
        kc.status = Some(st);
        kc.spec.controllers = 5;
        assert_eq!(phase_after(&kc, &[true]).controllers, Some(3));
    }

    #[test]
    fn a_paused_cluster_says_so_and_keeps_the_rest_of_its_status() {
        let mut kc = fixture();
        kc.status = Some(phase_after(&kc, &[true, true, true]));
        let st = paused_status(&kc);
        assert_eq!(st.phase.as_deref(), Some("Paused"));
        let r = st.conditions.iter().find(|c| c.type_ == "Reconciling").unwrap();
        assert_eq!((r.status.as_str(), r.reason.as_str()), ("False", "Paused"));
        assert_eq!(st.ready_replicas, 3);
    }

    #[test]
    fn an_invalid_spec_sets_ready_false_with_the_reason() {
        let st = invalid_status(&fixture(), &[Invalid::Config("unknown".into())]);
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
        assert!(ready.message.contains("config: unknown"));
    }
}
