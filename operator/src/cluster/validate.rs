//! Validation of a KafkaCluster spec: pure, run before anything is built or applied.
//!
//! A refused spec changes nothing that runs; the reconciler turns the errors into
//! a `Ready=False, reason=InvalidSpec` condition and an Event.

use std::collections::BTreeMap;

use skein_broker::config::{BrokerConfig, Host};

use kube::ResourceExt;

use super::build::{server_properties, Names};
use super::CANCEL_SCALING_ANNOTATION;
use crate::crd::{AuthenticationType, KafkaCluster, ListenerSpec, VolumePolicy};

/// Broker properties the operator sets itself: a spec that names one is refused.
pub const OPERATOR_OWNED_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "cluster.id",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controller.listener.names",
    "log.dirs",
    "log.dir",
    "http.listener",
];

/// Longest KafkaCluster name: `NAME-brokers` must be a DNS label (63).
pub const MAX_NAME_LEN: usize = 63 - "-brokers".len();

/// Why a spec cannot be run; each displays as the message users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("metadata.name: at most {MAX_NAME_LEN} characters (pods are NAME-N.NAME-brokers)")]
    NameTooLong,
    #[error("replicas: must be at least 1, got {0}")]
    NoReplicas(i32),
    #[error("controllers: must be 1, 3 or 5, got {0}")]
    Controllers(i32),
    #[error("replicas: {replicas} is fewer than controllers ({controllers}); every voter is a broker")]
    FewerReplicasThanControllers { replicas: i32, controllers: i32 },
    #[error("image: must not be empty")]
    EmptyImage,
    #[error("storage.size: {0}")]
    StorageSize(String),
    #[error("storage.size: {spec} is smaller than the volumes' {current}; volumes cannot shrink")]
    VolumesShrink { spec: String, current: String },
    #[error("config: {} set by the operator (listeners, quorum and identity follow the pods)", .0.join(", "))]
    OperatorOwnedKeys(Vec<String>),
    #[error("config: {0}")]
    Config(String),
    #[error("listeners: {0}")]
    Listeners(String),
    #[error("rack: {0}")]
    Rack(String),
    #[error("authorization: needs a listener with authentication (without one every client is User:ANONYMOUS)")]
    AuthorizationWithoutAuthentication,
    #[error("certificates.{ca}: generate: false needs secretName, the Secret holding the CA")]
    ProvidedCa { ca: &'static str },
    #[error("certificates.{ca}: renewalDays ({renewal}) must be less than validityDays ({validity})")]
    Renewal {
        ca: &'static str,
        renewal: i32,
        validity: i32,
    },
}

/// What the volumes need: the spec's size against the claim template's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volumes {
    /// As they are (or not created yet).
    Keep,
    /// Grow every claim smaller than `bytes`.
    Grow { bytes: u64 },
}

/// A KafkaCluster whose spec can be run, with what validation parsed: code
/// downstream reads these fields, never the raw strings again.
#[derive(Debug, Clone)]
pub struct ValidCluster<'a> {
    /// The resource, for the builders (its spec is the one validated).
    pub cluster: &'a KafkaCluster,
    pub replicas: i32,
    pub volumes: Volumes,
    /// `spec.rebalance.maxMovesInFlight`, at least 1.
    pub max_moves_in_flight: usize,
    /// `spec.rebalance.throttleBytesPerSecond`, at least 1.
    pub throttle: i64,
    pub delete_claims_when_scaled: bool,
    /// The annotation `skein.dev/cancel-scaling: "true"`.
    pub cancel_scaling: bool,
}

