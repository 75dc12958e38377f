//! What to do to make a Kafka topic match its Topic resource: pure.

use std::collections::BTreeMap;

use skein_client::AlterOp;

use crate::crd::TopicSpec;

/// The topic as the cluster reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    pub id: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Configs set on the topic itself (source DYNAMIC_TOPIC_CONFIG).
    pub configs: BTreeMap<String, String>,
}

/// One change to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Create,
    AddPartitions(i32),
    AlterConfigs(Vec<AlterOp>),
}

/// The steps and the findings for one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Why the topic cannot be made Ready (Ready=False with this reason), if so.
    pub blocked: Option<(&'static str, String)>,
    /// A replication factor the next step (reassignment) must carry out.
    pub rf_pending: Option<String>,
    /// Config keys changed behind the operator's back (reverted by `steps`).
    pub drift: Vec<String>,
}

/// Checks a spec: the topic name and every config key and value.
pub fn validate(name: &str, spec: &TopicSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = skein_model::topic_name::validate(name) {
        errors.push(format!("topic name {name:?}: {e}"));
    }
    for (k, v) in &spec.config {
        if let Err(e) = skein_model::topic_config::validate_topic_config(k, Some(v)) {
            errors.push(format!("config: {e}"));
        }
    }
    errors
}

/// The plan for `spec` given the topic's current state; `synced` says the operator
/// already brought this generation of the spec to the cluster, so a config
/// difference now is drift rather than a spec change.
pub fn plan(spec: &TopicSpec, current: Option<&Current>, synced: bool) -> Plan {
    let mut plan = Plan::default();
    let Some(cur) = current else {
        plan.steps.push(Step::Create);
        return plan;
    };
    if spec.partitions > cur.partitions {
        plan.steps.push(Step::AddPartitions(spec.partitions));
    } else if spec.partitions < cur.partitions {
        plan.blocked = Some((
            "PartitionDecreaseRefused",
            format!(
                "the topic has {} partitions; Kafka cannot remove partitions (spec asks for {})",
                cur.partitions, spec.partitions
            ),
        ));
    }
    if spec.replication_factor != cur.replication_factor {
        plan.rf_pending = Some(format!(
            "replication factor {} -> {}: waits for partition reassignment",
            cur.replication_factor, spec.replication_factor
        ));
    }
    let mut ops = Vec::new();
    for (k, v) in &spec.config {
        if cur.configs.get(k) != Some(v) {
            ops.push(AlterOp::Set(k.clone(), v.clone()));
        }
    }
    for k in cur.configs.keys() {
        if !spec.config.contains_key(k) {
            ops.push(AlterOp::Delete(k.clone()));
        }
    }
    if !ops.is_empty() {
        if synced {
            plan.drift = ops
                .iter()
                .map(|op| match op {
                    AlterOp::Set(k, _) | AlterOp::Delete(k) | AlterOp::Append(k, _) | AlterOp::Subtract(k, _) => {
                        k.clone()
                    }
                })
                .collect();
        }
        plan.steps.push(Step::AlterConfigs(ops));
    }
    plan
}

/// Partition moves that give a topic `rf` replicas per partition on the
/// classic placement over `brokers`, spread over their racks: the same rule and the same in-flight limit
/// as a scale's reassignments (partitions in flight are left to finish).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RfMoves {
    /// (partition, target replicas) to start now.
    pub start: Vec<(i32, Vec<i32>)>,
    /// Partitions not yet at their target, in flight or waiting.
    pub left: usize,
}

pub fn rf_moves(
    replicas: &[Vec<i32>],
    in_flight: &std::collections::BTreeSet<i32>,
    brokers: &[skein_model::placement::RackedBroker],
    rf: i16,
    max_in_flight: usize,
) -> Result<RfMoves, String> {
    let targets = skein_model::placement::assign_replicas_rack_aware(brokers, 0, replicas.len() as i32, rf)
        .map_err(|e| format!("replication factor {rf}: {e}"))?;
    let mut out = RfMoves::default();
    let mut slots = max_in_flight.max(1).saturating_sub(in_flight.len());
    for (p, (current, target)) in replicas.iter().zip(targets).enumerate() {
        let p = p as i32;
        if in_flight.contains(&p) {
            out.left += 1;
        } else if current != &target {
            out.left += 1;
            if slots > 0 {
                slots -= 1;
                out.start.push((p, target));
            }
        }
    }
    Ok(out)
}

