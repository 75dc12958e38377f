//! The brokers' listeners from `spec.listeners`: Kafka's listener keys, the
//! ports, the TLS files and the certificates' names. Pure.
//!
//! No listeners in the spec: one internal plaintext listener on 9092, as
//! before listeners existed. With any listener encrypted or authenticated, the
//! brokers replicate over their own REPLICATION listener (9091) and the quorum
//! talks on CONTROLLER (9093), both TLS with client certificates from the
//! cluster CA; the operator connects to REPLICATION with its own certificate.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{AuthenticationType, KafkaCluster, ListenerSpec};

use super::build::{Names, CONTROLLER_PORT, KAFKA_PORT};

/// The brokers' replication listener (and the operator's way in) on secured clusters.
pub const REPLICATION_PORT: i32 = 9091;
/// Where the brokers' certificates are mounted (`<pod>.pem`: key and chain).
pub const CERTS_DIR: &str = "/etc/skein-tls/certs";
/// Where the cluster CA's trust bundle is mounted (`ca.crt`).
pub const CLUSTER_CA_DIR: &str = "/etc/skein-tls/cluster-ca";
/// Where the clients CA's trust bundle is mounted (`ca.crt`).
pub const CLIENTS_CA_DIR: &str = "/etc/skein-tls/clients-ca";
/// The leaf certificate the operator authenticates with.
pub const OPERATOR_LEAF: &str = "operator";

/// One Kafka listener of every broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Kafka's listener name (`PLAIN`, `REPLICATION`).
    pub name: String,
    pub port: i32,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub protocol: &'static str,
    /// The SASL mechanism clients use.
    pub sasl: Option<&'static str>,
    /// Clients present a certificate signed by this CA directory.
    pub client_ca: Option<&'static str>,
    /// Served to clients through the bootstrap Service.
    pub client: bool,
    /// Reached from outside: advertises the address the init container found.
    pub external: bool,
}

/// Listener names the operator uses itself (and port names of the pods).
pub const RESERVED_NAMES: &[&str] = &["controller", "replication", "http", "plaintext"];

/// The named ports of the Kafka listeners (`kafka` for the default one).
pub fn ports(cluster: &KafkaCluster) -> Vec<(String, i32)> {
    if cluster.spec.listeners.is_empty() {
        return vec![("kafka".into(), KAFKA_PORT)];
    }
    listeners(cluster)
        .iter()
        .map(|l| (l.name.to_ascii_lowercase(), l.port))
        .collect()
}

/// The Secrets of a secured cluster, as Strimzi names them.
pub struct SecretNames {
    /// The cluster CA's keys (`ca.key`, and one per generation held).
    pub cluster_ca: String,
    /// The cluster CA's trust bundle (`ca.crt`): what clients and brokers trust.
    pub cluster_ca_cert: String,
    pub clients_ca: String,
    pub clients_ca_cert: String,
    /// The brokers' (and the operator's) certificates: `<leaf>.crt`, `.key`, `.pem`.
    pub brokers: String,
}

impl SecretNames {
    pub fn new(names: &Names) -> SecretNames {
        let n = &names.name;
        SecretNames {
            cluster_ca: format!("{n}-cluster-ca"),
            cluster_ca_cert: format!("{n}-cluster-ca-cert"),
            clients_ca: format!("{n}-clients-ca"),
            clients_ca_cert: format!("{n}-clients-ca-cert"),
            brokers: format!("{n}-brokers"),
        }
    }

    /// The Secret volumes of a broker pod: (volume, Secret, mount path).
    pub fn volumes(&self) -> [(&'static str, &str, &'static str); 3] {
        [
            ("certs", &self.brokers, CERTS_DIR),
            ("cluster-ca", &self.cluster_ca_cert, CLUSTER_CA_DIR),
            ("clients-ca", &self.clients_ca_cert, CLIENTS_CA_DIR),
        ]
    }
}

/// Whether the spec asks for encryption or authentication anywhere.
pub fn secured(cluster: &KafkaCluster) -> bool {
    cluster
        .spec
        .listeners
        .iter()
        .any(|l| l.tls || l.authentication.is_some())
}

/// Every listener of the brokers except CONTROLLER, clients' first.
pub fn listeners(cluster: &KafkaCluster) -> Vec<Listener> {
    if cluster.spec.listeners.is_empty() {
        return vec![Listener {
            name: "PLAINTEXT".into(),
            port: KAFKA_PORT,
            protocol: "PLAINTEXT",
            sasl: None,
            client_ca: None,
            client: true,
            external: false,
        }];
    }
    let mut out: Vec<Listener> = cluster.spec.listeners.iter().map(client_listener).collect();
    let secure = secured(cluster);
    out.push(Listener {
        name: "REPLICATION".into(),
        port: REPLICATION_PORT,
        protocol: if secure { "SSL" } else { "PLAINTEXT" },
        sasl: None,
        client_ca: secure.then_some(CLUSTER_CA_DIR),
        client: false,
        external: false,
    });
    out
}

