//! What a KafkaUser asks of its cluster, and the difference from what the
//! cluster holds: the user name, the ACL bindings, the quotas, the Secret's
//! SCRAM keys, whether a certificate is due. Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use skein_client::AclEntry;

use crate::crd::{AclResourceType, AclRuleType, AuthenticationType, KafkaCluster, KafkaUserSpec, UserQuotas};

/// The resource name Kafka gives the cluster in ACLs.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// The user's name in Kafka: the resource's name in the cluster's namespace,
/// `namespace/name` from another, so two teams' `app` never collide (neither
/// part of a Kubernetes name can hold a `/`).
pub fn username(user_namespace: &str, user_name: &str, cluster_namespace: &str) -> String {
    if user_namespace == cluster_namespace {
        user_name.to_string()
    } else {
        format!("{user_namespace}/{user_name}")
    }
}

/// The principal of a user name: `User:CN=<name>` with a client certificate
/// (the certificate's subject), `User:<name>` otherwise.
pub fn principal(username: &str, tls: bool) -> String {
    if tls {
        format!("User:CN={username}")
    } else {
        format!("User:{username}")
    }
}

/// Both principals a user name can have had (its authentication may change).
pub fn principals(username: &str) -> [String; 2] {
    [principal(username, false), principal(username, true)]
}

/// Why a spec cannot be carried out; empty when it can.
pub fn validate(spec: &KafkaUserSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(a) = &spec.authentication {
        if a.password.is_some() && a.type_ == AuthenticationType::Tls {
            errors.push("authentication.password: only SCRAM users have a password".to_string());
        }
        if let Some(p) = &a.password {
            let r = &p.value_from.secret_key_ref;
            if r.name.is_empty() || r.key.is_empty() {
                errors.push("authentication.password.valueFrom.secretKeyRef: name and key are required".into());
            }
        }
    }
    for (i, rule) in spec.authorization.iter().flat_map(|a| a.acls.iter()).enumerate() {
        let name = rule.resource.name.as_deref().unwrap_or_default();
        if rule.resource.type_ != AclResourceType::Cluster && name.is_empty() {
            errors.push(format!(
                "authorization.acls[{i}].resource.name: required for a {:?} (`*` for all)",
                rule.resource.type_
            ));
        }
        if rule.operations.is_empty() {
            errors.push(format!("authorization.acls[{i}].operations: at least one"));
        }
        if rule.host.is_empty() {
            errors.push(format!("authorization.acls[{i}].host: `*` or an address"));
        }
    }
    errors
}

/// The ACL bindings the spec declares for `principal`, one per operation.
pub fn acls(spec: &KafkaUserSpec, principal: &str) -> BTreeSet<AclEntry> {
    let mut out = BTreeSet::new();
    for rule in spec.authorization.iter().flat_map(|a| a.acls.iter()) {
        let (name, pattern) = match rule.resource.type_ {
            AclResourceType::Cluster => (CLUSTER_RESOURCE.to_string(), "Literal"),
            _ => {
                let name = rule.resource.name.clone().unwrap_or_default();
                // `*` is Kafka's wildcard, a literal name.
                let pattern = if name == "*" {
                    "Literal"
                } else {
                    rule.resource.pattern_type.kafka_name()
                };
                (name, pattern)
            }
        };
        for op in &rule.operations {
            out.insert(AclEntry {
                resource_type: rule.resource.type_.kafka_name().to_string(),
                resource_name: name.clone(),
                pattern_type: pattern.to_string(),
                principal: principal.to_string(),
                host: rule.host.clone(),
                operation: op.kafka_name().to_string(),
                permission: match rule.type_ {
                    AclRuleType::Allow => "Allow",
                    AclRuleType::Deny => "Deny",
                }
                .to_string(),
            });
        }
    }
    out
}

/// ACL bindings to add and to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclDiff {
    pub create: Vec<AclEntry>,
    pub delete: Vec<AclEntry>,
}