/// `cluster` as a runnable spec, or every reason it is not. `volume_size` is
/// the StatefulSet's claim template size, when it exists. `controllers` may
/// change: the quorum's voters follow it one change at a time (`quorum.rs`).
pub fn validate<'a>(cluster: &'a KafkaCluster, volume_size: Option<&str>) -> Result<ValidCluster<'a>, Vec<Invalid>> {
    let spec = &cluster.spec;
    let mut errors = Vec::new();
    let name = cluster.metadata.name.clone().unwrap_or_default();
    if name.len() > MAX_NAME_LEN {
        errors.push(Invalid::NameTooLong);
    }
    if spec.replicas < 1 {
        errors.push(Invalid::NoReplicas(spec.replicas));
    }
    if ![1, 3, 5].contains(&spec.controllers) {
        errors.push(Invalid::Controllers(spec.controllers));
    }
    if spec.replicas < spec.controllers {
        errors.push(Invalid::FewerReplicasThanControllers {
            replicas: spec.replicas,
            controllers: spec.controllers,
        });
    }
    if spec.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        errors.push(Invalid::EmptyImage);
    }
    if let Err(e) = parse_quantity(&spec.storage.size) {
        errors.push(Invalid::StorageSize(e));
    }
    errors.extend(check_listeners(&spec.listeners));
    errors.extend(check_external(cluster, &name));
    if spec.rack.as_ref().is_some_and(|r| r.topology_key.trim().is_empty()) {
        errors.push(Invalid::Rack("topologyKey: must name a node label".into()));
    }
    if spec.authorization.is_some() && !spec.listeners.iter().any(|l| l.authentication.is_some()) {
        errors.push(Invalid::AuthorizationWithoutAuthentication);
    }
    for (ca, c) in [
        ("clusterCa", &spec.certificates.cluster_ca),
        ("clientsCa", &spec.certificates.clients_ca),
    ] {
        if !c.generate && c.secret_name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            errors.push(Invalid::ProvidedCa { ca });
        }
        if c.renewal_days >= c.validity_days {
            errors.push(Invalid::Renewal {
                ca,
                renewal: c.renewal_days,
                validity: c.validity_days,
            });
        }
    }
    // On a secured cluster the TLS and SASL keys are the operator's too.
    let secured = super::listeners::secured(cluster);
    let owned: Vec<String> = spec
        .config
        .keys()
        .filter(|k| {
            OPERATOR_OWNED_KEYS.contains(&k.as_str())
                || super::init::owned_keys(cluster)
                    .iter()
                    .any(|o| k.as_str() == *o || k.starts_with(&format!("{o}.")))
                || (secured
                    && (k.starts_with("ssl.") || k.starts_with("listener.name.") || k.starts_with("sasl.enabled")))
        })
        .cloned()
        .collect();
    if !owned.is_empty() {
        errors.push(Invalid::OperatorOwnedKeys(owned));
    } else if errors.is_empty() {
        // The broker's own parser over the exact file every pod gets, as pod 0 sees it.
        let names = Names::new(cluster, "cluster.local");
        let text = server_properties(cluster, &names, "validation");
        if let Err(e) = check_with_broker(&text, &format!("{name}-0")) {
            errors.push(Invalid::Config(e));
        }
    }
    let volumes = match storage_change(&spec.storage.size, volume_size) {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            Volumes::Keep
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidCluster {
        cluster,
        replicas: spec.replicas,
        volumes,
        max_moves_in_flight: spec.rebalance.max_moves_in_flight.max(1) as usize,
        throttle: spec.rebalance.throttle_bytes_per_second.max(1),
        delete_claims_when_scaled: spec.storage.when_scaled == VolumePolicy::Delete,
        cancel_scaling: cluster.annotations().get(CANCEL_SCALING_ANNOTATION).map(String::as_str) == Some("true"),
    })
}

