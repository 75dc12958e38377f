//! `skein-operator broker-init`: a broker pod's init container (see
//! `cluster/init.rs`). It reads the pod's node (its rack label, its
//! addresses) and the broker's own Services (node ports, load balancer
//! addresses) with the pod's ServiceAccount, and writes one file each for the
//! broker's config provider: `rack`, `<listener>.address` (`host:port`).
//!
//! A node without the rack label, or a listener with no address to give, is an
//! error that names it: the pod stays in its init phase (the kubelet retries)
//! rather than a broker starting in the wrong rack or advertising nothing. A
//! load balancer not provisioned yet is waited for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::{Api, Client};

use crate::cluster::init::{bracket, node_address};
use crate::crd::NodeAddressType;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the files go.
    #[arg(long)]
    pub dir: PathBuf,
    /// The node label whose value is this broker's `broker.rack`.
    #[arg(long)]
    pub rack_label: Option<String>,
    /// An external listener: `name=N,type=nodeport|loadbalancer,port=P[,host=TEMPLATE][,address-type=T]`.
    #[arg(long = "listener", value_parser = parse_listener)]
    pub listeners: Vec<ExternalListener>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalListener {
    pub name: String,
    pub load_balancer: bool,
    pub port: i32,
    /// `brokerHost`, `{id}` for the broker id.
    pub host: Option<String>,
    pub address_type: Option<NodeAddressType>,
}

fn parse_listener(arg: &str) -> Result<ExternalListener, String> {
    let mut l = ExternalListener {
        name: String::new(),
        load_balancer: false,
        port: 0,
        host: None,
        address_type: None,
    };
    for part in arg.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected key=value"))?;
        match k {
            "name" => l.name = v.to_string(),
            "type" => {
                l.load_balancer = match v {
                    "nodeport" => false,
                    "loadbalancer" => true,
                    _ => return Err(format!("type `{v}`: nodeport or loadbalancer")),
                }
            }
            "port" => l.port = v.parse().map_err(|_| format!("port `{v}`: not a number"))?,
            "host" => l.host = Some(v.to_string()),
            "address-type" => {
                l.address_type = Some(
                    NodeAddressType::ALL
                        .into_iter()
                        .find(|t| t.as_str() == v)
                        .ok_or_else(|| {
                            format!(
                                "address-type `{v}`: one of ExternalDNS, ExternalIP, InternalDNS, InternalIP, Hostname"
                            )
                        })?,
                )
            }
            _ => return Err(format!("`{k}`: unknown (name, type, port, host, address-type)")),
        }
    }
    if l.name.is_empty() || l.port == 0 {
        return Err("name and port are required".into());
    }
    Ok(l)
}

/// The node's rack: its label's value. Pure.
pub fn rack(node: &Node, label: &str) -> Result<String, String> {
    let name = node.metadata.name.clone().unwrap_or_default();
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label))
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| format!("node {name} has no label {label}: label the node, or change spec.rack.topologyKey"))
}

/// The `host:port` broker `ordinal` advertises on `l`: Ok(None) while a load
/// balancer has no address yet. Pure.
pub fn address(l: &ExternalListener, ordinal: i32, node: &Node, service: &Service) -> Result<Option<String>, String> {
    let service_name = service.metadata.name.clone().unwrap_or_default();
    let port = if l.load_balancer {
        l.port
    } else {
        service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some(&l.name)))
            .and_then(|p| p.node_port)
            .ok_or_else(|| format!("Service {service_name} has no node port for {}", l.name))?
    };
    if let Some(host) = &l.host {
        return Ok(Some(format!("{}:{port}", host.replace("{id}", &ordinal.to_string()))));
    }
    if l.load_balancer {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .and_then(|i| i.first());
        let host = ingress.and_then(|i| i.hostname.clone().or_else(|| i.ip.clone()));
        return Ok(host.map(|h| format!("{}:{port}", bracket(&h))));
    }
    let addresses: Vec<(String, String)> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    let host = node_address(&addresses, l.address_type).ok_or_else(|| {
        format!(
            "node {} lists no address for listener {}",
            node.metadata.name.clone().unwrap_or_default(),
            l.name
        )
    })?;
    Ok(Some(format!("{host}:{port}")))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (the pod spec passes it from the downward API)"))
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, value)
        .and_then(|_| std::fs::rename(&tmp, dir.join(file)))
        .map_err(|e| format!("cannot write {}: {e}", dir.join(file).display()))
}

