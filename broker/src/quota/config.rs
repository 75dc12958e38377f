//! Client quota configuration (KIP-55, KIP-546): which entity a quota is set
//! on, which keys exist, and Kafka's precedence for finding the quota that
//! applies to a request's user and client id. Pure: no clock, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The entity types Kafka names on the wire (`ClientQuotaEntity`).
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// What a quota limits (Kafka's `QuotaType` and its `QuotaConfigs` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QuotaType {
    /// `producer_byte_rate`: bytes of Produce requests per second.
    Produce,
    /// `consumer_byte_rate`: bytes of Fetch responses per second.
    Fetch,
    /// `request_percentage`: handler time, in percent of one thread, per second.
    Request,
}

impl QuotaType {
    pub const ALL: [QuotaType; 3] = [QuotaType::Produce, QuotaType::Fetch, QuotaType::Request];

    /// The config key (`producer_byte_rate`...).
    pub fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => "producer_byte_rate",
            QuotaType::Fetch => "consumer_byte_rate",
            QuotaType::Request => "request_percentage",
        }
    }

    pub fn from_key(key: &str) -> Option<QuotaType> {
        QuotaType::ALL.into_iter().find(|t| t.key() == key)
    }

    /// Kafka's name of the quota type (the `type` of its MBeans).
    pub fn name(self) -> &'static str {
        match self {
            QuotaType::Produce => "Produce",
            QuotaType::Fetch => "Fetch",
            QuotaType::Request => "Request",
        }
    }
}

/// An entity's name, or the default for its type (`<default>`; `null` on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    fn from_wire(name: Option<&str>) -> EntityName {
        match name {
            None => EntityName::Default,
            Some(n) => EntityName::Named(n.to_string()),
        }
    }

    /// As the wire carries it: `None` for the default.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

/// What a quota is set on: a user, a client id, or a user's client id, each
/// possibly the default. At least one part is present.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

impl QuotaEntity {
    /// From the wire's (entity type, name) pairs. Refused as Kafka refuses
    /// them: an empty entity, a type named twice, an unknown type; `ip`
    /// (connection-rate quotas, KIP-612) is not served here.
    pub fn from_components<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, String> {
        let mut entity = QuotaEntity::default();
        for (entity_type, name) in parts {
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => return Err("Connection-rate quotas on ip entities are not supported".into()),
                other => return Err(format!("Unknown quota entity type: {other}")),
            };
            if slot.is_some() {
                return Err(format!("Duplicate quota entity type: {entity_type}"));
            }
            if name == Some("") {
                return Err(format!("Empty {entity_type} name: use the default entity instead"));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err("Invalid empty client quota entity".into());
        }
        Ok(entity)
    }