/// Conflicting names or ports, reserved ones, client certificates without TLS.
fn check_listeners(listeners: &[ListenerSpec]) -> Vec<Invalid> {
    use super::build::{CONTROLLER_PORT, HTTP_PORT};
    use super::listeners::{REPLICATION_PORT, RESERVED_NAMES};
    let mut errors = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut ports = std::collections::BTreeSet::new();
    for l in listeners {
        let bad_name = l.name.is_empty()
            || l.name.len() > 11
            || !l.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if bad_name {
            errors.push(format!("{:?}: a name is 1 to 11 lowercase letters and digits", l.name));
        } else if RESERVED_NAMES.contains(&l.name.as_str()) {
            errors.push(format!("{:?}: the name is the operator's own", l.name));
        } else if !names.insert(l.name.as_str()) {
            errors.push(format!("{:?}: two listeners have the name", l.name));
        }
        if [REPLICATION_PORT, CONTROLLER_PORT, HTTP_PORT].contains(&l.port) {
            errors.push(format!(
                "{}: port {} is the operator's own ({REPLICATION_PORT}, {CONTROLLER_PORT}, {HTTP_PORT})",
                l.name, l.port
            ));
        } else if !(1..=65535).contains(&l.port) {
            errors.push(format!("{}: port {} is not a TCP port", l.name, l.port));
        } else if !ports.insert(l.port) {
            errors.push(format!("{}: port {} is another listener's", l.name, l.port));
        }
        if l.authentication
            .as_ref()
            .is_some_and(|a| a.type_ == AuthenticationType::Tls)
            && !l.tls
        {
            errors.push(format!("{}: authentication tls needs tls: true", l.name));
        }
    }
    errors.into_iter().map(Invalid::Listeners).collect()
}

/// External listeners: Service names that fit a DNS label, a `brokerHost`
/// that tells brokers apart.
fn check_external(cluster: &KafkaCluster, name: &str) -> Vec<Invalid> {
    let mut errors = Vec::new();
    for l in super::init::external(cluster) {
        let last = cluster.spec.replicas.max(1) - 1;
        let longest = format!("{name}-{last}-{}", l.name)
            .len()
            .max(format!("{name}-{}-bootstrap", l.name).len());
        if longest > 63 {
            errors.push(format!(
                "{}: its Services' names ({name}-{last}-{}) pass 63 characters; shorten the cluster's or the listener's name",
                l.name, l.name
            ));
        }
        if let Some(host) = &l.configuration.broker_host {
            if cluster.spec.replicas > 1 && !host.contains("{id}") {
                errors.push(format!(
                    "{}: configuration.brokerHost needs {{id}}, or every broker would advertise one name",
                    l.name
                ));
            }
        }
    }
    for l in cluster.spec.listeners.iter().filter(|l| !l.type_.external()) {
        if !l.configuration.is_default() {
            errors.push(format!(
                "{}: configuration is for nodeport and loadbalancer listeners",
                l.name
            ));
        }
    }
    errors.into_iter().map(Invalid::Listeners).collect()
}