impl AclDiff {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// What turns `have` (the bindings of the user's principals) into `want`.
pub fn acl_diff(want: &BTreeSet<AclEntry>, have: &[AclEntry]) -> AclDiff {
    let have: BTreeSet<AclEntry> = have.iter().cloned().collect();
    AclDiff {
        create: want.difference(&have).cloned().collect(),
        delete: have.difference(want).cloned().collect(),
    }
}

/// The quotas by Kafka's keys.
pub fn quotas(q: Option<&UserQuotas>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let Some(q) = q {
        let mut put = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.insert(k.to_string(), v);
            }
        };
        put("producer_byte_rate", q.producer_byte_rate.map(|v| v as f64));
        put("consumer_byte_rate", q.consumer_byte_rate.map(|v| v as f64));
        put("request_percentage", q.request_percentage.map(f64::from));
    }
    out
}

/// AlterClientQuotas operations that turn `have` into `want` (None: remove the key).
pub fn quota_ops(want: &BTreeMap<String, f64>, have: &BTreeMap<String, f64>) -> Vec<(String, Option<f64>)> {
    let mut ops: Vec<(String, Option<f64>)> = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), Some(*v)))
        .collect();
    ops.extend(
        have.keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    ops
}

/// The `sasl.jaas.config` value Java clients take (Strimzi's Secret key).
pub fn jaas_config(username: &str, password: &str) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
        quote(username),
        quote(password)
    )
}

/// Whether a KafkaUser in a namespace with `labels` may belong to the cluster.
/// Its own namespace always may; others only through `spec.userNamespaces`.
pub fn namespace_allowed(
    cluster: &KafkaCluster,
    cluster_namespace: &str,
    user_namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    if user_namespace == cluster_namespace {
        return Ok(true);
    }
    let Some(selector) = &cluster.spec.user_namespaces else {
        return Ok(false);
    };
    selects(selector, labels)
}

fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let s = Selector::try_from(selector.clone()).map_err(|e| format!("spec.userNamespaces: {e}"))?;
    Ok(s.matches(labels))
}

/// Why the cluster cannot authenticate the user, if it cannot: no listener
/// takes the user's kind of credential.
pub fn unsupported_authentication(cluster: &KafkaCluster, spec: &KafkaUserSpec) -> Option<String> {
    let want = spec.authentication.as_ref()?.type_;
    let offered: Vec<AuthenticationType> = cluster
        .spec
        .listeners
        .iter()
        .filter_map(|l| l.authentication.as_ref().map(|a| a.type_))
        .collect();
    let ok = match want {
        AuthenticationType::Tls => offered.contains(&AuthenticationType::Tls),
        // A broker with SCRAM on any listener keeps both mechanisms' credentials;
        // the user logs in on a listener offering its own.
        _ => offered.contains(&want),
    };
    (!ok).then(|| {
        format!(
            "KafkaCluster {} has no listener with authentication {}",
            cluster.metadata.name.clone().unwrap_or_default(),
            match want {
                AuthenticationType::Tls => "tls",
                AuthenticationType::ScramSha512 => "scram-sha-512",
                AuthenticationType::ScramSha256 => "scram-sha-256",
            }
        )
    })
}

/// Whether the cluster runs an authorizer (ACLs mean something).
pub fn has_authorizer(cluster: &KafkaCluster) -> bool {
    cluster.spec.authorization.is_some()
        || cluster
            .spec
            .config
            .get("authorizer.class.name")
            .is_some_and(|c| !c.trim().is_empty())
}

/// A user's certificate as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCertificate {
    /// The generation of the clients CA that signed it.
    pub issuer: u32,
    pub not_after: Timestamp,
    pub subject_matches: bool,
}

/// Whether the user needs a new certificate: none yet, another subject, not
/// from the newest clients CA, or inside the renewal window.
pub fn certificate_due(
    have: Option<&UserCertificate>,
    newest_ca: u32,
    now: Timestamp,
    renewal: SignedDuration,
) -> bool {
    match have {
        None => true,
        Some(c) => !c.subject_matches || c.issuer != newest_ca || c.not_after - renewal <= now,
    }
}

