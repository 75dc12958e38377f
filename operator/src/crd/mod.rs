//! The custom resources: `KafkaCluster` (kc) and `Topic` (kt) in `skein.dev/v1alpha1`.
//!
//! Types only, plus the metav1 Condition bookkeeping both kinds share. Nothing
//! here talks to the API server; `skein-operator crd` prints what these derive.

mod cluster;
pub mod condition;
mod topic;

pub use cluster::*;
pub use condition::{condition, set_condition, Condition};
pub use topic::*;

/// A map that may arrive as null: server-side apply on servers before 1.22
/// stores a map whose last key an apply removed as null, not as `{}`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    use serde::Deserialize;
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// The CustomResourceDefinitions as one YAML stream (`skein-operator crd`, `crds/`).
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [KafkaCluster::crd(), Topic::crd()] {
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

    #[test]
    fn crds_carry_short_names_scale_and_printer_columns() {
        let y = crds_yaml();
        for needle in [
            "shortNames:\n    - kc",
            "shortNames:\n    - kt",
            "specReplicasPath: .spec.replicas",
            "labelSelectorPath: .status.selector",
            "name: Bootstrap",
            "self >= oldSelf",
        ] {
            assert!(y.contains(needle), "CRDs lack {needle:?}");
        }
    }
}
