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