/// The clients CA generation to sign users' certificates with: the newest,
/// once the bundle holding it has had `propagation` to reach every broker;
/// until then the one before it (a certificate the brokers cannot check yet
/// would lock the user out).
pub fn signing_generation(
    generations: &[u32],
    bundle_changed: Option<Timestamp>,
    propagation: SignedDuration,
    now: Timestamp,
) -> Option<u32> {
    let newest = generations.iter().max().copied()?;
    let settled = bundle_changed.is_none_or(|t| t + propagation <= now);
    if settled {
        return Some(newest);
    }
    generations
        .iter()
        .filter(|g| **g < newest)
        .max()
        .copied()
        .or(Some(newest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::KafkaUser;

    fn user(yaml: &str) -> KafkaUserSpec {
        let ku: KafkaUser = serde_yaml::from_str(&format!(
            "apiVersion: skein.dev/v1alpha1\nkind: KafkaUser\nmetadata: {{name: app}}\nspec:\n{yaml}"
        ))
        .expect("a KafkaUser");
        ku.spec
    }

    #[test]
    fn the_charts_example_user_is_valid() {
        let ku: KafkaUser =
            serde_yaml::from_str(include_str!("../../../charts/skein-operator/examples/kafkauser.yaml"))
                .expect("the example parses");
        assert_eq!(validate(&ku.spec), Vec::<String>::new());
        assert_eq!(acls(&ku.spec, "User:orders-app").len(), 4);
    }

    #[test]
    fn users_from_other_namespaces_get_namespaced_names() {
        assert_eq!(username("kafka", "app", "kafka"), "app");
        assert_eq!(username("team-a", "app", "kafka"), "team-a/app");
        assert_ne!(username("team-a", "app", "kafka"), username("team-b", "app", "kafka"));
        assert_eq!(principal("app", true), "User:CN=app");
        assert_eq!(principal("team-a/app", false), "User:team-a/app");
    }

    #[test]
    fn rules_expand_to_one_binding_per_operation_with_kafkas_names() {
        let spec = user(
            "  cluster: c\n  authorization:\n    acls:\n\
             \x20     - resource: {type: topic, name: orders, patternType: prefix}\n        operations: [Read, Describe]\n\
             \x20     - resource: {type: group, name: '*'}\n        operations: [Read]\n        type: deny\n        host: 10.0.0.1\n\
             \x20     - resource: {type: cluster}\n        operations: [IdempotentWrite]\n",
        );
        assert!(validate(&spec).is_empty());
        let got: Vec<String> = acls(&spec, "User:app")
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} {} {} {} {}",
                    a.resource_type, a.resource_name, a.pattern_type, a.principal, a.host, a.operation, a.permission
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "Cluster kafka-cluster Literal User:app * IdempotentWrite Allow",
                "Group * Literal User:app 10.0.0.1 Read Deny",
                "Topic orders Prefixed User:app * Describe Allow",
                "Topic orders Prefixed User:app * Read Allow",
            ]
        );
    }

    #[test]
    fn a_rule_without_a_name_and_a_password_for_a_tls_user_are_refused() {
        let spec = user(
            "  cluster: c\n  authentication:\n    type: tls\n    password: {valueFrom: {secretKeyRef: {name: s, key: k}}}\n\
             \x20 authorization:\n    acls:\n      - resource: {type: topic}\n        operations: [Read]\n",
        );
        let e = validate(&spec);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("only SCRAM") && e[1].contains("resource.name"), "{e:?}");
    }

    #[test]
    fn drift_is_what_differs_both_ways() {
        let spec = user(
            "  cluster: c\n  authorization:\n    acls:\n      - resource: {type: topic, name: t}\n        operations: [Read, Write]\n",
        );
        let want = acls(&spec, "User:app");
        let mut have: Vec<AclEntry> = want.iter().take(1).cloned().collect();
        let mut foreign = have[0].clone();
        foreign.operation = "Delete".into();
        have.push(foreign.clone());
        let d = acl_diff(&want, &have);
        assert_eq!(d.create.len(), 1);
        assert_eq!(d.create[0].operation, "Write");
        assert_eq!(d.delete, vec![foreign]);
        assert!(acl_diff(&want, &want.iter().cloned().collect::<Vec<_>>()).is_empty());
    }

    #[test]
    fn quotas_are_set_changed_and_removed_by_kafkas_keys() {
        let want = quotas(Some(&UserQuotas {
            producer_byte_rate: Some(1024),
            consumer_byte_rate: None,
            request_percentage: Some(50),
        }));
        let have = BTreeMap::from([
            ("producer_byte_rate".to_string(), 1024.0),
            ("consumer_byte_rate".to_string(), 10.0),
            ("request_percentage".to_string(), 25.0),
        ]);
        assert_eq!(
            quota_ops(&want, &have),
            vec![
                ("request_percentage".to_string(), Some(50.0)),
                ("consumer_byte_rate".to_string(), None)
            ]
        );
        assert!(quota_ops(&want, &want).is_empty());
        assert!(quotas(None).is_empty());
    }

    #[test]
    fn the_jaas_config_is_the_java_clients_line_with_quotes_escaped() {
        assert_eq!(
            jaas_config("app", "p\"w"),
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"app\" password=\"p\\\"w\";"
        );
    }

    #[test]
    fn other_namespaces_need_the_clusters_selector() {
        let mut kc = crate::cluster::build::tests::fixture();
        let team = BTreeMap::from([("team".to_string(), "a".to_string())]);
        assert_eq!(namespace_allowed(&kc, "kafka", "kafka", &BTreeMap::new()), Ok(true));
        assert_eq!(namespace_allowed(&kc, "kafka", "team-a", &team), Ok(false));
        kc.spec.user_namespaces = Some(LabelSelector {
            match_labels: Some(team.clone()),
            ..Default::default()
        });
        assert_eq!(namespace_allowed(&kc, "kafka", "team-a", &team), Ok(true));
        assert_eq!(namespace_allowed(&kc, "kafka", "team-b", &BTreeMap::new()), Ok(false));
        kc.spec.user_namespaces = Some(LabelSelector::default());
        assert_eq!(namespace_allowed(&kc, "kafka", "any", &BTreeMap::new()), Ok(true));
    }

    #[test]
    fn users_are_signed_by_a_new_clients_ca_only_once_brokers_trust_it() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let p = SignedDuration::from_mins(3);
        assert_eq!(signing_generation(&[], None, p, now), None);
        assert_eq!(signing_generation(&[1], Some(now), p, now), Some(1));
        assert_eq!(signing_generation(&[1, 2], Some(now), p, now), Some(1));
        assert_eq!(signing_generation(&[1, 2], Some(now - p), p, now), Some(2));
        assert_eq!(signing_generation(&[2], Some(now), p, now), Some(2));
    }

    #[test]
    fn a_certificate_is_due_when_missing_foreign_old_or_near_expiry() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let renewal = SignedDuration::from_hours(24 * 30);
        let fresh = UserCertificate {
            issuer: 2,
            not_after: now + SignedDuration::from_hours(24 * 300),
            subject_matches: true,
        };
        assert!(!certificate_due(Some(&fresh), 2, now, renewal));
        assert!(certificate_due(None, 2, now, renewal));
        assert!(certificate_due(Some(&fresh), 3, now, renewal));
        let renamed = UserCertificate {
            subject_matches: false,
            ..fresh.clone()
        };
        assert!(certificate_due(Some(&renamed), 2, now, renewal));
        let old = UserCertificate {
            not_after: now + SignedDuration::from_hours(24 * 29),
            ..fresh
        };
        assert!(certificate_due(Some(&old), 2, now, renewal));
    }
}
