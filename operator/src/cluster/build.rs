//! The desired Kubernetes objects of a KafkaCluster: pure functions of the spec.
//!
//! Golden tests pin their YAML (`operator/tests/golden/`); `skein-operator render`
//! prints them for any KafkaCluster file.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretVolumeSource, Service,
    ServiceAccount, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::{KafkaCluster, DEFAULT_IMAGE};

/// Port of the client (and inter-broker) listener.
pub const KAFKA_PORT: i32 = 9092;
/// Port of the metadata quorum listener.
pub const CONTROLLER_PORT: i32 = 9093;
/// Port of the broker's HTTP endpoint (probes, /metrics).
pub const HTTP_PORT: i32 = 9644;
/// Where each broker's volume is mounted; the log dir is `data/` under it.
pub const DATA_MOUNT: &str = "/var/lib/skein";
/// Pod annotation holding the hash of `server.properties`.
pub const CONFIG_HASH_ANNOTATION: &str = "skein.dev/config-hash";
/// On a KafkaCluster, any new value restarts every broker, one at a time.
pub const RESTART_ANNOTATION: &str = "skein.dev/restart";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "skein-operator";
/// `authorizer.class.name` of clusters with `spec.authorization` (Kafka's KRaft authorizer).
pub const AUTHORIZER_CLASS: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// Controlled shutdown waits at most 5 s for the controller, then the broker
/// flushes and closes its logs; 60 s covers both with room for slow disks.
pub const TERMINATION_GRACE_SECONDS: i64 = 60;

/// How objects are built beyond the spec: the operator's own settings and what the API server serves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Image of brokers whose spec names none.
    pub broker_image: String,
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// `policy/v1` or, on API servers before 1.21, `policy/v1beta1`.
    pub pdb_api_version: String,
    /// Whether the server knows StatefulSet's persistentVolumeClaimRetentionPolicy
    /// (1.27+); older servers refuse it in an apply, and the operator deletes claims itself.
    pub pvc_retention_policy: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            broker_image: DEFAULT_IMAGE.into(),
            cluster_domain: "cluster.local".into(),
            pdb_api_version: "policy/v1".into(),
            pvc_retention_policy: true,
        }
    }
}

/// The names of a cluster's objects and of its brokers in DNS.
#[derive(Debug, Clone)]
pub struct Names {
    pub name: String,
    pub namespace: String,
    /// The headless Service that gives each pod its DNS name.
    pub headless: String,
    /// The Service clients bootstrap from.
    pub bootstrap: String,
    /// The ConfigMap holding `server.properties`.
    pub config: String,
    domain: String,
    /// The port clients bootstrap on (the first client listener).
    client_port: i32,
    /// The port the operator's admin client uses (REPLICATION when secured).
    operator_port: i32,
}

impl Names {
    pub fn new(cluster: &KafkaCluster, domain: &str) -> Names {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        Names {
            namespace: cluster.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            headless: format!("{name}-brokers"),
            bootstrap: format!("{name}-bootstrap"),
            config: format!("{name}-config"),
            domain: domain.to_string(),
            client_port: super::listeners::listeners(cluster)
                .first()
                .map_or(KAFKA_PORT, |l| l.port),
            operator_port: super::listeners::operator_port(cluster),
            name,
        }
    }

    /// The cluster's DNS domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Where the operator's admin client connects.
    pub fn operator_bootstrap(&self) -> String {
        format!(
            "{}.{}.svc.{}:{}",
            self.bootstrap, self.namespace, self.domain, self.operator_port
        )
    }

    /// Pod `ordinal`'s name.
    pub fn pod(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// Pod `ordinal`'s DNS name through the headless Service.
    pub fn pod_host(&self, ordinal: i32) -> String {
        format!(
            "{}.{}.{}.svc.{}",
            self.pod(ordinal),
            self.headless,
            self.namespace,
            self.domain
        )
    }

    /// The address clients bootstrap from.
    pub fn bootstrap_servers(&self) -> String {
        format!(
            "{}.{}.svc.{}:{}",
            self.bootstrap, self.namespace, self.domain, self.client_port
        )
    }

    /// Labels every object of the cluster carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector();
        l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
        l
    }

