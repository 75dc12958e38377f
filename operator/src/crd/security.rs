//! A KafkaCluster's listeners and certificate authorities.

use serde::{Deserialize, Serialize};

/// A listener clients connect to.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Lowercase letters and digits, at most 11 (`plain`, `tls`): the Kafka
    /// listener is its uppercase.
    #[schemars(regex(pattern = r"^[a-z0-9]{1,11}$"))]
    pub name: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Who reaches it: `internal`, inside the Kubernetes cluster (the headless
    /// and bootstrap Services); `nodeport` and `loadbalancer`, from outside (a
    /// Service of that type per broker and a bootstrap one; each broker
    /// advertises its node's address and node port, or its load balancer's).
    #[serde(rename = "type", default)]
    pub type_: ListenerType,
    /// Encrypts the listener with a certificate from the cluster CA.
    #[serde(default)]
    pub tls: bool,
    /// How clients authenticate (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ListenerAuthentication>,
    /// With `networkPolicy.enabled`: who may connect to this listener (a
    /// NetworkPolicy's `from`). Empty: anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_policy_peers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
    /// How an external listener's brokers are addressed.
    #[serde(default, skip_serializing_if = "ListenerConfiguration::is_default")]
    pub configuration: ListenerConfiguration,
}

/// An external listener's addresses.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListenerConfiguration {
    /// The DNS name each broker advertises instead of its node's or load
    /// balancer's address, with `{id}` for the broker's id
    /// (`kafka-{id}.example.com`); also put in the brokers' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([a-z0-9.-]|\{id\})+$"))]
    pub broker_host: Option<String>,
    /// Which node address a `nodeport` listener advertises, first found of
    /// ExternalDNS, ExternalIP, InternalDNS, InternalIP, Hostname unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "address_type_schema")]
    pub preferred_node_port_address_type: Option<NodeAddressType>,
}

/// The enum without the `null` member schemars gives an optional one: API
/// servers refuse a null enum value in a structural schema.
fn address_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = NodeAddressType::ALL.iter().map(|t| t.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": names})
}

impl ListenerConfiguration {
    pub fn is_default(&self) -> bool {
        self == &ListenerConfiguration::default()
    }
}

/// A Node's address types (`status.addresses[].type`).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAddressType {
    ExternalDNS,
    ExternalIP,
    InternalDNS,
    InternalIP,
    Hostname,
}

impl NodeAddressType {
    pub const ALL: [NodeAddressType; 5] = [
        NodeAddressType::ExternalDNS,
        NodeAddressType::ExternalIP,
        NodeAddressType::InternalDNS,
        NodeAddressType::InternalIP,
        NodeAddressType::Hostname,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeAddressType::ExternalDNS => "ExternalDNS",
            NodeAddressType::ExternalIP => "ExternalIP",
            NodeAddressType::InternalDNS => "InternalDNS",
            NodeAddressType::InternalIP => "InternalIP",
            NodeAddressType::Hostname => "Hostname",
        }
    }
}

/// Where a listener is reachable from.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListenerType {
    #[default]
    Internal,
    Nodeport,
    Loadbalancer,
}

impl ListenerType {
    /// Reached from outside the Kubernetes cluster.
    pub fn external(self) -> bool {
        self != ListenerType::Internal
    }

    /// The Service type of its Services.
    pub fn service_type(self) -> &'static str {
        match self {
            ListenerType::Internal => "ClusterIP",
            ListenerType::Nodeport => "NodePort",
            ListenerType::Loadbalancer => "LoadBalancer",
        }
    }
}

/// A listener's client authentication.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ListenerAuthentication {
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthenticationType {
    /// SASL SCRAM-SHA-512 with the users' passwords.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// SASL SCRAM-SHA-256.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Client certificates signed by the clients CA (needs `tls: true`).
    #[serde(rename = "tls")]
    Tls,
}

impl AuthenticationType {
    /// The SASL mechanism, for the SCRAM types.
    pub fn sasl_mechanism(self) -> Option<&'static str> {
        match self {
            AuthenticationType::ScramSha512 => Some("SCRAM-SHA-512"),
            AuthenticationType::ScramSha256 => Some("SCRAM-SHA-256"),
            AuthenticationType::Tls => None,
        }
    }
}

/// The cluster CA (signs the brokers' certificates) and the clients CA (signs users').
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesSpec {
    #[serde(default)]
    pub cluster_ca: CaSpec,
    #[serde(default)]
    pub clients_ca: CaSpec,
}

impl CertificatesSpec {
    pub fn is_default(&self) -> bool {
        self == &CertificatesSpec::default()
    }
}

/// How long a CA's certificates live and how early they are replaced; or a
/// CA the user brings (cert-manager's, a company's).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaSpec {
    /// false: the CA is the user's, from `secretName` (`ca.crt` and `ca.key`,
    /// or cert-manager's `tls.crt` and `tls.key`; the key PKCS#8 PEM). The
    /// operator signs the brokers' (or users') certificates with it and never
    /// replaces it; putting a new CA in that Secret replaces it the way the
    /// operator replaces its own, restarting nothing.
    #[serde(default = "default_true")]
    pub generate: bool,
    /// With `generate: false`: the Secret, beside the KafkaCluster, holding the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Validity of the CA certificate, days.
    #[serde(default = "default_validity")]
    #[schemars(range(min = 2))]
    pub validity_days: i32,
    /// The CA is replaced (and leaves re-issued) this many days before expiry.
    #[serde(default = "default_renewal")]
    #[schemars(range(min = 1))]
    pub renewal_days: i32,
}

fn default_validity() -> i32 {
    365
}

fn default_renewal() -> i32 {
    30
}

fn default_true() -> bool {
    true
}

impl Default for CaSpec {
    fn default() -> Self {
        CaSpec {
            generate: true,
            secret_name: None,
            validity_days: default_validity(),
            renewal_days: default_renewal(),
        }
    }
}

/// The cluster's authorizer (`authorization.type: simple`, as in Strimzi).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAuthorization {
    #[serde(rename = "type", default)]
    pub type_: super::AuthorizationType,
    /// Principals allowed everything besides the brokers and the operator (`User:CN=admin`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub super_users: Vec<String>,
}

/// A NetworkPolicy over the broker pods.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// The brokers' replication, quorum and operator ports open only to the
    /// cluster's brokers and the operator's pods; each listener's port to its
    /// `networkPolicyPeers`; the HTTP port (probes, metrics) to all.
    #[serde(default)]
    pub enabled: bool,
}

impl NetworkPolicySpec {
    pub fn is_default(&self) -> bool {
        self == &NetworkPolicySpec::default()
    }
}