/// The messages of `errors`, joined as status and Events show them.
pub fn messages(errors: &[Invalid]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Parses `server.properties` text as the broker will, on a host called `host`.
/// The init container's files (a rack, advertised addresses) do not exist
/// here: their references read as a plausible value of each.
fn check_with_broker(text: &str, host: &str) -> Result<(), String> {
    let init = format!("${{{}:{}:", super::init::PROVIDER, super::init::INIT_DIR);
    let mut sets = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        if line.starts_with("config.providers") {
            continue;
        }
        let mut line = line.to_string();
        while let Some(start) = line.find(&init) {
            let Some(end) = line[start..].find('}') else { break };
            let file = &line[start + init.len()..start + end];
            let value = if file.ends_with(".address") {
                "external.invalid:9999"
            } else {
                "rack"
            };
            line.replace_range(start..start + end + 1, value);
        }
        sets.push(line);
    }
    let env: BTreeMap<String, String> = BTreeMap::new();
    BrokerConfig::load_from(None, env, &sets, &Host { name: host.to_string() })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A change of `storage.size` against the volumes' size now: grow them, keep
/// them, or an error for a smaller size (volumes cannot shrink).
pub fn storage_change(spec: &str, current: Option<&str>) -> Result<Volumes, Invalid> {
    let (Some(current), Ok(want)) = (current, parse_quantity(spec)) else {
        return Ok(Volumes::Keep);
    };
    let Ok(have) = parse_quantity(current) else {
        return Ok(Volumes::Keep);
    };
    if want < have {
        return Err(Invalid::VolumesShrink {
            spec: spec.to_string(),
            current: current.to_string(),
        });
    }
    Ok(if want > have {
        Volumes::Grow { bytes: want }
    } else {
        Volumes::Keep
    })
}

/// A Kubernetes quantity in bytes (`10Gi`, `500M`, `1e9`).
pub fn parse_quantity(q: &str) -> Result<u64, String> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let q = q.trim();
    let (num, mult) = SUFFIXES
        .iter()
        .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
        .unwrap_or((q, 1.0));
    let bad = || format!("{q:?} is not a quantity of bytes (like 10Gi)");
    if num.is_empty()
        || !num
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'+')
    {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::build::tests::fixture;

    fn errors_of(edit: impl FnOnce(&mut KafkaCluster)) -> Vec<String> {
        let mut kc = fixture();
        edit(&mut kc);
        match validate(&kc, None) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn external(type_: crate::crd::ListenerType, host: Option<&str>) -> ListenerSpec {
        ListenerSpec {
            name: "ext".into(),
            port: 9094,
            type_,
            tls: false,
            authentication: None,
            network_policy_peers: Vec::new(),
            configuration: crate::crd::ListenerConfiguration {
                broker_host: host.map(Into::into),
                preferred_node_port_address_type: None,
            },
        }
    }

    #[test]
    fn the_chart_s_example_clusters_validate() {
        for (name, text) in [
            (
                "kafkacluster.yaml",
                include_str!("../../../charts/skein-operator/examples/kafkacluster.yaml"),
            ),
            (
                "kafkacluster-secured.yaml",
                include_str!("../../../charts/skein-operator/examples/kafkacluster-secured.yaml"),
            ),
            (
                "kafkacluster-zones.yaml",
                include_str!("../../../charts/skein-operator/examples/kafkacluster-zones.yaml"),
            ),
        ] {
            let kc: KafkaCluster = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Err(e) = validate(&kc, None) {
                panic!("{name}: {}", messages(&e));
            }
        }
    }

    #[test]
    fn racks_and_external_listeners_validate_with_the_init_container_s_files_unwritten() {
        use crate::crd::{ListenerType, RackSpec};
        let rack = |kc: &mut KafkaCluster| {
            kc.spec.rack = Some(RackSpec {
                topology_key: "topology.kubernetes.io/zone".into(),
            })
        };
        assert_eq!(errors_of(rack), Vec::<String>::new());
        assert_eq!(
            errors_of(|kc| {
                rack(kc);
                kc.spec.listeners = vec![external(ListenerType::Nodeport, None)];
            }),
            Vec::<String>::new()
        );
        type Edit<'a> = Box<dyn FnOnce(&mut KafkaCluster) + 'a>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "broker.rack set by hand with racks on",
                Box::new(|kc: &mut KafkaCluster| {
                    rack(kc);
                    kc.spec.config.insert("broker.rack".into(), "a".into());
                }),
                "broker.rack set by the operator",
            ),
            (
                "a config provider of the user's beside the operator's",
                Box::new(|kc: &mut KafkaCluster| {
                    rack(kc);
                    kc.spec.config.insert("config.providers.x.class".into(), "y".into());
                }),
                "config.providers.x.class",
            ),
            (
                "an empty topology key",
                Box::new(|kc: &mut KafkaCluster| {
                    kc.spec.rack = Some(RackSpec {
                        topology_key: " ".into(),
                    })
                }),
                "rack: topologyKey",
            ),
            (
                "one brokerHost for every broker",
                Box::new(|kc: &mut KafkaCluster| {
                    kc.spec.listeners = vec![external(ListenerType::Loadbalancer, Some("kafka.example.com"))]
                }),
                "needs {id}",
            ),
            (
                "brokerHost on an internal listener",
                Box::new(|kc: &mut KafkaCluster| {
                    kc.spec.listeners = vec![external(ListenerType::Internal, Some("k-{id}.example.com"))]
                }),
                "configuration is for nodeport and loadbalancer",
            ),
            (
                "Service names past 63 characters",
                Box::new(|kc: &mut KafkaCluster| {
                    kc.metadata.name = Some("a".repeat(50));
                    kc.spec.listeners = vec![external(ListenerType::Nodeport, None)];
                }),
                "pass 63 characters",
            ),
        ];
        for (name, edit, want) in cases {
            let errors = errors_of(edit);
            assert!(errors.iter().any(|e| e.contains(want)), "{name}: {errors:?}");
        }
    }

    #[test]
    fn volumes_grow_never_shrink() {
        assert_eq!(storage_change("2Gi", Some("1Gi")), Ok(Volumes::Grow { bytes: 2 << 30 }));
        assert_eq!(storage_change("1Gi", Some("1024Mi")), Ok(Volumes::Keep));
        assert_eq!(storage_change("1Gi", None), Ok(Volumes::Keep));
        let e = storage_change("500Mi", Some("1Gi")).unwrap_err().to_string();
        assert!(e.contains("cannot shrink") && e.contains("500Mi"), "{e}");
    }

    #[test]
    fn the_fixture_is_valid() {
        assert_eq!(errors_of(|_| {}), Vec::<String>::new());
    }

    #[test]
    fn an_unknown_config_key_is_refused() {
        let e = errors_of(|kc| {
            kc.spec.config.insert("no.such.key".into(), "1".into());
        });
        assert!(e[0].contains("no.such.key"), "{e:?}");
    }

    #[test]
    fn a_bad_config_value_is_refused() {
        let e = errors_of(|kc| {
            kc.spec.config.insert("log.segment.bytes".into(), "lots".into());
        });
        assert!(e[0].contains("log.segment.bytes"), "{e:?}");
    }

    #[test]
    fn an_operator_owned_key_is_refused() {
        let e = errors_of(|kc| {
            kc.spec.config.insert("listeners".into(), "PLAINTEXT://:1".into());
        });
        assert!(
            e[0].contains("listeners") && e[0].contains("set by the operator"),
            "{e:?}"
        );
    }

    #[test]
    fn fewer_replicas_than_controllers_is_refused() {
        let e = errors_of(|kc| {
            kc.spec.controllers = 3;
            kc.spec.replicas = 2;
        });
        assert!(e.iter().any(|m| m.contains("fewer than controllers")), "{e:?}");
    }

    #[test]
    fn controllers_other_than_one_three_or_five_are_refused() {
        let e = errors_of(|kc| kc.spec.controllers = 2);
        assert!(e.iter().any(|m| m.contains("1, 3 or 5")), "{e:?}");
    }

    #[test]
    fn controllers_may_change_after_creation() {
        let mut kc = fixture();
        kc.spec.replicas = 5;
        for controllers in [1, 3, 5, 3] {
            kc.spec.controllers = controllers;
            assert!(validate(&kc, None).is_ok(), "{controllers}");
        }
    }

    #[test]
    fn a_bad_storage_size_and_an_empty_image_are_refused() {
        let e = errors_of(|kc| {
            kc.spec.storage.size = "ten gigs".into();
            kc.spec.image = Some(" ".into());
        });
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn a_name_too_long_for_pod_dns_is_refused() {
        let e = errors_of(|kc| kc.metadata.name = Some("x".repeat(60)));
        assert!(e.iter().any(|m| m.contains("metadata.name")), "{e:?}");
    }

    #[test]
    fn conflicting_or_reserved_listeners_are_refused() {
        use crate::crd::{ListenerAuthentication, ListenerType};
        let l = |name: &str, port: i32, tls: bool, auth: Option<AuthenticationType>| ListenerSpec {
            name: name.into(),
            port,
            type_: ListenerType::Internal,
            tls,
            authentication: auth.map(|type_| ListenerAuthentication { type_ }),
            network_policy_peers: Vec::new(),
            configuration: Default::default(),
        };
        let e = errors_of(|kc| {
            kc.spec.listeners = vec![
                l("tls", 9094, true, Some(AuthenticationType::ScramSha512)),
                l("tls", 9095, true, None),
                l("other", 9094, false, None),
                l("replication", 9096, false, None),
                l("quorum", 9093, false, None),
                l("mtls", 9097, false, Some(AuthenticationType::Tls)),
                l("Bad-Name", 9098, false, None),
            ];
        });
        for want in [
            "\"tls\": two listeners",
            "port 9094 is another",
            "\"replication\": the name is the operator's",
            "port 9093 is the operator's",
            "mtls: authentication tls needs tls: true",
            "\"Bad-Name\": a name is",
        ] {
            assert!(e.iter().any(|m| m.contains(want)), "{want}: {e:?}");
        }
        assert_eq!(e.len(), 6, "{e:?}");
    }

    #[test]
    fn a_secured_cluster_is_valid_to_the_broker_and_owns_its_tls_keys() {
        use crate::crd::{ListenerAuthentication, ListenerType};
        let mut kc = fixture();
        kc.spec.listeners = vec![ListenerSpec {
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
        kc.spec.config.insert("super.users".into(), "User:admin".into());
        assert!(validate(&kc, None).is_ok(), "{:?}", validate(&kc, None).err());
        kc.spec.config.insert("ssl.keystore.location".into(), "/x.pem".into());
        let e = validate(&kc, None).unwrap_err();
        assert!(
            matches!(&e[..], [Invalid::OperatorOwnedKeys(k)] if k == &["ssl.keystore.location"]),
            "{e:?}"
        );
    }

    #[test]
    fn an_authorizer_needs_a_listener_with_authentication_and_keeps_our_super_users() {
        use crate::crd::{ClusterAuthorization, ListenerAuthentication, ListenerType};
        let e = errors_of(|kc| kc.spec.authorization = Some(ClusterAuthorization::default()));
        assert!(e.iter().any(|m| m.contains("User:ANONYMOUS")), "{e:?}");
        let mut kc = fixture();
        kc.spec.listeners = vec![ListenerSpec {
            name: "tls".into(),
            port: 9094,
            type_: ListenerType::Internal,
            tls: true,
            authentication: Some(ListenerAuthentication {
                type_: AuthenticationType::ScramSha256,
            }),
            network_policy_peers: Vec::new(),
            configuration: Default::default(),
        }];
        kc.spec.authorization = Some(ClusterAuthorization {
            super_users: vec!["User:admin".into()],
            ..Default::default()
        });
        kc.spec.config.insert("super.users".into(), "User:ops".into());
        assert!(validate(&kc, None).is_ok(), "{:?}", validate(&kc, None).err());
        let names = Names::new(&kc, "cluster.local");
        let text = server_properties(&kc, &names, "id");
        assert!(text.contains(&format!(
            "authorizer.class.name={}\n",
            super::super::build::AUTHORIZER_CLASS
        )));
        let users: Vec<&str> = text.lines().filter(|l| l.starts_with("super.users=")).collect();
        assert_eq!(
            users,
            ["super.users=User:CN=demo-broker;User:CN=demo-operator;User:admin;User:ops"],
            "{text}"
        );
    }

    #[test]
    fn a_renewal_as_long_as_the_validity_is_refused() {
        let e = errors_of(|kc| kc.spec.certificates.cluster_ca.renewal_days = 365);
        assert!(e.iter().any(|m| m.contains("certificates.clusterCa")), "{e:?}");
    }

    #[test]
    fn quantities_parse_as_kubernetes_does() {
        assert_eq!(parse_quantity("10Gi"), Ok(10 << 30));
        assert_eq!(parse_quantity("500M"), Ok(500_000_000));
        assert_eq!(parse_quantity("1e3"), Ok(1000));
        assert_eq!(parse_quantity("1.5Ki"), Ok(1536));
        assert!(parse_quantity("").is_err());
        assert!(parse_quantity("-1Gi").is_err());
        assert!(parse_quantity("Gi").is_err());
    }
}