    /// Labels that select the cluster's broker pods.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "skein".to_string()),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
            ("app.kubernetes.io/component".to_string(), "broker".to_string()),
        ])
    }

    /// The selector as a string (status.selector, for the scale subresource).
    pub fn selector_string(&self) -> String {
        self.selector()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The cluster id of a KafkaCluster: its uid as Kafka writes ids (22 base64url
/// characters), so it is stable for the object's life and new for a new object.
pub fn cluster_id(cluster: &KafkaCluster) -> String {
    use base64::Engine;
    let uid = cluster.metadata.uid.clone().unwrap_or_default();
    let hex: String = uid.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    if bytes.len() == 16 {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    } else {
        // No uid (a file given to `render`): an id from the name, still 22 characters.
        let digest = Sha256::digest(cluster.metadata.name.clone().unwrap_or_default().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }
}

/// Every broker's `server.properties`: the operator's settings, then the spec's
/// config, one key per line in order. `${ORDINAL}` and `${HOSTNAME}` are
/// filled in by each broker from its pod name.
pub fn server_properties(cluster: &KafkaCluster, names: &Names, cluster_id: &str) -> String {
    // The initial voters: they start a new quorum. Later voters are the
    // quorum's own (changed through AddRaftVoter), so changing
    // spec.controllers changes no broker's properties.
    let initial = cluster
        .status
        .as_ref()
        .and_then(|s| s.controllers)
        .unwrap_or(cluster.spec.controllers);
    let voters = (0..initial)
        .map(|i| format!("{i}@{}:{CONTROLLER_PORT}", names.pod_host(i)))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = format!(
        "# Written by skein-operator for KafkaCluster {}/{}: edits here are overwritten.\n",
        names.namespace, names.name
    );
    let mut push = |k: &str, v: &str| out.push_str(&format!("{k}={v}\n"));
    push("cluster.id", cluster_id);
    push("node.id", "${ORDINAL}");
    push("controller.quorum.voters", &voters);
    for (k, v) in super::listeners::properties(cluster, names) {
        push(&k, &v);
    }
    for (k, v) in super::init::properties(cluster) {
        push(&k, &v);
    }
    push("log.dirs", &format!("{DATA_MOUNT}/data"));
    push("http.listener", &format!("0.0.0.0:{HTTP_PORT}"));
    let secured = super::listeners::secured(cluster);
    // Validation keeps an authorizer to clusters whose clients authenticate.
    if cluster.spec.authorization.is_some() {
        push("authorizer.class.name", AUTHORIZER_CLASS);
    }
    if secured {
        // The brokers and the operator first, then the spec's own.
        let mut users = vec![super::listeners::super_users(names)];
        if let Some(authz) = &cluster.spec.authorization {
            users.extend(authz.super_users.iter().cloned());
        }
        if let Some(theirs) = cluster.spec.config.get("super.users").filter(|t| !t.trim().is_empty()) {
            users.push(theirs.clone());
        }
        push("super.users", &users.join(";"));
    }
    for (k, v) in &cluster.spec.config {
        if !(secured && k == "super.users") {
            push(k, v);
        }
    }
    out
}

/// The lines of `server.properties` that only a restart applies.
pub fn static_part(properties: &str) -> String {
    properties
        .lines()
        .filter(|l| {
            !l.split_once('=')
                .is_some_and(|(k, _)| skein_broker::config::DYNAMIC_BROKER_CONFIGS.contains(&k))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The hex SHA-256 of a text (the config hash on the pod template).
pub fn hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every object a KafkaCluster needs, ready for server-side apply.
#[derive(Debug, Clone)]
pub struct Desired {
    pub service_account: ServiceAccount,
    pub headless: Service,
    pub bootstrap: Service,
    pub config: ConfigMap,
    pub statefulset: StatefulSet,
    /// A PodDisruptionBudget in the API version the server serves.
    pub pdb: serde_json::Value,
    /// With `spec.networkPolicy.enabled`.
    pub network_policy: Option<k8s_openapi::api::networking::v1::NetworkPolicy>,
    /// The external listeners' Services (per broker, and bootstrap).
    pub external_services: Vec<Service>,
    /// The init container's rights, when it runs.
    pub init_rbac: Option<(Role, RoleBinding, ClusterRoleBinding)>,
}

impl Desired {
    /// The objects as JSON with apiVersion and kind, in apply order.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        fn typed<K: Resource<DynamicType = ()> + serde::Serialize>(k: &K) -> serde_json::Value {
            let mut v = serde_json::to_value(k).expect("k8s-openapi objects serialize");
            v["apiVersion"] = K::api_version(&()).into();
            v["kind"] = K::kind(&()).into();
            v
        }
        let mut out = vec![typed(&self.service_account)];
        if let Some((role, binding, cluster_binding)) = &self.init_rbac {
            out.extend([typed(role), typed(binding), typed(cluster_binding)]);
        }
        out.extend([typed(&self.headless), typed(&self.bootstrap)]);
        out.extend(self.external_services.iter().map(typed));
        out.extend([typed(&self.config), typed(&self.statefulset), self.pdb.clone()]);
        out.extend(self.network_policy.iter().map(typed));
        out
    }

    /// The objects as one YAML stream (golden tests, `render`).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for o in self.objects() {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&o).expect("JSON values serialize"));
        }
        out
    }
}

/// The external listeners' Services for `brokers` brokers (more than
/// `spec.replicas` while a scale-down drains).
pub fn external_services(cluster: &KafkaCluster, names: &Names, brokers: i32) -> Vec<Service> {
    super::init::services(cluster, names, brokers, |n| meta(cluster, names, n))
}

fn meta(cluster: &KafkaCluster, names: &Names, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels()),
        owner_references: owner_reference(cluster).map(|o| vec![o]),
        ..Default::default()
    }
}

