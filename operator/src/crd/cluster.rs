//! `KafkaCluster`: a cluster of Skein brokers run as one StatefulSet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::Condition;

/// The image brokers run when `spec.image` is not set.
pub const DEFAULT_IMAGE: &str = "localhost/skein:dev";

/// A cluster of Skein brokers. Broker `node.id` is the pod ordinal; the Raft
/// voters are ordinals `0..controllers`, so scaling never removes a voter.
// printcolumn(...) repeats `type_ = "..."`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "skein.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    shortname = "kc",
    status = "KafkaClusterStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Bootstrap", type_ = "string", json_path = ".status.bootstrapServers"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.replicas >= self.controllers").message("replicas must be at least controllers"))]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Number of brokers.
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// Voters of the metadata quorum (ordinals 0..controllers): 1, 3 or 5.
    /// A change is made one voter at a time, a majority kept at every step
    /// (KIP-853); `status.voters` and the Voters condition show its progress.
    #[serde(default = "default_controllers")]
    pub controllers: i32,
    /// Broker image (default: the operator's `--broker-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Broker properties by Kafka's names, checked against the broker's own table.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::null_as_empty"
    )]
    #[schemars(extend("nullable" = true))]
    pub config: BTreeMap<String, String>,
    /// The brokers' persistent volumes.
    #[serde(default)]
    pub storage: StorageSpec,
    /// Broker container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Additions to the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,
    /// How partitions move when the cluster is scaled.
    #[serde(default)]
    pub rebalance: RebalanceSpec,
    /// How brokers are restarted when their static config or image changes.
    #[serde(default, skip_serializing_if = "RollingUpdateSpec::is_default")]
    pub rolling_update: RollingUpdateSpec,
    /// The listeners clients use. None: one internal plaintext listener on 9092.
    /// With any listener encrypted or authenticated, brokers replicate and the
    /// quorum talks over mutual TLS on their own listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<super::ListenerSpec>,
    /// The certificate authorities the operator keeps.
    #[serde(default, skip_serializing_if = "super::CertificatesSpec::is_default")]
    pub certificates: super::CertificatesSpec,
    /// Kafka's ACL authorizer on every broker: requests are checked against
    /// the ACLs (KafkaUsers declare them); the brokers and the operator are
    /// super users. Absent: no authorizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<super::ClusterAuthorization>,
    /// Namespaces other than this one whose KafkaUsers may belong to this
    /// cluster (a label selector; `{}` selects every namespace). Absent: only this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_namespaces: Option<LabelSelector>,
    /// A NetworkPolicy restricting the broker ports to their intended clients.
    #[serde(default, skip_serializing_if = "super::NetworkPolicySpec::is_default")]
    pub network_policy: super::NetworkPolicySpec,
    /// Failure domains: each broker's `broker.rack` is its node's value of
    /// `topologyKey`, pods spread over that key, replicas of new partitions
    /// over racks, and consumers with `client.rack` read from their rack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,
}

/// Where the brokers' racks come from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// A node label, for example `topology.kubernetes.io/zone`.
    #[schemars(length(min = 1, max = 316))]
    pub topology_key: String,
}

/// Rolling restarts: one broker at a time, never below `min.insync.replicas`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateSpec {
    /// Topics that may become unavailable while their broker restarts (their
    /// replication factor leaves no spare in-sync replica, for example 1).
    /// Without them listed such a topic blocks the roll; `*` lists all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_unavailable_topics: Vec<String>,
}

impl RollingUpdateSpec {
    fn is_default(&self) -> bool {
        self == &RollingUpdateSpec::default()
    }
}

fn default_controllers() -> i32 {
    1
}

/// One PersistentVolumeClaim per broker, for its log directory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each broker's volume (a Kubernetes quantity).
    #[serde(default = "default_size")]
    pub size: String,
    /// StorageClass of the claims (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the volumes of brokers removed by a scale-down.
    #[serde(default)]
    pub when_scaled: VolumePolicy,
    /// What happens to the volumes when the KafkaCluster is deleted.
    #[serde(default)]
    pub when_deleted: VolumePolicy,
}

fn default_size() -> String {
    "10Gi".into()
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_size(),
            storage_class_name: None,
            when_scaled: VolumePolicy::Retain,
            when_deleted: VolumePolicy::Retain,
        }
    }
}

/// Keep or delete a volume whose broker is gone.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VolumePolicy {
    #[default]
    Retain,
    Delete,
}