/// Reads the node and Services, writes the files.
pub async fn run(args: Args) -> Result<(), String> {
    let pod = env("POD_NAME")?;
    let namespace = env("POD_NAMESPACE")?;
    let node_name = env("NODE_NAME")?;
    let ordinal: i32 = pod
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| format!("pod {pod} has no ordinal (is it a StatefulSet's?)"))?;
    let client = Client::try_default()
        .await
        .map_err(|e| format!("no API credentials in the pod: {e}"))?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes
        .get(&node_name)
        .await
        .map_err(|e| format!("cannot read node {node_name}: {e}"))?;
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    if let Some(label) = &args.rack_label {
        let rack = rack(&node, label)?;
        write(&args.dir, crate::cluster::init::RACK_FILE, &rack)?;
        tracing::info!(node = %node_name, %rack, "broker.rack");
    }
    let services: Api<Service> = Api::namespaced(client, &namespace);
    for l in &args.listeners {
        let name = format!("{pod}-{}", l.name);
        loop {
            let service = services
                .get(&name)
                .await
                .map_err(|e| format!("cannot read Service {name}: {e}"))?;
            match address(l, ordinal, &node, &service)? {
                Some(a) => {
                    write(&args.dir, &crate::cluster::init::address_file(&l.name), &a)?;
                    tracing::info!(listener = %l.name, address = %a, "advertised");
                    break;
                }
                None => {
                    tracing::info!(service = %name, "waiting for the load balancer's address");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(labels: &[(&str, &str)], addresses: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                addresses: Some(
                    addresses
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: t.to_string(),
                            address: a.to_string(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn service(node_port: Option<i32>, ingress: Option<(&str, bool)>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("kc-1-ext".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("ext".into()),
                    port: 9094,
                    node_port,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: ingress.map(|(a, hostname)| ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        hostname: hostname.then(|| a.to_string()),
                        ip: (!hostname).then(|| a.to_string()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn listener_arguments_parse_and_bad_ones_are_named() {
        let l = parse_listener("name=ext,type=nodeport,port=9094,host=k-{id}.x,address-type=InternalIP").unwrap();
        assert_eq!(l.host.as_deref(), Some("k-{id}.x"));
        assert_eq!(l.address_type, Some(NodeAddressType::InternalIP));
        for (arg, want) in [
            ("name=ext", "required"),
            ("name=ext,port=x", "not a number"),
            ("name=ext,port=1,type=ingress", "nodeport or loadbalancer"),
            ("name=ext,port=1,address-type=Public", "one of"),
            ("name=ext,port=1,colour=red", "unknown"),
            ("ext", "key=value"),
        ] {
            let err = parse_listener(arg).unwrap_err();
            assert!(err.contains(want), "{arg}: {err}");
        }
    }

    #[test]
    fn the_rack_is_the_node_label_and_a_missing_label_is_named() {
        let n = node(&[("topology.kubernetes.io/zone", "zone-b")], &[]);
        assert_eq!(rack(&n, "topology.kubernetes.io/zone").unwrap(), "zone-b");
        let err = rack(&n, "rack").unwrap_err();
        assert!(err.contains("node n1 has no label rack"), "{err}");
    }

    #[test]
    fn a_nodeport_listener_advertises_the_preferred_node_address_and_the_node_port() {
        let l = parse_listener("name=ext,type=nodeport,port=9094").unwrap();
        let n = node(
            &[],
            &[
                ("Hostname", "n1"),
                ("InternalIP", "10.0.0.5"),
                ("ExternalIP", "203.0.113.9"),
            ],
        );
        let s = service(Some(31001), None);
        assert_eq!(address(&l, 1, &n, &s).unwrap().as_deref(), Some("203.0.113.9:31001"));
        let internal = ExternalListener {
            address_type: Some(NodeAddressType::InternalIP),
            ..l.clone()
        };
        assert_eq!(
            address(&internal, 1, &n, &s).unwrap().as_deref(),
            Some("10.0.0.5:31001")
        );
        let v6 = node(&[], &[("InternalIP", "fd00::5")]);
        assert_eq!(address(&l, 1, &v6, &s).unwrap().as_deref(), Some("[fd00::5]:31001"));
        let named = ExternalListener {
            host: Some("kafka-{id}.example.com".into()),
            ..l.clone()
        };
        assert_eq!(
            address(&named, 1, &n, &s).unwrap().as_deref(),
            Some("kafka-1.example.com:31001")
        );
        let err = address(&l, 1, &n, &service(None, None)).unwrap_err();
        assert!(err.contains("no node port"), "{err}");
        let err = address(&l, 1, &node(&[], &[]), &s).unwrap_err();
        assert!(err.contains("no address"), "{err}");
    }

    #[test]
    fn a_load_balancer_listener_waits_for_its_address() {
        let l = parse_listener("name=ext,type=loadbalancer,port=9094").unwrap();
        let n = node(&[], &[("InternalIP", "10.0.0.5")]);
        assert_eq!(address(&l, 0, &n, &service(None, None)).unwrap(), None);
        let ip = service(None, Some(("198.51.100.7", false)));
        assert_eq!(address(&l, 0, &n, &ip).unwrap().as_deref(), Some("198.51.100.7:9094"));
        let dns = service(None, Some(("lb.example.com", true)));
        assert_eq!(
            address(&l, 0, &n, &dns).unwrap().as_deref(),
            Some("lb.example.com:9094")
        );
    }
}