fn owner_reference(cluster: &KafkaCluster) -> Option<OwnerReference> {
    let mut o = cluster.controller_owner_ref(&())?;
    o.block_owner_deletion = Some(true);
    Some(o)
}

/// Builds the desired objects of `cluster` (validated first).
pub fn build(cluster: &KafkaCluster, settings: &Settings) -> Desired {
    let names = Names::new(cluster, &settings.cluster_domain);
    let id = cluster_id(cluster);
    let properties = server_properties(cluster, &names, &id);
    let spec = &cluster.spec;
    let overrides = spec.pod_template.clone().unwrap_or_default();

    let service_account = ServiceAccount {
        metadata: meta(cluster, &names, &names.name),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    // Protocol spelled out: it is a list-map key, and servers before 1.21 refuse
    // an applied port without it.
    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some("TCP".into()),
        target_port: Some(IntOrString::String(name.into())),
        ..Default::default()
    };
    let kafka_ports = super::listeners::ports(cluster);
    // A secured cluster's certificates and trust bundles, updated in place by the
    // kubelet and reloaded by the brokers: renewals restart nothing.
    let secret_names = super::listeners::SecretNames::new(&names);
    let secret_volumes: Vec<(&str, &str, &str)> = if super::listeners::secured(cluster) {
        secret_names.volumes().to_vec()
    } else {
        Vec::new()
    };
    let headless = Service {
        metadata: meta(cluster, &names, &names.headless),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // The quorum must form before any broker is ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector()),
            ports: Some(
                kafka_ports
                    .iter()
                    .map(|(n, p)| port(n, *p))
                    .chain([port("controller", CONTROLLER_PORT)])
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bootstrap = Service {
        metadata: meta(cluster, &names, &names.bootstrap),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names.selector()),
            ports: Some(kafka_ports.iter().map(|(n, p)| port(n, *p)).collect()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let config = ConfigMap {
        metadata: meta(cluster, &names, &names.config),
        data: Some(BTreeMap::from([("server.properties".to_string(), properties.clone())])),
        ..Default::default()
    };

    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(names.labels());
    let mut pod_annotations = overrides.annotations.clone();
    // Keys the brokers take dynamically are applied with IncrementalAlterConfigs
    // and left out of the hash: changing them restarts nothing.
    pod_annotations.insert(CONFIG_HASH_ANNOTATION.into(), hash(&static_part(&properties)));
    if let Some(v) = cluster.annotations().get(RESTART_ANNOTATION) {
        pod_annotations.insert(RESTART_ANNOTATION.into(), v.clone());
    }
    let http_probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    let container_port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let image = spec.image.clone().unwrap_or_else(|| settings.broker_image.clone());
    let init = super::init::needed(cluster);
    let container = Container {
        name: "broker".into(),
        image: Some(image.clone()),
        args: Some(vec!["--config".into(), "/etc/skein/server.properties".into()]),
        ports: Some(
            kafka_ports
                .iter()
                .map(|(n, p)| container_port(n, *p))
                .chain([
                    container_port("controller", CONTROLLER_PORT),
                    container_port("http", HTTP_PORT),
                ])
                .collect(),
        ),
        // Ready once logs are recovered and the broker is registered and unfenced.
        readiness_probe: Some(http_probe("/readyz", 2, 3)),
        // /healthz only says the runtime turns, so a long log recovery is not killed.
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            ..http_probe("/healthz", 10, 6)
        }),
        resources: spec.resources.clone(),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "data".into(),
                    mount_path: DATA_MOUNT.into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "config".into(),
                    mount_path: "/etc/skein".into(),
                    read_only: Some(true),
                    ..Default::default()
                },
            ]
            .into_iter()
            .chain(secret_volumes.iter().map(|(volume, _, path)| VolumeMount {
                name: volume.to_string(),
                mount_path: path.to_string(),
                read_only: Some(true),
                ..Default::default()
            }))
            .chain(init.then(super::init::broker_mount))
            .collect(),
        ),
        ..Default::default()
    };
    // Spread over the rack key: as even as the nodes allow (a zone that is
    // down or full must not keep a broker from starting elsewhere).
    let spread = spec.rack.as_ref().map(|rack| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: rack.topology_key.clone(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let pod_spec = PodSpec {
        init_containers: init.then(|| vec![super::init::container(cluster, &image, None)]),
        containers: vec![container],
        topology_spread_constraints: spread,
        service_account_name: Some(names.name.clone()),
        automount_service_account_token: Some(false),
        // Service links would put Docker-style *_PORT variables in the environment,
        // and the broker reads SKEIN_* variables as config.
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            fs_group: Some(1000),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        volumes: Some(
            [Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names.config.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }]
            .into_iter()
            .chain(secret_volumes.iter().map(|(volume, secret, _)| Volume {
                name: volume.to_string(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .chain(if init { super::init::volumes() } else { Vec::new() })
            .collect(),
        ),
        affinity: overrides.affinity.clone(),
        tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
        node_selector: (!overrides.node_selector.is_empty()).then(|| overrides.node_selector.clone()),
        priority_class_name: overrides.priority_class_name.clone(),
        ..Default::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(names.labels()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let statefulset = StatefulSet {
        metadata: meta(cluster, &names, &names.name),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names.headless.clone()),
            // Every broker starts at once: the quorum needs its voters together.
            pod_management_policy: Some("Parallel".into()),
            // The operator restarts brokers itself, one at a time, ISR-aware.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: settings.pvc_retention_policy.then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(spec.storage.when_deleted.as_str().into()),
                    when_scaled: Some(spec.storage.when_scaled.as_str().into()),
                }
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pdb = PodDisruptionBudget {
        metadata: meta(cluster, &names, &names.name),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut pdb = serde_json::to_value(&pdb).expect("k8s-openapi objects serialize");
    pdb["apiVersion"] = settings.pdb_api_version.clone().into();
    pdb["kind"] = "PodDisruptionBudget".into();
    Desired {
        service_account,
        headless,
        bootstrap,
        config,
        statefulset,
        pdb,
        network_policy: super::listeners::network_policy(cluster, &names),
        external_services: external_services(cluster, &names, spec.replicas),
        init_rbac: init.then(|| super::init::rbac(&names, |n| meta(cluster, &names, n))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The KafkaCluster of the golden files.
    pub(crate) fn fixture() -> KafkaCluster {
        serde_yaml::from_str(include_str!("../../tests/golden/cluster.yaml")).expect("fixture parses")
    }

    #[test]
    fn desired_objects_match_the_golden_file() {
        let got = build(&fixture(), &Settings::default()).to_yaml();
        let want = include_str!("../../tests/golden/cluster.objects.yaml");
        pretty_assertions::assert_eq!(
            want,
            got,
            "regenerate: cargo run -p skein-operator -- render operator/tests/golden/cluster.yaml > operator/tests/golden/cluster.objects.yaml"
        );
    }

    #[test]
    fn a_config_change_changes_the_pod_template_hash() {
        let a = build(&fixture(), &Settings::default());
        let mut kc = fixture();
        kc.spec.config.insert("log.retention.ms".into(), "1000".into());
        let b = build(&kc, &Settings::default());
        let annotation = |d: &Desired, key: &str| {
            d.statefulset
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[key]
                .clone()
        };
        let hash_of = |d: &Desired| annotation(d, CONFIG_HASH_ANNOTATION);
        assert_ne!(hash_of(&a), hash_of(&b));
        // A replica count change is not a config change.
        kc = fixture();
        kc.spec.replicas += 2;
        assert_eq!(hash_of(&a), hash_of(&build(&kc, &Settings::default())));
        // Nor is a key the brokers take dynamically (it is applied, not restarted).
        kc = fixture();
        kc.spec
            .config
            .insert("unclean.leader.election.enable".into(), "true".into());
        let c = build(&kc, &Settings::default());
        assert_eq!(hash_of(&a), hash_of(&c));
        assert!(c.config.data.as_ref().unwrap()["server.properties"].contains("unclean.leader.election.enable=true"));
        // The restart annotation restarts.
        kc = fixture();
        kc.annotations_mut().insert(RESTART_ANNOTATION.into(), "1".into());
        let d = build(&kc, &Settings::default());
        assert_eq!(annotation(&d, RESTART_ANNOTATION), "1");
    }

    #[test]
    fn voters_are_the_first_controllers_ordinals() {
        let mut kc = fixture();
        kc.spec.controllers = 3;
        kc.spec.replicas = 5;
        let names = Names::new(&kc, "cluster.local");
        let p = server_properties(&kc, &names, "x");
        let voters = p.lines().find(|l| l.starts_with("controller.quorum.voters=")).unwrap();
        assert_eq!(voters.matches('@').count(), 3);
        assert!(voters.contains("2@demo-2.demo-brokers.kafka.svc.cluster.local:9093"));
        assert!(!voters.contains("3@"));
    }

    #[test]
    fn the_cluster_id_is_the_uid_in_kafka_form() {
        let mut kc = fixture();
        kc.metadata.uid = Some("9c6d1a3e-2f4b-4a8e-9d1c-7b5e3f2a1c0d".into());
        let id = cluster_id(&kc);
        assert_eq!(id.len(), 22);
        kc.metadata.uid = Some("00000000-2f4b-4a8e-9d1c-7b5e3f2a1c0d".into());
        assert_ne!(cluster_id(&kc), id);
    }

    #[test]
    fn the_claim_retention_policy_is_left_out_for_servers_without_it() {
        let settings = Settings {
            pvc_retention_policy: false,
            ..Settings::default()
        };
        let d = build(&fixture(), &settings);
        assert!(d
            .statefulset
            .spec
            .unwrap()
            .persistent_volume_claim_retention_policy
            .is_none());
    }

    #[test]
    fn the_pdb_follows_the_servers_api_version() {
        let settings = Settings {
            pdb_api_version: "policy/v1beta1".into(),
            ..Settings::default()
        };
        assert_eq!(build(&fixture(), &settings).pdb["apiVersion"], "policy/v1beta1");
    }
}
