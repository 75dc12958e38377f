//! The broker-init container, and the external listeners' Services. Pure.
//!
//! Some of a broker's config only exists once its pod is placed: its rack (a
//! label of the node it landed on), the address a `nodeport` listener
//! advertises (that node's address and the node port of the broker's own
//! Service), a `loadbalancer` listener's address (the Service's status, once a
//! load balancer exists). A StatefulSet gives every pod one template, so these
//! cannot be written into the shared `server.properties`. As Strimzi's
//! kafka-init does, an init container (`skein-operator broker-init`, from the
//! broker image) reads them from the API server with the pod's own
//! ServiceAccount (node `get` through the chart's ClusterRole `skein-broker`,
//! Service `get` in its namespace) and writes one file each under
//! [`INIT_DIR`]; `server.properties` names those files through Kafka's
//! DirectoryConfigProvider (`broker.rack=${init:/etc/skein-init:rack}`), so
//! the broker reads them at start as Kafka would. Only the init container
//! holds an API token; the broker container has none.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, KeyToPath, ObjectFieldSelector, ProjectedVolumeSource, Service, ServiceAccountTokenProjection,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{KafkaCluster, ListenerSpec, ListenerStatus, ListenerType, NodeAddressType};

use super::build::Names;

/// Where the init container writes and the broker reads.
pub const INIT_DIR: &str = "/etc/skein-init";
/// The config provider's name in `server.properties`.
pub const PROVIDER: &str = "init";
/// Kafka's class of the provider that reads a file per key.
pub const DIRECTORY_PROVIDER: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";
/// Where the init container's API credentials are mounted (as a kubelet would).
pub const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The chart's ClusterRole that lets a broker's init container read its node.
pub const BROKER_CLUSTER_ROLE: &str = "skein-broker";
/// The consumer-side replica selection that racks make worthwhile (KIP-392).
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
/// The file holding the node's rack.
pub const RACK_FILE: &str = "rack";

/// Whether the brokers need the init container: racks, or a listener reached from outside.
pub fn needed(cluster: &KafkaCluster) -> bool {
    cluster.spec.rack.is_some() || external(cluster).next().is_some()
}

/// The listeners reached from outside the Kubernetes cluster.
pub fn external(cluster: &KafkaCluster) -> impl Iterator<Item = &ListenerSpec> {
    cluster.spec.listeners.iter().filter(|l| l.type_.external())
}

/// `${init:/etc/skein-init:FILE}`: a value the broker reads from the init container's file.
pub fn reference(file: &str) -> String {
    format!("${{{PROVIDER}:{INIT_DIR}:{file}}}")
}

/// The file with the `host:port` a listener advertises.
pub fn address_file(listener: &str) -> String {
    format!("{}.address", listener.to_ascii_lowercase())
}

/// The `server.properties` lines of the init container's files: the provider,
/// `broker.rack`, and the rack-aware replica selector unless the spec picks one.
pub fn properties(cluster: &KafkaCluster) -> Vec<(String, String)> {
    if !needed(cluster) {
        return Vec::new();
    }
    let mut out = vec![
        ("config.providers".to_string(), PROVIDER.to_string()),
        (
            format!("config.providers.{PROVIDER}.class"),
            DIRECTORY_PROVIDER.to_string(),
        ),
        (
            format!("config.providers.{PROVIDER}.param.allowed.paths"),
            INIT_DIR.to_string(),
        ),
    ];
    if cluster.spec.rack.is_some() {
        out.push(("broker.rack".into(), reference(RACK_FILE)));
        if !cluster.spec.config.contains_key("replica.selector.class") {
            out.push(("replica.selector.class".into(), RACK_AWARE_SELECTOR.into()));
        }
    }
    out
}

/// Config keys the operator sets when the init container runs.
pub fn owned_keys(cluster: &KafkaCluster) -> Vec<&'static str> {
    let mut out = Vec::new();
    if needed(cluster) {
        out.push("config.providers");
    }
    if cluster.spec.rack.is_some() {
        out.push("broker.rack");
    }
    out
}

/// The init container's arguments (after the binary).
pub fn args(cluster: &KafkaCluster) -> Vec<String> {
    let mut out = vec!["broker-init".to_string(), "--dir".into(), INIT_DIR.into()];
    if let Some(rack) = &cluster.spec.rack {
        out.extend(["--rack-label".into(), rack.topology_key.clone()]);
    }
    for l in external(cluster) {
        let mut arg = format!(
            "name={},type={},port={}",
            l.name,
            match l.type_ {
                ListenerType::Loadbalancer => "loadbalancer",
                _ => "nodeport",
            },
            l.port
        );
        if let Some(host) = &l.configuration.broker_host {
            arg.push_str(&format!(",host={host}"));
        }
        if let Some(t) = l.configuration.preferred_node_port_address_type {
            arg.push_str(&format!(",address-type={}", t.as_str()));
        }
        out.extend(["--listener".into(), arg]);
    }
    out
}