fn client_listener(l: &ListenerSpec) -> Listener {
    let auth = l.authentication.as_ref().map(|a| a.type_);
    let sasl = auth.and_then(AuthenticationType::sasl_mechanism);
    Listener {
        name: l.name.to_ascii_uppercase(),
        port: l.port,
        protocol: match (l.tls, sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        },
        sasl,
        client_ca: (auth == Some(AuthenticationType::Tls)).then_some(CLIENTS_CA_DIR),
        client: true,
        external: l.type_.external(),
    }
}

/// The listener keys of `server.properties`, in order.
pub fn properties(cluster: &KafkaCluster, names: &Names) -> Vec<(String, String)> {
    let host = format!(
        "${{HOSTNAME}}.{}.{}.svc.{}",
        names.headless,
        names.namespace,
        names.domain()
    );
    let all = listeners(cluster);
    let secure = secured(cluster);
    let controller_protocol = if secure { "SSL" } else { "PLAINTEXT" };
    let mut out = Vec::new();
    let mut push = |k: &str, v: String| out.push((k.to_string(), v));
    let bind: Vec<String> = all.iter().map(|l| format!("{}://:{}", l.name, l.port)).collect();
    push(
        "listeners",
        format!("{},CONTROLLER://:{CONTROLLER_PORT}", bind.join(",")),
    );
    // An external listener advertises what the init container found: the
    // node's address and node port, or the load balancer's address.
    let advertised: Vec<String> = all
        .iter()
        .map(|l| match l.external {
            true => format!(
                "{}://{}",
                l.name,
                super::init::reference(&super::init::address_file(&l.name))
            ),
            false => format!("{}://{host}:{}", l.name, l.port),
        })
        .collect();
    push("advertised.listeners", advertised.join(","));
    let map: Vec<String> = all.iter().map(|l| format!("{}:{}", l.name, l.protocol)).collect();
    push(
        "listener.security.protocol.map",
        format!("{},CONTROLLER:{controller_protocol}", map.join(",")),
    );
    let inter = if cluster.spec.listeners.is_empty() {
        "PLAINTEXT"
    } else {
        "REPLICATION"
    };
    push("inter.broker.listener.name", inter.into());
    push("controller.listener.names", "CONTROLLER".into());
    if !secure {
        return out;
    }
    push("ssl.keystore.location", format!("{CERTS_DIR}/${{HOSTNAME}}.pem"));
    for l in all.iter().filter(|l| l.client_ca.is_some()) {
        let prefix = format!("listener.name.{}", l.name.to_ascii_lowercase());
        push(
            &format!("{prefix}.ssl.truststore.location"),
            format!("{}/ca.crt", l.client_ca.unwrap_or_default()),
        );
        push(&format!("{prefix}.ssl.client.auth"), "required".into());
    }
    push(
        "listener.name.controller.ssl.truststore.location",
        format!("{CLUSTER_CA_DIR}/ca.crt"),
    );
    push("listener.name.controller.ssl.client.auth", "required".into());
    for l in all.iter().filter(|l| l.sasl.is_some()) {
        push(
            &format!("listener.name.{}.sasl.enabled.mechanisms", l.name.to_ascii_lowercase()),
            l.sasl.unwrap_or_default().into(),
        );
    }
    // TLS clients connect as ssl.truststore.location trusts for server
    // certificates too: the brokers' own client side (replication, the quorum).
    push("ssl.truststore.location", format!("{CLUSTER_CA_DIR}/ca.crt"));
    out
}