impl VolumePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumePolicy::Retain => "Retain",
            VolumePolicy::Delete => "Delete",
        }
    }
}

/// What the broker pods get on top of the operator's template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// Limits on partition moves when brokers are added or removed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Replication throttle while partitions move, bytes per second per broker.
    #[serde(default = "default_throttle")]
    #[schemars(range(min = 1))]
    pub throttle_bytes_per_second: i64,
    /// Partition moves in flight at once.
    #[serde(default = "default_moves")]
    #[schemars(range(min = 1))]
    pub max_moves_in_flight: i32,
}

fn default_throttle() -> i64 {
    50 * 1024 * 1024
}

fn default_moves() -> i32 {
    4
}

impl Default for RebalanceSpec {
    fn default() -> Self {
        RebalanceSpec {
            throttle_bytes_per_second: default_throttle(),
            max_moves_in_flight: default_moves(),
        }
    }
}

/// What the operator last saw of the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Degraded, Invalid or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Broker pods that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Broker pods that are Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the broker pods (the scale subresource's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The voters this cluster was created with: the brokers' initial
    /// `controller.quorum.voters` (the voters since are `voters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<i32>,
    /// The metadata quorum's voters now, as its leader reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voters: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerStatus>,
    /// The address clients bootstrap from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The last or current change of the broker count, with its reassignment progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingStatus>,
    /// The last or current rolling restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll: Option<RollStatus>,
    /// The certificate authorities of a secured cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_authorities: Vec<CaStatus>,
    /// Where clients reach each listener (Strimzi's `status.listeners`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
}

/// One listener's addresses for clients.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    /// internal, nodeport or loadbalancer.
    #[serde(rename = "type")]
    pub type_: String,
    /// `host:port,...` to bootstrap from; absent until known (a load balancer
    /// not provisioned, no broker placed yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
}

/// Where a CA stands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaStatus {
    /// `cluster` or `clients`.
    pub name: String,
    /// Creating, Ready, Distributing (a new key in the trust bundle), Reissuing
    /// (certificates moving to it) or Settling (before the old key leaves).
    pub phase: String,
    /// The key generations in the trust bundle, oldest first.
    pub generations: Vec<u32>,
    /// When the newest CA certificate expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// A rolling restart of the brokers onto the StatefulSet's update revision.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollStatus {
    /// Rolling, Waiting, Blocked, ElectingLeaders or Completed.
    pub phase: String,
    /// The StatefulSet revision the brokers roll onto.
    pub revision: String,
    /// Brokers restarted onto it, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<i32>,
    /// Brokers still on an older revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<i32>,
    /// What the roll waits for, or why it is blocked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One change of the broker count: where it stands, and how much data it moves.
/// Everything here can be recomputed from the cluster except the target and the
/// progress already reported, so an operator restarted mid-way carries on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStatus {
    /// AddingBrokers, Rebalancing, Draining, RemovingBrokers, Unregistering,
    /// ReleasingVolumes, ElectingLeaders, Completed, Refused or Cancelled.
    pub phase: String,
    /// Brokers when the change started.
    pub from: i32,
    /// Brokers wanted.
    pub to: i32,
    /// The plan's identity: `FROM-to-TO-gGENERATION`.
    pub plan_id: String,
    /// Partition moves of the plan, done and still in flight.
    #[serde(default)]
    pub partitions_total: i64,
    #[serde(default)]
    pub partitions_done: i64,
    #[serde(default)]
    pub partitions_in_flight: i64,
    /// Bytes the moves copy, and copied so far (never decreases).
    #[serde(default)]
    pub bytes_total: i64,
    #[serde(default)]
    pub bytes_done: i64,
    /// Bytes left over the replication throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_seconds_left: Option<i64>,
    /// When progress last moved (a move that does not is reported as stalled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// True while moves are in flight and none progressed for the stall period.
    #[serde(default)]
    pub stalled: bool,
    /// What the change waits for, or why it is refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One broker as the operator last saw it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    pub id: i32,
    pub pod: String,
    pub ready: bool,
    /// Partitions this broker leads (absent when the cluster could not be asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions_led: Option<i32>,
    /// Partitions it hosts with fewer in-sync replicas than replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_replicated: Option<i32>,
}

/// metav1 Condition's schema with `type` as the list-map key, so server-side
/// apply merges conditions by type.
pub(crate) fn conditions_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut s = <Vec<Condition> as schemars::JsonSchema>::json_schema(g);
    s.insert("x-kubernetes-list-type".into(), "map".into());
    s.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    s
}
