//! The custom resources: `KafkaCluster` (kc), `Topic` (kt) and `KafkaUser` (ku) in `skein.dev/v1alpha1`.
//!
//! Types only, plus the metav1 Condition bookkeeping both kinds share. Nothing
//! here talks to the API server; `skein-operator crd` prints what these derive.

mod cluster;
pub mod condition;
mod security;
mod topic;
mod user;

pub use cluster::*;
pub use condition::{condition, set_condition, Condition};
pub use security::*;
pub use topic::*;
pub use user::*;

/// A map that may arrive as null: server-side apply on servers before 1.22
/// stores a map whose last key an apply removed as null, not as `{}`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    use serde::Deserialize;
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// The CustomResourceDefinitions as one YAML stream (`skein-operator crd`, `crds/`).
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [KafkaCluster::crd(), Topic::crd(), KafkaUser::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD always serializes"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI compares this with `crds/`; regenerate with `skein-operator crd > crds/skein.dev.yaml`.
    #[test]
    fn checked_in_crds_match_the_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/skein.dev.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == crds_yaml(),
            "crds/skein.dev.yaml is stale: run `cargo run -p skein-operator -- crd > crds/skein.dev.yaml`"
        );
    }

    /// The rules API servers with CEL (1.25+) enforce at admission, evaluated here.
    #[test]
    fn cel_rules_refuse_a_partition_decrease_and_immutable_changes() {
        use kube::core::cel::{validate_cel, validate_cel_update};
        let topic: Topic = serde_yaml::from_str(
            "apiVersion: skein.dev/v1alpha1\nkind: Topic\nmetadata: {name: t}\nspec: {cluster: c, partitions: 6, replicationFactor: 3}",
        )
        .unwrap();
        let mut fewer = topic.clone();
        fewer.spec.partitions = 4;
        assert!(validate_cel_update(&fewer, &topic).is_err());
        let mut more = topic.clone();
        more.spec.partitions = 8;
        assert!(validate_cel_update(&more, &topic).is_ok());
        let mut moved = topic.clone();
        moved.spec.cluster = "other".into();
        assert!(validate_cel_update(&moved, &topic).is_err());

        let kc: KafkaCluster = serde_yaml::from_str(
            "apiVersion: skein.dev/v1alpha1\nkind: KafkaCluster\nmetadata: {name: k}\nspec: {replicas: 3, controllers: 3}",
        )
        .unwrap();
        assert!(validate_cel(&kc).is_ok());
        let mut too_few = kc.clone();
        too_few.spec.replicas = 2;
        assert!(validate_cel(&too_few).is_err());
        // The voters may change (one at a time, by the operator).
        let mut voters = kc.clone();
        voters.spec.controllers = 1;
        assert!(validate_cel_update(&voters, &kc).is_ok());
    }

    #[test]
    fn crds_carry_short_names_scale_and_printer_columns() {
        let y = crds_yaml();
        for needle in [
            "shortNames:\n    - kc",
            "shortNames:\n    - kt",
            "shortNames:\n    - ku",
            "name: Authentication",
            "specReplicasPath: .spec.replicas",
            "labelSelectorPath: .status.selector",
            "name: Bootstrap",
            "self >= oldSelf",
        ] {
            assert!(y.contains(needle), "CRDs lack {needle:?}");
        }
    }
}
