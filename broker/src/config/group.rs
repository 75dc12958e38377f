//! Group configs (Kafka 4.0's resource type GROUP, KIP-848): per-group overrides
//! of the consumer-protocol session timeout and heartbeat interval, set with
//! IncrementalAlterConfigs and kept in the metadata log.
//!
//! A group's value falls back to the broker's `group.consumer.*` default and
//! must lie within the broker's `group.consumer.min.*`/`max.*` bounds, as in Kafka.
//! Kafka's `share.*` group configs are refused as unknown: Skein has no share
//! groups (KIP-932).

use std::collections::BTreeMap;

use super::{BrokerConfig, ConfigError, ConfigType};

/// One group config: its key, the broker key of its default, and the broker keys of its bounds.
#[derive(Debug)]
pub struct GroupConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub default_key: &'static str,
    pub min_key: &'static str,
    pub max_key: &'static str,
    pub doc: &'static str,
}

pub static GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        kind: ConfigType::Int,
        default_key: "group.consumer.session.timeout.ms",
        min_key: "group.consumer.min.session.timeout.ms",
        max_key: "group.consumer.max.session.timeout.ms",
        doc: "A consumer-protocol member that sends no heartbeat for this long leaves the group.",
    },
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        kind: ConfigType::Int,
        default_key: "group.consumer.heartbeat.interval.ms",
        min_key: "group.consumer.min.heartbeat.interval.ms",
        max_key: "group.consumer.max.heartbeat.interval.ms",
        doc: "The interval at which consumer-protocol members are told to send heartbeats.",
    },
];

fn find(key: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == key)
}

/// Checks one group config against the broker's bounds.
pub fn validate_group_config(broker: &BrokerConfig, key: &str, value: &str) -> Result<(), ConfigError> {
    let def = find(key).ok_or_else(|| ConfigError::Unknown(key.to_string()))?;
    let bad = |reason: String| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    let n: i32 = value.trim().parse().map_err(|_| bad("expected an integer".into()))?;
    let (min, max) = (broker.num(def.min_key), broker.num(def.max_key));
    if i64::from(n) < min {
        return Err(bad(format!("must be at least {} ({min})", def.min_key)));
    }
    if i64::from(n) > max {
        return Err(bad(format!("must be at most {} ({max})", def.max_key)));
    }
    Ok(())
}

/// The effective value of a group config: the group's override, else the broker default.
pub fn group_config_value(broker: &BrokerConfig, overrides: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    let def = find(key)?;
    overrides
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| Some(broker.num(def.default_key)))
}

/// Kafka refuses to start when a consumer-group default lies outside its bounds,
/// or when the heartbeat interval is not below the session timeout.
pub(super) fn check_broker_bounds(cfg: &BrokerConfig) -> Result<(), ConfigError> {
    for def in GROUP_CONFIGS {
        let (v, min, max) = (cfg.num(def.default_key), cfg.num(def.min_key), cfg.num(def.max_key));
        if min > max || v < min || v > max {
            return Err(ConfigError::Invalid {
                key: def.default_key.to_string(),
                value: v.to_string(),
                reason: format!("must lie within {} ({min}) and {} ({max})", def.min_key, def.max_key),
            });
        }
    }
    let (session, heartbeat) = cfg.consumer_group_timeouts();
    if i64::from(heartbeat) >= session {
        return Err(ConfigError::Invalid {
            key: "group.consumer.heartbeat.interval.ms".into(),
            value: heartbeat.to_string(),
            reason: format!("must be less than group.consumer.session.timeout.ms ({session})"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(sets: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_map(sets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn a_group_config_within_the_broker_bounds_is_accepted() {
        let b = broker(&[]).unwrap();
        validate_group_config(&b, "consumer.session.timeout.ms", "50000").unwrap();
        validate_group_config(&b, "consumer.heartbeat.interval.ms", "15000").unwrap();
    }

    #[test]
    fn a_group_config_outside_the_bounds_unknown_or_not_a_number_is_refused() {
        let b = broker(&[]).unwrap();
        for (k, v) in [
            ("consumer.session.timeout.ms", "44999"),
            ("consumer.session.timeout.ms", "60001"),
            ("consumer.heartbeat.interval.ms", "1"),
            ("consumer.heartbeat.interval.ms", "ten"),
            ("consumer.heartbeat.interval.ms", "99999999999"),
        ] {
            assert!(
                matches!(validate_group_config(&b, k, v), Err(ConfigError::Invalid { .. })),
                "{k}={v}"
            );
        }
        assert_eq!(
            validate_group_config(&b, "share.session.timeout.ms", "50000"),
            Err(ConfigError::Unknown("share.session.timeout.ms".into()))
        );
    }

    #[test]
    fn a_group_value_falls_back_to_the_broker_default() {
        let b = broker(&[("group.consumer.session.timeout.ms", "50000")]).unwrap();
        let mut o = BTreeMap::new();
        assert_eq!(group_config_value(&b, &o, "consumer.session.timeout.ms"), Some(50000));
        o.insert("consumer.session.timeout.ms".to_string(), "55000".to_string());
        assert_eq!(group_config_value(&b, &o, "consumer.session.timeout.ms"), Some(55000));
        assert_eq!(group_config_value(&b, &o, "consumer.heartbeat.interval.ms"), Some(5000));
    }

    #[test]
    fn broker_defaults_outside_their_bounds_do_not_start() {
        assert!(broker(&[("group.consumer.heartbeat.interval.ms", "500")]).is_err());
        assert!(broker(&[("group.consumer.session.timeout.ms", "70000")]).is_err());
        assert!(broker(&[
            ("group.consumer.heartbeat.interval.ms", "500"),
            ("group.consumer.min.heartbeat.interval.ms", "100"),
        ])
        .is_ok());
    }
}