/// The init container, from the broker image (which holds `skein-operator`).
pub fn container(
    cluster: &KafkaCluster,
    image: &str,
    security: Option<k8s_openapi::api::core::v1::SecurityContext>,
) -> Container {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let env = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(field(path)),
        ..Default::default()
    };
    Container {
        name: "init".into(),
        image: Some(image.into()),
        command: Some(vec!["/usr/local/bin/skein-operator".into()]),
        args: Some(args(cluster)),
        env: Some(vec![
            env("POD_NAME", "metadata.name"),
            env("POD_NAMESPACE", "metadata.namespace"),
            env("NODE_NAME", "spec.nodeName"),
        ]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "init".into(),
                mount_path: INIT_DIR.into(),
                ..Default::default()
            },
            VolumeMount {
                name: "init-token".into(),
                mount_path: TOKEN_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: security,
        ..Default::default()
    }
}

/// The broker container's read-only view of the init container's files.
pub fn broker_mount() -> VolumeMount {
    VolumeMount {
        name: "init".into(),
        mount_path: INIT_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The files' directory and the init container's API credentials: a token of
/// the pod's ServiceAccount, the API server's CA, the namespace (what the
/// kubelet mounts for an automounted token, here for one container only).
pub fn volumes() -> Vec<Volume> {
    vec![
        Volume {
            name: "init".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        Volume {
            name: "init-token".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(3607),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![KeyToPath {
                                key: "ca.crt".into(),
                                path: "ca.crt".into(),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

/// What the reconcile read for the external listeners' status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalFacts {
    /// Per external listener: its bootstrap Service's node port, and its load
    /// balancer's addresses (hostname or IP).
    pub bootstrap: BTreeMap<String, (Option<i32>, Vec<String>)>,
    /// The addresses (type, address) of each node a broker runs on.
    pub node_addresses: Vec<Vec<(String, String)>>,
}

/// A node's address of the preferred type, else the first found of
/// ExternalDNS, ExternalIP, InternalDNS, InternalIP, Hostname (Strimzi's order).
pub fn node_address(addresses: &[(String, String)], preferred: Option<NodeAddressType>) -> Option<String> {
    preferred
        .into_iter()
        .chain(NodeAddressType::ALL)
        .find_map(|t| addresses.iter().find(|(kind, _)| kind == t.as_str()))
        .map(|(_, a)| bracket(a))
}

/// An IPv6 address in a `host:port` pair takes brackets.
pub fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Where clients reach each listener: the bootstrap Service inside, the
/// brokers' nodes at the bootstrap node port, or the load balancer.
pub fn listener_status(cluster: &KafkaCluster, names: &Names, facts: &ExternalFacts) -> Vec<ListenerStatus> {
    let internal = |port: i32| format!("{}.{}.svc.{}:{port}", names.bootstrap, names.namespace, names.domain());
    if cluster.spec.listeners.is_empty() {
        return vec![ListenerStatus {
            name: "plaintext".into(),
            type_: "internal".into(),
            bootstrap_servers: Some(internal(super::build::KAFKA_PORT)),
        }];
    }
    cluster
        .spec
        .listeners
        .iter()
        .map(|l| {
            let (node_port, ingress) = facts.bootstrap.get(&l.name).cloned().unwrap_or_default();
            let join = |hosts: Vec<String>, port: i32| {
                let mut all: Vec<String> = hosts.into_iter().map(|h| format!("{h}:{port}")).collect();
                all.sort();
                all.dedup();
                (!all.is_empty()).then(|| all.join(","))
            };
            let bootstrap_servers = match l.type_ {
                ListenerType::Internal => Some(internal(l.port)),
                ListenerType::Nodeport => node_port.and_then(|p| {
                    let preferred = l.configuration.preferred_node_port_address_type;
                    join(
                        facts
                            .node_addresses
                            .iter()
                            .filter_map(|a| node_address(a, preferred))
                            .collect(),
                        p,
                    )
                }),
                ListenerType::Loadbalancer => join(ingress.iter().map(|h| bracket(h)).collect(), l.port),
            };
            ListenerStatus {
                name: l.name.clone(),
                type_: match l.type_ {
                    ListenerType::Internal => "internal",
                    ListenerType::Nodeport => "nodeport",
                    ListenerType::Loadbalancer => "loadbalancer",
                }
                .into(),
                bootstrap_servers,
            }
        })
        .collect()
}

/// The name of broker `ordinal`'s Service for an external listener.
pub fn broker_service(names: &Names, ordinal: i32, listener: &str) -> String {
    format!("{}-{listener}", names.pod(ordinal))
}

/// The name of an external listener's bootstrap Service.
pub fn bootstrap_service(names: &Names, listener: &str) -> String {
    format!("{}-{listener}-bootstrap", names.name)
}

/// The external listeners' Services: one per broker of `brokers` (selecting
/// its pod: during a scale-down the brokers still draining keep theirs) and a
/// bootstrap one per listener, of the listener's type.
pub fn services(
    cluster: &KafkaCluster,
    names: &Names,
    brokers: i32,
    meta: impl Fn(&str) -> ObjectMeta,
) -> Vec<Service> {
    let mut out = Vec::new();
    for l in external(cluster) {
        let port = ServicePort {
            name: Some(l.name.clone()),
            port: l.port,
            protocol: Some("TCP".into()),
            target_port: Some(IntOrString::String(l.name.clone())),
            ..Default::default()
        };
        let service = |name: String, selector: BTreeMap<String, String>, policy: &str| Service {
            metadata: meta(&name),
            spec: Some(ServiceSpec {
                type_: Some(l.type_.service_type().into()),
                selector: Some(selector),
                ports: Some(vec![port.clone()]),
                external_traffic_policy: Some(policy.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Bootstrap through any node (a client may pick one without a broker).
        out.push(service(bootstrap_service(names, &l.name), names.selector(), "Cluster"));
        for i in 0..brokers {
            let mut selector = names.selector();
            selector.insert("statefulset.kubernetes.io/pod-name".into(), names.pod(i));
            // A broker advertises its own node: no second hop, and the client's
            // address reaches the broker (its ACL hosts, quotas).
            out.push(service(broker_service(names, i, &l.name), selector, "Local"));
        }
    }
    out
}

/// The pod ServiceAccount's rights for the init container: read Services in
/// its namespace (a Role), read Nodes (a binding to the chart's ClusterRole).
/// The ClusterRoleBinding is cluster-scoped, so no owner reference: the
/// operator deletes it with the cluster.
pub fn rbac(names: &Names, meta: impl Fn(&str) -> ObjectMeta) -> (Role, RoleBinding, ClusterRoleBinding) {
    let role_name = format!("{}-broker-init", names.name);
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: names.name.clone(),
        namespace: Some(names.namespace.clone()),
        ..Default::default()
    };
    let role = Role {
        metadata: meta(&role_name),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["services".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(&role_name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: role_name.clone(),
        },
        subjects: Some(vec![subject.clone()]),
    };
    let cluster_binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(cluster_role_binding(names)),
            labels: Some(names.labels()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: BROKER_CLUSTER_ROLE.into(),
        },
        subjects: Some(vec![subject]),
    };
    (role, binding, cluster_binding)
}

/// The cluster's ClusterRoleBinding (namespace in the name: names are cluster-wide).
pub fn cluster_role_binding(names: &Names) -> String {
    format!("skein-broker-{}-{}", names.namespace, names.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ListenerConfiguration, NodeAddressType, RackSpec};

    fn cluster(rack: bool, listeners: Vec<ListenerSpec>) -> KafkaCluster {
        let mut kc = super::super::build::tests::fixture();
        kc.spec.rack = rack.then(|| RackSpec {
            topology_key: "topology.kubernetes.io/zone".into(),
        });
        kc.spec.listeners = listeners;
        kc
    }

    fn listener(name: &str, port: i32, type_: ListenerType, host: Option<&str>) -> ListenerSpec {
        ListenerSpec {
            name: name.into(),
            port,
            type_,
            tls: false,
            authentication: None,
            network_policy_peers: Vec::new(),
            configuration: ListenerConfiguration {
                broker_host: host.map(Into::into),
                preferred_node_port_address_type: None,
            },
        }
    }

    #[test]
    fn the_status_gives_each_listener_s_bootstrap_servers_once_known() {
        let mut ext = listener("ext", 9094, ListenerType::Nodeport, None);
        ext.configuration.preferred_node_port_address_type = Some(NodeAddressType::InternalIP);
        let kc = cluster(
            false,
            vec![
                listener("plain", 9092, ListenerType::Internal, None),
                ext,
                listener("lb", 9095, ListenerType::Loadbalancer, None),
            ],
        );
        let names = Names::new(&kc, "cluster.local");
        let node = |ip: &str| {
            vec![
                ("Hostname".to_string(), "n".to_string()),
                ("InternalIP".to_string(), ip.to_string()),
            ]
        };
        let mut facts = ExternalFacts::default();
        let servers = |facts: &ExternalFacts| -> Vec<Option<String>> {
            listener_status(&kc, &names, facts)
                .into_iter()
                .map(|l| l.bootstrap_servers)
                .collect()
        };
        // Nothing placed or provisioned yet: only the internal listener is known.
        assert_eq!(servers(&facts)[1..], [None, None]);
        facts.bootstrap.insert("ext".into(), (Some(31000), Vec::new()));
        facts
            .bootstrap
            .insert("lb".into(), (Some(32000), vec!["203.0.113.5".into(), "fd00::1".into()]));
        facts.node_addresses = vec![node("10.0.0.2"), node("10.0.0.1"), node("10.0.0.2")];
        let st = listener_status(&kc, &names, &facts);
        assert_eq!(
            st[0].bootstrap_servers.as_deref(),
            Some(format!("{}.{}.svc.cluster.local:9092", names.bootstrap, names.namespace).as_str())
        );
        assert_eq!(
            (st[1].type_.as_str(), st[1].bootstrap_servers.as_deref()),
            ("nodeport", Some("10.0.0.1:31000,10.0.0.2:31000"))
        );
        assert_eq!(
            st[2].bootstrap_servers.as_deref(),
            Some("203.0.113.5:9095,[fd00::1]:9095")
        );
    }

    #[test]
    fn no_racks_and_no_external_listener_need_no_init_container() {
        let kc = cluster(false, vec![listener("plain", 9092, ListenerType::Internal, None)]);
        assert!(!needed(&kc));
        assert!(properties(&kc).is_empty());
        assert!(owned_keys(&kc).is_empty());
    }

    #[test]
    fn racks_read_broker_rack_from_the_node_label_file_and_pick_the_rack_aware_selector() {
        let mut kc = cluster(true, Vec::new());
        let p: BTreeMap<_, _> = properties(&kc).into_iter().collect();
        assert_eq!(p["broker.rack"], "${init:/etc/skein-init:rack}");
        assert_eq!(p["config.providers.init.class"], DIRECTORY_PROVIDER);
        assert_eq!(p["config.providers.init.param.allowed.paths"], INIT_DIR);
        assert_eq!(p["replica.selector.class"], RACK_AWARE_SELECTOR);
        assert_eq!(
            args(&kc),
            [
                "broker-init",
                "--dir",
                INIT_DIR,
                "--rack-label",
                "topology.kubernetes.io/zone"
            ]
        );
        // The spec's own selector stays (it is in the spec's config, written after).
        kc.spec.config.insert("replica.selector.class".into(), "".into());
        assert!(!properties(&kc).iter().any(|(k, _)| k == "replica.selector.class"));
    }

    #[test]
    fn external_listeners_get_a_service_per_broker_and_a_bootstrap_one() {
        let mut ext = listener("ext", 9094, ListenerType::Nodeport, Some("kafka-{id}.example.com"));
        ext.configuration.preferred_node_port_address_type = Some(NodeAddressType::InternalIP);
        let kc = cluster(
            false,
            vec![
                listener("plain", 9092, ListenerType::Internal, None),
                ext,
                listener("lb", 9095, ListenerType::Loadbalancer, None),
            ],
        );
        let names = Names::new(&kc, "cluster.local");
        let services = services(&kc, &names, kc.spec.replicas, |n| ObjectMeta {
            name: Some(n.into()),
            ..Default::default()
        });
        let replicas = kc.spec.replicas as usize;
        assert_eq!(services.len(), 2 * (1 + replicas));
        let by_name: BTreeMap<String, &Service> =
            services.iter().map(|s| (s.metadata.name.clone().unwrap(), s)).collect();
        let pod0 = by_name[&broker_service(&names, 0, "ext")].spec.as_ref().unwrap();
        assert_eq!(pod0.type_.as_deref(), Some("NodePort"));
        assert_eq!(
            pod0.selector.as_ref().unwrap()["statefulset.kubernetes.io/pod-name"],
            names.pod(0)
        );
        let lb = by_name[&bootstrap_service(&names, "lb")].spec.as_ref().unwrap();
        assert_eq!(lb.type_.as_deref(), Some("LoadBalancer"));
        assert!(!lb
            .selector
            .as_ref()
            .unwrap()
            .contains_key("statefulset.kubernetes.io/pod-name"));
        assert_eq!(
            args(&kc)[3..],
            [
                "--listener",
                "name=ext,type=nodeport,port=9094,host=kafka-{id}.example.com,address-type=InternalIP",
                "--listener",
                "name=lb,type=loadbalancer,port=9095",
            ]
        );
        assert_eq!(owned_keys(&kc), ["config.providers"]);
    }
}