/// The operator's pods as a NetworkPolicy peer: the chart's label, any namespace.
fn operator_peer() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "skein-operator".to_string(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// With `spec.networkPolicy.enabled`: who may reach which broker port. The
/// brokers reach every port of each other; the operator its own way in and
/// the HTTP port; each client listener takes its `networkPolicyPeers` (anyone
/// when none); the HTTP port (probes, metrics, status) is open. Pure.
pub fn network_policy(cluster: &KafkaCluster, names: &Names) -> Option<NetworkPolicy> {
    use super::build::HTTP_PORT;
    if !cluster.spec.network_policy.enabled {
        return None;
    }
    let tcp = |port: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let brokers = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(names.selector()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let all = listeners(cluster);
    let mut rules = Vec::new();
    // The brokers among themselves: every listener and the quorum.
    let mut broker_ports: Vec<i32> = all.iter().map(|l| l.port).collect();
    broker_ports.push(CONTROLLER_PORT);
    rules.push(NetworkPolicyIngressRule {
        from: Some(vec![brokers]),
        ports: Some(broker_ports.into_iter().map(tcp).collect()),
    });
    rules.push(NetworkPolicyIngressRule {
        from: Some(vec![operator_peer()]),
        ports: Some(vec![tcp(operator_port(cluster)), tcp(HTTP_PORT)]),
    });
    for spec in &cluster.spec.listeners {
        rules.push(NetworkPolicyIngressRule {
            from: (!spec.network_policy_peers.is_empty()).then(|| spec.network_policy_peers.clone()),
            ports: Some(vec![tcp(spec.port)]),
        });
    }
    if cluster.spec.listeners.is_empty() {
        rules.push(NetworkPolicyIngressRule {
            from: None,
            ports: Some(vec![tcp(KAFKA_PORT)]),
        });
    }
    rules.push(NetworkPolicyIngressRule {
        from: None,
        ports: Some(vec![tcp(HTTP_PORT)]),
    });
    Some(NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("{}-network-policy", names.name)),
            namespace: Some(names.namespace.clone()),
            labels: Some(names.labels()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            ..Default::default()
        }),
    })
}

/// The principals that may do anything: the brokers and the operator./// The principals that may do anything: the brokers and the operator.
pub fn super_users(names: &Names) -> String {
    format!(
        "User:CN={};User:CN={}",
        broker_common_name(names),
        operator_common_name(names)
    )
}

/// The subject every broker's certificate carries (one principal for all brokers).
pub fn broker_common_name(names: &Names) -> String {
    format!("{}-broker", names.name)
}

pub fn operator_common_name(names: &Names) -> String {
    format!("{}-operator", names.name)
}

/// The DNS names broker `ordinal`'s certificate carries: its pod's, the
/// bootstrap Service's, and the `brokerHost` of each external listener.
pub fn broker_dns_names(cluster: &KafkaCluster, names: &Names, ordinal: i32) -> Vec<String> {
    let svc = format!("{}.svc", names.namespace);
    let mut out = vec![
        format!("{}.{}.{svc}.{}", names.pod(ordinal), names.headless, names.domain()),
        format!("{}.{}.{svc}", names.pod(ordinal), names.headless),
        format!("{}.{svc}.{}", names.bootstrap, names.domain()),
        format!("{}.{svc}", names.bootstrap),
        names.bootstrap.clone(),
    ];
    for l in super::init::external(cluster) {
        if let Some(host) = &l.configuration.broker_host {
            let host = broker_host(host, ordinal);
            if !out.contains(&host) {
                out.push(host);
            }
        }
    }
    out
}

/// A `brokerHost` template for broker `ordinal`.
pub fn broker_host(template: &str, ordinal: i32) -> String {
    template.replace("{id}", &ordinal.to_string())
}

