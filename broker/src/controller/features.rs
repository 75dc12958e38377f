//! Finalized features (KIP-584): levels the whole cluster agrees on, changed
//! by UpdateFeatures (`kafka-features.sh upgrade|downgrade`) through the
//! metadata log and advertised in ApiVersions, where clients read them.
//!
//! One feature so far, `transaction.version`: at 2 a Java 4.x producer speaks
//! transaction version 2 (KIP-890 part 2: `EndTxn` v5, `Produce` v12,
//! `TxnOffsetCommit` v5); at 0 or 1 it keeps the classic protocol. The broker
//! serves both whatever the level, as Kafka does: the request's version
//! decides. A new cluster starts at 2, as a Kafka 4 cluster does.

use kafka_protocol::error::ResponseError;

use super::image::MetadataImage;

/// A feature this broker supports: the levels it can run at and where a
/// cluster that never set it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub default: i16,
}

pub const TRANSACTION_VERSION: &str = "transaction.version";

pub const FEATURES: [Feature; 1] = [Feature {
    name: TRANSACTION_VERSION,
    min: 0,
    max: 2,
    default: 2,
}];

pub fn feature(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}

/// Kafka's upgrade types (UpdateFeatures v1+; v0's `allow_downgrade` maps to 1 or 2).
pub const UPGRADE: i8 = 1;
pub const SAFE_DOWNGRADE: i8 = 2;
pub const UNSAFE_DOWNGRADE: i8 = 3;

/// Whether `name` may move from `current` to `level` with `upgrade_type`:
/// Kafka's rules and error (INVALID_UPDATE_VERSION), with its messages.
pub fn check_update(name: &str, current: i16, level: i16, upgrade_type: i8) -> Result<(), (ResponseError, String)> {
    let invalid = |why: String| Err((ResponseError::InvalidUpdateVersion, why));
    let Some(f) = feature(name) else {
        return invalid(format!(
            "Invalid update version for feature {name}: the controller does not support it."
        ));
    };
    if !(UPGRADE..=UNSAFE_DOWNGRADE).contains(&upgrade_type) {
        return invalid(format!("Invalid upgrade type {upgrade_type} for feature {name}."));
    }
    if level < f.min || level > f.max {
        return invalid(format!(
            "Invalid update version {level} for feature {name}: the brokers support {} to {}.",
            f.min, f.max
        ));
    }
    if upgrade_type == UPGRADE && level < current {
        return invalid(format!(
            "Invalid update version {level} for feature {name}. Can't downgrade the version of this feature \
             without setting the upgrade type to either safe or unsafe downgrade."
        ));
    }
    if upgrade_type != UPGRADE && level > current {
        return invalid(format!(
            "Invalid update version {level} for feature {name}. Can't downgrade to a newer version."
        ));
    }
    Ok(())
}

impl MetadataImage {
    /// The finalized level of a feature (its default if never set; 0 if unknown).
    pub fn feature_level(&self, name: &str) -> i16 {
        self.features
            .get(name)
            .copied()
            .or_else(|| feature(name).map(|f| f.default))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_update_kafka_refuses_is_refused_with_its_code() {
        let ok = |current, level, t| check_update(TRANSACTION_VERSION, current, level, t).is_ok();
        assert!(ok(1, 2, UPGRADE));
        assert!(ok(2, 2, UPGRADE), "the same level is no change");
        assert!(ok(2, 1, SAFE_DOWNGRADE));
        assert!(ok(2, 0, UNSAFE_DOWNGRADE));
        let cases = [
            ("an unknown feature", check_update("metadata.versionx", 0, 1, UPGRADE)),
            (
                "above the supported range",
                check_update(TRANSACTION_VERSION, 2, 3, UPGRADE),
            ),
            (
                "a negative level",
                check_update(TRANSACTION_VERSION, 2, -1, UNSAFE_DOWNGRADE),
            ),
            (
                "a downgrade named an upgrade",
                check_update(TRANSACTION_VERSION, 2, 1, UPGRADE),
            ),
            (
                "an upgrade named a downgrade",
                check_update(TRANSACTION_VERSION, 1, 2, SAFE_DOWNGRADE),
            ),
            ("an unknown upgrade type", check_update(TRANSACTION_VERSION, 1, 2, 7)),
        ];
        for (name, r) in cases {
            assert_eq!(r.unwrap_err().0, ResponseError::InvalidUpdateVersion, "{name}");
        }
    }

    #[test]
    fn a_new_cluster_runs_transaction_version_2() {
        let mut img = MetadataImage::default();
        assert_eq!(img.feature_level(TRANSACTION_VERSION), 2);
        img.features.insert(TRANSACTION_VERSION.to_string(), 1);
        assert_eq!(img.feature_level(TRANSACTION_VERSION), 1);
        assert_eq!(img.feature_level("group.version"), 0);
    }
}