    /// The (entity type, name) pairs the wire carries.
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            out.push((USER, u.as_wire()));
        }
        if let Some(c) = &self.client_id {
            out.push((CLIENT_ID, c.as_wire()));
        }
        out
    }

    /// As Kafka's tools print it: `user=alice, client-id=<default>`.
    pub fn describe(&self) -> String {
        self.components()
            .iter()
            .map(|(t, n)| format!("{t}={}", n.unwrap_or("<default>")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A quota's value: finite and positive once validated. (`f64` has no `Eq`;
/// a validated value is never NaN, so comparing bits is equality.)
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Why a key and value cannot be set, as Kafka's controller words it.
pub fn invalid_value(quota_type: QuotaType, value: f64) -> Option<String> {
    let key = quota_type.key();
    if !value.is_finite() || value <= 0.0 {
        return Some(format!("Quota {key} must be a positive number, not {value}"));
    }
    // The byte rates are LONG configs in Kafka: whole bytes per second.
    if quota_type != QuotaType::Request && (value.fract() != 0.0 || value > i64::MAX as f64) {
        return Some(format!("Configuration {key} must be a Long value"));
    }
    None
}

/// Every client quota set in the cluster, by entity.
pub type ClientQuotaConfigs = BTreeMap<QuotaEntity, BTreeMap<QuotaType, QuotaValue>>;

/// The quotas as a list of (entity, values) in snapshots: the metadata log is
/// JSON, whose map keys are strings and cannot be entities.
pub mod as_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(quotas: &ClientQuotaConfigs, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(quotas.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClientQuotaConfigs, D::Error> {
        let list: Vec<(QuotaEntity, BTreeMap<QuotaType, QuotaValue>)> = Deserialize::deserialize(d)?;
        Ok(list.into_iter().collect())
    }
}

/// The quota that applies to one request, and whom it is shared by: the
/// user and client id tags of its sensor (an empty tag: shared across all
/// values of that part), as Kafka's `DefaultQuotaCallback.quotaMetricTags`.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedQuota {
    pub bound: f64,
    pub user: String,
    pub client_id: String,
}

/// Kafka's precedence (the most specific entity that sets this quota type wins):
/// 1. user + client id, 2. user + default client id, 3. user,
/// 4. default user + client id, 5. default user + default client id,
/// 6. default user, 7. client id, 8. default client id.
pub fn resolve(
    configs: &ClientQuotaConfigs,
    quota_type: QuotaType,
    user: &str,
    client_id: &str,
) -> Option<AppliedQuota> {
    if configs.is_empty() {
        return None;
    }
    let named = |s: &str| Some(EntityName::Named(s.to_string()));
    let default = || Some(EntityName::Default);
    // (entity, whether the sensor is per user, whether it is per client id)
    let levels = [
        (named(user), named(client_id), true, true),
        (named(user), default(), true, true),
        (named(user), None, true, false),
        (default(), named(client_id), true, true),
        (default(), default(), true, true),
        (default(), None, true, false),
        (None, named(client_id), false, true),
        (None, default(), false, true),
    ];
    levels.into_iter().find_map(|(u, c, per_user, per_client)| {
        let entity = QuotaEntity { user: u, client_id: c };
        let value = configs.get(&entity)?.get(&quota_type)?;
        Some(AppliedQuota {
            bound: value.0,
            user: if per_user { user.to_string() } else { String::new() },
            client_id: if per_client {
                client_id.to_string()
            } else {
                String::new()
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        QuotaEntity {
            user: user.map(EntityName::from_wire),
            client_id: client.map(EntityName::from_wire),
        }
    }

    fn set(configs: &mut ClientQuotaConfigs, e: QuotaEntity, value: f64) {
        configs
            .entry(e)
            .or_default()
            .insert(QuotaType::Produce, QuotaValue(value));
    }

    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let mut c = ClientQuotaConfigs::new();
        let levels = [
            entity(None, Some(None)),
            entity(None, Some(Some("app"))),
            entity(Some(None), None),
            entity(Some(None), Some(None)),
            entity(Some(None), Some(Some("app"))),
            entity(Some(Some("alice")), None),
            entity(Some(Some("alice")), Some(None)),
            entity(Some(Some("alice")), Some(Some("app"))),
        ];
        // Adding each more specific level in turn makes it the one that applies.
        for (i, e) in levels.into_iter().enumerate() {
            set(&mut c, e, (i + 1) as f64);
            let applied = resolve(&c, QuotaType::Produce, "alice", "app").unwrap();
            assert_eq!(applied.bound, (i + 1) as f64, "level {}", 8 - i);
        }
        assert_eq!(
            resolve(&c, QuotaType::Fetch, "alice", "app"),
            None,
            "another quota type is unset"
        );
    }

    #[test]
    fn the_sensor_is_shared_as_the_matching_entity_says() {
        let mut c = ClientQuotaConfigs::new();
        set(&mut c, entity(Some(Some("alice")), None), 10.0);
        let a = resolve(&c, QuotaType::Produce, "alice", "app").unwrap();
        assert_eq!(
            (a.user.as_str(), a.client_id.as_str()),
            ("alice", ""),
            "all of alice's clients share it"
        );
        set(&mut c, entity(None, Some(None)), 5.0);
        let b = resolve(&c, QuotaType::Produce, "bob", "app").unwrap();
        assert_eq!(
            (b.user.as_str(), b.client_id.as_str()),
            ("", "app"),
            "per client id, across users"
        );
        set(&mut c, entity(Some(None), Some(None)), 7.0);
        let d = resolve(&c, QuotaType::Produce, "bob", "app").unwrap();
        assert_eq!((d.bound, d.user.as_str(), d.client_id.as_str()), (7.0, "bob", "app"));
        assert_eq!(resolve(&ClientQuotaConfigs::new(), QuotaType::Produce, "a", "b"), None);
    }

    #[test]
    fn entities_from_the_wire_are_checked() {
        let ok = QuotaEntity::from_components([(USER, Some("alice")), (CLIENT_ID, None)]).unwrap();
        assert_eq!(ok.describe(), "user=alice, client-id=<default>");
        assert_eq!(ok.components(), vec![(USER, Some("alice")), (CLIENT_ID, None)]);
        for bad in [
            vec![],
            vec![(USER, Some("a")), (USER, Some("b"))],
            vec![("group", Some("g"))],
            vec![(IP, Some("10.0.0.1"))],
            vec![(USER, Some(""))],
        ] {
            assert!(QuotaEntity::from_components(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_are_positive_and_byte_rates_whole() {
        assert_eq!(invalid_value(QuotaType::Produce, 1024.0), None);
        assert_eq!(invalid_value(QuotaType::Request, 12.5), None);
        for (t, v) in [
            (QuotaType::Produce, 0.0),
            (QuotaType::Fetch, -1.0),
            (QuotaType::Fetch, 1.5),
            (QuotaType::Request, f64::NAN),
            (QuotaType::Request, f64::INFINITY),
            (QuotaType::Produce, 1e300),
        ] {
            assert!(invalid_value(t, v).is_some(), "{t:?} {v}");
        }
    }
}