/// What the operator's admin client connects to: the default listener, or
/// REPLICATION once listeners are declared.
pub fn operator_port(cluster: &KafkaCluster) -> i32 {
    // The replication listener whenever listeners are declared: the first
    // client listener may be an external one, advertising addresses only
    // clients outside reach.
    if cluster.spec.listeners.is_empty() {
        KAFKA_PORT
    } else {
        REPLICATION_PORT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::build::tests::fixture;
    use crate::crd::{ListenerAuthentication, ListenerType};

    fn listener(name: &str, port: i32, tls: bool, auth: Option<AuthenticationType>) -> ListenerSpec {
        ListenerSpec {
            name: name.into(),
            port,
            type_: ListenerType::Internal,
            tls,
            authentication: auth.map(|type_| ListenerAuthentication { type_ }),
            network_policy_peers: Vec::new(),
            configuration: Default::default(),
        }
    }

    fn props(kc: &KafkaCluster) -> std::collections::BTreeMap<String, String> {
        properties(kc, &Names::new(kc, "cluster.local")).into_iter().collect()
    }

    #[test]
    fn the_network_policy_opens_each_port_to_its_clients_only() {
        let mut kc = fixture();
        assert!(
            network_policy(&kc, &Names::new(&kc, "cluster.local")).is_none(),
            "off by default"
        );
        kc.spec.network_policy.enabled = true;
        let mut tls = listener("tls", 9094, true, Some(AuthenticationType::ScramSha512));
        tls.network_policy_peers = vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), "orders".to_string())])),
                ..Default::default()
            }),
            ..Default::default()
        }];
        kc.spec.listeners = vec![tls, listener("open", 9096, false, None)];
        let np = network_policy(&kc, &Names::new(&kc, "cluster.local")).unwrap();
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_labels.unwrap()["app.kubernetes.io/instance"],
            "demo"
        );
        let rules: Vec<(Vec<i32>, Option<String>)> = spec
            .ingress
            .unwrap()
            .into_iter()
            .map(|r| {
                let ports = r
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| match p.port {
                        Some(IntOrString::Int(n)) => n,
                        _ => 0,
                    })
                    .collect();
                let from = r.from.map(|f| serde_json::to_string(&f).unwrap());
                (ports, from)
            })
            .collect();
        let ports: Vec<&Vec<i32>> = rules.iter().map(|(p, _)| p).collect();
        assert_eq!(
            ports,
            [
                &vec![9094, 9096, 9091, 9093],
                &vec![9091, 9644],
                &vec![9094],
                &vec![9096],
                &vec![9644]
            ]
        );
        assert!(
            rules[0].1.as_deref().unwrap().contains("component\":\"broker\""),
            "{rules:?}"
        );
        assert!(rules[1].1.as_deref().unwrap().contains("skein-operator"), "{rules:?}");
        assert!(rules[2].1.as_deref().unwrap().contains("orders"), "{rules:?}");
        assert_eq!(rules[3].1, None, "a listener without peers is open");
        assert_eq!(rules[4].1, None);
    }

    #[test]
    fn no_listeners_is_one_plaintext_listener_as_before() {
        let p = props(&fixture());
        assert_eq!(p["listeners"], "PLAINTEXT://:9092,CONTROLLER://:9093");
        assert_eq!(
            p["listener.security.protocol.map"],
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        );
        assert_eq!(p["inter.broker.listener.name"], "PLAINTEXT");
        assert!(!p.contains_key("ssl.keystore.location"));
    }

    #[test]
    fn a_secured_listener_puts_replication_and_the_quorum_on_mutual_tls() {
        let mut kc = fixture();
        kc.spec.listeners = vec![
            listener("tls", 9093 + 1, true, Some(AuthenticationType::ScramSha512)),
            listener("mtls", 9095, true, Some(AuthenticationType::Tls)),
        ];
        let p = props(&kc);
        assert_eq!(
            p["listeners"],
            "TLS://:9094,MTLS://:9095,REPLICATION://:9091,CONTROLLER://:9093"
        );
        assert_eq!(
            p["listener.security.protocol.map"],
            "TLS:SASL_SSL,MTLS:SSL,REPLICATION:SSL,CONTROLLER:SSL"
        );
        assert_eq!(p["inter.broker.listener.name"], "REPLICATION");
        assert_eq!(p["listener.name.tls.sasl.enabled.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(
            p["listener.name.mtls.ssl.truststore.location"],
            "/etc/skein-tls/clients-ca/ca.crt"
        );
        assert_eq!(p["listener.name.replication.ssl.client.auth"], "required");
        assert_eq!(p["listener.name.controller.ssl.client.auth"], "required");
        assert!(!p.contains_key("listener.name.tls.ssl.client.auth"));
        assert_eq!(operator_port(&kc), REPLICATION_PORT);
    }

    #[test]
    fn plaintext_listeners_stay_plaintext_inside() {
        let mut kc = fixture();
        kc.spec.listeners = vec![listener("plain", 9092, false, None)];
        let p = props(&kc);
        assert_eq!(
            p["listener.security.protocol.map"],
            "PLAIN:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT"
        );
        // The operator replicates' way in, never a client listener that may be external.
        assert_eq!(operator_port(&kc), REPLICATION_PORT);
    }

    #[test]
    fn an_external_listener_advertises_the_init_container_s_address_and_names_its_host_in_certificates() {
        let mut kc = fixture();
        let mut ext = listener("ext", 9094, true, None);
        ext.type_ = ListenerType::Nodeport;
        ext.configuration.broker_host = Some("kafka-{id}.example.com".into());
        kc.spec.listeners = vec![listener("plain", 9092, false, None), ext];
        let p = props(&kc);
        let advertised = &p["advertised.listeners"];
        assert!(
            advertised.contains("EXT://${init:/etc/skein-init:ext.address}"),
            "{advertised}"
        );
        assert!(advertised.contains("PLAIN://${HOSTNAME}."), "{advertised}");
        assert!(p["listeners"].contains("EXT://:9094"));
        let names = Names::new(&kc, "cluster.local");
        assert!(broker_dns_names(&kc, &names, 2).contains(&"kafka-2.example.com".to_string()));
    }
}