/// Of the Topic resources naming one Kafka topic, the one that manages it: the
/// oldest, then by name. Entries are (creation timestamp as RFC 3339, name).
pub fn owner(claimants: &[(String, String)]) -> Option<&str> {
    claimants.iter().min().map(|(_, name)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DeletionPolicy;

    fn spec(partitions: i32, rf: i16, config: &[(&str, &str)]) -> TopicSpec {
        TopicSpec {
            cluster: "demo".into(),
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            deletion_policy: DeletionPolicy::Delete,
        }
    }

    fn current(partitions: i32, rf: i16, config: &[(&str, &str)]) -> Current {
        Current {
            id: "id".into(),
            partitions,
            replication_factor: rf,
            configs: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn a_missing_topic_is_created() {
        assert_eq!(plan(&spec(3, 3, &[]), None, false).steps, vec![Step::Create]);
    }

    #[test]
    fn an_existing_topic_that_matches_is_adopted_unchanged() {
        let p = plan(
            &spec(3, 3, &[("retention.ms", "1000")]),
            Some(&current(3, 3, &[("retention.ms", "1000")])),
            false,
        );
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn more_partitions_are_added_and_fewer_are_refused() {
        assert_eq!(
            plan(&spec(6, 3, &[]), Some(&current(3, 3, &[])), false).steps,
            vec![Step::AddPartitions(6)]
        );
        let p = plan(&spec(2, 3, &[]), Some(&current(3, 3, &[])), false);
        assert!(p.steps.is_empty());
        assert_eq!(p.blocked.unwrap().0, "PartitionDecreaseRefused");
    }

    #[test]
    fn configs_are_declarative_a_removed_key_goes_back_to_its_default() {
        let p = plan(
            &spec(1, 1, &[("retention.ms", "2000")]),
            Some(&current(
                1,
                1,
                &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
            )),
            false,
        );
        assert_eq!(
            p.steps,
            vec![Step::AlterConfigs(vec![
                AlterOp::Set("retention.ms".into(), "2000".into()),
                AlterOp::Delete("cleanup.policy".into())
            ])]
        );
        assert!(p.drift.is_empty(), "a spec change is not drift");
    }

    #[test]
    fn a_change_behind_the_operators_back_is_drift_and_reverted() {
        let p = plan(
            &spec(1, 1, &[("retention.ms", "2000")]),
            Some(&current(1, 1, &[("retention.ms", "5")])),
            true,
        );
        assert_eq!(p.drift, vec!["retention.ms".to_string()]);
        assert_eq!(
            p.steps,
            vec![Step::AlterConfigs(vec![AlterOp::Set(
                "retention.ms".into(),
                "2000".into()
            )])]
        );
    }

    #[test]
    fn a_replication_factor_change_moves_partitions_by_the_classic_rule_a_few_at_a_time() {
        use std::collections::BTreeSet;
        let brokers = [0, 1, 2, 3];
        let racked = skein_model::placement::unracked(&brokers);
        let now = skein_model::placement::assign_replicas(&brokers, 0, 6, 2).unwrap();
        let m = rf_moves(&now, &BTreeSet::new(), &racked, 3, 4).unwrap();
        assert_eq!(m.left, 6);
        assert_eq!(m.start.len(), 4);
        assert_eq!(m.start[0], (0, vec![0, 1, 2]));
        // Two in flight: two more start; the rest wait.
        let m = rf_moves(&now, &BTreeSet::from([0, 1]), &racked, 3, 4).unwrap();
        assert_eq!(m.start.iter().map(|s| s.0).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(m.left, 6);
        // Done: nothing to move.
        let done = skein_model::placement::assign_replicas(&brokers, 0, 6, 3).unwrap();
        assert_eq!(
            rf_moves(&done, &BTreeSet::new(), &racked, 3, 4).unwrap(),
            RfMoves::default()
        );
        assert!(rf_moves(&done, &BTreeSet::new(), &racked, 5, 4)
            .unwrap_err()
            .contains("replication factor 5"));
    }

    #[test]
    fn a_replication_factor_change_spreads_the_new_replicas_over_racks() {
        use skein_model::placement::RackedBroker;
        // Racks a, a, b, b: the classic rule alone would put partition 0 on 0 and 1.
        let racked: Vec<RackedBroker> = [(0, "a"), (1, "a"), (2, "b"), (3, "b")]
            .iter()
            .map(|(id, r)| RackedBroker {
                id: *id,
                rack: Some(r.to_string()),
            })
            .collect();
        let now = vec![vec![0]; 4];
        let m = rf_moves(&now, &std::collections::BTreeSet::new(), &racked, 2, 8).unwrap();
        for (_, target) in &m.start {
            let racks: std::collections::BTreeSet<bool> = target.iter().map(|b| *b >= 2).collect();
            assert_eq!(racks.len(), 2, "{target:?}");
        }
    }

    #[test]
    fn a_replication_factor_change_is_pending_not_an_error() {
        let p = plan(&spec(1, 3, &[]), Some(&current(1, 1, &[])), true);
        assert!(p.rf_pending.is_some() && p.blocked.is_none() && p.steps.is_empty());
    }

    #[test]
    fn invalid_configs_and_names_are_named() {
        let e = validate("bad name!", &spec(1, 1, &[("no.such", "1"), ("retention.ms", "soon")]));
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn the_oldest_claimant_owns_the_topic() {
        let c = vec![
            ("2026-01-02T00:00:00Z".to_string(), "b".to_string()),
            ("2026-01-01T00:00:00Z".to_string(), "z".to_string()),
            ("2026-01-01T00:00:00Z".to_string(), "c".to_string()),
        ];
        assert_eq!(owner(&c), Some("c"));
    }
}
